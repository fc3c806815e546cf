//! What the SDK server answers, as gastown sees it, and the JSON shapes it arrives in.

use serde::{Deserialize, Deserializer};

/// The answer of `GET /global/health`: `{"healthy":true,"version":"7.7.9"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Health {
    /// Whether the server says it is healthy.
    pub healthy: bool,
    /// The server's version (kilo's CLI version, e.g. `7.7.9`).
    pub version: String,
}

/// A session (a conversation) inside the SDK server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id (`ses_…`).
    pub id: String,
    /// Its title (empty when the server sent none).
    pub title: String,
    /// When it was created, in ms since the Unix epoch.
    pub created_ms: i64,
    /// When it last changed (a message, a title), in ms since the Unix epoch.
    pub updated_ms: i64,
}

/// The session a mayor resumes: the one with the greatest `updated_ms` (then the greatest
/// `created_ms`; on a full tie, the later one in the slice). `None` for an empty slice.
pub fn newest_session(sessions: &[SessionInfo]) -> Option<&SessionInfo> {
    sessions.iter().max_by_key(|s| (s.updated_ms, s.created_ms))
}

/// A session as kilo sends it; only the fields gastown reads, the rest is ignored.
#[derive(Debug, Deserialize)]
pub(super) struct WireSession {
    id: String,
    #[serde(default)]
    title: String,
    time: WireTime,
}

#[derive(Debug, Deserialize)]
struct WireTime {
    #[serde(deserialize_with = "millis")]
    created: i64,
    #[serde(deserialize_with = "millis")]
    updated: i64,
}

impl From<WireSession> for SessionInfo {
    fn from(w: WireSession) -> Self {
        SessionInfo {
            id: w.id,
            title: w.title,
            created_ms: w.time.created,
            updated_ms: w.time.updated,
        }
    }
}

/// The answer of `POST /session/{id}/message`: `{"info":{"id":"msg_…",…},"parts":[…]}`.
#[derive(Debug, Deserialize)]
pub(super) struct WireMessage {
    pub(super) info: WireMessageInfo,
}

/// The `info` of a [`WireMessage`].
#[derive(Debug, Deserialize)]
pub(super) struct WireMessageInfo {
    pub(super) id: String,
}

/// kilo sends integer milliseconds (`Date.now()`); a JavaScript server may as well send a
/// float, so both are accepted and a float is rounded. Anything non-finite or out of the
/// i64 range is malformed.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Int(i64),
        Float(f64),
    }
    match Num::deserialize(d)? {
        Num::Int(i) => Ok(i),
        // i64::MAX as f64 rounds up to 2^63, which is out of range, hence the strict `<`.
        Num::Float(f) if f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
            Ok(f.round() as i64)
        }
        Num::Float(f) => Err(serde::de::Error::custom(format!(
            "timestamp {f} is not a millisecond count"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, created_ms: i64, updated_ms: i64) -> SessionInfo {
        SessionInfo {
            id: id.to_owned(),
            title: String::new(),
            created_ms,
            updated_ms,
        }
    }

    #[test]
    fn wire_session_accepts_kilo_shape_and_float_times() {
        let json = r#"{"id":"ses_1","slug":"x","title":"mayor","version":"7.7.9",
            "time":{"created":1795255703413,"updated":1795255703647.4}}"#;
        let w: WireSession = serde_json::from_str(json).unwrap();
        assert_eq!(SessionInfo::from(w), {
            let mut e = s("ses_1", 1795255703413, 1795255703647);
            e.title = "mayor".to_owned();
            e
        });
        let bad = r#"{"id":"x","time":{"created":"soon","updated":1}}"#;
        assert!(serde_json::from_str::<WireSession>(bad).is_err());
        let huge = r#"{"id":"x","time":{"created":1e300,"updated":1}}"#;
        assert!(serde_json::from_str::<WireSession>(huge).is_err());
    }

    #[test]
    fn newest_breaks_ties_on_created() {
        let list = [s("a", 1, 10), s("b", 2, 10), s("c", 9, 5)];
        assert_eq!(newest_session(&list).unwrap().id, "b");
        assert!(newest_session(&[]).is_none());
    }
}
