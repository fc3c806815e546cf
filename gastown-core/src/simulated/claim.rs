//! Labelled processes and container hand-over in the simulated runtime: enough of
//! `spawn_labelled`, `adopt` and `rename_container` for a warm pool's claim to be tested
//! and benchmarked without processes (`ARCHITECTURE.md`, *Warm pool*). Nothing survives the
//! runtime, so nothing is ever left by an "earlier host": `adopt` finds only processes a
//! container hand-over offered.

use std::sync::Arc;

use super::log::SimEventKind;
use super::process::SimProcessHandle;
use super::runtime::Inner;
use crate::error::{Error, Result};
use crate::ids::TownId;
use crate::runtime::{AdoptedProcess, ProcessLabel};
use crate::status::ContainerStatus;

/// Marks the just-spawned process `pid` with `label`.
pub(super) fn label(inner: &Inner, pid: u32, label: &ProcessLabel) {
    if let Some(p) = inner.state.lock().procs.get_mut(&pid) {
        p.label = Some(label.clone());
    }
}

/// `adopt`: the newest live labelled process of `agent` that a hand-over offered to `town`.
pub(super) fn adopt(
    inner: &Arc<Inner>,
    town: &TownId,
    agent: &str,
) -> Result<Option<AdoptedProcess>> {
    let mut state = inner.state.lock();
    state.running(town)?;
    let super::state::State { procs, offered, .. } = &mut *state;
    // The newest first: the highest offered pid that matches.
    let found = offered.iter().rev().copied().find(|pid| {
        procs.get(pid).is_some_and(|p| {
            &p.town == town
                && p.status.is_alive()
                && p.label.as_ref().is_some_and(|l| l.agent == agent)
        })
    });
    let Some(pid) = found else {
        return Ok(None);
    };
    offered.remove(&pid);
    let label = procs[&pid].label.clone().expect("found on a label");
    Ok(Some(AdoptedProcess {
        handle: Arc::new(SimProcessHandle {
            pid,
            inner: inner.clone(),
        }),
        label,
    }))
}

/// `rename_container`: `from`'s running container and processes become `to`'s; its
/// labelled processes are offered for adoption. Instant.
pub(super) fn rename(inner: &Inner, from: &TownId, to: &TownId) -> Result<()> {
    let start = inner.offset();
    let mut state = inner.state.lock();
    if state
        .towns
        .get(to)
        .is_some_and(|t| t.status != ContainerStatus::Exited)
    {
        return Err(Error::InvalidConfig {
            message: format!("town {to} already has a container"),
        });
    }
    state.running(from)?;
    let container = state.towns.remove(from).expect("checked running");
    state.towns.insert(to.clone(), container);
    let super::state::State { procs, offered, .. } = &mut *state;
    for (pid, p) in procs.iter_mut().filter(|(_, p)| &p.town == from) {
        p.town = to.clone();
        if p.label.is_some() && p.status.is_alive() {
            offered.insert(*pid);
        } else {
            offered.remove(pid);
        }
    }
    drop(state);
    inner.record(start, to, SimEventKind::ContainerAdopt, true);
    Ok(())
}
