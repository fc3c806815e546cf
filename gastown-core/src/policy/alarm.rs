//! The town alarm's cadence, and which tick work it does (ARCHITECTURE.md, *Lifecycle
//! timings*).
//!
//! The bug it fixes (Kilo Gastown #1450): a town with any "active work" ticked every 5 s
//! and health-probed its container on every tick; each probe reset the container's sleep
//! timer, so containers never slept. Idle towns tick slowly and send the container
//! nothing.

use std::time::Duration;

/// The alarm interval while the town has active work: 5 s (Kilo Gastown #1450).
pub const ALARM_INTERVAL_ACTIVE: Duration = Duration::from_secs(5);

/// The alarm interval without active work: 300 s (Kilo Gastown #1450 raised it from 60 s
/// so an idle town wakes its container at most once per 5 min).
pub const ALARM_INTERVAL_IDLE: Duration = Duration::from_secs(300);

/// The time until the next alarm tick: [`ALARM_INTERVAL_ACTIVE`] with active work,
/// [`ALARM_INTERVAL_IDLE`] without.
pub fn alarm_interval(active_work: bool) -> Duration {
    if active_work {
        ALARM_INTERVAL_ACTIVE
    } else {
        ALARM_INTERVAL_IDLE
    }
}

/// Whether this tick may health-probe the container or poll agent statuses: only with
/// active work (Kilo Gastown #1450, PR #3151), since every request resets the container's
/// sleep timer.
pub fn should_probe_health(active_work: bool) -> bool {
    active_work
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_and_probes_follow_active_work() {
        assert_eq!(alarm_interval(true), Duration::from_secs(5));
        assert_eq!(alarm_interval(false), Duration::from_secs(300));
        assert!(should_probe_health(true));
        assert!(!should_probe_health(false));
    }
}
