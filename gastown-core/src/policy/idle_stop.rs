//! Stopping an idle town's container (ARCHITECTURE.md, *Lifecycle timings*; Kilo
//! Gastown PR #3113's `stopContainerIfIdle`, shipped in PR #2974).
//!
//! Without it, a container whose sleep timer is kept alive by anything (a dashboard
//! terminal's keep-alives in Kilo Gastown PR #3113) runs forever; that PR counted 300+
//! containers for ~100 active users.

use std::time::Duration;

use crate::status::AgentStatus;

use super::elapsed;

/// The mayor must have been quiet (idle, waiting) for longer than this: 5 min
/// (Kilo Gastown PR #3113).
pub const IDLE_STOP_MAYOR_QUIET: Duration = Duration::from_secs(5 * 60);

/// At most one stop attempt per this span: 2 min (Kilo Gastown PR #3113), so a slow or failing
/// stop does not thrash. A failed stop is retried on a later tick: with no active work
/// the alarm ticks every 300 s, past the throttle.
pub const IDLE_STOP_THROTTLE: Duration = Duration::from_secs(2 * 60);

/// What [`should_stop_idle_container`] looks at. Times are ms since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleStopInput {
    /// The result of [`has_active_work`](super::has_active_work).
    pub active_work: bool,
    /// The mayor's stored status, `None` when the town has no mayor row.
    pub mayor_status: Option<AgentStatus>,
    /// When the mayor last did something, `None` if never recorded.
    pub mayor_last_activity_ms: Option<i64>,
    /// The container is running (and, where the runtime reports it, healthy); stopping
    /// anything else is pointless.
    pub container_running_healthy: bool,
    /// When the last stop was attempted (the caller persists it in the town store's
    /// time kv before calling stop), `None` if never.
    pub last_stop_attempt_ms: Option<i64>,
}

/// True when the alarm should stop the town's container now (`now_ms`: ms since the Unix
/// epoch). All of:
///
/// - no active work;
/// - the mayor is quiet: `idle`, `waiting`, `dead` or absent, and its last activity is
///   older than [`IDLE_STOP_MAYOR_QUIET`] (5 min). A quiet mayor with no recorded
///   activity counts as quiet long enough: this runtime has no platform sleep timer to
///   fall back on (Kilo Gastown had one), so an unknown must not keep a container up forever;
/// - the container is running/healthy;
/// - no attempt within [`IDLE_STOP_THROTTLE`] (2 min).
pub fn should_stop_idle_container(input: IdleStopInput, now_ms: i64) -> bool {
    should_stop_idle_container_after(input, IDLE_STOP_MAYOR_QUIET, now_ms)
}

/// [`should_stop_idle_container`] with the mayor's quiet window set by the town (its
/// options) instead of the default [`IDLE_STOP_MAYOR_QUIET`].
pub fn should_stop_idle_container_after(
    input: IdleStopInput,
    quiet: Duration,
    now_ms: i64,
) -> bool {
    if input.active_work || !input.container_running_healthy {
        return false;
    }
    let mayor_quiet = match input.mayor_status {
        None | Some(AgentStatus::Idle | AgentStatus::Waiting | AgentStatus::Dead) => true,
        Some(AgentStatus::Working | AgentStatus::Stalled) => false,
    };
    let quiet_long_enough = input
        .mayor_last_activity_ms
        .is_none_or(|at| elapsed(at, now_ms) > quiet);
    let throttled = input
        .last_stop_attempt_ms
        .is_some_and(|at| elapsed(at, now_ms) < IDLE_STOP_THROTTLE);
    mayor_quiet && quiet_long_enough && !throttled
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;
    const MIN: i64 = 60_000;

    fn stoppable() -> IdleStopInput {
        IdleStopInput {
            active_work: false,
            mayor_status: Some(AgentStatus::Waiting),
            mayor_last_activity_ms: Some(NOW - 6 * MIN),
            container_running_healthy: true,
            last_stop_attempt_ms: None,
        }
    }

    #[test]
    fn an_idle_town_is_stopped() {
        assert!(should_stop_idle_container(stoppable(), NOW));
    }

    #[test]
    fn active_work_or_a_stopped_container_blocks() {
        let mut i = stoppable();
        i.active_work = true;
        assert!(!should_stop_idle_container(i, NOW));
        let mut i = stoppable();
        i.container_running_healthy = false;
        assert!(!should_stop_idle_container(i, NOW));
    }

    #[test]
    fn mayor_status() {
        use AgentStatus::*;
        for (status, stops) in [
            (None, true),
            (Some(Idle), true),
            (Some(Waiting), true),
            (Some(Dead), true),
            (Some(Working), false),
            (Some(Stalled), false),
        ] {
            let mut i = stoppable();
            i.mayor_status = status;
            assert_eq!(should_stop_idle_container(i, NOW), stops, "{status:?}");
        }
    }

    #[test]
    fn the_mayor_must_be_quiet_for_more_than_five_minutes() {
        let mut i = stoppable();
        i.mayor_last_activity_ms = Some(NOW - 5 * MIN);
        assert!(!should_stop_idle_container(i, NOW));
        i.mayor_last_activity_ms = Some(NOW - 5 * MIN - 1);
        assert!(should_stop_idle_container(i, NOW));
        i.mayor_last_activity_ms = Some(NOW + MIN);
        assert!(
            !should_stop_idle_container(i, NOW),
            "future activity is fresh"
        );
        i.mayor_last_activity_ms = None;
        assert!(should_stop_idle_container(i, NOW));
    }

    #[test]
    fn two_minute_throttle() {
        let mut i = stoppable();
        i.last_stop_attempt_ms = Some(NOW - 2 * MIN + 1);
        assert!(!should_stop_idle_container(i, NOW));
        i.last_stop_attempt_ms = Some(NOW - 2 * MIN);
        assert!(should_stop_idle_container(i, NOW));
        // A failed attempt is retried on the next idle tick (300 s later).
        i.last_stop_attempt_ms = Some(NOW - 5 * MIN);
        assert!(should_stop_idle_container(i, NOW));
    }
}
