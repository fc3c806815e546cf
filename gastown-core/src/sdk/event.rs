//! [`SdkEvent`]: the events of an SDK server's `GET /event` stream that gastown reads.
//!
//! kilo 7.7.9 sends one SSE event per bus event, with no `event:` name and the whole event
//! as JSON in `data:`: `{"id":"evt_…","type":"session.status","properties":{…}}`.
//! Observed during a turn: `session.status` busy → `message.updated` (assistant) →
//! `message.part.updated` (empty text part) → `message.part.delta` × N →
//! `message.part.updated` (full text) → `message.updated` (`time.completed`) →
//! `session.status` idle → `session.idle` → `session.turn.close`. `server.connected` comes
//! first on every connection and `server.heartbeat` every 10 s. A turn whose provider
//! answers 4xx ends with `session.error` then idle; 5xx and 429 give `session.status`
//! `retry` (attempt 1, 2, …) until the turn is aborted.

use eventsource_stream::{EventStreamError, Eventsource};
use futures::stream::{BoxStream, Stream, StreamExt};
use serde_json::Value;

use super::failure::Call;
use super::message::{str_field, SessionStatus, TurnError};
use crate::error::Result;

/// The kilo event types parsed into their own variants (the `type` field).
mod kind {
    pub(super) const SERVER_CONNECTED: &str = "server.connected";
    pub(super) const SERVER_HEARTBEAT: &str = "server.heartbeat";
    pub(super) const SESSION_STATUS: &str = "session.status";
    pub(super) const SESSION_IDLE: &str = "session.idle";
    pub(super) const SESSION_ERROR: &str = "session.error";
    pub(super) const PART_DELTA: &str = "message.part.delta";
    pub(super) const PART_UPDATED: &str = "message.part.updated";
    pub(super) const PART_REMOVED: &str = "message.part.removed";
    pub(super) const MESSAGE_UPDATED: &str = "message.updated";
}

/// The `kind` of [`SdkEvent::Other`] for data that is not a JSON object with a string
/// `type`.
pub const MALFORMED_KIND: &str = "malformed";

/// One event of an SDK server's event stream, parsed leniently: an unknown type, or a
/// known type whose required fields are missing, is [`SdkEvent::Other`]; nothing panics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdkEvent {
    /// `server.connected`: the first event of every connection.
    ServerConnected,
    /// `server.heartbeat`: sent every 10 s by kilo 7.7.9.
    ServerHeartbeat,
    /// `session.status` `{"sessionID","status":{"type":"busy"|"idle"|"retry",…}}`.
    SessionStatus {
        /// The session.
        session_id: String,
        /// Its new status.
        status: SessionStatus,
    },
    /// `session.idle` `{"sessionID"}`: a turn ended (after the idle status).
    SessionIdle {
        /// The session.
        session_id: String,
    },
    /// `session.error` `{"sessionID"?, "error":{"name","data":{"message","statusCode"?}}}`:
    /// a turn failed (e.g. the provider answered 4xx).
    SessionError {
        /// The session, when the error belongs to one.
        session_id: Option<String>,
        /// The error.
        error: TurnError,
    },
    /// `message.part.delta` `{"sessionID","messageID","partID","field":"text","delta"}`:
    /// streamed text appended to a part.
    MessagePartDelta {
        /// The session.
        session_id: String,
        /// The message.
        message_id: String,
        /// The part.
        part_id: String,
        /// The part's field the delta extends (`text`).
        field: String,
        /// The appended text.
        delta: String,
    },
    /// `message.part.updated` `{"sessionID","part":{"id","messageID","type","text"?}}`: a
    /// part's whole current state.
    MessagePartUpdated {
        /// The session.
        session_id: String,
        /// The message.
        message_id: String,
        /// The part.
        part_id: String,
        /// The part's type (`text`, `step-start`, `step-finish`, `tool`, …).
        part_type: String,
        /// The part's whole text, for parts that have one.
        text: Option<String>,
        /// `part.synthetic == true`: written by the SDK server, not the model (kilo 7.7.9
        /// shows its snapshot progress, "⠋ Initializing snapshot…", as a synthetic text
        /// part of the assistant message and removes it once done).
        synthetic: bool,
    },
    /// `message.part.removed` `{"sessionID","messageID","partID"}`: a part was deleted
    /// (kilo 7.7.9 removes its transient progress parts).
    MessagePartRemoved {
        /// The session.
        session_id: String,
        /// The message.
        message_id: String,
        /// The part.
        part_id: String,
    },
    /// `message.updated` `{"sessionID","info":{"id","role","time":{"completed"?},"error"?}}`.
    MessageUpdated {
        /// The session.
        session_id: String,
        /// The message.
        message_id: String,
        /// `user` or `assistant`.
        role: String,
        /// Whether `time.completed` is set (an assistant message that finished).
        completed: bool,
        /// The error that ended the turn, if one did.
        error: Option<TurnError>,
    },
    /// Any other event, by its `type` ([`MALFORMED_KIND`] for data that is not a JSON
    /// object with a string `type`).
    Other {
        /// The event's `type`.
        kind: String,
    },
}

