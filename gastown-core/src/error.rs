//! The error type of `gastown-core`, shared by every [`ContainerRuntime`](crate::ContainerRuntime)
//! backend.

use std::path::PathBuf;

use crate::ids::{IdRejection, TownId};

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in gastown's core and runtimes. Messages never carry
/// secrets (passwords, tokens).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An id failed validation.
    #[error("invalid {kind} id {value:?}: {reason}")]
    InvalidId {
        /// `town`, `agent`, `rig` or `bead`.
        kind: &'static str,
        /// The rejected value (at most 80 characters of it).
        value: String,
        /// Why.
        reason: IdRejection,
    },

    /// A container path failed validation.
    #[error("invalid container path {path:?}: {reason}")]
    InvalidPath {
        /// The rejected path (at most 200 characters of it).
        path: String,
        /// Why.
        reason: &'static str,
    },

    /// Configuration is malformed or inconsistent.
    #[error("invalid configuration: {message}")]
    InvalidConfig {
        /// What is wrong.
        message: String,
    },

    /// The town has no running container.
    #[error("town {town} has no running container")]
    ContainerNotRunning {
        /// The town.
        town: TownId,
    },

    /// The town's container is paused: nothing in it runs until
    /// [`resume`](crate::ContainerRuntime::resume).
    #[error("town {town}'s container is paused")]
    ContainerPaused {
        /// The town.
        town: TownId,
    },

    /// The runtime does not offer this operation (e.g. `pause` on a runtime whose
    /// [`can_pause`](crate::ContainerRuntime::can_pause) is false).
    #[error("the {runtime} runtime does not support {operation}")]
    Unsupported {
        /// The runtime (`local`, `docker`, `simulated`, …).
        runtime: &'static str,
        /// The operation (`pause`, `resume`).
        operation: &'static str,
    },

    /// A program could not be found in the container.
    #[error("program {program:?} not found{hint}")]
    ProgramNotFound {
        /// The program.
        program: String,
        /// How to fix it, starting with "; " (empty when there is nothing to say).
        hint: String,
    },

    /// A file does not exist in the container.
    #[error("file {path} not found in the container")]
    FileNotFound {
        /// The path.
        path: String,
    },

    /// A command ran and exited non-zero.
    #[error("{program} exited with code {exit_code}: {stderr_tail}")]
    CommandFailed {
        /// The program.
        program: String,
        /// Its exit code.
        exit_code: i32,
        /// The tail of its stderr.
        stderr_tail: String,
    },

    /// The kilo binary was not found.
    #[error(
        "kilo binary not found (looked in: {searched}); install it with `scripts/install-kilo.sh` \
         (puts it in .tools/kilo), or set GASTOWN_KILO_BIN to its path"
    )]
    KiloNotFound {
        /// The places searched, `, `-separated.
        searched: String,
    },

    /// A backend failure that fits no other variant. `source` is the backend's own error
    /// type (`gastown_runtime_docker::Error`, the local runtime's `LocalError`, the
    /// simulated runtime's `SimulatedError`), so its typed conditions stay reachable
    /// through [`Error::backend_error`] without this crate naming any backend. The shape
    /// is object_store's `Generic { store, source }`.
    #[error("{runtime} runtime: {source}")]
    Generic {
        /// The backend (`local`, `docker`, `simulated`, …).
        runtime: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// An SDK server process ended before it printed its listening line (a bad config, a
    /// corrupt `kilo.db`, a crash at boot).
    #[error("SDK server {program} exited before listening; last output: {last_output}")]
    ServerExited {
        /// The program (`kilo`, …).
        program: String,
        /// Its last output lines, ` | `-joined (empty when it printed nothing).
        last_output: String,
    },

    /// A blocking task (file or SQLite work moved off the async threads) panicked or was
    /// cancelled.
    #[error("{context}: {source}")]
    Task {
        /// What the task was doing.
        context: String,
        /// Tokio's report of how the task ended.
        #[source]
        source: tokio::task::JoinError,
    },

    /// An SDK server call failed (transport, timeout, status or malformed body).
    #[error("SDK server {operation} failed: {message}")]
    Sdk {
        /// The call (`health`, `list_sessions`, …).
        operation: &'static str,
        /// What went wrong (never the password).
        message: String,
        /// True when the call timed out.
        timed_out: bool,
        /// The HTTP status, when one was received.
        status: Option<u16>,
    },

    /// A container token could not be minted or failed verification.
    #[error("container token: {message}")]
    Token {
        /// What went wrong.
        message: String,
    },

    /// The town store (SQLite) failed.
    #[error("town store: {context}: {source}")]
    Store {
        /// What was being done.
        context: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },

    /// The town store has no row for this agent (a setter was called on an unknown agent).
    #[error("agent {agent} is not in the town store")]
    UnknownAgent {
        /// The agent.
        agent: crate::ids::AgentId,
    },

    /// A queued reconciler event does not parse: an unknown kind, or a payload that is not
    /// that kind's JSON shape (a hand-edited row, or one written by another version). The
    /// reconciler marks it processed and logs it once rather than retrying it on every
    /// tick (Kilo Gastown PR #3047).
    #[error("reconciler event of kind {kind:?} does not parse: {source}")]
    InvalidEvent {
        /// The stored kind (at most 80 characters of it).
        kind: String,
        /// Why the payload was refused (unknown variant, missing field, bad id, bad JSON).
        #[source]
        source: serde_json::Error,
    },

    /// A snapshot could not be taken, verified or restored. The previous snapshot is intact.
    #[error("snapshot {path}: {message}")]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A host I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The backend's own error inside an [`Error::Generic`], when it is an `E`: how a
    /// caller reaches a backend-specific condition as a typed variant. `None` for every
    /// other variant, and for a `Generic` of another backend.
    ///
    /// ```
    /// use gastown_core::Error;
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("engine asleep")]
    /// struct EngineAsleep;
    ///
    /// let err = Error::Generic { runtime: "example", source: Box::new(EngineAsleep) };
    /// assert!(err.backend_error::<EngineAsleep>().is_some());
    /// assert!(err.backend_error::<std::io::Error>().is_none());
    /// ```
    pub fn backend_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Error::Generic { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// An [`Error::Generic`] from `runtime`'s own error.
    pub fn generic(
        runtime: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Generic {
            runtime,
            source: Box::new(source),
        }
    }

    /// An [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
