//! The credential chain, with test doubles for the integration provider and for failing
//! sources, and a real town store (SQLite file in a temp dir) for the stored token.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use gastown_core::credentials::{
    CredentialChain, CredentialSource, IntegrationTokenProvider, PersonalToken, StoredToken,
    TokenProvider,
};
use gastown_core::{Error, Result, Secret, TownStore};
use parking_lot::Mutex;

const PERSONAL: &str = "ghp_personal_SECRET_1111";
const INTEGRATION: &str = "ghs_integration_SECRET_2222";
const STORED: &str = "ghp_stored_SECRET_3333";
const STORED_KEY: &str = "git_token";

/// Test double: a provider that answers from a script and counts its fetches.
#[derive(Debug, Default)]
struct ScriptedProviderDouble {
    answers: Mutex<VecDeque<Result<Option<Secret>>>>,
    fetches: AtomicUsize,
}

impl ScriptedProviderDouble {
    fn with(answers: Vec<Result<Option<Secret>>>) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.into()),
            fetches: AtomicUsize::new(0),
        })
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TokenProvider for ScriptedProviderDouble {
    async fn fetch(&self) -> Result<Option<Secret>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.answers.lock().pop_front().unwrap_or(Ok(None))
    }
}

/// Test double: a source whose resolve fails, counting its calls.
#[derive(Debug, Default)]
struct FailingSourceDouble {
    resolves: AtomicUsize,
}

#[async_trait]
impl CredentialSource for FailingSourceDouble {
    fn name(&self) -> &'static str {
        "failing"
    }

    async fn resolve(&self) -> Result<Option<Secret>> {
        self.resolves.fetch_add(1, Ordering::SeqCst);
        Err(Error::InvalidConfig {
            message: "the failing double always fails".into(),
        })
    }

    async fn refresh(&self) -> Result<()> {
        Err(Error::InvalidConfig {
            message: "the failing double cannot refresh".into(),
        })
    }
}

/// Test double: wraps a source and counts its resolves.
#[derive(Debug)]
struct CountingSourceDouble {
    inner: Arc<dyn CredentialSource>,
    resolves: AtomicUsize,
}