impl SdkEvent {
    /// Parses the `data` of one SSE event. Never fails: see the type's docs.
    pub fn parse(data: &str) -> SdkEvent {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return Self::malformed();
        };
        let Some(kind) = v.get("type").and_then(Value::as_str) else {
            return Self::malformed();
        };
        let props = v.get("properties").unwrap_or(&Value::Null);
        Self::typed(kind, props).unwrap_or_else(|| SdkEvent::Other {
            kind: kind.to_owned(),
        })
    }

    fn malformed() -> SdkEvent {
        SdkEvent::Other {
            kind: MALFORMED_KIND.to_owned(),
        }
    }

    /// The typed event, or `None` when a required field is missing.
    fn typed(kind: &str, p: &Value) -> Option<SdkEvent> {
        let s = |key: &str| str_field(p, key);
        Some(match kind {
            kind::SERVER_CONNECTED => SdkEvent::ServerConnected,
            kind::SERVER_HEARTBEAT => SdkEvent::ServerHeartbeat,
            kind::SESSION_STATUS => SdkEvent::SessionStatus {
                session_id: s("sessionID")?,
                status: SessionStatus::from_json(p.get("status")?),
            },
            kind::SESSION_IDLE => SdkEvent::SessionIdle {
                session_id: s("sessionID")?,
            },
            kind::SESSION_ERROR => SdkEvent::SessionError {
                session_id: s("sessionID"),
                error: p
                    .get("error")
                    .map(TurnError::from_json)
                    .unwrap_or_else(|| TurnError::from_json(&Value::Null)),
            },
            kind::PART_DELTA => SdkEvent::MessagePartDelta {
                session_id: s("sessionID")?,
                message_id: s("messageID")?,
                part_id: s("partID")?,
                field: s("field").unwrap_or_else(|| "text".to_owned()),
                delta: s("delta")?,
            },
            kind::PART_UPDATED => {
                let part = p.get("part")?;
                SdkEvent::MessagePartUpdated {
                    session_id: s("sessionID").or_else(|| str_field(part, "sessionID"))?,
                    message_id: str_field(part, "messageID")?,
                    part_id: str_field(part, "id")?,
                    part_type: str_field(part, "type").unwrap_or_default(),
                    text: str_field(part, "text"),
                    synthetic: part.get("synthetic").and_then(Value::as_bool) == Some(true),
                }
            }
            kind::PART_REMOVED => SdkEvent::MessagePartRemoved {
                session_id: s("sessionID")?,
                message_id: s("messageID")?,
                part_id: s("partID")?,
            },
            kind::MESSAGE_UPDATED => {
                let info = p.get("info")?;
                SdkEvent::MessageUpdated {
                    session_id: s("sessionID").or_else(|| str_field(info, "sessionID"))?,
                    message_id: str_field(info, "id")?,
                    role: str_field(info, "role").unwrap_or_default(),
                    completed: info
                        .pointer("/time/completed")
                        .is_some_and(|c| !c.is_null()),
                    error: info.get("error").map(TurnError::from_json),
                }
            }
            _ => return None,
        })
    }

    /// The session the event is about, when it is about one.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            SdkEvent::SessionStatus { session_id, .. }
            | SdkEvent::SessionIdle { session_id }
            | SdkEvent::MessagePartDelta { session_id, .. }
            | SdkEvent::MessagePartUpdated { session_id, .. }
            | SdkEvent::MessagePartRemoved { session_id, .. }
            | SdkEvent::MessageUpdated { session_id, .. } => Some(session_id),
            SdkEvent::SessionError { session_id, .. } => session_id.as_deref(),
            _ => None,
        }
    }
}

