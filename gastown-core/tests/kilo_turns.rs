//! Real LLM turns on the REAL `kilo serve` against the scripted model server (a test double
//! of an OpenAI-compatible provider, `gastown-scripted-model`): `prompt_async`, the
//! `GET /event` stream, `GET /session/status`, `GET /session/{id}/message`, and provider
//! failures (4xx, 5xx, a garbage body, a hang). Skipped with a line on stderr when kilo is absent, unless
//! `GASTOWN_REQUIRE_KILO=1`. Boots ONE kilo (its own test binary, so it never runs next to
//! the servers of `kilo_server.rs`).

mod real_kilo;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use gastown_core::command::Word;
use gastown_core::env::{build_agent_env_with_providers, AgentEnvInput};
use gastown_core::kilo;
use gastown_core::sdk::{last_assistant_text, SdkEvent, SessionStatus, TurnError};
use gastown_core::{AgentId, ModelRef, ProviderConfig, Role, SdkLauncher, Secret, TownId};
use gastown_scripted_model::{Reply, ScriptedModelServer, DEFAULT_TEXT, MODEL, PROVIDER_ID};
use real_kilo::Kilo;

/// A failure bound for one turn (a scripted turn takes well under a second once kilo is up;
/// the machine is shared and slow). Not a timing assertion.
const TURN_GUARD: Duration = Duration::from_secs(60);

type Events = BoxStream<'static, gastown_core::Result<SdkEvent>>;

/// What the event stream showed of one turn of one session.
#[derive(Debug, Default)]
struct Turn {
    statuses: Vec<SessionStatus>,
    deltas: String,
    part_texts: Vec<String>,
    assistant_completed: bool,
    errors: Vec<TurnError>,
    idle: bool,
}

/// Reads events of `session` from its next `busy` status (events before it are the tail of
/// the previous turn: kilo 7.7.9 repeats `idle`/`session.idle` after a failed turn) until
/// `done` says so, for at most [`TURN_GUARD`].
async fn follow(events: &mut Events, session: &str, done: impl Fn(&Turn) -> bool) -> Turn {
    let mut turn = Turn::default();
    let mut started = false;
    let read = async {
        while !(started && done(&turn)) {
            let event = events
                .next()
                .await
                .expect("the event stream ended during a turn")
                .expect("the event stream failed during a turn");
            if event.session_id() != Some(session) {
                continue;
            }
            if !started {
                started = matches!(
                    event,
                    SdkEvent::SessionStatus {
                        status: SessionStatus::Busy,
                        ..
                    }
                );
                if !started {
                    continue;
                }
            }
            match event {
                SdkEvent::SessionStatus { status, .. } => turn.statuses.push(status),
                SdkEvent::MessagePartDelta { field, delta, .. } if field == "text" => {
                    turn.deltas.push_str(&delta)
                }
                SdkEvent::MessagePartUpdated {
                    part_type,
                    text: Some(text),
                    ..
                } if part_type == "text" => turn.part_texts.push(text),
                SdkEvent::MessageUpdated {
                    role, completed, ..
                } if role == "assistant" && completed => turn.assistant_completed = true,
                SdkEvent::SessionError { error, .. } => turn.errors.push(error),
                SdkEvent::SessionIdle { .. } => turn.idle = true,
                _ => {}
            }
        }
    };
    if tokio::time::timeout(TURN_GUARD, read).await.is_err() {
        panic!("the turn did not end within {TURN_GUARD:?}: {turn:?}");
    }
    turn
}

/// After an abort of a running turn: reads until the session's `session.idle`.
async fn follow_to_idle_after_abort(events: &mut Events, session: &str) -> Turn {
    let mut turn = Turn::default();
    let read = async {
        loop {
            let event = events
                .next()
                .await
                .expect("the event stream ended")
                .expect("the event stream failed");
            match event {
                SdkEvent::SessionStatus { session_id, status } if session_id == session => {
                    turn.statuses.push(status)
                }
                SdkEvent::SessionIdle { session_id } if session_id == session => return,
                _ => {}
            }
        }
    };
    tokio::time::timeout(TURN_GUARD, read)
        .await
        .expect("the aborted turn did not end");
    turn.idle = true;
    turn
}

