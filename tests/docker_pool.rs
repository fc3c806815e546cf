//! The warm pool on the Docker runtime, with the real kilo in gastown's agent image on a
//! real Docker Engine (`ARCHITECTURE.md`, *Warm pool*):
//!
//! - a brand-new town claims the pool's pre-booted server (`pooled: true`, no kilo booted
//!   for it): its container is the pool's, renamed for the town; its mayor's pid and
//!   session work, and a real turn (the scripted model server, a test double of an
//!   OpenAI-compatible provider, on the bridge gateway) gets its reply;
//! - the pool refills in the background; the town's shutdown removes its container and
//!   the pool volume the container was created with;
//! - a town with a rig from a host path (a bind mount, which a running container cannot
//!   gain) starts cold (`pooled: false`) and the spare stays in the pool;
//! - `WarmPool::shutdown` removes the refilled spare, so nothing carrying the test's prefix
//!   is left.
//!
//! Three kilo boots in all (the spare, its refill, the cold town), at most two servers at
//! once. Skipped (with a line) when no engine answers or kilo is not installed, unless
//! `GASTOWN_REQUIRE_DOCKER=1` / `GASTOWN_REQUIRE_KILO=1`. Everything carrying the test's
//! container name prefix is removed at the end, also when it fails.
#![cfg(feature = "docker")]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use gastown::actors::test_support::git_rig;
use gastown::actors::{WarmPool, WarmPoolOptions};
use gastown::core::{ContainerRuntime, ContainerStatus, ProviderConfig};
use gastown::docker::test_support::{
    bridge_gateway, engine, labelled, labelled_volumes, prefix, runtime, town, Cleanup,
};
use gastown::docker::DockerRuntime;
use gastown::{TownConfig, TownHandle, TownId, TownOptions};
use gastown_scripted_model::{ScriptedModelServer, DEFAULT_TEXT, MODEL, PROVIDER_ID};
use tokio::time::Instant;

/// A bound on waits for real processes and containers (a failure guard, not a timing
/// assertion).
const GUARD: Duration = Duration::from_secs(180);

fn config(town: &TownId, model: &ScriptedModelServer) -> TownConfig {
    TownConfig::new(town.clone())
        .with_mayor_model(MODEL)
        .with_mayor_small_model(MODEL)
        .with_provider(PROVIDER_ID, ProviderConfig::new(model.provider_entry()))
}

fn options(config: TownConfig, state: &Path, rt: &Arc<DockerRuntime>) -> TownOptions {
    let runtime: Arc<dyn ContainerRuntime> = rt.clone();
    TownOptions::new(config, state, runtime)
}

/// The names (without the leading `/`) of the containers labelled with `prefix`.
async fn container_names(docker: &Docker, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    for id in labelled(docker, prefix, None).await {
        let c = docker.inspect_container(&id, None).await.unwrap();
        names.push(c.name.unwrap().trim_start_matches('/').to_owned());
    }
    names.sort();
    names
}

/// The agents volume a container mounts at `/agents`.
async fn agents_volume(docker: &Docker, container: &str) -> String {
    docker
        .inspect_container(container, None)
        .await
        .unwrap()
        .mounts
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.destination.as_deref() == Some("/agents"))
        .and_then(|m| m.name)
        .expect("an agents volume")
}

