//! The mayor on the real `kilo serve` through the actor tree and the local runtime.
//! Mandatory in CI (`GASTOWN_REQUIRE_KILO=1`); skipped with a message where kilo is absent.

mod common;

use std::sync::Arc;

use common::*;
use gastown_actors::BrowseState;
use gastown_core::snapshot::SnapshotStore;
use gastown_core::{
    AgentId, AgentStatus, ContainerRuntime, EnsureDecision, StartupPhase, TownStore,
};

#[tokio::test]
async fn cold_start_then_restart_resumes_the_same_session_from_the_snapshot() {
    let Some(kilo) = kilo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rig = git_rig(dir.path(), "rig-a");
    let state = dir.path().join("state");
    let runtime = local_runtime(&dir.path().join("containers"), &kilo);
    let config = town_config("resume").with_rig(rig);

    let town = start_town(config.clone(), &state, runtime.clone()).await;
    let first = town.ensure_mayor().await.expect("cold start");
    assert_eq!(first.report.decision, EnsureDecision::FreshDispatch);
    assert!(!first.report.prewarmed);
    let phases: Vec<StartupPhase> = first.report.phases.iter().map(|t| t.phase).collect();
    assert_eq!(
        phases,
        StartupPhase::ALL.to_vec(),
        "every phase ran, in order"
    );
    assert!(first.session_id.starts_with("ses_"), "{}", first.session_id);
    // Browse worktrees are set up in the background, after the mayor is ready; its status
    // says when code browsing is still warming.
    let town_id = config.town.clone();
    let mut browse = town.mayor_info().await.unwrap().unwrap().browse;
    assert!(
        browse.is_some(),
        "browse setup started once the mayor was ready"
    );
    for _ in 0..600 {
        if browse == Some(BrowseState::Ready) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        browse = town.mayor_info().await.unwrap().unwrap().browse;
    }
    assert_eq!(browse, Some(BrowseState::Ready));
    let agents_md = runtime
        .get_file(
            &town_id,
            &gastown_core::ContainerPath::new("/workspace/mayor/AGENTS.md").unwrap(),
        )
        .await
        .unwrap();
    let agents_md = String::from_utf8_lossy(&agents_md).into_owned();
    assert!(agents_md.contains("`rig-a`"), "{agents_md}");
    assert!(
        agents_md.contains("read-only checkout at `/workspace/mayor/browse/rig-a`"),
        "{agents_md}"
    );
    runtime
        .get_file(
            &town_id,
            &gastown_core::ContainerPath::new("/workspace/mayor/browse/rig-a/README.md").unwrap(),
        )
        .await
        .expect("browse worktree checked out");
    town.send_mayor_message("remember me")
        .await
        .expect("noReply message");
    town.shutdown().await.expect("shutdown drains");

    // The container is gone; only the snapshot holds the session now.
    assert_eq!(
        runtime.status(&town_id).await.unwrap(),
        gastown_core::ContainerStatus::Absent
    );
    let snapshots = SnapshotStore::new(state.join("snapshots"));
    assert!(snapshots.path(&AgentId::mayor()).exists());
    let store = TownStore::open(&state.join("town.db")).unwrap();
    let rec = store.agent(&AgentId::mayor()).unwrap().unwrap();
    assert_eq!(rec.status, AgentStatus::Idle);
    assert_eq!(rec.session_id.as_deref(), Some(first.session_id.as_str()));
    drop(store);

    let town = start_town(config, &state, runtime.clone()).await;
    let second = town.ensure_mayor().await.expect("resume");
    assert_eq!(second.session_id, first.session_id, "same session resumed");
    assert_eq!(second.report.decision, EnsureDecision::FreshDispatch);
    assert_eq!(second.report.phases.len(), 5);
    town.shutdown().await.unwrap();
}

