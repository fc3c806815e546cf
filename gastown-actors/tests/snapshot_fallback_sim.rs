//! A bad latest snapshot does not strand a town, on the simulated runtime (a test double;
//! virtual time): the previous verified snapshot is restored, the bad file is kept aside
//! for inspection, and the fallback is reported (an event and the startup report). Only
//! when both are bad is it a hydrate-phase error, with both files left as they were.

use std::path::Path;

use gastown_actors::{Error, TownEvent, TownHandle, TownOptions};
use gastown_core::simulated::{SimScript, SimulatedRuntime};
use gastown_core::{AgentId, AgentLayout, StartupPhase, TownConfig, TownId};

fn town_id() -> TownId {
    TownId::new("fallback").unwrap()
}

async fn start(rt: &std::sync::Arc<SimulatedRuntime>, state: &Path) -> TownHandle {
    let options = TownOptions::new(TownConfig::new(town_id()), state, rt.clone())
        .with_sdk_connector(rt.sdk_connector());
    TownHandle::start(options).await.unwrap()
}

fn texts(rt: &SimulatedRuntime) -> Vec<String> {
    rt.messages_in(&town_id(), &AgentLayout::new(AgentId::mayor()).data())
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_bad_latest_snapshot_falls_back_to_the_previous_one_and_is_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(SimScript::zero());
    // Two shutdowns: the first snapshot becomes `kilo.db.prev`, the second the latest.
    let town = start(&rt, &state).await;
    let first = town.ensure_mayor().await.unwrap();
    town.send_mayor_message("one").await.unwrap();
    town.shutdown().await.unwrap();
    let town = start(&rt, &state).await;
    town.send_mayor_message("two").await.unwrap();
    town.shutdown().await.unwrap();

    let snapshots = state.join("snapshots").join("mayor");
    std::fs::write(snapshots.join("kilo.db"), b"not a database").unwrap();
    let town = start(&rt, &state).await;
    let ready = town.ensure_mayor().await.unwrap();
    assert!(ready.report.snapshot_fallback, "the report says so");
    assert_eq!(ready.session_id, first.session_id);
    let messages = texts(&rt);
    assert!(messages.iter().any(|t| t == "one"), "{messages:?}");
    assert!(
        !messages.iter().any(|t| t == "two"),
        "the bad snapshot's turn is not there: {messages:?}"
    );
    assert!(town
        .events_since(0)
        .iter()
        .any(|r| matches!(r.event, TownEvent::SnapshotFallback { .. })));
    let kept: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kilo.db.bad-"))
        .collect();
    assert_eq!(kept.len(), 1, "the bad file is kept for inspection");
    assert_eq!(
        std::fs::read(snapshots.join(&kept[0])).unwrap(),
        b"not a database"
    );
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn with_both_snapshots_bad_it_is_a_hydrate_error_and_both_files_stay() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(SimScript::zero());
    let town = start(&rt, &state).await;
    town.ensure_mayor().await.unwrap();
    town.shutdown().await.unwrap();
    let snapshots = state.join("snapshots").join("mayor");
    std::fs::write(snapshots.join("kilo.db"), b"bad latest").unwrap();
    std::fs::write(snapshots.join("kilo.db.prev"), b"bad previous").unwrap();

    let town = start(&rt, &state).await;
    let err = town.ensure_mayor().await.expect_err("no good snapshot");
    let Error::Start(start) = &err else {
        panic!("expected a start error, got {err:?}");
    };
    assert_eq!(start.phase, StartupPhase::Hydrate);
    assert_eq!(
        std::fs::read(snapshots.join("kilo.db")).unwrap(),
        b"bad latest"
    );
    assert_eq!(
        std::fs::read(snapshots.join("kilo.db.prev")).unwrap(),
        b"bad previous"
    );
    town.shutdown().await.unwrap();
}
