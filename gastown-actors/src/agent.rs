//! [`AgentActor`]: one per agent. Serialises the agent's starts (concurrent requests join
//! the one in flight), runs the five phases as supervised [`PhaseStep`] children with
//! timeouts and a retry budget, and tracks the live SDK server and session.

use std::sync::Arc;
use std::time::Duration;

use gastown_core::policy::{decide_ensure, EnsureObservation, ServerObservation};
use gastown_core::{
    AgentStatus, EnsureDecision, PhaseTiming, ProcessHandle, Role, StartupPhase, StartupReport,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::context::{AgentContext, AgentSpec, LiveSdk, StartProgress};
use crate::error::{Error, PhaseFailure, Result, StartError};
use crate::phases::{refresh_browse_worktrees, stop_sdk, BrowseOutcome};
use crate::ready::BrowseState;
use crate::ready::{AgentInfo, MayorReady};
use crate::step::{PhaseStep, PhaseStepArgs};

/// A caller waiting for the agent to be ready.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) reply: RpcReplyPort<Result<MayorReady>>,
    pub(crate) requested: Instant,
}

/// The outcome of one phase attempt.
#[derive(Debug)]
pub(crate) struct PhaseDone {
    pub(crate) run_id: u64,
    pub(crate) phase: StartupPhase,
    pub(crate) attempt: u32,
    pub(crate) started: Instant,
    pub(crate) elapsed: Duration,
    pub(crate) result: std::result::Result<StartProgress, PhaseFailure>,
}

/// Messages of the [`AgentActor`].
#[derive(Debug)]
pub(crate) enum AgentMsg {
    /// Make the agent ready (start it, or confirm it is alive) with this spec. A spec that
    /// differs from the running one (e.g. a new model) restarts the SDK server with it.
    Ensure(Box<AgentSpec>, Waiter),
    /// Start the agent without anyone waiting (boot hydration: resume or prewarm). `done`
    /// fires with `true` once the agent is ready (or already was), `false` on failure.
    Prewarm {
        /// The agent's current spec (the mayor's model may have changed since its actor
        /// started).
        spec: Box<AgentSpec>,
        done: oneshot::Sender<bool>,
        /// The agent was in the registry (a resume) rather than a prewarm.
        registered: bool,
        /// Boot hydration's registry read, in ms, for the startup report.
        registry_fetch_ms: u64,
    },
    /// The background browse worktree setup finished.
    BrowseDone(Vec<BrowseOutcome>),
    /// Record a message in the agent's session without an LLM turn; replies with the
    /// message id.
    SendNoReply {
        text: String,
        reply: RpcReplyPort<Result<String>>,
    },
    /// Report what runs.
    Info(RpcReplyPort<AgentInfo>),
    /// A phase attempt finished.
    PhaseDone(Box<PhaseDone>),
    /// Backoff over: run the current phase again.
    RetryPhase { run_id: u64 },
    /// The liveness probe of a running server finished.
    ProbeDone {
        probe_id: u64,
        server: ServerObservation,
    },
    /// The container was replaced underneath: every process in it is gone.
    ContainerLost,
    /// Stop the SDK server and snapshot its `kilo.db`; replies when the snapshot is safe.
    Drain(RpcReplyPort<Result<()>>),
}

/// One start in flight.
#[derive(Debug)]
struct Run {
    id: u64,
    decision: EnsureDecision,
    started: Instant,
    progress: StartProgress,
    phase_index: usize,
    attempt: u32,
    restarts: Vec<Instant>,
    timings: Vec<PhaseTiming>,
    /// Started by boot hydration rather than by a caller.
    prewarm: bool,
}

#[derive(Debug)]
enum Mode {
    Idle,
    Probing { probe_id: u64 },
    Starting(Box<Run>),
    Draining,
}

