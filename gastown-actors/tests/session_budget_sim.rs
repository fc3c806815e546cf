//! The session phase's calls on the simulated runtime (a test double) in virtual time:
//! kilo sets up the project on the first request naming it, which on a busy host takes
//! longer than the per-call SDK timeout; the phase lets it take the phase's budget. A
//! server that never answers still fails the start, after the retry budget's attempts.

use std::time::Duration;

use gastown_actors::{Error, StartOptions, TownHandle, TownOptions};
use gastown_core::simulated::{SdkOp, SimScript, SimulatedRuntime};
use gastown_core::{AgentId, StartupPhase, TownConfig, TownId, TownStore};

fn options(dir: &std::path::Path, rt: &std::sync::Arc<SimulatedRuntime>) -> TownOptions {
    TownOptions::new(
        TownConfig::new(TownId::new("budget").unwrap()),
        dir,
        rt.clone(),
    )
    .with_sdk_connector(rt.sdk_connector())
}

#[tokio::test(start_paused = true)]
async fn a_first_session_call_slower_than_the_per_call_timeout_still_readies_the_mayor() {
    let defaults = StartOptions::default();
    // Between the per-call timeout (5 s) and the phase's budget (30 s).
    let slow = defaults.sdk_call_timeout * 2;
    assert!(slow < defaults.session_timeout);
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(SimScript::default().with_sdk_list_sessions(slow));
    let town = TownHandle::start(options(dir.path(), &rt)).await.unwrap();
    let ready = town
        .ensure_mayor()
        .await
        .expect("a slow first call is not a failure");
    let session = ready
        .report
        .phases
        .iter()
        .find(|p| p.phase == StartupPhase::Session)
        .unwrap();
    assert_eq!(session.attempts, 1, "no retry: {:?}", ready.report);
    town.shutdown().await.unwrap();
}

/// Before the attempt cap, a session call that never answers was retried forever: each
/// attempt ran 30 s into the call's bound, and restarts 30 s apart never numbered two
/// within the 60 s window.
#[tokio::test(start_paused = true)]
async fn a_session_call_that_never_answers_fails_the_start_after_three_attempts() {
    let defaults = StartOptions::default();
    let hung = Duration::from_secs(3600);
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(SimScript::default().with_sdk_list_sessions(hung));
    let town = TownHandle::start(options(dir.path(), &rt)).await.unwrap();
    let t0 = tokio::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(600), town.ensure_mayor())
        .await
        .expect("ensure_mayor answers")
        .expect_err("a server that never answers is no ready mayor");
    let Error::Start(start) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(start.phase, StartupPhase::Session, "{err}");
    assert_eq!(start.attempts, defaults.retry.max_attempts, "{err}");
    assert!(err.to_string().contains("GET /session"), "{err}");
    // Three session-phase attempts of one session-call bound each, plus the backoffs.
    assert!(
        t0.elapsed() < defaults.session_timeout * 4,
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(rt.sdk_calls(SdkOp::CreateSession), 0);
    town.shutdown().await.unwrap();
    // Nothing recorded a session that does not exist.
    let store = TownStore::open(&dir.path().join("town.db")).unwrap();
    let mayor = store.agent(&AgentId::new("mayor").unwrap()).unwrap();
    assert_eq!(mayor.and_then(|m| m.session_id), None);
}
