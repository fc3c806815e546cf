//! The five startup phases of an agent.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One of the five steps every agent start runs, in this order:
/// `token → hydrate → worktrees → sdk → session` (ARCHITECTURE.md, *Phase path*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartupPhase {
    /// Mint the container token the agent is started with (local; no round trip).
    Token,
    /// Restore the agent's `kilo.db` from its last snapshot.
    Hydrate,
    /// Prepare the agent's workspace and git worktrees.
    Worktrees,
    /// Start (or reuse) the agent's SDK server and wait until it is healthy.
    Sdk,
    /// Resume the agent's newest session, or create one.
    Session,
}

impl StartupPhase {
    /// All phases in the order they run.
    pub const ALL: [StartupPhase; 5] = [
        StartupPhase::Token,
        StartupPhase::Hydrate,
        StartupPhase::Worktrees,
        StartupPhase::Sdk,
        StartupPhase::Session,
    ];

    /// The phase's name as used in reports and JSON (`token`, `hydrate`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            StartupPhase::Token => "token",
            StartupPhase::Hydrate => "hydrate",
            StartupPhase::Worktrees => "worktrees",
            StartupPhase::Sdk => "sdk",
            StartupPhase::Session => "session",
        }
    }
}

impl fmt::Display for StartupPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
