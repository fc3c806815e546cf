//! [`LocalError`]: the local runtime's own failures, carried to callers inside
//! [`gastown_core::Error::Generic`] (runtime `local`) and reached with
//! [`gastown_core::Error::backend_error`].

use gastown_core::ProcessStatus;

/// The runtime's name in errors and reports.
pub(crate) const RUNTIME: &str = "local";

/// What can go wrong in the local runtime beyond the conditions every runtime shares
/// (`ProgramNotFound`, `ContainerNotRunning`, `Io`, …).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// A process id does not fit the kernel's `pid_t` (never seen; checked, not assumed).
    #[error("pid {pid} out of range")]
    PidOutOfRange {
        /// The process id.
        pid: u32,
    },

    /// A signal could not be sent to a process group (not ours, or not permitted).
    #[error("{signal} to process group {pgid} ({program}): {source}")]
    Signal {
        /// The signal.
        signal: nix::sys::signal::Signal,
        /// The process group.
        pgid: i32,
        /// The group leader's program.
        program: String,
        /// The kernel's error.
        #[source]
        source: nix::errno::Errno,
    },

    /// A process outlived SIGKILL by the kill wait (stuck in uninterruptible I/O, or it
    /// left its process group).
    #[error("{program} (pid {pid}) still alive {} s after SIGKILL", waited.as_secs())]
    StillAlive {
        /// The program.
        program: String,
        /// Its pid.
        pid: u32,
        /// How long the runtime waited.
        waited: std::time::Duration,
    },

    /// A labelled process's lock file is held by a process the runtime has no record of
    /// (an agent's data directory in use by a server another program started): nothing is
    /// killed, the spawn is refused.
    #[error("lock {path} is held by another process")]
    Locked {
        /// The lock file (container path).
        path: String,
    },

    /// A command run to completion ended without an exit code of its own (it was
    /// stopped or killed while `exec` waited for it).
    #[error("{program} ended as {status:?}")]
    NoExitCode {
        /// The program.
        program: String,
        /// How it ended.
        status: ProcessStatus,
    },
}

impl From<LocalError> for gastown_core::Error {
    fn from(e: LocalError) -> Self {
        gastown_core::Error::generic(RUNTIME, e)
    }
}
