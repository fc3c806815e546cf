//! [`ReconcileEvent`]: what happened, as the actors queue it for the reconciler.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{AgentId, BeadId};

/// What happened, as queued in the town store's events table: a kind ([`kind`](Self::kind))
/// and a JSON payload ([`payload`](Self::payload)), tagged with the bead and agent it is
/// about so that deleting either deletes the event too (Kilo Gastown PR #3047).
///
/// The payload is the event's serde JSON, `kind` included:
/// `{"kind":"dispatch_failed","bead":"b-1","agent":"polecat-1","error":"…","maybe_accepted":false}`.
/// [`parse`](Self::parse) takes the stored kind column as authoritative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReconcileEvent {
    /// A dispatch of `bead` to `agent` failed. `maybe_accepted`: the error came after the
    /// start/prompt request was sent (a timeout after the send), so the agent may be
    /// running it — Kilo Gastown PR #3151: it stays `working`, and the stale-heartbeat rule
    /// of [`sweep`](super::sweep) cleans up if it is not.
    DispatchFailed {
        /// The bead that was being dispatched.
        bead: BeadId,
        /// The agent it was dispatched to.
        agent: AgentId,
        /// What went wrong (kept as the bead's `last_error`; never a secret).
        error: String,
        /// True when the request may have reached the agent before the error.
        maybe_accepted: bool,
    },
    /// The agent's turn on `bead` ended and its worktree was inspected: `commits` new
    /// commits on `branch` over the rig's default branch, `head` the branch tip.
    WorkChecked {
        /// The bead the turn worked on.
        bead: BeadId,
        /// The agent whose turn ended.
        agent: AgentId,
        /// The branch inspected.
        branch: String,
        /// New commits on `branch` over the rig's default branch.
        commits: u32,
        /// The tip commit of `branch`, when it exists.
        head: Option<String>,
    },
    /// The agent exited (idle exit, crash, drain): its hook is released.
    AgentExited {
        /// The agent that exited.
        agent: AgentId,
    },
}

impl ReconcileEvent {
    /// The stored kind: `dispatch_failed`, `work_checked` or `agent_exited`.
    pub fn kind(&self) -> &'static str {
        match self {
            ReconcileEvent::DispatchFailed { .. } => "dispatch_failed",
            ReconcileEvent::WorkChecked { .. } => "work_checked",
            ReconcileEvent::AgentExited { .. } => "agent_exited",
        }
    }

    /// The bead it is about (the events table's `bead_id`), if any.
    pub fn bead(&self) -> Option<&BeadId> {
        match self {
            ReconcileEvent::DispatchFailed { bead, .. }
            | ReconcileEvent::WorkChecked { bead, .. } => Some(bead),
            ReconcileEvent::AgentExited { .. } => None,
        }
    }

    /// The agent it is about (the events table's `agent_id`), if any.
    pub fn agent(&self) -> Option<&AgentId> {
        match self {
            ReconcileEvent::DispatchFailed { agent, .. }
            | ReconcileEvent::WorkChecked { agent, .. }
            | ReconcileEvent::AgentExited { agent } => Some(agent),
        }
    }

    /// The JSON payload to store (the events table's `payload`), `kind` included.
    pub fn payload(&self) -> String {
        // Ids, strings, integers, booleans and options only: serde_json cannot fail on
        // them (it fails on maps with non-string keys and on failing custom impls).
        serde_json::to_string(self).expect("a ReconcileEvent always serializes to JSON")
    }

    /// Parses a stored row: `kind` (authoritative, it replaces any `kind` in the payload)
    /// and its JSON `payload`. Unknown payload fields are ignored.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] (naming at most 80 characters of `kind`) when `payload` is
    /// not a JSON object, `kind` is unknown, a field is missing or of the wrong type, or an
    /// id in it does not validate.
    pub fn parse(kind: &str, payload: &str) -> Result<ReconcileEvent> {
        let invalid = |source| Error::InvalidEvent {
            kind: kind.chars().take(80).collect(),
            source,
        };
        let mut value: serde_json::Value = serde_json::from_str(payload).map_err(invalid)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("kind".to_owned(), serde_json::Value::from(kind));
        }
        serde_json::from_value(value).map_err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<ReconcileEvent> {
        let bead = BeadId::new("bd-a3f8.1").unwrap();
        let agent = AgentId::new("polecat-1").unwrap();
        vec![
            ReconcileEvent::DispatchFailed {
                bead: bead.clone(),
                agent: agent.clone(),
                error: "connection refused \"quoted\"".into(),
                maybe_accepted: true,
            },
            ReconcileEvent::WorkChecked {
                bead,
                agent: agent.clone(),
                branch: "polecat/bd-a3f8.1".into(),
                commits: 3,
                head: Some("0123abc".into()),
            },
            ReconcileEvent::AgentExited { agent },
        ]
    }

    #[test]
    fn every_kind_round_trips_through_kind_and_payload() {
        for event in events() {
            let parsed = ReconcileEvent::parse(event.kind(), &event.payload()).unwrap();
            assert_eq!(parsed, event);
            assert_eq!(event.agent().map(AgentId::as_str), Some("polecat-1"));
        }
        let kinds: Vec<&str> = events().iter().map(ReconcileEvent::kind).collect();
        assert_eq!(kinds, ["dispatch_failed", "work_checked", "agent_exited"]);
        assert!(events()[2].bead().is_none());
    }

    #[test]
    fn the_kind_column_wins_and_extra_fields_are_ignored() {
        let parsed = ReconcileEvent::parse(
            "agent_exited",
            r#"{"kind":"work_checked","agent":"polecat-2","extra":1}"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            ReconcileEvent::AgentExited {
                agent: AgentId::new("polecat-2").unwrap()
            }
        );
    }

    #[test]
    fn bad_rows_are_invalid_event_errors() {
        let cases = [
            ("agent_exited", "not json"),
            ("agent_exited", "[1]"),
            ("agent_exited", "{}"),
            ("agent_exited", r#"{"agent":"Bad Id"}"#),
            ("bead_updated", r#"{"agent":"polecat-1"}"#),
            (
                "work_checked",
                r#"{"bead":"b","agent":"a","branch":"x","commits":-1}"#,
            ),
        ];
        for (kind, payload) in cases {
            match ReconcileEvent::parse(kind, payload) {
                Err(Error::InvalidEvent { kind: k, .. }) => assert_eq!(k, kind),
                other => panic!("{kind} {payload}: expected InvalidEvent, got {other:?}"),
            }
        }
        let long = "k".repeat(500);
        match ReconcileEvent::parse(&long, "{}") {
            Err(Error::InvalidEvent { kind, .. }) => assert_eq!(kind.len(), 80),
            other => panic!("{other:?}"),
        }
    }
}
