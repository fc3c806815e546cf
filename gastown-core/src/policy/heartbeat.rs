//! Heartbeats, unhooking, and the workers' idle exit (ARCHITECTURE.md, *Lifecycle
//! timings*).
//!
//! The bug it fixes (Kilo Gastown PR #3151): a dispatch whose error arrived after the
//! container had accepted the start marked the agent idle; the "idle agent hooked to a
//! live bead" rule then tore the hook out from under a live session. Now such an agent
//! stays `working`, and an idle hooked agent loses its hook only once its heartbeat is
//! stale.

use std::time::Duration;

use crate::role::Role;
use crate::status::AgentStatus;

use super::elapsed;

/// How often an agent reports a heartbeat: 30 s (a Kilo Gastown code value;
/// ARCHITECTURE.md, *Lifecycle timings*).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// A heartbeat older than this is stale: 90 s (Kilo Gastown PR #3151; three missed
/// heartbeats at [`HEARTBEAT_INTERVAL`]).
pub const HEARTBEAT_STALE_AFTER: Duration = Duration::from_secs(90);

/// A polecat exits this long after its session goes idle: 120 s (the 2-minute idle timer
/// of Kilo Gastown #1450).
pub const POLECAT_IDLE_EXIT: Duration = Duration::from_secs(120);

/// A refinery exits this long after its session goes idle: 600 s (a Kilo Gastown code
/// value; ARCHITECTURE.md, *Lifecycle timings*).
pub const REFINERY_IDLE_EXIT: Duration = Duration::from_secs(600);

/// While the container drains, a worker exits this long after going idle: 10 s
/// (a Kilo Gastown code value; ARCHITECTURE.md, *Lifecycle timings*).
pub const DRAINING_IDLE_EXIT: Duration = Duration::from_secs(10);

/// True when an agent should stamp a heartbeat now: it never stamped one
/// (`last_ms` is `None`), or the last one (ms since the Unix epoch) is at least
/// [`HEARTBEAT_INTERVAL`] (30 s) old at `now_ms`. The throttle keeps a busy turn (an SDK
/// event every few ms) from writing the town store on every event; one stamped in the
/// future (clock skew) waits, as [`is_heartbeat_stale`] counts it fresh.
pub fn should_stamp_heartbeat(last_ms: Option<i64>, now_ms: i64) -> bool {
    last_ms.is_none_or(|at| elapsed(at, now_ms) >= HEARTBEAT_INTERVAL)
}

/// True when the heartbeat at `heartbeat_ms` is stale at `now_ms` (both ms since the
/// Unix epoch): older than [`HEARTBEAT_STALE_AFTER`]. No heartbeat at all is stale (the
/// caller stamps one at dispatch, so a just-started agent is not); one stamped in the
/// future (clock skew) is fresh. This is also the rule that reaps a `working` agent whose
/// dispatch failed after the start may have been accepted.
pub fn is_heartbeat_stale(heartbeat_ms: Option<i64>, now_ms: i64) -> bool {
    heartbeat_ms.is_none_or(|at| elapsed(at, now_ms) > HEARTBEAT_STALE_AFTER)
}

/// The "idle agent hooked to a live bead" rule, for an agent that holds a hook: true
/// only when the agent is `idle`, its bead is live (not closed, failed or deleted), and
/// its heartbeat is stale ([`is_heartbeat_stale`]). A fresh heartbeat means a live
/// session may be mid-action and keeps its hook.
///
/// Every other case is `false` here, because it belongs to another rule: a hook on a bead
/// that is no longer live is cleared by that bead's own lifecycle, and a non-idle agent
/// with a stale heartbeat is reaped through [`is_heartbeat_stale`].
pub fn should_unhook(
    agent_status: AgentStatus,
    heartbeat_ms: Option<i64>,
    bead_live: bool,
    now_ms: i64,
) -> bool {
    agent_status == AgentStatus::Idle && bead_live && is_heartbeat_stale(heartbeat_ms, now_ms)
}

/// How long an agent of `role` may sit with an idle session before it exits: polecat
/// [`POLECAT_IDLE_EXIT`] (120 s), refinery [`REFINERY_IDLE_EXIT`] (600 s), either
/// [`DRAINING_IDLE_EXIT`] (10 s) while `draining`. The mayor never idle-exits (`None`),
/// draining or not: it waits for the user, and a drain snapshots it before the container
/// stops.
pub fn idle_exit_after(role: Role, draining: bool) -> Option<Duration> {
    match (role, draining) {
        (Role::Mayor, _) => None,
        (Role::Polecat | Role::Refinery, true) => Some(DRAINING_IDLE_EXIT),
        (Role::Polecat, false) => Some(POLECAT_IDLE_EXIT),
        (Role::Refinery, false) => Some(REFINERY_IDLE_EXIT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;
    const SEC: i64 = 1_000;

    #[test]
    fn staleness_boundary() {
        assert!(!is_heartbeat_stale(Some(NOW - 90 * SEC), NOW));
        assert!(is_heartbeat_stale(Some(NOW - 90 * SEC - 1), NOW));
        assert!(!is_heartbeat_stale(Some(NOW + 60 * SEC), NOW));
        assert!(is_heartbeat_stale(None, NOW));
    }

    #[test]
    fn heartbeat_stamps_are_throttled_to_the_interval() {
        assert!(should_stamp_heartbeat(None, NOW));
        assert!(!should_stamp_heartbeat(Some(NOW), NOW));
        assert!(!should_stamp_heartbeat(Some(NOW - 30 * SEC + 1), NOW));
        assert!(should_stamp_heartbeat(Some(NOW - 30 * SEC), NOW));
        assert!(!should_stamp_heartbeat(Some(NOW + 5 * SEC), NOW));
        // Stamped at the interval, a heartbeat never goes stale.
        assert!(!is_heartbeat_stale(Some(NOW - 30 * SEC), NOW));
    }

    #[test]
    fn an_idle_hooked_agent_keeps_its_hook_while_its_heartbeat_is_fresh() {
        let fresh = Some(NOW - 30 * SEC);
        let stale = Some(NOW - 91 * SEC);
        assert!(!should_unhook(AgentStatus::Idle, fresh, true, NOW));
        assert!(should_unhook(AgentStatus::Idle, stale, true, NOW));
        assert!(should_unhook(AgentStatus::Idle, None, true, NOW));
    }

    #[test]
    fn the_rule_is_only_about_idle_agents_on_live_beads() {
        use AgentStatus::*;
        let stale = Some(NOW - 10 * 60 * SEC);
        assert!(!should_unhook(Idle, stale, false, NOW));
        for status in [Working, Waiting, Stalled, Dead] {
            assert!(!should_unhook(status, stale, true, NOW), "{status}");
        }
    }

    #[test]
    fn idle_exit_timeouts() {
        assert_eq!(
            idle_exit_after(Role::Polecat, false),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            idle_exit_after(Role::Refinery, false),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            idle_exit_after(Role::Polecat, true),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            idle_exit_after(Role::Refinery, true),
            Some(Duration::from_secs(10))
        );
        assert_eq!(idle_exit_after(Role::Mayor, false), None);
        assert_eq!(idle_exit_after(Role::Mayor, true), None);
    }
}
