//! [`TownHandle`], the embedder's typed async API to a town, and [`TownActor`] behind it:
//! one per town. The actor owns the town's state and decides; it never blocks its mailbox
//! on slow I/O — requests are forwarded with their reply ports to the ContainerActor, and
//! shutdown runs in a spawned task.
//!
//! A request reads top-down through four files: `TownHandle::ensure_mayor` →
//! [`TownMsg::EnsureMayor`] here → the ContainerActor (`container/mod.rs`: container start,
//! boot hydration) → the AgentActor (`agent/mod.rs`: the decision and the run of the five
//! phases) → the phase's own file (`phases/<phase>.rs`) → the runtime.

use std::fmt;
use std::sync::Arc;

use gastown_core::{AgentId, ContainerOptions, Role, TownId};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;

use gastown_core::policy::alarm_interval;

use crate::alarm;
use crate::boot::BootReport;
use crate::container::{ContainerActor, ContainerArgs, ContainerMsg};
use crate::context::{open_parts, AgentSpec, TownParts};

mod beads;
mod idle;
mod msg;
mod pause;
mod work;

use idle::AlarmTimer;

pub use beads::Slung;

use crate::agent::SessionRequest;
use crate::error::{Error, Result};
use crate::events::{EventBus, StopReason, TownEventRecord};
use crate::options::TownOptions;
use crate::ready::{AgentInfo, MayorReady};
use crate::turn::MayorTurn;
use futures::stream::BoxStream;
pub(crate) use msg::TownMsg;

/// A running town. Cheap to clone; every clone talks to the same TownActor.
///
/// Dropping every handle does not stop the town; call [`TownHandle::shutdown`], which
/// snapshots every agent before the container goes away.
#[derive(Clone)]
pub struct TownHandle {
    town: TownId,
    actor: ActorRef<TownMsg>,
    /// Read directly, not through the actor: subscribing must work while the actor is
    /// busy, and must never queue behind a start.
    events: Arc<EventBus>,
    /// Verifies container tokens without a round trip to the actor.
    signer: gastown_core::token::TokenSigner,
    /// Bead reads and writes go straight to the store (`town/beads.rs`).
    store: gastown_core::TownStore,
}

impl fmt::Debug for TownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TownHandle")
            .field("town", &self.town)
            .finish()
    }
}

impl TownHandle {
    /// Validates the configuration, opens the town's state and starts its actor. Starts no
    /// container and no process: that is [`TownHandle::ensure_mayor`]'s job.
    ///
    /// # Errors
    /// [`Error::Core`] with `InvalidConfig` for a bad configuration, `Io` when the state
    /// directory cannot be created, `Store` when `town.db` cannot be opened (corrupted, or
    /// written by a newer version); [`Error::Spawn`] if the actor cannot be spawned.
    pub async fn start(options: TownOptions) -> Result<Self> {
        let opened = open_parts(options)?;
        let town = opened.parts.town.clone();
        let events = opened.parts.events.clone();
        let signer = opened.parts.signer.clone();
        let store = opened.parts.store.clone();
        let args = TownArgs {
            parts: opened.parts,
            mayor: opened.mayor,
            container_options: opened.container_options,
        };
        let (actor, _) = Actor::spawn(None, TownActor, args)
            .await
            .map_err(|source| Error::Spawn {
                actor: "town",
                source,
            })?;
        Ok(Self {
            town,
            actor,
            events,
            signer,
            store,
        })
    }

    /// The town's id.
    pub fn town(&self) -> &TownId {
        &self.town
    }

