//! Live (turn-boundary) snapshots of a `kilo.db` on the local runtime
//! (`gastown_core::snapshot::take_live`): consistency under a concurrent writer that
//! checkpoints and restarts its WAL, deduplication by content hash, typed errors that
//! leave the previous snapshot intact, and a real `kilo serve` snapshotted while it runs
//! (skipped with a line on stderr when kilo is absent, unless `GASTOWN_REQUIRE_KILO=1`).

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use gastown::core::snapshot::{
    take_live, LiveSnapshot, LiveSnapshotError, SnapshotStore, LIVE_READ_ATTEMPTS,
};
use gastown::core::{
    AgentId, ContainerOptions, ContainerPath, ContainerRuntime, ContainerRuntimeExt, Error, TownId,
};
use gastown::local::LocalRuntime;
use rusqlite::{Connection, OpenFlags};
use support::local_kilo::LocalKilo;
use tempfile::TempDir;

const DB: &str = "/agents/mayor/data/kilo/kilo.db";

/// Live snapshots taken while the writer runs.
const TAKES: u32 = 100;

/// A started local container, a snapshot store, and the ids.
struct Fixture {
    _root: TempDir,
    rt: Arc<LocalRuntime>,
    town: TownId,
    agent: AgentId,
    db: ContainerPath,
    store: SnapshotStore,
}

impl Fixture {
    async fn new() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let rt = Arc::new(LocalRuntime::new(root.path().join("containers")));
        let town = TownId::new("live").unwrap();
        rt.start(&town, &ContainerOptions::default()).await.unwrap();
        let db = ContainerPath::new(DB).unwrap();
        rt.create_dir_all(&town, &db.parent().unwrap())
            .await
            .unwrap();
        let store = SnapshotStore::new(root.path().join("snapshots"));
        Fixture {
            rt,
            town,
            agent: AgentId::new("mayor").unwrap(),
            db,
            store,
            _root: root,
        }
    }

    fn host_db(&self) -> PathBuf {
        self.rt.host_path(&self.town, &self.db)
    }

    async fn take(
        &self,
        last: Option<&gastown::core::snapshot::ContentHash>,
    ) -> Result<LiveSnapshot, LiveSnapshotError> {
        take_live(
            self.rt.as_ref(),
            &self.town,
            &self.agent,
            &self.db,
            &self.store,
            last,
        )
        .await
    }
}

/// The schema the writer fills: `rows` gets one row per transaction, and `total.n` and the
/// 64 `stamp` rows (spread over ~32 pages) are set to the row count in the same
/// transaction, so a snapshot mixing pages of different commits shows as a mismatch.
fn create_schema(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA wal_autocheckpoint = 1000;
         CREATE TABLE rows (seq INTEGER PRIMARY KEY, payload TEXT NOT NULL);
         CREATE INDEX rows_payload ON rows (payload);
         CREATE TABLE total (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
         INSERT INTO total VALUES (1, 0);
         CREATE TABLE stamp (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, pad BLOB NOT NULL);
         WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 64)
         INSERT INTO stamp SELECT i, 0, zeroblob(1500) FROM k;",
    )
    .unwrap();
    conn
}

/// Appends row `seq` (a 300-character payload SQLite derives from it) in one transaction.
fn append(conn: &Connection, seq: i64) {
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn.execute(
        "INSERT INTO rows VALUES (?1, printf('%0300d', ?1 * 7919))",
        [seq],
    )
    .unwrap();
    conn.execute("UPDATE total SET n = ?1", [seq]).unwrap();
    conn.execute("UPDATE stamp SET n = ?1", [seq]).unwrap();
    conn.execute_batch("COMMIT").unwrap();
}

/// Opens a snapshot file read-only, checks it, and returns its row count.
fn check_snapshot(path: &Path) -> i64 {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "{}", path.display());
    let (count, max, total, bad, stale): (i64, i64, i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM rows), (SELECT coalesce(max(seq), 0) FROM rows),
                    (SELECT n FROM total),
                    (SELECT count(*) FROM rows WHERE payload != printf('%0300d', seq * 7919)),
                    (SELECT count(*) FROM stamp WHERE n != (SELECT n FROM total))",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(count, max, "rows are not a prefix 1..=n");
    assert_eq!(count, total, "rows and total disagree: a torn snapshot");
    assert_eq!(bad, 0, "payloads damaged");
    assert_eq!(stale, 0, "stamps of another commit: a torn snapshot");
    count
}

