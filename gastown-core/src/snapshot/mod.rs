//! Snapshots of agents' `kilo.db` (ARCHITECTURE.md, *Persistence*).
//!
//! The SDK server keeps its sessions in a SQLite database in WAL mode, so a plain file
//! copy of a live database can be torn. A snapshot is therefore taken with SQLite's online
//! backup API (one consistent read transaction), into a temp file beside the snapshot that
//! is verified (`PRAGMA integrity_check`) and fsynced before it replaces the current one
//! by rename. The replaced snapshot is kept as `kilo.db.prev`.
//!
//! ```text
//! <dir>/<agent>/kilo.db        the newest verified snapshot (self-contained: no -wal)
//! <dir>/<agent>/kilo.db.prev   the one before it
//! <dir>/<agent>/.lock          serialises takes of one agent (flock)
//! ```
//!
//! Every method blocks (file I/O and SQLite); async callers run them in
//! `tokio::task::spawn_blocking`.
//!
//! [`take_live`] snapshots an agent's `kilo.db` while its SDK server runs: it reads the
//! database and its WAL out of the container until it holds a pair that cannot be torn,
//! skips the take when the pair's content hash is the last one taken, and otherwise hands
//! the pair to [`SnapshotStore::take_from_bytes`] (module `live`).

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::ids::AgentId;

mod live;

pub use live::{
    take_live, ContentHash, LiveSnapshot, LiveSnapshotError, SourceRead, LIVE_READ_ATTEMPTS,
};

/// The snapshot's file name, the name the SDK server gives its database.
pub const SNAPSHOT_FILE: &str = "kilo.db";

/// The previous snapshot's file name.
pub const PREV_FILE: &str = "kilo.db.prev";

/// The per-agent lock file's name.
const LOCK_FILE: &str = ".lock";

/// The prefix of every temp file a take creates in an agent's directory; a take sweeps
/// leftovers (from a crash) with this prefix while it holds the lock.
const TEMP_PREFIX: &str = ".kilo.db.";

/// How long a source connection waits on a lock held by the SDK server, in ms.
const SOURCE_BUSY_TIMEOUT_MS: u64 = 5_000;

/// How often a backup that found the source busy or locked is retried, and the pause
/// between tries (ms): 100 × 50 ms gives a writer 5 s to let go.
const BACKUP_ATTEMPTS: u32 = 100;
const BACKUP_RETRY_PAUSE_MS: u64 = 50;

/// At most this many lines of a failed `PRAGMA integrity_check` go into the error.
const MAX_REPORTED_PROBLEMS: usize = 5;

