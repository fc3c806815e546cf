//! Errors of the actor layer.

use std::fmt;
use std::sync::Arc;

use gastown_core::{AgentId, StartupPhase};

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one phase attempt failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PhaseFailure {
    /// The phase returned an error.
    Failed(gastown_core::Error),
    /// The phase ran past its timeout (ms).
    TimedOut {
        /// The timeout that expired, in ms.
        after_ms: u64,
    },
    /// The phase step panicked (its child actor failed).
    Panicked(String),
}

impl PhaseFailure {
    /// Whether trying again can help. Missing programs, bad config and corrupted snapshots
    /// fail the same way every time, so they are not retried.
    pub fn is_retryable(&self) -> bool {
        use gastown_core::Error as E;
        match self {
            PhaseFailure::Failed(
                E::KiloNotFound { .. }
                | E::ProgramNotFound { .. }
                | E::InvalidConfig { .. }
                | E::InvalidId { .. }
                | E::InvalidPath { .. }
                | E::Snapshot { .. }
                | E::Token { .. },
            ) => false,
            PhaseFailure::Failed(_) | PhaseFailure::TimedOut { .. } => true,
            PhaseFailure::Panicked(_) => true,
        }
    }
}

impl fmt::Display for PhaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhaseFailure::Failed(e) => write!(f, "{e}"),
            PhaseFailure::TimedOut { after_ms } => write!(f, "timed out after {after_ms} ms"),
            PhaseFailure::Panicked(m) => write!(f, "phase step panicked: {m}"),
        }
    }
}

/// An agent start that failed: which agent, in which phase, after how many attempts.
#[derive(Debug, thiserror::Error)]
#[error("agent {agent} failed to start in the {phase} phase after {attempts} attempt(s): {cause}")]
pub struct StartError {
    /// The agent.
    pub agent: AgentId,
    /// The phase that failed.
    pub phase: StartupPhase,
    /// Attempts made (the retry budget spent).
    pub attempts: u32,
    /// The last attempt's failure (its message says how to fix what can be fixed, e.g. a
    /// missing kilo binary).
    pub cause: PhaseFailure,
}

/// Errors returned by a [`TownHandle`](crate::TownHandle).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An agent start failed in a phase. Shared: every caller that joined the start gets it.
    #[error(transparent)]
    Start(Arc<StartError>),
    /// A core operation failed (store, runtime, SDK call, config).
    #[error(transparent)]
    Core(#[from] gastown_core::Error),
    /// The town's container could not be started. Shared: every waiting caller gets it.
    #[error("container for town {town} could not be started: {source}")]
    Container {
        /// The town.
        town: String,
        /// Why.
        #[source]
        source: Arc<gastown_core::Error>,
    },
    /// The mayor is not running (e.g. a message was sent before `ensure_mayor`).
    #[error("agent {agent} is not running")]
    NotRunning {
        /// The agent.
        agent: AgentId,
    },
    /// The town is shutting down or has stopped; the request was not served.
    #[error("town is shutting down or stopped")]
    Stopped,
    /// A real turn failed upstream: the provider answered an error, kept failing past the
    /// town's retry limit, or the turn ran past its timeout. The agent is `waiting` (mayor)
    /// or `idle` (worker) again and its session is intact.
    #[error("turn of agent {agent} in session {session_id} failed: {message}")]
    TurnFailed {
        /// The agent.
        agent: AgentId,
        /// The session.
        session_id: String,
        /// What failed (the provider's message, or the town's limit).
        message: String,
        /// The provider's HTTP status, when there was one.
        status: Option<u16>,
    },
    /// No bead with this id exists in the town.
    #[error("bead {bead} does not exist")]
    BeadNotFound {
        /// The bead.
        bead: gastown_core::BeadId,
    },
    /// The bead cannot be slung: it is not an open issue (it is in progress, in review,
    /// closed, failed, or a merge request).
    #[error("bead {bead} cannot be slung: it is {state}")]
    BeadNotSlingable {
        /// The bead.
        bead: gastown_core::BeadId,
        /// What it is instead (its status, or its kind).
        state: String,
    },
    /// The town has no rig with this id.
    #[error("town has no rig {rig}")]
    UnknownRig {
        /// The rig.
        rig: gastown_core::RigId,
    },
    /// A prompt was sent while the agent's previous turn still runs (one turn at a time
    /// per session, as the SDK server runs them).
    #[error("agent {agent} is still in a turn")]
    TurnInFlight {
        /// The agent.
        agent: AgentId,
    },
    /// An agent's `kilo.db` could not be snapshotted (read, verified or stored); the
    /// previous snapshot is intact.
    #[error("snapshot of agent {agent}: {source}")]
    Snapshot {
        /// The agent.
        agent: AgentId,
        /// Why.
        #[source]
        source: Box<gastown_core::snapshot::LiveSnapshotError>,
    },
    /// A drain (shutdown) failed: nothing was lost — the container was stopped but kept
    /// with its files. Shared: every caller of `shutdown` gets the same error.
    #[error("draining town {town} failed: {source}")]
    Drain {
        /// The town.
        town: String,
        /// The first agent's or the runtime's failure.
        #[source]
        source: Arc<Error>,
    },
    /// An actor of the tree could not be spawned.
    #[error("spawning the {actor} actor failed: {source}")]
    Spawn {
        /// Which actor (`town`, `container`, `agent`).
        actor: &'static str,
        /// ractor's error.
        #[source]
        source: ractor::SpawnErr,
    },
    /// An actor of the tree stopped before it answered (its town is going away).
    #[error("the {actor} actor stopped before it answered")]
    Unreachable {
        /// Which actor.
        actor: &'static str,
    },
}

impl Error {
    /// The answer of a call to an actor of the tree whose reply is itself a `Result`; a
    /// call the actor never answered (it stopped) is [`Error::Unreachable`].
    pub(crate) fn from_call<T, M>(
        call: std::result::Result<ractor::rpc::CallResult<Result<T>>, ractor::MessagingErr<M>>,
        actor: &'static str,
    ) -> Result<T> {
        match call {
            Ok(ractor::rpc::CallResult::Success(r)) => r,
            _ => Err(Error::Unreachable { actor }),
        }
    }
}
