//! The run of an agent's five startup phases as a pure state machine: which phase runs
//! next, whether a failed attempt is retried (and after what backoff), and when the run
//! finishes or fails.
//!
//! The AgentActor owns one [`StartRun`] per start in flight. It runs the attempt that
//! [`StartRun::begin`] or [`StartRun::on_attempt`] names and feeds the outcome back; the
//! machine never sleeps, reads a clock or does I/O — elapsed time is a parameter — so every
//! transition is unit-tested without actors or time, as [`decide_ensure`] is.
//!
//! Supervision is OTP-like (ractor has no built-in restart; see `ARCHITECTURE.md`,
//! *Actor tree*): at most [`RetryPolicy::max_restarts`] restarts of a phase within
//! [`RetryPolicy::within`], waiting [`RetryPolicy::backoff`] doubled after each restart,
//! and never more than [`RetryPolicy::max_attempts`] attempts of a phase in one run.
//!
//! [`decide_ensure`]: super::decide_ensure

use std::time::Duration;

use crate::phase::StartupPhase;
use crate::report::PhaseTiming;

/// A phase's retry budget, OTP-style: at most `max_restarts` restarts within `within`,
/// waiting `backoff`, doubled after each restart, before the next attempt; and at most
/// `max_attempts` attempts of the phase in one run, however far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Restarts allowed after the first attempt within `within` (default 2).
    pub max_restarts: u32,
    /// The window the restarts are counted in (default 60 s).
    pub within: Duration,
    /// The wait before the first restart, doubled for each further one (default 250 ms).
    pub backoff: Duration,
    /// Attempts of one phase in one run, at most, whatever their spacing (default 3).
    /// The window alone never ends a run whose attempts each fail slower than
    /// `within / max_restarts`: an SDK server that hangs runs every session attempt into
    /// its 30 s timeout, and restarts 30 s apart never number 2 within 60 s, so
    /// `ensure_mayor` would retry forever (this project).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 2,
            within: Duration::from_secs(60),
            backoff: Duration::from_millis(250),
            max_attempts: 3,
        }
    }
}

/// How one phase attempt ended, as the machine needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The phase succeeded.
    Succeeded {
        /// When the attempt started, measured from the start of the run.
        started_at: Duration,
        /// How long the attempt took.
        took: Duration,
    },
    /// The phase failed; `retryable` says whether trying again can help (a missing
    /// program or a corrupted snapshot fails the same way every time).
    Failed {
        /// Whether another attempt can help.
        retryable: bool,
    },
}

/// What the owner of a [`StartRun`] does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStep {
    /// Run `attempt` (1-based) of `phase` now.
    Attempt {
        /// The phase to run.
        phase: StartupPhase,
        /// The attempt number, 1 for the first.
        attempt: u32,
    },
    /// Wait `backoff`, then run `attempt` of `phase`.
    RetryAfter {
        /// The phase to run again.
        phase: StartupPhase,
        /// The attempt number of the retry.
        attempt: u32,
        /// How long to wait first.
        backoff: Duration,
    },
    /// Every phase succeeded; `timings` has one entry per phase, in order.
    Finished {
        /// Per-phase timings (start offset and duration in ms, attempts spent).
        timings: Vec<PhaseTiming>,
    },
    /// `phase` failed after `attempts` attempts (the budget is spent, or the failure is
    /// not retryable).
    Failed {
        /// The phase that failed.
        phase: StartupPhase,
        /// Attempts made.
        attempts: u32,
    },
}

/// The state of one run of the five phases.
///
/// ```
/// use std::time::Duration;
/// use gastown_core::policy::{AttemptOutcome, RetryPolicy, RunStep, StartRun};
/// use gastown_core::StartupPhase;
///
/// let (mut run, first) = StartRun::begin(RetryPolicy::default());
/// assert_eq!(first, RunStep::Attempt { phase: StartupPhase::Token, attempt: 1 });
/// let next = run.on_attempt(
///     AttemptOutcome::Succeeded { started_at: Duration::ZERO, took: Duration::from_millis(2) },
///     Duration::from_millis(2),
/// );
/// assert_eq!(next, RunStep::Attempt { phase: StartupPhase::Hydrate, attempt: 1 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRun {
    policy: RetryPolicy,
    /// Index into [`StartupPhase::ALL`] of the phase in flight.
    index: usize,
    /// The attempt in flight, 1-based.
    attempt: u32,
    /// When the current phase's restarts happened (run-relative), for the window.
    restarts: Vec<Duration>,
    timings: Vec<PhaseTiming>,
    /// Set once the run finished or failed: later outcomes are ignored.
    done: bool,
}

