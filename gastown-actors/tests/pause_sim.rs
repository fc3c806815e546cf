//! The paused tier, in virtual time on the simulated runtime (a test double whose pause
//! and resume take scripted durations; `tokio::time::pause` makes the clock exact): an idle
//! town is frozen when the mayor's quiet window ends (snapshotted first), gets no request
//! while frozen, wakes on the next request with the same server and session
//! (`resume_paused`), coalesces concurrent wakes, is stopped after the paused window, and
//! falls back to a cold start from its snapshot when the frozen container was lost.

use std::sync::Arc;
use std::time::Duration;

use gastown_actors::{PausedBudget, StopReason, TownEvent, TownHandle, TownOptions};
use gastown_core::simulated::{SimEventKind, SimScript, SimulatedRuntime};
use gastown_core::{ContainerStatus, EnsureDecision, TownConfig, TownId};

const MIN: Duration = Duration::from_secs(60);

fn script() -> SimScript {
    SimScript::zero()
        .with_container_create(Duration::from_millis(1500))
        .with_sdk_boot(Duration::from_millis(2500))
        .with_sdk_health(Duration::from_millis(5))
        .with_sdk_send_message(Duration::from_millis(50))
        .with_container_pause(Duration::from_millis(38))
        .with_container_resume(Duration::from_millis(44))
}

fn town_id() -> TownId {
    TownId::new("paused").unwrap()
}

async fn start(rt: &Arc<SimulatedRuntime>, state: &std::path::Path) -> TownHandle {
    let options = TownOptions::new(TownConfig::new(town_id()), state, rt.clone())
        .with_sdk_connector(rt.sdk_connector())
        .with_idle_stop_after(5 * MIN)
        .with_pause(true, 30 * MIN);
    TownHandle::start(options).await.unwrap()
}

fn count(rt: &SimulatedRuntime, wanted: fn(&SimEventKind) -> bool) -> usize {
    rt.log().iter().filter(|e| wanted(&e.kind)).count()
}

fn is_pause(k: &SimEventKind) -> bool {
    matches!(k, SimEventKind::ContainerPause)
}
fn is_resume(k: &SimEventKind) -> bool {
    matches!(k, SimEventKind::ContainerResume)
}
fn is_spawn(k: &SimEventKind) -> bool {
    matches!(k, SimEventKind::Spawn { .. })
}
fn is_request(k: &SimEventKind) -> bool {
    matches!(
        k,
        SimEventKind::SdkCall { .. }
            | SimEventKind::Exec { .. }
            | SimEventKind::FileRead { .. }
            | SimEventKind::FileWrite { .. }
    )
}

