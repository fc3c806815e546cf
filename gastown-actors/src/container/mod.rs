//! [`ContainerActor`]: one per running container. Starts or adopts the town's container
//! through the runtime, runs **boot hydration** when it creates one (mayor first: resume it
//! if registered, else prewarm it; open the hydration gate; resume the other registered
//! agents in the background with bounded concurrency), owns one [`AgentActor`] per agent
//! (the per-agent SDK server cache), and drains every agent before the container goes away.

use std::collections::HashMap;
use std::sync::Arc;

use gastown_core::{AgentId, ContainerInfo, ContainerOptions, Role, Secret};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use crate::agent::{AgentActor, AgentMsg, SessionRequest, Waiter};

mod adopted;
mod claim;
mod drain;
mod exit;
use crate::boot::{BootReport, MayorBoot};
use crate::context::{AgentContext, AgentSpec, TownParts};
use crate::error::{Error, Result};
use crate::events::{StopReason, TownEvent};
use crate::ready::{AgentInfo, MayorReady};
use crate::telemetry;

/// Messages of the [`ContainerActor`].
#[derive(Debug)]
pub(crate) enum ContainerMsg {
    /// Make an agent ready, starting the container first if needed.
    EnsureAgent {
        spec: AgentSpec,
        reply: RpcReplyPort<Result<MayorReady>>,
        requested: Instant,
        /// The town woke from paused for this request (the resume's ms).
        woke_ms: Option<u64>,
    },
    /// Pause the container if every agent is quiet (each snapshots first); replies whether
    /// it paused.
    Pause(RpcReplyPort<Result<bool>>),
    /// Resume a paused container.
    Resume(RpcReplyPort<Result<()>>),
    /// Start the container (if needed) and reply once the hydration gate is open.
    WarmUp(RpcReplyPort<Result<BootReport>>),
    /// The mayor's configuration changed (used by the next boot hydration).
    SetMayorSpec(AgentSpec),
    /// Record a message in an agent's session.
    Session {
        /// The agent whose session it is for.
        agent: AgentId,
        /// What to do there.
        request: SessionRequest,
    },
    /// What runs for an agent (`None` if it has no actor).
    AgentInfo {
        agent: AgentId,
        reply: RpcReplyPort<Option<AgentInfo>>,
    },
    /// The alarm's health check (only with active work): every agent with a running
    /// server probes it, and a dead one is redispatched.
    HealthCheck,
    /// Whether the container is known warm (started by this actor and not lost since).
    IsWarm(RpcReplyPort<bool>),
    /// The runtime's start (or adopt) finished.
    ContainerEnsured(std::result::Result<ContainerInfo, gastown_core::Error>),
    /// The mayor's boot work finished (for boot number `.0`): open the gate, resume the
    /// others.
    GateOpen(u64, Box<BootReport>, Vec<AgentSpec>),
    /// Stop one worker for good (idle exit, failed dispatch): see `container/exit.rs`.
    ExitAgent {
        /// The worker.
        agent: AgentId,
    },
    /// Drain every agent (stop + snapshot), then remove the container.
    Drain {
        /// Why the container goes away (told to event subscribers).
        reason: StopReason,
        /// Answered when the container is removed (or stopped and kept).
        reply: RpcReplyPort<Result<()>>,
    },
}

/// Arguments of a [`ContainerActor`].
#[derive(Debug)]
pub(crate) struct ContainerArgs {
    pub(crate) parts: Arc<TownParts>,
    pub(crate) options: ContainerOptions,
    pub(crate) mayor: AgentSpec,
}

#[derive(Debug)]
enum Gate {
    /// No container yet (or it was lost).
    Down,
    /// Boot hydration runs: the mayor's critical work is not done.
    Closed(Vec<RpcReplyPort<Result<BootReport>>>),
    /// Open.
    Open(BootReport),
}

