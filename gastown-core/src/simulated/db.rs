//! The simulated SDK server's `kilo.db`: a real, small SQLite database, so drains,
//! snapshots and restores work on it exactly as on kilo's own.
//!
//! The server keeps its sessions and `noReply` messages in two tables of its own
//! (`sim_session`, `sim_message`; kilo's real schema is not imitated). The file in the
//! container is the only copy: every change rebuilds it whole, in memory, and stores the
//! serialized image (`sqlite3_serialize`: the file format, self-contained, with no
//! `-wal`), and a restart, or a restore from a snapshot, sees exactly what was written.
//!
//! The SQLite work runs inline, not in `spawn_blocking`: it takes well under a ms of real
//! time and no virtual time, and a blocking task would be one more thing for a paused clock
//! to reason about.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use rusqlite::{params, Connection, OpenFlags, MAIN_DB};

use super::error::SimulatedError;
use crate::error::{Error, Result};
use crate::sdk::SessionInfo;

/// A message recorded by `POST /session/{id}/message` with `noReply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMessage {
    /// The message id (`msg_sim_<n>`).
    pub id: String,
    /// The session it belongs to.
    pub session_id: String,
    /// The model's provider (`anthropic`).
    pub provider_id: String,
    /// The model (`claude-sonnet-4.6`).
    pub model_id: String,
    /// The text.
    pub text: String,
    /// When it was recorded, in ms since the Unix epoch (simulated clock).
    pub created_ms: i64,
}

/// What a simulated `kilo.db` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DbContents {
    pub(super) sessions: Vec<SessionInfo>,
    pub(super) messages: Vec<SimMessage>,
}

const SCHEMA: &str = "
    CREATE TABLE sim_session (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE sim_message (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        provider_id TEXT NOT NULL,
        model_id TEXT NOT NULL,
        text TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    PRAGMA user_version = 1;
";

/// A host I/O failure at `step`.
fn fail_io(step: &'static str, source: std::io::Error) -> Error {
    SimulatedError::DatabaseIo { step, source }.into()
}

/// A SQLite failure at `step`.
fn fail(step: &'static str, source: rusqlite::Error) -> Error {
    SimulatedError::Database { step, source }.into()
}

/// The bytes of an empty simulated `kilo.db`, built once per process.
///
/// # Errors
/// [`SimulatedError`] (in [`Error::Generic`]) when SQLite fails (then on every call).
pub(super) fn empty() -> Result<&'static [u8]> {
    static EMPTY: OnceLock<std::result::Result<Vec<u8>, Arc<SimulatedError>>> = OnceLock::new();
    EMPTY
        .get_or_init(|| build_empty().map_err(Arc::new))
        .as_deref()
        .map_err(|e| {
            SimulatedError::EmptyDatabase {
                source: Arc::clone(e),
            }
            .into()
        })
}

/// The empty database: the schema in the smallest page size (a database of a few rows is
/// three pages, and a simulated town of thousands of agents keeps one per agent in
/// memory), built in memory and serialized — the SQLite file format, self-contained.
fn build_empty() -> std::result::Result<Vec<u8>, SimulatedError> {
    let fail = |step, source| SimulatedError::Database { step, source };
    let conn = Connection::open_in_memory().map_err(|e| fail("create", e))?;
    conn.execute_batch("PRAGMA page_size = 512")
        .map_err(|e| fail("page size", e))?;
    conn.execute_batch(SCHEMA).map_err(|e| fail("schema", e))?;
    serialized(conn)
}

fn serialized(mut conn: Connection) -> std::result::Result<Vec<u8>, SimulatedError> {
    conn.serialize(MAIN_DB)
        .map(|data| data.to_vec())
        .map_err(|source| SimulatedError::Database {
            step: "serialize",
            source,
        })
}

thread_local! {
    /// One in-memory connection per thread, reused: each use replaces its database with
    /// `sqlite3_deserialize`, so a change costs no connection open (which registers every
    /// bundled extension) and no temp file, fsync or read back — the costs that made the
    /// simulator, not the actors, the bulk of a many-town run.
    static SCRATCH: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's scratch connection, opening it on first use.
fn with_scratch<T>(f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
    SCRATCH.with(|cell| {
        let mut slot = cell.borrow_mut();
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => Connection::open_in_memory().map_err(|e| fail("create", e))?,
        };
        let result = f(&mut conn);
        // A failure may leave the connection mid-statement: the next use opens afresh.
        if result.is_ok() {
            *slot = Some(conn);
        }
        result
    })
}

/// Builds a database holding `contents` (the empty one, with its rows added) and returns
/// its bytes.
///
/// # Errors
/// [`SimulatedError`] (in [`Error::Generic`]) when SQLite fails.
pub(super) fn encode(contents: &DbContents) -> Result<Vec<u8>> {
    let template = empty()?;
    with_scratch(|conn| {
        conn.deserialize_read_exact(MAIN_DB, template, template.len(), false)
            .map_err(|e| fail("open", e))?;
        let tx = conn.transaction().map_err(|e| fail("begin", e))?;
        for s in &contents.sessions {
            tx.execute(
                "INSERT INTO sim_session VALUES (?1, ?2, ?3, ?4)",
                params![s.id, s.title, s.created_ms, s.updated_ms],
            )
            .map_err(|e| fail("insert session", e))?;
        }
        for m in &contents.messages {
            tx.execute(
                "INSERT INTO sim_message VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    m.id,
                    m.session_id,
                    m.provider_id,
                    m.model_id,
                    m.text,
                    m.created_ms
                ],
            )
            .map_err(|e| fail("insert message", e))?;
        }
        tx.commit().map_err(|e| fail("commit", e))?;
        conn.serialize(MAIN_DB)
            .map(|data| data.to_vec())
            .map_err(|e| fail("serialize", e))
    })
}