/// A writer thread commits small transactions as fast as it can while the test takes live
/// snapshots, and checkpoints every 25 commits, cycling PASSIVE, RESTART and TRUNCATE (each
/// restart or truncation races the reads). Every snapshot must verify and hold a prefix of
/// the rows written, never fewer than the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_snapshots_under_a_concurrent_writer_are_consistent_prefixes() {
    let f = Fixture::new().await;
    let path = f.host_db();
    drop(create_schema(&path));
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicI64::new(0));
    let writer = {
        let (stop, committed, path) = (stop.clone(), committed.clone(), path.clone());
        thread::spawn(move || {
            let conn = Connection::open(&path).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 1000")
                .unwrap();
            let modes = ["PASSIVE", "RESTART", "TRUNCATE"];
            let mut checkpoints = 0usize;
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) && seq < 40_000 {
                seq += 1;
                append(&conn, seq);
                committed.store(seq, Ordering::SeqCst);
                if seq % 25 == 0 {
                    let mode = modes[checkpoints % modes.len()];
                    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
                        .unwrap();
                    checkpoints += 1;
                }
                thread::sleep(Duration::from_micros(200));
            }
            (seq, checkpoints)
        })
    };

    let mut last = None;
    let mut previous = 0;
    let (mut taken, mut retried) = (0, 0);
    for _ in 0..TAKES {
        let snapshot = f.take(last.as_ref()).await.expect("a live snapshot");
        let after = committed.load(Ordering::SeqCst);
        retried += u32::from(snapshot.source().attempts > 1);
        if let LiveSnapshot::Taken { info, .. } = &snapshot {
            taken += 1;
            let count = check_snapshot(&info.path);
            assert!(
                count >= previous,
                "went back from {previous} rows to {count}"
            );
            // A commit can land between its COMMIT and the counter's store.
            assert!(count <= after + 1, "{count} rows, only {after} committed");
            previous = count;
        }
        last = Some(*snapshot.hash());
    }
    stop.store(true, Ordering::Relaxed);
    let (written, checkpoints) = writer.join().unwrap();
    eprintln!(
        "{taken} snapshots taken, {retried} needed a retry; last held {previous} of \
         {written} rows; {checkpoints} forced checkpoints"
    );
    assert!(
        taken >= TAKES / 2,
        "only {taken} of {TAKES} takes saw a change"
    );
    assert!(previous > 0 && checkpoints > 0);

    // Quiet now: the final snapshot holds every row written.
    let snapshot = f.take(last.as_ref()).await.unwrap();
    if let LiveSnapshot::Taken { info, .. } = &snapshot {
        assert_eq!(check_snapshot(&info.path), written);
    } else {
        assert_eq!(check_snapshot(&f.store.path(&f.agent)), written);
    }
}

/// Two takes with no write between: the second is skipped and the store untouched; a write
/// makes the next take real, and the one before becomes `kilo.db.prev`.
#[tokio::test]
async fn an_unchanged_database_is_skipped_by_hash() {
    let f = Fixture::new().await;
    let conn = create_schema(&f.host_db());
    append(&conn, 1);
    // `conn` stays open, so the WAL stays beside the database, as with a running kilo.
    assert!(f.host_db().with_extension("db-wal").exists());

    let first = f.take(None).await.unwrap();
    let LiveSnapshot::Taken {
        hash, info, source, ..
    } = &first
    else {
        panic!("the first take must write: {first:?}");
    };
    assert!(source.wal_bytes.is_some_and(|b| b > 0), "{source:?}");
    assert_eq!(check_snapshot(&info.path), 1);
    let bytes = std::fs::read(&info.path).unwrap();
    let modified = std::fs::metadata(&info.path).unwrap().modified().unwrap();

    let second = f.take(Some(hash)).await.unwrap();
    assert!(second.is_skipped(), "{second:?}");
    assert_eq!(second.hash(), hash);
    assert_eq!(std::fs::read(&info.path).unwrap(), bytes);
    assert_eq!(
        std::fs::metadata(&info.path).unwrap().modified().unwrap(),
        modified
    );
    assert!(!f.store.prev_path(&f.agent).exists(), "a skip wrote .prev");

    // No `last`: always a take.
    assert!(!f.take(None).await.unwrap().is_skipped());

    append(&conn, 2);
    let third = f.take(Some(hash)).await.unwrap();
    let LiveSnapshot::Taken {
        hash: new, info, ..
    } = &third
    else {
        panic!("a write must make a take: {third:?}");
    };
    assert_ne!(new, hash);
    assert_eq!(check_snapshot(&info.path), 2);
    assert_eq!(std::fs::read(f.store.prev_path(&f.agent)).unwrap(), bytes);
}

