//! [`TownActor`]: one per town. Owns the town's state and decides; never blocks its
//! mailbox on slow I/O — requests are forwarded with their reply ports to the
//! ContainerActor, and shutdown runs in a spawned task.

use std::sync::Arc;

use gastown_core::{AgentId, ContainerOptions};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;

use gastown_core::policy::alarm_interval;

use crate::alarm;
use crate::boot::BootReport;
use crate::container::{ContainerActor, ContainerArgs, ContainerMsg};
use crate::context::{AgentSpec, TownParts};
use crate::error::{Error, Result};
use crate::ready::{AgentInfo, MayorReady};

/// Messages of the [`TownActor`].
#[derive(Debug)]
pub(crate) enum TownMsg {
    /// Make the mayor ready.
    EnsureMayor(RpcReplyPort<Result<MayorReady>>),
    /// Record a message in the mayor's session without an LLM turn; replies with its id.
    SendMayorMessage {
        /// The text.
        text: String,
        /// Where the message id goes.
        reply: RpcReplyPort<Result<String>>,
    },
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
    /// The periodic alarm.
    Tick,
    /// A tick finished; `active` sets the next cadence.
    TickDone { active: bool },
}

/// Arguments of a [`TownActor`].
#[derive(Debug)]
pub(crate) struct TownArgs {
    pub(crate) parts: Arc<TownParts>,
    pub(crate) mayor: AgentSpec,
    pub(crate) container_options: ContainerOptions,
}

/// The TownActor's state.
#[derive(Debug)]
pub(crate) struct TownState {
    parts: Arc<TownParts>,
    mayor: AgentSpec,
    container_options: ContainerOptions,
    container: Option<ActorRef<ContainerMsg>>,
    shutting_down: bool,
    shutdown_waiters: Vec<RpcReplyPort<Result<()>>>,
}

/// One town's actor.
#[derive(Debug)]
pub(crate) struct TownActor;

impl Actor for TownActor {
    type Msg = TownMsg;
    type State = TownState;
    type Arguments = TownArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: TownArgs,
    ) -> std::result::Result<Self::State, ActorProcessingErr> {
        Ok(TownState {
            parts: args.parts,
            mayor: args.mayor,
            container_options: args.container_options,
            container: None,
            shutting_down: false,
            shutdown_waiters: Vec::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        alarm::spawn_credential_refresh(state.parts.clone());
        myself.send_after(alarm_interval(false), || TownMsg::Tick);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            TownMsg::EnsureMayor(reply) => {
                let spec = state.mayor.clone();
                state.ensure_agent(&myself, spec, reply).await;
            }
            TownMsg::SendMayorMessage { text, reply } => match &state.container {
                Some(c) if !state.shutting_down => {
                    let _ = c.cast(ContainerMsg::SendNoReply {
                        agent: AgentId::mayor(),
                        text,
                        reply,
                    });
                }
                _ => {
                    let _ = reply.send(Err(Error::NotRunning {
                        agent: AgentId::mayor(),
                    }));
                }
            },
            TownMsg::AgentInfo { agent, reply } => match &state.container {
                Some(c) => {
                    let _ = c.cast(ContainerMsg::AgentInfo { agent, reply });
                }
                None => {
                    let _ = reply.send(None);
                }
            },
            TownMsg::StartAgent { spec, reply } => {
                state.ensure_agent(&myself, spec, reply).await;
            }
            TownMsg::WarmUp(reply) => {
                if state.shutting_down {
                    let _ = reply.send(Err(Error::Stopped));
                    return Ok(());
                }
                match state.container(&myself).await {
                    Ok(c) => {
                        let _ = c.cast(ContainerMsg::WarmUp(reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            TownMsg::UpdateMayorModel {
                model,
                small_model,
                reply,
            } => {
                let mut spec = state.mayor.clone();
                spec.model = model;
                if let Some(small) = small_model {
                    spec.small_model = small;
                }
                let checked = gastown_core::ModelRef::parse(&spec.model)
                    .and_then(|_| gastown_core::ModelRef::parse(&spec.small_model));
                match checked {
                    Ok(_) => {
                        state.mayor = spec.clone();
                        if let Some(c) = &state.container {
                            let _ = c.cast(ContainerMsg::SetMayorSpec(spec));
                        }
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            TownMsg::Tick => {
                if state.shutting_down {
                    return Ok(());
                }
                let parts = state.parts.clone();
                let container = state.container.clone();
                let me = myself.clone();
                tokio::spawn(async move {
                    let active = alarm::tick(&parts, container).await;
                    let _ = me.cast(TownMsg::TickDone { active });
                });
            }
            TownMsg::TickDone { active } => {
                if !state.shutting_down {
                    myself.send_after(alarm_interval(active), || TownMsg::Tick);
                }
            }
            TownMsg::Shutdown(reply) => {
                // Every caller (handles are clones) is answered when the one drain ends.
                state.shutdown_waiters.push(reply);
                if state.shutting_down {
                    return Ok(());
                }
                state.shutting_down = true;
                let container = state.container.take();
                let me = myself.clone();
                tokio::spawn(async move {
                    let result = match &container {
                        Some(c) => match c.call(ContainerMsg::Drain, None).await {
                            Ok(ractor::rpc::CallResult::Success(r)) => r,
                            _ => Err(Error::Actor("container actor gone during drain".into())),
                        },
                        None => Ok(()),
                    };
                    if let Some(c) = container {
                        let _ = c.stop_and_wait(None, None).await;
                    }
                    let _ = me.cast(TownMsg::ShutdownDone(result));
                });
            }
            TownMsg::ShutdownDone(result) => {
                let mut waiters = std::mem::take(&mut state.shutdown_waiters).into_iter();
                let summary = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
                if let Some(first) = waiters.next() {
                    let _ = first.send(result);
                }
                for w in waiters {
                    let _ = w.send(summary.clone().map_err(Error::Actor));
                }
                myself.stop(None);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        // A failed ContainerActor is forgotten; the next request spawns a new one, which
        // adopts the running container (idempotent start).
        if let SupervisionEvent::ActorFailed(cell, err) = &evt {
            tracing::error!(town = %state.parts.town, error = %err, "container actor failed");
            if state.container.as_ref().map(|c| c.get_id()) == Some(cell.get_id()) {
                state.container = None;
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        for child in myself.get_children() {
            let _ = child.stop_and_wait(None, None).await;
        }
        Ok(())
    }
}

impl TownState {
    /// Forwards a request to make an agent ready, reply port and all, to the container.
    async fn ensure_agent(
        &mut self,
        myself: &ActorRef<TownMsg>,
        spec: AgentSpec,
        reply: RpcReplyPort<Result<MayorReady>>,
    ) {
        let requested = Instant::now();
        if self.shutting_down {
            let _ = reply.send(Err(Error::Stopped));
            return;
        }
        match self.container(myself).await {
            Ok(c) => {
                let _ = c.cast(ContainerMsg::EnsureAgent {
                    spec,
                    reply,
                    requested,
                });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn container(&mut self, myself: &ActorRef<TownMsg>) -> Result<ActorRef<ContainerMsg>> {
        if let Some(c) = &self.container {
            return Ok(c.clone());
        }
        let args = ContainerArgs {
            parts: self.parts.clone(),
            options: self.container_options.clone(),
            mayor: self.mayor.clone(),
        };
        let (c, _) = Actor::spawn_linked(None, ContainerActor, args, myself.get_cell())
            .await
            .map_err(|e| Error::Actor(format!("spawning container actor: {e}")))?;
        self.container = Some(c.clone());
        Ok(c)
    }
}
