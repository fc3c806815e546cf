//! Real turns on the real kilo in gastown's agent image on a real Docker Engine, with the
//! scripted model server (a test double of an OpenAI-compatible provider) listening on the
//! docker bridge's gateway so the SDK server inside the container reaches it: the reply
//! streams through `events()` and the turn handle, the mayor goes `working` → `waiting`, the
//! turn-boundary snapshot holds the reply, an idle town's container is removed and a
//! prompt wakes it with its history, a host-side kill after a turn followed by the loss of
//! the container and its agents volume loses nothing, and a provider answering HTTP 400 is
//! a typed error that leaves the mayor `waiting`. The Docker twin of
//! `gastown-actors/tests/turns_local.rs`.
//!
//! Skipped (with a line) when no engine answers or kilo is not installed, unless
//! `GASTOWN_REQUIRE_DOCKER=1` / `GASTOWN_REQUIRE_KILO=1`. One kilo at a time: the tests
//! take a shared lock. Each test uses its own container name prefix and removes everything
//! carrying it at the end, also when it fails.
#![cfg(feature = "docker")]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::Docker;
use futures::stream::BoxStream;
use gastown::actors::test_support::{mayor_status, sqlite_contains, wait_for_event};
use gastown::actors::{Error, StopReason, TownEvent, TownEventRecord, TurnOptions};
use gastown::core::{
    AgentId, AgentStatus, ContainerRuntime, ContainerStatus, EnsureDecision, ProviderConfig,
};
use gastown::docker::test_support::{
    bridge_gateway, engine, labelled, labelled_volumes, prefix, runtime, town, Cleanup,
};
use gastown::docker::DockerRuntime;
use gastown::{TownConfig, TownHandle, TownId, TownOptions};
use gastown_scripted_model::{Reply, ScriptedModelServer, DEFAULT_TEXT, MODEL, PROVIDER_ID};

