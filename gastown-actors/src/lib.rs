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
//! - `agent/`: the AgentActor — `mod.rs` holds the whole ensure path: the decision, one
//!   start driven by the pure [`StartRun`](gastown_core::policy::StartRun) machine, and
//!   `run_phase`, whose arms name each phase's file; beside it `probe.rs` (confirming a
//!   running server), `drain.rs` (stop and snapshot), `state.rs`, `record.rs`,
//!   `prewarm.rs`, `browse.rs`, `turn.rs`, `watch.rs`, `work.rs`, `msg.rs`;
//! - `phases/`: one file per phase, plain async functions on the runtime trait; beside
//!   them `attempt.rs`, the supervised attempt that runs one of them (a timeout, a caught
//!   panic, an abort, an outcome reported through a callback).
//!
//! Beside the path: `context.rs` (what every phase reads, opened from [`TownOptions`]),
//! `options.rs`, `error.rs`, [`telemetry`] (the one vocabulary of event names), `alarm.rs`
//! (the periodic tick), `ready.rs` and `boot.rs` (what callers get back), `clock.rs`.
//! Each actor's `impl ractor::Actor` takes its types, `pre_start`, `handle` and
//! `post_stop` from the crate's `actor_core!` macro and adds its other lifecycle hooks;
//! the `match` on its messages is its state's `handle`, in the actor's `mod.rs`.
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

/// The part of `impl ractor::Actor` every actor of this crate shares: its message, state
/// and argument types; a `pre_start` that makes the state from the arguments with the
/// state's `new` (which does no fallible I/O, so spawning an actor fails only in ractor);
/// a `handle` that gives each message to the state's own
/// `async fn handle(&mut self, myself: &ActorRef<Msg>, msg: Msg)`, which owns the match;
/// and a `post_stop` that runs the state's `async fn on_stop(&mut self, myself)` (what is
/// still waiting is answered, what runs is stopped, before the actor's stop returns).
/// The state's futures are boxed: ractor keeps the `handle` future inside each actor's
/// task, so unboxed every actor (thousands per process) would hold the largest message
/// handler's future for its whole life. Textually first, so that every module below can
/// use it.
macro_rules! actor_core {
    ($msg:ty, $state:ty, $args:ty) => {
        type Msg = $msg;
        type State = $state;
        type Arguments = $args;

        async fn pre_start(
            &self,
            _myself: ractor::ActorRef<$msg>,
            args: $args,
        ) -> std::result::Result<$state, ractor::ActorProcessingErr> {
            Ok(<$state>::new(args))
        }

        async fn handle(
            &self,
            myself: ractor::ActorRef<$msg>,
            msg: $msg,
            state: &mut $state,
        ) -> std::result::Result<(), ractor::ActorProcessingErr> {
            Box::pin(state.handle(&myself, msg)).await;
            Ok(())
        }

        async fn post_stop(
            &self,
            myself: ractor::ActorRef<$msg>,
            state: &mut $state,
        ) -> std::result::Result<(), ractor::ActorProcessingErr> {
            Box::pin(state.on_stop(&myself)).await;
            Ok(())
        }
    };
}

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
pub use pool::{WarmPool, WarmPoolOptions};
pub use ready::{AgentInfo, BrowseState, MayorReady};
pub use town::{Slung, TownHandle};
pub use turn::{MayorReply, MayorTurn};
