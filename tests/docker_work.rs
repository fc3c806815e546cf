//! A bead's trip on the real kilo in gastown's agent image on a real Docker Engine, with the
//! scripted model server (a test double of an OpenAI-compatible provider) on the docker
//! bridge's gateway: a slung bead reaches a polecat as a real prompt, kilo's real `bash`
//! tool commits in the polecat's worktree inside the container (of a rig mounted read-only
//! from the host), the reconciler puts the bead in review with a merge request, the
//! polecat exits after its (shortened) idle window, and a town restarted with a registered
//! polecat resumes it in its worktree, with its commit, in a new container. The Docker
//! twin of `gastown-actors/tests/work_local.rs`.
//!
//! Skipped (with a line) when no engine answers or kilo is not installed, unless
//! `GASTOWN_REQUIRE_DOCKER=1` / `GASTOWN_REQUIRE_KILO=1`.
#![cfg(feature = "docker")]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gastown::actors::test_support::{git_rig, wait_for_bead};
use gastown::actors::{IdleExit, TurnOptions};
use gastown::core::store::{BeadKind, BeadRecord};
use gastown::core::{
    AgentId, AgentLayout, BeadId, BeadStatus, CommandSpec, ContainerRuntime, ProviderConfig,
    TownStore,
};
use gastown::docker::test_support::{bridge_gateway, engine, prefix, runtime, town, Cleanup, PATH};
use gastown::docker::DockerRuntime;
use gastown::{RigConfig, TownConfig, TownHandle, TownId, TownOptions};
use gastown_scripted_model::{Reply, ScriptedModelServer, MODEL, PROVIDER_ID};

/// One real kilo at a time across this file's tests.
static ONE_KILO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A bound on waits for real processes and containers (a failure guard, not a timing
/// assertion).
const GUARD: Duration = Duration::from_secs(240);

/// The polecat's scripted tool call: one file, one commit.
const COMMIT: &str =
    "printf 'hello\\n' > hello.txt && git add hello.txt && git commit -q -m 'add hello'";

fn options(
    town: &TownId,
    rig: &RigConfig,
    model: &ScriptedModelServer,
    state: &Path,
    rt: &Arc<DockerRuntime>,
    idle: IdleExit,
) -> TownOptions {
    let config = TownConfig::new(town.clone())
        .with_mayor_model(MODEL)
        .with_mayor_small_model(MODEL)
        .with_provider(PROVIDER_ID, ProviderConfig::new(model.provider_entry()))
        .with_rig(rig.clone());
    let runtime: Arc<dyn ContainerRuntime> = rt.clone();
    TownOptions::new(config, state, runtime)
        .with_turn_options(TurnOptions::default().with_timeout(Duration::from_secs(180)))
        .with_idle_exit(idle)
}

async fn wait_for_status(town: &TownHandle, bead: &BeadId, wanted: BeadStatus) -> BeadRecord {
    wait_for_bead(town, bead, wanted, GUARD).await
}

/// `git ARGS` in the polecat's worktree inside the container.
async fn git_in(rt: &DockerRuntime, town: &TownId, polecat: &AgentId, args: &[&str]) -> String {
    let worktree = AgentLayout::new(polecat.clone())
        .workspace()
        .join("app")
        .unwrap();
    let cmd = CommandSpec::new("git")
        .args(["-c", "safe.directory=*"])
        .args(args.iter().copied())
        .env("PATH", PATH)
        .cwd(worktree);
    let out = rt.exec(town, &cmd).await.unwrap();
    assert!(out.success(), "git {args:?}: {out:?}");
    out.stdout_str().trim().to_owned()
}

#[tokio::test]
async fn a_slung_bead_is_committed_in_the_container_reviewed_and_resumed_after_a_restart() {
    let _one = ONE_KILO.lock().await;
    let prefix = prefix("dwork");
    let Some(docker) = engine().await else { return };
    let Some(rt) = runtime(&prefix).await.map(Arc::new) else {
        return;
    };
    let _cleanup = Cleanup::prefix(&prefix);
    let model = ScriptedModelServer::start(SocketAddr::new(bridge_gateway(&docker).await, 0))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rig = git_rig(dir.path(), "app");
    let state = dir.path().join("state");
    let town_id = town("work");
    // Long windows first: the polecat is still registered when the town restarts.
    let town = TownHandle::start(options(
        &town_id,
        &rig,
        &model,
        &state,
        &rt,
        IdleExit::default(),
    ))
    .await
    .unwrap();
    town.ensure_mayor().await.unwrap();
    model.push(Reply::bash(COMMIT));
    model.push(Reply::text("Committed hello.txt."));
    let bead = town
        .create_bead("add hello", "Add a hello.txt file.")
        .unwrap();
    let slung = town.sling(&bead.id, &rig.id).await.unwrap();
    let done = wait_for_status(&town, &bead.id, BeadStatus::InReview).await;

    let head = git_in(&rt, &town_id, &slung.polecat, &["rev-parse", "HEAD"]).await;
    assert_eq!(done.head.as_deref(), Some(head.as_str()));
    assert_eq!(
        git_in(&rt, &town_id, &slung.polecat, &["log", "-1", "--format=%s"]).await,
        "add hello"
    );
    assert!(town
        .beads()
        .unwrap()
        .iter()
        .any(|b| b.kind == BeadKind::MergeRequest && b.source_bead.as_ref() == Some(&bead.id)));
    let session = town
        .agent_info(&slung.polecat)
        .await
        .unwrap()
        .unwrap()
        .session_id;
    town.shutdown().await.unwrap();

    // A new container, short windows: the polecat comes back whole, then exits.
    let idle = IdleExit::new(Duration::from_secs(5), Duration::from_secs(5));
    let town = TownHandle::start(options(&town_id, &rig, &model, &state, &rt, idle))
        .await
        .unwrap();
    town.warm_up().await.unwrap();
    let deadline = tokio::time::Instant::now() + GUARD;
    let info = loop {
        if let Some(info) = town.agent_info(&slung.polecat).await.unwrap() {
            if info.pid.is_some() {
                break info;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the polecat was not resumed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(info.session_id, session, "the same session");
    assert_eq!(
        git_in(&rt, &town_id, &slung.polecat, &["rev-parse", "HEAD"]).await,
        head,
        "the commit came back from the branch's bundle"
    );
    let store = TownStore::open(&state.join("town.db")).unwrap();
    while store
        .registry()
        .unwrap()
        .iter()
        .any(|e| e.agent == slung.polecat)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the polecat never exited"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    town.shutdown().await.unwrap();
    model.shutdown().await;
}
