//! Options of the actor layer: how to start a town ([`TownOptions`]) and the phase
//! timeouts, retry budgets and grace periods of its agents' starts ([`StartOptions`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gastown_core::credentials::CredentialChain;
pub use gastown_core::policy::RetryPolicy;
use gastown_core::sdk::{HttpConnector, SdkConnector};
use gastown_core::{ContainerRuntime, StartupPhase, TownConfig};

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

/// How to start a town.
#[derive(Clone)]
#[non_exhaustive]
pub struct TownOptions {
    /// The town's configuration (validated by [`TownHandle::start`](crate::TownHandle::start)).
    pub config: TownConfig,
    /// Where the town keeps its state across restarts: `town.db` (the town store) and
    /// `snapshots/<agent>/kilo.db`. Created if missing.
    pub state_dir: PathBuf,
    /// Where the town's processes run.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Phase timeouts, retry budgets and grace periods.
    pub start: StartOptions,
    /// How clients of SDK servers are made (HTTP by default; a simulated runtime brings
    /// its own).
    pub sdk_connector: Arc<dyn SdkConnector>,
    /// Where agents' git credentials come from (resolved at each dispatch from cached
    /// sources, refreshed in the background), and the variable that carries them
    /// (e.g. `GIT_TOKEN`). `None`: agents get no credential.
    pub credentials: Option<(Arc<CredentialChain>, String)>,
    /// How long the mayor must be quiet (no message, no turn) with no active work before
    /// the alarm drains and stops the container (default 5 min, Kilo Gastown PR #3113).
    /// The next `ensure_mayor` wakes the town with the same session.
    pub idle_stop_after: Duration,
    /// Whether an idle town is first paused (frozen: memory kept, no CPU, a wake in tens
    /// of ms) rather than stopped, on runtimes that can pause (default true).
    pub pause_when_idle: bool,
    /// How long a town stays paused before the alarm stops it (default 30 min, Kilo
    /// Gastown's container sleep window).
    pub stop_paused_after: Duration,
    /// The host's budget for paused towns' memory, shared by the towns it bounds (`None`:
    /// unbounded). Over it, the oldest paused towns are stopped.
    pub paused_budget: Option<Arc<crate::PausedBudget>>,
    /// What this town holds while paused, in bytes, as counted against the budget
    /// (default 600 MB: one paused kilo server, measured here).
    pub paused_bytes: u64,
    /// Limits on real turns ([`TownHandle::prompt_mayor`](crate::TownHandle::prompt_mayor)).
    pub turns: TurnOptions,
    /// How long an idle worker lives before it exits (default: polecat 120 s, refinery
    /// 600 s — Kilo Gastown; `ARCHITECTURE.md`, *Lifecycle timings*).
    pub idle_exit: IdleExit,
    /// The runtime's boot scheduler, shared by every town on the runtime: each SDK server
    /// boot waits for one of its slots, mayors first (`None`, the default: unscheduled).
    pub boot_scheduler: Option<Arc<crate::BootScheduler>>,
    /// The warm pool a brand-new town (no container, no snapshot) claims its mayor's SDK
    /// server from, falling back to a cold start when the pool has none it can use
    /// (`None`, the default: cold starts). See [`WarmPool`](crate::WarmPool).
    pub warm_pool: Option<crate::WarmPool>,
}

/// How long a worker may sit with an idle session before it exits: its server stops, its
/// `kilo.db` is snapshotted, it leaves the registry. The mayor never idle-exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdleExit {
    /// A polecat's window (default 120 s, Kilo Gastown #1450's 2-minute timer).
    pub polecat: Duration,
    /// A refinery's window (default 600 s, Kilo Gastown code).
    pub refinery: Duration,
}

impl Default for IdleExit {
    fn default() -> Self {
        Self {
            polecat: gastown_core::policy::heartbeat::POLECAT_IDLE_EXIT,
            refinery: gastown_core::policy::heartbeat::REFINERY_IDLE_EXIT,
        }
    }
}

impl IdleExit {
    /// Both windows (tests shorten them to see a real worker exit).
    pub fn new(polecat: Duration, refinery: Duration) -> Self {
        Self { polecat, refinery }
    }
}

impl fmt::Debug for TownOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TownOptions")
            .field("town", &self.config.town)
            .field("state_dir", &self.state_dir)
            .field("runtime", &self.runtime.name())
            .finish_non_exhaustive()
    }
}