#[tokio::test]
async fn ten_concurrent_ensure_mayor_calls_spawn_one_sdk_server() {
    let Some(kilo) = kilo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let runtime = RecordingRuntime::new(local_runtime(&dir.path().join("c"), &kilo));
    let town = start_town(
        town_config("concurrent"),
        &dir.path().join("s"),
        runtime.clone(),
    )
    .await;
    let calls = (0..10).map(|_| {
        let town = town.clone();
        tokio::spawn(async move { town.ensure_mayor().await })
    });
    let results = futures::future::join_all(calls).await;
    let sessions: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap().expect("ready").session_id)
        .collect();
    assert!(sessions.iter().all(|s| s == &sessions[0]), "{sessions:?}");
    assert_eq!(runtime.spawns_of("kilo"), 1, "exactly one SDK server");
    // A later call finds it alive and short-circuits.
    let again = town.ensure_mayor().await.unwrap();
    assert_eq!(again.report.decision, EnsureDecision::ShortCircuitWarm);
    assert!(again.report.phases.is_empty());
    assert_eq!(runtime.spawns_of("kilo"), 1);
    town.shutdown().await.unwrap();
}

#[tokio::test]
async fn kill_9_of_the_sdk_server_is_redispatched_to_the_same_session() {
    let Some(kilo) = kilo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let runtime = RecordingRuntime::new(local_runtime(&dir.path().join("c"), &kilo));
    let town = start_town(
        town_config("killed"),
        &dir.path().join("s"),
        runtime.clone(),
    )
    .await;
    let first = town.ensure_mayor().await.unwrap();
    let pid = town.mayor_info().await.unwrap().unwrap().pid.expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let second = town.ensure_mayor().await.expect("redispatch");
    assert_eq!(second.report.decision, EnsureDecision::SdkDeadRedispatch);
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(runtime.spawns_of("kilo"), 2);
    let new_pid = town.mayor_info().await.unwrap().unwrap().pid.unwrap();
    assert_ne!(new_pid, pid);
    town.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_sdk_server_rejects_requests_without_its_password() {
    let Some(kilo) = kilo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let runtime = local_runtime(&dir.path().join("c"), &kilo);
    let town = start_town(town_config("auth"), &dir.path().join("s"), runtime).await;
    let ready = town.ensure_mayor().await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for path in ["/session", "/global/health"] {
        let anonymous = http
            .get(format!("{}{path}", ready.endpoint))
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.status().as_u16(),
            401,
            "{path} without a password"
        );
        let wrong = http
            .get(format!("{}{path}", ready.endpoint))
            .basic_auth("kilo", Some("not-the-password"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401, "{path} with a wrong password");
    }
    town.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_agents_in_two_towns_get_different_passwords_and_data_dirs() {
    let Some(kilo) = kilo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let runtime: Arc<dyn ContainerRuntime> = local_runtime(&dir.path().join("c"), &kilo);
    let a = start_town(
        town_config("town-a"),
        &dir.path().join("a"),
        runtime.clone(),
    )
    .await;
    let b = start_town(
        town_config("town-b"),
        &dir.path().join("b"),
        runtime.clone(),
    )
    .await;
    let (ra, rb) = tokio::join!(a.ensure_mayor(), b.ensure_mayor());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_ne!(ra.endpoint, rb.endpoint);
    let pid_a = a.mayor_info().await.unwrap().unwrap().pid.unwrap();
    let pid_b = b.mayor_info().await.unwrap().unwrap().pid.unwrap();
    let environ = |pid: u32| std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let (env_a, env_b) = (environ(pid_a), environ(pid_b));
    let var = |env: &[u8], key: &str| -> String {
        env.split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_owned))
            .unwrap_or_default()
    };
    let pw_a = var(&env_a, "KILO_SERVER_PASSWORD");
    let pw_b = var(&env_b, "KILO_SERVER_PASSWORD");
    assert_eq!(pw_a.len(), 64);
    assert_ne!(pw_a, pw_b);
    assert!(
        !String::from_utf8_lossy(&env_b).contains(&pw_a),
        "b carries a's password"
    );
    assert_ne!(var(&env_a, "XDG_DATA_HOME"), var(&env_b, "XDG_DATA_HOME"));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
