//! Town fixtures shared by the reconciler's test files: ids, beads dispatched to agents,
//! and the actor side of a dispatch done by hand.
#![allow(dead_code, unreachable_pub)]

use gastown_core::reconciler::{Action, ReconcileState};
use gastown_core::store::{AgentRecord, BeadRecord};
use gastown_core::{AgentId, AgentStatus, BeadId, BeadStatus, Role};

/// A fixed "now", ms since the Unix epoch.
pub const NOW: i64 = 1_700_000_000_000;
/// One second, in ms.
pub const SEC: i64 = 1_000;

pub fn agent_id(id: &str) -> AgentId {
    AgentId::new(id).unwrap()
}

pub fn bead_id(id: &str) -> BeadId {
    BeadId::new(id).unwrap()
}

/// An open issue created at `NOW - 10 min`.
pub fn issue(id: &str) -> BeadRecord {
    BeadRecord::issue(bead_id(id), &format!("Fix {id}"), "do it", NOW - 600 * SEC)
}

/// An agent of `role` with `status`, heartbeat and activity at `NOW`.
pub fn agent(id: &str, role: Role, status: AgentStatus) -> AgentRecord {
    let mut a = AgentRecord::new(agent_id(id), role);
    a.status = status;
    a.heartbeat_ms = Some(NOW);
    a.last_activity_ms = Some(NOW);
    a
}

/// What the actors do on a dispatch (the reconciler's dispatch contract): the bead
/// `in_progress`, assigned to the agent, and the agent hooked to it and `working`, with a
/// heartbeat stamped at `at_ms`.
pub fn dispatch(state: &mut ReconcileState, bead: &str, agent: &str, at_ms: i64) -> Vec<Action> {
    let mut b = state.beads[bead].clone();
    b.status = BeadStatus::InProgress;
    b.assignee = Some(agent_id(agent));
    b.updated_ms = at_ms;
    let actions = vec![
        Action::PutBead(b),
        Action::SetHook {
            agent: agent_id(agent),
            hook: Some(bead_id(bead)),
        },
        Action::SetAgentStatus {
            agent: agent_id(agent),
            status: AgentStatus::Working,
        },
    ];
    state.apply(&actions);
    if let Some(a) = state.agents.get_mut(agent) {
        a.heartbeat_ms = Some(at_ms);
        a.last_activity_ms = Some(at_ms);
    }
    actions
}

/// A town with polecat `polecat-1` (idle), refinery `refinery-1` (idle), the mayor
/// (waiting) and issue `b-1` dispatched to `polecat-1` at `NOW`.
pub fn town() -> ReconcileState {
    let mut state = ReconcileState::from_records(
        [issue("b-1")],
        [
            agent("mayor", Role::Mayor, AgentStatus::Waiting),
            agent("polecat-1", Role::Polecat, AgentStatus::Idle),
            agent("refinery-1", Role::Refinery, AgentStatus::Idle),
        ],
    );
    dispatch(&mut state, "b-1", "polecat-1", NOW);
    state
}
