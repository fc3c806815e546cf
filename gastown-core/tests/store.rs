//! TownStore against real SQLite files in temp dirs: files, agents, registry, kv, secrets.
//! Beads, events and the V1 → V2 upgrade are in `reconciler_store.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use gastown_core::store::{RegistryEntry, SCHEMA_VERSION};
use gastown_core::{AgentId, AgentStatus, Error, Role, TownStore};
use rusqlite::Connection;

fn agent(id: &str) -> AgentId {
    AgentId::new(id).unwrap()
}

fn town_file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("town.db")
}

/// The file names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn full_record(id: &str) -> gastown_core::store::AgentRecord {
    let mut record = gastown_core::store::AgentRecord::new(agent(id), Role::Polecat);
    record.status = AgentStatus::Working;
    record.hook = Some("bead-1".into());
    record.session_id = Some("ses_1".into());
    record.config_hash = Some("abc".into());
    record.last_activity_ms = Some(1_700_000_000_000);
    record.heartbeat_ms = Some(1_700_000_000_500);
    record
}

#[test]
fn store_is_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    assert_traits::<TownStore>();
}

#[test]
fn fresh_file_is_migrated_to_wal_with_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = town_file(&dir);
    let store = TownStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    const { assert!(SCHEMA_VERSION >= 1) };
    assert!(path.exists());

    let raw = Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut stmt = raw
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for table in [
        "agents", "beads", "events", "kv", "registry", "secrets", "times",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
}

#[test]
fn debug_shows_the_location() {
    let store = TownStore::open_in_memory().unwrap();
    assert!(format!("{store:?}").contains(":memory:"));
}

#[test]
fn reopen_keeps_data_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = town_file(&dir);
    {
        let store = TownStore::open(&path).unwrap();
        store.upsert_agent(&full_record("polecat-1")).unwrap();
        store.register(&agent("polecat-1"), Role::Polecat).unwrap();
        store.kv_set("k", "v").unwrap();
        store.time_set("token_refresh", 42).unwrap();
    }
    let store = TownStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        store.agent(&agent("polecat-1")).unwrap(),
        Some(full_record("polecat-1"))
    );
    assert_eq!(store.registry().unwrap().len(), 1);
    assert_eq!(store.kv_get("k").unwrap().as_deref(), Some("v"));
    assert_eq!(store.time_get("token_refresh").unwrap(), Some(42));
}

#[test]
fn concurrent_opens_of_one_fresh_file_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(town_file(&dir));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = Arc::clone(&path);
            thread::spawn(move || TownStore::open(&path).map(|s| s.schema_version()))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap().unwrap(), SCHEMA_VERSION);
    }
}

#[test]
fn missing_parent_dir_is_an_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("town.db");
    let err = TownStore::open(&path).unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    assert!(listing(dir.path()).is_empty());
}

/// Writes a database at `path` in rollback-journal mode whose user_version is newer than
/// this build knows, as a future gastown might leave it.
fn write_future_file(path: &Path, journal_mode: &str) {
    let raw = Connection::open(path).unwrap();
    let _: String = raw
        .query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    raw.execute_batch("CREATE TABLE future (x INTEGER); INSERT INTO future VALUES (7);")
        .unwrap();
    raw.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    raw.close().unwrap();
}

#[test]
fn newer_schema_is_refused_and_the_file_is_untouched() {
    for journal_mode in ["DELETE", "WAL"] {
        let dir = tempfile::tempdir().unwrap();
        let path = town_file(&dir);
        write_future_file(&path, journal_mode);
        let before = std::fs::read(&path).unwrap();
        let files_before = listing(dir.path());

        let err = TownStore::open(&path).unwrap_err();
        match &err {
            Error::InvalidConfig { message } => {
                assert!(
                    message.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
                    "{message}"
                );
                assert!(message.contains("newer"), "{message}");
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), before, "{journal_mode}");
        assert_eq!(listing(dir.path()), files_before, "{journal_mode}");

        // The data is still readable by whoever wrote it.
        let raw = Connection::open(&path).unwrap();
        let x: i64 = raw
            .query_row("SELECT x FROM future", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 7);
    }
}