#[tokio::test(start_paused = true)]
async fn an_idle_town_is_paused_then_a_request_wakes_the_same_server_and_session() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script());
    let town = start(&rt, &dir.path().join("state")).await;
    let first = town.ensure_mayor().await.unwrap();
    town.send_mayor_message("before the pause").await.unwrap();

    tokio::time::sleep(5 * MIN - Duration::from_secs(1)).await;
    assert_eq!(rt.container_status(&town_id()), ContainerStatus::Running);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rt.container_status(&town_id()),
        ContainerStatus::Paused,
        "paused when the quiet window ended"
    );
    let events = town.events_since(0);
    let paused = events
        .iter()
        .position(|r| r.event == TownEvent::ContainerPaused)
        .expect("a pause event");
    assert!(
        events[..paused]
            .iter()
            .any(|r| matches!(r.event, TownEvent::SnapshotTaken { .. })),
        "snapshotted before the pause (unchanged since: the pause's own one was skipped)"
    );

    // Frozen for 20 minutes: not one request reaches the container.
    let requests = count(&rt, is_request);
    tokio::time::sleep(20 * MIN).await;
    assert_eq!(count(&rt, is_request), requests, "no request while paused");
    assert_eq!(rt.container_status(&town_id()), ContainerStatus::Paused);

    // The next request wakes it: a resume and a probe, no new container or server.
    let spawns = count(&rt, is_spawn);
    let woken = town.ensure_mayor().await.unwrap();
    assert_eq!(woken.report.decision, EnsureDecision::ResumePaused);
    assert_eq!(woken.session_id, first.session_id);
    assert_eq!(woken.report.timings.get("container_resume_ms"), Some(&44));
    assert!(
        woken.report.total_ms < 100,
        "woken in tens of ms (virtual): {}",
        woken.report.total_ms
    );
    assert_eq!(count(&rt, is_spawn), spawns, "the same server");
    assert_eq!(rt.container_creates(&town_id()), 1, "the same container");
    assert_eq!(rt.container_status(&town_id()), ContainerStatus::Running);
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn concurrent_wakes_share_one_resume() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script());
    let town = start(&rt, &dir.path().join("state")).await;
    town.ensure_mayor().await.unwrap();
    tokio::time::sleep(6 * MIN).await;
    assert_eq!(rt.container_status(&town_id()), ContainerStatus::Paused);

    let wakes = (0..5).map(|_| {
        let town = town.clone();
        async move { town.ensure_mayor().await }
    });
    for ready in futures::future::join_all(wakes).await {
        assert_eq!(ready.unwrap().report.decision, EnsureDecision::ResumePaused);
    }
    assert_eq!(count(&rt, is_resume), 1, "one resume for five callers");
    assert_eq!(count(&rt, is_pause), 1);
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_town_paused_past_its_window_is_stopped_and_a_lost_one_starts_cold() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script());
    let town = start(&rt, &dir.path().join("state")).await;
    let first = town.ensure_mayor().await.unwrap();

    // Paused at 5 min, stopped 30 min later.
    tokio::time::sleep(5 * MIN + 30 * MIN + Duration::from_secs(5)).await;
    assert_eq!(rt.container_status(&town_id()), ContainerStatus::Absent);
    assert!(town.events_since(0).iter().any(|r| r.event
        == TownEvent::ContainerStopped {
            reason: StopReason::Idle
        }));
    let cold = town.ensure_mayor().await.unwrap();
    assert_eq!(
        cold.session_id, first.session_id,
        "resumed from the snapshot"
    );
    assert_eq!(rt.container_creates(&town_id()), 2);

    // Paused again, then the container is killed while frozen: the wake finds it gone
    // and starts cold from the snapshot instead of getting stuck.
    tokio::time::sleep(6 * MIN).await;
    assert_eq!(rt.container_status(&town_id()), ContainerStatus::Paused);
    assert!(rt.kill_container(&town_id()));
    let again = town.ensure_mayor().await.unwrap();
    assert_eq!(again.session_id, first.session_id);
    assert_ne!(again.report.decision, EnsureDecision::ResumePaused);
    assert_eq!(rt.container_creates(&town_id()), 3);
    assert!(town.events_since(0).iter().any(|r| r.event
        == TownEvent::ContainerStopped {
            reason: StopReason::Lost
        }));
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn over_the_hosts_paused_memory_budget_the_oldest_paused_town_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script());
    let budget = PausedBudget::new(1_000);
    let mut towns = Vec::new();
    for (i, name) in ["pa", "pb", "pc"].into_iter().enumerate() {
        let options = TownOptions::new(
            TownConfig::new(TownId::new(name).unwrap()),
            dir.path().join(name),
            rt.clone(),
        )
        .with_sdk_connector(rt.sdk_connector())
        .with_idle_stop_after(5 * MIN)
        .with_pause(true, 30 * MIN)
        .with_paused_budget(budget.clone(), 400);
        let town = TownHandle::start(options).await.unwrap();
        town.ensure_mayor().await.unwrap();
        towns.push(town);
        if i < 2 {
            // Staggered: each town pauses a minute after the one before.
            tokio::time::sleep(MIN).await;
        }
    }
    let status = |n: &str| rt.container_status(&TownId::new(n).unwrap());
    // pa and pb paused (800 of 1,000 bytes); pc pausing pushes it over: pa, the oldest,
    // is stopped.
    tokio::time::sleep(5 * MIN + Duration::from_secs(5)).await;
    assert_eq!(
        status("pa"),
        ContainerStatus::Absent,
        "the oldest was stopped"
    );
    assert_eq!(status("pb"), ContainerStatus::Paused);
    assert_eq!(status("pc"), ContainerStatus::Paused);
    assert_eq!(
        budget.paused_towns(),
        [TownId::new("pb").unwrap(), TownId::new("pc").unwrap()]
    );
    assert_eq!(budget.paused_bytes(), 800);
    // A wake leaves the budget.
    towns[1].ensure_mayor().await.unwrap();
    assert_eq!(budget.paused_towns(), [TownId::new("pc").unwrap()]);
    for town in towns {
        town.shutdown().await.unwrap();
    }
    assert_eq!(budget.paused_bytes(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_host_restart_while_paused_adopts_the_paused_container_with_the_same_session() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(script());
    let town = start(&rt, &state).await;
    let first = town.ensure_mayor().await.unwrap();
    tokio::time::sleep(6 * MIN).await;
    assert_eq!(rt.container_status(&town_id()), ContainerStatus::Paused);

    // The embedding process goes away without a drain; the paused container stays.
    town.detach().await;
    assert_ne!(rt.container_status(&town_id()), ContainerStatus::Absent);
    let town = start(&rt, &state).await;
    let again = town.ensure_mayor().await.unwrap();
    assert_eq!(again.session_id, first.session_id, "the same session");
    assert_eq!(
        rt.container_creates(&town_id()),
        1,
        "the paused container was adopted"
    );
    assert_eq!(rt.container_status(&town_id()), ContainerStatus::Running);
    town.shutdown().await.unwrap();
}