/// Garbage, a truncated database, a missing one and a stopped container are typed errors,
/// and the previous snapshot stays byte-for-byte as it was.
#[tokio::test]
async fn bad_sources_are_typed_errors_and_keep_the_previous_snapshot() {
    let f = Fixture::new().await;
    let conn = create_schema(&f.host_db());
    for seq in 1..=200 {
        append(&conn, seq);
    }
    drop(conn); // checkpoints and deletes the WAL
    let good = f.take(None).await.unwrap();
    assert!(!good.is_skipped());
    let current = std::fs::read(f.store.path(&f.agent)).unwrap();
    let real_db = std::fs::read(f.host_db()).unwrap();
    let assert_intact = || {
        assert_eq!(std::fs::read(f.store.path(&f.agent)).unwrap(), current);
        assert!(!f.store.prev_path(&f.agent).exists());
    };

    let garbage: Vec<u8> = b"this is not a database ".repeat(400);
    f.rt.put_file(&f.town, &f.db, &garbage).await.unwrap();
    let err = f.take(Some(good.hash())).await.unwrap_err();
    assert!(
        matches!(
            &err,
            LiveSnapshotError::Take {
                source: Error::Snapshot { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some());
    assert_intact();

    f.rt.put_file(&f.town, &f.db, &real_db[..real_db.len() / 2])
        .await
        .unwrap();
    let err = f.take(None).await.unwrap_err();
    assert!(matches!(err, LiveSnapshotError::Take { .. }), "{err:?}");
    assert_intact();

    std::fs::remove_file(f.host_db()).unwrap();
    let err = f.take(None).await.unwrap_err();
    assert!(
        matches!(err, LiveSnapshotError::DatabaseMissing { .. }),
        "{err:?}"
    );

    f.rt.put_file(&f.town, &f.db, &real_db).await.unwrap();
    f.rt.stop(&f.town, Duration::from_secs(1)).await.unwrap();
    let err = f.take(None).await.unwrap_err();
    assert!(
        matches!(
            &err,
            LiveSnapshotError::Read {
                source: Error::ContainerNotRunning { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_intact();
}

/// A database that changes on every read, or a WAL whose header does, is never taken: after
/// the bounded attempts the take fails with a typed error saying which.
#[tokio::test]
async fn a_source_that_never_settles_is_a_typed_error() {
    let f = Fixture::new().await;
    drop(create_schema(&f.host_db()));
    let moving_db = support::flaky::Flaky::new(f.rt.clone(), "kilo.db");
    let err = take_live(&moving_db, &f.town, &f.agent, &f.db, &f.store, None)
        .await
        .unwrap_err();
    let LiveSnapshotError::Unstable {
        attempts,
        db_changes,
        wal_restarts,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (attempts, db_changes, wal_restarts),
        (LIVE_READ_ATTEMPTS, LIVE_READ_ATTEMPTS, 0)
    );

    let moving_wal = support::flaky::Flaky::new(f.rt.clone(), "kilo.db-wal");
    let err = take_live(&moving_wal, &f.town, &f.agent, &f.db, &f.store, None)
        .await
        .unwrap_err();
    let LiveSnapshotError::Unstable {
        db_changes,
        wal_restarts,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!((db_changes, wal_restarts), (0, LIVE_READ_ATTEMPTS));
    assert!(!f.store.path(&f.agent).exists(), "nothing was taken");
}

/// The real kilo: a turn, then a live snapshot while kilo keeps running, read back with
/// rusqlite: the session, the user's text and the scripted reply are in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_kilo_is_snapshotted_with_its_session() {
    let Some(bin) = gastown::core::kilo::test_binary() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let kilo = LocalKilo::start(&bin, &root.path().join("containers")).await;
    let session = kilo.client.create_session("live snapshot").await.unwrap();
    kilo.turn(&session.id, "remember the word marmalade", 1)
        .await;
    kilo.settle().await;

    let store = SnapshotStore::new(root.path().join("snapshots"));
    let db = kilo.layout.kilo_db();
    let taken = take_live(&kilo.rt, &kilo.town, &kilo.agent, &db, &store, None)
        .await
        .unwrap();
    let LiveSnapshot::Taken { info, source, .. } = &taken else {
        panic!("{taken:?}");
    };
    eprintln!("kilo snapshot: {source:?}, {} bytes", info.bytes);
    assert!(kilo.client.health().await.is_ok(), "kilo kept running");

    let conn = Connection::open_with_flags(&info.path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let sessions: i64 = conn
        .query_row(
            "SELECT count(*) FROM session WHERE id = ?1",
            [&session.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sessions, 1, "the session is in the snapshot");
    let roles: Vec<String> = conn
        .prepare("SELECT json_extract(data, '$.role') FROM message WHERE session_id = ?1 ORDER BY time_created, id")
        .unwrap()
        .query_map([&session.id], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(roles, ["user", "assistant"]);
    let texts: Vec<String> = conn
        .prepare(
            "SELECT json_extract(data, '$.text') FROM part
             WHERE session_id = ?1 AND json_extract(data, '$.type') = 'text'",
        )
        .unwrap()
        .query_map([&session.id], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(texts.iter().any(|t| t.contains("marmalade")), "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t == gastown_scripted_model::DEFAULT_TEXT),
        "{texts:?}"
    );

    // Nothing happened since: the next take is skipped.
    let again = take_live(
        &kilo.rt,
        &kilo.town,
        &kilo.agent,
        &db,
        &store,
        Some(taken.hash()),
    )
    .await
    .unwrap();
    assert!(again.is_skipped(), "{again:?}");
    kilo.stop().await;
}
