//! Mayor-first cold start, in virtual time on the simulated runtime (a test double whose
//! every operation takes a scripted duration; `tokio::time::pause` makes the clock exact).
//! The same claims are checked on the real kilo in `prewarm_local.rs` and measured in
//! `benches/cold_start.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gastown_actors::bench_support::SerialTown;
use gastown_actors::{
    AgentSpec, Error, MayorBoot, PhaseFailure, RetryPolicy, StartOptions, TownHandle, TownOptions,
};
use gastown_core::simulated::{SimEventKind, SimScript, SimulatedRuntime};
use gastown_core::{
    AgentId, EnsureDecision, RigConfig, RigId, Role, StartupPhase, TownConfig, TownId, TownStore,
};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Only the operations on the mayor's physical floor cost time, plus the background work
/// (clones, worktrees) that must stay off it.
fn script() -> SimScript {
    SimScript::zero()
        .with_container_create(ms(1500))
        .with_sdk_boot(ms(4500))
        .with_sdk_health(ms(5))
        .with_sdk_list_sessions(ms(10))
        .with_sdk_create_session(ms(150))
        .with_sdk_send_message(ms(50))
        .with_git_clone(ms(3000))
        .with_git_fetch(ms(800))
        .with_git_worktree(ms(400))
        .with_token_refresh(ms(250))
        .with_process_kill(ms(100))
}

/// The floor of a first cold start (no snapshot): container start + hydrate (nothing to
/// restore) + SDK boot + health + session list and create.
fn floor(s: &SimScript) -> Duration {
    s.container_create
        + s.mkdir
        + s.sdk_boot
        + s.sdk_health
        + s.sdk_list_sessions
        + s.sdk_create_session
}

fn config(town: &str, rigs: usize) -> TownConfig {
    let mut c = TownConfig::new(TownId::new(town).unwrap());
    for i in 0..rigs {
        c = c.with_rig(RigConfig::new(
            RigId::new(format!("rig-{i}")).unwrap(),
            format!("https://example.invalid/rig-{i}.git"),
        ));
    }
    c
}

/// A state dir whose registry holds `agents` polecats (they ran when the container last
/// stopped).
fn state_with_registry(dir: &Path, agents: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let store = TownStore::open(&dir.join("town.db")).unwrap();
    for i in 0..agents {
        store
            .register(
                &AgentId::new(format!("polecat-{i}")).unwrap(),
                Role::Polecat,
            )
            .unwrap();
    }
}

fn options(config: TownConfig, state: &Path, rt: &Arc<SimulatedRuntime>) -> TownOptions {
    TownOptions::new(config, state, rt.clone()).with_sdk_connector(rt.sdk_connector())
}

async fn mayor_ready_time(
    agents: usize,
    rigs: usize,
) -> (Duration, Arc<SimulatedRuntime>, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    state_with_registry(&state, agents);
    let rt = SimulatedRuntime::new(script());
    let town = TownHandle::start(options(config("t", rigs), &state, &rt))
        .await
        .unwrap();
    let t0 = Instant::now();
    let ready = town.ensure_mayor().await.unwrap();
    let ready_at = t0.elapsed();
    assert_eq!(ready.report.decision, EnsureDecision::FreshDispatch);
    // Let the background work (non-mayor resumes, browse worktrees) finish.
    tokio::time::sleep(Duration::from_secs(120)).await;
    let offset = rt.elapsed() - t0.elapsed();
    town.shutdown().await.unwrap();
    (ready_at, rt, offset)
}

#[tokio::test(start_paused = true)]
async fn mayor_ready_time_is_the_floor_with_20_agents_and_5_rigs_as_with_none() {
    let (empty, _, _) = mayor_ready_time(0, 0).await;
    let (busy, rt, offset) = mayor_ready_time(20, 5).await;
    let floor = floor(&script());
    assert_eq!(empty, floor, "0 agents, 0 rigs");
    assert_eq!(
        busy, floor,
        "20 agents, 5 rigs: nothing but the mayor's work on its path"
    );

    // Every non-mayor resume finished after the mayor was ready, and did happen.
    let mayor_ready = offset + busy;
    let resumed: Vec<_> = rt
        .log()
        .into_iter()
        .filter(|e| matches!(e.kind, SimEventKind::SdkReady { .. }))
        .filter(|e| e.agent().is_some_and(|a| a.starts_with("polecat-")))
        .collect();
    assert_eq!(
        resumed.len(),
        20,
        "all registered agents resumed in the background"
    );
    assert!(
        resumed.iter().all(|e| e.end > mayor_ready),
        "no resume finished before the mayor"
    );
    assert_eq!(
        rt.execs_of("git", Some("clone")),
        5,
        "browse worktrees set up in the background"
    );
}

