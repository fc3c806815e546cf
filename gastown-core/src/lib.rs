//! Domain types, pure policies and traits of gastown.
//!
//! # Layout
//!
//! - [`ids`], [`role`], [`status`], [`phase`]: the vocabulary (validated ids, roles, the
//!   status sets, the five startup phases; ARCHITECTURE.md, *Vocabulary*).
//! - [`config`]: [`TownConfig`] — rigs, the mayor's models, the SDK launcher
//!   ([`launcher`]: [`SdkLauncher`], the program and where it keeps its sessions).
//! - [`path`], [`command`], [`runtime`]: the [`ContainerRuntime`] trait and what it takes.
//! - [`layout`], [`env`](mod@env): where an agent's files live, and the one env builder that a start
//!   and a prewarm share.
//! - [`token`]: container tokens (HS256 JWT).
//! - [`sdk`]: the HTTP client of the SDK server (`kilo serve`).
//! - [`kilo`]: finding the kilo binary.
//! - [`store`]: [`TownStore`], the town's SQLite state; [`snapshot`]: agent `kilo.db`
//!   snapshots.
//! - [`report`]: the startup report and the ensure decision.
//! - [`policy`]: pure lifecycle decisions (ensure, active work, alarm cadence, idle stop,
//!   token refresh, heartbeats, dispatch retry).
//! - [`reconciler`]: the pure reconciler — queued events and the per-tick sweep turned into
//!   store actions and effects for the actors (beads dispatched, retried, reviewed).
//! - [`credentials`]: the git credential chain (personal → integration → stored).
//! - `conformance` (feature `conformance`): the checks every runtime must pass.
//! - `simulated` (feature `simulated`): a simulated runtime and SDK servers (test doubles)
//!   whose operations take scripted virtual time, for deterministic tests and benches.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
pub mod config;
#[cfg(any(feature = "conformance", test))]
pub mod conformance;
pub mod credentials;
pub mod env;
pub mod error;
pub mod ids;
pub mod kilo;
pub mod launcher;
pub mod layout;
pub mod path;
pub mod phase;
pub mod policy;
pub mod reconciler;
pub mod report;
pub mod role;
pub mod runtime;
pub mod sdk;
pub mod secret;
#[cfg(any(feature = "simulated", test))]
pub mod simulated;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod token;

pub use command::{CommandSpec, Word};
pub use config::{ModelRef, ProviderConfig, RigConfig, SdkLauncher, TownConfig};
pub use error::{Error, Result};
pub use ids::{AgentId, BeadId, RigId, TownId};
pub use layout::AgentLayout;
pub use path::ContainerPath;
pub use phase::StartupPhase;
pub use report::{EnsureDecision, PhaseTiming, StartupReport};
pub use role::Role;
pub use runtime::{
    AdoptedProcess, ContainerInfo, ContainerOptions, ContainerRuntime, ContainerRuntimeExt,
    ExecOutput, Mount, OutputLine, PathKind, PathStat, ProcessHandle, ProcessLabel, SpawnedProcess,
    Stream,
};
pub use secret::Secret;
pub use status::{AgentStatus, BeadKind, BeadStatus, ContainerStatus, ProcessStatus};
pub use store::TownStore;
