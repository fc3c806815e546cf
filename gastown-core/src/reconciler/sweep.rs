//! [`sweep`]: what time alone changed, once per alarm tick.

use std::collections::BTreeMap;

use super::rules::{dispatched_to, released};
use super::{Action, Effect, ReconcileState, Reconciled};
use crate::ids::BeadId;
use crate::policy::{
    elapsed, idle_exit_after, is_heartbeat_stale, should_unhook, DispatchRetry, DispatchVerdict,
};
use crate::role::Role;
use crate::status::{AgentStatus, BeadStatus};
use crate::store::{AgentRecord, BeadRecord};

/// The per-tick rules, at `now_ms` (ms since the Unix epoch); `draining` while the
/// container drains (ARCHITECTURE.md, *Lifecycle timings*). Pure; the caller writes the
/// actions in one transaction (`TownStore::apply_reconciled(None, …)`) and runs the
/// effects. The mayor is left out of every agent rule: it has no hook, no heartbeat and
/// never idle-exits.
///
/// Agents (non-mayor), in this order, each rule seeing the previous ones' result:
///
/// | rule | when | then | source |
/// |---|---|---|---|
/// | stale worker | `working` and [`is_heartbeat_stale`] (older than 90 s, or none) | `idle` | Kilo Gastown PR #3151 ("the stale-heartbeat rule cleans up") |
/// | stale unhook | hooked to a live bead and [`should_unhook`] (`idle`, heartbeat stale) | hook cleared; the bead released if still dispatched to it | Kilo Gastown PR #3151 |
/// | dangling hook | hooked to a bead that is gone, `closed` or `failed` | hook cleared | this project (a deleted bead would keep an idle agent "active work" forever) |
/// | idle exit | `idle`, no hook, and `last_activity_ms` at least [`idle_exit_after`] old (polecat 120 s, refinery 600 s, 10 s draining) or never recorded | [`Effect::IdleExit`] | Kilo Gastown #1450; ARCHITECTURE.md, *Lifecycle timings* |
///
/// Beads:
///
/// | rule | when | then | source |
/// |---|---|---|---|
/// | retry due | `open`, unassigned, `dispatch_attempts > 0`, [`DispatchRetry::next_attempt`] is `Now` (30 s after the last failure) | [`Effect::Dispatch`] with no agent | ARCHITECTURE.md, *Lifecycle timings* |
/// | budget spent | `open`, unassigned, verdict `GiveUp` (attempts at 5; a hand-edited row) | `failed` | ARCHITECTURE.md, *Lifecycle timings* |
/// | orphaned assignment | `open`/`in_progress`, assigned to an agent with no row | released | this project (Kilo Gastown PR #3047's rule, for beads) |
///
/// "Released" is [`reconcile`](super::reconcile)'s: one more failed attempt, unassigned,
/// `open` (or `failed` at 5 attempts). A bead released here is not due again before its
/// cooldown. Effects repeat on every tick until the state shows them done.
pub fn sweep(state: &ReconcileState, now_ms: i64, draining: bool) -> Reconciled {
    let mut actions = Vec::new();
    let mut effects = Vec::new();
    // Beads changed by this sweep, by id: a bead is changed at most once per sweep.
    let mut changed: BTreeMap<BeadId, BeadRecord> = BTreeMap::new();

    for agent in state.agents.values().filter(|a| a.role != Role::Mayor) {
        let status = stale_worker(agent, now_ms, &mut actions);
        let hooked = match agent.hook.as_deref() {
            None => false,
            Some(hook) => match state.beads.get(hook) {
                Some(bead) if bead.is_live() => {
                    let unhook = should_unhook(status, agent.heartbeat_ms, true, now_ms);
                    if unhook {
                        unhook_action(agent, &mut actions);
                        if dispatched_to(bead, &agent.id) && !changed.contains_key(&bead.id) {
                            let error = format!("agent {} stopped sending heartbeats", agent.id);
                            changed.insert(bead.id.clone(), released(bead, error, now_ms));
                        }
                    }
                    !unhook
                }
                _ => {
                    unhook_action(agent, &mut actions);
                    false
                }
            },
        };
        if status == AgentStatus::Idle && !hooked && idle_exit_due(agent, now_ms, draining) {
            effects.push(Effect::IdleExit {
                agent: agent.id.clone(),
            });
        }
    }

    for bead in state.beads.values() {
        if changed.contains_key(&bead.id) {
            continue;
        }
        match (&bead.status, &bead.assignee) {
            (BeadStatus::Open | BeadStatus::InProgress, Some(assignee))
                if !state.agents.contains_key(assignee) =>
            {
                let error = format!("agent {assignee} no longer exists");
                changed.insert(bead.id.clone(), released(bead, error, now_ms));
            }
            (BeadStatus::Open, None) if bead.dispatch_attempts > 0 => {
                match DispatchRetry::DEFAULT.next_attempt(
                    bead.dispatch_attempts,
                    bead.last_dispatch_ms,
                    now_ms,
                ) {
                    DispatchVerdict::Now => effects.push(Effect::Dispatch {
                        bead: bead.id.clone(),
                        agent: None,
                    }),
                    DispatchVerdict::Wait(_) => {}
                    DispatchVerdict::GiveUp => {
                        let failed = BeadRecord {
                            status: BeadStatus::Failed,
                            updated_ms: now_ms,
                            ..bead.clone()
                        };
                        changed.insert(bead.id.clone(), failed);
                    }
                }
            }
            _ => {}
        }
    }

    actions.extend(changed.into_values().map(Action::PutBead));
    Reconciled {
        actions,
        effects,
        missing: None,
    }
}

/// The stale-worker rule: a `working` agent whose heartbeat is stale becomes `idle`.
/// Returns the agent's status after it.
fn stale_worker(agent: &AgentRecord, now_ms: i64, actions: &mut Vec<Action>) -> AgentStatus {
    if agent.status == AgentStatus::Working && is_heartbeat_stale(agent.heartbeat_ms, now_ms) {
        actions.push(Action::SetAgentStatus {
            agent: agent.id.clone(),
            status: AgentStatus::Idle,
        });
        return AgentStatus::Idle;
    }
    agent.status
}

fn unhook_action(agent: &AgentRecord, actions: &mut Vec<Action>) {
    actions.push(Action::SetHook {
        agent: agent.id.clone(),
        hook: None,
    });
}

/// True when the agent's idle timer ([`idle_exit_after`]) has run out: its last activity
/// is at least that old, or was never recorded. Never for the mayor.
fn idle_exit_due(agent: &AgentRecord, now_ms: i64, draining: bool) -> bool {
    idle_exit_after(agent.role, draining).is_some_and(|after| {
        agent
            .last_activity_ms
            .is_none_or(|at| elapsed(at, now_ms) >= after)
    })
}