#[tokio::test(start_paused = true)]
async fn the_serial_seed_schedule_is_several_times_slower() {
    let (mayor_first, _, _) = mayor_ready_time(20, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    state_with_registry(&state, 20);
    let rt = SimulatedRuntime::new(script());
    let serial = SerialTown::open(options(config("t", 5), &state, &rt)).unwrap();
    let t0 = Instant::now();
    serial.start_container().await.unwrap();
    serial.live_token_refresh().await.unwrap();
    let mut started = Vec::new();
    for entry in serial.registry().unwrap() {
        let spec = AgentSpec::worker(entry.agent, entry.role, "a/b", "a/c");
        started.push(serial.start_agent(spec).await.unwrap());
    }
    serial.browse_worktrees(serial.mayor()).await;
    serial.start_agent(serial.mayor()).await.unwrap();
    let seed_serial = t0.elapsed();
    assert!(
        seed_serial > mayor_first * 5,
        "seed serial {seed_serial:?} vs mayor first {mayor_first:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn prewarm_and_a_concurrent_start_spawn_one_sdk_server() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script());
    let town = TownHandle::start(options(config("pre", 0), &dir.path().join("s"), &rt))
        .await
        .unwrap();
    let (boot, ready) = tokio::join!(town.warm_up(), async {
        tokio::time::sleep(ms(2000)).await; // mid-prewarm: the container is up, kilo boots
        town.ensure_mayor().await
    });
    assert_eq!(boot.unwrap().mayor, MayorBoot::Prewarmed);
    let ready = ready.unwrap();
    assert!(ready.report.prewarmed);
    assert_eq!(rt.spawns_of("kilo"), 1);
    let again = town.ensure_mayor().await.unwrap();
    assert_eq!(again.report.decision, EnsureDecision::ShortCircuitWarm);
    assert_eq!(again.session_id, ready.session_id);
    assert_eq!(rt.spawns_of("kilo"), 1);
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_model_change_keeps_the_server_for_every_caller() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script());
    let town = TownHandle::start(options(config("cfg", 0), &dir.path().join("s"), &rt))
        .await
        .unwrap();
    let first = town.ensure_mayor().await.unwrap();
    town.update_mayor_model("anthropic/claude-opus-4.1", None)
        .await
        .unwrap();
    // Let the first start's background work (AGENTS.md) finish before counting.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let from = rt.log().len();
    let (a, b) = tokio::join!(town.ensure_mayor(), town.ensure_mayor());
    // The change costs one `noReply` (the model pushed onto the session) and nothing
    // else the container would see: no exec, no file read, no session list.
    let requests: Vec<_> = rt.log()[from..]
        .iter()
        .map(|e| e.kind.clone())
        .filter(|k| {
            matches!(
                k,
                SimEventKind::Exec { .. }
                    | SimEventKind::FileRead { .. }
                    | SimEventKind::SdkCall { .. }
                    | SimEventKind::Spawn { .. }
            )
        })
        .collect();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        matches!(
            requests[0],
            SimEventKind::SdkCall {
                op: gastown_core::simulated::SdkOp::SendNoReply,
                ..
            }
        ),
        "{requests:?}"
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        rt.spawns_of("kilo"),
        1,
        "only the models changed: no restart, however many callers"
    );
    assert_eq!(a.session_id, first.session_id);
    assert_eq!(b.session_id, first.session_id);
    assert!(a.report.prewarmed, "the running server was kept");
    let again = town.ensure_mayor().await.unwrap();
    assert!(!again.report.decision.starts_agent());
    assert_eq!(rt.spawns_of("kilo"), 1);
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failing_phase_is_retried_within_its_budget_then_named() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s");
    let rt = SimulatedRuntime::new(script().with_failing_git("init"));
    let retry = RetryPolicy {
        max_restarts: 2,
        within: Duration::from_secs(60),
        backoff: ms(250),
        max_attempts: 3,
    };
    let town = TownHandle::start(
        options(config("fail", 0), &state, &rt)
            .with_start_options(StartOptions::default().with_retry(retry)),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let err = town.ensure_mayor().await.unwrap_err();
    let Error::Start(start) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(start.phase, StartupPhase::Worktrees);
    assert_eq!(start.attempts, 3, "first attempt + 2 restarts");
    assert!(matches!(start.cause, PhaseFailure::Failed(_)));
    // Backoff 250 ms then 500 ms between the attempts.
    assert_eq!(t0.elapsed(), script().container_create + ms(250) + ms(500));
    assert_eq!(
        rt.spawns_of("kilo"),
        0,
        "no SDK server after a failed worktrees phase"
    );
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_hung_sdk_boot_times_out_and_leaves_no_server_behind() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script().with_sdk_boot(Duration::from_secs(600)));
    let start = StartOptions::default()
        .with_timeout(StartupPhase::Sdk, Duration::from_secs(10))
        .with_retry(RetryPolicy {
            max_restarts: 1,
            within: Duration::from_secs(60),
            backoff: ms(100),
            max_attempts: 3,
        });
    let town = TownHandle::start(
        options(config("hang", 0), &dir.path().join("s"), &rt).with_start_options(start),
    )
    .await
    .unwrap();
    let err = town.ensure_mayor().await.unwrap_err();
    let Error::Start(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.phase, StartupPhase::Sdk);
    assert!(matches!(
        e.cause,
        PhaseFailure::TimedOut { after_ms: 10_000 }
    ));
    assert_eq!(e.attempts, 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        rt.live_processes(&TownId::new("hang").unwrap()).is_empty(),
        "timed-out servers were killed"
    );
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_killed_sdk_server_is_redispatched_and_a_killed_container_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script());
    let town_id = TownId::new("kill").unwrap();
    let town = TownHandle::start(options(config("kill", 0), &dir.path().join("s"), &rt))
        .await
        .unwrap();
    let first = town.ensure_mayor().await.unwrap();
    let pid = town.mayor_info().await.unwrap().unwrap().pid.unwrap();
    assert!(rt.kill_process(pid));
    let second = town.ensure_mayor().await.unwrap();
    assert_eq!(second.report.decision, EnsureDecision::SdkDeadRedispatch);
    assert_eq!(second.session_id, first.session_id);

    assert!(rt.kill_container(&town_id));
    let third = town.ensure_mayor().await.unwrap();
    assert_eq!(third.report.decision, EnsureDecision::SdkDeadRedispatch);
    assert_eq!(rt.container_creates(&town_id), 2, "a new container");
    assert_eq!(third.session_id, first.session_id);
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_during_the_sdk_boot_stops_the_booting_server_and_answers_every_caller() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script());
    let town_id = TownId::new("drain").unwrap();
    let town = TownHandle::start(options(config("drain", 0), &dir.path().join("s"), &rt))
        .await
        .unwrap();
    let ensure = tokio::spawn({
        let town = town.clone();
        async move { town.ensure_mayor().await }
    });
    // Mid-boot: the container is up (1.5 s) and kilo is booting (4.5 s).
    tokio::time::sleep(ms(3000)).await;
    assert_eq!(rt.live_processes(&town_id).len(), 1, "kilo is booting");
    let (a, b) = tokio::join!(town.clone().shutdown(), town.clone().shutdown());
    a.expect("first shutdown");
    b.expect("a second shutdown waits for the same drain");
    assert!(matches!(ensure.await.unwrap(), Err(Error::Stopped)));
    assert!(
        rt.live_processes(&town_id).is_empty(),
        "the booting server was stopped"
    );
    // ... before its kilo.db was copied out for the snapshot.
    let log = rt.log();
    let killed = log
        .iter()
        .find(|e| matches!(e.kind, SimEventKind::ProcessKill { .. }))
        .expect("the drain killed the booting server");
    let copied = log
        .iter()
        .find(|e| {
            matches!(&e.kind, SimEventKind::FileRead { path } if path.as_str().ends_with("kilo.db"))
                && e.start >= killed.start
        })
        .expect("the drain copied kilo.db");
    assert!(killed.end <= copied.start, "stopped, then copied");
    assert_eq!(
        rt.container_status(&town_id),
        gastown_core::ContainerStatus::Absent,
        "the container was removed"
    );
}
