//! [`Known`]: what a [`DockerRuntime`](crate::DockerRuntime) remembers, host-side, of the
//! labelled processes of its towns, and how a container hand-over (`rename_container`)
//! carries it to the claiming town.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use gastown_core::{ProcessLabel, TownId};
use parking_lot::Mutex;

use crate::process::DockerProcess;

/// What a [`DockerRuntime`](crate::DockerRuntime) remembers of the labelled processes of
/// its towns: those it spawned (not up for adoption, ended with their exec handle, until a
/// hand-over offers them to the claiming town) and those it adopted (handed out once), and
/// whether it started the town's container itself. Forgotten when the town's container is
/// created or removed; moved to the new town when its container is handed over.
#[derive(Debug, Default)]
pub(crate) struct Known {
    towns: Mutex<HashMap<TownId, TownKnown>>,
}

#[derive(Debug, Default)]
struct TownKnown {
    /// In-container pid → the handle of a labelled process this runtime spawned, with its
    /// label.
    own: HashMap<u32, (Arc<DockerProcess>, ProcessLabel)>,
    /// In-container pids handed out by `adopt`.
    adopted: HashSet<u32>,
    /// In-container pids of `own` processes up for adoption: those a container hand-over
    /// brought to this town (a warm pool's server that its town's start adopts).
    offered: HashSet<u32>,
    /// Serialises the labelled spawns (and adoption) of one agent.
    agent_locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// True when this runtime started the town's current container (`start` answered
    /// `created == true`): every record in it was written by a labelled spawn of this
    /// runtime.
    started_here: bool,
    /// The agents this runtime made a labelled spawn for in the current container (counted
    /// from the attempt, since the record may exist even when the spawn then fails).
    spawned_agents: HashSet<String>,
}

impl Known {
    /// Forgets `town` (its container was created anew or removed: pids start over).
    pub(crate) fn forget(&self, town: &TownId) {
        self.towns.lock().remove(town);
    }

    /// Forgets `town` and notes that this runtime has just started its container (never
    /// started before: a new pid namespace, and no record in it).
    pub(crate) fn started_here(&self, town: &TownId) {
        let mut towns = self.towns.lock();
        towns.remove(town);
        towns.entry(town.clone()).or_default().started_here = true;
    }

    /// Moves everything known of `from`'s container to `to` (its container was handed
    /// over: same pid namespace, same records) and offers every labelled process this
    /// runtime spawned there for adoption, each once, as the trait's `rename_container`
    /// promises. Whatever `to` had is replaced (it had no container).
    pub(crate) fn rename(&self, from: &TownId, to: &TownId) {
        let mut towns = self.towns.lock();
        let mut known = towns.remove(from).unwrap_or_default();
        known.offered = known.own.keys().copied().collect();
        known.offered.retain(|pid| !known.adopted.contains(pid));
        towns.insert(to.clone(), known);
    }

    /// Whether the town's container may hold a record of `agent`: false only when this
    /// runtime started the container and has made no labelled spawn of `agent` in it.
    pub(super) fn may_hold_records(&self, town: &TownId, agent: &str) -> bool {
        self.towns
            .lock()
            .get(town)
            .is_none_or(|t| !t.started_here || t.spawned_agents.contains(agent))
    }

    /// Notes a labelled spawn of `agent` in the town's current container.
    pub(super) fn spawning(&self, town: &TownId, agent: &str) {
        self.towns
            .lock()
            .entry(town.clone())
            .or_default()
            .spawned_agents
            .insert(agent.to_owned());
    }

    /// Keeps the handle and label of a labelled process this runtime spawned.
    pub(super) fn spawned(&self, town: &TownId, process: Arc<DockerProcess>, label: ProcessLabel) {
        self.towns
            .lock()
            .entry(town.clone())
            .or_default()
            .own
            .insert(process.container_pid(), (process, label));
    }

    /// This runtime's own handle of the labelled process `pid` of `town`, if it spawned it.
    pub(super) fn own_handle(&self, town: &TownId, pid: u32) -> Option<Arc<DockerProcess>> {
        self.towns
            .lock()
            .get(town)
            .and_then(|t| t.own.get(&pid).map(|(p, _)| p.clone()))
    }

    /// Whether `adopt` may hand out the recorded process `pid`: this runtime neither
    /// spawned it (unless a hand-over offered it) nor handed it out before.
    pub(super) fn adoptable(&self, town: &TownId, pid: u32) -> bool {
        self.towns.lock().get(town).is_none_or(|k| {
            (!k.own.contains_key(&pid) || k.offered.contains(&pid)) && !k.adopted.contains(&pid)
        })
    }

    /// Notes that `adopt` handed out `pid` (never again).
    pub(super) fn adopted(&self, town: &TownId, pid: u32) {
        let mut towns = self.towns.lock();
        let known = towns.entry(town.clone()).or_default();
        known.offered.remove(&pid);
        known.adopted.insert(pid);
    }

    /// Takes a process of `agent` that a hand-over offered (the highest pid when, unusually,
    /// there are several), with its label: the caller checks it is alive and hands it out
    /// (`adopted`) or forgets it.
    pub(super) fn take_offered(
        &self,
        town: &TownId,
        agent: &str,
    ) -> Option<(Arc<DockerProcess>, ProcessLabel)> {
        let mut towns = self.towns.lock();
        let known = towns.get_mut(town)?;
        let pid = known
            .offered
            .iter()
            .copied()
            .filter(|pid| known.own.get(pid).is_some_and(|(_, l)| l.agent == agent))
            .max()?;
        known.offered.remove(&pid);
        known.own.get(&pid).cloned()
    }

    /// Forgets pids whose processes ended (the kernel may hand them out again).
    pub(super) fn forget_pids(&self, town: &TownId, pids: &[u32]) {
        if let Some(t) = self.towns.lock().get_mut(town) {
            for pid in pids {
                t.own.remove(pid);
                t.adopted.remove(pid);
                t.offered.remove(pid);
            }
        }
    }

    /// The lock serialising the labelled spawns and adoption of one agent of `town`.
    pub(super) fn agent_lock(&self, town: &TownId, agent: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.towns
            .lock()
            .entry(town.clone())
            .or_default()
            .agent_locks
            .entry(agent.to_owned())
            .or_default()
            .clone()
    }
}
