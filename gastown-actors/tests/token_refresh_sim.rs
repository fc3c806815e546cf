//! The live token refresh in virtual time on the simulated runtime (a test double). In its
//! own test binary: the town clock is anchored once per process, and this test reads it
//! across a town restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gastown_actors::{MayorBoot, TownHandle, TownOptions};
use gastown_core::simulated::{SimScript, SimulatedRuntime, TOKEN_REFRESH_PATH};
use gastown_core::{TownConfig, TownId};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn script() -> SimScript {
    SimScript::zero()
        .with_container_create(ms(1500))
        .with_sdk_boot(ms(4500))
        .with_sdk_create_session(ms(150))
        .with_token_refresh(ms(250))
}

fn config(town: &str, _rigs: usize) -> TownConfig {
    TownConfig::new(TownId::new(town).unwrap())
}

fn options(config: TownConfig, state: &Path, rt: &Arc<SimulatedRuntime>) -> TownOptions {
    // The container must stay warm for the hour this test watches: no idle stop.
    TownOptions::new(config, state, rt.clone())
        .with_sdk_connector(rt.sdk_connector())
        .with_idle_stop_after(Duration::from_secs(86_400))
}

#[tokio::test(start_paused = true)]
async fn a_cold_start_never_sends_a_live_token_refresh_and_the_throttle_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(script());
    let town = TownHandle::start(options(config("tok", 0), &state, &rt))
        .await
        .unwrap();
    town.ensure_mayor().await.unwrap();
    assert_eq!(
        rt.writes_to(TOKEN_REFRESH_PATH),
        0,
        "the start passed a fresh token instead"
    );

    // Idle alarm ticks every 300 s; within the hour nothing is refreshed.
    tokio::time::sleep(Duration::from_secs(1800)).await;
    assert_eq!(rt.writes_to(TOKEN_REFRESH_PATH), 0);
    // A restarted town actor reads the persisted throttle and does not refresh early.
    town.detach().await;
    let town = TownHandle::start(options(config("tok", 0), &state, &rt))
        .await
        .unwrap();
    let boot = town.warm_up().await.unwrap();
    assert_eq!(
        boot.mayor,
        MayorBoot::AlreadyRunning,
        "the container was adopted warm"
    );
    tokio::time::sleep(Duration::from_secs(1500)).await;
    assert_eq!(rt.writes_to(TOKEN_REFRESH_PATH), 0, "still inside the hour");
    // Past the hour, the warm container gets a live refresh.
    tokio::time::sleep(Duration::from_secs(700)).await;
    assert_eq!(rt.writes_to(TOKEN_REFRESH_PATH), 1);
    town.shutdown().await.unwrap();
}
