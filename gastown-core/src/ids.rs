//! Validated identifiers: [`TownId`], [`AgentId`], [`RigId`], [`BeadId`].
//!
//! Ids end up as path components (`/agents/<agent>`), Docker container names and labels
//! (`gastown.town=<town>`) and SQLite keys, so they are restricted to a set that is safe in
//! all of those places: 1 to [`MAX_ID_LEN`] characters of `[a-z0-9_-]`.
//!
//! A [`BeadId`] is wider — `[A-Za-z0-9._-]`, not starting with `.` or `-` — because bead
//! ids come from issue trackers (beads' hierarchical `bd-a3f8.1`, upper-case keys); it
//! names store rows and branch names, never containers or directories.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest id accepted, in characters (and bytes: ids are ASCII).
pub const MAX_ID_LEN: usize = 64;

/// Why an id was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdRejection {
    /// The id is the empty string.
    Empty,
    /// The id is longer than [`MAX_ID_LEN`].
    TooLong,
    /// The id holds a character outside `[a-z0-9_-]` (upper case, `/`, `.`, space, …).
    BadCharacter,
    /// A [`BeadId`] holds a character outside `[A-Za-z0-9._-]` (`/`, space, `:`, …).
    BadBeadCharacter,
    /// A [`BeadId`] starts with `.` or `-` (a hidden name, or an option to `git`).
    BadFirstCharacter,
    /// A [`BeadId`] holds `..` or ends with `.` or `.lock`: its branch
    /// (`gt/<polecat>/<bead>`) would not be a valid git ref name
    /// (`git check-ref-format`).
    BadBranchName,
}

impl fmt::Display for IdRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdRejection::Empty => "must not be empty",
            IdRejection::TooLong => "must be at most 64 characters",
            IdRejection::BadCharacter => "may only hold a-z, 0-9, '_' and '-'",
            IdRejection::BadBeadCharacter => "may only hold A-Z, a-z, 0-9, '.', '_' and '-'",
            IdRejection::BadFirstCharacter => "must not start with '.' or '-'",
            IdRejection::BadBranchName => {
                "must not hold '..' or end with '.' or '.lock' (it names a git branch)"
            }
        })
    }
}

/// The rule of town, agent and rig ids: `[a-z0-9_-]` only.
fn name_rule(value: &str) -> Option<IdRejection> {
    let ok = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    (!ok).then_some(IdRejection::BadCharacter)
}

/// The rule of bead ids: `[A-Za-z0-9._-]`, not starting with `.` or `-`, and usable as
/// the last component of a git branch name (no `..`, not ending with `.` or `.lock`).
fn bead_rule(value: &str) -> Option<IdRejection> {
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some(IdRejection::BadBeadCharacter)
    } else if value.starts_with(['.', '-']) {
        Some(IdRejection::BadFirstCharacter)
    } else if value.contains("..") || value.ends_with('.') || value.ends_with(".lock") {
        // git check-ref-format: a bead id is the last component of its branch's name.
        Some(IdRejection::BadBranchName)
    } else {
        None
    }
}

