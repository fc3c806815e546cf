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
        /// `town`, `agent` or `rig`.
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

    /// The container engine could not be reached.
    #[error("container engine at {socket} is unreachable: {message}")]
    EngineUnavailable {
        /// The socket or address tried.
        socket: String,
        /// What the client said.
        message: String,
    },

    /// Building the agent image failed.
    #[error("building the agent image failed: {message}\n--- build log (tail) ---\n{log_tail}")]
    ImageBuild {
        /// What failed.
        message: String,
        /// The last lines of the build log.
        log_tail: String,
    },

    /// A backend failure that fits no other variant.
    #[error("{runtime} runtime: {message}")]
    Runtime {
        /// The backend (`local`, `docker`, …).
        runtime: &'static str,
        /// What went wrong.
        message: String,
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
    /// An [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
