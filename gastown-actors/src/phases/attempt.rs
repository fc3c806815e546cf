//! One attempt of one phase as a supervised step: an abortable task, not an actor. It runs
//! the phase under its timeout inside a task of its own, so a panic is caught as a
//! [`PhaseFailure::Panicked`] attempt instead of killing the agent, and it reports through
//! a callback, so this module never names the AgentActor's message type
//! (`ARCHITECTURE.md`, *Crates and actors*).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gastown_core::{Result, StartupPhase};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::sdk::{reap_booting, stop_sdk};
use crate::boot_scheduler::BootPriority;
use crate::context::{AgentContext, StartProgress};
use crate::error::PhaseFailure;

/// The outcome of one phase attempt.
#[derive(Debug)]
pub(crate) struct AttemptDone {
    /// The attempt number (1-based), so a stale result is recognised.
    pub(crate) attempt: u32,
    /// When the attempt started.
    pub(crate) started: Instant,
    /// How long it ran.
    pub(crate) elapsed: Duration,
    /// The progress it produced, or why it failed.
    pub(crate) result: std::result::Result<StartProgress, PhaseFailure>,
}

/// Runs attempt `attempt` of `phase` — the future `run` makes from the agent's context and
/// `progress` — under `timeout` (ms precision) in a task of its own, and hands the outcome
/// to `report`.
///
/// A server boot (the sdk phase with no server carried into the run) first waits for a
/// slot of the runtime's boot scheduler, outside the timeout. When `report` gives the
/// outcome back (its receiver is gone), a server the phase started is stopped here, since
/// nobody else will own it. Aborting the returned handle drops the phase mid-way (the sdk
/// phase's guard then kills a half-booted server) and reports nothing. A failed or
/// timed-out attempt reports only after the server it was booting is gone (SIGKILL after
/// the stop grace, waited for), so a retry never runs beside it.
pub(crate) fn spawn_attempt<F, Fut>(
    ctx: AgentContext,
    progress: StartProgress,
    phase: StartupPhase,
    attempt: u32,
    timeout: Duration,
    run: F,
    report: impl FnOnce(AttemptDone) -> std::result::Result<(), Box<AttemptDone>> + Send + 'static,
) -> AbortHandle
where
    F: FnOnce(AgentContext, StartProgress) -> Fut + Send + 'static,
    Fut: Future<Output = Result<StartProgress>> + Send + 'static,
{
    let grace = ctx.parts.options.stop_grace;
    let started = Instant::now();
    let after = ctx.clone();
    let step = tokio::spawn(async move {
        // Queueing behind other boots is not this server being slow: the slot is taken
        // outside the timeout (a carried server is kept, not booted). A failed attempt
        // gives it back; a booted server carries it into the session phase, and the run
        // gives it back when it ends (`StartProgress::boot_slot`).
        let slot = match &ctx.parts.boot_scheduler {
            Some(s) if phase == StartupPhase::Sdk && progress.sdk.is_none() => {
                Some(Arc::new(s.acquire(BootPriority::of(ctx.spec.role)).await))
            }
            _ => None,
        };
        let outcome = tokio::time::timeout(timeout, run(ctx, progress)).await;
        match (outcome, slot) {
            (Ok(Ok(mut progress)), Some(slot)) => {
                progress.boot_slot = Some(slot);
                Ok(Ok(progress))
            }
            (outcome, _) => outcome,
        }
    });
    let abort = step.abort_handle();
    tokio::spawn(async move {
        let result = match step.await {
            Ok(Ok(Ok(progress))) => Ok(progress),
            Ok(Ok(Err(e))) => Err(PhaseFailure::Failed(e)),
            Ok(Err(_elapsed)) => Err(PhaseFailure::TimedOut {
                after_ms: timeout.as_millis() as u64,
            }),
            Err(e) if e.is_panic() => Err(PhaseFailure::Panicked(panic_message(e.into_panic()))),
            // Aborted: whoever aborted it no longer waits for an outcome.
            Err(_) => return,
        };
        if result.is_err() {
            // A failed attempt's half-booted server is gone before anyone hears of the
            // failure: a retry never overlaps it.
            reap_booting(&after).await;
        }
        let done = AttemptDone {
            attempt,
            started,
            elapsed: started.elapsed(),
            result,
        };
        if let Err(unclaimed) = report(done) {
            if let Ok(StartProgress {
                sdk: Some(live), ..
            }) = unclaimed.result
            {
                stop_sdk(&live, grace).await;
            }
        }
    });
    abort
}

/// The text of a panic payload (`panic!` with a string or a format), else a placeholder.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}
