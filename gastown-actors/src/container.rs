//! [`ContainerActor`]: one per running container. Starts or adopts the town's container
//! through the runtime, owns one [`AgentActor`] per agent (the per-agent SDK server cache),
//! and drains every agent before the container goes away.

use std::collections::HashMap;
use std::sync::Arc;

use gastown_core::{AgentId, ContainerInfo, ContainerOptions, Secret};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;

use crate::agent::{AgentActor, AgentMsg, Waiter};
use crate::context::{AgentContext, AgentSpec, TownParts};
use crate::error::{Error, Result};
use crate::ready::{AgentInfo, MayorReady};

/// Messages of the [`ContainerActor`].
#[derive(Debug)]
pub(crate) enum ContainerMsg {
    /// Make an agent ready, starting the container first if needed.
    EnsureAgent {
        spec: AgentSpec,
        reply: RpcReplyPort<Result<MayorReady>>,
        requested: Instant,
    },
    /// Record a message in an agent's session.
    SendNoReply {
        agent: AgentId,
        text: String,
        reply: RpcReplyPort<Result<String>>,
    },
    /// What runs for an agent (`None` if it has no actor).
    AgentInfo {
        agent: AgentId,
        reply: RpcReplyPort<Option<AgentInfo>>,
    },
    /// The runtime's start (or adopt) finished.
    ContainerEnsured(std::result::Result<ContainerInfo, gastown_core::Error>),
    /// Drain every agent (stop + snapshot), then remove the container.
    Drain(RpcReplyPort<Result<()>>),
}

/// Arguments of a [`ContainerActor`].
#[derive(Debug)]
pub(crate) struct ContainerArgs {
    pub(crate) parts: Arc<TownParts>,
    pub(crate) options: ContainerOptions,
}

/// The ContainerActor's state.
#[derive(Debug)]
pub(crate) struct ContainerState {
    parts: Arc<TownParts>,
    options: ContainerOptions,
    agents: HashMap<AgentId, ActorRef<AgentMsg>>,
    /// Requests waiting for the runtime's start to finish.
    pending: Vec<(AgentSpec, Waiter)>,
    ensuring: bool,
    /// The container has been started at least once by this actor.
    booted: bool,
    draining: bool,
}

/// One town's container.
#[derive(Debug)]
pub(crate) struct ContainerActor;