/// The ContainerActor's state.
#[derive(Debug)]
pub(crate) struct ContainerState {
    /// What every agent shares (runtime, store, snapshots, signer).
    parts: Arc<TownParts>,
    /// How the container is started (read-only rig mounts); passed on every start.
    options: ContainerOptions,
    /// The mayor's current spec: boot hydration starts the mayor with it, so a model
    /// changed before a cold start is the one its first server gets.
    mayor: AgentSpec,
    /// The per-agent SDK server cache: one AgentActor per agent, spawned on first use.
    agents: HashMap<AgentId, ActorRef<AgentMsg>>,
    /// Requests waiting for the runtime's start to finish.
    pending: Vec<(AgentSpec, Waiter)>,
    /// `warm_up` callers waiting for the runtime's start, answered at the gate.
    warmups: Vec<RpcReplyPort<Result<BootReport>>>,
    /// A runtime start is in flight: queued requests share it instead of starting another.
    ensuring: bool,
    /// The hydration gate: closed while boot hydration brings the mayor up.
    gate: Gate,
    /// A drain began: every new request is refused with `Stopped`.
    draining: bool,
    /// A drain that arrived while the runtime's start was in flight: it runs when the start
    /// returns, so a container created after the drain is not left behind.
    parked_drain: Option<(StopReason, RpcReplyPort<Result<()>>)>,
    /// Counts boots, so a boot's gate-open message is not taken for a later boot's.
    boot_seq: u64,
}

/// One town's container.
#[derive(Debug)]
pub(crate) struct ContainerActor;

impl Actor for ContainerActor {
    actor_core!(ContainerMsg, ContainerState, ContainerArgs);

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        // Do not stop with a child (ractor's default): forget the ended agent actor; the
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
}

impl ContainerState {
    /// Handles one message: an agent request (the container is started first), the
    /// runtime's start returning, the gate opening, a session request, a drain.
    async fn handle(&mut self, myself: &ActorRef<ContainerMsg>, msg: ContainerMsg) {
        match msg {
            ContainerMsg::EnsureAgent {
                spec,
                reply,
                requested,
                woke_ms,
            } => {
                if self.draining {
                    let _ = reply.send(Err(Error::Stopped));
                    return;
                }
                if spec.role == Role::Mayor {
                    self.mayor = spec.clone();
                }
                self.pending.push((
                    spec,
                    Waiter {
                        reply,
                        requested,
                        woke_ms,
                    },
                ));
                self.ensure_container(myself);
            }
            ContainerMsg::WarmUp(reply) => {
                if self.draining {
                    let _ = reply.send(Err(Error::Stopped));
                    return;
                }
                self.warmups.push(reply);
                self.ensure_container(myself);
            }
            ContainerMsg::SetMayorSpec(spec) => self.mayor = spec,
            ContainerMsg::ContainerEnsured(result) => self.on_ensured(myself, result).await,
            ContainerMsg::GateOpen(boot, report, others) => {
                if boot == self.boot_seq && !self.draining {
                    self.on_gate_open(myself, *report, others).await
                }
            }
            ContainerMsg::Session { agent, request } => match self.agents.get(&agent) {
                Some(actor) => {
                    if let Err(e) = actor.cast(AgentMsg::Session(request)) {
                        tracing::warn!(agent = %agent, error = %e, "agent actor unreachable");
                    }
                }
                None => request.refuse(Error::NotRunning { agent }),
            },
            ContainerMsg::AgentInfo { agent, reply } => match self.agents.get(&agent) {
                Some(actor) => {
                    let actor = actor.clone();
                    tokio::spawn(async move {
                        let info = actor.call(AgentMsg::Info, None).await;
                        let _ = reply.send(match info {
                            Ok(CallResult::Success(info)) => Some(info),
                            _ => None,
                        });
                    });
                }
                None => {
                    let _ = reply.send(None);
                }
            },
            ContainerMsg::Pause(reply) => self.on_pause(reply),
            ContainerMsg::Resume(reply) => {
                let rt = self.parts.runtime.clone();
                let town = self.parts.town.clone();
                tokio::spawn(async move {
                    let _ = reply.send(rt.resume(&town).await.map_err(Error::Core));
                });
            }
            ContainerMsg::HealthCheck => {
                for agent in self.agents.values() {
                    let _ = agent.cast(AgentMsg::HealthCheck);
                }
            }
            ContainerMsg::IsWarm(reply) => {
                let _ = reply.send(matches!(self.gate, Gate::Open(_)) && !self.draining);
            }
            ContainerMsg::ExitAgent { agent } => self.on_exit_agent(agent),
            ContainerMsg::Drain { reason, reply } => self.on_drain(myself, reason, reply).await,
        }
    }
}

impl ContainerState {
    /// A state with no container yet: no agents, nothing pending, the gate down.
    fn new(args: ContainerArgs) -> Self {
        Self {
            parts: args.parts,
            options: args.options,
            mayor: args.mayor,
            agents: HashMap::new(),
            pending: Vec::new(),
            warmups: Vec::new(),
            ensuring: false,
            gate: Gate::Down,
            draining: false,
            parked_drain: None,
            boot_seq: 0,
        }
    }

