//! Agent kilo.db snapshots against real SQLite files in WAL mode, as the SDK server keeps
//! them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use gastown_core::snapshot::SnapshotStore;
use gastown_core::{AgentId, Error};
use rusqlite::Connection;

fn agent(id: &str) -> AgentId {
    AgentId::new(id).unwrap()
}

/// A live database in WAL mode with automatic checkpoints off, so commits stay in the
/// `-wal` file while this connection is open (as in a running SDK server).
fn live_db(path: &Path, rows: i64) -> Connection {
    let conn = Connection::open(path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.execute_batch(
        "CREATE TABLE session (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
         CREATE TABLE message (id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL, body TEXT);",
    )
    .unwrap();
    insert_rows(&conn, 0, rows);
    conn
}

/// Inserts sessions `from..from + n`, each with a message of 500 bytes (several pages).
fn insert_rows(conn: &Connection, from: i64, n: i64) {
    for i in from..from + n {
        conn.execute(
            "INSERT INTO session (id, title) VALUES (?1, ?2)",
            rusqlite::params![i, format!("session {i}")],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO message (session_id, body) VALUES (?1, ?2)",
            rusqlite::params![i, "x".repeat(500)],
        )
        .unwrap();
    }
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Writes `bytes` alone (no -wal) into a fresh dir and opens them, as hydrate would.
fn open_bytes(bytes: &[u8]) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kilo.db");
    std::fs::write(&path, bytes).unwrap();
    let conn = Connection::open(&path).unwrap();
    (dir, conn)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap().to_os_string();
    name.push("-wal");
    db.with_file_name(name)
}

/// Sessions in the snapshot file at `path` (opened from a copy, so the file is not touched).
fn sessions_in(path: &Path) -> i64 {
    let (_dir, conn) = open_bytes(&std::fs::read(path).unwrap());
    count(&conn, "session")
}

struct Fixture {
    _dir: tempfile::TempDir,
    live: PathBuf,
    store: SnapshotStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let live_dir = dir.path().join("live");
    std::fs::create_dir(&live_dir).unwrap();
    Fixture {
        live: live_dir.join("kilo.db"),
        store: SnapshotStore::new(dir.path().join("snapshots")),
        _dir: dir,
    }
}

#[test]
fn paths_follow_the_layout() {
    let store = SnapshotStore::new(PathBuf::from("/state/snapshots"));
    assert_eq!(
        store.path(&agent("mayor")),
        Path::new("/state/snapshots/mayor/kilo.db")
    );
    assert_eq!(
        store.prev_path(&agent("mayor")),
        Path::new("/state/snapshots/mayor/kilo.db.prev")
    );
}

#[test]
fn round_trip_from_bytes_includes_commits_still_in_the_wal() {
    let f = fixture();
    let writer = live_db(&f.live, 50);
    let db = std::fs::read(&f.live).unwrap();
    let wal = std::fs::read(wal_path(&f.live)).unwrap();
    assert!(!wal.is_empty(), "the rows must still be in the WAL");
    // Without its WAL the main file does not have the rows: the WAL matters.
    {
        let (_dir, conn) = open_bytes(&db);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'session'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }

    let mayor = AgentId::mayor();
    assert_eq!(f.store.load(&mayor).unwrap(), None);
    let info = f.store.take_from_bytes(&mayor, &db, Some(&wal)).unwrap();
    assert_eq!(info.path, f.store.path(&mayor));
    assert_eq!(info.bytes, std::fs::metadata(&info.path).unwrap().len());

    let loaded = f.store.load(&mayor).unwrap().expect("a snapshot");
    assert_eq!(loaded.len() as u64, info.bytes);
    // Header bytes 18/19 = 1: a rollback-journal file, complete without any -wal.
    assert_eq!(&loaded[18..20], &[1, 1]);
    let (_dir, conn) = open_bytes(&loaded);
    assert_eq!(count(&conn, "session"), 50);
    assert_eq!(count(&conn, "message"), 50);
    let title: String = conn
        .query_row("SELECT title FROM session WHERE id = 49", [], |r| r.get(0))
        .unwrap();
    assert_eq!(title, "session 49");
    drop(writer);
}

#[test]
fn take_from_path_reads_a_live_db_without_its_uncommitted_writes() {
    let f = fixture();
    let writer = live_db(&f.live, 20);
    writer.execute_batch("BEGIN").unwrap();
    insert_rows(&writer, 20, 5);

    let a = agent("polecat-1");
    let before = std::fs::read(&f.live).unwrap();
    f.store.take_from_path(&a, &f.live).unwrap();
    let (_dir, conn) = open_bytes(&f.store.load(&a).unwrap().unwrap());
    assert_eq!(count(&conn, "session"), 20, "committed rows only");

    writer.execute_batch("COMMIT").unwrap();
    f.store.take_from_path(&a, &f.live).unwrap();
    let (_dir2, conn) = open_bytes(&f.store.load(&a).unwrap().unwrap());
    assert_eq!(count(&conn, "session"), 25);

    // The source was opened read-only: its main file is as the writer left it.
    assert_eq!(std::fs::read(&f.live).unwrap(), before);
    assert_eq!(count(&writer, "session"), 25);
}

#[test]
fn take_from_path_is_consistent_while_another_connection_writes() {
    let f = fixture();
    drop(live_db(&f.live, 1));
    let stop = Arc::new(AtomicBool::new(false));
    // Each transaction adds one session and its message, so any consistent state has as
    // many sessions as messages.
    let writer = {
        let (path, stop) = (f.live.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let conn = Connection::open(&path).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            let mut next = 1;
            while !stop.load(Ordering::Relaxed) {
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                insert_rows(&conn, next, 1);
                conn.execute_batch("COMMIT").unwrap();
                next += 1;
            }
            next
        })
    };

    let a = agent("polecat-2");
    let mut last = 0;
    for _ in 0..8 {
        f.store.take_from_path(&a, &f.live).unwrap();
        let (_dir, conn) = open_bytes(&f.store.load(&a).unwrap().unwrap());
        let (sessions, messages) = (count(&conn, "session"), count(&conn, "message"));
        assert_eq!(sessions, messages, "a torn snapshot");
        assert!(sessions >= last, "snapshots go forward");
        last = sessions;
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(last <= written);
}

#[test]
fn rotation_keeps_the_previous_snapshot() {
    let f = fixture();
    let writer = live_db(&f.live, 1);
    let a = agent("refinery-1");
    f.store.take_from_path(&a, &f.live).unwrap();
    assert!(!f.store.prev_path(&a).exists());

    insert_rows(&writer, 1, 1);
    f.store.take_from_path(&a, &f.live).unwrap();
    assert_eq!(sessions_in(&f.store.path(&a)), 2);
    assert_eq!(sessions_in(&f.store.prev_path(&a)), 1);

    insert_rows(&writer, 2, 1);
    f.store.take_from_path(&a, &f.live).unwrap();
    assert_eq!(sessions_in(&f.store.path(&a)), 3);
    assert_eq!(sessions_in(&f.store.prev_path(&a)), 2);

    // Nothing else is left in the agent's dir (no temp files, no -wal/-shm).
    let mut names: Vec<String> = std::fs::read_dir(f.store.path(&a).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".lock", "kilo.db", "kilo.db.prev"]);
}

