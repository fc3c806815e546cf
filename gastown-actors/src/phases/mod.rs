//! The five startup phases, `token → hydrate → worktrees → sdk → session`, as plain async
//! functions — one file each — and [`spawn_attempt`], which runs one attempt of one phase
//! as a supervised step.
//!
//! A step is an abortable task, not an actor: it runs the phase under its timeout inside
//! a task of its own (so a panic is caught as a [`PhaseFailure::Panicked`] attempt instead
//! of killing the agent), and reports through a callback, so this module never names the
//! AgentActor's message type.

mod branch_store;
mod hydrate;
mod sdk;
mod server;
mod session;
mod token;
mod worktrees;

pub(crate) use branch_store::save as save_branch;
pub(crate) use sdk::{adopt, stop_sdk, stop_server};
pub(crate) use server::{server_lock, ServerBoot};
pub(crate) use worktrees::{git, refresh_browse_worktrees, BrowseOutcome, BRANCH_EXISTS};

use std::time::Duration;

use gastown_core::{Result, StartupPhase};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::boot_scheduler::BootPriority;
use crate::context::{AgentContext, StartProgress};
use crate::error::PhaseFailure;

/// Runs one phase on `progress` and returns the updated progress.
pub(crate) async fn run_phase(
    phase: StartupPhase,
    ctx: &AgentContext,
    progress: StartProgress,
) -> Result<StartProgress> {
    match phase {
        StartupPhase::Token => token::run(ctx, progress).await,
        StartupPhase::Hydrate => hydrate::run(ctx, progress).await,
        StartupPhase::Worktrees => worktrees::run(ctx, progress).await,
        StartupPhase::Sdk => sdk::run(ctx, progress).await,
        StartupPhase::Session => session::run(ctx, progress).await,
    }
}

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

/// Runs attempt `attempt` of `phase` under `timeout` in a task of its own and hands the
/// outcome to `report`. When `report` gives the outcome back (its receiver is gone), a
/// server the phase started is stopped here, since nobody else will own it. Aborting the
/// returned handle drops the phase mid-way (the sdk phase's guard then kills a
/// half-booted server) and reports nothing. A failed or timed-out attempt reports only
/// after the server it was booting is gone (SIGKILL after the stop grace, waited for),
/// so a retry never runs beside it.
pub(crate) fn spawn_attempt(
    ctx: AgentContext,
    progress: StartProgress,
    phase: StartupPhase,
    attempt: u32,
    timeout: Duration,
    report: impl FnOnce(AttemptDone) -> std::result::Result<(), Box<AttemptDone>> + Send + 'static,
) -> AbortHandle {
    let grace = ctx.parts.options.stop_grace;
    let started = Instant::now();
    let after = ctx.clone();
    let step = tokio::spawn(async move {
        // A server boot first waits for a slot of the runtime's boot scheduler (a carried
        // server is kept, not booted), outside the phase's timeout: queueing behind other
        // boots is not this server being slow. The slot is held until the phase ends.
        let _slot = match &ctx.parts.boot_scheduler {
            Some(s) if phase == StartupPhase::Sdk && progress.sdk.is_none() => {
                Some(s.acquire(BootPriority::of(ctx.spec.role)).await)
            }
            _ => None,
        };
        tokio::time::timeout(timeout, run_phase(phase, &ctx, progress)).await
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
            sdk::reap_booting(&after).await;
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