#[tokio::test]
async fn a_real_turn_streams_the_scripted_reply_and_provider_failures_end_cleanly() {
    let Some(bin) = kilo::test_binary() else {
        return;
    };
    let models = ScriptedModelServer::start_local().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let password = Secret::random();
    let key = Secret::random();

    // The config exactly as the env builder makes it from a town's providers, the key
    // passed as a secret variable that kilo substitutes into `options.apiKey`.
    let providers = BTreeMap::from([(
        PROVIDER_ID.to_owned(),
        ProviderConfig::new(models.provider_entry()).with_api_key(key.clone()),
    )]);
    let launcher = SdkLauncher::kilo();
    let env = build_agent_env_with_providers(
        &AgentEnvInput {
            town: &TownId::new("turns").unwrap(),
            agent: &AgentId::new("mayor").unwrap(),
            role: Role::Mayor,
            launcher: &launcher,
            model: MODEL,
            small_model: MODEL,
            password: &password,
            token: &Secret::random(),
            credentials: &BTreeMap::new(),
        },
        &providers,
    );
    let Word::Text(config) = &env.vars["KILO_CONFIG_CONTENT"] else {
        panic!("the config is plain text");
    };
    assert!(!config.contains(key.expose()));
    let key_var = ProviderConfig::key_var(PROVIDER_ID);
    let extra = [
        (key_var, key.expose().to_owned()),
        ("KILO_DISABLE_MODELS_FETCH".to_owned(), "1".to_owned()),
        ("KILO_TELEMETRY_LEVEL".to_owned(), "off".to_owned()),
    ];
    let kilo = Kilo::start_with(&bin, home.path(), &password, config, &extra).await;
    let client = kilo.client(&password);
    client
        .wait_healthy(Duration::from_secs(60), Duration::from_millis(50))
        .await
        .unwrap();
    let session = client.create_session("mayor").await.unwrap();
    let model = ModelRef::parse(MODEL).unwrap();

    let mut events = client.events().await.unwrap();
    let first = tokio::time::timeout(TURN_GUARD, events.next())
        .await
        .unwrap();
    assert_eq!(first.unwrap().unwrap(), SdkEvent::ServerConnected);

    // 1. A turn: busy → streamed deltas → the whole part → completed → idle.
    client
        .prompt_async(&session.id, &model, "hi")
        .await
        .unwrap();
    let turn = follow(&mut events, &session.id, |t| t.idle).await;
    assert_eq!(
        turn.statuses.first(),
        Some(&SessionStatus::Busy),
        "{turn:?}"
    );
    assert_eq!(turn.statuses.last(), Some(&SessionStatus::Idle), "{turn:?}");
    assert_eq!(turn.deltas, DEFAULT_TEXT, "{turn:?}");
    assert!(
        turn.part_texts.iter().any(|t| t == DEFAULT_TEXT),
        "{turn:?}"
    );
    assert!(turn.assistant_completed, "{turn:?}");
    assert!(turn.errors.is_empty(), "{turn:?}");
    let messages = client.messages(&session.id).await.unwrap();
    assert_eq!(last_assistant_text(&messages), Some(DEFAULT_TEXT));
    let statuses = client.session_status().await.unwrap();
    assert!(
        !statuses
            .get(&session.id)
            .is_some_and(SessionStatus::is_working),
        "{statuses:?}"
    );
    let request = models.requests().pop().expect("kilo called the model");
    assert!(request.stream);
    // kilo appends `<environment_details>` to the user's text.
    let user_text = request.last_user_text().unwrap();
    assert!(user_text.starts_with("hi"), "{user_text:?}");
    assert_eq!(
        request.bearer_token(),
        Some(key.expose()),
        "the secret key reached the provider"
    );

    // 2. A 4xx from the provider: session.error, then idle; no hang.
    models.push(Reply::status(400, "scripted bad request"));
    client
        .prompt_async(&session.id, &model, "again")
        .await
        .unwrap();
    let turn = follow(&mut events, &session.id, |t| t.idle).await;
    let error = turn.errors.first().expect("a session.error event");
    assert_eq!(error.name, "APIError");
    assert_eq!(error.status, Some(400));
    assert_eq!(error.message, "scripted bad request");
    assert_eq!(turn.statuses.last(), Some(&SessionStatus::Idle), "{turn:?}");
    let messages = client.messages(&session.id).await.unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last.role, "assistant");
    assert_eq!(last.error.as_ref().map(|e| e.status), Some(Some(400)));

    // 3. A 5xx: kilo retries without end (status `retry`); an abort ends the turn.
    models.set_default(Reply::status(500, "scripted outage"));
    client
        .prompt_async(&session.id, &model, "third")
        .await
        .unwrap();
    let turn = follow(&mut events, &session.id, |t| {
        t.statuses
            .iter()
            .any(|s| matches!(s, SessionStatus::Retry { .. }))
    })
    .await;
    let retry = turn.statuses.last().unwrap();
    assert!(
        matches!(retry, SessionStatus::Retry { attempt: 1, message, .. } if message == "scripted outage"),
        "{retry:?}"
    );
    assert!(client.session_status().await.unwrap()[&session.id].is_working());
    assert!(client.abort(&session.id).await.unwrap());
    let turn = follow_to_idle_after_abort(&mut events, &session.id).await;
    assert_eq!(turn.statuses.last(), Some(&SessionStatus::Idle), "{turn:?}");
    assert!(!client
        .session_status()
        .await
        .unwrap()
        .contains_key(&session.id));

    // 4. A 200 whose SSE data is not JSON: session.error (kilo 7.7.9: `UnknownError`,
    //    "JSON parsing failed…"), then idle.
    models.set_default(Reply::default());
    models.push(Reply::garbage());
    client
        .prompt_async(&session.id, &model, "fourth")
        .await
        .unwrap();
    let turn = follow(&mut events, &session.id, |t| t.idle).await;
    let error = turn.errors.first().expect("a session.error event");
    assert!(error.message.contains("JSON"), "{error:?}");
    assert_eq!(turn.statuses.last(), Some(&SessionStatus::Idle), "{turn:?}");

    // 5. A provider that never answers: the session stays busy (no error of its own within
    //    seconds); an abort ends the turn.
    let before = models.request_count();
    models.push(Reply::hang());
    client
        .prompt_async(&session.id, &model, "fifth")
        .await
        .unwrap();
    assert!(models.wait_for_requests(before + 1, TURN_GUARD).await);
    assert!(client.session_status().await.unwrap()[&session.id].is_working());
    assert!(client.abort(&session.id).await.unwrap());
    let turn = follow_to_idle_after_abort(&mut events, &session.id).await;
    assert_eq!(turn.statuses.last(), Some(&SessionStatus::Idle), "{turn:?}");

    // The model server and the session still work after all that. kilo 7.7.9 sends the
    // aborted turn's tail (`session.error` `MessageAbortedError`, busy, idle) after its first
    // `session.idle`, so this waits for the completed reply rather than the next idle.
    client
        .prompt_async(&session.id, &model, "sixth")
        .await
        .unwrap();
    let turn = follow(&mut events, &session.id, |t| {
        t.assistant_completed && t.deltas == DEFAULT_TEXT
    })
    .await;
    assert!(
        turn.errors.iter().all(|e| e.name == "MessageAbortedError"),
        "{turn:?}"
    );
    let messages = client.messages(&session.id).await.unwrap();
    assert_eq!(last_assistant_text(&messages), Some(DEFAULT_TEXT));

    drop(events);
    kilo.stop().await;
    models.shutdown().await;
}