#[tokio::test]
async fn a_brand_new_town_claims_the_pooled_server_and_a_town_with_a_rig_mount_starts_cold() {
    let Some(docker) = engine().await else {
        return;
    };
    let prefix = prefix("dpool");
    let Some(rt) = runtime(&prefix).await.map(Arc::new) else {
        return;
    };
    let _cleanup = Cleanup::prefix(&prefix);
    let gateway = bridge_gateway(&docker).await;
    let model = ScriptedModelServer::start(SocketAddr::new(gateway, 0))
        .await
        .unwrap_or_else(|e| panic!("binding the scripted model server on {gateway}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let pool_rt: Arc<dyn ContainerRuntime> = rt.clone();
    let pool = WarmPool::start(
        pool_rt,
        config(&town("template"), &model),
        WarmPoolOptions {
            size: 1,
            ..Default::default()
        },
    );
    tokio::time::timeout(GUARD, pool.wait_ready(1))
        .await
        .expect("the pool boots a server");
    let spare = container_names(&docker, &prefix).await;
    assert_eq!(spare.len(), 1, "one pool container: {spare:?}");
    let spare_volume = agents_volume(&docker, &spare[0]).await;

    // A brand-new town claims it.
    let alpha_id = town("alpha");
    let alpha = TownHandle::start(
        options(config(&alpha_id, &model), &dir.path().join("alpha"), &rt)
            .with_warm_pool(pool.clone()),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let ready = alpha.ensure_mayor().await.unwrap();
    let pooled_ms = t0.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "pooled ensure_mayor: {pooled_ms:.0} ms ({:?})",
        ready.report
    );
    assert!(ready.report.pooled, "{:?}", ready.report);
    assert!(ready.report.prewarmed, "{:?}", ready.report);
    assert!(ready.session_id.starts_with("ses"), "{}", ready.session_id);
    let info = alpha.mayor_info().await.unwrap().expect("the mayor runs");
    assert!(info.pid.is_some(), "{info:?}");
    assert_eq!(info.session_id.as_deref(), Some(ready.session_id.as_str()));
    // The pool's container, renamed for the town (beside it, the refill may have begun).
    let alpha_container = rt.container_name(&alpha_id);
    let names = container_names(&docker, &prefix).await;
    assert!(
        names.contains(&alpha_container) && !names.contains(&spare[0]),
        "{names:?}"
    );
    assert_eq!(agents_volume(&docker, &alpha_container).await, spare_volume);
    // A real turn on the claimed server.
    let reply = gastown::actors::test_support::reply_of(&alpha, "hi", GUARD).await;
    assert_eq!(reply.text, DEFAULT_TEXT);

    // The pool refilled in the background (the second boot); the town's shutdown takes
    // its container and the pool volume it was created with.
    tokio::time::timeout(GUARD, pool.wait_ready(1))
        .await
        .expect("the pool refills");
    alpha.shutdown().await.unwrap();
    assert_eq!(rt.status(&alpha_id).await.unwrap(), ContainerStatus::Absent);
    let left = container_names(&docker, &prefix).await;
    assert_eq!(left.len(), 1, "the refilled spare: {left:?}");
    assert_ne!(left[0], spare[0]);
    let refill_volume = agents_volume(&docker, &left[0]).await;
    assert_eq!(
        labelled_volumes(&docker, &prefix, None).await,
        vec![refill_volume],
        "the claimed pool volume went with the town"
    );

    // A town with a rig from a host path cannot take a running container: it starts cold
    // (the third boot) and the spare stays.
    let rigged_id = town("rigged");
    let rig = git_rig(dir.path(), "app");
    let rigged = TownHandle::start(
        options(
            config(&rigged_id, &model).with_rig(rig),
            &dir.path().join("rigged"),
            &rt,
        )
        .with_warm_pool(pool.clone()),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let ready = rigged.ensure_mayor().await.unwrap();
    let cold_ms = t0.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "cold ensure_mayor (rig mount): {cold_ms:.0} ms ({:?})",
        ready.report
    );
    assert!(!ready.report.pooled, "{:?}", ready.report);
    assert!(!ready.report.prewarmed, "{:?}", ready.report);
    assert_eq!(pool.ready(), 1, "the spare is still in the pool");
    assert_eq!(container_names(&docker, &prefix).await, {
        let mut both = vec![left[0].clone(), rt.container_name(&rigged_id)];
        both.sort();
        both
    });
    rigged.shutdown().await.unwrap();

    pool.shutdown().await;
    assert!(labelled(&docker, &prefix, None).await.is_empty());
    assert!(labelled_volumes(&docker, &prefix, None).await.is_empty());
}