/// Frames an SSE byte stream (the body of `GET /event`) into parsed events. The first
/// transport or framing error is yielded as an [`Error::Sdk`](crate::Error::Sdk)
/// (operation `events`) and ends the stream.
pub(super) fn sse_events<S, B>(bytes: S) -> BoxStream<'static, Result<SdkEvent>>
where
    S: Stream<Item = std::result::Result<B, reqwest::Error>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    const CALL: Call<'static> = Call {
        operation: "events",
        method: "GET",
        path: "/event",
    };
    bytes
        .eventsource()
        .scan(false, |failed, item| {
            if *failed {
                return futures::future::ready(None);
            }
            let item = match item {
                Ok(event) => Ok(SdkEvent::parse(&event.data)),
                Err(EventStreamError::Transport(e)) => {
                    *failed = true;
                    Err(CALL.transport(e).error)
                }
                Err(e) => {
                    *failed = true;
                    Err(CALL.malformed(format_args!("SSE framing: {e}"), b"").error)
                }
            };
            futures::future::ready(Some(item))
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Exact lines kilo 7.7.9 sent on `GET /event` (ids shortened).
    const STATUS: &str = r#"{"id":"evt_1","type":"session.status","properties":{"sessionID":"ses_a","status":{"type":"busy"}}}"#;
    const DELTA: &str = r#"{"id":"evt_2","type":"message.part.delta","properties":{"sessionID":"ses_a","messageID":"msg_b","partID":"prt_c","field":"text","delta":"Hello "}}"#;
    const PART: &str = r#"{"id":"evt_3","type":"message.part.updated","properties":{"sessionID":"ses_a","part":{"id":"prt_c","sessionID":"ses_a","messageID":"msg_b","type":"text","text":"Hello from the scripted model.","time":{"start":1,"end":2}},"time":2}}"#;
    // kilo 7.7.9's snapshot progress part (shape of its `progressPart`) and its removal.
    const PROGRESS: &str = r#"{"type":"message.part.updated","properties":{"sessionID":"ses_a","part":{"id":"prt_p","sessionID":"ses_a","messageID":"msg_b","type":"text","text":"⠹ Initializing snapshot…","synthetic":true,"metadata":{"kilo":"transient"}}}}"#;
    const REMOVED: &str = r#"{"type":"message.part.removed","properties":{"sessionID":"ses_a","messageID":"msg_b","partID":"prt_p"}}"#;
    const UPDATED: &str = r#"{"id":"evt_4","type":"message.updated","properties":{"sessionID":"ses_a","info":{"id":"msg_b","sessionID":"ses_a","role":"assistant","time":{"created":1,"completed":3},"finish":"stop"}}}"#;
    const ERROR: &str = r#"{"id":"evt_5","type":"session.error","properties":{"sessionID":"ses_a","error":{"name":"APIError","data":{"message":"scripted failure","statusCode":400,"isRetryable":false}}}}"#;

    #[test]
    fn kilo_events_parse() {
        assert_eq!(
            SdkEvent::parse(STATUS),
            SdkEvent::SessionStatus {
                session_id: "ses_a".into(),
                status: SessionStatus::Busy
            }
        );
        assert_eq!(
            SdkEvent::parse(DELTA),
            SdkEvent::MessagePartDelta {
                session_id: "ses_a".into(),
                message_id: "msg_b".into(),
                part_id: "prt_c".into(),
                field: "text".into(),
                delta: "Hello ".into()
            }
        );
        match SdkEvent::parse(PART) {
            SdkEvent::MessagePartUpdated {
                text,
                part_type,
                synthetic,
                ..
            } => {
                assert_eq!(part_type, "text");
                assert_eq!(text.as_deref(), Some("Hello from the scripted model."));
                assert!(!synthetic);
            }
            other => panic!("{other:?}"),
        }
        match SdkEvent::parse(PROGRESS) {
            SdkEvent::MessagePartUpdated {
                part_type,
                synthetic,
                ..
            } => assert_eq!((part_type.as_str(), synthetic), ("text", true)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            SdkEvent::parse(REMOVED),
            SdkEvent::MessagePartRemoved {
                session_id: "ses_a".into(),
                message_id: "msg_b".into(),
                part_id: "prt_p".into(),
            }
        );
        match SdkEvent::parse(UPDATED) {
            SdkEvent::MessageUpdated {
                role,
                completed,
                error,
                ..
            } => {
                assert_eq!((role.as_str(), completed, error), ("assistant", true, None));
            }
            other => panic!("{other:?}"),
        }
        match SdkEvent::parse(ERROR) {
            SdkEvent::SessionError { session_id, error } => {
                assert_eq!(session_id.as_deref(), Some("ses_a"));
                assert_eq!(error.message, "scripted failure");
                assert_eq!(error.status, Some(400));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            SdkEvent::parse(r#"{"type":"server.heartbeat","properties":{}}"#),
            SdkEvent::ServerHeartbeat
        );
        assert_eq!(SdkEvent::parse(DELTA).session_id(), Some("ses_a"));
    }

    #[test]
    fn unknown_and_malformed_events_are_other() {
        let other = |kind: &str| SdkEvent::Other { kind: kind.into() };
        assert_eq!(
            SdkEvent::parse(r#"{"type":"sync","properties":{}}"#),
            other("sync")
        );
        for bad in [
            "",
            "not json",
            "[1,2]",
            r#"{"type":7}"#,
            r#"{"properties":{}}"#,
        ] {
            assert_eq!(SdkEvent::parse(bad), other(MALFORMED_KIND), "{bad:?}");
        }
        // A known type missing a required field.
        assert_eq!(
            SdkEvent::parse(r#"{"type":"session.status","properties":{"status":{"type":"idle"}}}"#),
            other("session.status")
        );
        assert_eq!(
            SdkEvent::parse(r#"{"type":"session.idle"}"#),
            other("session.idle")
        );
    }
}
