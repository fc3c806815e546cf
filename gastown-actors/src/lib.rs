//! The actor tree of gastown: [`TownHandle`] → TownActor → ContainerActor → AgentActor →
//! phase steps (`ARCHITECTURE.md`, *Crates and actors*).
//!
//! - **TownActor**: one per town; decides and forwards, never blocks its mailbox.
//! - **ContainerActor**: starts or adopts the town's container through the
//!   [`ContainerRuntime`](gastown_core::ContainerRuntime), owns one AgentActor per agent,
//!   drains them before the container goes away.
//! - **AgentActor**: one per agent; concurrent starts of the agent coalesce into one; runs
//!   the five phases `token → hydrate → worktrees → sdk → session` as supervised child
//!   steps, each with a timeout and a retry budget ([`StartOptions`]); a failure that
//!   exhausts the budget is a [`StartError`] naming the phase.
//!
//! # Layout
//!
//! One request reads top-down through four files, never back up (`ARCHITECTURE.md`,
//! *Crates and actors*):
//!
//! - `town/`: [`TownHandle`], the embedder's API, beside the TownActor it talks to;
//! - `container/`: the ContainerActor — container start or adoption, boot hydration
//!   (mayor first) and the hydration gate, the agents' actors, the drain;
//! - `agent/`: the AgentActor — `mod.rs` (messages, the ensure decision), `run.rs` (one
//!   start driven by the pure [`StartRun`](gastown_core::policy::StartRun) machine),
//!   `probe.rs` (confirming a running server), `drain.rs` (stop and snapshot);
//! - `phases/`: one file per phase, plain async functions on the runtime trait, and the
//!   supervised attempt that runs one of them (a timeout, a caught panic, an abort).
//!
//! Beside the path: `context.rs` (what every phase reads, opened from [`TownOptions`]),
//! `options.rs`, `error.rs`, [`telemetry`] (the one vocabulary of event names), `alarm.rs`
//! (the periodic tick), `ready.rs` and `boot.rs` (what callers get back), `clock.rs`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use gastown_actors::{TownHandle, TownOptions};
//! use gastown_core::{TownConfig, TownId};
//! # let runtime: Arc<dyn gastown_core::ContainerRuntime> = todo!();
//! let config = TownConfig::new(TownId::new("demo")?);
//! let town = TownHandle::start(TownOptions::new(config, "/tmp/demo-state", runtime)).await?;
//! let ready = town.ensure_mayor().await?;
//! println!("mayor session {} ready in {} ms", ready.session_id, ready.report.total_ms);
//! town.shutdown().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod alarm;
#[doc(hidden)]
pub mod bench_support;
mod boot;
mod boot_scheduler;
mod budget;
mod clock;
mod container;
mod context;
mod error;
pub mod events;
mod options;
mod phases;
mod pool;
mod ready;
mod reconcile;
pub mod telemetry;
#[doc(hidden)]
pub mod test_support;
mod town;
mod turn;

pub use boot::{BootReport, MayorBoot};
pub use boot_scheduler::{BootPriority, BootScheduler, BootSlot};
pub use budget::PausedBudget;
pub use context::AgentSpec;
pub use error::{Error, PhaseFailure, Result, StartError};
pub use events::{StopReason, TownEvent, TownEventRecord};
pub use options::{IdleExit, RetryPolicy, StartOptions, TownOptions, TurnOptions};
pub use pool::{PoolMiss, WarmPool, WarmPoolOptions};
pub use ready::{AgentInfo, BrowseState, MayorReady};
pub use town::{Slung, TownHandle};
pub use turn::{MayorReply, MayorTurn};
