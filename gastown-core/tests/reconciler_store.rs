//! The town store's beads, registry entries and reconciler side against real SQLite
//! files: the V1 → V2 upgrade, round trips, events deleted with their bead or agent, and
//! `apply_reconciled`'s all-or-nothing transaction and its bounded history of processed
//! events.

mod reconciler_support;

use gastown_core::reconciler::{reconcile, Action, ReconcileEvent};
use gastown_core::store::{AgentRecord, BeadRecord, RegistryEntry, SCHEMA_VERSION};
use gastown_core::{AgentStatus, BeadKind, BeadStatus, Error, RigId, Role, TownStore};
use reconciler_support::*;
use rusqlite::Connection;

fn open(dir: &tempfile::TempDir) -> TownStore {
    TownStore::open(&dir.path().join("town.db")).unwrap()
}

/// The version 1 schema as shipped (migration 0), frozen here so the upgrade is tested
/// against what real files hold.
const V1_SQL: &str = "
CREATE TABLE agents (id TEXT PRIMARY KEY NOT NULL, role TEXT NOT NULL, status TEXT NOT NULL,
    hook TEXT, session_id TEXT, config_hash TEXT, last_activity_ms INTEGER,
    heartbeat_ms INTEGER) STRICT;
CREATE TABLE registry (agent_id TEXT PRIMARY KEY NOT NULL, role TEXT NOT NULL) STRICT;
CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;
CREATE TABLE times (key TEXT PRIMARY KEY NOT NULL, ms INTEGER NOT NULL) STRICT;
CREATE TABLE secrets (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;
CREATE TABLE beads (id TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    assignee TEXT) STRICT;
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, bead_id TEXT, agent_id TEXT,
    kind TEXT NOT NULL, payload TEXT NOT NULL, processed INTEGER NOT NULL DEFAULT 0) STRICT;
CREATE INDEX events_pending ON events (id) WHERE processed = 0;
CREATE INDEX events_bead ON events (bead_id) WHERE bead_id IS NOT NULL;
CREATE INDEX events_agent ON events (agent_id) WHERE agent_id IS NOT NULL;
INSERT INTO agents VALUES ('polecat-1', 'polecat', 'working', 'b-1', 'ses_1', 'h', 5, 6);
INSERT INTO registry VALUES ('polecat-1', 'polecat');
INSERT INTO beads VALUES ('b-1', 'issue', 'in_progress', 'polecat-1');
INSERT INTO events (bead_id, agent_id, kind, payload)
    VALUES ('b-1', 'polecat-1', 'agent_exited', '{\"agent\":\"polecat-1\"}');
PRAGMA user_version = 1;
";

#[test]
fn a_version_1_file_is_upgraded_with_its_rows_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("town.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(V1_SQL)
        .unwrap();

    let store = TownStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    const { assert!(SCHEMA_VERSION == 2) };

    let bead = store.bead(&bead_id("b-1")).unwrap().unwrap();
    assert_eq!(
        bead,
        BeadRecord {
            status: BeadStatus::InProgress,
            assignee: Some(agent_id("polecat-1")),
            ..BeadRecord::issue(bead_id("b-1"), "", "", 0)
        }
    );
    let agent = store.agent(&agent_id("polecat-1")).unwrap().unwrap();
    assert_eq!(
        (agent.status, agent.hook.as_deref()),
        (AgentStatus::Working, Some("b-1"))
    );
    assert_eq!(
        store.registry().unwrap(),
        [RegistryEntry::new(agent_id("polecat-1"), Role::Polecat)]
    );
    let pending = store.pending_reconcile_events().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].1.as_ref().unwrap(),
        &ReconcileEvent::AgentExited {
            agent: agent_id("polecat-1")
        }
    );
    // The upgraded file takes V2 rows, and opens again as is.
    store
        .update_bead(&BeadRecord {
            title: "t".into(),
            ..bead
        })
        .unwrap();
    drop(store);
    let store = TownStore::open(&path).unwrap();
    assert_eq!(store.bead(&bead_id("b-1")).unwrap().unwrap().title, "t");
}

