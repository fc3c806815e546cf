//! gastown's [`ContainerRuntime`](gastown_core::ContainerRuntime) on a Docker Engine, through
//! `bollard` (DESIGN.md §6).
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
//! - `assemble`, `context`, `deps`, `image`: the agent image.
//! - `container`, `volume`, `hygiene`: create/adopt/stop/remove, the town's agents volume
//!   (`/agents` outlives a container), labels; orphans.
//! - `wrapper`, `exec`, `process`, `lines`: commands with exactly their own env and cwd.
//! - `files`, `archive`: tar in and out; the endpoint.
//!
//! The engine must answer at the socket; `scripts/ensure-docker.sh` installs and starts one
//! on Debian.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod archive;
mod container;
mod error;
mod exec;
mod files;
mod hygiene;
mod image;
mod lines;
pub mod options;
mod process;
mod runtime;
#[doc(hidden)]
pub mod test_support;
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