impl StartRun {
    /// A new run and its first step (attempt 1 of `token`).
    pub fn begin(policy: RetryPolicy) -> (Self, RunStep) {
        let run = Self {
            policy,
            index: 0,
            attempt: 1,
            restarts: Vec::new(),
            timings: Vec::new(),
            done: false,
        };
        let step = run.current();
        (run, step)
    }

    /// The phase in flight (the last one tried, once the run is over).
    pub fn phase(&self) -> StartupPhase {
        StartupPhase::ALL[self.index.min(StartupPhase::ALL.len() - 1)]
    }

    /// The attempt in flight, 1-based.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The timings of the phases that succeeded so far, in order (empty once
    /// [`RunStep::Finished`] handed them over).
    pub fn timings(&self) -> &[PhaseTiming] {
        &self.timings
    }

    /// Whether the run has finished or failed.
    pub fn is_over(&self) -> bool {
        self.done
    }

    /// Feeds the outcome of the attempt in flight; `now` is the time since the run began.
    /// Returns what to do next. After [`RunStep::Finished`] or [`RunStep::Failed`] the run
    /// is over and returns the same failure for any further call.
    pub fn on_attempt(&mut self, outcome: AttemptOutcome, now: Duration) -> RunStep {
        if self.done {
            return RunStep::Failed {
                phase: self.phase(),
                attempts: self.attempt,
            };
        }
        match outcome {
            AttemptOutcome::Succeeded { started_at, took } => {
                self.timings.push(PhaseTiming {
                    phase: self.phase(),
                    start_offset_ms: started_at.as_millis() as u64,
                    duration_ms: took.as_millis() as u64,
                    attempts: self.attempt,
                });
                self.index += 1;
                self.attempt = 1;
                self.restarts.clear();
                if self.index == StartupPhase::ALL.len() {
                    self.done = true;
                    self.index -= 1;
                    return RunStep::Finished {
                        timings: std::mem::take(&mut self.timings),
                    };
                }
                self.current()
            }
            AttemptOutcome::Failed { retryable } => {
                let within = self.policy.within;
                self.restarts.retain(|t| now.saturating_sub(*t) < within);
                let spent = self.restarts.len() as u32;
                if !retryable
                    || spent >= self.policy.max_restarts
                    || self.attempt >= self.policy.max_attempts
                {
                    self.done = true;
                    return RunStep::Failed {
                        phase: self.phase(),
                        attempts: self.attempt,
                    };
                }
                let backoff = self.policy.backoff * 2u32.saturating_pow(spent);
                self.restarts.push(now);
                self.attempt += 1;
                RunStep::RetryAfter {
                    phase: self.phase(),
                    attempt: self.attempt,
                    backoff,
                }
            }
        }
    }