    /// Every [`TownEvent`](crate::TownEvent) published from now on, in order: agent statuses, streamed
    /// reply text, completed messages, session errors, container starts and stops with
    /// their reason, snapshots, idle stops. A subscriber that falls more than 1,024 events
    /// behind gets a [`TownEvent::Lagged`](crate::TownEvent::Lagged) record (cursor 0) instead of the ones it
    /// missed, and never slows the town; it can catch up with
    /// [`TownHandle::events_since`]. The stream ends when the town is dropped.
    pub fn events(&self) -> BoxStream<'static, TownEventRecord> {
        self.events.subscribe()
    }

    /// The kept events with a cursor above `cursor` (0: all kept), in order. The town
    /// keeps the last 2,000 events per agent and 2,000 town-wide ones.
    pub fn events_since(&self, cursor: u64) -> Vec<TownEventRecord> {
        self.events.since(cursor)
    }

    /// Makes the mayor ready — starts the container and the five phases if needed, or
    /// confirms a running mayor with a health probe — and returns its endpoint, session and
    /// startup report. Concurrent calls join one start.
    ///
    /// # Errors
    /// [`Error::Start`] naming the phase that failed (after its retry budget);
    /// [`Error::Container`] when the container cannot be started; [`Error::Stopped`] during
    /// shutdown.
    pub async fn ensure_mayor(&self) -> Result<MayorReady> {
        self.call(TownMsg::EnsureMayor).await?
    }

    /// Ensures the mayor, then records `text` in its session as a user message without an
    /// LLM turn (`noReply`). Returns the message id.
    ///
    /// # Errors
    /// As [`TownHandle::ensure_mayor`]; [`Error::Core`] with `Sdk` when the SDK server
    /// rejects the message.
    pub async fn send_mayor_message(&self, text: &str) -> Result<String> {
        self.ensure_mayor().await?;
        let text = text.to_owned();
        self.call(|reply| TownMsg::AgentSession {
            agent: AgentId::mayor(),
            request: SessionRequest::NoReply { text, reply },
        })
        .await?
    }

    /// Ensures the mayor (waking an idle-stopped town), then sends `text` as a real turn
    /// (`POST /session/{id}/prompt_async`) and returns once the SDK server accepted it.
    /// Await [`MayorTurn::reply`] for the answer, or stream it with
    /// [`MayorTurn::next_delta`]; the same pieces reach [`TownHandle::events`]. The mayor
    /// is `working` during the turn and `waiting` after it; its `kilo.db` is snapshotted
    /// at the turn's end.
    ///
    /// # Errors
    /// As [`TownHandle::ensure_mayor`]; [`Error::TurnInFlight`] while the previous turn
    /// runs; [`Error::Core`] with `Sdk` when the SDK server refuses the prompt. A turn that
    /// fails upstream is an error of [`MayorTurn::reply`].
    pub async fn prompt_mayor(&self, text: &str) -> Result<MayorTurn> {
        self.ensure_mayor().await?;
        let text = text.to_owned();
        self.call(|reply| TownMsg::AgentSession {
            agent: AgentId::mayor(),
            request: SessionRequest::Prompt { text, reply },
        })
        .await?
    }

    /// Verifies a container token presented by a tool inside the town's container (read
    /// from the file named by `GASTOWN_CONTAINER_TOKEN_FILE`, or the agent's
    /// `GASTOWN_CONTAINER_TOKEN`): signed by this town's key, for this town, not expired.
    ///
    /// # Errors
    /// [`Error::Core`] with `Token` for a forged, foreign or expired token.
    pub fn verify_container_token(&self, token: &str) -> Result<gastown_core::token::TokenClaims> {
        Ok(self
            .signer
            .verify(&gastown_core::Secret::new(token), &self.town)?)
    }

    /// What runs for the mayor: endpoint, process id, session, code browsing state (`None`
    /// before the first `ensure_mayor`).
    ///
    /// # Errors
    /// [`Error::Stopped`] after shutdown.
    pub async fn mayor_info(&self) -> Result<Option<AgentInfo>> {
        self.agent_info(&AgentId::mayor()).await
    }

    /// What runs for an agent (`None` if the town has not started it).
    ///
    /// # Errors
    /// [`Error::Stopped`] after shutdown.
    pub async fn agent_info(&self, agent: &AgentId) -> Result<Option<AgentInfo>> {
        let agent = agent.clone();
        self.call(|reply| TownMsg::AgentInfo { agent, reply }).await
    }

    /// Starts (or confirms) a worker agent — a polecat with its own worktree of its rig, or
    /// a refinery — through the same five phases as the mayor.
    ///
    /// # Errors
    /// As [`TownHandle::ensure_mayor`]; `InvalidConfig` for a spec naming the mayor's role or
    /// an unknown rig.
    pub async fn start_agent(&self, spec: AgentSpec) -> Result<MayorReady> {
        if spec.role == Role::Mayor || spec.id == AgentId::mayor() {
            return Err(gastown_core::Error::InvalidConfig {
                message: "start_agent is for workers; use ensure_mayor for the mayor".into(),
            }
            .into());
        }
        gastown_core::ModelRef::parse(&spec.model)?;
        gastown_core::ModelRef::parse(&spec.small_model)?;
        self.call(|reply| TownMsg::StartAgent { spec, reply })
            .await?
    }

    /// Starts the town's container if needed and runs boot hydration: the mayor is resumed
    /// (if registered) or prewarmed before anyone asks; returns when the hydration gate
    /// opens. Other registered agents keep resuming in the background.
    ///
    /// # Errors
    /// [`Error::Container`] when the container cannot be started; [`Error::Stopped`].
    pub async fn warm_up(&self) -> Result<BootReport> {
        self.call(TownMsg::WarmUp).await?
    }

    /// Changes the mayor's models (`provider/model`). The next [`TownHandle::ensure_mayor`]
    /// keeps the running SDK server (only the models differ, and every message and prompt
    /// names its model) and pushes the new model onto the session with a `noReply`
    /// message; with no server running, the next start uses the new models.
    ///
    /// # Errors
    /// `InvalidConfig` for a malformed model; [`Error::Stopped`].
    pub async fn update_mayor_model(&self, model: &str, small_model: Option<&str>) -> Result<()> {
        let model = model.to_owned();
        let small_model = small_model.map(str::to_owned);
        self.call(|reply| TownMsg::UpdateMayorModel {
            model,
            small_model,
            reply,
        })
        .await?
    }

    /// Stops every agent's SDK server, snapshots its `kilo.db` into the state directory,
    /// removes the container and stops the actors. If a snapshot fails the container is
    /// stopped but kept (nothing is lost) and the error is returned.
    ///
    /// # Errors
    /// [`Error::Drain`] holding the first drain failure (snapshot, runtime); every clone
    /// that called `shutdown` gets the same one.
    pub async fn shutdown(self) -> Result<()> {
        self.call(TownMsg::Shutdown).await?
    }

    /// Stops the town's actors without draining: SDK servers are stopped, nothing is
    /// snapshotted, and the container is left as it is, for a later [`TownHandle::start`]
    /// on the same state directory to adopt (e.g. when the embedding process restarts).
    /// What the agents wrote since their last snapshot stays in the container.
    pub async fn detach(self) {
        let _ = self.actor.stop_and_wait(None, None).await;
    }

    async fn call<T: Send + 'static>(
        &self,
        msg: impl FnOnce(ractor::RpcReplyPort<T>) -> TownMsg,
    ) -> Result<T> {
        match self.actor.call(msg, None).await {
            Ok(CallResult::Success(v)) => Ok(v),
            _ => Err(Error::Stopped),
        }
    }
}

