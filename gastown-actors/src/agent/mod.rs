//! [`AgentActor`]: one per agent. Serialises the agent's starts (concurrent requests join
//! the one in flight), runs the five phases as supervised steps ([`run`]), confirms a
//! running server with a liveness probe ([`probe`]), and stops and snapshots it on a drain
//! ([`drain`]).
//!
//! A request reads top-down: [`AgentMsg::Ensure`] → `on_ensure` here → a probe of the
//! running server, or a new run (`run.rs`) → one phase attempt at a time
//! (`crate::phases`) → the runtime.

mod drain;
mod msg;
mod probe;
mod run;
mod turn;
mod watch;
mod work;

pub(crate) use msg::{AgentMsg, SessionRequest, Waiter};
pub(crate) use watch::live_watchers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gastown_core::policy::{decide_ensure, EnsureObservation, ServerObservation};
use gastown_core::{AgentStatus, EnsureDecision};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::oneshot;

use crate::context::{AgentContext, AgentSpec, LiveSdk};
use crate::error::{Error, Result};
use crate::phases::{stop_server, BrowseOutcome};
use crate::ready::{AgentInfo, BrowseState};
use crate::telemetry::Subject;

use self::run::Run;

/// What the agent is doing.
#[derive(Debug)]
enum Mode {
    /// Nothing in flight; `live` says whether a server runs.
    Idle,
    /// Confirming the running server (process + health) for waiting callers.
    Probing { probe_id: u64 },
    /// Looking for a server an earlier host left running for this agent (first request
    /// of the actor's life only).
    Adopting,
    /// A start runs its phases.
    Starting(Box<Run>),
    /// Stopping for good: every further request is refused.
    Draining,
}

/// The AgentActor's state.
#[derive(Debug)]
pub(crate) struct AgentState {
    /// What the phases read: the town's parts, this agent's spec, layout and password.
    ctx: AgentContext,
    /// The running SDK server, once a run finished.
    live: Option<LiveSdk>,
    /// The running server's SDK event watcher; aborted whenever `live` goes.
    watch: Option<tokio::task::AbortHandle>,
    /// The real turn in flight, if any.
    turn: Option<turn::Turn>,
    /// Shared with the watcher: a turn is in flight (a silent stream is then polled).
    turn_pending: Arc<AtomicBool>,
    /// The session the last run resumed or created.
    session_id: Option<String>,
    mode: Mode,
    /// Callers waiting for the start or probe in flight.
    waiters: Vec<Waiter>,
    /// Boot hydration waiting for this agent's critical work.
    boot_waiters: Vec<oneshot::Sender<bool>>,
    /// The spec changed since the running server started: the next ensure restarts it.
    spec_changed: bool,
    /// Boot hydration's facts for the next report: (resumed from registry, registry ms).
    boot_timings: Option<(bool, u64)>,
    /// The mayor's browse worktrees: `None` before the first setup started.
    browse: Option<BrowseState>,
    /// A background browse setup is running (one at a time).
    browse_running: bool,
    /// Ids for runs and probes, so late messages of an earlier one are told apart.
    seq: u64,
    /// The runtime was asked for a server an earlier host left (once per actor).
    adoption_tried: bool,
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
        mut ctx: AgentContext,
    ) -> std::result::Result<Self::State, ActorProcessingErr> {
        // The SDK server's password outlives this host: a server that survives a crash
        // of this program is adopted by the next one, which must be able to talk to it.
        let key = format!("{SDK_PASSWORD_KEY}/{}", ctx.spec.id);
        match ctx.parts.store.secret_get_or_create(&key) {
            Ok(password) => ctx.password = password,
            Err(e) => {
                tracing::warn!(agent = %ctx.spec.id, error = %e, "persisting the SDK password; a restarted host cannot adopt this server");
            }
        }
        Ok(AgentState {
            ctx,
            live: None,
            watch: None,
            turn: None,
            turn_pending: Arc::new(AtomicBool::new(false)),
            session_id: None,
            mode: Mode::Idle,
            waiters: Vec::new(),
            boot_waiters: Vec::new(),
            spec_changed: false,
            boot_timings: None,
            browse: None,
            browse_running: false,
            seq: 0,
            adoption_tried: false,
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
                state.set_spec(*spec);
                state.on_ensure(&myself, waiter);
            }
            AgentMsg::Prewarm {
                spec,
                done,
                registered,
                registry_fetch_ms,
            } => {
                state.set_spec(*spec);
                state.boot_timings = Some((registered, registry_fetch_ms));
                state.on_prewarm(&myself, done);
            }
            AgentMsg::BrowseDone(outcomes) => state.on_browse_done(outcomes),
            AgentMsg::Session(SessionRequest::NoReply { text, reply }) => {
                state.on_send(text, reply)
            }
            AgentMsg::Session(SessionRequest::Prompt { text, reply }) => {
                state.on_prompt(&myself, text, reply)
            }
            AgentMsg::Info(reply) => {
                let _ = reply.send(state.info());
            }
            AgentMsg::AttemptDone { run_id, done } => state.on_attempt_done(&myself, run_id, *done),
            AgentMsg::RetryPhase { run_id } => state.on_retry(&myself, run_id),
            AgentMsg::ProbeDone { probe_id, server } => {
                state.on_probe_done(&myself, probe_id, server)
            }
            AgentMsg::AdoptDone(live) => state.on_adopt_done(&myself, live),
            AgentMsg::HealthCheck => {
                if let (Mode::Idle, Some(live)) = (&state.mode, state.live.clone()) {
                    state.begin_probe(&myself, live);
                }
            }
            AgentMsg::ContainerLost => {
                // The processes died with the container; the handle would only lie.
                state.take_live();
            }
            AgentMsg::Drain(reply) => state.on_drain(reply),
            AgentMsg::PrepareForPause(reply) => state.on_prepare_for_pause(reply),
            AgentMsg::Turn(signal) => state.on_turn_signal(&myself, signal),
            AgentMsg::TurnTimeout { turn_id } => state.on_turn_timeout(&myself, turn_id),
            AgentMsg::TurnRefused { turn_id } => state.on_turn_refused(turn_id),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        // Stopping the tree waits here, so its caller knows every SDK server is stopped.
        let grace = state.ctx.parts.options.stop_grace;
        for server in state.abandon_all() {
            stop_server(server.as_ref(), grace).await;
        }
        Ok(())
    }
}

