//! The reconciler's run on each alarm tick (`ARCHITECTURE.md`, *Workers and the
//! reconciler*): the town's queued events are applied in order — each in one transaction
//! with its processed mark — through the pure [`reconcile`] function, then the pure
//! [`sweep`] looks at the whole town (due retries, idle exits, stale heartbeats). What
//! needs the actors (a dispatch, a worker's exit) comes back as [`Effect`]s for the
//! TownActor.
//!
//! An event about a bead or agent that no longer exists is terminal: marked processed and
//! logged once, never retried (Kilo Gastown PR #3047). So is a row that does not parse.

use std::collections::BTreeSet;
use std::time::Duration;

use gastown_core::policy::{idle_exit_after, DispatchRetry};
use gastown_core::reconciler::{reconcile, sweep, Effect, ReconcileState};
use gastown_core::{AgentId, AgentStatus, BeadStatus, Result, Role, TownStore};

use crate::options::IdleExit;

/// What one run decided.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ReconcileRun {
    /// Work for the actors.
    pub(crate) effects: Vec<Effect>,
    /// How soon something falls due (a worker's idle exit, a dispatch retry): the alarm
    /// ticks no later than this, so a 120 s idle exit is not late by a 300 s idle cadence.
    pub(crate) next_due: Option<Duration>,
    /// Events applied (terminal ones included).
    pub(crate) events: usize,
}

/// Drains the queue and sweeps the town at `now_ms`. `draining`: the container is about to
/// stop, so workers exit after 10 s idle instead of their role's window.
///
/// # Errors
/// `Store` when the store cannot be read or an event's transaction fails (that event stays
/// queued for the next tick; the events before it are applied).
pub(crate) fn run(
    store: &TownStore,
    windows: IdleExit,
    now_ms: i64,
    draining: bool,
) -> Result<ReconcileRun> {
    let mut out = ReconcileRun::default();
    let pending = store.pending_reconcile_events()?;
    let mut state = store.reconcile_state()?;
    for (id, event) in pending {
        out.events += 1;
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(event = id, error = %e, "reconciler: unreadable event dropped");
                store.apply_reconciled(Some(id), &[])?;
                continue;
            }
        };
        let result = reconcile(&state, &event, now_ms);
        if let Some(missing) = &result.missing {
            tracing::info!(event = id, kind = event.kind(), %missing, "reconciler: terminal event");
        }
        store.apply_reconciled(Some(id), &result.actions)?;
        state.apply(&result.actions);
        out.effects.extend(result.effects);
    }
    let running: BTreeSet<AgentId> = store.registry()?.into_iter().map(|e| e.agent).collect();
    let swept = sweep(&state, now_ms, draining);
    store.apply_reconciled(None, &swept.actions)?;
    state.apply(&swept.actions);
    // Idle exits are decided here, with the town's windows (tests shorten them); only a
    // registered worker runs, so one that exited already never exits again.
    out.effects.extend(
        swept
            .effects
            .into_iter()
            .filter(|e| matches!(e, Effect::Dispatch { .. })),
    );
    let exits = exit_due(&state, &running, windows, draining);
    out.effects.extend(
        exits
            .iter()
            .filter(|(_, due)| *due <= now_ms)
            .map(|(agent, _)| Effect::IdleExit {
                agent: agent.clone(),
            }),
    );
    out.next_due = next_due(&state, &exits, now_ms);
    Ok(out)
}

/// Whether a town opened on this store has work for the reconciler right away: a worker
/// in the registry (it resumes with the container and will idle-exit) or a queued event.
/// A store that cannot be read counts as no work (the next tick reports it).
pub(crate) fn has_work_waiting(store: &TownStore) -> bool {
    let workers = store
        .registry()
        .map(|r| r.iter().any(|e| e.role != Role::Mayor))
        .unwrap_or(false);
    workers
        || store
            .pending_reconcile_events()
            .map(|e| !e.is_empty())
            .unwrap_or(false)
}

/// A worker's idle window: the town's (see [`IdleExit`]), or 10 s while the container
/// drains; `None` for the mayor.
fn window(role: Role, windows: IdleExit, draining: bool) -> Option<Duration> {
    match (role, draining) {
        (Role::Mayor, _) => None,
        (_, true) => idle_exit_after(role, true),
        (Role::Polecat, false) => Some(windows.polecat),
        (Role::Refinery, false) => Some(windows.refinery),
    }
}

/// When each running idle worker exits (ms since the Unix epoch): its last activity plus
/// its window.
fn exit_due(
    state: &ReconcileState,
    running: &BTreeSet<AgentId>,
    windows: IdleExit,
    draining: bool,
) -> Vec<(AgentId, i64)> {
    state
        .agents
        .values()
        .filter(|a| a.status == AgentStatus::Idle && running.contains(&a.id))
        .filter_map(|a| {
            let after = window(a.role, windows, draining)?;
            let since = a.last_activity_ms?;
            Some((a.id.clone(), since + after.as_millis() as i64))
        })
        .collect()
}

/// The soonest idle exit still ahead, or retry of a failed dispatch.
fn next_due(state: &ReconcileState, exits: &[(AgentId, i64)], now_ms: i64) -> Option<Duration> {
    let cooldown = DispatchRetry::DEFAULT.cooldown.as_millis() as i64;
    let retries = state
        .beads
        .values()
        .filter(|b| b.status == BeadStatus::Open && b.dispatch_attempts > 0)
        .filter_map(|b| b.last_dispatch_ms.map(|at| at + cooldown));
    exits
        .iter()
        .map(|(_, due)| *due)
        .chain(retries)
        .filter(|due| *due > now_ms)
        .min()
        .map(|due| Duration::from_millis(u64::try_from(due - now_ms).unwrap_or(0) + 1))
}
