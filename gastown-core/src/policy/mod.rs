//! Pure lifecycle policies (ARCHITECTURE.md, *Decision tree* and *Lifecycle timings*):
//! what the town should do, as functions
//! of data. No I/O and no clock reads — `now` is always a parameter, in ms since the Unix
//! epoch — so the actors that hold state and do I/O can call them on every tick, and
//! tests can pin every boundary.
//!
//! One concept per module:
//!
//! - [`ensure`]: the `ensure_mayor` decision tree;
//! - [`active_work`]: whether the town has active work;
//! - [`alarm`]: the alarm cadence and whether health probes run;
//! - [`idle_stop`]: whether to stop an idle container;
//! - [`token_refresh`]: whether to send a live container-token refresh;
//! - [`heartbeat`]: stale heartbeats, unhooking, and the workers' idle-exit timeouts;
//! - [`dispatch`]: retrying a failed dispatch;
//! - [`start_run`]: the run of an agent's five startup phases (next phase, retry, finish).
//!
//! Every number is a public constant whose doc gives its unit and where it comes from
//! (ARCHITECTURE.md, *Lifecycle timings*, which names the upstream Kilo Gastown source of
//! each). Nothing here imports the town store: `gastown_core::store::town_view` turns its
//! rows into the views these functions read.

pub mod active_work;
pub mod alarm;
pub mod dispatch;
pub mod ensure;
pub mod heartbeat;
pub mod idle_stop;
pub mod start_run;
pub mod token_refresh;

pub use active_work::{has_active_work, AgentView, BeadView, TownView};
pub use alarm::{alarm_interval, should_probe_health};
pub use dispatch::{next_dispatch_attempt, DispatchRetry, DispatchVerdict};
pub use ensure::{decide_ensure, EnsureObservation, ServerObservation};
pub use heartbeat::{idle_exit_after, is_heartbeat_stale, should_stamp_heartbeat, should_unhook};
pub use idle_stop::{should_stop_idle_container, should_stop_idle_container_after, IdleStopInput};
pub use start_run::{AttemptOutcome, RetryPolicy, RunStep, StartRun};
pub use token_refresh::{should_refresh_token, TokenRefreshInput};

use std::time::Duration;

/// Time from `since_ms` to `now_ms` (both ms since the Unix epoch). A `since_ms` in the
/// future (clock skew, a hand-edited row) gives zero rather than a negative span, and
/// extreme values saturate instead of overflowing.
pub(crate) fn elapsed(since_ms: i64, now_ms: i64) -> Duration {
    let ms = now_ms.saturating_sub(since_ms).max(0);
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_clamps_and_saturates() {
        assert_eq!(elapsed(1_000, 3_500), Duration::from_millis(2_500));
        assert_eq!(elapsed(5_000, 1_000), Duration::ZERO);
        assert_eq!(
            elapsed(i64::MIN, i64::MAX),
            Duration::from_millis(i64::MAX as u64)
        );
        assert_eq!(elapsed(i64::MAX, i64::MIN), Duration::ZERO);
    }
}