/// Arguments of a [`TownActor`].
#[derive(Debug)]
pub(crate) struct TownArgs {
    pub(crate) parts: Arc<TownParts>,
    pub(crate) mayor: AgentSpec,
    pub(crate) container_options: ContainerOptions,
}

/// The TownActor's state.
#[derive(Debug)]
pub(crate) struct TownState {
    /// What every agent shares (runtime, store, snapshots, signer).
    parts: Arc<TownParts>,
    /// The mayor's spec; `update_mayor_model` changes it for the next start.
    mayor: AgentSpec,
    /// How the container is started (read-only rig mounts).
    container_options: ContainerOptions,
    /// The ContainerActor, spawned on the first request that needs the container; a
    /// failed one is forgotten and the next request spawns another, which adopts.
    container: Option<ActorRef<ContainerMsg>>,
    /// A shutdown began: requests are refused and ticks stop.
    shutting_down: bool,
    /// Every `shutdown` caller (handles are clones), answered with the one drain's result.
    shutdown_waiters: Vec<RpcReplyPort<Result<()>>>,
    /// An idle stop is draining the container: requests wait in `parked` until it is
    /// gone, then wake the town (a new container, the same sessions).
    idle_stopping: bool,
    /// The container is paused (frozen, not stopped) since this time (ms since the Unix
    /// epoch): requests wake it first; the alarm stops it after `stop_paused_after`.
    paused_since: Option<i64>,
    /// A pause or a wake is in flight: requests wait in `parked` until it ends.
    pausing_or_waking: bool,
    /// The resume's ms of the wake whose parked requests are being replayed: their
    /// `ensure` reports `resume_paused` (cleared by [`TownMsg::WakeReplayed`]).
    wake_report: Option<u64>,
    /// Requests that arrived during an idle stop, replayed in order when it ends.
    parked: Vec<TownMsg>,
    /// The last idle stop failed and nothing has woken the town since: the alarm tries
    /// again (after the persisted 2 min throttle).
    stop_retry: bool,
    /// The alarm's one pending timer (`town/idle.rs`).
    alarm: AlarmTimer,
}

