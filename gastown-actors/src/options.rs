//! Options of the actor layer: phase timeouts, retry budgets, grace periods.

use std::time::Duration;

use gastown_core::StartupPhase;

/// A phase step's retry budget, OTP-style: at most `max_restarts` restarts within
/// `within`, waiting `backoff`, doubled after each restart, before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Restarts allowed after the first attempt (default 2).
    pub max_restarts: u32,
    /// The window the restarts are counted in (default 60 s).
    pub within: Duration,
    /// The wait before the first restart, doubled for each further one (default 250 ms).
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 2,
            within: Duration::from_secs(60),
            backoff: Duration::from_millis(250),
        }
    }
}

/// Timeouts and retry budgets of the five startup phases, and the grace periods used when
/// stopping SDK servers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StartOptions {
    /// `token` phase timeout (default 5 s).
    pub token_timeout: Duration,
    /// `hydrate` phase timeout (default 60 s).
    pub hydrate_timeout: Duration,
    /// `worktrees` phase timeout (default 300 s: a first clone may be large).
    pub worktrees_timeout: Duration,
    /// `sdk` phase timeout, from spawn to a healthy server (default 60 s; kilo boots in
    /// about 4–5 s here).
    pub sdk_timeout: Duration,
    /// `session` phase timeout (default 30 s).
    pub session_timeout: Duration,
    /// Retry budget of every phase.
    pub retry: RetryPolicy,
    /// Per-call timeout of SDK HTTP calls (default 5 s).
    pub sdk_call_timeout: Duration,
    /// Timeout of the health probe that decides whether a running mayor is still alive
    /// (default 2 s).
    pub probe_timeout: Duration,
    /// Grace between SIGTERM and SIGKILL when an SDK server is stopped (default 5 s).
    pub stop_grace: Duration,
    /// How many registered non-mayor agents boot hydration resumes at once, in the
    /// background after the mayor (default 4).
    pub resume_concurrency: usize,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            token_timeout: Duration::from_secs(5),
            hydrate_timeout: Duration::from_secs(60),
            worktrees_timeout: Duration::from_secs(300),
            sdk_timeout: Duration::from_secs(60),
            session_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            sdk_call_timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(2),
            stop_grace: Duration::from_secs(5),
            resume_concurrency: 4,
        }
    }
}

impl StartOptions {
    /// The timeout of `phase`.
    pub fn timeout(&self, phase: StartupPhase) -> Duration {
        match phase {
            StartupPhase::Token => self.token_timeout,
            StartupPhase::Hydrate => self.hydrate_timeout,
            StartupPhase::Worktrees => self.worktrees_timeout,
            StartupPhase::Sdk => self.sdk_timeout,
            StartupPhase::Session => self.session_timeout,
        }
    }

    /// Sets the timeout of `phase`.
    pub fn with_timeout(mut self, phase: StartupPhase, timeout: Duration) -> Self {
        match phase {
            StartupPhase::Token => self.token_timeout = timeout,
            StartupPhase::Hydrate => self.hydrate_timeout = timeout,
            StartupPhase::Worktrees => self.worktrees_timeout = timeout,
            StartupPhase::Sdk => self.sdk_timeout = timeout,
            StartupPhase::Session => self.session_timeout = timeout,
        }
        self
    }

    /// Sets the retry budget.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}
