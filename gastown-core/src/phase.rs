//! The five startup phases of an agent.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One of the five steps every agent start runs, in this order:
/// `token → hydrate → worktrees → sdk → session` (ARCHITECTURE.md, *Phase path*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartupPhase {
    /// Resolve cached git credentials, mint the container token the agent is started with
    /// (local; no round trip — the Gastown cold-start analysis, recommendation 1) and build
    /// the agent's environment and config hash. Reported as `token_mint_ms`.
    Token,
    /// Restore the agent's `kilo.db` from its last snapshot, unless the container already
    /// holds one (newer). Reported as `db_hydrated` (Kilo Gastown PR #3122).
    Hydrate,
    /// Prepare the agent's workspace repository and, for a polecat, its worktree of its
    /// rig. The mayor's browse worktrees are background work, not part of this phase.
    /// Reported as `workspace_created_ms`.
    Worktrees,
    /// Start (or reuse, on an equal config hash) the agent's SDK server and wait until it
    /// is healthy. Reported as `sdk_ready`, ≈ 0 ms for a reused server (Kilo Gastown
    /// PR #3122).
    Sdk,
    /// Resume the remembered session (else the newest) or create one. Reported as
    /// `session_created` (Kilo Gastown PR #3122).
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
