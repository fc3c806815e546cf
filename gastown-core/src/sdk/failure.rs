//! Turning what went wrong in a call into an [`Error::Sdk`] — with nothing secret in it.
//!
//! The password only ever travels in the `Authorization` header, which reqwest marks
//! sensitive; these messages are built from the method, the path, reqwest's error chain
//! (URL stripped) and an excerpt of the server's body, none of which carries it.

use std::error::Error as _;

use crate::error::Error;

/// At most this many characters of an error body go into a message (the brief's ~300).
pub(super) const ERROR_BODY_CHARS: usize = 300;
/// At most this many characters of a malformed body go into a message.
pub(super) const MALFORMED_BODY_CHARS: usize = 100;

/// A failed call, and whether trying again may help (used by `wait_healthy`).
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) error: Error,
    pub(super) retryable: bool,
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        f.error
    }
}

/// Builds failures for one call (`GET /session` under operation `list_sessions`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Call<'a> {
    pub(super) operation: &'static str,
    pub(super) method: &'a str,
    pub(super) path: &'a str,
}

impl Call<'_> {
    fn error(&self, message: String, timed_out: bool, status: Option<u16>) -> Error {
        Error::Sdk {
            operation: self.operation,
            message: format!("{} {}: {message}", self.method, self.path),
            timed_out,
            status,
        }
    }

    /// The whole call (connect, send, read) did not finish within `timeout_ms`.
    pub(super) fn timed_out(&self, timeout_ms: u128) -> Failure {
        Failure {
            error: self.error(
                format!("no complete answer within {timeout_ms} ms"),
                true,
                None,
            ),
            retryable: true,
        }
    }

    /// reqwest failed (connect refused, connection reset, …): worth retrying while a
    /// server boots.
    pub(super) fn transport(&self, err: reqwest::Error) -> Failure {
        let timed_out = err.is_timeout();
        Failure {
            error: self.error(describe(err), timed_out, None),
            retryable: true,
        }
    }

    /// A non-2xx answer. 5xx may pass while a server boots; 4xx (a wrong password) won't.
    pub(super) fn status(&self, status: reqwest::StatusCode, body: &[u8]) -> Failure {
        let mut message = format!("HTTP {status}");
        if status == reqwest::StatusCode::UNAUTHORIZED {
            message.push_str(" (the server password was refused)");
        }
        let excerpt = excerpt(body, ERROR_BODY_CHARS);
        if !excerpt.is_empty() {
            message.push_str(": ");
            message.push_str(&excerpt);
        }
        Failure {
            error: self.error(message, false, Some(status.as_u16())),
            retryable: status.is_server_error(),
        }
    }

    /// A 2xx answer whose body is not what the API promises.
    pub(super) fn malformed(&self, what: impl std::fmt::Display, body: &[u8]) -> Failure {
        let mut message = format!("malformed response: {what}");
        let excerpt = excerpt(body, MALFORMED_BODY_CHARS);
        if !excerpt.is_empty() {
            message.push_str("; body starts with: ");
            message.push_str(&excerpt);
        }
        Failure {
            error: self.error(message, false, None),
            retryable: false,
        }
    }
}

/// reqwest's error and its causes, `: `-joined, without the URL.
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper and reqwest often repeat the inner message in the outer one.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// At most `max_chars` characters of `body` (lossy UTF-8, control characters escaped so a
/// hostile body cannot forge log lines), with `…` when cut.
pub(super) fn excerpt(body: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cuts_and_escapes() {
        assert_eq!(excerpt(b"  hi\n", 10), "hi");
        assert_eq!(excerpt(b"a\nb", 10), "a\\nb");
        assert_eq!(excerpt("ééé".as_bytes(), 2), "éé…");
        assert_eq!(excerpt(&[0xff, b'x'], 10), "\u{fffd}x");
    }
}
