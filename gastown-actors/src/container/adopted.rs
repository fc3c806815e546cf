//! Boot hydration of an *adopted* container: one that was already running when this
//! ContainerActor started it (`created == false`), e.g. after the host restarted while the
//! container lived on.
//!
//! The mayor needs no boot work: the gate opens at once (`MayorBoot::AlreadyRunning`), no
//! live token refresh is sent to the container on adoption (the alarm's throttle decides,
//! as for any warm container: the Gastown cold-start analysis, recommendation 1), and the
//! mayor's first request adopts its running server (a `short_circuit_warm`) or starts one.
//! The registered workers, though, ran in the container when the earlier host lost it and
//! nobody would ask for them again: they are resumed in the background exactly as after a
//! created container's boot — each AgentActor's first request adopts its recorded server
//! when it is alive and healthy with the current configuration, else runs the five phases
//! (this project; the registry is the Gastown cold-start analysis's).

use ractor::ActorRef;

use super::{ContainerMsg, ContainerState};
use crate::boot::{BootReport, MayorBoot};
use crate::context::AgentSpec;
use gastown_core::Role;

impl ContainerState {
    /// Opens the gate of an adopted container and resumes its registered workers in the
    /// background (see the module docs).
    pub(super) async fn hydrate_adopted(&mut self, myself: &ActorRef<ContainerMsg>) {
        let workers = self.registered_workers();
        let report = BootReport {
            container_created: false,
            registry_fetch_ms: 0,
            mayor: MayorBoot::AlreadyRunning,
            mayor_ms: 0,
            non_mayor_agents: workers.len(),
        };
        if !workers.is_empty() {
            tracing::info!(town = %self.parts.town, workers = workers.len(), "adopted container: resuming registered workers");
        }
        self.on_gate_open(myself, report, workers).await;
    }

    /// The registry's agents other than the mayor, as specs with the mayor's models.
    fn registered_workers(&self) -> Vec<AgentSpec> {
        match self.parts.store.registry() {
            Ok(registry) => registry
                .iter()
                .filter(|e| e.role != Role::Mayor)
                .map(|e| AgentSpec::from_registry(e, &self.mayor.model, &self.mayor.small_model))
                .collect(),
            Err(e) => {
                tracing::warn!(town = %self.parts.town, error = %e, "reading the registry");
                Vec::new()
            }
        }
    }
}
