//! The AgentActor's state: what it holds between messages, and how it is made when the
//! actor starts. The SDK server's password is read from the town store (written there on
//! the agent's first start), so a server that outlives this host is adopted by the next
//! one, which must be able to talk to it (`ARCHITECTURE.md`, *Phase path*).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::sync::oneshot;

use gastown_core::policy::StartRun;
use gastown_core::{EnsureDecision, ProcessHandle};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{turn, Waiter};
use crate::context::{AgentContext, AgentSpec, LiveSdk, StartProgress};
use crate::ready::BrowseState;
use crate::telemetry::Subject;

/// What the agent is doing.
#[derive(Debug)]
pub(super) enum Mode {
    /// Nothing in flight; `live` says whether a server runs.
    Idle,
    /// Confirming the running server (process + health) for waiting callers.
    Probing { probe_id: u64 },
    /// Looking for a server an earlier host left running for this agent (first request
    /// of the actor's life only).
    Adopting,
    /// A start runs its phases.
    Starting(Box<Run>),
    /// Stopping for good: every further request is refused.
    Draining,
}

/// One start in flight: the phases `token → hydrate → worktrees → sdk → session` driven by
/// the pure [`StartRun`] machine.
#[derive(Debug)]
pub(super) struct Run {
    /// Tells this run's attempt results from a late one of an abandoned run.
    pub(super) id: u64,
    /// The ensure decision that began it (reported to every waiter).
    pub(super) decision: EnsureDecision,
    /// When the earliest waiter asked (or the prewarm began).
    pub(super) started: Instant,
    /// What the phases produced so far; a retried phase starts from here.
    pub(super) progress: StartProgress,
    /// Which phase and attempt run next, and the retry budget.
    pub(super) machine: StartRun,
    /// Started by boot hydration rather than by a caller.
    pub(super) prewarm: bool,
    /// Aborts the attempt in flight (dropping the phase, whose guard kills a half-booted
    /// server).
    pub(super) attempt: Option<AbortHandle>,
}

impl Run {
    /// Aborts the attempt in flight and returns the server the run holds, if any.
    pub(super) fn abandon(self) -> Option<Arc<dyn ProcessHandle>> {
        if let Some(attempt) = &self.attempt {
            attempt.abort();
        }
        self.progress.sdk.map(|l| l.process)
    }
}

/// The AgentActor's state.
#[derive(Debug)]
pub(crate) struct AgentState {
    /// What the phases read: the town's parts, this agent's spec, layout and password.
    pub(super) ctx: AgentContext,
    /// The running SDK server, once a run finished.
    pub(super) live: Option<LiveSdk>,
    /// The running server's SDK event watcher; aborted whenever `live` goes.
    pub(super) watch: Option<tokio::task::AbortHandle>,
    /// The real turn in flight, if any.
    pub(super) turn: Option<turn::Turn>,
    /// Shared with the watcher: a turn is in flight (a silent stream is then polled).
    pub(super) turn_pending: Arc<AtomicBool>,
    /// The session the last run resumed or created.
    pub(super) session_id: Option<String>,
    /// What the agent is doing: idle, probing, adopting, starting, draining.
    pub(super) mode: Mode,
    /// Callers waiting for the start or probe in flight.
    pub(super) waiters: Vec<Waiter>,
    /// Boot hydration waiting for this agent's critical work.
    pub(super) boot_waiters: Vec<oneshot::Sender<bool>>,
    /// The spec changed since the running server started: the next ensure restarts it.
    pub(super) spec_changed: bool,
    /// Boot hydration's facts for the next report: (resumed from registry, registry ms).
    pub(super) boot_timings: Option<(bool, u64)>,
    /// The mayor's browse worktrees: `None` before the first setup started.
    pub(super) browse: Option<BrowseState>,
    /// A background browse setup is running (one at a time).
    pub(super) browse_running: bool,
    /// Ids for runs and probes, so late messages of an earlier one are told apart.
    seq: u64,
    /// The runtime was asked for a server an earlier host left (once per actor).
    pub(super) adoption_tried: bool,
}

impl AgentState {
    /// An idle agent with no server, its password loaded from (or first stored in) the
    /// town store. A store error is logged and the context's fresh password kept: the
    /// agent runs, but a restarted host cannot adopt its server.
    pub(super) fn new(mut ctx: AgentContext) -> Self {
        let key = crate::context::sdk_password_key(&ctx.spec.id);
        match ctx.parts.store.secret_get_or_create(&key) {
            Ok(password) => ctx.password = password,
            Err(e) => {
                tracing::warn!(agent = %ctx.spec.id, error = %e, "persisting the SDK password; a restarted host cannot adopt this server");
            }
        }
        Self {
            ctx,
            live: None,
            watch: None,
            turn: None,
            turn_pending: Arc::default(),
            session_id: None,
            mode: Mode::Idle,
            waiters: Vec::new(),
            boot_waiters: Vec::new(),
            spec_changed: false,
            boot_timings: None,
            browse: None,
            browse_running: false,
            seq: 0,
            adoption_tried: false,
        }
    }

    /// A fresh id for a run, a probe or a turn.
    pub(super) fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Who this agent's telemetry events are about.
    pub(super) fn subject(&self) -> Subject<'_> {
        Subject::agent(&self.ctx.parts.town, &self.ctx.spec.id, self.ctx.spec.role)
    }

    /// Takes `spec` as the agent's; a different one makes the next ensure restart the
    /// server with it.
    pub(super) fn set_spec(&mut self, spec: AgentSpec) {
        if spec != self.ctx.spec {
            self.ctx.spec = spec;
            self.spec_changed = true;
        }
    }
}
