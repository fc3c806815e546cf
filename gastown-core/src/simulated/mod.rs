//! A simulated [`ContainerRuntime`](crate::ContainerRuntime) and simulated SDK servers:
//! **test doubles** for deterministic tests and benches of the real actor code in virtual
//! time (the cold-start measurements of `ARCHITECTURE.md`, "lifecycle timings"). Compiled with the `simulated` feature (and in this crate's
//! unit tests).
//!
//! - [`SimScript`]: the duration of every operation (container start, file I/O, git, SDK
//!   boot and calls, token refresh) and [`SimScript::critical_path`], the physical floor of
//!   a cold mayor start.
//! - [`SimulatedRuntime`]: the runtime; every operation sleeps its scripted duration with
//!   `tokio::time::sleep`, so under `tokio::time::pause` the schedule is exact. Its
//!   [`sdk_connector`](SimulatedRuntime::sdk_connector) replaces HTTP for the simulated
//!   SDK servers.
//! - [`SimulatedError`]: its own failures (`CannotRun`, `Database`, …), inside
//!   [`Error::Generic`](crate::Error::Generic) with runtime `simulated`.
//! - [`SimEvent`]: the event log (virtual start and end, town, what happened), and
//!   counters built on it ([`SimulatedRuntime::spawns_of`], …).
//!
//! ```
//! # use std::time::Duration;
//! # use gastown_core::simulated::{SimScript, SimulatedRuntime};
//! # use gastown_core::{ContainerOptions, ContainerRuntime, TownId};
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let rt = SimulatedRuntime::new(SimScript::default());
//! let town = TownId::new("t").unwrap();
//! rt.start(&town, &ContainerOptions::default()).await.unwrap();
//! assert_eq!(rt.elapsed(), SimScript::default().container_create);
//! # }
//! ```
//!
//! Blocking work in `tokio::task::spawn_blocking` (the actors' snapshot I/O) does not let
//! a paused clock jump: tokio inhibits auto-advance while a blocking task runs, so such
//! work takes no virtual time (checked by `tests/simulated.rs`).

mod claim;
mod db;
mod error;
mod exec;
mod files;
mod log;
mod pause;
mod process;
mod runtime;
mod script;
mod sdk;
mod shell;
mod state;

pub use db::SimMessage;
pub use error::SimulatedError;
pub use log::{SdkOp, SimEvent, SimEventKind};
pub use runtime::SimulatedRuntime;
pub use script::{SimScript, TOKEN_REFRESH_PATH};
