//! Boot hydration of an adopted container, in virtual time on the simulated runtime (a
//! test double): a host that restarts while the container runs (`detach`, then a new
//! `TownHandle` on the same state directory) opens the gate at once as
//! `MayorBoot::AlreadyRunning`, sends no live token refresh, and still resumes every
//! registered worker in the background. (The simulated runtime records no processes, so
//! the workers' servers are started again; the real runtimes adopt them: `chaos_local.rs`,
//! the workspace's `tests/docker_chaos.rs`.)

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gastown_actors::{MayorBoot, TownHandle, TownOptions};
use gastown_core::simulated::{SimEventKind, SimScript, SimulatedRuntime, TOKEN_REFRESH_PATH};
use gastown_core::{AgentId, Role, TownConfig, TownId, TownStore};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn options(state: &Path, rt: &Arc<SimulatedRuntime>) -> TownOptions {
    TownOptions::new(
        TownConfig::new(TownId::new("adopted").unwrap()),
        state,
        rt.clone(),
    )
    .with_sdk_connector(rt.sdk_connector())
}

/// How many times a polecat's SDK server became ready.
fn polecat_servers_ready(rt: &SimulatedRuntime) -> usize {
    rt.log()
        .into_iter()
        .filter(|e| matches!(e.kind, SimEventKind::SdkReady { .. }))
        .filter(|e| e.agent().is_some_and(|a| a.starts_with("polecat-")))
        .count()
}

#[tokio::test(start_paused = true)]
async fn an_adopted_container_resumes_its_registered_workers_without_a_token_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let store = TownStore::open(&state.join("town.db")).unwrap();
    for i in 0..2 {
        store
            .register(
                &AgentId::new(format!("polecat-{i}")).unwrap(),
                Role::Polecat,
            )
            .unwrap();
    }
    drop(store);
    let rt = SimulatedRuntime::new(
        SimScript::zero()
            .with_container_create(ms(1500))
            .with_sdk_boot(ms(4500))
            .with_sdk_create_session(ms(150))
            .with_token_refresh(ms(250)),
    );
    let town = TownHandle::start(options(&state, &rt)).await.unwrap();
    let boot = town.warm_up().await.unwrap();
    assert!(boot.container_created);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(polecat_servers_ready(&rt), 2, "boot hydration resumed both");

    // The host restarts; the container lives on.
    town.detach().await;
    let town = TownHandle::start(options(&state, &rt)).await.unwrap();
    let boot = town.warm_up().await.unwrap();
    assert_eq!(boot.mayor, MayorBoot::AlreadyRunning);
    assert!(!boot.container_created);
    assert_eq!(boot.non_mayor_agents, 2, "the registered workers");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        polecat_servers_ready(&rt),
        4,
        "each registered worker was resumed after the adoption"
    );
    for i in 0..2 {
        let agent = AgentId::new(format!("polecat-{i}")).unwrap();
        let info = town.agent_info(&agent).await.unwrap().expect("an actor");
        assert!(info.endpoint.is_some(), "{agent} has a running server");
    }
    assert_eq!(rt.container_creates(&TownId::new("adopted").unwrap()), 1);
    assert_eq!(
        rt.writes_to(TOKEN_REFRESH_PATH),
        0,
        "no live refresh on adoption"
    );
    town.shutdown().await.unwrap();
}