impl TownState {
    /// A running town with no container yet: nothing parked, no shutdown, no pause.
    fn new(args: TownArgs) -> Self {
        Self {
            parts: args.parts,
            mayor: args.mayor,
            container_options: args.container_options,
            container: None,
            shutting_down: false,
            shutdown_waiters: Vec::new(),
            idle_stopping: false,
            paused_since: None,
            pausing_or_waking: false,
            wake_report: None,
            parked: Vec::new(),
            stop_retry: false,
            alarm: AlarmTimer::default(),
        }
    }
}

/// One town's actor.
#[derive(Debug)]
pub(crate) struct TownActor;

impl Actor for TownActor {
    actor_core!(TownMsg, TownState, TownArgs);

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        alarm::spawn_credential_refresh(state.parts.clone());
        // The first tick comes no later than the idle window, so a short window (tests,
        // eager embedders) is honoured from the start.
        let first = alarm_interval(false).min(state.parts.idle_stop_after);
        state.schedule_tick(&myself, first);
        if crate::reconcile::has_work_waiting(&state.parts.store) {
            // Workers to resume or events to apply: the reconciler runs soon.
            state.hurry_tick(&myself);
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        // A failed ContainerActor is forgotten; the next request spawns a new one, which
        // adopts the running container (idempotent start).
        if let SupervisionEvent::ActorFailed(cell, err) = &evt {
            tracing::error!(town = %state.parts.town, error = %err, "container actor failed");
            if state.container.as_ref().map(|c| c.get_id()) == Some(cell.get_id()) {
                state.container = None;
            }
        }
        Ok(())
    }
}

impl TownState {
    /// The actor is stopping: a detached paused town no longer counts against the host's
    /// budget here, and the ContainerActor is stopped and waited for.
    async fn on_stop(&mut self, myself: &ActorRef<TownMsg>) {
        self.leave_paused();
        for child in myself.get_children() {
            let _ = child.stop_and_wait(None, None).await;
        }
    }

