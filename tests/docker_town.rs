//! A whole town on the Docker runtime, through the embedding API (`TownHandle`), on a real
//! Docker Engine with the real `kilo serve` in gastown's agent image:
//!
//! - a town shut down and started again (a new container) resumes the mayor's session
//!   from its snapshot, and shutdown leaves no container or volume behind;
//! - a container killed from outside (`docker kill`) is reported exited, and the next
//!   `ensure_mayor` replaces it and resumes the same session (`sdk_dead_redispatch`);
//! - an unreachable engine is a typed error naming the socket, with the town's store
//!   untouched.
//!
//! Two runtimes racing to start one town are covered at the runtime level
//! (`gastown-runtime-docker/tests/docker.rs`).
//!
//! Skipped (with a line) when no engine answers at the default socket or kilo is not
//! installed, unless `GASTOWN_REQUIRE_DOCKER=1` / `GASTOWN_REQUIRE_KILO=1`. Each test uses
//! its own container name prefix and removes everything carrying it at the end, also when
//! it fails.
#![cfg(feature = "docker")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard::query_parameters::KillContainerOptionsBuilder;
use bollard::Docker;
use gastown::core::{ContainerRuntime, ContainerStatus, EnsureDecision, TownStore};
use gastown::docker::test_support::{
    container_id, engine, labelled as labelled_containers, labelled_volumes, prefix, runtime,
    wait_status, Cleanup,
};
use gastown::docker::{DockerOptions, DockerRuntime, Error as DockerError};
use gastown::{TownConfig, TownHandle, TownId, TownOptions};

/// The engine client and a runtime on gastown's agent image (built from the real kilo, or
/// reused when its inputs are unchanged) with `prefix`; `None` when either is missing.
async fn docker_runtime(prefix: &str) -> Option<(Docker, Arc<DockerRuntime>)> {
    let docker = engine().await?;
    let rt = runtime(prefix).await?;
    Some((docker, Arc::new(rt)))
}

fn town_id(name: &str) -> TownId {
    TownId::new(name).expect("test town id")
}

/// Containers (ids) and volumes (names) labelled with `prefix`.
async fn labelled(docker: &Docker, prefix: &str) -> (Vec<String>, Vec<String>) {
    (
        labelled_containers(docker, prefix, None).await,
        labelled_volumes(docker, prefix, None).await,
    )
}

async fn start_town(
    town: &TownId,
    state_dir: &Path,
    rt: &Arc<DockerRuntime>,
) -> anyhow::Result<TownHandle> {
    let runtime: Arc<dyn ContainerRuntime> = rt.clone();
    let options = TownOptions::new(TownConfig::new(town.clone()), state_dir, runtime);
    Ok(TownHandle::start(options).await?)
}

/// "Snapshots survive the container": shutdown snapshots `kilo.db` into the state
/// dir and deletes container and volume; a new town on the same state dir (a new container,
/// a fresh volume) resumes the same session from the snapshot.
#[tokio::test]
async fn a_town_restarted_on_docker_resumes_the_mayors_session_from_its_snapshot(
) -> anyhow::Result<()> {
    let prefix = prefix("tsnap");
    let Some((docker, rt)) = docker_runtime(&prefix).await else {
        return Ok(());
    };
    let _cleanup = Cleanup::prefix(&prefix);
    let state = tempfile::tempdir()?;
    let town = town_id("snap");

    let first_town = start_town(&town, state.path(), &rt).await?;
    let first = first_town.ensure_mayor().await?;
    let first_container = container_id(&rt, &town).await;
    assert!(first.session_id.starts_with("ses"), "{}", first.session_id);
    first_town.shutdown().await?;

    assert_eq!(rt.status(&town).await?, ContainerStatus::Absent);
    assert_eq!(
        labelled(&docker, &prefix).await,
        (Vec::new(), Vec::new()),
        "shutdown leaves neither the container nor the agents volume"
    );
    assert!(
        state.path().join("snapshots").is_dir(),
        "the drain wrote a snapshot into the state dir"
    );

    let second_town = start_town(&town, state.path(), &rt).await?;
    let second = second_town.ensure_mayor().await?;
    let second_container = container_id(&rt, &town).await;
    assert_ne!(second_container, first_container, "a new container");
    assert_eq!(
        second.session_id, first.session_id,
        "the mayor resumed its session from the snapshot"
    );
    let info = second_town.mayor_info().await?.expect("the mayor runs");
    assert_eq!(info.session_id.as_deref(), Some(first.session_id.as_str()));
    second_town.shutdown().await?;
    assert_eq!(labelled(&docker, &prefix).await, (Vec::new(), Vec::new()));
    Ok(())
}