    /// Re-asserts the container (idempotent start/adopt) once for all queued requests, so a
    /// container killed from outside is noticed and replaced here.
    fn ensure_container(&mut self, myself: &ActorRef<ContainerMsg>) {
        if self.ensuring {
            return;
        }
        self.ensuring = true;
        let parts = self.parts.clone();
        let options = self.options.clone();
        let mayor = self.mayor.clone();
        // A town whose container this actor never saw and that has no agent yet may be
        // brand new: it may claim a warm pool's server (`claim.rs`).
        let brand_new = self.agents.is_empty() && matches!(self.gate, Gate::Down);
        let me = myself.clone();
        tokio::spawn(async move {
            let result = claim::start_or_claim(&parts, &options, &mayor, brand_new).await;
            let _ = me.cast(ContainerMsg::ContainerEnsured(result));
        });
    }

    async fn on_ensured(
        &mut self,
        myself: &ActorRef<ContainerMsg>,
        result: std::result::Result<ContainerInfo, gastown_core::Error>,
    ) {
        self.ensuring = false;
        if self.draining {
            if let Some((reason, reply)) = self.parked_drain.take() {
                self.start_drain(myself, reason, reply).await;
            }
            return;
        }
        let info = match result {
            Ok(info) => info,
            Err(e) => {
                tracing::error!(town = %self.parts.town, error = %e, "container start failed");
                let source = Arc::new(e);
                let err = || Error::Container {
                    town: self.parts.town.to_string(),
                    source: source.clone(),
                };
                for (_, w) in self.pending.drain(..) {
                    let _ = w.reply.send(Err(err()));
                }
                for w in self.warmups.drain(..) {
                    let _ = w.send(Err(err()));
                }
                return;
            }
        };
        // Every request re-asserts the container (idempotent start); only a container this
        // actor created, or the first adoption, is news to subscribers.
        if info.created || matches!(self.gate, Gate::Down) {
            self.parts.events.publish(
                None,
                TownEvent::ContainerStarted {
                    created: info.created,
                },
            );
        }
        if info.created {
            if !matches!(self.gate, Gate::Down) {
                tracing::warn!(town = %self.parts.town, "container was replaced; its processes are gone");
                for agent in self.agents.values() {
                    let _ = agent.cast(AgentMsg::ContainerLost);
                }
            }
            self.begin_boot_hydration(myself).await;
        } else if matches!(self.gate, Gate::Down) {
            self.hydrate_adopted(myself).await;
        }
        // Queued mayor requests reach the mayor after the boot prewarm and join it.
        for (spec, waiter) in std::mem::take(&mut self.pending) {
            match self.agent(myself, &spec).await {
                Ok(actor) => {
                    if let Err(e) = actor.cast(AgentMsg::Ensure(Box::new(spec.clone()), waiter)) {
                        tracing::warn!(agent = %spec.id, error = %e, "agent actor unreachable");
                    }
                }
                Err(e) => {
                    let _ = waiter.reply.send(Err(e));
                }
            }
        }
        let warmups = std::mem::take(&mut self.warmups);
        match &mut self.gate {
            Gate::Open(report) => {
                for w in warmups {
                    let _ = w.send(Ok(report.clone()));
                }
            }
            Gate::Closed(waiters) => waiters.extend(warmups),
            Gate::Down => unreachable!("the gate is closed or open after a start"),
        }
    }