    fn current(&self) -> RunStep {
        RunStep::Attempt {
            phase: self.phase(),
            attempt: self.attempt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ms: u64) -> AttemptOutcome {
        AttemptOutcome::Succeeded {
            started_at: Duration::from_millis(ms),
            took: Duration::from_millis(1),
        }
    }

    const FAIL: AttemptOutcome = AttemptOutcome::Failed { retryable: true };

    #[test]
    fn five_successes_finish_with_one_timing_per_phase_in_order() {
        let (mut run, mut step) = StartRun::begin(RetryPolicy::default());
        let mut seen = Vec::new();
        for i in 0..5 {
            let RunStep::Attempt { phase, attempt } = step else {
                panic!("expected an attempt, got {step:?}");
            };
            assert_eq!(attempt, 1);
            seen.push(phase);
            step = run.on_attempt(ok(i), Duration::from_millis(i + 1));
        }
        assert_eq!(seen, StartupPhase::ALL);
        let RunStep::Finished { timings } = step else {
            panic!("expected finished, got {step:?}");
        };
        let phases: Vec<_> = timings.iter().map(|t| t.phase).collect();
        assert_eq!(phases, StartupPhase::ALL);
        assert_eq!(timings[3].start_offset_ms, 3);
        assert!(run.is_over());
    }

    #[test]
    fn retries_back_off_doubling_then_fail_when_the_budget_is_spent() {
        let policy = RetryPolicy {
            max_restarts: 2,
            within: Duration::from_secs(60),
            backoff: Duration::from_millis(100),
            max_attempts: 3,
        };
        let (mut run, _) = StartRun::begin(policy);
        let now = Duration::from_millis(10);
        assert_eq!(
            run.on_attempt(FAIL, now),
            RunStep::RetryAfter {
                phase: StartupPhase::Token,
                attempt: 2,
                backoff: Duration::from_millis(100)
            }
        );
        assert_eq!(
            run.on_attempt(FAIL, now),
            RunStep::RetryAfter {
                phase: StartupPhase::Token,
                attempt: 3,
                backoff: Duration::from_millis(200)
            }
        );
        assert_eq!(
            run.on_attempt(FAIL, now),
            RunStep::Failed {
                phase: StartupPhase::Token,
                attempts: 3
            }
        );
        // Over: a late outcome changes nothing.
        assert_eq!(
            run.on_attempt(ok(0), now),
            RunStep::Failed {
                phase: StartupPhase::Token,
                attempts: 3
            }
        );
    }

    #[test]
    fn a_non_retryable_failure_fails_at_once() {
        let (mut run, _) = StartRun::begin(RetryPolicy::default());
        run.on_attempt(ok(0), Duration::ZERO);
        assert_eq!(
            run.on_attempt(AttemptOutcome::Failed { retryable: false }, Duration::ZERO),
            RunStep::Failed {
                phase: StartupPhase::Hydrate,
                attempts: 1
            }
        );
    }

    #[test]
    fn restarts_outside_the_window_no_longer_count() {
        let policy = RetryPolicy {
            max_restarts: 1,
            within: Duration::from_secs(10),
            backoff: Duration::from_millis(100),
            max_attempts: 3,
        };
        let (mut run, _) = StartRun::begin(policy);
        assert!(matches!(
            run.on_attempt(FAIL, Duration::from_secs(1)),
            RunStep::RetryAfter { attempt: 2, .. }
        ));
        // 11 s later the first restart has left the window: one more is allowed, and its
        // backoff starts again from the base.
        assert_eq!(
            run.on_attempt(FAIL, Duration::from_secs(12)),
            RunStep::RetryAfter {
                phase: StartupPhase::Token,
                attempt: 3,
                backoff: Duration::from_millis(100)
            }
        );
        assert!(matches!(
            run.on_attempt(FAIL, Duration::from_secs(13)),
            RunStep::Failed { attempts: 3, .. }
        ));
    }

    #[test]
    fn slow_failures_spaced_past_the_window_still_end_at_max_attempts() {
        // The default budget with every attempt running into a 30 s timeout: restarts
        // about 30 s apart never number 2 within 60 s, but the third attempt is the last.
        let (mut run, _) = StartRun::begin(RetryPolicy::default());
        let mut now = Duration::ZERO;
        for attempt in 2..=3 {
            now += Duration::from_secs(30);
            assert!(matches!(
                run.on_attempt(FAIL, now),
                RunStep::RetryAfter { attempt: a, .. } if a == attempt
            ));
            now += Duration::from_millis(500);
        }
        now += Duration::from_secs(30);
        assert_eq!(
            run.on_attempt(FAIL, now),
            RunStep::Failed {
                phase: StartupPhase::Token,
                attempts: 3
            }
        );
    }

    #[test]
    fn a_success_resets_the_next_phase_budget() {
        let policy = RetryPolicy {
            max_restarts: 1,
            ..RetryPolicy::default()
        };
        let (mut run, _) = StartRun::begin(policy);
        assert!(matches!(
            run.on_attempt(FAIL, Duration::ZERO),
            RunStep::RetryAfter { .. }
        ));
        assert_eq!(
            run.on_attempt(ok(0), Duration::ZERO),
            RunStep::Attempt {
                phase: StartupPhase::Hydrate,
                attempt: 1
            }
        );
        assert!(matches!(
            run.on_attempt(FAIL, Duration::ZERO),
            RunStep::RetryAfter { attempt: 2, .. }
        ));
        let mut last = None;
        for i in 0..4 {
            last = Some(run.on_attempt(ok(i), Duration::ZERO));
        }
        assert!(matches!(last, Some(RunStep::Finished { .. })));
    }
}
