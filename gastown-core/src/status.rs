//! The two status vocabularies of the seeds: the worker side's view of an agent, and the
//! container side's view of a process.

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
}