    /// Mayor first: read the registry, resume the mayor if registered or prewarm it, and
    /// open the gate when its critical work is done.
    async fn begin_boot_hydration(&mut self, myself: &ActorRef<ContainerMsg>) {
        let started = Instant::now();
        let registry = match self.parts.store.registry() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(town = %self.parts.town, error = %e, "reading the registry");
                Vec::new()
            }
        };
        let registry_fetch_ms = started.elapsed().as_millis() as u64;
        telemetry::timing(
            telemetry::REGISTRY_FETCH_MS,
            telemetry::Subject::town(&self.parts.town),
            registry_fetch_ms,
        );
        let mayor_registered = registry.iter().any(|e| e.role == Role::Mayor);
        let others: Vec<AgentSpec> = registry
            .iter()
            .filter(|e| e.role != Role::Mayor)
            .map(|e| AgentSpec::from_registry(e, &self.mayor.model, &self.mayor.small_model))
            .collect();
        // Callers waiting on an earlier boot of a container that was replaced meanwhile
        // wait for this one.
        let waiting = match std::mem::replace(&mut self.gate, Gate::Down) {
            Gate::Closed(waiters) => waiters,
            _ => Vec::new(),
        };
        self.gate = Gate::Closed(waiting);
        self.boot_seq += 1;
        let boot = self.boot_seq;
        let mayor = self.mayor.clone();
        let (done_tx, done_rx) = oneshot::channel();
        match self.agent(myself, &mayor).await {
            Ok(actor) => {
                let _ = actor.cast(AgentMsg::Prewarm {
                    spec: Box::new(mayor.clone()),
                    done: done_tx,
                    registered: mayor_registered,
                    registry_fetch_ms,
                });
            }
            Err(e) => {
                tracing::error!(town = %self.parts.town, error = %e, "spawning the mayor's actor");
                let _ = done_tx.send(false);
            }
        }
        let me = myself.clone();
        tokio::spawn(async move {
            let ok = done_rx.await.unwrap_or(false);
            let report = BootReport {
                container_created: true,
                registry_fetch_ms,
                mayor: match (ok, mayor_registered) {
                    (false, _) => MayorBoot::Failed,
                    (true, true) => MayorBoot::Resumed,
                    (true, false) => MayorBoot::Prewarmed,
                },
                mayor_ms: started.elapsed().as_millis() as u64,
                non_mayor_agents: others.len(),
            };
            let _ = me.cast(ContainerMsg::GateOpen(boot, Box::new(report), others));
        });
    }

    async fn on_gate_open(
        &mut self,
        myself: &ActorRef<ContainerMsg>,
        report: BootReport,
        others: Vec<AgentSpec>,
    ) {
        let name = if report.mayor == MayorBoot::Resumed {
            telemetry::MAYOR_RESUME_MS
        } else {
            telemetry::MAYOR_PREWARM_MS
        };
        let mayor = &self.mayor;
        // An adopted container's mayor was neither resumed nor prewarmed.
        if report.container_created {
            telemetry::timing(
                name,
                telemetry::Subject::agent(&self.parts.town, &mayor.id, mayor.role),
                report.mayor_ms,
            );
        }
        if let Gate::Closed(waiters) = std::mem::replace(&mut self.gate, Gate::Open(report.clone()))
        {
            for w in waiters {
                let _ = w.send(Ok(report.clone()));
            }
        }
        if others.is_empty() || self.draining {
            return;
        }
        // The others, in the background, a few at a time.
        let mut actors = Vec::new();
        for spec in others {
            match self.agent(myself, &spec).await {
                Ok(actor) => actors.push((spec, actor)),
                Err(e) => tracing::warn!(agent = %spec.id, error = %e, "resuming agent"),
            }
        }
        let limit = Arc::new(Semaphore::new(self.parts.options.resume_concurrency.max(1)));
        let town = self.parts.town.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let resumes = actors.into_iter().map(|(spec, actor)| {
                let limit = limit.clone();
                async move {
                    let _permit = limit.acquire().await;
                    let id = spec.id.clone();
                    let result = actor
                        .call(
                            |reply| {
                                AgentMsg::Ensure(
                                    Box::new(spec),
                                    Waiter {
                                        reply,
                                        requested: Instant::now(),
                                        woke_ms: None,
                                    },
                                )
                            },
                            None,
                        )
                        .await;
                    match result {
                        Ok(CallResult::Success(Ok(_))) => true,
                        // A shutdown that overtook the resume is not a failure.
                        Ok(CallResult::Success(Err(Error::Stopped))) => false,
                        Ok(CallResult::Success(Err(e))) => {
                            tracing::warn!(agent = %id, error = %e, "resuming agent failed");
                            false
                        }
                        _ => false,
                    }
                }
            });
            let results = futures::future::join_all(resumes).await;
            let resumed = results.iter().filter(|ok| **ok).count();
            tracing::debug!(town = %town, resumed, failed = results.len() - resumed, "registry resumed");
            telemetry::timing(
                telemetry::NON_MAYOR_RESUME_MS,
                telemetry::Subject::town(&town),
                started.elapsed().as_millis() as u64,
            );
        });
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
            booting: Default::default(),
            snapshot_lock: Default::default(),
        };
        let (actor, _) = Actor::spawn_linked(None, AgentActor, ctx, myself.get_cell())
            .await
            .map_err(|source| Error::Spawn {
                actor: "agent",
                source,
            })?;
        self.agents.insert(spec.id.clone(), actor.clone());
        Ok(actor)
    }
}