/// The AgentActor's state.
#[derive(Debug)]
pub(crate) struct AgentState {
    ctx: AgentContext,
    live: Option<LiveSdk>,
    session_id: Option<String>,
    mode: Mode,
    waiters: Vec<Waiter>,
    /// Boot hydration waiting for this agent's critical work.
    boot_waiters: Vec<oneshot::Sender<bool>>,
    /// The spec changed since the running server started: the next ensure restarts it.
    spec_changed: bool,
    /// Boot hydration's facts for the next report: (resumed from registry, registry ms).
    boot_timings: Option<(bool, u64)>,
    /// The mayor's browse worktrees: `None` before the first setup started.
    browse: Option<BrowseState>,
    /// A background browse setup is running.
    browse_running: bool,
    seq: u64,
}

/// One agent's actor.
#[derive(Debug)]
pub(crate) struct AgentActor;

impl Actor for AgentActor {
    type Msg = AgentMsg;
    type State = AgentState;
    type Arguments = AgentContext;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: AgentContext,
    ) -> std::result::Result<Self::State, ActorProcessingErr> {
        Ok(AgentState {
            ctx,
            live: None,
            session_id: None,
            mode: Mode::Idle,
            waiters: Vec::new(),
            boot_waiters: Vec::new(),
            spec_changed: false,
            boot_timings: None,
            browse: None,
            browse_running: false,
            seq: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            AgentMsg::Ensure(spec, waiter) => {
                if *spec != state.ctx.spec {
                    state.ctx.spec = *spec;
                    state.spec_changed = true;
                }
                state.on_ensure(&myself, waiter).await
            }
            AgentMsg::Prewarm {
                spec,
                done,
                registered,
                registry_fetch_ms,
            } => {
                if *spec != state.ctx.spec {
                    state.ctx.spec = *spec;
                    state.spec_changed = true;
                }
                state.boot_timings = Some((registered, registry_fetch_ms));
                state.on_prewarm(&myself, done).await
            }
            AgentMsg::BrowseDone(outcomes) => {
                state.browse_running = false;
                let failed: Vec<_> = outcomes
                    .iter()
                    .filter_map(|o| match &o.state {
                        BrowseState::Failed(e) => Some(format!("{}: {e}", o.rig.id)),
                        _ => None,
                    })
                    .collect();
                state.browse = Some(if failed.is_empty() {
                    BrowseState::Ready
                } else {
                    BrowseState::Failed(failed.join("; "))
                });
            }
            AgentMsg::SendNoReply { text, reply } => state.on_send(text, reply),
            AgentMsg::Info(reply) => {
                let _ = reply.send(state.info());
            }
            AgentMsg::PhaseDone(done) => state.on_phase_done(&myself, *done).await,
            AgentMsg::RetryPhase { run_id } => {
                if matches!(&state.mode, Mode::Starting(run) if run.id == run_id) {
                    state.spawn_step(&myself).await;
                }
            }
            AgentMsg::ProbeDone { probe_id, server } => {
                state.on_probe_done(&myself, probe_id, server).await
            }
            AgentMsg::ContainerLost => {
                // The processes died with the container; the handle would only lie.
                state.live = None;
            }
            AgentMsg::Drain(reply) => state.on_drain(&myself, reply),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        // ractor's default would stop this actor when a phase step exits; a step's normal
        // exit is expected, and its panic is one failed attempt of the current phase.
        if let SupervisionEvent::ActorFailed(_, err) = evt {
            if let Mode::Starting(run) = &state.mode {
                let done = PhaseDone {
                    run_id: run.id,
                    phase: StartupPhase::ALL[run.phase_index],
                    attempt: run.attempt,
                    started: Instant::now(),
                    elapsed: Duration::ZERO,
                    result: Err(PhaseFailure::Panicked(err.to_string())),
                };
                state.on_phase_done(&myself, done).await;
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        // A phase step runs its whole phase in post_start, which `stop` would wait for;
        // killing it drops the phase future, whose guard stops a half-started server.
        for child in myself.get_children() {
            child.kill();
        }
        if let Mode::Starting(run) = &mut state.mode {
            if let Some(live) = run.progress.sdk.take() {
                stop_sdk(&live, state.ctx.parts.options.stop_grace).await;
            }
        }
        for w in state.waiters.drain(..) {
            let _ = w.reply.send(Err(Error::Stopped));
        }
        for b in state.boot_waiters.drain(..) {
            let _ = b.send(false);
        }
        // An actor stopped without a drain must not leave its server running.
        if let Some(live) = state.live.take() {
            stop_sdk(&live, state.ctx.parts.options.stop_grace).await;
        }
        Ok(())
    }
}

impl AgentState {
    fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn info(&self) -> AgentInfo {
        AgentInfo {
            agent: self.ctx.spec.id.clone(),
            endpoint: self.live.as_ref().map(|l| l.endpoint.clone()),
            pid: self.live.as_ref().and_then(|l| l.process.pid()),
            session_id: self.session_id.clone(),
            config_hash: self.live.as_ref().map(|l| l.config_hash.clone()),
            browse: self.browse.clone(),
        }
    }

    fn stored_status(&self) -> Option<AgentStatus> {
        match self.ctx.parts.store.agent(&self.ctx.spec.id) {
            Ok(rec) => rec.map(|r| r.status),
            Err(e) => {
                tracing::warn!(agent = %self.ctx.spec.id, error = %e, "reading agent record");
                None
            }
        }
    }

    async fn on_ensure(&mut self, myself: &ActorRef<AgentMsg>, waiter: Waiter) {
        match self.mode {
            Mode::Draining => {
                let _ = waiter.reply.send(Err(Error::Stopped));
            }
            Mode::Starting(ref run) => {
                if run.prewarm {
                    // The caller joins boot hydration's prewarm: that is its decision.
                    record_decision(&self.ctx, run.decision);
                }
                self.waiters.push(waiter)
            }
            Mode::Probing { .. } => self.waiters.push(waiter),
            Mode::Idle => {
                self.waiters.push(waiter);
                if self.spec_changed && self.live.is_some() {
                    // New configuration: a fresh dispatch that replaces the server (the sdk
                    // phase compares config hashes) and pushes the model onto the session.
                    self.begin_run(myself, EnsureDecision::FreshDispatch, false)
                        .await;
                    return;
                }
                match self.live.clone() {
                    Some(live) => {
                        let probe_id = self.next_id();
                        self.mode = Mode::Probing { probe_id };
                        let timeout = self.ctx.parts.options.probe_timeout;
                        let me = myself.clone();
                        tokio::spawn(async move {
                            let server = probe(&live, timeout).await;
                            let _ = me.cast(AgentMsg::ProbeDone { probe_id, server });
                        });
                    }
                    None => {
                        let decision = self.decide(None);
                        self.begin_run(myself, decision, false).await;
                    }
                }
            }
        }
    }

    async fn on_prewarm(&mut self, myself: &ActorRef<AgentMsg>, done: oneshot::Sender<bool>) {
        match self.mode {
            Mode::Draining => {
                let _ = done.send(false);
            }
            Mode::Starting(_) | Mode::Probing { .. } => self.boot_waiters.push(done),
            Mode::Idle if self.live.is_some() => {
                let _ = done.send(true);
            }
            Mode::Idle => {
                self.boot_waiters.push(done);
                let decision = self.decide(None);
                self.begin_run(myself, decision, true).await;
            }
        }
    }

    /// The seeds' ensure decision tree, on what the store remembers and what the probe saw.
    fn decide(&self, server: Option<ServerObservation>) -> EnsureDecision {
        decide_ensure(&EnsureObservation {
            stored_status: self.stored_status(),
            server,
        })
    }

    async fn on_probe_done(
        &mut self,
        myself: &ActorRef<AgentMsg>,
        probe_id: u64,
        server: ServerObservation,
    ) {
        if !matches!(self.mode, Mode::Probing { probe_id: p } if p == probe_id) {
            return;
        }
        let decision = self.decide(Some(server));
        if !decision.starts_agent() {
            record_decision(&self.ctx, decision);
            self.mode = Mode::Idle;
            for b in self.boot_waiters.drain(..) {
                let _ = b.send(true);
            }
            let endpoint = self.live.as_ref().map(|l| l.endpoint.clone());
            for w in self.waiters.drain(..) {
                let ready = match (&endpoint, &self.session_id) {
                    (Some(endpoint), Some(session_id)) => Ok(MayorReady {
                        endpoint: endpoint.clone(),
                        session_id: session_id.clone(),
                        report: StartupReport::short_circuit(
                            decision,
                            w.requested.elapsed().as_millis() as u64,
                        ),
                    }),
                    _ => Err(Error::NotRunning {
                        agent: self.ctx.spec.id.clone(),
                    }),
                };
                let _ = w.reply.send(ready);
            }
        } else {
            // The town believed the server ran; the real process or its health says no.
            if let Some(live) = self.live.take() {
                let grace = self.ctx.parts.options.stop_grace;
                tokio::spawn(async move { stop_sdk(&live, grace).await });
            }
            self.begin_run(myself, decision, false).await;
        }
    }

    async fn begin_run(
        &mut self,
        myself: &ActorRef<AgentMsg>,
        decision: EnsureDecision,
        prewarm: bool,
    ) {
        if !prewarm {
            record_decision(&self.ctx, decision);
        }
        // After a configuration change the resumed session gets the new model recorded,
        // whether or not a server was running.
        let push_model = std::mem::take(&mut self.spec_changed);
        let id = self.next_id();
        let started = self
            .waiters
            .iter()
            .map(|w| w.requested)
            .min()
            .unwrap_or_else(Instant::now);
        self.mode = Mode::Starting(Box::new(Run {
            id,
            decision,
            started,
            progress: StartProgress {
                // The cache: a running server with an equal config hash is reused by the
                // sdk phase, a different one replaced.
                sdk: self.live.take(),
                push_model,
                ..StartProgress::default()
            },
            phase_index: 0,
            attempt: 1,
            restarts: Vec::new(),
            timings: Vec::new(),
            prewarm,
        }));
        self.set_status(AgentStatus::Working);
        self.spawn_step(myself).await;
    }

    fn set_status(&self, status: AgentStatus) {
        let store = &self.ctx.parts.store;
        let id = &self.ctx.spec.id;
        let result = match store.agent(id) {
            Ok(Some(_)) => store.set_agent_status(id, status),
            Ok(None) => {
                let mut rec = gastown_core::store::AgentRecord::new(id.clone(), self.ctx.spec.role);
                rec.status = status;
                store.upsert_agent(&rec)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(agent = %id, error = %e, "recording agent status");
        }
    }

    async fn spawn_step(&mut self, myself: &ActorRef<AgentMsg>) {
        let Mode::Starting(run) = &self.mode else {
            return;
        };
        let phase = StartupPhase::ALL[run.phase_index];
        let args = PhaseStepArgs {
            run_id: run.id,
            phase,
            attempt: run.attempt,
            timeout: self.ctx.parts.options.timeout(phase),
            ctx: self.ctx.clone(),
            progress: run.progress.clone(),
            parent: myself.clone(),
        };
        if let Err(e) = Actor::spawn_linked(None, PhaseStep, args, myself.get_cell()).await {
            let done = PhaseDone {
                run_id: run.id,
                phase,
                attempt: run.attempt,
                started: Instant::now(),
                elapsed: Duration::ZERO,
                result: Err(PhaseFailure::Panicked(format!("spawning phase step: {e}"))),
            };
            Box::pin(self.on_phase_done(myself, done)).await;
        }
    }

    async fn on_phase_done(&mut self, myself: &ActorRef<AgentMsg>, done: PhaseDone) {
        let run = match &mut self.mode {
            Mode::Starting(run) if run.id == done.run_id && run.attempt == done.attempt => run,
            _ => {
                // A late result (the run was abandoned by a drain): free what it started.
                if let Ok(progress) = done.result {
                    if let Some(live) = progress.sdk {
                        stop_sdk(&live, self.ctx.parts.options.stop_grace).await;
                    }
                }
                return;
            }
        };
        match done.result {
            Ok(progress) => {
                let offset = done.started.saturating_duration_since(run.started);
                let timing = PhaseTiming {
                    phase: done.phase,
                    start_offset_ms: offset.as_millis() as u64,
                    duration_ms: done.elapsed.as_millis() as u64,
                    attempts: run.attempt,
                };
                record_phase(&self.ctx, &timing);
                run.timings.push(timing);
                run.progress = progress;
                run.phase_index += 1;
                run.attempt = 1;
                run.restarts.clear();
                if run.phase_index == StartupPhase::ALL.len() {
                    self.finish_run(myself);
                } else {
                    self.spawn_step(myself).await;
                }
            }
            Err(failure) => {
                let policy = self.ctx.parts.options.retry;
                let now = Instant::now();
                run.restarts
                    .retain(|t| now.saturating_duration_since(*t) < policy.within);
                if failure.is_retryable() && (run.restarts.len() as u32) < policy.max_restarts {
                    let backoff = policy.backoff * 2u32.saturating_pow(run.restarts.len() as u32);
                    run.restarts.push(now);
                    run.attempt += 1;
                    tracing::warn!(
                        town = %self.ctx.parts.town, agent = %self.ctx.spec.id,
                        phase = %done.phase, error = %failure, backoff_ms = backoff.as_millis() as u64,
                        "phase failed; retrying"
                    );
                    let run_id = run.id;
                    myself.send_after(backoff, move || AgentMsg::RetryPhase { run_id });
                } else {
                    let attempts = run.attempt;
                    self.fail_run(done.phase, attempts, failure).await;
                }
            }
        }
    }

    fn finish_run(&mut self, myself: &ActorRef<AgentMsg>) {
        let Mode::Starting(run) = std::mem::replace(&mut self.mode, Mode::Idle) else {
            return;
        };
        let run = *run;
        let (Some(live), Some(session_id)) = (run.progress.sdk, run.progress.session_id) else {
            unreachable!("the sdk and session phases fill both");
        };
        let store = &self.ctx.parts.store;
        let id = &self.ctx.spec.id;
        // The mayor alive between user messages is `waiting` (not active work).
        let status = if self.ctx.spec.role == Role::Mayor {
            AgentStatus::Waiting
        } else {
            AgentStatus::Idle
        };
        let saved = store
            .set_session_id(id, Some(&session_id))
            .and_then(|_| store.set_config_hash(id, Some(&live.config_hash)))
            .and_then(|_| store.set_agent_status(id, status))
            .and_then(|_| store.register(id, self.ctx.spec.role));
        if let Err(e) = saved {
            tracing::warn!(agent = %id, error = %e, "recording the started agent");
        }
        let total_ms = run.started.elapsed().as_millis() as u64;
        let mut timings = run.progress.timings;
        if let Some((registered, registry_ms)) = self.boot_timings.take() {
            timings.insert("registry_fetch_ms".into(), registry_ms);
            let name = if registered {
                "mayor_resume_ms"
            } else {
                "mayor_prewarm_ms"
            };
            timings.insert(name.into(), total_ms);
        }
        for t in &run.timings {
            // The seeds' names for the phases they timed.
            let name = match t.phase {
                StartupPhase::Hydrate => "db_hydrated",
                StartupPhase::Sdk => "sdk_ready",
                StartupPhase::Session => "session_created",
                StartupPhase::Token | StartupPhase::Worktrees => continue,
            };
            timings.insert(name.to_owned(), t.duration_ms);
        }
        let report = StartupReport {
            decision: run.decision,
            prewarmed: run.progress.prewarmed,
            total_ms,
            phases: run.timings,
            timings,
        };
        let is_mayor = self.ctx.spec.role == Role::Mayor;
        if is_mayor && run.prewarm {
            tracing::info!(
                town = %self.ctx.parts.town, agent = %id, role = "mayor", total_ms,
                "mayor.prewarm_complete"
            );
        } else if is_mayor {
            tracing::info!(
                town = %self.ctx.parts.town, agent = %id, role = "mayor",
                decision = %report.decision, total_ms, prewarmed = report.prewarmed,
                "mayor.ready"
            );
        }
        self.session_id = Some(session_id.clone());
        let endpoint = live.endpoint.clone();
        self.live = Some(live);
        for w in self.waiters.drain(..) {
            let mut report = report.clone();
            report.total_ms = w.requested.elapsed().as_millis() as u64;
            // A caller that joined a boot prewarm already under way got a server it did not
            // have to start; one whose request booted the container paid for all of it.
            report.prewarmed |= run.prewarm && w.requested > run.started;
            let _ = w.reply.send(Ok(MayorReady {
                endpoint: endpoint.clone(),
                session_id: session_id.clone(),
                report,
            }));
        }
        for b in self.boot_waiters.drain(..) {
            let _ = b.send(true);
        }
        if is_mayor {
            self.start_browse_refresh(myself);
        }
    }

    /// Sets up or refreshes the mayor's browse worktrees in the background.
    fn start_browse_refresh(&mut self, myself: &ActorRef<AgentMsg>) {
        if self.browse_running {
            return;
        }
        self.browse_running = true;
        self.browse = Some(BrowseState::Warming);
        let ctx = self.ctx.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let outcomes = refresh_browse_worktrees(&ctx).await;
            let _ = me.cast(AgentMsg::BrowseDone(outcomes));
        });
    }

    async fn fail_run(&mut self, phase: StartupPhase, attempts: u32, failure: PhaseFailure) {
        let Mode::Starting(run) = std::mem::replace(&mut self.mode, Mode::Idle) else {
            return;
        };
        if let Some(live) = run.progress.sdk {
            stop_sdk(&live, self.ctx.parts.options.stop_grace).await;
        }
        self.set_status(AgentStatus::Dead);
        tracing::error!(
            town = %self.ctx.parts.town, agent = %self.ctx.spec.id, phase = %phase,
            attempts, error = %failure, "agent start failed"
        );
        let err = Arc::new(StartError {
            agent: self.ctx.spec.id.clone(),
            phase,
            attempts,
            cause: failure,
        });
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Err(Error::Start(err.clone())));
        }
        for b in self.boot_waiters.drain(..) {
            let _ = b.send(false);
        }
    }

    fn on_send(&self, text: String, reply: RpcReplyPort<Result<String>>) {
        let (Some(live), Some(session_id)) = (&self.live, &self.session_id) else {
            let _ = reply.send(Err(Error::NotRunning {
                agent: self.ctx.spec.id.clone(),
            }));
            return;
        };
        let client = live.client.clone();
        let session_id = session_id.clone();
        let model = gastown_core::ModelRef::parse(&self.ctx.spec.model);
        let store = self.ctx.parts.store.clone();
        let id = self.ctx.spec.id.clone();
        let clock = self.ctx.parts.clock;
        tokio::spawn(async move {
            let result = async {
                let model = model?;
                let message_id = client.send_no_reply(&session_id, &model, &text).await?;
                // A user message is mayor activity (the idle-stop rule reads it).
                store.touch_activity(&id, clock.now_ms())?;
                Ok::<_, gastown_core::Error>(message_id)
            }
            .await;
            let _ = reply.send(result.map_err(Error::Core));
        });
    }

    fn on_drain(&mut self, myself: &ActorRef<AgentMsg>, reply: RpcReplyPort<Result<()>>) {
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Err(Error::Stopped));
        }
        for b in self.boot_waiters.drain(..) {
            let _ = b.send(false);
        }
        // Every server this agent has — running, held by a start in flight, or still
        // booting — stops before its kilo.db is copied.
        let mut servers: Vec<Arc<dyn ProcessHandle>> = Vec::new();
        if let Mode::Starting(run) = std::mem::replace(&mut self.mode, Mode::Draining) {
            for child in myself.get_children() {
                child.kill();
            }
            servers.extend(run.progress.sdk.map(|l| l.process));
        }
        servers.extend(self.live.take().map(|l| l.process));
        servers.extend(self.ctx.booting.lock().take());
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let result = drain(&ctx, servers).await;
            let _ = reply.send(result);
        });
    }
}

