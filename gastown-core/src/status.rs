//! The status vocabularies (ARCHITECTURE.md, *Vocabulary*): the worker side's view of an
//! agent ([`AgentStatus`]), the container side's view of a process ([`ProcessStatus`]) and
//! of the container ([`ContainerStatus`]), and a bead's lifecycle ([`BeadStatus`]).
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

impl fmt::Display for BeadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
