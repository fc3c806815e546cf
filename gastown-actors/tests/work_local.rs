//! A bead's whole trip on the real kilo, local runtime, with the scripted model server (a
//! test double of an OpenAI-compatible provider, so no network is needed): a slung bead
//! reaches a polecat as a real prompt, the polecat's turn runs kilo's real `bash` tool in
//! its worktree and commits, the reconciler puts the bead in review with a merge request,
//! the polecat exits after its (shortened) idle window, and a town restarted with a
//! registered polecat resumes it in its worktree, on its branch with its commit, with its
//! own model.
//!
//! Skips when kilo is missing unless `GASTOWN_REQUIRE_KILO=1`. One kilo test at a time in
//! this file (each boot is ~2.5 s of CPU and ~520 MB).

mod common;

use std::path::Path;
use std::time::Duration;

use gastown_actors::{IdleExit, TownHandle, TownOptions, TurnOptions};
use gastown_core::store::BeadKind;
use gastown_core::{
    AgentLayout, BeadId, BeadStatus, ProviderConfig, RigConfig, TownConfig, TownId, TownStore,
};
use gastown_scripted_model::{Reply, ScriptedModelServer, MODEL, PROVIDER_ID};

use common::{git_rig, kilo, local_runtime};

static ONE_KILO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A bound on waits for real processes (a failure guard, not a timing assertion).
const GUARD: Duration = Duration::from_secs(180);

/// The polecat's scripted tool call: one file, one commit.
const COMMIT: &str =
    "printf 'hello\\n' > hello.txt && git add hello.txt && git commit -q -m 'add hello'";

fn config(rig: RigConfig, model: &ScriptedModelServer) -> TownConfig {
    TownConfig::new(TownId::new("work").unwrap())
        .with_mayor_model(MODEL)
        .with_mayor_small_model(MODEL)
        .with_provider(PROVIDER_ID, ProviderConfig::new(model.provider_entry()))
        .with_rig(rig)
}

fn options(
    config: TownConfig,
    state: &Path,
    rt: std::sync::Arc<gastown_runtime_local::LocalRuntime>,
    idle: IdleExit,
) -> TownOptions {
    TownOptions::new(config, state, rt)
        .with_turn_options(TurnOptions::default().with_timeout(Duration::from_secs(120)))
        .with_idle_exit(idle)
}

async fn wait_for_status(
    town: &TownHandle,
    bead: &BeadId,
    wanted: BeadStatus,
) -> gastown_core::store::BeadRecord {
    gastown_actors::test_support::wait_for_bead(town, bead, wanted, GUARD).await
}

/// The polecat's worktree of rig `app`, on the host.
fn worktree(
    rt: &gastown_runtime_local::LocalRuntime,
    polecat: &gastown_core::AgentId,
) -> std::path::PathBuf {
    rt.host_path(
        &TownId::new("work").unwrap(),
        &AgentLayout::new(polecat.clone())
            .workspace()
            .join("app")
            .unwrap(),
    )
}

/// Starts the town on the local runtime.
async fn start(
    rig: &RigConfig,
    model: &ScriptedModelServer,
    state: &Path,
    rt: &std::sync::Arc<gastown_runtime_local::LocalRuntime>,
    idle: IdleExit,
) -> TownHandle {
    TownHandle::start(options(config(rig.clone(), model), state, rt.clone(), idle))
        .await
        .unwrap()
}

fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {out:?}",
        dir.display()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_slung_bead_is_committed_by_a_real_tool_call_reviewed_and_its_polecat_exits() {
    let Some(bin) = kilo() else { return };
    let _one = ONE_KILO.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start_local().await.unwrap();
    let rig = git_rig(dir.path(), "app");
    let state = dir.path().join("state");
    let rt = local_runtime(&dir.path().join("c"), &bin);
    let idle = IdleExit::new(Duration::from_secs(3), Duration::from_secs(3));
    let town = start(&rig, &model, &state, &rt, idle).await;
    town.ensure_mayor().await.unwrap();

    model.push(Reply::bash(COMMIT));
    model.push(Reply::text("Committed hello.txt."));
    let bead = town
        .create_bead("add hello", "Add a hello.txt file.")
        .unwrap();
    let slung = town.sling(&bead.id, &rig.id).await.unwrap();
    let done = wait_for_status(&town, &bead.id, BeadStatus::InReview).await;

    // The commit is real: in the polecat's worktree, on its branch, made by kilo's tool.
    let tree = worktree(&rt, &slung.polecat);
    assert_eq!(
        git_out(&tree, &["rev-parse", "--abbrev-ref", "HEAD"]),
        slung.branch
    );
    assert_eq!(git_out(&tree, &["log", "-1", "--format=%s"]), "add hello");
    assert_eq!(
        std::fs::read_to_string(tree.join("hello.txt")).unwrap(),
        "hello\n"
    );
    let head = git_out(&tree, &["rev-parse", "HEAD"]);
    assert_eq!(done.head.as_deref(), Some(head.as_str()));
    assert_eq!(done.branch.as_deref(), Some(slung.branch.as_str()));
    // The bash tool result went back to the model: two requests for the polecat's turn.
    let tool_results = model
        .requests()
        .iter()
        .filter(|r| {
            serde_json::to_string(&r.messages)
                .unwrap()
                .contains("\"tool\"")
        })
        .count();
    assert!(tool_results >= 1, "the tool's output reached the model");
    let mr = town
        .beads()
        .unwrap()
        .into_iter()
        .find(|b| b.kind == BeadKind::MergeRequest && b.source_bead.as_ref() == Some(&bead.id))
        .expect("a merge request bead");
    assert_eq!(mr.branch.as_deref(), Some(slung.branch.as_str()));
    assert_eq!(mr.rig.as_ref(), Some(&rig.id));
    // Kept out of the container too: the branch's bundle in the state directory.
    assert!(state.join("branches").read_dir().unwrap().count() >= 1);

    // After its idle window the polecat exits: server stopped, unregistered, idle.
    let store = TownStore::open(&state.join("town.db")).unwrap();
    let deadline = tokio::time::Instant::now() + GUARD;
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
    assert!(town
        .agent_info(&slung.polecat)
        .await
        .unwrap()
        .is_none_or(|i| i.pid.is_none()));
    assert_eq!(
        store.agent(&slung.polecat).unwrap().unwrap().status,
        gastown_core::AgentStatus::Idle
    );
    town.shutdown().await.unwrap();
    model.shutdown().await;
}

#[tokio::test]
async fn a_restarted_town_resumes_its_polecat_in_its_worktree_with_its_commit_and_model() {
    let Some(bin) = kilo() else { return };
    let _one = ONE_KILO.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start_local().await.unwrap();
    let rig = git_rig(dir.path(), "app");
    let state = dir.path().join("state");
    let rt = local_runtime(&dir.path().join("c"), &bin);
    // Long windows: the polecat is still registered when the town shuts down.
    let idle = IdleExit::default();
    let town = start(&rig, &model, &state, &rt, idle).await;
    model.push(Reply::bash(COMMIT));
    model.push(Reply::text("Committed hello.txt."));
    let bead = town
        .create_bead("add hello", "Add a hello.txt file.")
        .unwrap();
    let slung = town.sling(&bead.id, &rig.id).await.unwrap();
    let done = wait_for_status(&town, &bead.id, BeadStatus::InReview).await;
    let session = town
        .agent_info(&slung.polecat)
        .await
        .unwrap()
        .unwrap()
        .session_id;
    town.shutdown().await.unwrap();

    // A new container: boot hydration resumes the registered polecat whole.
    let town = start(&rig, &model, &state, &rt, idle).await;
    town.warm_up().await.unwrap();
    let deadline = tokio::time::Instant::now() + GUARD;
    let info = loop {
        match town.agent_info(&slung.polecat).await.unwrap() {
            Some(info) if info.pid.is_some() => break info,
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the polecat was not resumed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(info.session_id, session, "the same session");
    let entry = TownStore::open(&state.join("town.db"))
        .unwrap()
        .registry_entry(&slung.polecat)
        .unwrap()
        .unwrap();
    assert_eq!(entry.model.as_deref(), Some(MODEL));
    assert_eq!(entry.branch.as_deref(), Some(slung.branch.as_str()));
    let tree = worktree(&rt, &slung.polecat);
    assert_eq!(
        git_out(&tree, &["rev-parse", "--abbrev-ref", "HEAD"]),
        slung.branch
    );
    assert_eq!(
        Some(git_out(&tree, &["rev-parse", "HEAD"])),
        done.head,
        "the commit came back from the branch's bundle"
    );
    town.shutdown().await.unwrap();
    model.shutdown().await;
}
