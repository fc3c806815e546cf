//! TownStore's combined writes against real SQLite files: a status written in one
//! statement, a finished start in one transaction, several times in one commit, and a
//! secret made once and then only read.

use gastown_core::store::{AgentStarted, RegistryEntry};
use gastown_core::{AgentId, AgentStatus, Role, TownStore};

fn agent(id: &str) -> AgentId {
    AgentId::new(id).unwrap()
}

fn store(dir: &tempfile::TempDir) -> TownStore {
    TownStore::open(&dir.path().join("town.db")).unwrap()
}

#[test]
fn record_status_creates_the_row_then_changes_only_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = agent("polecat-1");
    store
        .record_status(&id, Role::Polecat, AgentStatus::Working)
        .unwrap();
    let created = store.agent(&id).unwrap().unwrap();
    assert_eq!(created.role, Role::Polecat);
    assert_eq!(created.status, AgentStatus::Working);
    assert_eq!(created.session_id, None);

    store.set_session_id(&id, Some("ses_1")).unwrap();
    // The role given is only for a new row: an existing one keeps its own.
    store
        .record_status(&id, Role::Refinery, AgentStatus::Idle)
        .unwrap();
    let changed = store.agent(&id).unwrap().unwrap();
    assert_eq!(changed.role, Role::Polecat);
    assert_eq!(changed.status, AgentStatus::Idle);
    assert_eq!(changed.session_id.as_deref(), Some("ses_1"));
}

#[test]
fn record_started_writes_the_row_and_the_registry_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = agent("polecat-2");
    let mut entry = RegistryEntry::new(id.clone(), Role::Polecat);
    entry.model = Some("anthropic/claude-sonnet-4.6".into());
    {
        let store = store(&dir);
        store
            .record_status(&id, Role::Polecat, AgentStatus::Working)
            .unwrap();
        let started = AgentStarted {
            role: Role::Polecat,
            session_id: "ses_7",
            config_hash: "hash-7",
            registry: &entry,
            status: AgentStatus::Idle,
            activity_ms: 1_700_000_000_000,
        };
        store.record_started(&id, &started).unwrap();
    }
    let store = store(&dir);
    let row = store.agent(&id).unwrap().unwrap();
    assert_eq!(row.status, AgentStatus::Idle);
    assert_eq!(row.session_id.as_deref(), Some("ses_7"));
    assert_eq!(row.config_hash.as_deref(), Some("hash-7"));
    assert_eq!(row.last_activity_ms, Some(1_700_000_000_000));
    // The session call just answered: the start is the agent's first heartbeat.
    assert_eq!(row.heartbeat_ms, Some(1_700_000_000_000));
    assert_eq!(store.registry().unwrap(), vec![entry]);
}

#[test]
fn record_started_creates_a_missing_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = agent("mayor");
    let entry = RegistryEntry::new(id.clone(), Role::Mayor);
    let started = AgentStarted {
        role: Role::Mayor,
        session_id: "ses_1",
        config_hash: "h",
        registry: &entry,
        status: AgentStatus::Waiting,
        activity_ms: 5,
    };
    store.record_started(&id, &started).unwrap();
    let row = store.agent(&id).unwrap().unwrap();
    assert_eq!(row.role, Role::Mayor);
    assert_eq!(row.status, AgentStatus::Waiting);
    assert_eq!(row.last_activity_ms, Some(5));
}

#[test]
fn times_set_stores_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    store.time_set("a", 1).unwrap();
    store.times_set(&[("a", 10), ("b", 20)]).unwrap();
    assert_eq!(store.time_get("a").unwrap(), Some(10));
    assert_eq!(store.time_get("b").unwrap(), Some(20));
    store.times_set(&[]).unwrap();
    assert_eq!(store.time_get("c").unwrap(), None);
}

#[test]
fn secret_get_or_create_makes_one_secret_and_then_returns_the_stored_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let first = store.secret_get_or_create("k").unwrap();
    let again = store.secret_get_or_create("k").unwrap();
    assert_eq!(first.expose(), again.expose());
    // A secret set meanwhile is what a later call returns.
    let replaced = gastown_core::Secret::new("replaced");
    store.secret_set("k", &replaced).unwrap();
    assert_eq!(
        store.secret_get_or_create("k").unwrap().expose(),
        "replaced"
    );
    let other = store.secret_get_or_create("other").unwrap();
    assert_ne!(other.expose(), first.expose());
}
