//! gastown's [`ContainerRuntime`](gastown_core::ContainerRuntime) on a Docker Engine, through
//! `bollard`. Where it sits among the backends: `ARCHITECTURE.md` (vocabulary) and the
//! [`ContainerRuntime`](gastown_core::ContainerRuntime) backends table.
//!
//! ```no_run
//! # async fn demo() -> gastown_core::Result<()> {
//! use gastown_core::{ContainerOptions, ContainerRuntime, TownId};
//! use gastown_runtime_docker::{DockerOptions, DockerRuntime};
//!
//! let rt = DockerRuntime::connect(DockerOptions::default()).await?;
//! let town = TownId::new("demo")?;
//! rt.start(&town, &ContainerOptions::default()).await?;
//! # Ok(()) }
//! ```
//!
//! # Pause
//!
//! `pause` and `resume` are the engine's pause and unpause API (the cgroup freezer);
//! `status` reads `State.Paused`. While paused the engine refuses execs, so `exec`,
//! `spawn`, the file methods and `endpoint` fail with `ContainerPaused`, and a process
//! handle's `kill` cannot run (resume first). `stop` of a paused container works (the
//! engine's stop handles it), and so does `remove` (a forced remove); `start` of a paused
//! container unpauses and adopts it.
//!
//! # Image
//!
//! No registry is assumed: [`AgentImage::Build`] assembles a `FROM scratch` context from the
//! host (static busybox, kilo with its glibc libraries, git) and builds it through the
//! engine, tagged `gastown-agent:<hash of the inputs>`; [`AgentImage::Named`] uses an image
//! the engine already has.
//!
//! # Layout
//!
//! - [`options`]: [`DockerOptions`], [`AgentImage`].
//! - [`Error`]: Docker's own failures, reached through
//!   [`gastown_core::Error::backend_error`] (`EngineUnavailable`, `ImageBuild`, `Api`, …).
//! - `image` (`image/{assemble, build_context, deps}`): the agent image — which host files
//!   go in, the build context as a hashed tar, and the build through the engine.
//! - `container`, `volume`, `hygiene`: create/adopt/stop/remove, the town's agents volume
//!   (`/agents` outlives a container), labels; orphans.
//! - `wrapper`, `exec`, `process`, `lines`: commands with exactly their own env and cwd.
//! - `claim`: handing a running container to another town (a warm pool's claim).
//! - `records`: process records in the container, labelled spawns and adoption of what a
//!   crashed host left running.
//! - `files`, `archive`: tar in and out; the endpoint.
//! - `test_support` (hidden): the engine gate, shared image, prefixes and cleanup of the
//!   Docker tests here and in the workspace's `tests/`.
//!
//! The engine must answer at the socket; `scripts/ensure-docker.sh` installs and starts one
//! on Debian.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod archive;
mod claim;
mod container;
mod error;
mod exec;
mod files;
mod hygiene;
mod image;
mod lines;
pub mod options;
mod process;
mod records;
mod runtime;
mod stat;
#[doc(hidden)]
pub mod test_support;
mod town_locks;
mod volume;
mod wrapper;

pub use container::{LABEL_MANAGED, LABEL_PREFIX, LABEL_TOWN};
pub use error::{BoxError, Error};
pub use image::assemble::{AGENT_UID, BUSYBOX_HOST_PATH, KILO_IMAGE_PATH};
pub use image::IMAGE_REPOSITORY;
pub use options::{AgentImage, DockerOptions};
pub use process::DockerProcess;
pub use runtime::DockerRuntime;
pub use volume::AGENTS_MOUNT;
