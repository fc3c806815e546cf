//! The session phase's calls on the simulated runtime (a test double) in virtual time:
//! kilo sets up the project on the first request naming it, which on a busy host takes
//! longer than the per-call SDK timeout; the phase lets it take the phase's budget.

use gastown_actors::{StartOptions, TownHandle, TownOptions};
use gastown_core::simulated::{SimScript, SimulatedRuntime};
use gastown_core::{StartupPhase, TownConfig, TownId};

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