fn full_bead(id: &str) -> BeadRecord {
    BeadRecord {
        kind: BeadKind::MergeRequest,
        status: BeadStatus::InReview,
        rig: Some(RigId::new("app").unwrap()),
        assignee: Some(agent_id("refinery-1")),
        branch: Some("polecat/b-0".into()),
        head: Some("abc123".into()),
        source_bead: Some(bead_id("b-0")),
        dispatch_attempts: 3,
        last_dispatch_ms: Some(NOW - 5),
        last_error: Some("no commits on polecat/b-0".into()),
        updated_ms: NOW + 1,
        ..BeadRecord::issue(bead_id(id), "Review \"it\"", "body\nlines", NOW)
    }
}

#[test]
fn beads_round_trip_update_and_delete_with_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.bead(&bead_id("b-2")).unwrap(), None);
    store.insert_bead(&full_bead("b-2")).unwrap();
    store.insert_bead(&issue("b-1")).unwrap();
    assert_eq!(store.bead(&bead_id("b-2")).unwrap(), Some(full_bead("b-2")));
    let ids: Vec<String> = store
        .beads()
        .unwrap()
        .iter()
        .map(|b| b.id.to_string())
        .collect();
    assert_eq!(ids, ["b-1", "b-2"]);

    // A duplicate insert fails and changes nothing.
    let err = store.insert_bead(&issue("b-2")).unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert_eq!(store.bead(&bead_id("b-2")).unwrap(), Some(full_bead("b-2")));

    // An update replaces the whole row, clearing what the new record leaves out.
    assert!(store.update_bead(&issue("b-2")).unwrap());
    assert_eq!(store.bead(&bead_id("b-2")).unwrap(), Some(issue("b-2")));
    assert!(!store.update_bead(&issue("b-9")).unwrap());
    assert_eq!(store.bead(&bead_id("b-9")).unwrap(), None);

    let about_b1 = ReconcileEvent::WorkChecked {
        bead: bead_id("b-1"),
        agent: agent_id("polecat-1"),
        branch: "x".into(),
        commits: 1,
        head: None,
    };
    let e1 = store.enqueue(&about_b1).unwrap();
    let e2 = store
        .enqueue(&ReconcileEvent::AgentExited {
            agent: agent_id("polecat-2"),
        })
        .unwrap();
    assert!(e1 < e2);
    store.delete_bead(&bead_id("b-1")).unwrap();
    let pending: Vec<i64> = store
        .pending_reconcile_events()
        .unwrap()
        .iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(pending, [e2]);
    store.delete_bead(&bead_id("b-1")).unwrap();

    // Deleting an agent deletes its events too, in the same transaction.
    store
        .upsert_agent(&AgentRecord::new(agent_id("polecat-2"), Role::Polecat))
        .unwrap();
    store.delete_agent(&agent_id("polecat-2")).unwrap();
    assert!(store.pending_reconcile_events().unwrap().is_empty());
}

#[test]
fn registry_entries_round_trip_and_register_keeps_the_other_columns() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let full = RegistryEntry {
        model: Some("kilo/model-a".into()),
        small_model: Some("kilo/model-s".into()),
        rig: Some(RigId::new("app").unwrap()),
        branch: Some("polecat/b-1".into()),
        hook: Some(bead_id("b-1")),
        ..RegistryEntry::new(agent_id("polecat-1"), Role::Polecat)
    };
    store.register_entry(&full).unwrap();
    store.register(&agent_id("mayor"), Role::Mayor).unwrap();
    assert_eq!(
        store.registry_entry(&agent_id("polecat-1")).unwrap(),
        Some(full.clone())
    );
    assert_eq!(store.registry_entry(&agent_id("nobody")).unwrap(), None);

    // `register` changes the role only.
    store
        .register(&agent_id("polecat-1"), Role::Refinery)
        .unwrap();
    let entry = store
        .registry_entry(&agent_id("polecat-1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        entry,
        RegistryEntry {
            role: Role::Refinery,
            ..full.clone()
        }
    );

    let order: Vec<String> = store
        .registry()
        .unwrap()
        .iter()
        .map(|e| e.agent.to_string())
        .collect();
    assert_eq!(order, ["mayor", "polecat-1"]);

    // `register_entry` replaces every column.
    let bare = RegistryEntry::new(agent_id("polecat-1"), Role::Polecat);
    store.register_entry(&bare).unwrap();
    assert_eq!(
        store.registry_entry(&agent_id("polecat-1")).unwrap(),
        Some(bare)
    );
}

/// The town of the fixtures, written to a store: agents, bead `b-1` dispatched to
/// `polecat-1`, both agents registered.
fn stored_town(store: &TownStore) {
    let state = town();
    for a in state.agents.values() {
        store.upsert_agent(a).unwrap();
        store.register(&a.id, a.role).unwrap();
    }
    for b in state.beads.values() {
        store.insert_bead(b).unwrap();
    }
}

