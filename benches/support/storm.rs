//! `boot_storm_scheduled` / `boot_storm_unscheduled`: many towns cold-started at once on
//! one real runtime, each with registered workers that boot hydration resumes after its
//! mayor — with every town on one [`BootScheduler`] (as many boots at once as the host has
//! cores, mayors first) or with none. The figure is each mayor's ready time from the
//! moment every `ensure_mayor` went out; the towns are shut down as soon as every mayor is
//! ready (workers still booting are stopped), which bounds how many SDK servers live at
//! once (each holds about 520 MB, ARCHITECTURE.md, *SDK server*).

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;

use gastown::actors::{BootScheduler, TownHandle};
use gastown::core::{AgentId, Role, TownStore};
use tokio::time::Instant;

use super::MakeOptions;

/// What a storm measured.
#[derive(Debug, Clone, Default)]
pub struct Storm {
    /// The ready times of the mayors that became ready, ms, ascending.
    pub ready_ms: Vec<f64>,
    /// Mayors whose start failed (e.g. SDK calls timed out on a host too busy).
    pub failed: usize,
}

/// `towns` towns with `workers` registered polecats each, started at once, on
/// `scheduler` when given: the mayors' ready times and failures.
pub async fn real_boot_storm(
    options: &MakeOptions<'_>,
    label: &str,
    towns: usize,
    workers: usize,
    scheduler: Option<Arc<BootScheduler>>,
) -> Storm {
    let dir = tempfile::tempdir().unwrap();
    let mut handles = Vec::with_capacity(towns);
    for i in 0..towns {
        let state = dir.path().join(format!("town-{i}"));
        registry(&state, workers);
        let town = super::town_id(&format!("storm-{label}"), i);
        let mut o = options(&state, &town);
        if let Some(s) = &scheduler {
            o = o.with_boot_scheduler(s.clone());
        }
        handles.push(TownHandle::start(o).await.unwrap());
    }
    let t0 = Instant::now();
    let calls = handles.iter().map(|h| async move {
        let ready = match h.ensure_mayor().await {
            Ok(ready) => ready,
            Err(e) => {
                eprintln!(
                    "{label} {}: failed after {:.0} ms: {e}",
                    h.town(),
                    super::ms(t0.elapsed())
                );
                return None;
            }
        };
        let at = super::ms(t0.elapsed());
        // Where the time went, on stderr: the sdk phase's attempts and duration.
        let sdk = ready
            .report
            .phases
            .iter()
            .find(|p| p.phase == gastown::core::StartupPhase::Sdk);
        if let Some(p) = sdk {
            eprintln!(
                "{label} {}: ready {at:.0} ms; sdk from {} ms, {} ms, {} attempt(s)",
                h.town(),
                p.start_offset_ms,
                p.duration_ms,
                p.attempts
            );
        }
        Some(at)
    });
    let results = futures::future::join_all(calls).await;
    for result in futures::future::join_all(handles.into_iter().map(TownHandle::shutdown)).await {
        if let Err(e) = result {
            eprintln!("{label}: shutdown: {e}");
        }
    }
    let mut ready_ms: Vec<f64> = results.iter().flatten().copied().collect();
    ready_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Storm {
        failed: results.iter().filter(|r| r.is_none()).count(),
        ready_ms,
    }
}

fn registry(state: &Path, workers: usize) {
    std::fs::create_dir_all(state).unwrap();
    let store = TownStore::open(&state.join("town.db")).unwrap();
    for i in 0..workers {
        let agent = AgentId::new(format!("polecat-{i}")).unwrap();
        store.register(&agent, Role::Polecat).unwrap();
    }
}
