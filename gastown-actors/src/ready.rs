//! What callers get back from the actor tree.

use gastown_core::{AgentId, StartupReport};

/// Whether the mayor can browse its rigs' code yet (`ARCHITECTURE.md`, *Phase path*: browse worktrees are set
/// up in the background, and the mayor's status says when code browsing is still warming).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowseState {
    /// Setup or refresh is under way; an earlier checkout may already be there.
    Warming,
    /// The checkout is up to date.
    Ready,
    /// Setup failed (the message says why); the mayor runs without this rig's code.
    Failed(String),
}

/// The mayor is ready: its SDK server answers and a session is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MayorReady {
    /// The SDK server's base URL as reachable from this process (`http://host:port`). It
    /// requires the agent's password, which never leaves the town.
    pub endpoint: String,
    /// The open session's id (`ses_…`).
    pub session_id: String,
    /// What the start did and how long each phase took.
    pub report: StartupReport,
}

/// A live agent as its AgentActor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// The agent.
    pub agent: AgentId,
    /// The SDK server's base URL, when one runs.
    pub endpoint: Option<String>,
    /// The SDK server's process id as seen from the host, when known.
    pub pid: Option<u32>,
    /// The session in use.
    pub session_id: Option<String>,
    /// The config hash of the running SDK server.
    pub config_hash: Option<String>,
    /// The mayor's code browsing: `None` before its first setup (or for workers),
    /// `Warming` while browse worktrees are set up or refreshed in the background.
    pub browse: Option<BrowseState>,
}
