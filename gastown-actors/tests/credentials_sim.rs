//! Credentials stay off the mayor's critical path: a slow integration token provider (a
//! test double that takes 10 s of virtual time per fetch) is only called by the background
//! refresh, never by `ensure_mayor`, whose virtual ready time stays the physical floor.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gastown_actors::{TownHandle, TownOptions};
use gastown_core::credentials::{
    CredentialChain, IntegrationTokenProvider, PersonalToken, TokenProvider,
};
use gastown_core::simulated::{SimScript, SimulatedRuntime};
use gastown_core::{Secret, TownConfig, TownId};
use tokio::time::Instant;

/// A slow provider that counts its fetches.
#[derive(Debug, Default)]
struct SlowProviderDouble {
    fetches: AtomicUsize,
}

#[async_trait]
impl TokenProvider for SlowProviderDouble {
    async fn fetch(&self) -> gastown_core::Result<Option<Secret>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok(Some(Secret::new("ghs_integration")))
    }
}

fn script() -> SimScript {
    SimScript::zero()
        .with_container_create(Duration::from_millis(1500))
        .with_sdk_boot(Duration::from_millis(4500))
        .with_sdk_create_session(Duration::from_millis(150))
}

#[tokio::test(start_paused = true)]
async fn a_slow_credential_provider_never_delays_the_mayor() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(script());
    let provider = Arc::new(SlowProviderDouble::default());
    let chain = Arc::new(CredentialChain::standard(
        None::<PersonalToken>,
        Some(IntegrationTokenProvider::new(provider.clone())),
        None,
    ));
    let options = TownOptions::new(
        TownConfig::new(TownId::new("creds").unwrap()),
        dir.path(),
        rt.clone(),
    )
    .with_sdk_connector(rt.sdk_connector())
    .with_credentials(chain.clone(), "GIT_TOKEN");
    let town = TownHandle::start(options).await.unwrap();
    let t0 = Instant::now();
    town.ensure_mayor().await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(1500 + 4500 + 150));
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        1,
        "only the background refresh fetched"
    );
    // The refresh finishes in the background and the next dispatch resolves from the cache.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let resolution = chain.resolve().await;
    assert_eq!(resolution.source, Some("integration"));
    assert_eq!(resolution.tried, vec!["integration"]);
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        1,
        "resolve never fetches"
    );
    town.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_invalid_credential_variable_is_rejected_before_any_state_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(script());
    let chain = Arc::new(CredentialChain::new(Vec::new()));
    let options = TownOptions::new(TownConfig::new(TownId::new("bad").unwrap()), &state, rt)
        .with_credentials(chain, "GIT TOKEN=");
    let err = TownHandle::start(options).await.unwrap_err();
    assert!(
        err.to_string().contains("environment variable name"),
        "{err}"
    );
    assert!(!state.exists());
}

#[tokio::test]
async fn a_credential_variable_may_not_replace_the_server_password() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(script());
    for var in [
        "KILO_SERVER_PASSWORD",
        "PATH",
        "XDG_DATA_HOME",
        "GASTOWN_CONTAINER_TOKEN",
    ] {
        let chain = Arc::new(CredentialChain::new(Vec::new()));
        let options = TownOptions::new(
            TownConfig::new(TownId::new("bad").unwrap()),
            &state,
            rt.clone(),
        )
        .with_credentials(chain, var);
        let err = TownHandle::start(options).await.unwrap_err();
        assert!(err.to_string().contains("reserved"), "{var}: {err}");
    }
    assert!(!state.exists(), "nothing written");
}