/// A rejected source: its name, the db bytes, the WAL bytes.
type BadSource = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// A real database file of several pages, cut in half.
fn truncated_db(f: &Fixture) -> Vec<u8> {
    let path = f.live.with_file_name("big.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE t (x TEXT)").unwrap();
    for _ in 0..200 {
        conn.execute("INSERT INTO t VALUES (?1)", [&"y".repeat(400)])
            .unwrap();
    }
    conn.close().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8 * 4096);
    bytes[..bytes.len() / 2].to_vec()
}

#[test]
fn bad_sources_are_rejected_and_both_snapshots_stay_intact() {
    let f = fixture();
    let writer = live_db(&f.live, 1);
    let a = agent("polecat-3");
    f.store.take_from_path(&a, &f.live).unwrap();
    insert_rows(&writer, 1, 1);
    f.store.take_from_path(&a, &f.live).unwrap();
    let current = std::fs::read(f.store.path(&a)).unwrap();
    let prev = std::fs::read(f.store.prev_path(&a)).unwrap();
    assert_ne!(current, prev);

    let bad_sources: Vec<BadSource> = vec![
        ("garbage", b"definitely not sqlite ".repeat(500), None),
        ("empty", Vec::new(), None),
        ("truncated", truncated_db(&f), None),
        (
            "garbage with a wal",
            vec![0xA5; 8192],
            Some(vec![0x5A; 4096]),
        ),
    ];
    for (name, db, wal) in bad_sources {
        let err = f
            .store
            .take_from_bytes(&a, &db, wal.as_deref())
            .unwrap_err();
        match &err {
            Error::Snapshot { path, message } => {
                assert_eq!(path, &f.store.path(&a), "{name}");
                assert!(!message.is_empty(), "{name}");
            }
            other => panic!("{name}: expected Error::Snapshot, got {other:?}"),
        }
        assert_eq!(std::fs::read(f.store.path(&a)).unwrap(), current, "{name}");
        assert_eq!(
            std::fs::read(f.store.prev_path(&a)).unwrap(),
            prev,
            "{name}"
        );
    }

    // A missing or garbage file on the host is rejected the same way.
    let garbage_path = f.live.with_file_name("garbage.db");
    std::fs::write(&garbage_path, b"not a database at all".repeat(300)).unwrap();
    for path in [garbage_path.clone(), f.live.with_file_name("missing.db")] {
        let err = f.store.take_from_path(&a, &path).unwrap_err();
        assert!(matches!(err, Error::Snapshot { .. }), "{err:?}");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }
    assert_eq!(std::fs::read(f.store.path(&a)).unwrap(), current);
    assert_eq!(std::fs::read(f.store.prev_path(&a)).unwrap(), prev);
    // The rejected source was not touched either.
    assert_eq!(
        std::fs::read(&garbage_path).unwrap(),
        b"not a database at all".repeat(300)
    );
    // And the good snapshot still loads.
    let (_dir, conn) = open_bytes(&f.store.load(&a).unwrap().unwrap());
    assert_eq!(count(&conn, "session"), 2);
}