#[test]
fn an_event_round_trips_through_the_store_and_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    stored_town(&store);
    assert_eq!(store.reconcile_state().unwrap(), town());

    let id = store
        .enqueue(&ReconcileEvent::AgentExited {
            agent: agent_id("polecat-1"),
        })
        .unwrap();
    let pending = store.pending_reconcile_events().unwrap();
    let [(got_id, Ok(event))] = pending.as_slice() else {
        panic!("{pending:?}");
    };
    assert_eq!(*got_id, id);
    let mut state = store.reconcile_state().unwrap();
    let r = reconcile(&state, event, NOW + SEC);
    store.apply_reconciled(Some(id), &r.actions).unwrap();
    state.apply(&r.actions);

    assert!(store.pending_reconcile_events().unwrap().is_empty());
    let bead = store.bead(&bead_id("b-1")).unwrap().unwrap();
    assert_eq!(
        (bead.status, bead.assignee, bead.dispatch_attempts),
        (BeadStatus::Open, None, 1)
    );
    let agent = store.agent(&agent_id("polecat-1")).unwrap().unwrap();
    assert_eq!((agent.status, agent.hook), (AgentStatus::Idle, None));
    assert_eq!(store.registry_entry(&agent_id("polecat-1")).unwrap(), None);
    // The in-memory mirror agrees with the store (the registry is not part of it).
    assert_eq!(store.reconcile_state().unwrap(), state);
}

#[test]
fn set_hook_also_sets_the_registry_hook() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    stored_town(&store);
    let hook = |hook| Action::SetHook {
        agent: agent_id("refinery-1"),
        hook,
    };
    store
        .apply_reconciled(None, &[hook(Some(bead_id("b-1")))])
        .unwrap();
    let entry = store
        .registry_entry(&agent_id("refinery-1"))
        .unwrap()
        .unwrap();
    assert_eq!(entry.hook, Some(bead_id("b-1")));
    let agent = store.agent(&agent_id("refinery-1")).unwrap().unwrap();
    assert_eq!(agent.hook.as_deref(), Some("b-1"));
    store.apply_reconciled(None, &[hook(None)]).unwrap();
    assert_eq!(
        store
            .registry_entry(&agent_id("refinery-1"))
            .unwrap()
            .unwrap()
            .hook,
        None
    );
}

#[test]
fn a_failing_action_leaves_nothing_changed_and_the_event_unprocessed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    stored_town(&store);
    let id = store
        .enqueue(&ReconcileEvent::AgentExited {
            agent: agent_id("polecat-1"),
        })
        .unwrap();
    let before = store.reconcile_state().unwrap();
    let registry_before = store.registry().unwrap();

    let actions = [
        Action::PutBead(issue("b-new")),
        Action::SetHook {
            agent: agent_id("polecat-1"),
            hook: None,
        },
        Action::Unregister {
            agent: agent_id("refinery-1"),
        },
        Action::SetAgentStatus {
            agent: agent_id("ghost"),
            status: AgentStatus::Idle,
        },
    ];
    match store.apply_reconciled(Some(id), &actions) {
        Err(Error::UnknownAgent { agent }) => assert_eq!(agent, agent_id("ghost")),
        other => panic!("expected UnknownAgent, got {other:?}"),
    }
    assert_eq!(store.reconcile_state().unwrap(), before);
    assert_eq!(store.registry().unwrap(), registry_before);
    let pending: Vec<i64> = store
        .pending_reconcile_events()
        .unwrap()
        .iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(pending, [id]);

    // The same write without the bad action goes through, event and all; an event id
    // with no row (deleted with its bead) is fine.
    store.apply_reconciled(Some(id), &actions[..3]).unwrap();
    assert!(store.pending_reconcile_events().unwrap().is_empty());
    assert!(store.bead(&bead_id("b-new")).unwrap().is_some());
    store.apply_reconciled(Some(id + 100), &[]).unwrap();
}

