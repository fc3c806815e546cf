//! Hydrate and drain use the SDK launcher's database, on the simulated runtime (a test
//! double whose SDK server keeps `kilo/kilo.db`; virtual time): a launcher that names
//! another database makes the drain of an agent holding a session fail instead of
//! removing the container with the session inside; the kept container still holds it, and
//! a right launcher drains and resumes it. Hydrate restores a snapshot where the launcher
//! names the database.

use std::path::Path;

use gastown_actors::{Error, TownHandle, TownOptions};
use gastown_core::simulated::{SimScript, SimulatedRuntime};
use gastown_core::snapshot::LiveSnapshotError;
use gastown_core::{
    AgentId, ContainerPath, ContainerRuntime, ContainerStatus, SdkLauncher, TownConfig, TownId,
};

fn town_id() -> TownId {
    TownId::new("sdk-db").unwrap()
}

async fn start(
    rt: &std::sync::Arc<SimulatedRuntime>,
    state: &Path,
    sdk: SdkLauncher,
) -> TownHandle {
    let config = TownConfig::new(town_id()).with_sdk(sdk);
    let options =
        TownOptions::new(config, state, rt.clone()).with_sdk_connector(rt.sdk_connector());
    TownHandle::start(options).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_drain_that_finds_no_database_for_a_session_fails_and_keeps_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(SimScript::zero());
    // The simulated server keeps kilo/kilo.db; this launcher looks elsewhere.
    let misnamed = SdkLauncher {
        database: "elsewhere/agent.db".to_owned(),
        ..SdkLauncher::kilo()
    };
    let town = start(&rt, &state, misnamed).await;
    let first = town.ensure_mayor().await.unwrap();
    town.send_mayor_message("keep me").await.unwrap();

    let err = town
        .shutdown()
        .await
        .expect_err("the session would be lost");
    let Error::Drain { source, .. } = &err else {
        panic!("expected a drain error, got {err:?}");
    };
    let Error::Snapshot { agent, source } = source.as_ref() else {
        panic!("expected a snapshot error, got {source:?}");
    };
    assert_eq!(agent, &AgentId::mayor());
    let LiveSnapshotError::DatabaseMissing { path, .. } = source.as_ref() else {
        panic!("expected DatabaseMissing, got {source:?}");
    };
    assert_eq!(path.as_str(), "/agents/mayor/data/elsewhere/agent.db");
    assert_eq!(
        rt.status(&town_id()).await.unwrap(),
        ContainerStatus::Exited,
        "the container is stopped, not removed"
    );
    assert!(
        !state
            .join("snapshots")
            .join("mayor")
            .join("kilo.db")
            .exists(),
        "no snapshot was taken"
    );

    // The kept container still holds the session: the right launcher resumes it, and its
    // drain snapshots it.
    let town = start(&rt, &state, SdkLauncher::kilo()).await;
    let again = town.ensure_mayor().await.unwrap();
    assert_eq!(again.session_id, first.session_id, "the same session");
    town.shutdown().await.unwrap();
    assert_eq!(
        rt.status(&town_id()).await.unwrap(),
        ContainerStatus::Absent
    );
    assert!(state
        .join("snapshots")
        .join("mayor")
        .join("kilo.db")
        .exists());
}

#[tokio::test(start_paused = true)]
async fn hydrate_restores_the_snapshot_where_the_launcher_names_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(SimScript::zero());
    let town = start(&rt, &state, SdkLauncher::kilo()).await;
    town.ensure_mayor().await.unwrap();
    town.shutdown().await.unwrap();
    let snapshot = std::fs::read(state.join("snapshots").join("mayor").join("kilo.db")).unwrap();

    let elsewhere = SdkLauncher {
        database: "elsewhere/agent.db".to_owned(),
        ..SdkLauncher::kilo()
    };
    let town = start(&rt, &state, elsewhere).await;
    town.ensure_mayor().await.unwrap();
    let restored = rt
        .peek_file(
            &town_id(),
            &ContainerPath::new("/agents/mayor/data/elsewhere/agent.db").unwrap(),
        )
        .expect("restored where the launcher names the database");
    assert_eq!(restored, snapshot);
    town.detach().await;
}
