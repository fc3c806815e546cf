//! Sessions' statuses and messages as the SDK server reports them (`GET /session/status`,
//! `GET /session/{id}/message`), typed as far as gastown reads them.

use std::collections::BTreeMap;

use serde_json::Value;

/// What a session is doing, from `GET /session/status` or a `session.status` event
/// (kilo 7.7.9 `GET /doc`, schema `SessionStatus`: `{"type":"idle"}`, `{"type":"busy"}`,
/// `{"type":"retry","attempt":N,"message":…,"next":MS}`, `{"type":"offline",…}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStatus {
    /// No turn is running.
    Idle,
    /// A turn is running.
    Busy,
    /// The provider failed and the turn waits to try again (kilo retries 5xx and 429
    /// answers without end, with a growing delay).
    Retry {
        /// The retry's number, from 1.
        attempt: u64,
        /// The provider's error message.
        message: String,
        /// When the next attempt starts, in ms since the Unix epoch (when sent).
        next_ms: Option<i64>,
    },
    /// A status gastown does not know (`offline`, or one added later), by its `type`.
    Other {
        /// The `type` field (empty when there was none).
        kind: String,
    },
}

impl SessionStatus {
    /// Parses a status object leniently: anything unknown or malformed is
    /// [`SessionStatus::Other`].
    pub fn from_json(v: &Value) -> Self {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "idle" => Self::Idle,
            "busy" => Self::Busy,
            "retry" => Self::Retry {
                attempt: v.get("attempt").and_then(Value::as_u64).unwrap_or(0),
                message: str_field(v, "message").unwrap_or_default(),
                next_ms: v.get("next").and_then(as_millis),
            },
            other => Self::Other {
                kind: other.to_owned(),
            },
        }
    }

    /// Whether a turn is in progress (busy or waiting to retry).
    pub fn is_working(&self) -> bool {
        matches!(self, Self::Busy | Self::Retry { .. })
    }
}

/// Parses the answer of `GET /session/status`: an object from session id to status. kilo
/// 7.7.9 lists only sessions that are not idle (an idle server answers `{}`), so a session
/// missing from the map is idle.
pub(super) fn parse_status_map(v: &Value) -> Option<BTreeMap<String, SessionStatus>> {
    Some(
        v.as_object()?
            .iter()
            .map(|(id, s)| (id.clone(), SessionStatus::from_json(s)))
            .collect(),
    )
}

/// An error recorded on an assistant message or sent in `session.error`
/// (`{"name":"APIError","data":{"message":…,"statusCode":400,"isRetryable":false,…}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnError {
    /// The error's name (`APIError`, `ProviderAuthError`, `MessageAbortedError`, …).
    pub name: String,
    /// `data.message` (empty when absent).
    pub message: String,
    /// `data.statusCode`: the provider's HTTP status, when the error came from one.
    pub status: Option<u16>,
}

impl TurnError {
    /// Parses an error object leniently (a missing name is `"UnknownError"`).
    pub fn from_json(v: &Value) -> Self {
        Self {
            name: str_field(v, "name").unwrap_or_else(|| "UnknownError".to_owned()),
            message: v
                .pointer("/data/message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            status: v
                .pointer("/data/statusCode")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok()),
        }
    }
}

/// One message of a session, from `GET /session/{id}/message` (`[{"info":{…},"parts":[…]}]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMessage {
    /// The message id (`msg_…`).
    pub id: String,
    /// `user` or `assistant`.
    pub role: String,
    /// When it was created, in ms since the Unix epoch (0 when absent).
    pub created_ms: i64,
    /// When an assistant message completed, in ms since the Unix epoch.
    pub completed_ms: Option<i64>,
    /// Why the model stopped (`stop`, `tool-calls`, …), for an assistant message.
    pub finish: Option<String>,
    /// The error that ended the turn, if one did.
    pub error: Option<TurnError>,
    /// The text of its `text` parts, concatenated in order (empty when it has none).
    pub text: String,
}

impl SessionMessage {
    /// Parses one `{"info":…,"parts":…}` element; `None` when it has no `info.id`.
    pub(super) fn from_json(v: &Value) -> Option<Self> {
        let info = v.get("info")?;
        let text = v
            .get("parts")
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<String>()
            })
            .unwrap_or_default();
        Some(Self {
            id: str_field(info, "id")?,
            role: str_field(info, "role").unwrap_or_default(),
            created_ms: info
                .pointer("/time/created")
                .and_then(as_millis)
                .unwrap_or(0),
            completed_ms: info.pointer("/time/completed").and_then(as_millis),
            finish: str_field(info, "finish"),
            error: info.get("error").map(TurnError::from_json),
            text,
        })
    }
}

/// The text of the last assistant message of `messages` (in the server's order, oldest
/// first), or `None` when there is no assistant message.
pub fn last_assistant_text(messages: &[SessionMessage]) -> Option<&str> {
    messages
        .iter()
        .rev()
        .find(|m| m.role == "assistant")
        .map(|m| m.text.as_str())
}

pub(super) fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Integer or float milliseconds (JavaScript may send either).
pub(super) fn as_millis(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 9.0e15)
            .map(|f| f.round() as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_parse_leniently() {
        assert_eq!(
            SessionStatus::from_json(&json!({"type":"busy"})),
            SessionStatus::Busy
        );
        assert_eq!(
            SessionStatus::from_json(
                &json!({"type":"retry","attempt":2,"message":"scripted failure","next":1796138820407_i64})
            ),
            SessionStatus::Retry {
                attempt: 2,
                message: "scripted failure".into(),
                next_ms: Some(1796138820407)
            }
        );
        assert_eq!(
            SessionStatus::from_json(&json!(7)),
            SessionStatus::Other {
                kind: String::new()
            }
        );
        let map = parse_status_map(&json!({"ses_a":{"type":"busy"}})).unwrap();
        assert_eq!(map["ses_a"], SessionStatus::Busy);
        assert!(parse_status_map(&json!([])).is_none());
    }

    #[test]
    fn messages_carry_text_and_errors() {
        // As kilo 7.7.9 answers `GET /session/{id}/message` after a turn (trimmed).
        let list = json!([
            {"info":{"id":"msg_1","role":"user","time":{"created":1}},
             "parts":[{"type":"text","text":"hi"}]},
            {"info":{"id":"msg_2","role":"assistant","time":{"created":2,"completed":3},"finish":"stop"},
             "parts":[{"type":"step-start"},{"type":"text","text":"Hello from "},
                      {"type":"text","text":"the scripted model."},{"type":"step-finish"}]},
            {"info":{"id":"msg_3","role":"assistant","time":{"created":4,"completed":5},
                     "error":{"name":"APIError","data":{"message":"scripted failure","statusCode":400}}},
             "parts":[]},
            {"no":"info"}
        ]);
        let messages: Vec<SessionMessage> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(SessionMessage::from_json)
            .collect();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1].text, "Hello from the scripted model.");
        assert_eq!(messages[1].completed_ms, Some(3));
        assert_eq!(messages[1].finish.as_deref(), Some("stop"));
        let err = messages[2].error.as_ref().unwrap();
        assert_eq!((err.name.as_str(), err.status), ("APIError", Some(400)));
        assert_eq!(last_assistant_text(&messages), Some(""));
        assert_eq!(
            last_assistant_text(&messages[..2]),
            Some("Hello from the scripted model.")
        );
        assert_eq!(last_assistant_text(&messages[..1]), None);
    }
}
