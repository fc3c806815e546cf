//! The reconciler's per-tick sweep (`gastown_core::reconciler::sweep`) at its time
//! boundaries (ARCHITECTURE.md, *Lifecycle timings*): heartbeats stale after 90 s, idle
//! exits after 120 s (polecat), 600 s (refinery), 10 s draining, never for the mayor.

mod reconciler_support;

use gastown_core::reconciler::{sweep, Action, Effect, ReconcileState, Reconciled};
use gastown_core::{AgentStatus, BeadStatus, Role};
use reconciler_support::*;

fn idle_exit(agent: &str) -> Effect {
    Effect::IdleExit {
        agent: agent_id(agent),
    }
}

fn set_idle(agent: &str) -> Action {
    Action::SetAgentStatus {
        agent: agent_id(agent),
        status: AgentStatus::Idle,
    }
}

fn unhook(agent: &str) -> Action {
    Action::SetHook {
        agent: agent_id(agent),
        hook: None,
    }
}

/// A town of one agent, `role` and `status`, last active and heartbeat at `NOW`.
fn lone(role: Role, status: AgentStatus) -> ReconcileState {
    ReconcileState::from_records([], [agent("a-1", role, status)])
}

#[test]
fn a_quiet_town_sweeps_to_nothing() {
    assert_eq!(sweep(&town(), NOW + SEC, false), Reconciled::default());
    assert_eq!(
        sweep(&ReconcileState::default(), NOW, true),
        Reconciled::default()
    );
}

#[test]
fn a_working_agent_goes_idle_once_its_heartbeat_is_older_than_90_s() {
    let state = town();
    for (after, stale) in [(89, false), (90, false), (91, true)] {
        let r = sweep(&state, NOW + after * SEC, false);
        assert_eq!(
            r.actions.contains(&set_idle("polecat-1")),
            stale,
            "{after} s"
        );
        // Stale and idle now, it loses its hook and its bead is released in the same tick.
        assert_eq!(r.actions.contains(&unhook("polecat-1")), stale, "{after} s");
        let released = r.actions.iter().any(|a| {
            matches!(a, Action::PutBead(b) if b.id.as_str() == "b-1"
                && b.status == BeadStatus::Open && b.assignee.is_none()
                && b.dispatch_attempts == 1)
        });
        assert_eq!(released, stale, "{after} s");
        assert_eq!(r.missing, None);
    }
}

#[test]
fn an_idle_hooked_agent_keeps_its_hook_while_its_heartbeat_is_fresh() {
    let mut state = town();
    state.apply(&[set_idle("polecat-1")]);
    for (after, stale) in [(89, false), (90, false), (91, true)] {
        let r = sweep(&state, NOW + after * SEC, false);
        assert_eq!(r.actions.contains(&unhook("polecat-1")), stale, "{after} s");
        assert!(!r.actions.contains(&set_idle("polecat-1")), "already idle");
        // Hooked, it does not idle-exit; unhooked at 91 s its last activity is still
        // younger than 120 s.
        assert!(r.effects.is_empty(), "{after} s: {:?}", r.effects);
    }
}

#[test]
fn the_mayor_is_left_alone() {
    let mut state = lone(Role::Mayor, AgentStatus::Working);
    state.agents.get_mut("a-1").unwrap().heartbeat_ms = None;
    state.agents.get_mut("a-1").unwrap().last_activity_ms = None;
    for draining in [false, true] {
        assert!(sweep(&state, NOW + 86_400 * SEC, draining).is_empty());
    }
    state.apply(&[set_idle("a-1")]);
    for draining in [false, true] {
        assert!(sweep(&state, NOW + 86_400 * SEC, draining).is_empty());
    }
}

