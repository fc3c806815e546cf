//! Retrying a failed dispatch (ARCHITECTURE.md, *Lifecycle timings*; the "stay `working`"
//! rule is Kilo Gastown PR #3151's).
//!
//! What counts as a failure is the caller's: if the start request may have been accepted
//! (the error arrived late), the agent stays `working` and the stale-heartbeat rule
//! ([`is_heartbeat_stale`](super::is_heartbeat_stale)) cleans up; only a dispatch known
//! not to have started is retried here.

use std::time::Duration;

use super::elapsed;

/// The wait between two dispatch attempts of one agent: 30 s (a Kilo Gastown code value;
/// ARCHITECTURE.md, *Lifecycle timings*).
pub const DISPATCH_RETRY_COOLDOWN: Duration = Duration::from_secs(30);

/// At most this many dispatch attempts in all, the first included: 5 (a Kilo Gastown code
/// value; ARCHITECTURE.md, *Lifecycle timings*).
pub const DISPATCH_MAX_ATTEMPTS: u32 = 5;

/// What to do about the next dispatch attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchVerdict {
    /// Dispatch now.
    Now,
    /// Dispatch after this much more time.
    Wait(Duration),
    /// The attempts are used up: stop retrying (and surface the last error).
    GiveUp,
}

/// A dispatch retry budget: a cooldown between attempts and a cap on attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchRetry {
    /// The wait between two attempts.
    pub cooldown: Duration,
    /// The most attempts in all (the first one included).
    pub max_attempts: u32,
}

impl DispatchRetry {
    /// The budget of ARCHITECTURE.md, *Lifecycle timings*: [`DISPATCH_RETRY_COOLDOWN`] (30 s),
    /// [`DISPATCH_MAX_ATTEMPTS`] (5).
    pub const DEFAULT: DispatchRetry = DispatchRetry {
        cooldown: DISPATCH_RETRY_COOLDOWN,
        max_attempts: DISPATCH_MAX_ATTEMPTS,
    };

    /// The verdict after `attempts_so_far` attempts, the last one at `last_attempt_ms`
    /// (ms since the Unix epoch; `None` if none was made), at `now_ms`:
    /// [`DispatchVerdict::GiveUp`] once `max_attempts` were made, [`DispatchVerdict::Now`]
    /// for the first attempt or once the cooldown has passed, else
    /// [`DispatchVerdict::Wait`] with the rest of the cooldown. A last attempt stamped in
    /// the future (clock skew) waits the full cooldown.
    pub fn next_attempt(
        &self,
        attempts_so_far: u32,
        last_attempt_ms: Option<i64>,
        now_ms: i64,
    ) -> DispatchVerdict {
        if attempts_so_far >= self.max_attempts {
            return DispatchVerdict::GiveUp;
        }
        match last_attempt_ms {
            Some(at) if attempts_so_far > 0 => {
                let since = elapsed(at, now_ms);
                if since >= self.cooldown {
                    DispatchVerdict::Now
                } else {
                    DispatchVerdict::Wait(self.cooldown - since)
                }
            }
            _ => DispatchVerdict::Now,
        }
    }
}

impl Default for DispatchRetry {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// [`DispatchRetry::next_attempt`] with [`DispatchRetry::DEFAULT`] (30 s, 5 attempts).
pub fn next_dispatch_attempt(
    attempts_so_far: u32,
    last_attempt_ms: Option<i64>,
    now_ms: i64,
) -> DispatchVerdict {
    DispatchRetry::DEFAULT.next_attempt(attempts_so_far, last_attempt_ms, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn first_attempt_is_immediate() {
        assert_eq!(next_dispatch_attempt(0, None, NOW), DispatchVerdict::Now);
        assert_eq!(
            next_dispatch_attempt(0, Some(NOW), NOW),
            DispatchVerdict::Now
        );
    }

    #[test]
    fn cooldown_between_attempts() {
        assert_eq!(
            next_dispatch_attempt(1, Some(NOW - 10_000), NOW),
            DispatchVerdict::Wait(Duration::from_secs(20))
        );
        assert_eq!(
            next_dispatch_attempt(1, Some(NOW - 30_000), NOW),
            DispatchVerdict::Now
        );
        assert_eq!(
            next_dispatch_attempt(4, Some(NOW + 5_000), NOW),
            DispatchVerdict::Wait(Duration::from_secs(30))
        );
        // An attempt count without a recorded time cannot be cooled down: go.
        assert_eq!(next_dispatch_attempt(2, None, NOW), DispatchVerdict::Now);
    }

    #[test]
    fn gives_up_after_five_attempts() {
        assert_eq!(
            next_dispatch_attempt(4, Some(NOW - 60_000), NOW),
            DispatchVerdict::Now
        );
        assert_eq!(
            next_dispatch_attempt(5, Some(NOW - 60_000), NOW),
            DispatchVerdict::GiveUp
        );
        assert_eq!(
            next_dispatch_attempt(u32::MAX, None, NOW),
            DispatchVerdict::GiveUp
        );
    }

    #[test]
    fn a_custom_budget() {
        let retry = DispatchRetry {
            cooldown: Duration::from_secs(1),
            max_attempts: 2,
        };
        assert_eq!(
            retry.next_attempt(1, Some(NOW - 500), NOW),
            DispatchVerdict::Wait(Duration::from_millis(500))
        );
        assert_eq!(
            retry.next_attempt(2, Some(NOW - 500), NOW),
            DispatchVerdict::GiveUp
        );
        assert_eq!(DispatchRetry::default(), DispatchRetry::DEFAULT);
    }
}
