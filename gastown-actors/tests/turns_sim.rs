//! Turns on the simulated runtime (a test double whose SDK servers store a prompt but run
//! no model and whose event stream goes silent after `server.connected`): the town still
//! sees the turn end, by polling the session status once the stream has been silent for
//! twice kilo's heartbeat, and one event watcher runs per server, none after shutdown.

use std::time::Duration;

use gastown_actors::bench_support::live_event_watchers;
use gastown_actors::{TownEvent, TownHandle, TownOptions};
use gastown_core::simulated::{SimScript, SimulatedRuntime};
use gastown_core::{AgentStatus, TownConfig, TownId};

#[tokio::test(start_paused = true)]
async fn a_silent_event_stream_falls_back_to_polling_and_the_turn_end_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(SimScript::zero());
    let options = TownOptions::new(
        TownConfig::new(TownId::new("silent").unwrap()),
        dir.path().join("state"),
        rt.clone(),
    )
    .with_sdk_connector(rt.sdk_connector());
    let town = TownHandle::start(options).await.unwrap();
    town.ensure_mayor().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(live_event_watchers(), 1, "one watcher for the one server");

    let started = tokio::time::Instant::now();
    let turn = town.prompt_mayor("hi").await.unwrap();
    let reply = turn.reply().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_secs(19) && waited <= Duration::from_secs(20),
        "the turn's end came from the status poll once the stream had been silent for 2 heartbeats (20 s): {waited:?}"
    );
    assert_eq!(reply.text, "", "the simulated server runs no model");
    let statuses: Vec<AgentStatus> = town
        .events_since(0)
        .into_iter()
        .filter_map(|r| match r.event {
            TownEvent::AgentStatusChanged { status } => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(
        &statuses[statuses.len() - 2..],
        [AgentStatus::Working, AgentStatus::Waiting]
    );

    town.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(live_event_watchers(), 0, "the watcher went with its server");
}
