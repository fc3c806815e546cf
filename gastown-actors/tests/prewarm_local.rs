//! Boot hydration and configuration changes on the real `kilo serve` and the local runtime.
//! Mandatory in CI (`GASTOWN_REQUIRE_KILO=1`); skipped with a message where kilo is absent.

mod common;

use common::*;
use gastown_actors::{AgentSpec, MayorBoot};
use gastown_core::{AgentId, EnsureDecision, Role, StartupPhase, TownStore};

fn environ_var(pid: u32, key: &str) -> String {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    env.split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test]
async fn warm_up_prewarms_the_mayor_and_a_concurrent_ensure_joins_it() {
    let Some(kilo) = kilo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let runtime = RecordingRuntime::new(local_runtime(&dir.path().join("c"), &kilo));
    let town = start_town(
        town_config("prewarm"),
        &dir.path().join("s"),
        runtime.clone(),
    )
    .await;
    let (boot, ready) = tokio::join!(town.warm_up(), async {
        // Arrives while the prewarm is under way.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        town.ensure_mayor().await
    });
    let boot = boot.expect("warm up");
    let ready = ready.expect("ensure joins the prewarm");
    assert!(boot.container_created);
    assert_eq!(
        boot.mayor,
        MayorBoot::Prewarmed,
        "an unregistered mayor is prewarmed"
    );
    assert_eq!(runtime.spawns_of("kilo"), 1, "one SDK server, not two");
    assert!(
        ready.report.prewarmed,
        "the request joined a prewarm under way"
    );
    // Once prewarmed, ensure_mayor only probes.
    let again = town.ensure_mayor().await.unwrap();
    assert!(matches!(
        again.report.decision,
        EnsureDecision::ShortCircuitWarm | EnsureDecision::ShortCircuitIdle
    ));
    assert!(again.report.prewarmed);
    assert_eq!(again.session_id, ready.session_id);
    assert_eq!(runtime.spawns_of("kilo"), 1);
    town.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_model_change_keeps_the_server_and_pushes_the_model_onto_the_same_session() {
    let Some(kilo) = kilo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let runtime = RecordingRuntime::new(local_runtime(&dir.path().join("c"), &kilo));
    let town = start_town(town_config("model"), &dir.path().join("s"), runtime.clone()).await;
    let first = town.ensure_mayor().await.unwrap();
    let hash_before = town.mayor_info().await.unwrap().unwrap().config_hash;

    let err = town.update_mayor_model("not a model", None).await;
    assert!(err.is_err(), "a malformed model is rejected");
    let still = town.ensure_mayor().await.unwrap();
    assert!(
        !still.report.decision.starts_agent(),
        "nothing changed after a rejected model"
    );
    assert_eq!(runtime.spawns_of("kilo"), 1);

    town.update_mayor_model("anthropic/claude-opus-4.1", None)
        .await
        .unwrap();
    let pid_before = town.mayor_info().await.unwrap().unwrap().pid;
    let second = town.ensure_mayor().await.unwrap();
    assert_eq!(second.report.decision, EnsureDecision::FreshDispatch);
    assert!(
        second.report.prewarmed,
        "only the models differ: the running server is kept"
    );
    assert!(second.report.phase_ms(StartupPhase::Sdk).is_some());
    assert_eq!(second.session_id, first.session_id, "same session resumed");
    assert_eq!(
        runtime.spawns_of("kilo"),
        1,
        "no restart for a model change"
    );
    let info = town.mayor_info().await.unwrap().unwrap();
    assert_ne!(
        info.config_hash, hash_before,
        "the new configuration is recorded"
    );
    assert_eq!(info.pid, pid_before, "the same server");

    // The new model was recorded on the session with a noReply message.
    let pid = info.pid.unwrap();
    let password = environ_var(pid, "KILO_SERVER_PASSWORD");
    let messages = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!(
            "{}/session/{}/message",
            second.endpoint, second.session_id
        ))
        .basic_auth("kilo", Some(password))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        messages.contains("model changed to anthropic/claude-opus-4.1"),
        "{messages}"
    );
    town.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_registered_mayor_is_resumed_first_and_workers_in_the_background() {
    let Some(kilo) = kilo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s");
    let runtime = RecordingRuntime::new(local_runtime(&dir.path().join("c"), &kilo));
    let town = start_town(town_config("registry"), &state, runtime.clone()).await;
    let first = town.ensure_mayor().await.unwrap();
    let polecat = AgentSpec::worker(
        AgentId::new("polecat-1").unwrap(),
        Role::Polecat,
        "anthropic/claude-sonnet-4.6",
        "anthropic/claude-haiku-4.5",
    );
    town.start_agent(polecat).await.expect("polecat starts");
    town.shutdown().await.unwrap();
    let store = TownStore::open(&state.join("town.db")).unwrap();
    assert_eq!(
        store.registry().unwrap().len(),
        2,
        "mayor and polecat registered"
    );
    drop(store);

    let town = start_town(town_config("registry"), &state, runtime.clone()).await;
    let boot = town.warm_up().await.unwrap();
    assert_eq!(boot.mayor, MayorBoot::Resumed);
    assert_eq!(boot.non_mayor_agents, 1);
    let ready = town.ensure_mayor().await.unwrap();
    assert_eq!(ready.session_id, first.session_id);
    // The polecat comes back in the background.
    let polecat = AgentId::new("polecat-1").unwrap();
    let mut resumed = false;
    for _ in 0..400 {
        if let Some(info) = town.agent_info(&polecat).await.unwrap() {
            if info.session_id.is_some() {
                resumed = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(resumed, "the registered polecat was resumed");
    assert_eq!(runtime.spawns_of("kilo"), 4);
    town.shutdown().await.unwrap();
}
