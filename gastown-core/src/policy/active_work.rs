//! "Does the town have active work?" (ARCHITECTURE.md, *Lifecycle timings*) — the input
//! of the alarm cadence, the health probes and the idle stop.
//!
//! The bug it fixes (Kilo Gastown #1450): a mayor waiting for the user counted as working,
//! so every town with a mayor ticked at 5 s and kept its container awake forever. Only
//! non-mayor work counts.

use std::time::Duration;

use crate::role::Role;
use crate::status::{AgentStatus, BeadStatus};

use super::elapsed;

/// A stalled non-mayor agent counts as active work while its last activity is younger
/// than this: 30 min (a Kilo Gastown code value; ARCHITECTURE.md, *Lifecycle timings*).
/// Past it, the stall no longer keeps the town awake.
pub const STALLED_ACTIVE_WINDOW: Duration = Duration::from_secs(30 * 60);

/// The bead kind of an issue (`beads.kind`; ARCHITECTURE.md, *Vocabulary*).
pub const BEAD_KIND_ISSUE: &str = "issue";

/// The bead kind of a merge request (`beads.kind`; ARCHITECTURE.md, *Vocabulary*).
pub const BEAD_KIND_MERGE_REQUEST: &str = "merge_request";

/// What [`has_active_work`] needs to know about one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    /// Its role.
    pub role: Role,
    /// Its worker-side status.
    pub status: AgentStatus,
    /// True when it holds a hook (is bound to a bead).
    pub has_hook: bool,
    /// When it last did something, ms since the Unix epoch (how long a stall has lasted).
    pub last_activity_ms: Option<i64>,
    /// When it last reported a heartbeat, ms since the Unix epoch.
    pub heartbeat_ms: Option<i64>,
}

/// What [`has_active_work`] needs to know about one bead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeadView {
    /// Its kind (`issue`, `merge_request`, `convoy`, …).
    pub kind: String,
    /// Its status.
    pub status: BeadStatus,
    /// True when an agent is assigned to it.
    pub assigned: bool,
}

/// The town's agents and beads, as [`has_active_work`] sees them. Built from the town
/// store's rows by `gastown_core::store::town_view`, or by hand in tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TownView {
    /// Every agent of the town.
    pub agents: Vec<AgentView>,
    /// Every bead of the town.
    pub beads: Vec<BeadView>,
}

/// True when the town has active work at `now_ms` (ms since the Unix epoch), per
/// ARCHITECTURE.md, *Lifecycle timings* (Kilo Gastown #1450 and PR #3151) — any of:
///
/// - a non-mayor agent `working`;
/// - a non-mayor agent `stalled` whose last activity is younger than
///   [`STALLED_ACTIVE_WINDOW`] (30 min; a stall with no recorded activity does not count,
///   since nothing would ever end it and the container would never sleep);
/// - an `idle` agent holding a hook (its bead is waiting to be re-dispatched);
/// - a `merge_request` bead `open` or `in_progress`;
/// - an `issue` bead `open` and unassigned.
///
/// The mayor's own status never counts: a mayor `waiting` for the user (or `working` on
/// a reply) is not active work, which is what lets an idle town's container sleep.
pub fn has_active_work(town: &TownView, now_ms: i64) -> bool {
    town.agents.iter().any(|a| agent_is_active(a, now_ms)) || town.beads.iter().any(bead_is_active)
}

fn agent_is_active(agent: &AgentView, now_ms: i64) -> bool {
    if agent.status == AgentStatus::Idle && agent.has_hook {
        return true;
    }
    if agent.role == Role::Mayor {
        return false;
    }
    match agent.status {
        AgentStatus::Working => true,
        AgentStatus::Stalled => agent
            .last_activity_ms
            .is_some_and(|at| elapsed(at, now_ms) < STALLED_ACTIVE_WINDOW),
        AgentStatus::Idle | AgentStatus::Waiting | AgentStatus::Dead => false,
    }
}

