//! The alarm wired into a living town, in virtual time on the simulated runtime (a test
//! double whose every operation takes a scripted duration; `tokio::time::pause` makes the
//! clock exact): the 5 s ↔ 300 s cadence follows active work, an idle town's container
//! gets no request between ticks but the hourly token refresh, the idle stop happens when
//! the mayor's quiet window ends (throttled, retried after a failure), and the next
//! request wakes the town with the same session.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gastown_actors::{StopReason, TownEvent, TownHandle, TownOptions};
use gastown_core::simulated::{SdkOp, SimEventKind, SimScript, SimulatedRuntime};
use gastown_core::store::BeadRecord;
use gastown_core::{
    AgentId, AgentLayout, CommandSpec, ContainerInfo, ContainerOptions, ContainerPath,
    ContainerRuntime, ContainerStatus, ExecOutput, SpawnedProcess, TownConfig, TownId, TownStore,
};

const MIN: Duration = Duration::from_secs(60);

fn script() -> SimScript {
    SimScript::zero()
        .with_container_create(Duration::from_millis(1500))
        .with_sdk_boot(Duration::from_millis(2500))
        .with_sdk_health(Duration::from_millis(5))
        .with_sdk_send_message(Duration::from_millis(50))
}

fn town_id() -> TownId {
    TownId::new("alarm").unwrap()
}

async fn start(
    rt: Arc<dyn ContainerRuntime>,
    sim: &SimulatedRuntime,
    state: &std::path::Path,
    quiet: Duration,
) -> TownHandle {
    // The stopped tier only: pausing first has its own tests (`pause_sim.rs`).
    let options = TownOptions::new(TownConfig::new(town_id()), state, rt)
        .with_sdk_connector(sim.sdk_connector())
        .with_idle_stop_after(quiet)
        .with_pause(false, Duration::ZERO);
    TownHandle::start(options).await.unwrap()
}

fn health_probes(rt: &SimulatedRuntime) -> usize {
    rt.sdk_calls(SdkOp::Health)
}

/// Every request the container received in `[from, to)` of the runtime's clock, apart
/// from live token refreshes.
fn requests_between(rt: &SimulatedRuntime, from: Duration, to: Duration) -> Vec<SimEventKind> {
    rt.log()
        .into_iter()
        .filter(|e| e.start >= from && e.start < to)
        .map(|e| e.kind)
        .filter(|k| match k {
            SimEventKind::FileWrite { path } => !path.as_str().contains("token"),
            SimEventKind::SdkCall { .. }
            | SimEventKind::Exec { .. }
            | SimEventKind::FileRead { .. }
            | SimEventKind::Spawn { .. } => true,
            _ => false,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_cadence_follows_active_work_and_an_idle_town_gets_no_probe() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(script());
    // A long quiet window: this test is about the cadence, not the stop.
    let town = start(rt.clone(), &rt, &state, Duration::from_secs(86_400)).await;
    town.ensure_mayor().await.unwrap();
    // Let the background work of the start (AGENTS.md) finish.
    tokio::time::sleep(Duration::from_secs(10)).await;

    // Idle (a waiting mayor is not active work): two hours without a single request
    // but the hourly token refresh.
    let from = rt.elapsed();
    let probes = health_probes(&rt);
    tokio::time::sleep(120 * MIN).await;
    assert_eq!(health_probes(&rt), probes, "no health probe while idle");
    assert_eq!(
        requests_between(&rt, from, rt.elapsed()),
        Vec::new(),
        "an idle town's container got requests"
    );
    let refreshes = rt.writes_to(gastown_core::simulated::TOKEN_REFRESH_PATH);
    assert!(
        (1..=2).contains(&refreshes),
        "hourly token refresh only, got {refreshes}"
    );

    // Active work (an unassigned open issue): at most one idle cadence to notice, then
    // a probe every 5 s.
    let store = TownStore::open(&state.join("town.db")).unwrap();
    store
        .insert_bead(&BeadRecord::issue(
            gastown_core::BeadId::new("b-1").unwrap(),
            "work",
            "",
            0,
        ))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(300)).await;
    let before = health_probes(&rt);
    tokio::time::sleep(MIN).await;
    let per_minute = health_probes(&rt) - before;
    assert!(
        (11..=13).contains(&per_minute),
        "5 s cadence with work: {per_minute} probes in a minute"
    );

    // Work done: back to 300 s, no probes.
    store
        .delete_bead(&gastown_core::BeadId::new("b-1").unwrap())
        .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = health_probes(&rt);
    tokio::time::sleep(4 * MIN).await;
    assert_eq!(
        health_probes(&rt),
        before,
        "no probes once the work is gone"
    );
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_idle_town_stops_when_the_quiet_window_ends_and_wakes_with_the_same_session() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(script());
    let town = start(rt.clone(), &rt, &state, 5 * MIN).await;
    let first = town.ensure_mayor().await.unwrap();
    town.send_mayor_message("before the idle stop")
        .await
        .unwrap();
    let spoke_at = tokio::time::Instant::now();

    // Just before the window ends the container is still up.
    tokio::time::sleep(5 * MIN - Duration::from_secs(1)).await;
    assert_eq!(rt.container_status(&town_id()), ContainerStatus::Running);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        rt.container_status(&town_id()),
        ContainerStatus::Absent,
        "stopped when the 5 min window ended"
    );
    let events = town.events_since(0);
    let idle = events
        .iter()
        .find(|r| matches!(r.event, TownEvent::IdleStop { .. }))
        .expect("an idle stop event");
    let TownEvent::IdleStop { quiet_ms } = idle.event else {
        unreachable!()
    };
    assert!(
        (300_000..=300_050).contains(&quiet_ms),
        "stopped exactly after the window: {quiet_ms} ms"
    );
    assert!(events.iter().any(|r| r.event
        == TownEvent::ContainerStopped {
            reason: StopReason::Idle
        }));
    assert!(events
        .iter()
        .any(|r| matches!(r.event, TownEvent::SnapshotTaken { .. })));
    let _ = spoke_at;

    // The next message wakes it: a new container, the same session, the earlier message.
    town.send_mayor_message("after the wake").await.unwrap();
    let woken = town.ensure_mayor().await.unwrap();
    assert_eq!(woken.session_id, first.session_id);
    assert_eq!(rt.container_creates(&town_id()), 2);
    let layout = AgentLayout::new(AgentId::mayor());
    let texts: Vec<String> = rt
        .messages_in(&town_id(), &layout.data())
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert!(
        texts.iter().any(|t| t == "before the idle stop"),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t == "after the wake"), "{texts:?}");
    town.shutdown().await.unwrap();
}

