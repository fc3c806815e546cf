//! One start of the agent: the five phases `token → hydrate → worktrees → sdk → session`
//! driven by the pure [`StartRun`] machine, one supervised attempt at a time
//! ([`phases::spawn_attempt`]: a timeout, a panic caught as a failed attempt, an abort that
//! drops a half-done phase). The run ends with a [`StartupReport`] for every waiter, or a
//! [`StartError`] naming the phase.

use std::sync::Arc;

use gastown_core::policy::{AttemptOutcome, RunStep, StartRun};
use gastown_core::{AgentStatus, EnsureDecision, ProcessHandle, Role, StartupReport};
use ractor::ActorRef;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{AgentMsg, AgentState, Mode};
use crate::context::StartProgress;
use crate::error::{Error, PhaseFailure, StartError};
use crate::phases::{self, refresh_browse_worktrees, stop_server, AttemptDone};
use crate::ready::{BrowseState, MayorReady};
use crate::telemetry;

/// One start in flight.
#[derive(Debug)]
pub(super) struct Run {
    /// Tells this run's attempt results from a late one of an abandoned run.
    id: u64,
    /// The ensure decision that began it (reported to every waiter).
    pub(super) decision: EnsureDecision,
    /// When the earliest waiter asked (or the prewarm began).
    started: Instant,
    /// What the phases produced so far; a retried phase starts from here.
    progress: StartProgress,
    /// Which phase and attempt run next, and the retry budget.
    machine: StartRun,
    /// Started by boot hydration rather than by a caller.
    pub(super) prewarm: bool,
    /// Aborts the attempt in flight (dropping the phase, whose guard kills a half-booted
    /// server).
    attempt: Option<AbortHandle>,
}

impl Run {
    /// Aborts the attempt in flight and returns the server the run holds, if any.
    pub(super) fn abandon(self) -> Option<Arc<dyn ProcessHandle>> {
        if let Some(attempt) = &self.attempt {
            attempt.abort();
        }
        self.progress.sdk.map(|l| l.process)
    }
}

impl AgentState {
    /// Begins a run with `decision`: the agent is `working` until it ends.
    pub(super) fn begin_run(
        &mut self,
        myself: &ActorRef<AgentMsg>,
        decision: EnsureDecision,
        prewarm: bool,
    ) {
        if !prewarm {
            self.record_decision(decision);
        }
        // After a configuration change the resumed session gets the new model recorded,
        // whether or not a server was running.
        let push_model = std::mem::take(&mut self.spec_changed);
        let started = self
            .waiters
            .iter()
            .map(|w| w.requested)
            .min()
            .unwrap_or_else(Instant::now);
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

    /// Runs the machine's current attempt in its own task, which reports back with
    /// [`AgentMsg::AttemptDone`].
    fn spawn_attempt(&mut self, myself: &ActorRef<AgentMsg>) {
        let Mode::Starting(run) = &mut self.mode else {
            return;
        };
        let phase = run.machine.phase();
        let me = myself.clone();
        let run_id = run.id;
        run.attempt = Some(phases::spawn_attempt(
            self.ctx.clone(),
            run.progress.clone(),
            phase,
            run.machine.attempt(),
            self.ctx.parts.options.timeout(phase),
            move |done| {
                me.cast(AgentMsg::AttemptDone {
                    run_id,
                    done: Box::new(done),
                })
                .or_else(|e| match e {
                    // The agent is gone: hand the outcome back so its server is stopped.
                    ractor::MessagingErr::SendErr(AgentMsg::AttemptDone { done, .. }) => Err(done),
                    // Any other error carries no message: nothing is left to free.
                    _ => Ok(()),
                })
            },
        ));
    }

    pub(super) fn on_retry(&mut self, myself: &ActorRef<AgentMsg>, run_id: u64) {
        if matches!(&self.mode, Mode::Starting(run) if run.id == run_id) {
            self.spawn_attempt(myself);
        }
    }

    pub(super) fn on_attempt_done(
        &mut self,
        myself: &ActorRef<AgentMsg>,
        run_id: u64,
        done: AttemptDone,
    ) {
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
                let outcome = AttemptOutcome::Succeeded {
                    started_at,
                    took: done.elapsed,
                };
                (outcome, None)
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

    /// A late result (its run was abandoned by a drain, or replaced): free what it started,
    /// outside the mailbox.
    fn free_late(&self, done: AttemptDone) {
        if let Ok(progress) = done.result {
            if let Some(live) = progress.sdk {
                let grace = self.ctx.parts.options.stop_grace;
                tokio::spawn(async move { stop_server(live.process.as_ref(), grace).await });
            }
        }
    }

    fn finish_run(&mut self, myself: &ActorRef<AgentMsg>, phases: Vec<gastown_core::PhaseTiming>) {
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
        let store = &self.ctx.parts.store;
        let id = &self.ctx.spec.id;
        let is_mayor = self.ctx.spec.role == Role::Mayor;
        // The mayor alive between user messages is `waiting` (not active work).
        let status = if is_mayor {
            AgentStatus::Waiting
        } else {
            AgentStatus::Idle
        };
        let saved = store
            .set_session_id(id, Some(&session_id))
            .and_then(|_| store.set_config_hash(id, Some(&live.config_hash)))
            .and_then(|_| store.register_entry(&self.ctx.spec.registry_entry()));
        if let Err(e) = saved {
            tracing::warn!(agent = %id, error = %e, "recording the started agent");
        }
        self.set_status(status);
        // A start counts as activity: the mayor's idle-stop quiet window and a worker's
        // idle-exit window start here, not at an unknown (an `ensure_mayor` that only
        // confirms it does not count, or a dashboard polling it would keep the container
        // up forever).
        let now = self.ctx.parts.clock.now_ms();
        if let Err(e) = store.touch_activity(id, now) {
            tracing::warn!(agent = %id, error = %e, "recording activity");
        }
        let total_ms = run.started.elapsed().as_millis() as u64;
        let mut timings: std::collections::BTreeMap<String, u64> = phases
            .iter()
            .map(|t| (telemetry::phase_name(t.phase).to_owned(), t.duration_ms))
            .collect();
        if let Some((registered, registry_ms)) = self.boot_timings.take() {
            timings.insert(telemetry::REGISTRY_FETCH_MS.into(), registry_ms);
            let name = if registered {
                telemetry::MAYOR_RESUME_MS
            } else {
                telemetry::MAYOR_PREWARM_MS
            };
            timings.insert(name.into(), total_ms);
        }
        let report = StartupReport {
            decision: run.decision,
            prewarmed: run.progress.prewarmed,
            total_ms,
            phases,
            timings,
            snapshot_fallback: run.progress.snapshot_fallback,
            pooled: run.progress.sdk_pooled,
        };
        if is_mayor && run.prewarm {
            telemetry::mayor_done(self.subject(), true, report.decision, total_ms);
        }
        if is_mayor && !self.waiters.is_empty() {
            telemetry::mayor_done(self.subject(), false, report.decision, total_ms);
        }
        self.session_id = Some(session_id.clone());
        let endpoint = live.endpoint.clone();
        self.set_live(myself, live, &session_id);
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

    fn fail_run(&mut self, phase: gastown_core::StartupPhase, attempts: u32, cause: PhaseFailure) {
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