fn bead_is_active(bead: &BeadView) -> bool {
    match bead.kind.as_str() {
        BEAD_KIND_MERGE_REQUEST => {
            matches!(bead.status, BeadStatus::Open | BeadStatus::InProgress)
        }
        BEAD_KIND_ISSUE => bead.status == BeadStatus::Open && !bead.assigned,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;
    const MIN: i64 = 60_000;

    fn agent(role: Role, status: AgentStatus) -> AgentView {
        AgentView {
            role,
            status,
            has_hook: false,
            last_activity_ms: Some(NOW),
            heartbeat_ms: Some(NOW),
        }
    }

    fn bead(kind: &str, status: BeadStatus, assigned: bool) -> BeadView {
        BeadView {
            kind: kind.into(),
            status,
            assigned,
        }
    }

    fn with_agent(a: AgentView) -> TownView {
        TownView {
            agents: vec![a],
            beads: vec![],
        }
    }

    fn with_bead(b: BeadView) -> TownView {
        TownView {
            agents: vec![],
            beads: vec![b],
        }
    }

    #[test]
    fn an_empty_town_has_no_active_work() {
        assert!(!has_active_work(&TownView::default(), NOW));
    }

    #[test]
    fn agent_statuses_by_role() {
        use AgentStatus::*;
        for role in [Role::Polecat, Role::Refinery] {
            assert!(has_active_work(&with_agent(agent(role, Working)), NOW));
            for status in [Idle, Waiting, Dead] {
                assert!(!has_active_work(&with_agent(agent(role, status)), NOW));
            }
        }
        for status in [Idle, Working, Waiting, Stalled, Dead] {
            assert!(
                !has_active_work(&with_agent(agent(Role::Mayor, status)), NOW),
                "a {status} mayor is not active work"
            );
        }
    }

    #[test]
    fn a_stall_counts_for_thirty_minutes() {
        let mut a = agent(Role::Polecat, AgentStatus::Stalled);
        a.last_activity_ms = Some(NOW - 30 * MIN + 1);
        assert!(has_active_work(&with_agent(a.clone()), NOW));
        a.last_activity_ms = Some(NOW - 30 * MIN);
        assert!(!has_active_work(&with_agent(a.clone()), NOW));
        a.last_activity_ms = None;
        assert!(!has_active_work(&with_agent(a.clone()), NOW));
        // Activity stamped in the future (clock skew) is a fresh stall.
        a.last_activity_ms = Some(NOW + MIN);
        assert!(has_active_work(&with_agent(a), NOW));
    }

    #[test]
    fn an_idle_agent_holding_a_hook_is_active_work() {
        for role in [Role::Polecat, Role::Refinery, Role::Mayor] {
            let mut a = agent(role, AgentStatus::Idle);
            a.has_hook = true;
            assert!(has_active_work(&with_agent(a), NOW), "{role}");
        }
        let mut dead = agent(Role::Polecat, AgentStatus::Dead);
        dead.has_hook = true;
        assert!(!has_active_work(&with_agent(dead), NOW));
    }

    #[test]
    fn beads() {
        use BeadStatus::*;
        for status in [Open, InProgress] {
            assert!(has_active_work(
                &with_bead(bead("merge_request", status, true)),
                NOW
            ));
        }
        for status in [InReview, Closed, Failed] {
            assert!(!has_active_work(
                &with_bead(bead("merge_request", status, false)),
                NOW
            ));
        }
        assert!(has_active_work(&with_bead(bead("issue", Open, false)), NOW));
        assert!(!has_active_work(&with_bead(bead("issue", Open, true)), NOW));
        for status in [InProgress, InReview, Closed, Failed] {
            assert!(!has_active_work(
                &with_bead(bead("issue", status, false)),
                NOW
            ));
        }
        for status in [Open, InProgress] {
            assert!(!has_active_work(
                &with_bead(bead("convoy", status, false)),
                NOW
            ));
        }
    }
}