#[test]
fn a_corrupted_snapshot_fails_to_load_and_is_left_in_place() {
    let f = fixture();
    let writer = live_db(&f.live, 100);
    let a = agent("polecat-4");
    f.store.take_from_path(&a, &f.live).unwrap();
    drop(writer);
    let path = f.store.path(&a);
    let good = std::fs::read(&path).unwrap();
    let page = 4096;
    assert!(good.len() > 4 * page);

    // Damage b-tree pages in the middle, then (separately) the header.
    let mut damaged_pages = good.clone();
    for b in &mut damaged_pages[page..3 * page] {
        *b = 0xEE;
    }
    let mut damaged_header = good.clone();
    damaged_header[..16].copy_from_slice(b"NOT SQLITE AT AL");
    let truncated = good[..good.len() / 2].to_vec();

    for (name, bytes) in [
        ("pages", damaged_pages),
        ("header", damaged_header),
        ("truncated", truncated),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let err = f.store.load(&a).unwrap_err();
        assert!(
            matches!(&err, Error::Snapshot { path: p, .. } if p == &path),
            "{name}: {err:?}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name}: left in place"
        );
    }
}

#[test]
fn a_missing_snapshot_with_a_prev_is_an_error_not_an_empty_db() {
    let f = fixture();
    let writer = live_db(&f.live, 1);
    let a = agent("polecat-5");
    f.store.take_from_path(&a, &f.live).unwrap();
    insert_rows(&writer, 1, 1);
    f.store.take_from_path(&a, &f.live).unwrap();
    std::fs::remove_file(f.store.path(&a)).unwrap();
    let err = f.store.load(&a).unwrap_err();
    assert!(matches!(err, Error::Snapshot { .. }), "{err:?}");
    assert!(err.to_string().contains("kilo.db.prev"), "{err}");
    assert!(f.store.prev_path(&a).exists());
}

#[test]
fn snapshots_of_different_agents_are_separate() {
    let f = fixture();
    let writer = live_db(&f.live, 3);
    let (a, b) = (agent("polecat-6"), agent("polecat-7"));
    f.store.take_from_path(&a, &f.live).unwrap();
    insert_rows(&writer, 3, 2);
    f.store.take_from_path(&b, &f.live).unwrap();
    assert_eq!(sessions_in(&f.store.path(&a)), 3);
    assert_eq!(sessions_in(&f.store.path(&b)), 5);
    assert!(!f.store.prev_path(&a).exists());
}

#[test]
fn take_from_path_recovers_a_wal_copied_without_its_shm() {
    let f = fixture();
    let writer = live_db(&f.live, 4);
    // Files copied out of a container: the db and its WAL, no -shm.
    let copy_dir = f.live.parent().unwrap().join("copied");
    std::fs::create_dir(&copy_dir).unwrap();
    let copy = copy_dir.join("kilo.db");
    std::fs::copy(&f.live, &copy).unwrap();
    std::fs::copy(wal_path(&f.live), wal_path(&copy)).unwrap();
    drop(writer);

    let a = agent("polecat-8");
    f.store.take_from_path(&a, &copy).unwrap();
    assert_eq!(sessions_in(&f.store.path(&a)), 4);
}
