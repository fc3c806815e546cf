//! The status vocabularies (ARCHITECTURE.md, *Vocabulary*): the worker side's view of an
//! agent ([`AgentStatus`]), the container side's view of a process ([`ProcessStatus`]) and
//! of the container ([`ContainerStatus`]), a bead's lifecycle ([`BeadStatus`]) and what a
//! bead is ([`BeadKind`]).
//!
//! The agent and process sets are Kilo Gastown's (the `waiting` mayor status comes from
//! Kilo Gastown #1450, so a mayor awaiting the user is not active work). Every stored name
//! is the `snake_case` of the variant, as `as_str` and `parse` spell it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An agent's status as the town (worker side) records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Not running a turn.
    Idle,
    /// Running a turn or dispatched and starting.
    Working,
    /// Alive and awaiting input (the mayor between user messages). Not active work.
    Waiting,
    /// Working but making no progress.
    Stalled,
    /// Its process is gone.
    Dead,
}

impl AgentStatus {
    /// The stored name (`idle`, `working`, `waiting`, `stalled`, `dead`).
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Idle => "idle",
            AgentStatus::Working => "working",
            AgentStatus::Waiting => "waiting",
            AgentStatus::Stalled => "stalled",
            AgentStatus::Dead => "dead",
        }
    }

    /// Parses a stored name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "idle" => AgentStatus::Idle,
            "working" => AgentStatus::Working,
            "waiting" => AgentStatus::Waiting,
            "stalled" => AgentStatus::Stalled,
            "dead" => AgentStatus::Dead,
            _ => return None,
        })
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A process's status as the container side sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatus {
    /// Spawned, not yet known to be serving.
    Starting,
    /// Alive.
    Running,
    /// Asked to stop, still alive.
    Stopping,
    /// Ended with the given exit code (`None` when killed by a signal).
    Exited(Option<i32>),
    /// Could not be started or was lost.
    Failed,
}

impl ProcessStatus {
    /// True while the process can still serve (`Starting`, `Running`, `Stopping`).
    pub fn is_alive(self) -> bool {
        matches!(
            self,
            ProcessStatus::Starting | ProcessStatus::Running | ProcessStatus::Stopping
        )
    }
}

/// A container's status as its runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerStatus {
    /// No container exists for the town.
    Absent,
    /// The container exists and runs.
    Running,
    /// The container exists but is not running (stopped, killed from outside, exited).
    Exited,
    /// The container exists and every process in it is frozen
    /// ([`ContainerRuntime::pause`](crate::ContainerRuntime::pause)): no CPU, memory and
    /// sockets kept, until [`resume`](crate::ContainerRuntime::resume).
    Paused,
}

/// A bead's status, as the town store keeps it (the `status` column of `beads`).
///
/// The five Kilo Gastown bead statuses. It lives here rather than in
/// [`store`](crate::store) so the pure [`policy`](crate::policy) module can read it
/// without importing store types; `gastown_core::store::BeadStatus` re-exports it.
///
/// The lifecycle the reconciler drives (`gastown_core::reconciler`): `open` → dispatched
/// `in_progress` → its polecat's commits checked `in_review` (a `merge_request` bead
/// opened for the refinery) → `closed`; `failed` once the dispatch attempts are used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BeadStatus {
    /// Waiting for an agent.
    Open,
    /// An agent works on it.
    InProgress,
    /// Done by its polecat, under review.
    InReview,
    /// Finished.
    Closed,
    /// Given up.
    Failed,
}

impl BeadStatus {
    /// The stored name (`open`, `in_progress`, `in_review`, `closed`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            BeadStatus::Open => "open",
            BeadStatus::InProgress => "in_progress",
            BeadStatus::InReview => "in_review",
            BeadStatus::Closed => "closed",
            BeadStatus::Failed => "failed",
        }
    }

    /// Parses a stored name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => BeadStatus::Open,
            "in_progress" => BeadStatus::InProgress,
            "in_review" => BeadStatus::InReview,
            "closed" => BeadStatus::Closed,
            "failed" => BeadStatus::Failed,
            _ => return None,
        })
    }

    /// True while the bead still wants work: not `closed` and not `failed` (the "live
    /// bead" of Kilo Gastown PR #3151's unhook rule).
    pub fn is_live(self) -> bool {
        !matches!(self, BeadStatus::Closed | BeadStatus::Failed)
    }
}

impl fmt::Display for BeadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a bead is (the `kind` column of `beads`; ARCHITECTURE.md, *Vocabulary*).
///
/// Kilo Gastown has more kinds (`convoy`, …); these are the two the town dispatches: an
/// `issue` goes to a polecat, a `merge_request` (opened by the reconciler once an issue's
/// branch has commits) to a refinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BeadKind {
    /// A unit of work for a polecat.
    Issue,
    /// A branch to review and merge, for a refinery.
    MergeRequest,
}

impl BeadKind {
    /// The stored name (`issue`, `merge_request`).
    pub fn as_str(self) -> &'static str {
        match self {
            BeadKind::Issue => "issue",
            BeadKind::MergeRequest => "merge_request",
        }
    }

    /// Parses a stored name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "issue" => Some(BeadKind::Issue),
            "merge_request" => Some(BeadKind::MergeRequest),
            _ => None,
        }
    }
}

impl fmt::Display for BeadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bead_names_round_trip() {
        use BeadStatus::*;
        for s in [Open, InProgress, InReview, Closed, Failed] {
            assert_eq!(BeadStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
            assert_eq!(s.is_live(), !matches!(s, Closed | Failed));
        }
        for k in [BeadKind::Issue, BeadKind::MergeRequest] {
            assert_eq!(BeadKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert_eq!(BeadKind::parse("convoy"), None);
        assert_eq!(BeadStatus::parse("Open"), None);
    }
}