#[test]
fn garbage_file_is_refused_and_untouched() {
    let cases: [Vec<u8>; 3] = [
        b"this is not a sqlite database\n".repeat(200),
        b"short garbage".to_vec(),
        (0..=255u8).cycle().take(8192).collect(),
    ];
    for garbage in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = town_file(&dir);
        std::fs::write(&path, &garbage).unwrap();

        let err = TownStore::open(&path).unwrap_err();
        assert!(matches!(err, Error::Store { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("town.db"), "{text}");
        assert!(text.contains("not a database"), "{text}");
        assert_eq!(std::fs::read(&path).unwrap(), garbage);
        assert_eq!(listing(dir.path()), ["town.db"]);
    }
}

#[test]
fn agents_round_trip_and_list_by_id() {
    let store = TownStore::open_in_memory().unwrap();
    assert_eq!(store.agent(&agent("mayor")).unwrap(), None);
    assert!(store.agents().unwrap().is_empty());

    let mayor = gastown_core::store::AgentRecord::new(AgentId::mayor(), Role::Mayor);
    assert_eq!(mayor.status, AgentStatus::Idle);
    store.upsert_agent(&full_record("polecat-2")).unwrap();
    store.upsert_agent(&mayor).unwrap();
    store.upsert_agent(&full_record("polecat-1")).unwrap();

    let ids: Vec<String> = store
        .agents()
        .unwrap()
        .into_iter()
        .map(|a| a.id.to_string())
        .collect();
    assert_eq!(ids, ["mayor", "polecat-1", "polecat-2"]);

    // Upsert replaces every field, clearing the optional ones.
    let cleared = gastown_core::store::AgentRecord::new(agent("polecat-1"), Role::Refinery);
    store.upsert_agent(&cleared).unwrap();
    assert_eq!(store.agent(&agent("polecat-1")).unwrap(), Some(cleared));
}

#[test]
fn setters_update_one_field() {
    let store = TownStore::open_in_memory().unwrap();
    let id = agent("polecat-1");
    store
        .upsert_agent(&gastown_core::store::AgentRecord::new(
            id.clone(),
            Role::Polecat,
        ))
        .unwrap();

    store.set_agent_status(&id, AgentStatus::Working).unwrap();
    store.set_session_id(&id, Some("ses_9")).unwrap();
    store.set_config_hash(&id, Some("h1")).unwrap();
    store.set_hook(&id, Some("bead-3")).unwrap();
    store.touch_heartbeat(&id, 1_000).unwrap();
    store.touch_activity(&id, 2_000).unwrap();
    let got = store.agent(&id).unwrap().unwrap();
    assert_eq!(got.status, AgentStatus::Working);
    assert_eq!(got.session_id.as_deref(), Some("ses_9"));
    assert_eq!(got.config_hash.as_deref(), Some("h1"));
    assert_eq!(got.hook.as_deref(), Some("bead-3"));
    assert_eq!(got.heartbeat_ms, Some(1_000));
    assert_eq!(got.last_activity_ms, Some(2_000));

    store.set_session_id(&id, None).unwrap();
    store.set_config_hash(&id, None).unwrap();
    store.set_hook(&id, None).unwrap();
    let got = store.agent(&id).unwrap().unwrap();
    assert_eq!(
        (got.session_id, got.config_hash, got.hook),
        (None, None, None)
    );
}

#[test]
fn each_setter_on_an_unknown_agent_errors_and_writes_nothing() {
    let store = TownStore::open_in_memory().unwrap();
    store.upsert_agent(&full_record("polecat-1")).unwrap();
    let before = store.agents().unwrap();
    let ghost = agent("ghost");

    let results = [
        (
            "set_agent_status",
            store.set_agent_status(&ghost, AgentStatus::Dead),
        ),
        ("set_session_id", store.set_session_id(&ghost, Some("s"))),
        ("set_config_hash", store.set_config_hash(&ghost, Some("h"))),
        ("set_hook", store.set_hook(&ghost, Some("b"))),
        ("touch_heartbeat", store.touch_heartbeat(&ghost, 1)),
        ("touch_activity", store.touch_activity(&ghost, 1)),
    ];
    for (name, result) in results {
        match result {
            Err(Error::UnknownAgent { agent }) => assert_eq!(agent, ghost, "{name}"),
            other => panic!("{name}: expected UnknownAgent, got {other:?}"),
        }
    }
    assert_eq!(store.agents().unwrap(), before);
    assert_eq!(store.agent(&ghost).unwrap(), None);
}

#[test]
fn delete_agent_removes_its_registry_row_and_events_only() {
    let store = TownStore::open_in_memory().unwrap();
    let (a, b) = (agent("polecat-a"), agent("polecat-b"));
    for id in [&a, &b] {
        store
            .upsert_agent(&gastown_core::store::AgentRecord::new(
                id.clone(),
                Role::Polecat,
            ))
            .unwrap();
        store.register(id, Role::Polecat).unwrap();
        store
            .enqueue_event(None, Some(id), "agent_done", "{}")
            .unwrap();
    }

    store.delete_agent(&a).unwrap();
    assert_eq!(store.agent(&a).unwrap(), None);
    assert!(store.agent(&b).unwrap().is_some());
    assert_eq!(
        store.registry().unwrap(),
        [RegistryEntry::new(b.clone(), Role::Polecat)]
    );
    let pending = store.pending_events().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].agent_id.as_ref(), Some(&b));

    // Deleting again (or an agent never stored) is not an error.
    store.delete_agent(&a).unwrap();
    store.delete_agent(&agent("never")).unwrap();
}