/// One real kilo at a time across this file's tests.
static ONE_KILO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A bound on waits for real processes and containers (a failure guard, not a timing
/// assertion).
const GUARD: Duration = Duration::from_secs(180);

/// The engine, a runtime with `prefix` and a scripted model server on the bridge gateway;
/// `None` when the engine or kilo is missing (and not required).
async fn setup(prefix: &str) -> Option<(Docker, Arc<DockerRuntime>, ScriptedModelServer)> {
    let docker = engine().await?;
    let rt = Arc::new(runtime(prefix).await?);
    let gateway = bridge_gateway(&docker).await;
    let model = ScriptedModelServer::start(SocketAddr::new(gateway, 0))
        .await
        .unwrap_or_else(|e| panic!("binding the scripted model server on {gateway}: {e}"));
    Some((docker, rt, model))
}

fn config(town: &TownId, model: &ScriptedModelServer) -> TownConfig {
    TownConfig::new(town.clone())
        .with_mayor_model(MODEL)
        .with_mayor_small_model(MODEL)
        .with_provider(PROVIDER_ID, ProviderConfig::new(model.provider_entry()))
}

fn options(
    town: &TownId,
    model: &ScriptedModelServer,
    state: &Path,
    rt: &Arc<DockerRuntime>,
) -> TownOptions {
    let runtime: Arc<dyn ContainerRuntime> = rt.clone();
    TownOptions::new(config(town, model), state, runtime)
}

/// Waits for the first event matching `wanted`.
async fn wait_for(
    events: &mut BoxStream<'static, TownEventRecord>,
    wanted: impl Fn(&TownEventRecord) -> bool,
) -> TownEventRecord {
    wait_for_event(events, GUARD, wanted).await
}

fn status_is(status: AgentStatus) -> impl Fn(&TownEventRecord) -> bool {
    move |r| {
        r.agent == Some(AgentId::mayor()) && r.event == TownEvent::AgentStatusChanged { status }
    }
}

/// The text of a turn's reply, bounded by [`GUARD`].
async fn reply_of(town: &TownHandle, prompt: &str) -> gastown::actors::MayorReply {
    gastown::actors::test_support::reply_of(town, prompt, GUARD).await
}

#[tokio::test]
async fn a_prompt_streams_its_reply_to_events_and_the_handle_and_the_snapshot_holds_it() {
    let _one = ONE_KILO.lock().await;
    let prefix = prefix("dturn");
    let Some((docker, rt, model)) = setup(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup::prefix(&prefix);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let town_id = town("turns");
    let town = TownHandle::start(options(&town_id, &model, &state, &rt))
        .await
        .unwrap();
    let mut events = town.events();
    let mut turn = town.prompt_mayor("hi").await.unwrap();
    let mut streamed = String::new();
    while let Some(delta) = tokio::time::timeout(GUARD, turn.next_delta())
        .await
        .unwrap()
    {
        streamed.push_str(&delta);
    }
    let reply = tokio::time::timeout(GUARD, turn.reply())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.text, DEFAULT_TEXT);
    assert_eq!(streamed, DEFAULT_TEXT, "the deltas add up to the reply");
    assert!(
        model.request_count() >= 1,
        "the turn reached the scripted server from inside the container"
    );

    // The same turn, as every subscriber saw it: working, the text, the message, waiting.
    let working = wait_for(&mut events, status_is(AgentStatus::Working)).await;
    let delta = wait_for(&mut events, |r| {
        matches!(&r.event, TownEvent::TextDelta { .. })
    })
    .await;
    let completed = wait_for(
        &mut events,
        |r| matches!(&r.event, TownEvent::MessageCompleted { text, .. } if text == DEFAULT_TEXT),
    )
    .await;
    let waiting = wait_for(&mut events, status_is(AgentStatus::Waiting)).await;
    assert!(working.cursor < delta.cursor && delta.cursor < completed.cursor);
    assert!(completed.cursor < waiting.cursor);
    assert_eq!(mayor_status(&state), AgentStatus::Waiting);

    // The turn-boundary snapshot, taken from the running container, holds the reply.
    wait_for(&mut events, |r| {
        matches!(r.event, TownEvent::SnapshotTaken { .. }) && r.cursor > waiting.cursor
    })
    .await;
    let snapshot = state.join("snapshots").join("mayor").join("kilo.db");
    assert!(
        sqlite_contains(&snapshot, DEFAULT_TEXT),
        "the snapshot holds the reply"
    );

    // The next turn runs in the same session.
    model.set_default(Reply::text("Second answer."));
    let second = reply_of(&town, "again").await;
    assert_eq!(second.text, "Second answer.");
    assert_eq!(second.session_id, reply.session_id);
    town.shutdown().await.unwrap();
    assert_eq!(rt.status(&town_id).await.unwrap(), ContainerStatus::Absent);
    assert!(labelled(&docker, &prefix, None).await.is_empty());
    assert_eq!(
        gastown::actors::bench_support::live_event_watchers(),
        0,
        "no SDK event watcher outlives the town"
    );
}

#[tokio::test]
async fn an_idle_town_stops_its_container_and_a_prompt_wakes_it_with_its_history() {
    let _one = ONE_KILO.lock().await;
    let prefix = prefix("didle");
    let Some((docker, rt, model)) = setup(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup::prefix(&prefix);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let town_id = town("idle");
    // The stopped tier (no pause first); the paused tier has its own test below.
    let options = options(&town_id, &model, &state, &rt)
        .with_idle_stop_after(Duration::from_secs(3))
        .with_pause(false, Duration::ZERO);
    let town = TownHandle::start(options).await.unwrap();
    let mut events = town.events();
    let first = reply_of(&town, "remember me").await;
    assert_eq!(first.text, DEFAULT_TEXT);

    wait_for(&mut events, |r| {
        r.event
            == TownEvent::ContainerStopped {
                reason: StopReason::Idle,
            }
    })
    .await;
    assert_eq!(
        rt.status(&town_id).await.unwrap(),
        ContainerStatus::Absent,
        "the idle container is gone"
    );
    assert!(
        labelled(&docker, &prefix, Some("idle")).await.is_empty(),
        "no container carries the town's labels"
    );

    model.set_default(Reply::text("Welcome back."));
    let woken = reply_of(&town, "are you there").await;
    assert_eq!(woken.text, "Welcome back.");
    assert_eq!(woken.session_id, first.session_id, "the same session");
    assert_eq!(rt.status(&town_id).await.unwrap(), ContainerStatus::Running);
    let history = serde_json::to_string(&model.last_messages()).unwrap();
    assert!(
        history.contains(DEFAULT_TEXT) && history.contains("remember me"),
        "the woken session still holds the earlier turn: {history}"
    );
    town.shutdown().await.unwrap();
    assert!(labelled(&docker, &prefix, None).await.is_empty());
}

#[tokio::test]
async fn an_idle_town_is_paused_and_a_prompt_wakes_the_same_server_in_place() {
    let _one = ONE_KILO.lock().await;
    let prefix = prefix("dpause");
    let Some((docker, rt, model)) = setup(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup::prefix(&prefix);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let town_id = town("pause");
    let options = options(&town_id, &model, &state, &rt)
        .with_idle_stop_after(Duration::from_secs(3))
        .with_pause(true, Duration::from_secs(3600));
    let town = TownHandle::start(options).await.unwrap();
    let mut events = town.events();
    let first = reply_of(&town, "remember me").await;
    let pid = town.mayor_info().await.unwrap().unwrap().pid;

    wait_for(&mut events, |r| r.event == TownEvent::ContainerPaused).await;
    assert_eq!(rt.status(&town_id).await.unwrap(), ContainerStatus::Paused);
    assert!(
        !labelled(&docker, &prefix, Some("pause")).await.is_empty(),
        "the paused container is kept"
    );

    let woken = town.ensure_mayor().await.unwrap();
    assert_eq!(woken.report.decision, EnsureDecision::ResumePaused);
    assert_eq!(woken.session_id, first.session_id);
    assert_eq!(
        town.mayor_info().await.unwrap().unwrap().pid,
        pid,
        "the same server, thawed"
    );
    model.set_default(Reply::text("Welcome back."));
    let again = reply_of(&town, "are you there").await;
    assert_eq!(again.text, "Welcome back.");
    assert_eq!(again.session_id, first.session_id);
    town.shutdown().await.unwrap();
    assert!(labelled(&docker, &prefix, None).await.is_empty());
}

#[tokio::test]
async fn a_host_side_kill_after_a_turn_loses_nothing_even_without_container_or_volume() {
    let _one = ONE_KILO.lock().await;
    let prefix = prefix("dcrash");
    let Some((docker, rt, model)) = setup(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup::prefix(&prefix);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let town_id = town("crash");
    let town = TownHandle::start(options(&town_id, &model, &state, &rt))
        .await
        .unwrap();
    let mut events = town.events();
    let first = reply_of(&town, "keep this").await;
    wait_for(&mut events, |r| {
        matches!(r.event, TownEvent::SnapshotTaken { .. })
    })
    .await;

    // The host side dies without a drain, and the container and its agents volume (where
    // kilo.db lives) are lost with it: only the turn-boundary snapshot remains.
    town.detach().await;
    let remove = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    docker
        .remove_container(&rt.container_name(&town_id), Some(remove))
        .await
        .unwrap();
    docker
        .remove_volume(
            &rt.volume_name(&town_id),
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await
        .unwrap();
    assert!(labelled(&docker, &prefix, None).await.is_empty());
    assert!(labelled_volumes(&docker, &prefix, None).await.is_empty());

    // A new host process: a new runtime on the same state dir.
    let rt = Arc::new(runtime(&prefix).await.expect("the engine is still there"));
    let town = TownHandle::start(options(&town_id, &model, &state, &rt))
        .await
        .unwrap();
    model.set_default(Reply::text("Still here."));
    let again = reply_of(&town, "what did I say").await;
    assert_eq!(again.text, "Still here.");
    assert_eq!(
        again.session_id, first.session_id,
        "restored from the snapshot"
    );
    let history = serde_json::to_string(&model.last_messages()).unwrap();
    assert!(
        history.contains("keep this") && history.contains(DEFAULT_TEXT),
        "the turn before the kill is in the restored session: {history}"
    );
    town.shutdown().await.unwrap();
    assert!(labelled(&docker, &prefix, None).await.is_empty());
}

#[tokio::test]
async fn a_provider_answering_400_is_a_typed_error_and_the_mayor_is_left_waiting() {
    let _one = ONE_KILO.lock().await;
    let prefix = prefix("dfail");
    let Some((docker, rt, model)) = setup(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup::prefix(&prefix);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let town_id = town("fail");
    let options = options(&town_id, &model, &state, &rt).with_turn_options(
        TurnOptions::default()
            .with_max_retries(1)
            .with_timeout(Duration::from_secs(20)),
    );
    let town = TownHandle::start(options).await.unwrap();
    town.ensure_mayor().await.unwrap();

    model.set_default(Reply::status(400, "scripted refusal"));
    let turn = town.prompt_mayor("hi").await.unwrap();
    let err = tokio::time::timeout(GUARD, turn.reply())
        .await
        .expect("the failing turn hung")
        .expect_err("HTTP 400 fails the turn");
    let Error::TurnFailed { agent, .. } = &err else {
        panic!("expected TurnFailed, got {err:?}");
    };
    assert_eq!(agent, &AgentId::mayor());
    assert_eq!(mayor_status(&state), AgentStatus::Waiting);
    assert!(
        model.request_count() >= 1,
        "the refusal came from the scripted server, not from an unreachable one"
    );

    // Nothing was lost: the next turn works in the same session.
    model.set_default(Reply::text("Recovered."));
    let ok = reply_of(&town, "hi").await;
    assert_eq!(ok.text, "Recovered.");
    town.shutdown().await.unwrap();
    assert!(labelled(&docker, &prefix, None).await.is_empty());
}
