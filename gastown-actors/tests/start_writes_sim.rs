//! What a town's starts write to its store, on the simulated runtime (a test double;
//! virtual time): a finished start is also the agent's first heartbeat, and the container
//! token's mint stamp is written by the first start of a minute only — the workers that
//! boot hydration resumes right after their mayor leave it as it is — while a start more
//! than a minute later stamps it anew. In its own test binary: the town clock is anchored
//! once per process.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gastown_actors::{TownHandle, TownOptions};
use gastown_core::simulated::{SimScript, SimulatedRuntime};
use gastown_core::token::{TOKEN_EXPIRES_KEY, TOKEN_REFRESHED_KEY, TOKEN_TTL};
use gastown_core::{AgentId, Role, TownConfig, TownId, TownStore};

const WORKERS: usize = 3;

fn script() -> SimScript {
    SimScript::zero()
        .with_container_create(Duration::from_millis(1500))
        .with_sdk_boot(Duration::from_millis(4500))
        .with_sdk_create_session(Duration::from_millis(150))
}

fn options(state: &Path, rt: &Arc<SimulatedRuntime>) -> TownOptions {
    TownOptions::new(
        TownConfig::new(TownId::new("writes").unwrap()),
        state,
        rt.clone(),
    )
    .with_sdk_connector(rt.sdk_connector())
}

/// Waits (virtual time) until every agent of the town has a session in the store.
async fn all_started(store: &TownStore) {
    for _ in 0..600 {
        let agents = store.agents().unwrap();
        if agents.len() == WORKERS + 1 && agents.iter().all(|a| a.session_id.is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("the workers never started: {:?}", store.agents().unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_start_is_the_first_heartbeat_and_one_mint_stamp_serves_the_minute() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let store = TownStore::open(&state.join("town.db")).unwrap();
    for i in 0..WORKERS {
        let id = AgentId::new(format!("polecat-{i}")).unwrap();
        store.register(&id, Role::Polecat).unwrap();
    }
    let rt = SimulatedRuntime::new(script());

    let town = TownHandle::start(options(&state, &rt)).await.unwrap();
    town.ensure_mayor().await.unwrap();
    all_started(&store).await;

    let agents = store.agents().unwrap();
    for a in &agents {
        assert!(a.last_activity_ms.is_some(), "{a:?}");
        assert_eq!(
            a.heartbeat_ms, a.last_activity_ms,
            "{}: start = heartbeat",
            a.id
        );
    }
    let mayor = agents.iter().find(|a| a.role == Role::Mayor).unwrap();
    let mayor_done = mayor.last_activity_ms.unwrap();
    let stamp = store.time_get(TOKEN_REFRESHED_KEY).unwrap().unwrap();
    let expires = store.time_get(TOKEN_EXPIRES_KEY).unwrap().unwrap();
    // The mayor minted before its 4.5 s boot; the workers minted after it was ready, within
    // the minute, and left the mayor's stamp.
    assert!(
        stamp <= mayor_done - 4_500,
        "stamp {stamp}, mayor ready {mayor_done}"
    );
    for w in agents.iter().filter(|a| a.role == Role::Polecat) {
        assert!(w.last_activity_ms.unwrap() > mayor_done, "{w:?}");
    }
    assert_eq!(expires, stamp + TOKEN_TTL.as_millis() as i64);

    // Two minutes on, a restarted town's mayor mints again and stamps anew.
    town.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    let town = TownHandle::start(options(&state, &rt)).await.unwrap();
    town.ensure_mayor().await.unwrap();
    let restamped = store.time_get(TOKEN_REFRESHED_KEY).unwrap().unwrap();
    assert!(restamped >= stamp + 120_000, "{restamped} after {stamp}");
    assert_eq!(
        store.time_get(TOKEN_EXPIRES_KEY).unwrap().unwrap(),
        restamped + TOKEN_TTL.as_millis() as i64
    );
    town.shutdown().await.unwrap();
}
