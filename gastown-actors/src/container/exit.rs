//! A worker's exit (`ARCHITECTURE.md`, *Workers and the reconciler*): a polecat 120 s after
//! its session went idle, a refinery after 600 s (Kilo Gastown), or at once after a failed
//! dispatch. Its server stops, its `kilo.db` is snapshotted, it leaves the registry, and
//! the reconciler is told (`AgentExited`) so a hook it held is released. The mayor never
//! exits this way.

use gastown_core::reconciler::ReconcileEvent;
use gastown_core::{AgentId, Role};
use ractor::rpc::CallResult;

use super::ContainerState;
use crate::agent::AgentMsg;
use crate::events::TownEvent;

impl ContainerState {
    /// Drains `agent` in a spawned task (stop + snapshot), then stops its actor and records
    /// the exit. An agent without an actor here only leaves the registry.
    pub(super) fn on_exit_agent(&mut self, agent: AgentId) {
        if agent == AgentId::mayor() || self.draining {
            return;
        }
        let actor = self.agents.get(&agent).cloned();
        let parts = self.parts.clone();
        tokio::spawn(async move {
            if let Some(actor) = &actor {
                match actor.call(AgentMsg::Drain, None).await {
                    Ok(CallResult::Success(Ok(()))) => {}
                    Ok(CallResult::Success(Err(e))) => {
                        // Kept registered: the next boot resumes it, nothing is lost.
                        tracing::warn!(agent = %agent, error = %e, "worker exit: snapshot failed");
                        return;
                    }
                    // Already gone (draining or stopped): carry on with the records.
                    _ => {}
                }
                actor.stop(None);
            }
            let store = &parts.store;
            let role = store.agent(&agent).ok().flatten().map(|a| a.role);
            if role == Some(Role::Mayor) {
                return;
            }
            let recorded = store.unregister(&agent).and_then(|_| {
                store.enqueue(&ReconcileEvent::AgentExited {
                    agent: agent.clone(),
                })
            });
            if let Err(e) = recorded {
                tracing::warn!(agent = %agent, error = %e, "recording a worker's exit");
            }
            tracing::info!(agent = %agent, "worker exited");
            parts.events.publish(
                Some(&agent),
                TownEvent::AgentStatusChanged {
                    status: gastown_core::AgentStatus::Idle,
                },
            );
        });
    }
}