impl CountingSourceDouble {
    fn wrap(inner: Arc<dyn CredentialSource>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            resolves: AtomicUsize::new(0),
        })
    }

    fn resolves(&self) -> usize {
        self.resolves.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CredentialSource for CountingSourceDouble {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn resolve(&self) -> Result<Option<Secret>> {
        self.resolves.fetch_add(1, Ordering::SeqCst);
        self.inner.resolve().await
    }

    async fn refresh(&self) -> Result<()> {
        self.inner.refresh().await
    }
}

struct Town {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: TownStore,
}

fn town() -> Town {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("town.db");
    let store = TownStore::open(&path).unwrap();
    Town {
        _dir: dir,
        path,
        store,
    }
}

fn token(r: &gastown_core::credentials::CredentialResolution) -> Option<&str> {
    r.token.as_ref().map(Secret::expose)
}

fn assert_no_secret(text: &str) {
    for secret in [PERSONAL, INTEGRATION, STORED] {
        assert!(!text.contains(secret), "a token leaked into {text:?}");
    }
}

#[tokio::test]
async fn standard_order_is_personal_integration_stored() {
    let t = town();
    let provider = ScriptedProviderDouble::with(vec![]);
    let chain = CredentialChain::standard(
        Some(PersonalToken::new(Secret::new(PERSONAL))),
        Some(IntegrationTokenProvider::new(provider)),
        Some(StoredToken::new(t.store.clone(), STORED_KEY)),
    );
    assert_eq!(chain.names(), ["personal", "integration", "stored"]);
    let partial = CredentialChain::standard(
        None,
        None,
        Some(StoredToken::new(t.store.clone(), STORED_KEY)),
    );
    assert_eq!(partial.names(), ["stored"]);
}

#[tokio::test]
async fn the_first_source_with_a_token_wins_and_later_ones_are_not_consulted() {
    let t = town();
    t.store
        .secret_set(STORED_KEY, &Secret::new(STORED))
        .unwrap();
    let provider = ScriptedProviderDouble::with(vec![Ok(Some(Secret::new(INTEGRATION)))]);
    let integration =
        CountingSourceDouble::wrap(Arc::new(IntegrationTokenProvider::new(provider.clone())));
    let stored =
        CountingSourceDouble::wrap(Arc::new(StoredToken::new(t.store.clone(), STORED_KEY)));
    integration.refresh().await.unwrap();

    let chain = CredentialChain::new(vec![
        Arc::new(PersonalToken::new(Secret::new(PERSONAL))),
        integration.clone(),
        stored.clone(),
    ]);
    let r = chain.resolve().await;
    assert_eq!(token(&r), Some(PERSONAL));
    assert_eq!(r.source, Some("personal"));
    assert_eq!(r.tried, ["personal"]);
    assert!(r.errors.is_empty());
    assert_eq!((integration.resolves(), stored.resolves()), (0, 0));

    // An empty personal token falls through to the integration's cached token.
    let chain = CredentialChain::new(vec![
        Arc::new(PersonalToken::new(Secret::new(""))),
        integration.clone(),
        stored.clone(),
    ]);
    let r = chain.resolve().await;
    assert_eq!(token(&r), Some(INTEGRATION));
    assert_eq!(r.source, Some("integration"));
    assert_eq!(r.tried, ["personal", "integration"]);
    assert_eq!((integration.resolves(), stored.resolves()), (1, 0));
}

#[tokio::test]
async fn the_stored_token_is_last_and_read_from_the_town_store() {
    let t = town();
    let provider = ScriptedProviderDouble::with(vec![]);
    let chain = CredentialChain::standard(
        None,
        Some(IntegrationTokenProvider::new(provider)),
        Some(StoredToken::new(t.store.clone(), STORED_KEY)),
    );
    let r = chain.resolve().await;
    assert_eq!(r.token, None);
    assert_eq!(r.source, None);
    assert_eq!(r.tried, ["integration", "stored"]);

    // Written by another handle on the same file (as rig creation would): seen at once.
    TownStore::open(&t.path)
        .unwrap()
        .secret_set(STORED_KEY, &Secret::new(STORED))
        .unwrap();
    let r = chain.resolve().await;
    assert_eq!(token(&r), Some(STORED));
    assert_eq!(r.source, Some("stored"));
    assert_eq!(r.tried, ["integration", "stored"]);
}

#[tokio::test]
async fn an_erroring_source_is_skipped_and_reported() {
    let t = town();
    t.store
        .secret_set(STORED_KEY, &Secret::new(STORED))
        .unwrap();
    let failing = Arc::new(FailingSourceDouble::default());
    let chain = CredentialChain::new(vec![
        failing.clone(),
        Arc::new(StoredToken::new(t.store.clone(), STORED_KEY)),
    ]);
    let r = chain.resolve().await;
    assert_eq!(token(&r), Some(STORED));
    assert_eq!(r.tried, ["failing", "stored"]);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].0, "failing");
    assert!(r.errors[0].1.contains("always fails"), "{:?}", r.errors);
    assert_eq!(failing.resolves.load(Ordering::SeqCst), 1);

    let outcomes = chain.refresh_all().await;
    let names: Vec<_> = outcomes.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["failing", "stored"]);
    assert!(outcomes[0].1.is_err());
    assert!(outcomes[1].1.is_ok());
}

/// A store that fails underneath the stored source: the error is reported without the
/// token, the other sources still answer, and the stored secret itself is not lost.
#[tokio::test]
async fn a_broken_store_is_reported_without_leaking_and_loses_nothing() {
    let t = town();
    t.store
        .secret_set(STORED_KEY, &Secret::new(STORED))
        .unwrap();
    let conn = rusqlite::Connection::open(&t.path).unwrap();
    conn.execute("ALTER TABLE secrets RENAME TO secrets_aside", [])
        .unwrap();

    let stored = StoredToken::new(t.store.clone(), STORED_KEY);
    let err = stored.resolve().await.unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert_no_secret(&err.to_string());
    assert_no_secret(&format!("{err:?}"));

    let chain = CredentialChain::new(vec![
        Arc::new(stored),
        Arc::new(PersonalToken::new(Secret::new(PERSONAL))),
    ]);
    let r = chain.resolve().await;
    assert_eq!(token(&r), Some(PERSONAL));
    assert_eq!(r.tried, ["stored", "personal"]);
    assert_eq!(r.errors.len(), 1);
    assert_no_secret(&r.errors[0].1);

    conn.execute("ALTER TABLE secrets_aside RENAME TO secrets", [])
        .unwrap();
    assert_eq!(
        t.store.secret_get(STORED_KEY).unwrap().unwrap().expose(),
        STORED
    );
}

