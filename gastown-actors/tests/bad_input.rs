//! Bad input gets a clear error and loses nothing. These need no kilo.

mod common;

use std::path::PathBuf;

use common::*;
use gastown_actors::{Error, PhaseFailure, TownHandle, TownOptions};
use gastown_core::{AgentId, AgentStatus, StartupPhase, TownStore};

#[tokio::test]
async fn a_missing_kilo_binary_fails_the_sdk_phase_and_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = PathBuf::from("/nonexistent/gastown-test/kilo");
    let runtime = RecordingRuntime::new(local_runtime(&dir.path().join("c"), &missing));
    let state = dir.path().join("s");
    let town = start_town(town_config("nokilo"), &state, runtime.clone()).await;
    let err = town.ensure_mayor().await.expect_err("no kilo");
    let Error::Start(start) = &err else {
        panic!("expected a start error, got {err:?}");
    };
    assert_eq!(start.phase, StartupPhase::Sdk);
    assert_eq!(start.attempts, 1, "a missing binary is not retried");
    assert!(matches!(start.cause, PhaseFailure::Failed(_)));
    let msg = err.to_string();
    assert!(msg.contains("sdk phase"), "{msg}");
    assert!(msg.contains("install-kilo.sh"), "{msg}");
    assert!(msg.contains("GASTOWN_KILO_BIN"), "{msg}");
    assert_eq!(runtime.spawns_of("kilo"), 0);
    // The phases before it did their work and the town is still usable.
    town.shutdown().await.unwrap();
    let store = TownStore::open(&state.join("town.db")).unwrap();
    assert_eq!(
        store.agent(&AgentId::mayor()).unwrap().unwrap().status,
        AgentStatus::Dead
    );
}

#[tokio::test]
async fn an_invalid_config_is_rejected_before_any_state_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = local_runtime(&dir.path().join("c"), &PathBuf::from("/bin/false"));
    let state = dir.path().join("state");
    let config = town_config("bad").with_mayor_model("no-slash");
    let err = TownHandle::start(TownOptions::new(config, &state, runtime))
        .await
        .expect_err("invalid model");
    assert!(err.to_string().contains("provider/model"), "{err}");
    assert!(!state.exists(), "nothing written for a rejected config");
}

#[tokio::test]
async fn a_corrupted_town_store_is_an_error_and_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let garbage = b"this is not a sqlite database, not at all.......".repeat(100);
    std::fs::write(state.join("town.db"), &garbage).unwrap();
    let runtime = local_runtime(&dir.path().join("c"), &PathBuf::from("/bin/false"));
    let err = TownHandle::start(TownOptions::new(town_config("corrupt"), &state, runtime))
        .await
        .expect_err("corrupted store");
    assert!(err.to_string().contains("town store"), "{err}");
    assert_eq!(std::fs::read(state.join("town.db")).unwrap(), garbage);
}
