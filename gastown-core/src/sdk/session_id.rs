//! The check a session id passes before it goes into a URL path.

use crate::error::{Error, Result};

/// The longest session id accepted, in bytes. kilo's ids (`ses_` + 26 characters) are far
/// shorter; the bound only keeps garbage out of URLs and logs.
pub const MAX_SESSION_ID_LEN: usize = 128;

/// Checks that `id` can go into a URL path as is: non-empty, at most
/// [`MAX_SESSION_ID_LEN`] bytes, only ASCII letters, digits, `_` and `-` (kilo's and
/// opencode's ids look like `ses_e026be88bffeu7adPwXXoZFy5r`).
///
/// # Errors
/// [`Error::Sdk`] with operation `validate_session_id`, `status: None` and
/// `timed_out: false`, naming the rejected id (at most 80 characters of it).
pub fn validate_session_id(id: &str) -> Result<()> {
    check(OPERATION, id)
}

const OPERATION: &str = "validate_session_id";

/// [`validate_session_id`] reporting under the calling operation's name.
pub(super) fn check(operation: &'static str, id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_SESSION_ID_LEN {
        "it is longer than 128 bytes"
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        "only ASCII letters, digits, '_' and '-' are allowed"
    } else {
        return Ok(());
    };
    let shown: String = id.chars().take(80).collect();
    Err(Error::Sdk {
        operation,
        message: format!("invalid session id {shown:?}: {reason}; no request was sent"),
        timed_out: false,
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kilo_ids_and_rejects_path_tricks() {
        assert!(validate_session_id("ses_e026be88bffeu7adPwXXoZFy5r").is_ok());
        assert!(validate_session_id(&"a".repeat(128)).is_ok());
        for bad in ["", "../x", "a/b", "a b", "ses?x=1", "é", &"a".repeat(129)] {
            let err = validate_session_id(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Sdk {
                        operation: OPERATION,
                        status: None,
                        timed_out: false,
                        ..
                    }
                ),
                "{bad:?} → {err:?}"
            );
        }
    }
}
