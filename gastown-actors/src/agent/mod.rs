//! [`AgentActor`]: one per agent. Serialises the agent's starts (concurrent requests join
//! the one in flight), runs the five phases one supervised attempt at a time, confirms a
//! running server with a liveness probe ([`probe`]), and stops and snapshots it on a drain
//! ([`drain`]).
//!
//! A request reads top-down in this file: [`AgentMsg::Ensure`] → `on_ensure` → a probe of
//! the running server (`probe.rs`), or `begin_run` → `spawn_attempt` → [`run_phase`], whose
//! arms name each phase's own file (`phases/<phase>.rs`) → the runtime. Each attempt's
//! outcome comes back as [`AgentMsg::AttemptDone`] and is fed to the pure
//! [`StartRun`] machine (`gastown_core::policy::start_run`): next phase, retry after a
//! backoff, finish (`finish_run`: a [`StartupReport`] for every waiter) or fail
//! (`fail_run`: a [`StartError`] naming the phase).
//!
//! Beside the path: `state.rs` (the state and how it is made), `record.rs` (the agent's
//! rows in the town store), `prewarm.rs` (boot hydration's start), `browse.rs` (the
//! mayor's browse worktrees), `turn.rs` (the session: user messages and real turns),
//! `watch.rs` (the SDK event watcher), `work.rs` (a polecat's branch after a turn),
//! `msg.rs` (the messages).

mod browse;
mod drain;
mod msg;
mod prewarm;
mod probe;
mod record;
mod state;
mod turn;
mod watch;
mod work;

pub(crate) use msg::{AgentMsg, SessionRequest, Waiter};
pub(crate) use state::AgentState;

use self::state::{Mode, Run};
pub(crate) use watch::live_watchers;

use std::sync::Arc;

use gastown_core::policy::{
    decide_ensure, AttemptOutcome, EnsureObservation, RunStep, ServerObservation, StartRun,
};
use gastown_core::store::AgentRecord;
use gastown_core::{
    AgentStatus, EnsureDecision, PhaseTiming, Result as CoreResult, Role, StartupPhase,
    StartupReport,
};
use ractor::{Actor, ActorRef};
use tokio::time::Instant;

use crate::context::{AgentContext, StartProgress};
use crate::error::{Error, PhaseFailure, StartError};
use crate::phases::{self, stop_server, AttemptDone};
use crate::ready::MayorReady;
use crate::telemetry;

/// One agent's actor.
#[derive(Debug)]
pub(crate) struct AgentActor;

impl Actor for AgentActor {
    actor_core!(AgentMsg, AgentState, AgentContext);
}

/// Runs one phase on `progress` and returns the updated progress: each arm is the phase's
/// own file. The actors and the reference serial schedule (`bench_support`) both run
/// phases through here.
///
/// Each phase's future is boxed: unboxed, this future (and every attempt task holding it)
/// would be as large as the largest phase's for every phase, copied into each attempt's
/// task on spawn.
///
/// # Errors
/// The phase's own error (a runtime, store, SDK or credential error).
pub(crate) async fn run_phase(
    phase: StartupPhase,
    ctx: &AgentContext,
    progress: StartProgress,
) -> CoreResult<StartProgress> {
    match phase {
        StartupPhase::Token => Box::pin(phases::token::run(ctx, progress)).await,
        StartupPhase::Hydrate => Box::pin(phases::hydrate::run(ctx, progress)).await,
        StartupPhase::Worktrees => Box::pin(phases::worktrees::run(ctx, progress)).await,
        StartupPhase::Sdk => Box::pin(phases::sdk::run(ctx, progress)).await,
        StartupPhase::Session => Box::pin(phases::session::run(ctx, progress)).await,
    }
}

