//! [`SimulatedError`]: the simulated runtime's own failures, carried to callers inside
//! [`Error::Generic`](crate::Error::Generic) (runtime `simulated`) and reached with
//! [`Error::backend_error`](crate::Error::backend_error).

use std::sync::Arc;

/// What can go wrong inside the simulated runtime (a test double), beyond the typed
/// conditions every runtime shares (`ProgramNotFound`, `ContainerNotRunning`, …).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulatedError {
    /// `exec` of an installed program the simulator cannot run to completion (`sh`,
    /// `sleep`): such programs can only be spawned.
    #[error(
        "the simulated runtime cannot run {program:?} to completion; exec interprets mkdir, \
         rm, true and git (other programs can only be spawned)"
    )]
    CannotRun {
        /// The program's file name.
        program: String,
    },

    /// `exec` of an `sh -c` script that uses more of `sh` than the simulator interprets
    /// (lines of simple commands joined by `||`/`&&`, `set -e`, `$N`, `"$@"`).
    #[error("the simulated runtime cannot interpret this sh script: {reason}")]
    UnsupportedScript {
        /// What it met.
        reason: String,
    },

    /// Every port above the first was handed out (24 535 servers).
    #[error("out of simulated ports")]
    PortsExhausted,

    /// SQLite failed on a simulated `kilo.db` (also: the bytes are not a database).
    #[error("simulated kilo.db: {step}: {source}")]
    Database {
        /// The step (`open`, `read sessions`, …).
        step: &'static str,
        /// SQLite's error (its message says e.g. "file is not a database").
        #[source]
        source: rusqlite::Error,
    },

    /// Host I/O of a simulated `kilo.db` failed (its temporary directory or file).
    #[error("simulated kilo.db: {step}: {source}")]
    DatabaseIo {
        /// The step (`temp dir`, `copy`, `read back`).
        step: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Building the empty `kilo.db` failed once; every later call reports that first
    /// failure (the result is computed once per process), shared rather than copied.
    #[error("building the empty simulated kilo.db failed: {source}")]
    EmptyDatabase {
        /// The first failure.
        #[source]
        source: Arc<SimulatedError>,
    },
}

impl From<SimulatedError> for crate::Error {
    fn from(e: SimulatedError) -> Self {
        crate::Error::generic(super::runtime::RUNTIME, e)
    }
}
