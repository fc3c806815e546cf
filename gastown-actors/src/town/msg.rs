//! The TownActor's messages: what its handles ask, and what its own spawned tasks (the
//! alarm's ticks, a shutdown's drain, an idle stop, a pause, a wake) report back.

use ractor::RpcReplyPort;

use crate::agent::SessionRequest;
use crate::alarm::TickPlan;
use crate::boot::BootReport;
use crate::context::AgentSpec;
use crate::error::Result;
use crate::ready::{AgentInfo, MayorReady};
use gastown_core::AgentId;

/// Messages of the [`TownActor`](super::TownActor).
#[derive(Debug)]
pub(crate) enum TownMsg {
    /// Make the mayor ready.
    EnsureMayor(RpcReplyPort<Result<MayorReady>>),
    /// Something for an agent's session (the mayor's, or a polecat's bead prompt): a
    /// `noReply` message or a real turn.
    AgentSession {
        agent: AgentId,
        request: SessionRequest,
    },
    /// Sling a bead to a rig (`town/work.rs`).
    Sling {
        bead: gastown_core::BeadId,
        rig: gastown_core::RigId,
        reply: RpcReplyPort<Result<crate::town::Slung>>,
    },
    /// Stop a worker (idle exit, failed dispatch): its server stops, its `kilo.db` is
    /// snapshotted, it leaves the registry.
    ExitAgent { agent: AgentId },
    /// What runs for an agent.
    AgentInfo {
        agent: AgentId,
        reply: RpcReplyPort<Option<AgentInfo>>,
    },
    /// Start (or confirm) a worker agent.
    StartAgent {
        spec: AgentSpec,
        reply: RpcReplyPort<Result<MayorReady>>,
    },
    /// Start the container and boot-hydrate it (prewarm the mayor) before anyone asks.
    WarmUp(RpcReplyPort<Result<BootReport>>),
    /// Change the mayor's models; the next `EnsureMayor` applies them.
    UpdateMayorModel {
        model: String,
        small_model: Option<String>,
        reply: RpcReplyPort<Result<()>>,
    },
    /// Drain every agent (snapshot), remove the container, stop the actor tree.
    Shutdown(RpcReplyPort<Result<()>>),
    /// The drain of a shutdown finished.
    ShutdownDone(Result<()>),
    /// The periodic alarm, with the generation of the timer that sent it (only the
    /// newest counts).
    Tick(u64),
    /// A tick finished with its plan (next cadence, idle stop).
    TickDone(TickPlan),
    /// The idle stop's drain finished (the container is gone, or stopped and kept).
    IdleStopDone(Result<()>),
    /// The idle pause finished: paused (`Ok(true)`), skipped because an agent was busy
    /// (`Ok(false)`), or failed.
    PauseDone(Result<bool>),
    /// The wake's resume finished, with its ms; an error means the paused container is
    /// lost (removed or killed while frozen) and its actor is stopped.
    WakeDone(Result<u64>),
    /// Every request parked during a wake has been replayed.
    WakeReplayed,
    /// The host's paused-memory budget evicted this paused town: stop it.
    StopPaused,
}

impl TownMsg {
    /// Requests that must wait for an idle stop, a pause or a wake to finish: they would
    /// otherwise race it with a new container start or reach a frozen server.
    pub(super) fn waits_for_idle_stop(&self) -> bool {
        !matches!(
            self,
            TownMsg::Tick(_)
                | TownMsg::TickDone(_)
                | TownMsg::IdleStopDone(_)
                | TownMsg::ShutdownDone(_)
                | TownMsg::PauseDone(_)
                | TownMsg::WakeDone(_)
                | TownMsg::WakeReplayed
                | TownMsg::StopPaused
                | TownMsg::ExitAgent { .. }
        )
    }

    /// Requests that wake a paused town (everything a caller sends but a status read; the
    /// alarm's own messages do not).
    pub(super) fn wakes_the_town(&self) -> bool {
        self.waits_for_idle_stop() && !matches!(self, TownMsg::AgentInfo { .. })
    }
}