impl AgentState {
    /// Handles one message: the ensure path first (an ensure, an attempt reporting back,
    /// a retry, a probe, an adoption), then boot hydration, the session and the drain.
    async fn handle(&mut self, myself: &ActorRef<AgentMsg>, msg: AgentMsg) {
        match msg {
            AgentMsg::Ensure(spec, waiter) => {
                self.set_spec(*spec);
                self.on_ensure(myself, waiter);
            }
            AgentMsg::AttemptDone { run_id, done } => self.on_attempt_done(myself, run_id, *done),
            AgentMsg::RetryPhase { run_id } => self.on_retry(myself, run_id),
            AgentMsg::ProbeDone { probe_id, server } => {
                self.on_probe_done(myself, probe_id, server)
            }
            AgentMsg::AdoptDone(live) => self.on_adopt_done(myself, live),
            AgentMsg::Prewarm {
                spec,
                done,
                registered,
                registry_fetch_ms,
            } => {
                self.set_spec(*spec);
                self.boot_timings = Some((registered, registry_fetch_ms));
                self.on_prewarm(myself, done);
            }
            AgentMsg::BrowseDone(outcomes) => self.on_browse_done(outcomes),
            AgentMsg::Session(request) => self.on_session(myself, request),
            AgentMsg::Info(reply) => {
                let _ = reply.send(self.info());
            }
            AgentMsg::HealthCheck => {
                if let (Mode::Idle, Some(live)) = (&self.mode, self.live.clone()) {
                    self.begin_probe(myself, live);
                }
            }
            AgentMsg::ContainerLost => {
                // The processes died with the container; the handle would only lie.
                self.take_live();
            }
            AgentMsg::Drain(reply) => self.on_drain(reply),
            AgentMsg::PrepareForPause(reply) => self.on_prepare_for_pause(reply),
            AgentMsg::Turn(signal) => self.on_turn_signal(myself, signal),
            AgentMsg::TurnTimeout { turn_id } => self.on_turn_timeout(myself, turn_id),
            AgentMsg::TurnRefused { turn_id } => self.on_turn_refused(turn_id),
        }
    }

    /// A caller wants the agent ready: refused while draining, joins a start, probe or
    /// adoption in flight, else begins the one the decision tree picks.
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

    /// The ensure decision tree, on what the store remembers and what the probe saw.
    fn decide(&self, server: Option<ServerObservation>) -> EnsureDecision {
        let stored = self.stored_record();
        Self::decide_on(stored.as_ref(), server)
    }

    /// The ensure decision tree, on `stored` (the agent's row, already read) and what the
    /// probe saw.
    fn decide_on(
        stored: Option<&AgentRecord>,
        server: Option<ServerObservation>,
    ) -> EnsureDecision {
        decide_ensure(&EnsureObservation {
            stored_status: stored.map(|r| r.status),
            server,
        })
    }

    /// Emits the mayor's ensure decision (workers' starts are not `ensure_mayor`s).
    fn record_decision(&self, decision: EnsureDecision) {
        if self.ctx.spec.role == Role::Mayor {
            telemetry::decision(self.subject(), decision);
        }
    }

    /// Begins a run with `decision`: the agent is `working` until it ends.
    fn begin_run(&mut self, myself: &ActorRef<AgentMsg>, decision: EnsureDecision, prewarm: bool) {
        if !prewarm {
            self.record_decision(decision);
        }
        // After a configuration change the resumed session gets the new model recorded,
        // whether or not a server was running.
        let push_model = std::mem::take(&mut self.spec_changed);
        let started = self.waiters.iter().map(|w| w.requested).min();
        let started = started.unwrap_or_else(Instant::now);
        let (machine, _first) = StartRun::begin(self.ctx.parts.options.retry);
        // The cache: a running server (only after a model change) is carried into the run;
        // the sdk phase keeps it when only the models differ, replaces it otherwise.
        let carried = self.take_live();
        self.mode = Mode::Starting(Box::new(Run {
            id: self.next_id(),
            decision,
            started,
            progress: StartProgress {
                known_session: carried.as_ref().and(self.session_id.clone()),
                sdk: carried,
                push_model,
                ..StartProgress::default()
            },
            machine,
            prewarm,
            attempt: None,
        }));
        self.set_status(AgentStatus::Working);
        self.spawn_attempt(myself);
    }

    /// Runs the machine's current attempt under its phase's timeout in its own task
    /// (`phases::spawn_attempt`), which reports back with [`AgentMsg::AttemptDone`].
    fn spawn_attempt(&mut self, myself: &ActorRef<AgentMsg>) {
        let Mode::Starting(run) = &mut self.mode else {
            return;
        };
        let phase = run.machine.phase();
        run.attempt = Some(phases::spawn_attempt(
            self.ctx.clone(),
            run.progress.clone(),
            phase,
            run.machine.attempt(),
            self.ctx.parts.options.timeout(phase),
            move |ctx, progress| async move { run_phase(phase, &ctx, progress).await },
            AgentMsg::attempt_report(myself.clone(), run.id),
        ));
    }

    /// A retry's backoff ended: the run's current phase is attempted again (a late retry
    /// of an abandoned run does nothing).
    fn on_retry(&mut self, myself: &ActorRef<AgentMsg>, run_id: u64) {
        if matches!(&self.mode, Mode::Starting(run) if run.id == run_id) {
            self.spawn_attempt(myself);
        }
    }