/// The simulated runtime whose first `remove` fails (an engine hiccup).
#[derive(Debug)]
struct FailingRemove {
    inner: Arc<SimulatedRuntime>,
    removes: AtomicUsize,
}

#[async_trait]
impl ContainerRuntime for FailingRemove {
    fn name(&self) -> &'static str {
        "failing-remove"
    }
    fn sdk_bind_host(&self) -> &str {
        self.inner.sdk_bind_host()
    }
    async fn start(
        &self,
        town: &TownId,
        options: &ContainerOptions,
    ) -> gastown_core::Result<ContainerInfo> {
        self.inner.start(town, options).await
    }
    async fn status(&self, town: &TownId) -> gastown_core::Result<ContainerStatus> {
        self.inner.status(town).await
    }
    async fn exec(&self, town: &TownId, c: &CommandSpec) -> gastown_core::Result<ExecOutput> {
        self.inner.exec(town, c).await
    }
    async fn spawn(&self, town: &TownId, c: &CommandSpec) -> gastown_core::Result<SpawnedProcess> {
        self.inner.spawn(town, c).await
    }
    async fn endpoint(&self, town: &TownId, port: u16) -> gastown_core::Result<String> {
        self.inner.endpoint(town, port).await
    }
    async fn put_file(&self, t: &TownId, p: &ContainerPath, c: &[u8]) -> gastown_core::Result<()> {
        self.inner.put_file(t, p, c).await
    }
    async fn get_file(&self, t: &TownId, p: &ContainerPath) -> gastown_core::Result<Vec<u8>> {
        self.inner.get_file(t, p).await
    }
    async fn stop(&self, town: &TownId, grace: Duration) -> gastown_core::Result<()> {
        self.inner.stop(town, grace).await
    }
    async fn remove(&self, town: &TownId) -> gastown_core::Result<()> {
        if self.removes.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(gastown_core::Error::io(
                "removing the container",
                std::io::Error::other("engine hiccup"),
            ));
        }
        self.inner.remove(town).await
    }
    fn can_pause(&self) -> bool {
        self.inner.can_pause()
    }
    async fn pause(&self, town: &TownId) -> gastown_core::Result<()> {
        self.inner.pause(town).await
    }
    async fn resume(&self, town: &TownId) -> gastown_core::Result<()> {
        self.inner.resume(town).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_idle_stop_is_retried_on_a_later_tick_after_the_throttle() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sim = SimulatedRuntime::new(script());
    let rt = Arc::new(FailingRemove {
        inner: sim.clone(),
        removes: AtomicUsize::new(0),
    });
    let town = start(rt.clone(), &sim, &state, 5 * MIN).await;
    let first = town.ensure_mayor().await.unwrap();

    tokio::time::sleep(5 * MIN + Duration::from_secs(5)).await;
    assert_eq!(rt.removes.load(Ordering::SeqCst), 1, "one attempt, failed");
    assert_ne!(sim.container_status(&town_id()), ContainerStatus::Absent);
    let store = TownStore::open(&state.join("town.db")).unwrap();
    let attempted = store.time_get("idle_stop_attempt_ms").unwrap();
    assert!(attempted.is_some(), "the attempt time is persisted");

    // Not again within the 2 min throttle; retried at the next tick after it.
    tokio::time::sleep(MIN).await;
    assert_eq!(rt.removes.load(Ordering::SeqCst), 1, "throttled");
    tokio::time::sleep(5 * MIN).await;
    assert_eq!(rt.removes.load(Ordering::SeqCst), 2, "retried once");
    assert_eq!(sim.container_status(&town_id()), ContainerStatus::Absent);
    let retried = store.time_get("idle_stop_attempt_ms").unwrap().unwrap();
    assert!(
        retried - attempted.unwrap() >= 120_000,
        "after the throttle"
    );

    // Nothing was lost: the wake resumes the same session.
    let woken = town.ensure_mayor().await.unwrap();
    assert_eq!(woken.session_id, first.session_id);
    town.shutdown().await.unwrap();
}
