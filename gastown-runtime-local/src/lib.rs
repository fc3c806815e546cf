//! gastown's [`ContainerRuntime`](gastown_core::ContainerRuntime) on host processes: the
//! **local** backend (ARCHITECTURE.md, *Crates and actors*), the embedded default.
//!
//! A town's "container" is a directory, `<root>/<town>/`, plus the process groups the
//! runtime spawned for it. Container paths map under that directory
//! (`/agents/mayor/data` → `<root>/<town>/agents/mayor/data`), ports are the host's on
//! `127.0.0.1`, and every process runs in its own process group with exactly the
//! environment of its [`CommandSpec`](gastown_core::CommandSpec) — nothing is inherited
//! from this process. Stopping the container (or dropping the runtime) kills the groups.
//! Pausing it sends SIGSTOP to every live group (resuming: SIGCONT), so nothing in it gets
//! CPU while memory and sockets stay; while paused, `exec`, `spawn`, the file methods and
//! `endpoint` fail with `ContainerPaused`. A SIGTERM to a stopped group stays pending, so
//! every termination (stop, remove, a handle's kill) sends SIGCONT right after SIGTERM.
//!
//! What it does not isolate: processes share the host's user, network and filesystem (a
//! process can open any host path it is given); memory and pid limits in
//! [`ContainerOptions`](gastown_core::ContainerOptions) are not enforced; mounts are
//! symlinks, so `read_only` is not enforced either. Use the Docker backend for isolation.
//!
//! # Layout
//!
//! - `runtime`: [`LocalRuntime`] and its builder — the `ContainerRuntime` methods, the
//!   per-town directories and the stop/remove sequence ([`REMOVE_GRACE`]);
//! - `process`: [`LocalProcess`], the handle of a spawned process group (status, kill with
//!   a grace period, exit code);
//! - `programs`: resolving a bare program name (`kilo`, `git`) to a host binary — the map
//!   given to [`LocalRuntimeBuilder::with_program`] first, then the host `PATH` captured
//!   when the runtime was built;
//! - `paths`: container path → host path under `<root>/<town>/`, and the value a process
//!   gets for a [`Word`](gastown_core::Word);
//! - `mounts`: [`Mount`](gastown_core::Mount)s as symlinks, validated before any is made;
//! - `output`: a child's stdout and stderr as the bounded line channel of a
//!   [`SpawnedProcess`](gastown_core::SpawnedProcess) (at most 1024 lines buffered, lines
//!   of at most 64 KiB).
//!
//! It passes the whole conformance suite of `gastown_core::conformance` (see
//! `tests/conformance.rs`); the architecture around it is in the repository's
//! `ARCHITECTURE.md`.
//!
//! ```no_run
//! # async fn demo() -> gastown_core::Result<()> {
//! use gastown_core::{CommandSpec, ContainerOptions, ContainerRuntime, TownId};
//! use gastown_runtime_local::LocalRuntime;
//!
//! let rt = LocalRuntime::builder("/var/lib/gastown".into())
//!     .with_program("kilo", "/opt/kilo/bin/kilo")
//!     .build();
//! let town = TownId::new("demo")?;
//! rt.start(&town, &ContainerOptions::default()).await?;
//! let out = rt.exec(&town, &CommandSpec::new("echo").arg("hi")).await?;
//! assert_eq!(out.stdout, b"hi\n");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod adopt;
mod claim;
mod error;
mod mounts;
mod output;
mod paths;
mod process;
mod programs;
mod records;
mod runtime;

pub use error::LocalError;
pub use process::LocalProcess;
pub use runtime::{LocalRuntime, LocalRuntimeBuilder, REMOVE_GRACE};
