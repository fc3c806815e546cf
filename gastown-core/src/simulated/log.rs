//! The simulated runtime's event log: what happened, to which town, over which stretch of
//! virtual time.

use std::fmt;
use std::time::Duration;

use crate::ids::TownId;
use crate::path::ContainerPath;

/// An SDK server call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdkOp {
    /// `GET /global/health`.
    Health,
    /// `GET /session`.
    ListSessions,
    /// `POST /session`.
    CreateSession,
    /// `POST /session/{id}/message` with `noReply`.
    SendNoReply,
}

impl SdkOp {
    /// The operation name used in [`Error::Sdk`](crate::Error::Sdk), as the HTTP client
    /// names it (`health`, `list_sessions`, `create_session`, `send_no_reply`).
    pub fn name(self) -> &'static str {
        match self {
            SdkOp::Health => "health",
            SdkOp::ListSessions => "list_sessions",
            SdkOp::CreateSession => "create_session",
            SdkOp::SendNoReply => "send_no_reply",
        }
    }

    /// The HTTP request line the real client sends, for error messages.
    pub(super) fn request(self) -> &'static str {
        match self {
            SdkOp::Health => "GET /global/health",
            SdkOp::ListSessions => "GET /session",
            SdkOp::CreateSession => "POST /session",
            SdkOp::SendNoReply => "POST /session/{id}/message",
        }
    }
}

impl fmt::Display for SdkOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a [`SimEvent`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimEventKind {
    /// `start` created the container (or restarted a stopped one).
    ContainerCreate,
    /// `start` adopted the running container.
    ContainerAdopt,
    /// `stop`, or the stopping part of `remove`, of a running container.
    ContainerStop,
    /// `remove` deleted the container and its files.
    ContainerRemove,
    /// `pause` froze the running container.
    ContainerPause,
    /// `resume` let the paused container continue.
    ContainerResume,
    /// A test killed the container from outside ([`kill_container`]).
    ///
    /// [`kill_container`]: super::SimulatedRuntime::kill_container
    ContainerKilled,
    /// `exec` of a command (also one that failed to run: then `ok` is false).
    Exec {
        /// The program's file name (`git`, `mkdir`).
        program: String,
        /// For git, its subcommand (`clone`, `worktree`, …).
        sub: Option<String>,
        /// The command's working directory (`-C` applied for git).
        cwd: Option<ContainerPath>,
    },
    /// `spawn` started a process (instant; an SDK server then boots, see
    /// [`SimEventKind::SdkReady`]).
    Spawn {
        /// The program's file name (`kilo`, `sh`).
        program: String,
        /// Its simulated pid.
        pid: u32,
        /// For an SDK server, its data dir (`XDG_DATA_HOME`), which names the agent.
        data_dir: Option<ContainerPath>,
        /// For an SDK server, its JSON config (`<PROGRAM>_CONFIG_CONTENT`), when set.
        config: Option<String>,
    },
    /// An SDK server printed its listening line. The event spans its boot: `start` is the
    /// spawn, `end` the line.
    SdkReady {
        /// Its pid.
        pid: u32,
        /// The port it listens on.
        port: u16,
        /// Its data dir.
        data_dir: ContainerPath,
    },
    /// An SDK server exited during boot (its `kilo.db` was not a database). Spans its boot.
    SdkBootFailed {
        /// Its pid.
        pid: u32,
        /// Its data dir.
        data_dir: ContainerPath,
        /// What it printed.
        reason: String,
    },
    /// A call on an SDK server; a refused one (server not listening) takes no time.
    SdkCall {
        /// The call.
        op: SdkOp,
        /// The server's port.
        port: u16,
        /// The server's data dir.
        data_dir: ContainerPath,
    },
    /// `get_file` or `stat` (so also `file_exists`); `ok` is false for a missing file.
    FileRead {
        /// The path.
        path: ContainerPath,
    },
    /// `put_file`; a write to [`TOKEN_REFRESH_PATH`](super::TOKEN_REFRESH_PATH) is a live
    /// token refresh.
    FileWrite {
        /// The path.
        path: ContainerPath,
    },
    /// [`ProcessHandle::kill`](crate::ProcessHandle::kill) of a live process.
    ProcessKill {
        /// Its pid.
        pid: u32,
        /// Its program's file name.
        program: String,
    },
    /// A test killed a process from outside, like `kill -9` ([`kill_process`]).
    ///
    /// [`kill_process`]: super::SimulatedRuntime::kill_process
    ProcessKilled {
        /// Its pid.
        pid: u32,
        /// Its program's file name.
        program: String,
    },
}

/// One thing that happened in the simulated runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    /// When it started: virtual time since the runtime was created.
    pub start: Duration,
    /// When it ended: virtual time since the runtime was created.
    pub end: Duration,
    /// The town it happened in.
    pub town: TownId,
    /// What happened.
    pub kind: SimEventKind,
    /// False when the operation returned an error (or a command exited non-zero).
    pub ok: bool,
}

impl SimEvent {
    /// `end - start`.
    pub fn duration(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }

    /// The agent the event belongs to, read from the path it touched: the `<agent>` of
    /// `/agents/<agent>/…` or `/workspace/<agent>/…` (an SDK server's data dir, a file, a
    /// command's cwd). `None` for container events and paths of no one agent (`/rigs/…`).
    pub fn agent(&self) -> Option<&str> {
        let path = match &self.kind {
            SimEventKind::Exec { cwd, .. } => cwd.as_ref()?,
            SimEventKind::Spawn { data_dir, .. } => data_dir.as_ref()?,
            SimEventKind::SdkReady { data_dir, .. }
            | SimEventKind::SdkBootFailed { data_dir, .. }
            | SimEventKind::SdkCall { data_dir, .. } => data_dir,
            SimEventKind::FileRead { path } | SimEventKind::FileWrite { path } => path,
            _ => return None,
        };
        agent_of(path)
    }
}

/// The `<agent>` of `/agents/<agent>/…` or `/workspace/<agent>/…`.
pub(super) fn agent_of(path: &ContainerPath) -> Option<&str> {
    let mut parts = path.components();
    match parts.next() {
        Some("agents" | "workspace") => parts.next(),
        _ => None,
    }
}
