//! [`Error`]: the Docker runtime's own failures, each keeping the engine's error as its
//! source. Callers get them inside [`gastown_core::Error::Generic`] (runtime `docker`) and
//! reach them with [`gastown_core::Error::backend_error`]:
//!
//! ```no_run
//! # async fn demo() {
//! use gastown_runtime_docker::{DockerOptions, DockerRuntime, Error as DockerError};
//!
//! if let Err(err) = DockerRuntime::connect(DockerOptions::default()).await {
//!     match err.backend_error::<DockerError>() {
//!         Some(DockerError::EngineUnavailable { socket, .. }) => {
//!             eprintln!("start Docker at {}", socket.display())
//!         }
//!         Some(DockerError::ImageBuild { log_tail, .. }) => eprintln!("{log_tail}"),
//!         _ => eprintln!("{err}"),
//!     }
//! }
//! # }
//! ```

use std::path::PathBuf;

/// The runtime's name in errors and reports.
pub(crate) const RUNTIME: &str = "docker";

/// A boxed cause of an image build failure (I/O, a task, the engine).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong talking to the Docker Engine, beyond the conditions every runtime
/// shares (`ContainerNotRunning`, `FileNotFound`, `ProgramNotFound`, `InvalidConfig`, …,
/// which stay core variants).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nothing answers at the engine socket (no engine, a wrong path, not a socket).
    #[error("container engine at {} is unreachable: {source}", socket.display())]
    EngineUnavailable {
        /// The socket tried.
        socket: PathBuf,
        /// What the client said.
        #[source]
        source: bollard::errors::Error,
    },

    /// Building the agent image failed: an input is missing on the host (kilo,
    /// busybox-static, git) or the engine's build failed.
    #[error(
        "building the agent image failed: {message}{}\n--- build log (tail) ---\n{log_tail}",
        cause_suffix(.source.as_deref())
    )]
    ImageBuild {
        /// What failed.
        message: String,
        /// The last lines of the assembly or build log.
        log_tail: String,
        /// The underlying error, when there is one (I/O, the engine).
        #[source]
        source: Option<BoxError>,
    },

    /// An engine request failed.
    #[error("{operation} {target}: {source}")]
    Api {
        /// What was being done (`creating container`, `listing volumes`, …).
        operation: &'static str,
        /// The container, exec, volume or path it was done to (may be empty).
        target: String,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },

    /// The engine refused a town's container configuration (HTTP 400: a mount or limit
    /// it does not accept).
    #[error("the engine refused container {container}: {source}")]
    Refused {
        /// The container.
        container: String,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },

    /// A container or volume with the town's name exists but lacks gastown's
    /// `gastown.managed=true` label: not ours to use.
    #[error(
        "a {kind} named {name} exists but gastown does not manage it (no \
         gastown.managed=true label); remove or rename it"
    )]
    NotManaged {
        /// `container` or `volume`.
        kind: &'static str,
        /// Its name.
        name: String,
    },

    /// Concurrent starts (or removes) kept changing the container between two reads.
    #[error(
        "container {name} kept changing under concurrent starts; gave up after {attempts} attempts"
    )]
    StartContention {
        /// The container.
        name: String,
        /// How many rounds were tried.
        attempts: usize,
    },

    /// A container exited right after it started (its main process died).
    #[error(
        "container {id} exited right after it started (exit code {exit_code:?}, error {error:?})"
    )]
    ExitedAtStart {
        /// The container id.
        id: String,
        /// Its exit code, when the engine recorded one.
        exit_code: Option<i64>,
        /// The engine's error text for the container (empty when none).
        error: String,
    },

    /// A volume stayed in use while `remove` retried.
    #[error("volume {volume} stayed in use after {attempts} attempts to remove it")]
    VolumeInUse {
        /// The volume.
        volume: String,
        /// How many attempts were made.
        attempts: u32,
    },

    /// The engine attached no output stream to an exec started attached.
    #[error("the engine detached an attached exec")]
    Detached,

    /// An exec's output ended but the engine never recorded its exit.
    #[error("exec {exec} ended its output but the engine recorded no exit code")]
    NoExitCode {
        /// The exec id.
        exec: String,
    },

    /// The engine could not run the wrapper's `/bin/sh` (an image without it).
    #[error("the engine could not run /bin/sh in {container} (does the image have it?): {line}")]
    NoShell {
        /// The container.
        container: String,
        /// The engine's last output line.
        line: String,
    },

    /// A spawned program ended before the wrapper announced its pid.
    #[error("{program} ended before it started (exit code {exit_code:?}): {output}")]
    EndedBeforeStart {
        /// The program.
        program: String,
        /// Its exit code, when the engine recorded one.
        exit_code: Option<i32>,
        /// Its first output lines, ` | `-joined.
        output: String,
    },

    /// A recorded spawn (`spawn_labelled`) could not write its process record in the
    /// container (`/run/gastown/processes`: no `mkdir`/`mv` on the command's `PATH`, a full
    /// or read-only filesystem); the program was not started.
    #[error("{program} was not started: its process record could not be written in {container}")]
    RecordFailed {
        /// The program.
        program: String,
        /// The container.
        container: String,
    },

    /// A process is still alive after SIGKILL and the kill wait.
    #[error("pid {pid} in {container} is still alive after SIGKILL")]
    StillAlive {
        /// The in-container pid.
        pid: u32,
        /// The container.
        container: String,
    },

    /// A file's parent directory vanished between creating it and writing the file.
    #[error("{parent} vanished while writing {path}")]
    ParentVanished {
        /// The parent directory.
        parent: String,
        /// The file.
        path: String,
    },

    /// `get_file` of something that is not a regular file (a directory, a device).
    #[error("{path} in {container} is not a regular file")]
    NotAFile {
        /// The path.
        path: String,
        /// The container.
        container: String,
    },

    /// `get_file` followed more symlinks than its loop guard allows.
    #[error("{path} in {container}: too many levels of symbolic links")]
    SymlinkLoop {
        /// The path.
        path: String,
        /// The container.
        container: String,
    },

    /// The container has no network address to reach a port at.
    #[error("container {container} has no network address")]
    NoAddress {
        /// The container.
        container: String,
    },
}

/// `": <cause>"`, or nothing when there is no cause.
fn cause_suffix(source: Option<&(dyn std::error::Error + Send + Sync + 'static)>) -> String {
    source.map(|e| format!(": {e}")).unwrap_or_default()
}

impl Error {
    /// An [`Error::Api`].
    pub(crate) fn api(
        operation: &'static str,
        target: impl Into<String>,
        source: bollard::errors::Error,
    ) -> Self {
        Error::Api {
            operation,
            target: target.into(),
            source,
        }
    }
}

impl From<Error> for gastown_core::Error {
    fn from(e: Error) -> Self {
        gastown_core::Error::generic(RUNTIME, e)
    }
}

/// The HTTP status of an engine reply, when the error is one.
pub(crate) fn status_of(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// True when the engine answered 404 (no such container, exec, image or path).
pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    status_of(err) == Some(404)
}