/// Reads a simulated `kilo.db`. A database without the simulator's tables (one made by
/// something else) holds nothing.
///
/// # Errors
/// [`SimulatedError`] (in [`Error::Generic`]) when `bytes` are not a SQLite database (SQLite's message, e.g. "file
/// is not a database"), or SQLite or the temp dir fails.
pub(super) fn decode(bytes: &[u8]) -> Result<DbContents> {
    if empty().is_ok_and(|e| e == bytes) {
        return Ok(DbContents::default());
    }
    let in_memory = with_scratch(|conn| {
        conn.deserialize_read_exact(MAIN_DB, bytes, bytes.len(), true)
            .map_err(|e| fail("open", e))?;
        read_contents(conn)
    });
    match in_memory {
        Ok(contents) => Ok(contents),
        // Bytes that are no valid image: read them as a file, so that odd inputs (a
        // 1-byte file is an empty database to SQLite's file layer) get exactly what
        // kilo's SQLite would make of them, and its message.
        Err(_) => decode_file(bytes),
    }
}

/// [`decode`] through a temporary file (the slow path, for bytes that are no image).
fn decode_file(bytes: &[u8]) -> Result<DbContents> {
    let dir = tempfile::Builder::new()
        .prefix("gastown-sim-db-")
        .tempdir()
        .map_err(|e| fail_io("temp dir", e))?;
    let path = dir.path().join("kilo.db");
    std::fs::write(&path, bytes).map_err(|e| fail_io("copy", e))?;
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| fail("open", e))?;
    read_contents(&conn)
}

/// The simulator's tables in `conn` (none when they are absent).
fn read_contents(conn: &Connection) -> Result<DbContents> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| fail("read", e))?;
    let mut contents = DbContents::default();
    if tables.iter().any(|t| t == "sim_session") {
        contents.sessions = conn
            .prepare(
                "SELECT id, title, created_ms, updated_ms FROM sim_session ORDER BY created_ms, id",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok(SessionInfo {
                        id: r.get(0)?,
                        title: r.get(1)?,
                        created_ms: r.get(2)?,
                        updated_ms: r.get(3)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| fail("read sessions", e))?;
    }
    if tables.iter().any(|t| t == "sim_message") {
        contents.messages = conn
            .prepare(
                "SELECT id, session_id, provider_id, model_id, text, created_ms \
                 FROM sim_message ORDER BY created_ms, id",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok(SimMessage {
                        id: r.get(0)?,
                        session_id: r.get(1)?,
                        provider_id: r.get(2)?,
                        model_id: r.get(3)?,
                        text: r.get(4)?,
                        created_ms: r.get(5)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| fail("read messages", e))?;
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let contents = DbContents {
            sessions: vec![SessionInfo {
                id: "ses_sim_1".into(),
                title: "mayor".into(),
                created_ms: 5,
                updated_ms: 7,
            }],
            messages: vec![SimMessage {
                id: "msg_sim_1".into(),
                session_id: "ses_sim_1".into(),
                provider_id: "anthropic".into(),
                model_id: "m".into(),
                text: "hi".into(),
                created_ms: 7,
            }],
        };
        let bytes = encode(&contents).unwrap();
        assert!(bytes.starts_with(b"SQLite format 3\0"));
        assert_eq!(decode(&bytes).unwrap(), contents);
        assert_eq!(decode(empty().unwrap()).unwrap(), DbContents::default());
        assert_eq!(decode(&[]).unwrap(), DbContents::default());
        assert_eq!(
            decode(b"x").unwrap(),
            DbContents::default(),
            "as SQLite reads it"
        );
        let err = decode(b"definitely not sqlite, but long enough to have a header....")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a database"), "{err}");
    }
}
