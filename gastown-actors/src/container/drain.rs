//! The ContainerActor's drain: every agent — those with an actor and those the registry
//! says ran in this container — stops and snapshots its SDK database, then the container is
//! removed; with a failed snapshot, or a session whose database is missing, it is only
//! stopped, so nothing is lost (`ARCHITECTURE.md`, *Persistence*).

use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};

use super::{ContainerMsg, ContainerState, Gate};
use crate::agent::AgentMsg;
use crate::context::AgentSpec;
use crate::error::{Error, Result};
use crate::events::{StopReason, TownEvent};

impl ContainerState {
    /// The actor is stopping: every caller still waiting is refused, and every agent's
    /// actor is stopped and waited for, so whoever stops the tree knows every SDK server
    /// is stopped when it returns.
    pub(super) async fn on_stop(&mut self, myself: &ActorRef<ContainerMsg>) {
        self.refuse_waiting();
        for child in myself.get_children() {
            let _ = child.stop_and_wait(None, None).await;
        }
    }

    /// Answers every caller still waiting — requests queued for the runtime's start,
    /// `warm_up` callers, callers at a closed gate — with [`Error::Stopped`].
    pub(super) fn refuse_waiting(&mut self) {
        for (_, w) in self.pending.drain(..) {
            let _ = w.reply.send(Err(Error::Stopped));
        }
        for w in self.warmups.drain(..) {
            let _ = w.send(Err(Error::Stopped));
        }
        if let Gate::Closed(waiters) = &mut self.gate {
            for w in waiters.drain(..) {
                let _ = w.send(Err(Error::Stopped));
            }
        }
    }

    /// Asks every agent to snapshot and confirm it is quiet, then pauses the container
    /// through the runtime — all in a spawned task. A busy agent (a turn in flight) or a
    /// draining container answers `false`: a frozen server would drop its model
    /// connections mid-turn.
    pub(super) fn on_pause(&mut self, reply: RpcReplyPort<Result<bool>>) {
        if self.draining || !matches!(self.gate, Gate::Open(_)) {
            let _ = reply.send(Ok(false));
            return;
        }
        let agents: Vec<_> = self.agents.values().cloned().collect();
        let rt = self.parts.runtime.clone();
        let town = self.parts.town.clone();
        tokio::spawn(async move {
            let quiet = futures::future::join_all(agents.iter().map(|a| async move {
                matches!(
                    a.call(AgentMsg::PrepareForPause, None).await,
                    Ok(CallResult::Success(true))
                )
            }))
            .await;
            if !quiet.iter().all(|q| *q) {
                let _ = reply.send(Ok(false));
                return;
            }
            let _ = reply.send(rt.pause(&town).await.map(|()| true).map_err(Error::Core));
        });
    }

    pub(super) async fn on_drain(
        &mut self,
        myself: &ActorRef<ContainerMsg>,
        reason: StopReason,
        reply: RpcReplyPort<Result<()>>,
    ) {
        if self.draining {
            let _ = reply.send(Err(Error::Stopped));
            return;
        }
        self.draining = true;
        self.refuse_waiting();
        if self.ensuring {
            self.parked_drain = Some((reason, reply));
        } else {
            self.start_drain(myself, reason, reply).await;
        }
    }

    /// Drains every agent — those with an actor and those the registry says ran in this
    /// container (an adopted container may hold their newer SDK database) — then removes
    /// the container; when an agent's drain fails (a failed snapshot, or a session whose
    /// database is missing) it only stops it.
    pub(super) async fn start_drain(
        &mut self,
        myself: &ActorRef<ContainerMsg>,
        reason: StopReason,
        reply: RpcReplyPort<Result<()>>,
    ) {
        match self.parts.store.registry() {
            Ok(registry) => {
                for entry in registry {
                    if !self.agents.contains_key(&entry.agent) {
                        let spec = AgentSpec::from_registry(
                            &entry,
                            &self.mayor.model,
                            &self.mayor.small_model,
                        );
                        if let Err(e) = self.agent(myself, &spec).await {
                            tracing::warn!(agent = %spec.id, error = %e, "drain: agent actor");
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(town = %self.parts.town, error = %e, "drain: registry"),
        }
        let agents: Vec<_> = self
            .agents
            .iter()
            .map(|(id, a)| (id.clone(), a.clone()))
            .collect();
        let store = self.parts.store.clone();
        let rt = self.parts.runtime.clone();
        let town = self.parts.town.clone();
        let grace = self.parts.options.stop_grace;
        let events = self.parts.events.clone();
        tokio::spawn(async move {
            let results = futures::future::join_all(agents.iter().map(|(id, a)| {
                let store = &store;
                async move {
                    match Error::from_call(a.call(AgentMsg::Drain, None).await, "agent") {
                        // A worker that exited meanwhile (`container/exit.rs`) was drained
                        // by its exit, which unregistered it only after its snapshot.
                        Err(Error::Unreachable { .. })
                            if matches!(store.registry_entry(id), Ok(None)) =>
                        {
                            Ok(())
                        }
                        other => other,
                    }
                }
            }))
            .await;
            let result = match results.into_iter().find_map(|r| r.err()) {
                // Nothing is lost: with a failed snapshot the container keeps its files
                // (stopped, not removed).
                Some(e) => {
                    let _ = rt.stop(&town, grace).await;
                    Err(e)
                }
                None => rt.remove(&town).await.map_err(Error::Core),
            };
            events.publish(None, TownEvent::ContainerStopped { reason });
            let _ = reply.send(result);
        });
    }
}