#[test]
fn idle_exit_timers_by_role() {
    let cases = [
        (Role::Polecat, false, 119, false),
        (Role::Polecat, false, 120, true),
        (Role::Refinery, false, 599, false),
        (Role::Refinery, false, 600, true),
        (Role::Polecat, true, 9, false),
        (Role::Polecat, true, 10, true),
        (Role::Refinery, true, 9, false),
        (Role::Refinery, true, 10, true),
    ];
    for (role, draining, after, exits) in cases {
        let state = lone(role, AgentStatus::Idle);
        // A fresh heartbeat does not hold an idle exit back: activity is what counts.
        let mut fresh = state.clone();
        fresh.agents.get_mut("a-1").unwrap().heartbeat_ms = Some(NOW + after * SEC);
        for state in [state, fresh] {
            let r = sweep(&state, NOW + after * SEC, draining);
            let want: &[Effect] = if exits { &[idle_exit("a-1")] } else { &[] };
            assert_eq!(
                r.effects, want,
                "{role} draining={draining} after {after} s"
            );
            assert!(r.actions.is_empty());
        }
    }
}

#[test]
fn only_an_idle_unhooked_worker_idle_exits() {
    let late = NOW + 3_600 * SEC;
    for status in [
        AgentStatus::Waiting,
        AgentStatus::Stalled,
        AgentStatus::Dead,
    ] {
        let r = sweep(&lone(Role::Polecat, status), late, true);
        assert!(r.effects.is_empty(), "{status}");
    }
    // No recorded activity: nothing says it is in use.
    let mut never = lone(Role::Refinery, AgentStatus::Idle);
    never.agents.get_mut("a-1").unwrap().last_activity_ms = None;
    assert_eq!(sweep(&never, NOW, false).effects, [idle_exit("a-1")]);
    // Hooked to a live bead with a fresh heartbeat: it waits for its work.
    let mut hooked = town();
    hooked.apply(&[set_idle("polecat-1")]);
    let agent = hooked.agents.get_mut("polecat-1").unwrap();
    agent.last_activity_ms = Some(NOW - 3_600 * SEC);
    assert!(sweep(&hooked, NOW + 30 * SEC, false).effects.is_empty());
}

#[test]
fn a_hook_on_a_deleted_or_finished_bead_is_cleared() {
    let mut state = town();
    state.beads.remove("b-1");
    let r = sweep(&state, NOW + SEC, false);
    assert_eq!(r.actions, [unhook("polecat-1")]);

    let mut state = town();
    state.beads.get_mut("b-1").unwrap().status = BeadStatus::Closed;
    let r = sweep(&state, NOW + SEC, false);
    assert_eq!(r.actions, [unhook("polecat-1")]);
}

#[test]
fn a_bead_assigned_to_a_vanished_agent_is_released() {
    let mut state = town();
    state.agents.remove("polecat-1");
    let r = sweep(&state, NOW + SEC, false);
    let [Action::PutBead(bead)] = r.actions.as_slice() else {
        panic!("{r:?}");
    };
    assert_eq!(
        (bead.status, bead.assignee.clone()),
        (BeadStatus::Open, None)
    );
    assert!(bead.last_error.as_deref().unwrap().contains("polecat-1"));
    // Released now, it is due 30 s later, not in this tick.
    assert!(r.effects.is_empty());
}

#[test]
fn retries_are_due_after_the_cooldown_and_a_spent_budget_fails() {
    let mut state = ReconcileState::from_records([issue("b-1"), issue("b-2"), issue("b-3")], []);
    for (id, attempts) in [("b-1", 1), ("b-2", 4), ("b-3", 5)] {
        let b = state.beads.get_mut(id).unwrap();
        b.dispatch_attempts = attempts;
        b.last_dispatch_ms = Some(NOW);
    }
    // A never-dispatched open issue is the sling's to dispatch, not the sweep's.
    state.beads.insert(bead_id("b-new"), issue("b-new"));

    let early = sweep(&state, NOW + 29 * SEC, false);
    assert!(early.effects.is_empty());
    let due = sweep(&state, NOW + 30 * SEC, false);
    let dispatched: Vec<&str> = due
        .effects
        .iter()
        .map(|e| match e {
            Effect::Dispatch { bead, agent: None } => bead.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(dispatched, ["b-1", "b-2"]);
    for r in [early, due] {
        let [Action::PutBead(spent)] = r.actions.as_slice() else {
            panic!("{r:?}");
        };
        assert_eq!(
            (spent.id.as_str(), spent.status),
            ("b-3", BeadStatus::Failed)
        );
    }
}
