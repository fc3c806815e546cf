//! The boot scheduler in virtual time (`tokio::time::pause`): the order boots are served
//! in (mayors, then workers, then pool refills, each in arrival order), the concurrency
//! cap, waiters that give up, and — on the simulated runtime (a test double) — towns
//! cold-started at once on one scheduler: every mayor's SDK server boots before any
//! worker's, and no more boots overlap than the cap.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gastown_actors::{BootPriority, BootScheduler, TownHandle, TownOptions};
use gastown_core::simulated::{SdkOp, SimEventKind, SimScript, SimulatedRuntime};
use gastown_core::{AgentId, Role, TownConfig, TownId, TownStore};
use parking_lot::Mutex;

#[tokio::test(start_paused = true)]
async fn waiting_boots_are_served_mayors_first_then_workers_then_pool_in_arrival_order() {
    let scheduler = BootScheduler::new(1);
    let held = scheduler.acquire(BootPriority::Worker).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (name, priority) in [
        ("pool-1", BootPriority::Pool),
        ("worker-1", BootPriority::Worker),
        ("mayor-1", BootPriority::Mayor),
        ("worker-2", BootPriority::Worker),
        ("mayor-2", BootPriority::Mayor),
    ] {
        let (scheduler, order) = (scheduler.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = scheduler.acquire(priority).await;
            order.lock().push(name);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }));
        // Arrival order is the spawn order.
        tokio::task::yield_now().await;
    }
    assert_eq!(scheduler.waiting(), 5);
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        *order.lock(),
        ["mayor-1", "mayor-2", "worker-1", "worker-2", "pool-1"]
    );
    assert_eq!(scheduler.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_more_boots_run_at_once_than_the_capacity() {
    let scheduler = BootScheduler::new(3);
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let start = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (scheduler, now, max) = (scheduler.clone(), now.clone(), max.clone());
            let priority = if i % 2 == 0 {
                BootPriority::Mayor
            } else {
                BootPriority::Worker
            };
            tokio::spawn(async move {
                let _slot = scheduler.acquire(priority).await;
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                now.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(max.load(Ordering::SeqCst), 3);
    // Ten 1 s boots, three at a time: four rounds.
    assert_eq!(start.elapsed(), Duration::from_secs(4));
    assert_eq!(scheduler.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_gives_up_is_skipped_and_its_slot_goes_to_the_next() {
    let scheduler = BootScheduler::new(1);
    let held = scheduler.acquire(BootPriority::Worker).await;
    let gave_up = tokio::spawn({
        let scheduler = scheduler.clone();
        async move { scheduler.acquire(BootPriority::Mayor).await }
    });
    tokio::task::yield_now().await;
    let next = tokio::spawn({
        let scheduler = scheduler.clone();
        async move {
            let _slot = scheduler.acquire(BootPriority::Worker).await;
        }
    });
    tokio::task::yield_now().await;
    gave_up.abort();
    let _ = gave_up.await;
    drop(held);
    next.await.unwrap();
    assert_eq!(scheduler.running(), 0);
    assert_eq!(scheduler.waiting(), 0);
    // The scheduler still hands out its one slot.
    let again = scheduler.acquire(BootPriority::Pool).await;
    assert_eq!(scheduler.running(), 1);
    drop(again);
}

fn registry(state: &Path, workers: usize) {
    std::fs::create_dir_all(state).unwrap();
    let store = TownStore::open(&state.join("town.db")).unwrap();
    for i in 0..workers {
        let agent = AgentId::new(format!("polecat-{i}")).unwrap();
        store.register(&agent, Role::Polecat).unwrap();
    }
}

/// Starts `count` towns (`<prefix>-<i>`, each with `workers` registered polecats) on one
/// runtime and `scheduler`, then every mayor at once; all must be ready.
async fn start_all(
    dir: &Path,
    prefix: &str,
    count: usize,
    workers: usize,
    rt: &Arc<SimulatedRuntime>,
    scheduler: &Arc<BootScheduler>,
) -> Vec<TownHandle> {
    let mut towns = Vec::new();
    for i in 0..count {
        let state = dir.join(format!("town-{i}"));
        registry(&state, workers);
        let config = TownConfig::new(TownId::new(format!("{prefix}-{i}")).unwrap());
        let options = TownOptions::new(config, &state, rt.clone())
            .with_sdk_connector(rt.sdk_connector())
            .with_boot_scheduler(scheduler.clone());
        towns.push(TownHandle::start(options).await.unwrap());
    }
    let ready = futures::future::join_all(towns.iter().map(|t| t.ensure_mayor())).await;
    assert!(ready.iter().all(Result::is_ok), "{ready:?}");
    towns
}

#[tokio::test(start_paused = true)]
async fn towns_cold_started_at_once_boot_every_mayor_before_any_worker_within_the_cap() {
    const TOWNS: usize = 4;
    const CAP: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(SimScript::default());
    let scheduler = BootScheduler::new(CAP);
    let towns = start_all(dir.path(), "storm", TOWNS, 3, &rt, &scheduler).await;
    // Let every worker resume.
    tokio::time::sleep(Duration::from_secs(120)).await;

    // Each boot, spawn to listening line, with whether it was a mayor's.
    let boots: Vec<(Duration, Duration, bool)> = rt
        .log()
        .into_iter()
        .filter(|e| matches!(e.kind, SimEventKind::SdkReady { .. }))
        .map(|e| (e.start, e.end, e.agent() == Some("mayor")))
        .collect();
    assert_eq!(boots.len(), TOWNS * 4, "every mayor and worker booted");
    let last_mayor_start = boots.iter().filter(|b| b.2).map(|b| b.0).max().unwrap();
    let first_worker_start = boots.iter().filter(|b| !b.2).map(|b| b.0).min().unwrap();
    assert!(
        last_mayor_start < first_worker_start,
        "every mayor boots before any worker: {boots:?}"
    );
    for (start, _, _) in &boots {
        let overlapping = boots
            .iter()
            .filter(|(s, e, _)| s <= start && start < e)
            .count();
        assert!(
            overlapping <= CAP,
            "{overlapping} boots at once at {start:?}"
        );
    }
    assert_eq!(scheduler.running(), 0);
    for t in towns {
        t.shutdown().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_boot_slot_is_held_through_the_session_phase_until_the_agent_is_ready() {
    // One slot, two brand-new towns: the second mayor's server may boot only after the
    // first mayor's session exists (kilo sets up the project on that first request, the
    // rest of its boot's CPU work).
    let dir = tempfile::tempdir().unwrap();
    let script = SimScript::default().with_sdk_create_session(Duration::from_secs(2));
    let rt = SimulatedRuntime::new(script);
    let scheduler = BootScheduler::new(1);
    let towns = start_all(dir.path(), "held", 2, 0, &rt, &scheduler).await;
    let log = rt.log();
    let boots: Vec<_> = log
        .iter()
        .filter(|e| matches!(e.kind, SimEventKind::SdkReady { .. }))
        .map(|e| (e.start, e.end))
        .collect();
    let sessions: Vec<_> = log
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                SimEventKind::SdkCall {
                    op: SdkOp::CreateSession,
                    ..
                }
            )
        })
        .map(|e| (e.start, e.end))
        .collect();
    assert_eq!((boots.len(), sessions.len()), (2, 2), "{log:?}");
    let first_session_done = sessions.iter().map(|s| s.1).min().unwrap();
    let second_boot = boots.iter().map(|b| b.0).max().unwrap();
    assert!(
        second_boot >= first_session_done,
        "the second boot began at {second_boot:?}, before the first session was made \
         ({first_session_done:?})"
    );
    assert_eq!(
        scheduler.running(),
        0,
        "the slot went back when the run ended"
    );
    for t in towns {
        t.shutdown().await.unwrap();
    }
}
