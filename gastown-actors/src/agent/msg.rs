//! The AgentActor's messages: what its ContainerActor asks of it, and what its own
//! spawned tasks (phase attempts, probes, the SDK event watcher) report back.

use gastown_core::policy::ServerObservation;
use ractor::{ActorRef, MessagingErr, RpcReplyPort};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::watch::TurnSignal;
use crate::context::AgentSpec;
use crate::error::Result;
use crate::phases::{AttemptDone, BrowseOutcome};
use crate::ready::{AgentInfo, MayorReady};
use crate::turn::MayorTurn;

/// A caller waiting for the agent to be ready.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// Where the ready agent (or the start's error) goes.
    pub(crate) reply: RpcReplyPort<Result<MayorReady>>,
    /// When the caller asked: its report's `total_ms` counts from here.
    pub(crate) requested: Instant,
    /// The town woke from paused for this request: the container's resume took this many
    /// ms, and a live agent's decision is `resume_paused`.
    pub(crate) woke_ms: Option<u64>,
}

/// Messages of the [`AgentActor`](super::AgentActor).
#[derive(Debug)]
pub(crate) enum AgentMsg {
    /// Make the agent ready (start it, or confirm it is alive) with this spec. A spec that
    /// differs from the running one (e.g. a new model) restarts the SDK server with it.
    Ensure(Box<AgentSpec>, Waiter),
    /// Start the agent without anyone waiting (boot hydration: resume or prewarm). `done`
    /// fires with `true` once the agent is ready (or already was), `false` on failure.
    Prewarm {
        /// The agent's current spec (the mayor's model may have changed since its actor
        /// started).
        spec: Box<AgentSpec>,
        /// Boot hydration waits on it to open the hydration gate.
        done: oneshot::Sender<bool>,
        /// The agent was in the registry (a resume) rather than a prewarm.
        registered: bool,
        /// Boot hydration's registry read, in ms, for the startup report.
        registry_fetch_ms: u64,
    },
    /// The background browse worktree setup finished.
    BrowseDone(Vec<BrowseOutcome>),
    /// Something for the agent's session: a message or a real turn.
    Session(SessionRequest),
    /// Report what runs.
    Info(RpcReplyPort<AgentInfo>),
    /// A phase attempt of run `run_id` finished.
    AttemptDone {
        /// The run the attempt belongs to (a late attempt of an abandoned run is freed).
        run_id: u64,
        /// Its outcome.
        done: Box<AttemptDone>,
    },
    /// The search for a server an earlier host left running ended: the adopted server,
    /// healthy and of the current configuration, or `None`.
    AdoptDone(Option<crate::context::LiveSdk>),
    /// Backoff over: run the current phase of run `run_id` again.
    RetryPhase {
        /// The run to continue.
        run_id: u64,
    },
    /// The liveness probe `probe_id` of the running server finished.
    ProbeDone {
        /// Which probe (a late one is ignored).
        probe_id: u64,
        /// What it saw.
        server: ServerObservation,
    },
    /// The alarm's health check: probe the running server (if idle), redispatch a dead
    /// one.
    HealthCheck,
    /// The container was replaced underneath: every process in it is gone.
    ContainerLost,
    /// Stop the SDK server and snapshot its `kilo.db`; replies when the snapshot is safe.
    Drain(RpcReplyPort<Result<()>>),
    /// The town is about to pause: snapshot now and reply `true`, or `false` when the
    /// agent is busy (a turn, a start or a probe in flight) and must not be frozen.
    PrepareForPause(RpcReplyPort<bool>),
    /// What the SDK event watcher saw of the session.
    Turn(TurnSignal),
    /// Turn `turn_id` ran past the town's turn timeout.
    TurnTimeout {
        /// Which turn (a late timeout of an earlier one is ignored).
        turn_id: u64,
    },
    /// The SDK server refused turn `turn_id`'s prompt: no turn runs.
    TurnRefused {
        /// Which turn.
        turn_id: u64,
    },
}

impl AgentMsg {
    /// The callback attempts of run `run_id` report through (`phases::spawn_attempt`): it
    /// casts [`AgentMsg::AttemptDone`] to `me`. When the agent is gone it gives the outcome
    /// back, so the attempt stops the server it started; any other send error carries no
    /// message, and nothing is left to free.
    pub(crate) fn attempt_report(
        me: ActorRef<AgentMsg>,
        run_id: u64,
    ) -> impl FnOnce(AttemptDone) -> std::result::Result<(), Box<AttemptDone>> + Send + 'static
    {
        move |done| {
            let done = Box::new(done);
            me.cast(AgentMsg::AttemptDone { run_id, done })
                .or_else(|e| match e {
                    MessagingErr::SendErr(AgentMsg::AttemptDone { done, .. }) => Err(done),
                    _ => Ok(()),
                })
        }
    }
}

/// A request for an agent's session, forwarded as it is from the handle to the agent.
#[derive(Debug)]
pub(crate) enum SessionRequest {
    /// Record a user message without an LLM turn (`noReply`); replies with its id.
    NoReply {
        /// The message text.
        text: String,
        /// Where the message id goes.
        reply: RpcReplyPort<Result<String>>,
    },
    /// Send a real turn; replies with the turn once the SDK server accepted it.
    Prompt {
        /// The user's text.
        text: String,
        /// Where the turn (or why it was not accepted) goes.
        reply: RpcReplyPort<Result<MayorTurn>>,
    },
}

impl SessionRequest {
    /// Answers the request with `err` instead.
    pub(crate) fn refuse(self, err: crate::error::Error) {
        match self {
            SessionRequest::NoReply { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            SessionRequest::Prompt { reply, .. } => {
                let _ = reply.send(Err(err));
            }
        }
    }
}
