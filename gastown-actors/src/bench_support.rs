//! Not a public API: the pieces of the **reference serial schedule** that
//! `benches/cold_start.rs` and `examples/cold_start_report.rs` measure mayor-first boot
//! against. They run the very phase steps the actors run, with no actors, in whatever
//! order the caller chooses (the original serial order of the Gastown cold-start analysis, there). Nothing in the library
//! uses them, and they may change at any time.

use std::sync::Arc;

use gastown_core::{
    AgentLayout, CommandSpec, ContainerOptions, ContainerPath, Result, Secret, StartupPhase,
};

use crate::agent::run_phase;
use crate::context::open_parts;
use crate::context::{AgentContext, AgentSpec, LiveSdk, StartProgress, TownParts};
use crate::options::TownOptions;
use crate::phases::{refresh_browse_worktrees, stop_sdk};

/// The one exec that makes `layout`'s agent directories `dirs` and its workspace, a git
/// repository with one empty commit: the very command the worktrees phase runs, for a
/// bare floor that must make what every start makes.
pub fn workspace_command(layout: &AgentLayout, dirs: &[ContainerPath]) -> CommandSpec {
    crate::phases::workspace_command(layout, dirs)
}

/// A town's shared parts, opened from [`TownOptions`] without starting any actor.
#[derive(Debug, Clone)]
pub struct SerialTown {
    parts: Arc<TownParts>,
    mayor: AgentSpec,
    container_options: ContainerOptions,
}

/// One agent started by [`SerialTown::start_agent`].
#[derive(Debug)]
pub struct SerialAgent {
    live: LiveSdk,
    /// The session the agent resumed or created.
    pub session_id: String,
    grace: std::time::Duration,
}

impl SerialAgent {
    /// Stops the agent's SDK server.
    pub async fn stop(self) {
        stop_sdk(&self.live, self.grace).await;
    }
}

impl SerialTown {
    /// Opens the town's state (store, snapshots, signing key) as [`TownHandle::start`]
    /// would.
    ///
    /// [`TownHandle::start`]: crate::TownHandle::start
    ///
    /// # Errors
    /// As `TownHandle::start`.
    pub fn open(options: TownOptions) -> crate::Result<Self> {
        let opened = open_parts(options)?;
        Ok(Self {
            parts: opened.parts,
            mayor: opened.mayor,
            container_options: opened.container_options,
        })
    }

    /// The mayor's spec from the town's configuration.
    pub fn mayor(&self) -> AgentSpec {
        self.mayor.clone()
    }

    /// Starts (or adopts) the town's container.
    ///
    /// # Errors
    /// The runtime's.
    pub async fn start_container(&self) -> Result<()> {
        self.parts
            .runtime
            .start(&self.parts.town, &self.container_options)
            .await
            .map(|_| ())
    }

    /// A live token refresh: a token written into the container (which the original Gastown path sent even
    /// to a cold container, starting it).
    ///
    /// # Errors
    /// Minting or the runtime's `put_file`.
    pub async fn live_token_refresh(&self) -> Result<()> {
        crate::alarm::refresh_token(&self.parts, self.parts.clock.now_ms()).await
    }

    /// The registry, as boot hydration reads it.
    ///
    /// # Errors
    /// The store's.
    pub fn registry(&self) -> Result<Vec<gastown_core::store::RegistryEntry>> {
        self.parts.store.registry()
    }

    /// Runs the five phases of `spec`, in order, with no actor, no retry and no timeout.
    ///
    /// # Errors
    /// The first phase's error.
    pub async fn start_agent(&self, spec: AgentSpec) -> Result<SerialAgent> {
        let ctx = self.context(spec);
        let mut progress = StartProgress::default();
        for phase in StartupPhase::ALL {
            progress = run_phase(phase, &ctx, progress).await?;
        }
        Ok(SerialAgent {
            live: progress.sdk.expect("the sdk phase ran"),
            session_id: progress.session_id.expect("the session phase ran"),
            grace: self.parts.options.stop_grace,
        })
    }

    /// Sets up every rig's browse worktree for `mayor` and writes its `AGENTS.md`, waiting
    /// for all of it (the original Gastown path did this on the mayor's critical path).
    pub async fn browse_worktrees(&self, mayor: AgentSpec) {
        refresh_browse_worktrees(&self.context(mayor)).await;
    }

    fn context(&self, spec: AgentSpec) -> AgentContext {
        AgentContext {
            parts: self.parts.clone(),
            layout: AgentLayout::new(spec.id.clone()),
            spec,
            password: Secret::random(),
            booting: Default::default(),
            snapshot_lock: Default::default(),
        }
    }
}

/// How many SDK event watchers (one per running SDK server) are alive in this process. A
/// test reads it to show that stopping a town leaves none behind.
pub fn live_event_watchers() -> usize {
    crate::agent::live_watchers()
}
