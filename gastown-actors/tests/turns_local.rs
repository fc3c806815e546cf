//! Real turns on the real kilo, local runtime, with the scripted model server (a test
//! double of an OpenAI-compatible provider, so no network is needed): the reply streams
//! through `events()` and the turn handle, the mayor goes `working` → `waiting`, the
//! turn-boundary snapshot holds the reply, an idle town stops and a prompt wakes it with
//! its history, a host-side kill after a turn loses nothing, and a failing provider is a
//! typed error that leaves the mayor `waiting`.
//!
//! Skips when kilo is missing unless `GASTOWN_REQUIRE_KILO=1`. One kilo at a time: the
//! tests take a shared lock (each boot is ~2.5 s of CPU and ~520 MB).

mod common;

use std::time::Duration;

use gastown_actors::{
    Error, StopReason, TownEvent, TownEventRecord, TownHandle, TownOptions, TurnOptions,
};
use gastown_core::{AgentId, AgentStatus, ContainerRuntime, ProviderConfig, TownId};
use gastown_scripted_model::{Reply, ScriptedModelServer, DEFAULT_TEXT, MODEL, PROVIDER_ID};

use common::{kilo, local_runtime};
use gastown_actors::test_support::{mayor_status, reply_of, sqlite_contains, wait_for_event};

/// One real kilo at a time across this file's tests.
static ONE_KILO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A bound on waits for real processes (a failure guard, not a timing assertion).
const GUARD: Duration = Duration::from_secs(120);

fn config(town: &str, model: &ScriptedModelServer) -> gastown_core::TownConfig {
    gastown_core::TownConfig::new(TownId::new(town).unwrap())
        .with_mayor_model(MODEL)
        .with_mayor_small_model(MODEL)
        .with_provider(PROVIDER_ID, ProviderConfig::new(model.provider_entry()))
}

/// Waits for the first event matching `wanted`.
async fn wait_for(
    events: &mut futures::stream::BoxStream<'static, TownEventRecord>,
    wanted: impl Fn(&TownEventRecord) -> bool,
) -> TownEventRecord {
    wait_for_event(events, GUARD, wanted).await
}

#[tokio::test]
async fn a_prompt_streams_its_reply_to_events_and_the_handle_and_the_snapshot_holds_it() {
    let Some(bin) = kilo() else { return };
    let _one = ONE_KILO.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start_local().await.unwrap();
    let state = dir.path().join("state");
    let rt = local_runtime(&dir.path().join("c"), &bin);
    let town = TownHandle::start(TownOptions::new(config("turns", &model), &state, rt))
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

    // The same turn, as every subscriber saw it: working, the text, the message, waiting.
    let mayor = Some(AgentId::mayor());
    let working = wait_for(&mut events, |r| {
        r.agent == mayor
            && r.event
                == TownEvent::AgentStatusChanged {
                    status: AgentStatus::Working,
                }
    })
    .await;
    let completed = wait_for(
        &mut events,
        |r| matches!(&r.event, TownEvent::MessageCompleted { text, .. } if text == DEFAULT_TEXT),
    )
    .await;
    let waiting = wait_for(&mut events, |r| {
        r.agent == mayor
            && r.event
                == TownEvent::AgentStatusChanged {
                    status: AgentStatus::Waiting,
                }
    })
    .await;
    assert!(working.cursor < completed.cursor && completed.cursor < waiting.cursor);
    assert_eq!(mayor_status(&state), AgentStatus::Waiting);

    // The turn-boundary snapshot, taken while kilo runs, holds the reply.
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
    let second = reply_of(&town, "again", GUARD).await;
    assert_eq!(second.text, "Second answer.");
    assert_eq!(second.session_id, reply.session_id);
    town.shutdown().await.unwrap();
    assert_eq!(
        gastown_actors::bench_support::live_event_watchers(),
        0,
        "no SDK event watcher outlives the town"
    );
}