#[test]
fn registry_lists_mayor_first_then_by_id_and_register_is_idempotent() {
    let store = TownStore::open_in_memory().unwrap();
    assert!(store.registry().unwrap().is_empty());
    store
        .register(&agent("refinery-a"), Role::Refinery)
        .unwrap();
    store.register(&agent("polecat-b"), Role::Polecat).unwrap();
    store.register(&AgentId::mayor(), Role::Mayor).unwrap();
    store.register(&agent("polecat-a"), Role::Polecat).unwrap();
    store.register(&agent("polecat-a"), Role::Polecat).unwrap();

    let order: Vec<(String, Role)> = store
        .registry()
        .unwrap()
        .into_iter()
        .map(|e| (e.agent.to_string(), e.role))
        .collect();
    assert_eq!(
        order,
        [
            ("mayor".to_string(), Role::Mayor),
            ("polecat-a".to_string(), Role::Polecat),
            ("polecat-b".to_string(), Role::Polecat),
            ("refinery-a".to_string(), Role::Refinery),
        ]
    );

    store.unregister(&agent("polecat-b")).unwrap();
    store.unregister(&agent("not-registered")).unwrap();
    assert_eq!(store.registry().unwrap().len(), 3);
}

#[test]
fn kv_and_times_overwrite_and_are_separate() {
    let store = TownStore::open_in_memory().unwrap();
    assert_eq!(store.kv_get("a").unwrap(), None);
    assert_eq!(store.time_get("a").unwrap(), None);
    store.kv_set("a", "1").unwrap();
    store.kv_set("a", "2").unwrap();
    store.time_set("a", 10).unwrap();
    store.time_set("a", -5).unwrap();
    assert_eq!(store.kv_get("a").unwrap().as_deref(), Some("2"));
    assert_eq!(store.time_get("a").unwrap(), Some(-5));
}

#[test]
fn secret_is_created_once_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = town_file(&dir);
    let first = {
        let store = TownStore::open(&path).unwrap();
        let first = store.secret_get_or_create("token_key").unwrap();
        assert_eq!(store.secret_get_or_create("token_key").unwrap(), first);
        assert_ne!(store.secret_get_or_create("other_key").unwrap(), first);
        // Secrets are not readable as plain key/values.
        assert_eq!(store.kv_get("token_key").unwrap(), None);
        first
    };
    let store = TownStore::open(&path).unwrap();
    assert_eq!(store.secret_get_or_create("token_key").unwrap(), first);
    assert_eq!(first.expose().len(), 64);
}

#[test]
fn concurrent_secret_creation_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(town_file(&dir));
    TownStore::open(&path).unwrap();
    // Separate connections (as separate processes would have) race to create it.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = Arc::clone(&path);
            thread::spawn(move || {
                TownStore::open(&path)
                    .unwrap()
                    .secret_get_or_create("k")
                    .unwrap()
            })
        })
        .collect();
    let secrets: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(secrets.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn clones_share_one_store_across_threads() {
    let store = TownStore::open_in_memory().unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            thread::spawn(move || {
                for j in 0..25 {
                    let id = agent(&format!("polecat-{i}-{j}"));
                    store
                        .upsert_agent(&gastown_core::store::AgentRecord::new(id, Role::Polecat))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.agents().unwrap().len(), 100);
}

#[test]
fn unparsable_rows_are_named_errors_and_stay_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = town_file(&dir);
    let store = TownStore::open(&path).unwrap();
    store.upsert_agent(&full_record("polecat-1")).unwrap();
    store.register(&agent("polecat-1"), Role::Polecat).unwrap();

    // Hand-edit the file the way an operator with the sqlite3 shell might.
    let raw = Connection::open(&path).unwrap();
    raw.execute("UPDATE agents SET role = 'boss' WHERE id = 'polecat-1'", [])
        .unwrap();
    raw.execute(
        "UPDATE registry SET role = 'boss' WHERE agent_id = 'polecat-1'",
        [],
    )
    .unwrap();

    for (what, err) in [
        ("agents", store.agents().unwrap_err()),
        ("agent", store.agent(&agent("polecat-1")).unwrap_err()),
        ("registry", store.registry().unwrap_err()),
    ] {
        assert!(matches!(err, Error::Store { .. }), "{what}: {err:?}");
        let text = err.to_string();
        assert!(text.contains("polecat-1"), "{what}: {text}");
        assert!(text.contains("boss"), "{what}: {text}");
    }
    let role: String = raw
        .query_row("SELECT role FROM agents WHERE id = 'polecat-1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(role, "boss");

    // A bad id and a bad status are named the same way.
    raw.execute(
        "UPDATE agents SET id = 'Bad Id', role = 'polecat' WHERE id = 'polecat-1'",
        [],
    )
    .unwrap();
    let text = store.agents().unwrap_err().to_string();
    assert!(
        text.contains("\"Bad Id\"") && text.contains("agent id"),
        "{text}"
    );
    raw.execute(
        "UPDATE agents SET id = 'ok', status = 'asleep' WHERE id = 'Bad Id'",
        [],
    )
    .unwrap();
    let text = store.agents().unwrap_err().to_string();
    assert!(text.contains("asleep") && text.contains("\"ok\""), "{text}");
    assert_eq!(
        raw.query_row("SELECT count(*) FROM agents", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        1
    );
}