/// Checks `value` against the id rules (length, then `rule` for the characters); `kind`
/// (`town`, `agent`, `rig`, `bead`) names the id in the error.
///
/// # Errors
/// [`Error::InvalidId`] with the first [`IdRejection`] that applies (empty, then too long,
/// then `rule`'s) and at most the first 80 characters of `value`.
fn validate(kind: &'static str, value: &str, rule: fn(&str) -> Option<IdRejection>) -> Result<()> {
    let reason = if value.is_empty() {
        Some(IdRejection::Empty)
    } else if value.len() > MAX_ID_LEN {
        Some(IdRejection::TooLong)
    } else {
        rule(value)
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidId {
            kind,
            // Cap what we echo back: the value is user input and may be huge.
            value: value.chars().take(80).collect(),
            reason,
        }),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        id_type!($(#[$doc])* $name, $kind, name_rule, "holds a character outside `[a-z0-9_-]`");
    };
    ($(#[$doc:meta])* $name:ident, $kind:literal, $rule:path, $rule_doc:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value` and wraps it.
            ///
            /// # Errors
            /// [`Error::InvalidId`] when `value` is empty, longer than [`MAX_ID_LEN`], or
            #[doc = concat!("    ", $rule_doc, ".")]
            pub fn new(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                validate($kind, &value, $rule)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Looks the id up by its text in maps keyed by it (an agent's hook is stored as
        /// text): its `Eq`, `Ord` and `Hash` are those of the `String` it wraps.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A town's id: the unit of tenancy (one mayor, its rigs, agents and beads;
    /// ARCHITECTURE.md, *Vocabulary*). It names the town's container (`<prefix>-<town>`
    /// and the label `gastown.town=<town>` on Docker, `<root>/<town>/` locally), so
    /// orphans can be found.
    ///
    /// ```
    /// use gastown_core::TownId;
    ///
    /// let town = TownId::new("acme-prod")?;
    /// assert_eq!(town.as_str(), "acme-prod");
    /// assert!(TownId::new("Acme").is_err()); // upper case
    /// assert!(TownId::new("a/b").is_err()); // would be two path components
    /// # Ok::<(), gastown_core::Error>(())
    /// ```
    TownId,
    "town"
);
id_type!(
    /// An agent's id, unique within its town (the mayor's is `mayor`, see
    /// [`AgentId::mayor`]). It is a path component of the agent's layout
    /// (`/agents/<agent>/…`, [`AgentLayout`](crate::AgentLayout)), its snapshot directory
    /// and its town-store rows.
    AgentId,
    "agent"
);
id_type!(
    /// A rig's id: the name of one git repository the town works on. It names the
    /// container's bare clone (`/rigs/<rig>.git`) and the mayor's browse worktree
    /// (`/workspace/mayor/browse/<rig>`).
    RigId,
    "rig"
);

id_type!(
    /// A bead's id (a unit of work: an issue, a merge request; ARCHITECTURE.md,
    /// *Vocabulary*), unique within its town: the key of its town-store row, of the events
    /// queued about it and of an agent's hook.
    ///
    /// Wider than the other ids — 1 to [`MAX_ID_LEN`] characters of `[A-Za-z0-9._-]`, not
    /// starting with `.` or `-` — so tracker ids such as beads' hierarchical `bd-a3f8.1`
    /// fit as they are; the first-character rule keeps an id from being a hidden name or
    /// an option when it is passed to `git`, and an id never holds `..` nor ends with `.`
    /// or `.lock`, which a git branch name (`gt/<polecat>/<bead>`) may not.
    ///
    /// ```
    /// use gastown_core::BeadId;
    ///
    /// assert_eq!(BeadId::new("bd-a3f8.1")?.as_str(), "bd-a3f8.1");
    /// assert!(BeadId::new("GT-42").is_ok());
    /// assert!(BeadId::new(".hidden").is_err());
    /// assert!(BeadId::new("a/b").is_err());
    /// assert!(BeadId::new("a..b").is_err());
    /// # Ok::<(), gastown_core::Error>(())
    /// ```
    BeadId,
    "bead",
    bead_rule,
    "holds a character outside `[A-Za-z0-9._-]`, starts with `.` or `-`, holds `..` or ends with `.` or `.lock`"
);

impl AgentId {
    /// The id every town gives its mayor: `mayor`.
    pub fn mayor() -> Self {
        Self("mayor".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(value: &str) -> IdRejection {
        match TownId::new(value) {
            Err(Error::InvalidId { reason, .. }) => reason,
            other => panic!("expected a rejection for {value:?}, got {other:?}"),
        }
    }

    #[test]
    fn accepts_the_safe_alphabet() {
        for ok in ["a", "town-1", "my_town", "0", &"x".repeat(64)] {
            assert_eq!(TownId::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(rejection(""), IdRejection::Empty);
    }

    #[test]
    fn rejects_too_long() {
        assert_eq!(rejection(&"x".repeat(65)), IdRejection::TooLong);
    }

    #[test]
    fn rejects_each_unsafe_character() {
        for bad in [
            "Town", "a/b", "..", "a.b", "a b", "a\0b", "é", "a:b", "a\\b", "-/",
        ] {
            assert_eq!(rejection(bad), IdRejection::BadCharacter, "{bad:?}");
        }
    }

    #[test]
    fn error_names_kind_and_reason() {
        let err = RigId::new("Bad/Rig").unwrap_err().to_string();
        assert!(err.contains("rig"), "{err}");
        assert!(err.contains("a-z"), "{err}");
    }

    fn bead_rejection(value: &str) -> IdRejection {
        match BeadId::new(value) {
            Err(Error::InvalidId { kind, reason, .. }) => {
                assert_eq!(kind, "bead");
                reason
            }
            other => panic!("expected a rejection for {value:?}, got {other:?}"),
        }
    }

    #[test]
    fn bead_ids_take_tracker_spellings() {
        for ok in [
            "a",
            "bd-a3f8.1",
            "GT-42",
            "x_y",
            "a.b",
            "a.locks",
            "0",
            &"B".repeat(64),
        ] {
            assert_eq!(BeadId::new(ok).unwrap().as_str(), ok);
        }
        assert_eq!(bead_rejection(""), IdRejection::Empty);
        assert_eq!(bead_rejection(&"b".repeat(65)), IdRejection::TooLong);
        for bad in ["a/b", "a b", "a:b", "é", "a\0b", "a\\b"] {
            assert_eq!(
                bead_rejection(bad),
                IdRejection::BadBeadCharacter,
                "{bad:?}"
            );
        }
        for bad in [".a", "-a", ".", "-"] {
            assert_eq!(
                bead_rejection(bad),
                IdRejection::BadFirstCharacter,
                "{bad:?}"
            );
        }
        for bad in ["a..b", "a.", "a.lock", "x-1.2."] {
            assert_eq!(bead_rejection(bad), IdRejection::BadBranchName, "{bad:?}");
        }
        let err = BeadId::new("a..b").unwrap_err().to_string();
        assert!(err.contains("git branch"), "{err}");
        let err = BeadId::new("-x").unwrap_err().to_string();
        assert!(err.contains("bead") && err.contains("start"), "{err}");
        assert!(serde_json::from_str::<BeadId>("\"../x\"").is_err());
        let map: std::collections::BTreeMap<BeadId, u8> = [(BeadId::new("b-1").unwrap(), 1)].into();
        assert_eq!(map.get("b-1"), Some(&1));
    }

    #[test]
    fn serde_validates() {
        let ok: AgentId = serde_json::from_str("\"polecat-1\"").unwrap();
        assert_eq!(ok.as_str(), "polecat-1");
        assert!(serde_json::from_str::<AgentId>("\"../etc\"").is_err());
    }
}
