//! The `ensure_mayor` decision tree (ARCHITECTURE.md, *Decision tree*), with Kilo
//! Gastown's outcome names ([`EnsureDecision`], from Kilo Gastown PR #3122).
//!
//! The bug it fixes (Kilo Gastown PR #3122): `ensureMayor` short-circuited on remembered
//! fields ("the container says the mayor runs": `serverPort`, `sessionId`) while the SDK
//! server was gone, so the user had to refresh. Here a short circuit needs an observed
//! live process *and* a passing health probe.

use crate::report::EnsureDecision;
use crate::status::AgentStatus;

/// What the town observed of the mayor's SDK server it holds, right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerObservation {
    /// The SDK server's process is alive (checked on the real process, not a stored field).
    pub process_alive: bool,
    /// A health probe (`GET /global/health`) answered healthy.
    pub healthy: bool,
}

impl ServerObservation {
    /// True when the server can serve: alive and healthy.
    pub fn is_live(self) -> bool {
        self.process_alive && self.healthy
    }
}

/// Everything [`decide_ensure`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnsureObservation {
    /// The mayor's status in the town store, `None` when the store has no mayor row.
    pub stored_status: Option<AgentStatus>,
    /// The SDK server the town holds for the mayor, `None` when it holds none.
    pub server: Option<ServerObservation>,
}

/// Decides what `ensure_mayor` does:
///
/// | server held            | stored status                  | decision                |
/// |------------------------|--------------------------------|-------------------------|
/// | alive and healthy      | `idle`                         | `ShortCircuitIdle`      |
/// | alive and healthy      | anything else, or no row       | `ShortCircuitWarm`      |
/// | dead or unhealthy      | any                            | `SdkDeadRedispatch`     |
/// | none                   | `working`, `waiting`, `stalled`| `SdkDeadRedispatch`     |
/// | none                   | `idle`, `dead`, or no row      | `FreshDispatch`         |
///
/// A live server wins over the stored status: the observation is fresher than the row.
/// With no server held, a status saying the mayor ran means the town lost it (an SDK-dead
/// case worth counting apart from a plain fresh start).
pub fn decide_ensure(observation: &EnsureObservation) -> EnsureDecision {
    match (observation.server, observation.stored_status) {
        (Some(server), status) if server.is_live() => match status {
            Some(AgentStatus::Idle) => EnsureDecision::ShortCircuitIdle,
            _ => EnsureDecision::ShortCircuitWarm,
        },
        (Some(_), _) => EnsureDecision::SdkDeadRedispatch,
        (None, Some(AgentStatus::Working | AgentStatus::Waiting | AgentStatus::Stalled)) => {
            EnsureDecision::SdkDeadRedispatch
        }
        (None, Some(AgentStatus::Idle | AgentStatus::Dead) | None) => EnsureDecision::FreshDispatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUSES: [Option<AgentStatus>; 6] = [
        None,
        Some(AgentStatus::Idle),
        Some(AgentStatus::Working),
        Some(AgentStatus::Waiting),
        Some(AgentStatus::Stalled),
        Some(AgentStatus::Dead),
    ];

    fn server(process_alive: bool, healthy: bool) -> Option<ServerObservation> {
        Some(ServerObservation {
            process_alive,
            healthy,
        })
    }

    /// The expected decision, written out independently of `decide_ensure`'s match.
    fn expected(status: Option<AgentStatus>, server: Option<ServerObservation>) -> EnsureDecision {
        use EnsureDecision::*;
        match server {
            Some(s) if s.process_alive && s.healthy => {
                if status == Some(AgentStatus::Idle) {
                    ShortCircuitIdle
                } else {
                    ShortCircuitWarm
                }
            }
            Some(_) => SdkDeadRedispatch,
            None => match status {
                Some(AgentStatus::Working)
                | Some(AgentStatus::Waiting)
                | Some(AgentStatus::Stalled) => SdkDeadRedispatch,
                _ => FreshDispatch,
            },
        }
    }

    #[test]
    fn exhaustive_table() {
        let servers = [
            None,
            server(true, true),
            server(true, false),
            server(false, true),
            server(false, false),
        ];
        let mut seen = std::collections::HashSet::new();
        for status in STATUSES {
            for srv in servers {
                let obs = EnsureObservation {
                    stored_status: status,
                    server: srv,
                };
                let got = decide_ensure(&obs);
                assert_eq!(got, expected(status, srv), "{obs:?}");
                seen.insert(got);
            }
        }
        assert_eq!(seen.len(), 4, "every outcome is reachable");
    }

    #[test]
    fn a_process_that_answers_no_health_probe_is_dead() {
        let obs = EnsureObservation {
            stored_status: Some(AgentStatus::Waiting),
            server: server(true, false),
        };
        assert_eq!(decide_ensure(&obs), EnsureDecision::SdkDeadRedispatch);
    }
}