    /// Feeds an attempt's outcome to the run's machine and does what it says next.
    fn on_attempt_done(&mut self, myself: &ActorRef<AgentMsg>, run_id: u64, done: AttemptDone) {
        let Mode::Starting(run) = &mut self.mode else {
            return self.free_late(done);
        };
        if run.id != run_id || run.machine.attempt() != done.attempt {
            return self.free_late(done);
        }
        run.attempt = None;
        let now = run.started.elapsed();
        let (outcome, failure) = match done.result {
            Ok(progress) => {
                run.progress = progress;
                let started_at = done.started.saturating_duration_since(run.started);
                let took = done.elapsed;
                (AttemptOutcome::Succeeded { started_at, took }, None)
            }
            Err(failure) => {
                let retryable = failure.is_retryable();
                (AttemptOutcome::Failed { retryable }, Some(failure))
            }
        };
        let step = run.machine.on_attempt(outcome, now);
        let finished_phase = run.machine.timings().last().copied();
        let run_id = run.id;
        match step {
            RunStep::Attempt { .. } => {
                if let Some(t) = finished_phase {
                    telemetry::phase(self.subject(), &t);
                }
                self.spawn_attempt(myself)
            }
            RunStep::RetryAfter { phase, backoff, .. } => {
                tracing::warn!(
                    town = %self.ctx.parts.town, agent = %self.ctx.spec.id, phase = %phase,
                    error = %failure.as_ref().map(ToString::to_string).unwrap_or_default(),
                    backoff_ms = backoff.as_millis() as u64, "phase failed; retrying"
                );
                myself.send_after(backoff, move || AgentMsg::RetryPhase { run_id });
            }
            RunStep::Finished { timings } => self.finish_run(myself, timings),
            RunStep::Failed { phase, attempts } => {
                let cause = failure.unwrap_or(PhaseFailure::Panicked(
                    "the run was already over".to_owned(),
                ));
                self.fail_run(phase, attempts, cause)
            }
        }
    }

    /// The session phase ended the run: the agent is recorded and live, and every waiter
    /// gets a report.
    fn finish_run(&mut self, myself: &ActorRef<AgentMsg>, phases: Vec<PhaseTiming>) {
        let Mode::Starting(run) = std::mem::replace(&mut self.mode, Mode::Idle) else {
            return;
        };
        let run = *run;
        if let Some(last) = phases.last() {
            telemetry::phase(self.subject(), last);
        }
        let (Some(live), Some(session_id)) = (run.progress.sdk, run.progress.session_id) else {
            unreachable!("the sdk and session phases fill both");
        };
        self.record_started(&live, &session_id);
        let total_ms = run.started.elapsed().as_millis() as u64;
        let report = StartupReport {
            decision: run.decision,
            prewarmed: run.progress.prewarmed,
            total_ms,
            timings: telemetry::run_timings(&phases, self.boot_timings.take(), total_ms),
            phases,
            snapshot_fallback: run.progress.snapshot_fallback,
            pooled: run.progress.sdk_pooled,
        };
        let is_mayor = self.ctx.spec.role == Role::Mayor;
        if is_mayor && run.prewarm {
            telemetry::mayor_done(self.subject(), true, report.decision, total_ms);
        }
        if is_mayor && !self.waiters.is_empty() {
            telemetry::mayor_done(self.subject(), false, report.decision, total_ms);
        }
        self.session_id = Some(session_id.clone());
        let endpoint = live.endpoint.clone();
        self.set_live(myself, live, &session_id, true);
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

    /// A phase failed past its retry budget: the agent is `dead`, the half-started server
    /// goes, and every waiter gets the [`StartError`] naming the phase.
    fn fail_run(&mut self, phase: StartupPhase, attempts: u32, cause: PhaseFailure) {
        let Mode::Starting(run) = std::mem::replace(&mut self.mode, Mode::Idle) else {
            return;
        };
        if let Some(server) = run.abandon() {
            let grace = self.ctx.parts.options.stop_grace;
            tokio::spawn(async move { stop_server(server.as_ref(), grace).await });
        }
        self.set_status(AgentStatus::Dead);
        tracing::error!(
            town = %self.ctx.parts.town, agent = %self.ctx.spec.id, phase = %phase,
            attempts, error = %cause, "agent start failed"
        );
        let err = Arc::new(StartError {
            agent: self.ctx.spec.id.clone(),
            phase,
            attempts,
            cause,
        });
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Err(Error::Start(err.clone())));
        }
        for b in self.boot_waiters.drain(..) {
            let _ = b.send(false);
        }
    }
}