impl AgentState {
    fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn subject(&self) -> Subject<'_> {
        Subject::agent(&self.ctx.parts.town, &self.ctx.spec.id, self.ctx.spec.role)
    }

    /// Makes `live` the running server (of `session_id`) and starts its event watcher.
    fn set_live(&mut self, myself: &ActorRef<AgentMsg>, live: LiveSdk, session_id: &str) {
        self.take_live();
        self.watch = Some(watch::spawn(
            self.ctx.clone(),
            live.clone(),
            session_id.to_owned(),
            myself.clone(),
            self.turn_pending.clone(),
        ));
        self.live = Some(live);
    }

    /// Takes the running server away, stopping its event watcher with it.
    fn take_live(&mut self) -> Option<LiveSdk> {
        if let Some(watch) = self.watch.take() {
            watch.abort();
        }
        self.live.take()
    }

    fn set_spec(&mut self, spec: AgentSpec) {
        if spec != self.ctx.spec {
            self.ctx.spec = spec;
            self.spec_changed = true;
        }
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

    fn on_ensure(&mut self, myself: &ActorRef<AgentMsg>, waiter: Waiter) {
        match &self.mode {
            Mode::Draining => {
                let _ = waiter.reply.send(Err(Error::Stopped));
            }
            Mode::Starting(run) => {
                if run.prewarm {
                    // The caller joins boot hydration's prewarm: that is its decision.
                    self.record_decision(run.decision);
                }
                self.waiters.push(waiter)
            }
            Mode::Probing { .. } | Mode::Adopting => self.waiters.push(waiter),
            Mode::Idle => {
                self.waiters.push(waiter);
                if self.live.is_none() && !self.adoption_tried {
                    self.begin_adopt(myself);
                } else if self.spec_changed && self.live.is_some() {
                    // New configuration: a fresh dispatch that replaces the server (the sdk
                    // phase compares config hashes) and pushes the model onto the session.
                    self.begin_run(myself, EnsureDecision::FreshDispatch, false);
                } else if let Some(live) = self.live.clone() {
                    self.begin_probe(myself, live);
                } else {
                    let decision = self.decide(None);
                    self.begin_run(myself, decision, false);
                }
            }
        }
    }

    fn on_prewarm(&mut self, myself: &ActorRef<AgentMsg>, done: oneshot::Sender<bool>) {
        match self.mode {
            Mode::Draining => {
                let _ = done.send(false);
            }
            Mode::Starting(_) | Mode::Probing { .. } | Mode::Adopting => {
                self.boot_waiters.push(done)
            }
            Mode::Idle if self.live.is_some() => {
                let _ = done.send(true);
            }
            Mode::Idle if !self.adoption_tried => {
                self.boot_waiters.push(done);
                self.begin_adopt(myself);
            }
            Mode::Idle => {
                self.boot_waiters.push(done);
                let decision = self.decide(None);
                self.begin_run(myself, decision, true);
            }
        }
    }

    /// The ensure decision tree, on what the store remembers and what the probe saw.
    fn decide(&self, server: Option<ServerObservation>) -> EnsureDecision {
        let stored_status = match self.ctx.parts.store.agent(&self.ctx.spec.id) {
            Ok(rec) => rec.map(|r| r.status),
            Err(e) => {
                tracing::warn!(agent = %self.ctx.spec.id, error = %e, "reading agent record");
                None
            }
        };
        decide_ensure(&EnsureObservation {
            stored_status,
            server,
        })
    }

    /// Emits the mayor's ensure decision (workers' starts are not `ensure_mayor`s).
    fn record_decision(&self, decision: EnsureDecision) {
        if self.ctx.spec.role == gastown_core::Role::Mayor {
            crate::telemetry::decision(self.subject(), decision);
        }
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
        self.ctx
            .publish(crate::events::TownEvent::AgentStatusChanged { status });
    }

    fn on_browse_done(&mut self, outcomes: Vec<BrowseOutcome>) {
        self.browse_running = false;
        let failed: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match &o.state {
                BrowseState::Failed(e) => Some(format!("{}: {e}", o.rig.id)),
                _ => None,
            })
            .collect();
        self.browse = Some(if failed.is_empty() {
            BrowseState::Ready
        } else {
            BrowseState::Failed(failed.join("; "))
        });
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
        let ctx = self.ctx.clone();
        // The SDK round trip runs outside the mailbox.
        tokio::spawn(async move {
            let result = async {
                let model = model?;
                let message_id = client.send_no_reply(&session_id, &model, &text).await?;
                // A user message is mayor activity (the idle-stop rule reads it).
                store.touch_activity(&id, clock.now_ms())?;
                Ok::<_, gastown_core::Error>(message_id)
            }
            .await;
            if result.is_ok() {
                // An accepted user message is a turn boundary too.
                drain::spawn_snapshot(ctx);
            }
            let _ = reply.send(result.map_err(Error::Core));
        });
    }

    /// Answers every waiter with [`Error::Stopped`], aborts the attempt in flight and
    /// takes every server this agent holds — running, held by a start in flight, or still
    /// booting — for the caller to stop. The agent is `Draining` afterwards.
    fn abandon_all(&mut self) -> Vec<Server> {
        let mut servers = Vec::new();
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Err(Error::Stopped));
        }
        for b in self.boot_waiters.drain(..) {
            let _ = b.send(false);
        }
        if let Mode::Starting(run) = std::mem::replace(&mut self.mode, Mode::Draining) {
            servers.extend(run.abandon());
        }
        servers.extend(self.take_live().map(|l| l.process));
        self.turn = None;
        self.turn_pending.store(false, Ordering::SeqCst);
        servers.extend(self.ctx.booting.lock().take());
        servers
    }
}

/// The store key prefix of an agent's SDK server password (`sdk_password/<agent>`).
const SDK_PASSWORD_KEY: &str = "sdk_password";

/// An SDK server process to stop: a running one, or one its sdk phase is still booting.
type Server = std::sync::Arc<dyn gastown_core::ProcessHandle>;