impl Actor for ContainerActor {
    type Msg = ContainerMsg;
    type State = ContainerState;
    type Arguments = ContainerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ContainerArgs,
    ) -> std::result::Result<Self::State, ActorProcessingErr> {
        Ok(ContainerState {
            parts: args.parts,
            options: args.options,
            agents: HashMap::new(),
            pending: Vec::new(),
            ensuring: false,
            booted: false,
            draining: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            ContainerMsg::EnsureAgent {
                spec,
                reply,
                requested,
            } => {
                if state.draining {
                    let _ = reply.send(Err(Error::Stopped));
                    return Ok(());
                }
                state.pending.push((spec, Waiter { reply, requested }));
                if !state.ensuring {
                    state.ensuring = true;
                    // Every request re-asserts the container (idempotent start/adopt), so a
                    // container killed from outside is noticed and replaced here.
                    let rt = state.parts.runtime.clone();
                    let town = state.parts.town.clone();
                    let options = state.options.clone();
                    let me = myself.clone();
                    tokio::spawn(async move {
                        let result = rt.start(&town, &options).await;
                        let _ = me.cast(ContainerMsg::ContainerEnsured(result));
                    });
                }
            }
            ContainerMsg::ContainerEnsured(result) => state.on_ensured(&myself, result).await,
            ContainerMsg::SendNoReply { agent, text, reply } => match state.agents.get(&agent) {
                Some(actor) => {
                    if let Err(e) = actor.cast(AgentMsg::SendNoReply { text, reply }) {
                        tracing::warn!(agent = %agent, error = %e, "agent actor unreachable");
                    }
                }
                None => {
                    let _ = reply.send(Err(Error::NotRunning { agent }));
                }
            },
            ContainerMsg::AgentInfo { agent, reply } => match state.agents.get(&agent) {
                Some(actor) => {
                    let actor = actor.clone();
                    tokio::spawn(async move {
                        let info = actor.call(AgentMsg::Info, None).await;
                        let _ = reply.send(match info {
                            Ok(ractor::rpc::CallResult::Success(info)) => Some(info),
                            _ => None,
                        });
                    });
                }
                None => {
                    let _ = reply.send(None);
                }
            },
            ContainerMsg::Drain(reply) => {
                state.draining = true;
                for (_, w) in state.pending.drain(..) {
                    let _ = w.reply.send(Err(Error::Stopped));
                }
                let agents: Vec<_> = state.agents.values().cloned().collect();
                let rt = state.parts.runtime.clone();
                let town = state.parts.town.clone();
                let grace = state.parts.options.stop_grace;
                tokio::spawn(async move {
                    let results = futures::future::join_all(agents.iter().map(|a| async move {
                        match a.call(AgentMsg::Drain, None).await {
                            Ok(ractor::rpc::CallResult::Success(r)) => r,
                            _ => Err(Error::Actor("agent actor gone during drain".into())),
                        }
                    }))
                    .await;
                    let first_err = results.into_iter().find_map(|r| r.err());
                    let result = match first_err {
                        // Nothing is lost: with a failed snapshot the container keeps its
                        // files (stopped, not removed).
                        Some(e) => {
                            let _ = rt.stop(&town, grace).await;
                            Err(e)
                        }
                        None => rt.remove(&town).await.map_err(Error::Core),
                    };
                    let _ = reply.send(result);
                });
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
        // Do not stop with a child (ractor's default): forget the failed agent actor; the
        // next request for that agent spawns a new one, which probes and restarts it.
        match &evt {
            SupervisionEvent::ActorFailed(cell, _)
            | SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.agents.retain(|_, a| a.get_id() != cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        for (_, w) in state.pending.drain(..) {
            let _ = w.reply.send(Err(Error::Stopped));
        }
        for child in myself.get_children() {
            child.stop(None);
        }
        Ok(())
    }
}

impl ContainerState {
    async fn on_ensured(
        &mut self,
        myself: &ActorRef<ContainerMsg>,
        result: std::result::Result<ContainerInfo, gastown_core::Error>,
    ) {
        self.ensuring = false;
        match result {
            Ok(info) => {
                if info.created && self.booted {
                    tracing::warn!(town = %self.parts.town, "container was replaced; its processes are gone");
                    for agent in self.agents.values() {
                        let _ = agent.cast(AgentMsg::ContainerLost);
                    }
                }
                self.booted = true;
                for (spec, waiter) in std::mem::take(&mut self.pending) {
                    match self.agent(myself, &spec).await {
                        Ok(actor) => {
                            if let Err(e) = actor.cast(AgentMsg::Ensure(waiter)) {
                                tracing::warn!(agent = %spec.id, error = %e, "agent actor unreachable");
                            }
                        }
                        Err(e) => {
                            let _ = waiter.reply.send(Err(e));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(town = %self.parts.town, error = %e, "container start failed");
                let source = Arc::new(e);
                for (_, w) in self.pending.drain(..) {
                    let _ = w.reply.send(Err(Error::Container {
                        town: self.parts.town.to_string(),
                        source: source.clone(),
                    }));
                }
            }
        }
    }

    /// The agent's actor, spawned on first use.
    async fn agent(
        &mut self,
        myself: &ActorRef<ContainerMsg>,
        spec: &AgentSpec,
    ) -> Result<ActorRef<AgentMsg>> {
        if let Some(actor) = self.agents.get(&spec.id) {
            return Ok(actor.clone());
        }
        let ctx = AgentContext {
            parts: self.parts.clone(),
            spec: spec.clone(),
            layout: gastown_core::AgentLayout::new(spec.id.clone()),
            password: Secret::random(),
            credentials: Default::default(),
        };
        let (actor, _) = Actor::spawn_linked(None, AgentActor, ctx, myself.get_cell())
            .await
            .map_err(|e| Error::Actor(format!("spawning agent actor: {e}")))?;
        self.agents.insert(spec.id.clone(), actor.clone());
        Ok(actor)
    }
}
