//! The warm pool on the simulated runtime (a test double), in virtual time: a brand-new
//! town claims a pooled mayor server instead of booting one (`pooled: true`, no SDK boot on
//! its path), the pool refills in the background, no server serves two towns, a town the
//! pool cannot serve (another model, or a town with a snapshot) starts cold and says so,
//! and `shutdown` removes the unclaimed servers.

use std::path::Path;
use std::time::Duration;

use gastown_actors::{TownHandle, TownOptions, WarmPool, WarmPoolOptions};
use gastown_core::simulated::{SimEventKind, SimScript, SimulatedRuntime};
use gastown_core::{ContainerStatus, TownConfig, TownId};
use std::sync::Arc;
use tokio::time::Instant;

const BOOT: Duration = Duration::from_millis(4500);

fn script() -> SimScript {
    SimScript::zero()
        .with_container_create(Duration::from_millis(1500))
        .with_sdk_boot(BOOT)
        .with_sdk_create_session(Duration::from_millis(150))
}

fn pool(rt: &Arc<SimulatedRuntime>, size: usize) -> WarmPool {
    WarmPool::start(
        rt.clone(),
        TownConfig::new(TownId::new("template").unwrap()),
        WarmPoolOptions {
            size,
            sdk_connector: rt.sdk_connector(),
            ..Default::default()
        },
    )
}

async fn town(
    rt: &Arc<SimulatedRuntime>,
    dir: &Path,
    config: TownConfig,
    pool: &WarmPool,
) -> TownHandle {
    let options = TownOptions::new(config, dir, rt.clone())
        .with_sdk_connector(rt.sdk_connector())
        .with_warm_pool(pool.clone());
    TownHandle::start(options).await.unwrap()
}

fn config(name: &str) -> TownConfig {
    TownConfig::new(TownId::new(name).unwrap())
}

fn kilo_spawns(rt: &SimulatedRuntime) -> usize {
    rt.spawns_of("kilo")
}

#[tokio::test(start_paused = true)]
async fn a_brand_new_town_claims_a_pooled_server_and_the_pool_refills() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script());
    let pool = pool(&rt, 1);
    pool.wait_ready(1).await;
    assert_eq!(kilo_spawns(&rt), 1, "the pool booted one server");

    let alpha = town(&rt, &dir.path().join("alpha"), config("alpha"), &pool).await;
    let t0 = Instant::now();
    let ready = alpha.ensure_mayor().await.unwrap();
    let took = t0.elapsed();
    assert!(ready.report.pooled, "{:?}", ready.report);
    assert!(ready.report.prewarmed);
    // No container create and no SDK boot on the mayor's path: the session is what costs.
    assert!(took < BOOT, "took {took:?}");
    let pid = alpha.mayor_info().await.unwrap().unwrap().pid.unwrap();
    assert_eq!(
        rt.live_processes(&TownId::new("alpha").unwrap()),
        vec![pid],
        "the pooled server now runs in the town's container"
    );
    // The refill started at the claim, in the background.
    assert_eq!(pool.ready(), 0);
    pool.wait_ready(1).await;
    assert_eq!(kilo_spawns(&rt), 2);

    // A second town gets the refilled server, never the first one.
    let beta = town(&rt, &dir.path().join("beta"), config("beta"), &pool).await;
    let ready = beta.ensure_mayor().await.unwrap();
    assert!(ready.report.pooled);
    let beta_pid = beta.mayor_info().await.unwrap().unwrap().pid.unwrap();
    assert_ne!(beta_pid, pid, "no server serves two towns");
    pool.wait_ready(1).await;
    assert_eq!(
        kilo_spawns(&rt),
        3,
        "towns spawned no server of their own; the pool refilled twice"
    );

    alpha.shutdown().await.unwrap();
    beta.shutdown().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_town_the_pool_cannot_serve_starts_cold_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script());
    let pool = pool(&rt, 1);
    pool.wait_ready(1).await;

    // Another mayor model: another configuration hash.
    let other = config("other").with_mayor_model("openai/gpt-5");
    let town_other = town(&rt, &dir.path().join("other"), other, &pool).await;
    let t0 = Instant::now();
    let ready = town_other.ensure_mayor().await.unwrap();
    assert!(!ready.report.pooled, "{:?}", ready.report);
    assert!(!ready.report.prewarmed);
    assert!(t0.elapsed() >= BOOT, "a cold start boots its server");
    assert_eq!(pool.ready(), 1, "the pooled server is still there");
    town_other.shutdown().await.unwrap();

    // A town that ran before (its mayor has a snapshot) is not brand new.
    let state = dir.path().join("gamma");
    let gamma = town(&rt, &state, config("gamma"), &pool).await;
    assert!(gamma.ensure_mayor().await.unwrap().report.pooled);
    gamma.shutdown().await.unwrap();
    pool.wait_ready(1).await;
    let gamma = town(&rt, &state, config("gamma"), &pool).await;
    let ready = gamma.ensure_mayor().await.unwrap();
    assert!(!ready.report.pooled, "a town with a snapshot resumes cold");
    assert_eq!(pool.ready(), 1);
    gamma.shutdown().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_removes_the_unclaimed_servers() {
    let rt = SimulatedRuntime::new(script());
    let pool = pool(&rt, 2);
    pool.wait_ready(2).await;
    pool.shutdown().await;
    assert_eq!(pool.ready(), 0);
    let pool_towns: Vec<TownId> = rt
        .log()
        .into_iter()
        .filter(|e| matches!(e.kind, SimEventKind::ContainerCreate))
        .map(|e| e.town)
        .collect();
    assert_eq!(pool_towns.len(), 2);
    for t in pool_towns {
        assert!(t.as_str().starts_with("pool-"), "{t}");
        assert_eq!(rt.container_status(&t), ContainerStatus::Absent);
        assert!(rt.live_processes(&t).is_empty());
    }
}