/// Stops the servers, then snapshots `kilo.db` (with its WAL) out of the container.
async fn drain(ctx: &AgentContext, servers: Vec<Arc<dyn ProcessHandle>>) -> Result<()> {
    let grace = ctx.parts.options.stop_grace;
    for server in &servers {
        if let Err(e) = server.kill(grace).await {
            tracing::warn!(agent = %ctx.spec.id, error = %e, "stopping SDK server for drain");
        }
    }
    let rt = &ctx.parts.runtime;
    let town = &ctx.parts.town;
    let db_path = ctx.layout.kilo_db();
    let db = match rt.get_file(town, &db_path).await {
        Ok(db) => db,
        Err(gastown_core::Error::FileNotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let wal_path = db_path
        .parent()
        .expect("kilo.db has a parent")
        .join("kilo.db-wal")?;
    let wal = match rt.get_file(town, &wal_path).await {
        Ok(wal) => Some(wal),
        Err(gastown_core::Error::FileNotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let snapshots = ctx.parts.snapshots.clone();
    let agent = ctx.spec.id.clone();
    let info =
        tokio::task::spawn_blocking(move || snapshots.take_from_bytes(&agent, &db, wal.as_deref()))
            .await
            .map_err(|e| Error::Actor(format!("snapshot task: {e}")))??;
    tracing::info!(
        town = %town, agent = %ctx.spec.id, bytes = info.bytes, "kilo.db snapshot taken"
    );
    if let Err(e) = ctx
        .parts
        .store
        .set_agent_status(&ctx.spec.id, AgentStatus::Idle)
    {
        tracing::warn!(agent = %ctx.spec.id, error = %e, "recording drained agent");
    }
    Ok(())
}

/// Looks at the real process and asks the server for its health within `timeout`
/// (DESIGN.md §5 rule 5: not just remembered fields).
async fn probe(live: &LiveSdk, timeout: Duration) -> ServerObservation {
    // Both at once: on Docker the process status is an engine round trip of its own. A
    // probe that does not finish in time counts as a dead server.
    let both = async { tokio::join!(live.process.status(), live.client.health()) };
    match tokio::time::timeout(timeout, both).await {
        Ok((status, health)) => {
            let process_alive = status.is_alive();
            ServerObservation {
                process_alive,
                healthy: process_alive && matches!(health, Ok(h) if h.healthy),
            }
        }
        Err(_) => ServerObservation {
            process_alive: false,
            healthy: false,
        },
    }
}

fn record_decision(ctx: &AgentContext, decision: EnsureDecision) {
    if ctx.spec.role != Role::Mayor {
        return;
    }
    tracing::info!(
        town = %ctx.parts.town, agent = %ctx.spec.id, role = %ctx.spec.role,
        outcome = decision.as_str(), "mayor.ensure_decision"
    );
}

fn record_phase(ctx: &AgentContext, t: &PhaseTiming) {
    // The seeds' names for the phases they timed.
    let name = match t.phase {
        StartupPhase::Token => "token_mint_ms",
        StartupPhase::Hydrate => "db_hydrated",
        StartupPhase::Worktrees => "workspace_created_ms",
        StartupPhase::Sdk => "sdk_ready",
        StartupPhase::Session => "session_created",
    };
    tracing::info!(
        town = %ctx.parts.town, agent = %ctx.spec.id, role = %ctx.spec.role,
        phase = %t.phase, duration_ms = t.duration_ms, start_offset_ms = t.start_offset_ms,
        attempts = t.attempts, event = name, "agent.startup_phase"
    );
}