#[tokio::test]
async fn an_idle_town_stops_and_a_prompt_wakes_it_with_its_history() {
    let Some(bin) = kilo() else { return };
    let _one = ONE_KILO.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start_local().await.unwrap();
    let state = dir.path().join("state");
    let rt = local_runtime(&dir.path().join("c"), &bin);
    // The stopped tier (no pause first); the paused tier has its own test below.
    let options = TownOptions::new(config("idle", &model), &state, rt.clone())
        .with_idle_stop_after(Duration::from_secs(3))
        .with_pause(false, Duration::ZERO);
    let town = TownHandle::start(options).await.unwrap();
    let mut events = town.events();
    let first = reply_of(&town, "remember me", GUARD).await;

    wait_for(&mut events, |r| {
        r.event
            == TownEvent::ContainerStopped {
                reason: StopReason::Idle,
            }
    })
    .await;
    let town_id = TownId::new("idle").unwrap();
    assert_eq!(
        rt.status(&town_id).await.unwrap(),
        gastown_core::ContainerStatus::Absent,
        "the idle container is gone"
    );

    model.set_default(Reply::text("Welcome back."));
    let woken = reply_of(&town, "are you there", GUARD).await;
    assert_eq!(woken.text, "Welcome back.");
    assert_eq!(woken.session_id, first.session_id, "the same session");
    let history = serde_json::to_string(&model.last_messages()).unwrap();
    assert!(
        history.contains(DEFAULT_TEXT) && history.contains("remember me"),
        "the woken session still holds the earlier turn: {history}"
    );
    town.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_town_is_paused_and_a_prompt_wakes_the_same_server_in_place() {
    let Some(bin) = kilo() else { return };
    let _one = ONE_KILO.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start_local().await.unwrap();
    let state = dir.path().join("state");
    let rt = local_runtime(&dir.path().join("c"), &bin);
    let options = TownOptions::new(config("pause", &model), &state, rt.clone())
        .with_idle_stop_after(Duration::from_secs(3))
        .with_pause(true, Duration::from_secs(3600));
    let town = TownHandle::start(options).await.unwrap();
    let mut events = town.events();
    let first = reply_of(&town, "remember me", GUARD).await;
    let pid = town.mayor_info().await.unwrap().unwrap().pid.unwrap();

    wait_for(&mut events, |r| r.event == TownEvent::ContainerPaused).await;
    let town_id = TownId::new("pause").unwrap();
    assert_eq!(
        rt.status(&town_id).await.unwrap(),
        gastown_core::ContainerStatus::Paused
    );
    // Frozen: the kernel reports the server stopped (state T). SIGSTOP is delivered
    // asynchronously, so a loaded host may show it running for a moment after the pause.
    let state_of = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let c = stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim()
            .chars()
            .next()
            .unwrap();
        (c, stat)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (mut state_char, mut stat) = state_of();
    while state_char != 'T' && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        (state_char, stat) = state_of();
    }
    assert_eq!(state_char, 'T', "the SDK server is frozen: {stat}");

    let woken = town.ensure_mayor().await.unwrap();
    assert_eq!(
        woken.report.decision,
        gastown_core::EnsureDecision::ResumePaused
    );
    assert_eq!(woken.session_id, first.session_id);
    assert_eq!(town.mayor_info().await.unwrap().unwrap().pid, Some(pid));
    model.set_default(Reply::text("Welcome back."));
    let again = reply_of(&town, "are you there", GUARD).await;
    assert_eq!(again.text, "Welcome back.");
    town.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_host_side_kill_after_a_turn_loses_nothing_even_without_the_container() {
    let Some(bin) = kilo() else { return };
    let _one = ONE_KILO.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start_local().await.unwrap();
    let state = dir.path().join("state");
    let root = dir.path().join("c");
    let town = TownHandle::start(TownOptions::new(
        config("crash", &model),
        &state,
        local_runtime(&root, &bin),
    ))
    .await
    .unwrap();
    let mut events = town.events();
    let turn = town.prompt_mayor("keep this").await.unwrap();
    let first = tokio::time::timeout(GUARD, turn.reply())
        .await
        .unwrap()
        .unwrap();
    wait_for(&mut events, |r| {
        matches!(r.event, TownEvent::SnapshotTaken { .. })
    })
    .await;

    // The host side dies without a drain, and the container is lost with it.
    town.detach().await;
    std::fs::remove_dir_all(&root).unwrap();

    let town = TownHandle::start(TownOptions::new(
        config("crash", &model),
        &state,
        local_runtime(&root, &bin),
    ))
    .await
    .unwrap();
    model.set_default(Reply::text("Still here."));
    let again = reply_of(&town, "what did I say", GUARD).await;
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
}

#[tokio::test]
async fn a_failing_provider_is_a_typed_error_and_the_mayor_is_left_waiting() {
    let Some(bin) = kilo() else { return };
    let _one = ONE_KILO.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start_local().await.unwrap();
    let state = dir.path().join("state");
    let rt = local_runtime(&dir.path().join("c"), &bin);
    let options = TownOptions::new(config("fail", &model), &state, rt).with_turn_options(
        TurnOptions::default()
            .with_max_retries(1)
            .with_timeout(Duration::from_secs(8)),
    );
    let town = TownHandle::start(options).await.unwrap();
    town.ensure_mayor().await.unwrap();

    for (what, reply) in [
        (
            "HTTP 500 (kilo retries it without end)",
            Reply::status(500, "scripted outage"),
        ),
        ("HTTP 400", Reply::status(400, "scripted refusal")),
        ("a garbage body", Reply::garbage()),
        ("a model that hangs", Reply::hang()),
    ] {
        model.set_default(reply);
        let turn = town.prompt_mayor("hi").await.unwrap();
        let err = tokio::time::timeout(GUARD, turn.reply())
            .await
            .unwrap_or_else(|_| panic!("{what}: the turn hung"))
            .expect_err(what);
        let Error::TurnFailed { agent, .. } = &err else {
            panic!("{what}: expected TurnFailed, got {err:?}");
        };
        assert_eq!(agent, &AgentId::mayor());
        assert_eq!(mayor_status(&state), AgentStatus::Waiting, "{what}");
    }

    // Nothing was lost: the next turn works in the same session.
    model.set_default(Reply::text("Recovered."));
    let ok = reply_of(&town, "hi", GUARD).await;
    assert_eq!(ok.text, "Recovered.");
    town.shutdown().await.unwrap();
}