    /// Handles one message. While the town stops idle, pauses or wakes, requests are
    /// parked and replayed after; a request to a paused town wakes it first.
    async fn handle(&mut self, myself: &ActorRef<TownMsg>, msg: TownMsg) {
        if (self.idle_stopping || self.pausing_or_waking) && msg.waits_for_idle_stop() {
            self.parked.push(msg);
            return;
        }
        if self.paused_since.is_some() && msg.wakes_the_town() {
            self.parked.push(msg);
            self.begin_wake(myself);
            return;
        }
        match msg {
            TownMsg::EnsureMayor(reply) => {
                let spec = self.mayor.clone();
                self.ensure_agent(myself, spec, reply).await;
            }
            TownMsg::AgentSession { agent, request } => match &self.container {
                Some(c) if !self.shutting_down => {
                    let _ = c.cast(ContainerMsg::Session { agent, request });
                }
                _ => request.refuse(Error::NotRunning { agent }),
            },
            TownMsg::Sling { bead, rig, reply } => self.on_sling(myself, bead, rig, reply),
            TownMsg::ExitAgent { agent } => {
                if let Some(c) = &self.container {
                    let _ = c.cast(ContainerMsg::ExitAgent { agent });
                }
            }
            TownMsg::AgentInfo { agent, reply } => match &self.container {
                Some(c) => {
                    let _ = c.cast(ContainerMsg::AgentInfo { agent, reply });
                }
                None => {
                    let _ = reply.send(None);
                }
            },
            TownMsg::StartAgent { spec, reply } => {
                self.ensure_agent(myself, spec, reply).await;
            }
            TownMsg::WarmUp(reply) => {
                if self.shutting_down {
                    let _ = reply.send(Err(Error::Stopped));
                    return;
                }
                match self.container(myself).await {
                    Ok(c) => {
                        let _ = c.cast(ContainerMsg::WarmUp(reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            TownMsg::UpdateMayorModel {
                model,
                small_model,
                reply,
            } => {
                let mut spec = self.mayor.clone();
                spec.model = model;
                if let Some(small) = small_model {
                    spec.small_model = small;
                }
                let checked = gastown_core::ModelRef::parse(&spec.model)
                    .and_then(|_| gastown_core::ModelRef::parse(&spec.small_model));
                match checked {
                    Ok(_) => {
                        self.mayor = spec.clone();
                        if let Some(c) = &self.container {
                            let _ = c.cast(ContainerMsg::SetMayorSpec(spec));
                        }
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            TownMsg::Tick(generation) => {
                // A tick rescheduled sooner (`hurry_tick`) leaves its old timer behind.
                if generation == self.alarm.generation {
                    self.alarm.due = None;
                    self.on_tick(myself);
                }
            }
            TownMsg::TickDone(plan) => self.on_tick_done(myself, plan).await,
            TownMsg::IdleStopDone(result) => self.on_idle_stop_done(myself, result),
            TownMsg::PauseDone(result) => self.on_pause_done(myself, result),
            TownMsg::WakeDone(result) => self.on_wake_done(myself, result),
            TownMsg::WakeReplayed => self.wake_report = None,
            TownMsg::StopPaused => self.on_stop_paused(myself).await,
            TownMsg::Shutdown(reply) => {
                // Every caller (handles are clones) is answered when the one drain ends.
                self.shutdown_waiters.push(reply);
                if self.shutting_down {
                    return;
                }
                self.shutting_down = true;
                let container = self.container.take();
                let me = myself.clone();
                tokio::spawn(async move {
                    let result = match &container {
                        Some(c) => Error::from_call(
                            c.call(
                                |reply| ContainerMsg::Drain {
                                    reason: StopReason::Shutdown,
                                    reply,
                                },
                                None,
                            )
                            .await,
                            "container",
                        ),
                        None => Ok(()),
                    };
                    if let Some(c) = container {
                        let _ = c.stop_and_wait(None, None).await;
                    }
                    let _ = me.cast(TownMsg::ShutdownDone(result));
                });
            }
            TownMsg::ShutdownDone(result) => {
                // One error, shared by every caller.
                let result = result.map_err(Arc::new);
                for w in std::mem::take(&mut self.shutdown_waiters) {
                    let _ = w.send(result.clone().map_err(|source| Error::Drain {
                        town: self.parts.town.to_string(),
                        source,
                    }));
                }
                myself.stop(None);
            }
        }
    }
}

impl TownState {
    /// Forwards a request to make an agent ready, reply port and all, to the container.
    async fn ensure_agent(
        &mut self,
        myself: &ActorRef<TownMsg>,
        spec: AgentSpec,
        reply: RpcReplyPort<Result<MayorReady>>,
    ) {
        let requested = Instant::now();
        if self.shutting_down {
            let _ = reply.send(Err(Error::Stopped));
            return;
        }
        // A request wakes the town: a failed idle stop is not retried under it.
        self.stop_retry = false;
        match self.container(myself).await {
            Ok(c) => {
                let _ = c.cast(ContainerMsg::EnsureAgent {
                    spec,
                    reply,
                    requested,
                    woke_ms: self.wake_report,
                });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn container(&mut self, myself: &ActorRef<TownMsg>) -> Result<ActorRef<ContainerMsg>> {
        if let Some(c) = &self.container {
            return Ok(c.clone());
        }
        let args = ContainerArgs {
            parts: self.parts.clone(),
            options: self.container_options.clone(),
            mayor: self.mayor.clone(),
        };
        let (c, _) = Actor::spawn_linked(None, ContainerActor, args, myself.get_cell())
            .await
            .map_err(|source| Error::Spawn {
                actor: "container",
                source,
            })?;
        self.container = Some(c.clone());
        Ok(c)
    }
}