#[tokio::test]
async fn refresh_fills_the_integration_cache_and_resolve_never_fetches() {
    let provider = ScriptedProviderDouble::with(vec![
        Ok(Some(Secret::new(INTEGRATION))),
        Err(Error::InvalidConfig {
            message: "integration unreachable".into(),
        }),
        Ok(None),
    ]);
    let integration = Arc::new(IntegrationTokenProvider::new(provider.clone()));
    let chain = CredentialChain::new(vec![integration.clone()]);

    for _ in 0..3 {
        assert_eq!(chain.resolve().await.token, None);
    }
    assert_eq!(provider.fetches(), 0, "resolve must not fetch");
    assert!(!integration.is_cached());

    let outcomes = chain.refresh_all().await;
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].1.is_ok());
    assert_eq!(provider.fetches(), 1);
    for _ in 0..3 {
        assert_eq!(token(&chain.resolve().await), Some(INTEGRATION));
    }
    assert_eq!(provider.fetches(), 1, "resolve serves the cache");

    // A failed refresh keeps the cached token and reports the error.
    let outcomes = chain.refresh_all().await;
    let err = outcomes[0].1.as_ref().unwrap_err();
    assert!(err.to_string().contains("unreachable"));
    assert_eq!(token(&chain.resolve().await), Some(INTEGRATION));

    // A provider that says "no token" clears it.
    chain.refresh_all().await;
    assert_eq!(provider.fetches(), 3);
    assert_eq!(chain.resolve().await.token, None);
    assert!(!integration.is_cached());
}

#[tokio::test]
async fn debug_and_display_never_show_a_token() {
    let t = town();
    t.store
        .secret_set(STORED_KEY, &Secret::new(STORED))
        .unwrap();
    let provider = ScriptedProviderDouble::with(vec![Ok(Some(Secret::new(INTEGRATION)))]);
    let integration = IntegrationTokenProvider::new(provider);
    integration.refresh().await.unwrap();
    let personal = PersonalToken::new(Secret::new(PERSONAL));
    let stored = StoredToken::new(t.store.clone(), STORED_KEY);
    assert_no_secret(&format!("{personal:?} {integration:?} {stored:?}"));

    let chain = CredentialChain::standard(Some(personal), Some(integration), Some(stored));
    assert_no_secret(&format!("{chain:?}"));
    let r = chain.resolve().await;
    assert_eq!(token(&r), Some(PERSONAL));
    assert_no_secret(&format!("{r:?}"));
    assert_no_secret(&r.to_string());
    assert_eq!(r.to_string(), "token from personal (tried: personal)");

    let failing = CredentialChain::new(vec![Arc::new(FailingSourceDouble::default())]);
    let r = failing.resolve().await;
    assert_eq!(
        r.to_string(),
        "no token (tried: failing); failing failed: invalid configuration: the failing double always fails"
    );
}

#[test]
fn secret_get_and_set_persist_and_never_create() {
    let t = town();
    assert_eq!(t.store.secret_get(STORED_KEY).unwrap(), None);
    assert_eq!(
        t.store.secret_get(STORED_KEY).unwrap(),
        None,
        "get creates nothing"
    );

    t.store
        .secret_set(STORED_KEY, &Secret::new("first"))
        .unwrap();
    t.store
        .secret_set(STORED_KEY, &Secret::new(STORED))
        .unwrap();
    drop(t.store);
    let reopened = TownStore::open(&t.path).unwrap();
    assert_eq!(
        reopened.secret_get(STORED_KEY).unwrap().unwrap().expose(),
        STORED
    );
    // Secrets never come back through the string kv.
    assert_eq!(reopened.kv_get(STORED_KEY).unwrap(), None);
    // get_or_create returns the set secret rather than minting another.
    assert_eq!(
        reopened.secret_get_or_create(STORED_KEY).unwrap().expose(),
        STORED
    );
}
