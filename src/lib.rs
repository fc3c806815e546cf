//! gastown: orchestrates coding-agent towns — one mayor (the chat agent a user talks to)
//! plus worker agents, each a real SDK server process (`kilo serve`) inside a container.
//!
//! This facade re-exports the workspace's crates:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `gastown-core` | ids, config, the `ContainerRuntime` trait, SDK client, SQLite store, snapshots |
//! | [`actors`] | `gastown-actors` | `TownHandle` and the actor tree that runs the five startup phases |
//! | [`local`] | `gastown-runtime-local` | the runtime on host processes (the embedded default) |
//! | [`docker`] | `gastown-runtime-docker` | the runtime on a Docker Engine (feature `docker`, on by default) |
//!
//! Start with `examples/town/main.rs` (`scripts/run-example.sh`), which cold-starts a
//! mayor, sends it a real prompt (its reply streams in; the model is a scripted test double
//! unless `--model` names a real provider), shuts the town down, resumes the same session
//! from its snapshot and prompts it again.
//!
//! The vocabulary (town, rig, mayor, polecat, refinery, bead, hook, hydrate, prewarm,
//! registry), the phase path `token → hydrate → worktrees → sdk → session`, the
//! `ensure_mayor` decision tree, the lifecycle timings and the telemetry names are in the
//! repository's `ARCHITECTURE.md`, with the upstream source of each.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use gastown_actors as actors;
pub use gastown_core as core;
#[cfg(feature = "docker")]
pub use gastown_runtime_docker as docker;
pub use gastown_runtime_local as local;

pub use gastown_actors::{
    MayorReady, StartOptions, TownHandle, TownOptions, WarmPool, WarmPoolOptions,
};
pub use gastown_core::{ContainerRuntime, RigConfig, StartupReport, TownConfig, TownId};
