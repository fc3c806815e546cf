//! gastown's [`ContainerRuntime`](gastown_core::ContainerRuntime) on host processes: the
//! **local** backend (DESIGN.md §6), the embedded default.
//!
//! A town's "container" is a directory, `<root>/<town>/`, plus the process groups the
//! runtime spawned for it. Container paths map under that directory
//! (`/agents/mayor/data` → `<root>/<town>/agents/mayor/data`), ports are the host's on
//! `127.0.0.1`, and every process runs in its own process group with exactly the
//! environment of its [`CommandSpec`](gastown_core::CommandSpec) — nothing is inherited
//! from this process. Stopping the container (or dropping the runtime) kills the groups.
//!
//! What it does not isolate: processes share the host's user, network and filesystem (a
//! process can open any host path it is given); memory and pid limits in
//! [`ContainerOptions`](gastown_core::ContainerOptions) are not enforced; mounts are
//! symlinks, so `read_only` is not enforced either. Use the Docker backend for isolation.
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

mod error;
mod mounts;
mod output;
mod paths;
mod process;
mod programs;
mod runtime;

pub use error::LocalError;
pub use process::LocalProcess;
pub use runtime::{LocalRuntime, LocalRuntimeBuilder, REMOVE_GRACE};