/// What a take wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The snapshot file (`<dir>/<agent>/kilo.db`).
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The snapshots of a town's agents, under one host directory (the town's
/// `snapshots/` state dir).
///
/// Takes of one agent are serialised with a file lock, across threads and processes;
/// takes of different agents run in parallel. [`SnapshotStore::load`] needs no lock: the
/// current snapshot is only ever replaced by rename, so a reader sees a whole file.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    /// A store rooted at `dir`. Nothing is created until the first take.
    pub fn new(dir: PathBuf) -> SnapshotStore {
        SnapshotStore { dir }
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<agent>/kilo.db`, the agent's current snapshot (which may not exist).
    pub fn path(&self, agent: &AgentId) -> PathBuf {
        self.agent_dir(agent).join(SNAPSHOT_FILE)
    }

    /// `<dir>/<agent>/kilo.db.prev`, the agent's previous snapshot (which may not exist).
    pub fn prev_path(&self, agent: &AgentId) -> PathBuf {
        self.agent_dir(agent).join(PREV_FILE)
    }

    fn agent_dir(&self, agent: &AgentId) -> PathBuf {
        // Agent ids are validated to [a-z0-9_-], so this is one plain path component.
        self.dir.join(agent.as_str())
    }

    /// Takes a snapshot from a copy of the SDK server's database: `db` is `kilo.db` and
    /// `wal` its `kilo.db-wal` (when the server had one), copied out of the container. They
    /// are written to a private temp dir and backed up from there, so the commits that are
    /// still only in the WAL are part of the snapshot.
    ///
    /// # Errors
    /// [`Error::Snapshot`] when `db` is empty or not a SQLite database, the backup fails,
    /// or the result does not verify (a truncated or damaged database); the current
    /// snapshot and `kilo.db.prev` are then left byte-for-byte intact. [`Error::Io`]-like
    /// failures (scratch space, disk full) are reported as [`Error::Snapshot`] too.
    pub fn take_from_bytes(
        &self,
        agent: &AgentId,
        db: &[u8],
        wal: Option<&[u8]>,
    ) -> Result<SnapshotInfo> {
        let target = self.path(agent);
        let fail = |message: String| snapshot_err(&target, message);
        if db.is_empty() {
            return Err(fail("the source database is empty (0 bytes)".into()));
        }
        // The private copy: tempdir() is created 0700, and removed when dropped.
        let scratch = tempfile::Builder::new()
            .prefix("gastown-snapshot-")
            .tempdir()
            .map_err(|e| fail(format!("create a scratch dir: {e}")))?;
        let src_path = scratch.path().join(SNAPSHOT_FILE);
        fs::write(&src_path, db).map_err(|e| fail(format!("write the source copy: {e}")))?;
        if let Some(wal) = wal {
            let wal_path = scratch.path().join(format!("{SNAPSHOT_FILE}-wal"));
            fs::write(&wal_path, wal).map_err(|e| fail(format!("write the source WAL: {e}")))?;
        }
        // Read-write because the copy is ours: SQLite may need to recover the WAL into a
        // fresh -shm.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let src = open_source(&src_path, "the copied bytes", flags).map_err(fail)?;
        self.take(agent, &src)
    }

    /// Takes a snapshot of the database at `live_db` on the host. The database may be in
    /// use: the backup reads one consistent state of it, commits still in its WAL
    /// included and uncommitted writes excluded, and never writes to it (it is opened
    /// read-only; SQLite may add the `-shm` index beside it, as any reader of a WAL
    /// database does).
    ///
    /// # Errors
    /// [`Error::Snapshot`] when `live_db` is missing, empty or not a SQLite database, stays
    /// locked for more than 5 s, or the result does not verify; the current snapshot and
    /// `kilo.db.prev` are then left byte-for-byte intact.
    pub fn take_from_path(&self, agent: &AgentId, live_db: &Path) -> Result<SnapshotInfo> {
        let target = self.path(agent);
        let fail = |message: String| snapshot_err(&target, message);
        let len = fs::metadata(live_db)
            .map_err(|e| fail(format!("source {}: {e}", live_db.display())))?
            .len();
        if len == 0 {
            return Err(fail(format!(
                "the source database {} is empty (0 bytes)",
                live_db.display()
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let label = live_db.display().to_string();
        let src = open_source(live_db, &label, flags).map_err(fail)?;
        self.take(agent, &src)
    }

    /// Like [`SnapshotStore::load`], but a bad latest snapshot does not strand the agent:
    /// when the latest fails (unreadable, empty, not SQLite, fails `integrity_check`, or
    /// missing beside a `kilo.db.prev`) and `kilo.db.prev` verifies, the previous one is
    /// returned, the bad file is kept aside for inspection as `kilo.db.bad-<ms>` (never
    /// deleted), and [`Loaded::fell_back`] says why.
    ///
    /// # Errors
    /// The latest snapshot's [`Error::Snapshot`] when the previous one is missing or bad
    /// too; both files are then left as they are.
    pub fn load_with_fallback(&self, agent: &AgentId) -> Result<Option<Loaded>> {
        let latest_err = match self.load(agent) {
            Ok(bytes) => {
                return Ok(bytes.map(|bytes| Loaded {
                    bytes,
                    fell_back: None,
                }))
            }
            Err(e) => e,
        };
        let prev = self.prev_path(agent);
        let Ok(bytes) = fs::read(&prev) else {
            return Err(latest_err);
        };
        if bytes.is_empty() || verify_bytes(&bytes).is_err() {
            return Err(latest_err);
        }
        let latest = self.path(agent);
        if latest.exists() {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let aside = latest.with_file_name(format!("{SNAPSHOT_FILE}.bad-{stamp}"));
            fs::rename(&latest, &aside).map_err(|e| {
                snapshot_err(&latest, format!("keeping the bad snapshot aside: {e}"))
            })?;
        }
        // The previous snapshot becomes the latest again, so the next take rotates it
        // into `.prev` as usual.
        fs::copy(&prev, &latest)
            .map_err(|e| snapshot_err(&latest, format!("restoring the previous one: {e}")))?;
        Ok(Some(Loaded {
            bytes,
            fell_back: Some(latest_err.to_string()),
        }))
    }

    /// The agent's current snapshot as the bytes of a self-contained database (no WAL
    /// needed), verified first; `None` when the agent has no snapshot.
    ///
    /// # Errors
    /// [`Error::Snapshot`] when the snapshot is empty, not a SQLite database or fails
    /// `PRAGMA integrity_check` (the file is left in place for inspection), or when the
    /// snapshot is missing while a `kilo.db.prev` exists (someone removed it: an empty
    /// database must not silently replace the agent's sessions).
    pub fn load(&self, agent: &AgentId) -> Result<Option<Vec<u8>>> {
        let target = self.path(agent);
        let fail = |message: String| snapshot_err(&target, message);
        let bytes = match File::open(&target) {
            Ok(mut file) => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)
                    .map_err(|e| fail(format!("read: {e}")))?;
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let prev = self.prev_path(agent);
                if prev.exists() {
                    return Err(fail(format!(
                        "missing, but the previous snapshot {} exists; restore it by hand \
                         if it is wanted",
                        prev.display()
                    )));
                }
                return Ok(None);
            }
            Err(e) => return Err(fail(format!("open: {e}"))),
        };
        if bytes.is_empty() {
            return Err(fail("the snapshot is empty (0 bytes)".into()));
        }
        // Verify exactly these bytes, in a private copy, so the check neither races a
        // concurrent take nor leaves -wal/-shm files beside the snapshot.
        let scratch = tempfile::Builder::new()
            .prefix("gastown-snapshot-")
            .tempdir()
            .map_err(|e| fail(format!("create a scratch dir: {e}")))?;
        let copy = scratch.path().join(SNAPSHOT_FILE);
        fs::write(&copy, &bytes).map_err(|e| fail(format!("write the scratch copy: {e}")))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&copy, flags).map_err(|e| fail(format!("open: {e}")))?;
        verify(&conn).map_err(|message| fail(format!("corrupted: {message}")))?;
        Ok(Some(bytes))
    }

    /// Backs `src` up into a verified temp file beside the snapshot, then rotates it in.
    fn take(&self, agent: &AgentId, src: &Connection) -> Result<SnapshotInfo> {
        let target = self.path(agent);
        let fail = |message: String| snapshot_err(&target, message);
        let agent_dir = self.agent_dir(agent);
        fs::create_dir_all(&agent_dir)
            .map_err(|e| fail(format!("create {}: {e}", agent_dir.display())))?;

        let lock = File::create(agent_dir.join(LOCK_FILE))
            .map_err(|e| fail(format!("open the lock file: {e}")))?;
        lock.lock()
            .map_err(|e| fail(format!("lock the snapshot dir: {e}")))?;
        sweep_temp_files(&agent_dir);

        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(".tmp")
            .tempfile_in(&agent_dir)
            .map_err(|e| fail(format!("create a temp file: {e}")))?
            // Close our descriptor: closing one later would drop SQLite's POSIX locks.
            .into_temp_path();
        {
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let mut dst = Connection::open_with_flags(&tmp, flags)
                .map_err(|e| fail(format!("open the temp file: {e}")))?;
            backup_all(src, &mut dst).map_err(fail)?;
            // The backup copied the source's header, which says WAL; make the snapshot a
            // plain rollback-journal file, complete on its own.
            let mode: String = dst
                .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
                .map_err(|e| fail(format!("make the snapshot self-contained: {e}")))?;
            if !mode.eq_ignore_ascii_case("delete") {
                return Err(fail(format!(
                    "make the snapshot self-contained: journal mode stayed {mode:?}"
                )));
            }
            verify(&dst).map_err(|message| fail(format!("the backup is corrupted: {message}")))?;
            dst.close()
                .map_err(|(_, e)| fail(format!("close the temp file: {e}")))?;
        }
        let file = File::open(&tmp).map_err(|e| fail(format!("reopen the temp file: {e}")))?;
        file.sync_all()
            .map_err(|e| fail(format!("fsync the temp file: {e}")))?;
        let bytes = file
            .metadata()
            .map_err(|e| fail(format!("stat the temp file: {e}")))?
            .len();
        drop(file);

        self.rotate(agent, tmp).map_err(fail)?;
        tracing::info!(agent = %agent, bytes, path = %target.display(), "kilo.db snapshot taken");
        Ok(SnapshotInfo {
            path: target,
            bytes,
        })
    }

    /// current → `.prev`, `tmp` → current. The current snapshot is hard-linked to a temp
    /// name and renamed over `.prev`, so at every instant both names hold a whole file.
    fn rotate(&self, agent: &AgentId, tmp: tempfile::TempPath) -> Result<(), String> {
        let agent_dir = self.agent_dir(agent);
        let current = self.path(agent);
        if current.exists() {
            let prev_tmp = agent_dir.join(format!("{TEMP_PREFIX}prev.tmp"));
            let _ = fs::remove_file(&prev_tmp);
            if fs::hard_link(&current, &prev_tmp).is_err() {
                // A filesystem without hard links: copy instead.
                fs::copy(&current, &prev_tmp)
                    .and_then(|_| File::open(&prev_tmp)?.sync_all())
                    .map_err(|e| format!("keep the previous snapshot: {e}"))?;
            }
            fs::rename(&prev_tmp, self.prev_path(agent))
                .map_err(|e| format!("keep the previous snapshot: {e}"))?;
        }
        tmp.persist(&current)
            .map_err(|e| format!("install the new snapshot: {}", e.error))?;
        // Make the renames durable.
        File::open(&agent_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| format!("fsync {}: {e}", agent_dir.display()))
    }
}

fn snapshot_err(path: &Path, message: String) -> Error {
    Error::Snapshot {
        path: path.to_path_buf(),
        message,
    }
}

/// Opens a source database and checks it reads as SQLite; `label` names it in errors.
fn open_source(path: &Path, label: &str, flags: OpenFlags) -> Result<Connection, String> {
    let describe = |e: rusqlite::Error| format!("source {label}: {e}");
    let conn = Connection::open_with_flags(path, flags).map_err(describe)?;
    conn.busy_timeout(Duration::from_millis(SOURCE_BUSY_TIMEOUT_MS))
        .map_err(describe)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| {
        row.get::<_, i64>(0)
    })
    .map_err(describe)?;
    Ok(conn)
}

/// Copies every page of `src` into `dst` in one step, which reads one consistent state of
/// the source (a read transaction); retried while the source is busy or locked.
fn backup_all(src: &Connection, dst: &mut Connection) -> Result<(), String> {
    let backup = Backup::new(src, dst).map_err(|e| format!("start the backup: {e}"))?;
    for _ in 0..BACKUP_ATTEMPTS {
        match backup.step(-1).map_err(|e| format!("backup: {e}"))? {
            StepResult::Done => return Ok(()),
            StepResult::Busy | StepResult::Locked => {
                thread::sleep(Duration::from_millis(BACKUP_RETRY_PAUSE_MS));
            }
            // `More` after a step of all pages: the source changed under us; go again.
            _ => {}
        }
    }
    Err(format!(
        "backup: the source stayed locked for {} ms",
        u64::from(BACKUP_ATTEMPTS) * BACKUP_RETRY_PAUSE_MS
    ))
}

/// `PRAGMA integrity_check` must say `ok`, and `sqlite_master` must read.
/// Verifies `bytes` as a database in a private scratch copy.
fn verify_bytes(bytes: &[u8]) -> Result<(), String> {
    let scratch = tempfile::Builder::new()
        .prefix("gastown-snapshot-")
        .tempdir()
        .map_err(|e| format!("create a scratch dir: {e}"))?;
    let copy = scratch.path().join(SNAPSHOT_FILE);
    fs::write(&copy, bytes).map_err(|e| format!("write the scratch copy: {e}"))?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&copy, flags).map_err(|e| format!("open: {e}"))?;
    verify(&conn)
}

/// A snapshot loaded by [`SnapshotStore::load_with_fallback`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The database's bytes (self-contained, no WAL needed).
    pub bytes: Vec<u8>,
    /// `Some(why the latest was refused)` when these are the previous snapshot's bytes.
    pub fell_back: Option<String>,
}

fn verify(conn: &Connection) -> Result<(), String> {
    let problems = (|| -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        rows.collect()
    })()
    .map_err(|e| format!("integrity check: {e}"))?;
    if problems != ["ok"] {
        let shown: Vec<&str> = problems
            .iter()
            .take(MAX_REPORTED_PROBLEMS)
            .map(String::as_str)
            .collect();
        return Err(format!("integrity check: {}", shown.join("; ")));
    }
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| {
        row.get::<_, i64>(0)
    })
    .map_err(|e| format!("read the schema: {e}"))?;
    Ok(())
}

/// Removes temp files a crashed take left in `agent_dir`. Best effort: the caller holds
/// the agent's lock, so none of them belongs to a running take.
fn sweep_temp_files(agent_dir: &Path) {
    let Ok(entries) = fs::read_dir(agent_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}
