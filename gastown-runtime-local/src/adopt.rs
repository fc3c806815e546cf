//! Crash safety of the local runtime: recorded processes taken over when a town starts,
//! labelled spawns (one per agent, under the agent's lock), adoption, and the processes
//! `stop` must end although this runtime never started them.
//!
//! A host killed with SIGKILL leaves its SDK servers running (each is its own process
//! group, and nothing else holds them). The records (`records.rs`) let the next host on
//! the same root find them: a labelled server is kept for its agent's actor to adopt
//! (`ContainerRuntime::adopt`), everything else is killed, and a frozen group (a town
//! paused when the host died) is continued first.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gastown_core::{AdoptedProcess, CommandSpec, ProcessLabel, Result, SpawnedProcess, TownId};

use crate::error::LocalError;
use crate::output;
use crate::paths::host_path;
use crate::process::{LocalProcess, Started};
use crate::records::{self, RECORDS_DIR};
use crate::runtime::{check_running, terminate_all, LocalRuntime};

impl LocalRuntime {
    /// Where the town's process records live (`<root>/<town>/run/gastown/processes`).
    pub(crate) fn records_dir(&self, town: &TownId) -> PathBuf {
        self.town_dir(town).join(RECORDS_DIR)
    }

    /// The live recorded processes of `town` that are not among `known`, as handles;
    /// records of processes that are gone (or whose pid was reused) are deleted.
    pub(crate) fn recorded_strangers(
        &self,
        town: &TownId,
        known: &[Arc<LocalProcess>],
    ) -> Vec<Arc<LocalProcess>> {
        let boot = records::boot_id();
        let mut found = Vec::new();
        for (path, record) in records::read_all(&self.records_dir(town)) {
            if known.iter().any(|p| p.leader() == record.pid) {
                continue;
            }
            if !record.is_live(&boot) {
                // Gone, or its pid belongs to someone else now: never signal it.
                records::remove(&path);
                continue;
            }
            found.push(LocalProcess::adopted(record, path));
        }
        found
    }

    /// Takes over what an earlier host left in `town` (just marked running): every live
    /// recorded group is continued (a frozen one belonged to a paused town), unlabelled
    /// ones are killed, labelled ones join the town's processes and wait for an adopter.
    /// Returns whether any labelled process was kept.
    pub(crate) fn take_over_records(&self, town: &TownId) -> bool {
        let mut towns = self.towns.lock();
        let Some(state) = towns.get_mut(town) else {
            return false;
        };
        let strangers = self.recorded_strangers(town, &state.processes);
        let mut kept = false;
        for p in strangers {
            if let Err(e) = p.freeze(false) {
                tracing::warn!(town = %town, pid = p.leader(), error = %e, "continuing a recorded process");
            }
            if p.label().is_none() {
                // Nobody can adopt it: its output had only the dead host to go to.
                p.kill_now();
                p.claim();
            } else {
                kept = true;
            }
            state.processes.push(p);
        }
        if kept {
            tracing::info!(town = %town, "recorded SDK servers of an earlier host found");
        }
        kept
    }

    /// [`ContainerRuntime::spawn_labelled`](gastown_core::ContainerRuntime::spawn_labelled)
    /// for the local runtime: ends every earlier process of the label's agent (waited
    /// for), takes the label's lock, and starts the command with the lock file as its
    /// stdin — the lock then lives exactly as long as some member of the new process
    /// group holds that descriptor (`flock(2)` locks belong to the open file).
    pub(crate) async fn spawn_labelled_process(
        &self,
        town: &TownId,
        command: &CommandSpec,
        label: &ProcessLabel,
        grace: Duration,
    ) -> Result<SpawnedProcess> {
        self.ensure_running(town)?;
        let earlier: Vec<Arc<LocalProcess>> = {
            let towns = self.towns.lock();
            let state = check_running(town, towns.get(town))?;
            let mut earlier: Vec<_> = state
                .processes
                .iter()
                .filter(|p| p.label().is_some_and(|l| l.agent == label.agent))
                .filter(|p| p.current().is_alive())
                .cloned()
                .collect();
            let mut all = state.processes.clone();
            all.extend(earlier.iter().cloned());
            earlier.extend(
                self.recorded_strangers(town, &all)
                    .into_iter()
                    .filter(|p| p.label().is_some_and(|l| l.agent == label.agent)),
            );
            earlier
        };
        if !earlier.is_empty() {
            tracing::debug!(town = %town, agent = %label.agent, count = earlier.len(), "ending the agent's earlier processes");
            terminate_all(&earlier, grace).await?;
        }
        let stdin = match &label.lock {
            Some(lock) => std::process::Stdio::from(self.take_lock(town, lock)?),
            None => std::process::Stdio::null(),
        };
        let Started {
            process,
            stdout,
            stderr,
        } = self.start_process(town, command, Some(Some(label)), stdin)?;
        Ok(SpawnedProcess {
            handle: process,
            output: output::pump(stdout, stderr),
        })
    }

    /// Opens (creating it and its directory) and exclusively locks the file `lock`.
    ///
    /// # Errors
    /// [`LocalError::Locked`] when another open file holds the lock (a process the
    /// records do not know: never killed, only refused); `Io` when the file cannot be made.
    fn take_lock(
        &self,
        town: &TownId,
        lock: &gastown_core::ContainerPath,
    ) -> Result<std::fs::File> {
        let path = host_path(&self.town_dir(town), lock);
        let ctx = || format!("opening the lock {lock}");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| gastown_core::Error::io(ctx(), e))?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| gastown_core::Error::io(ctx(), e))?;
        match file.try_lock() {
            // Only the child keeps the descriptor: ours closes when the command drops.
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(LocalError::Locked {
                path: lock.to_string(),
            }
            .into()),
            Err(std::fs::TryLockError::Error(e)) => Err(gastown_core::Error::io(ctx(), e)),
        }
    }

    /// [`ContainerRuntime::adopt`](gastown_core::ContainerRuntime::adopt) for the local
    /// runtime: the newest unclaimed recorded process of `agent` found when the town
    /// started; older ones of the same agent (never more than one, unless records were
    /// made by hand) are killed.
    pub(crate) async fn adopt_process(
        &self,
        town: &TownId,
        agent: &str,
    ) -> Result<Option<AdoptedProcess>> {
        let candidates: Vec<Arc<LocalProcess>> = {
            let towns = self.towns.lock();
            let state = check_running(town, towns.get(town))?;
            state
                .processes
                .iter()
                .filter(|p| p.label().is_some_and(|l| l.agent == agent))
                .filter(|p| p.current().is_alive())
                .filter(|p| p.claim())
                .cloned()
                .collect()
        };
        let Some((newest, older)) = candidates.split_last() else {
            return Ok(None);
        };
        if !older.is_empty() {
            terminate_all(older, crate::REMOVE_GRACE).await?;
        }
        let label = newest.label().cloned().expect("filtered on a label");
        tracing::debug!(town = %town, agent, pid = newest.leader(), "recorded process adopted");
        Ok(Some(AdoptedProcess {
            handle: newest.clone(),
            label,
        }))
    }
}