#[test]
fn unparsable_event_rows_come_back_as_errors_among_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let good = ReconcileEvent::AgentExited {
        agent: agent_id("polecat-1"),
    };
    let ids = [
        store
            .enqueue_event(None, None, "bead_renamed", "{}")
            .unwrap(),
        store.enqueue(&good).unwrap(),
        store
            .enqueue_event(None, None, "agent_exited", "{not json")
            .unwrap(),
        store
            .enqueue_event(None, None, "agent_exited", r#"{"agent":"Bad Id"}"#)
            .unwrap(),
    ];
    let pending = store.pending_reconcile_events().unwrap();
    assert_eq!(pending.iter().map(|p| p.0).collect::<Vec<_>>(), ids);
    for (i, (_, parsed)) in pending.iter().enumerate() {
        match (i, parsed) {
            (1, Ok(event)) => assert_eq!(event, &good),
            (1, Err(e)) => panic!("{e}"),
            (_, Err(Error::InvalidEvent { .. })) => {}
            (_, other) => panic!("row {i}: expected InvalidEvent, got {other:?}"),
        }
    }
    // Marked processed, a bad row is not read again.
    for (id, parsed) in &pending {
        if parsed.is_err() {
            store.apply_reconciled(Some(*id), &[]).unwrap();
        }
    }
    let left: Vec<i64> = store
        .pending_reconcile_events()
        .unwrap()
        .iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(left, [ids[1]]);
}

/// The four reads of active work (ARCHITECTURE.md, *Lifecycle timings*) along the review
/// flow, from the store's rows: a working polecat, then an open merge request, then —
/// merged — nothing; a mayor alone never counts.
#[test]
fn the_review_flow_is_active_work_until_merged() {
    use gastown_core::policy::has_active_work;
    use gastown_core::store::town_view;

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    stored_town(&store);
    let active = |now| {
        let (agents, beads) = (store.agents().unwrap(), store.beads().unwrap());
        has_active_work(&town_view(&agents, &beads), now)
    };
    assert!(active(NOW), "polecat-1 works on b-1");

    let step = |event: ReconcileEvent, now| {
        let state = store.reconcile_state().unwrap();
        let r = reconcile(&state, &event, now);
        let id = store.enqueue(&event).unwrap();
        store.apply_reconciled(Some(id), &r.actions).unwrap();
    };
    let checked = |bead: &str, agent: &str, commits| ReconcileEvent::WorkChecked {
        bead: bead_id(bead),
        agent: agent_id(agent),
        branch: "polecat/b-1".into(),
        commits,
        head: Some("abc".into()),
    };
    step(checked("b-1", "polecat-1", 2), NOW + SEC);
    assert!(active(NOW + SEC), "the open merge request b-1-mr");

    let mut mr = store.bead(&bead_id("b-1-mr")).unwrap().unwrap();
    mr.status = BeadStatus::InProgress;
    mr.assignee = Some(agent_id("refinery-1"));
    store.update_bead(&mr).unwrap();
    store
        .set_hook(&agent_id("refinery-1"), Some("b-1-mr"))
        .unwrap();
    assert!(active(NOW + 2 * SEC), "the merge request in progress");

    step(checked("b-1-mr", "refinery-1", 0), NOW + 3 * SEC);
    let beads = store.beads().unwrap();
    assert!(
        beads.iter().all(|b| b.status == BeadStatus::Closed),
        "{beads:?}"
    );
    assert!(
        !active(NOW + 3 * SEC),
        "merged: only an idle town and a waiting mayor"
    );
}

#[test]
fn processed_events_older_than_the_kept_window_are_deleted_and_pending_ones_stay() {
    use gastown_core::store::PROCESSED_EVENTS_KEPT;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let exited = |i: i64| ReconcileEvent::AgentExited {
        agent: gastown_core::AgentId::new(format!("polecat-{i}")).unwrap(),
    };
    // The oldest event is never handled: no pruning may take it.
    let pending = store.enqueue(&exited(0)).unwrap();
    let mut last = pending;
    for i in 1..=PROCESSED_EVENTS_KEPT + 5 {
        last = store.enqueue(&exited(i)).unwrap();
        store.apply_reconciled(Some(last), &[]).unwrap();
    }
    let conn = Connection::open(dir.path().join("town.db")).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM events WHERE processed = 1"),
        PROCESSED_EVENTS_KEPT,
        "the newest processed events are kept"
    );
    assert_eq!(
        count("SELECT MIN(id) FROM events WHERE processed = 1"),
        last - PROCESSED_EVENTS_KEPT + 1
    );
    let still: Vec<i64> = store
        .pending_reconcile_events()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(still, vec![pending], "an unhandled event is never pruned");
}