impl TownOptions {
    /// Options with default [`StartOptions`].
    pub fn new(
        config: TownConfig,
        state_dir: impl Into<PathBuf>,
        runtime: Arc<dyn ContainerRuntime>,
    ) -> Self {
        Self {
            config,
            state_dir: state_dir.into(),
            runtime,
            start: StartOptions::default(),
            sdk_connector: Arc::new(HttpConnector),
            credentials: None,
            idle_stop_after: gastown_core::policy::idle_stop::IDLE_STOP_MAYOR_QUIET,
            turns: TurnOptions::default(),
            pause_when_idle: true,
            paused_budget: None,
            paused_bytes: 600 * 1024 * 1024,
            stop_paused_after: Duration::from_secs(30 * 60),
            idle_exit: IdleExit::default(),
            boot_scheduler: None,
            warm_pool: None,
        }
    }

    /// Sets the workers' idle-exit windows (see [`TownOptions::idle_exit`]).
    pub fn with_idle_exit(mut self, idle_exit: IdleExit) -> Self {
        self.idle_exit = idle_exit;
        self
    }

    /// Schedules this town's SDK boots on `scheduler` — give every town of a runtime the
    /// same one (e.g. [`BootScheduler::per_host`](crate::BootScheduler::per_host)).
    pub fn with_boot_scheduler(mut self, scheduler: Arc<crate::BootScheduler>) -> Self {
        self.boot_scheduler = Some(scheduler);
        self
    }

    /// Claims a brand-new town's mayor server from `pool` (see [`TownOptions::warm_pool`]).
    pub fn with_warm_pool(mut self, pool: crate::WarmPool) -> Self {
        self.warm_pool = Some(pool);
        self
    }

    /// Passes each agent the first credential `chain` resolves, in the variable `var`.
    pub fn with_credentials(mut self, chain: Arc<CredentialChain>, var: impl Into<String>) -> Self {
        self.credentials = Some((chain, var.into()));
        self
    }

    /// Sets how clients of SDK servers are made.
    pub fn with_sdk_connector(mut self, connector: Arc<dyn SdkConnector>) -> Self {
        self.sdk_connector = connector;
        self
    }

    /// Sets how long a quiet mayor keeps an idle town's container up (see
    /// [`TownOptions::idle_stop_after`]).
    pub fn with_idle_stop_after(mut self, quiet: Duration) -> Self {
        self.idle_stop_after = quiet;
        self
    }

    /// Sets whether an idle town is paused before it is stopped, and how long it stays
    /// paused (see [`TownOptions::pause_when_idle`], [`TownOptions::stop_paused_after`]).
    pub fn with_pause(mut self, pause_when_idle: bool, stop_paused_after: Duration) -> Self {
        self.pause_when_idle = pause_when_idle;
        self.stop_paused_after = stop_paused_after;
        self
    }

    /// Counts this town against `budget` while it is paused, as `paused_bytes` bytes.
    pub fn with_paused_budget(
        mut self,
        budget: Arc<crate::PausedBudget>,
        paused_bytes: u64,
    ) -> Self {
        self.paused_budget = Some(budget);
        self.paused_bytes = paused_bytes;
        self
    }

    /// Sets the limits on real turns.
    pub fn with_turn_options(mut self, turns: TurnOptions) -> Self {
        self.turns = turns;
        self
    }

    /// Sets the phase timeouts, retry budgets and grace periods.
    pub fn with_start_options(mut self, start: StartOptions) -> Self {
        self.start = start;
        self
    }
}

/// Limits on a real turn that fails upstream. Kilo 7.7.9 retries a provider's 5xx and 429
/// answers without end, with a growing delay (about 2, 5, 9, 19 s apart, measured here),
/// and waits on a provider that never answers; the town ends such a turn itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnOptions {
    /// Provider retries a turn may take before the town aborts it and reports a session
    /// error (default 3).
    pub max_retries: u32,
    /// The longest a turn may run before the town aborts it (default 10 min).
    pub timeout: Duration,
}

impl Default for TurnOptions {
    fn default() -> Self {
        Self {
            max_retries: 3,
            timeout: Duration::from_secs(600),
        }
    }
}

impl TurnOptions {
    /// Sets the retry limit.
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Sets the turn timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}