/// "Container killed from outside": status says exited; the next `ensure_mayor`
/// sees the SDK server gone (`sdk_dead_redispatch`), runs in a new container, and resumes
/// the same session — from the agents volume, no snapshot having been taken.
#[tokio::test]
async fn a_container_killed_from_outside_is_replaced_and_the_mayor_resumes_its_session(
) -> anyhow::Result<()> {
    let prefix = prefix("tkill");
    let Some((docker, rt)) = docker_runtime(&prefix).await else {
        return Ok(());
    };
    let _cleanup = Cleanup::prefix(&prefix);
    let state = tempfile::tempdir()?;
    let town = town_id("killed");

    let handle = start_town(&town, state.path(), &rt).await?;
    let first = handle.ensure_mayor().await?;
    let killed = container_id(&rt, &town).await;

    let kill = KillContainerOptionsBuilder::default()
        .signal("SIGKILL")
        .build();
    docker
        .kill_container(&rt.container_name(&town), Some(kill))
        .await?;
    wait_status(&rt, &town, ContainerStatus::Exited).await;
    // Snapshots are taken on drain only: what carries the session is the agents volume.
    let snapshots = state.path().join("snapshots");
    assert!(
        !snapshots.exists() || tree(&snapshots).is_empty(),
        "no snapshot before the kill"
    );

    let second = handle.ensure_mayor().await?;
    assert_eq!(
        second.report.decision,
        EnsureDecision::SdkDeadRedispatch,
        "the town noticed its mayor's SDK server was gone"
    );
    let replacement = container_id(&rt, &town).await;
    assert_ne!(
        replacement, killed,
        "a new container replaced the killed one"
    );
    assert_eq!(rt.status(&town).await?, ContainerStatus::Running);
    assert_eq!(second.session_id, first.session_id, "the same session");
    let info = handle.mayor_info().await?.expect("the mayor runs");
    assert_eq!(info.endpoint.as_deref(), Some(second.endpoint.as_str()));
    let (containers, volumes) = labelled(&docker, &prefix).await;
    assert_eq!(
        containers,
        vec![replacement],
        "the killed container is gone"
    );
    assert_eq!(volumes, vec![rt.volume_name(&town)]);

    handle.shutdown().await?;
    assert_eq!(labelled(&docker, &prefix).await, (Vec::new(), Vec::new()));
    Ok(())
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read state dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(tree(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).expect("read file"));
        }
    }
    out
}

/// "Engine unreachable": a typed error naming the socket, no panic, and the town's
/// store byte-for-byte as it was. Needs no engine and no kilo.
#[tokio::test]
async fn an_unreachable_engine_is_a_typed_error_and_the_town_store_is_untouched(
) -> anyhow::Result<()> {
    let state = tempfile::tempdir()?;
    {
        let store = TownStore::open(&state.path().join("town.db"))?;
        store.kv_set("last_token_refresh", "before")?;
    }
    let before = tree(state.path());
    assert!(!before.is_empty());

    let socket = state.path().join("nowhere/docker.sock");
    let err = DockerRuntime::connect(DockerOptions::default().with_socket(&socket))
        .await
        .unwrap_err();
    match err.backend_error::<DockerError>() {
        Some(DockerError::EngineUnavailable { socket: named, .. }) => assert_eq!(named, &socket),
        other => panic!("expected EngineUnavailable, got {other:?} in {err:?}"),
    }
    assert!(
        err.to_string().contains(&socket.display().to_string()),
        "{err}"
    );

    assert_eq!(tree(state.path()), before, "the state dir changed");
    let store = TownStore::open(&state.path().join("town.db"))?;
    assert_eq!(
        store.kv_get("last_token_refresh")?.as_deref(),
        Some("before")
    );
    Ok(())
}
