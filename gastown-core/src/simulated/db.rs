//! The simulated SDK server's `kilo.db`: a real, small SQLite database, so drains,
//! snapshots and restores work on it exactly as on kilo's own.
//!
//! The server keeps its sessions and `noReply` messages in two tables of its own
//! (`sim_session`, `sim_message`; kilo's real schema is not imitated). The file in the
//! container is the only copy: every change rebuilds it whole (rollback journal, so the
//! file is self-contained, with no `-wal`), and a restart, or a restore from a snapshot,
//! sees exactly what was written.
//!
//! The SQLite work runs inline, not in `spawn_blocking`: it takes a few ms of real time and
//! no virtual time, and a blocking task would be one more thing for a paused clock to reason
//! about.

use std::sync::{Arc, OnceLock};

use rusqlite::{params, Connection, OpenFlags};

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

/// A SQLite failure at `step`.
fn fail(step: &'static str, source: rusqlite::Error) -> Error {
    SimulatedError::Database { step, source }.into()
}

/// A host I/O failure at `step`.
fn fail_io(step: &'static str, source: std::io::Error) -> Error {
    SimulatedError::DatabaseIo { step, source }.into()
}

/// The bytes of an empty simulated `kilo.db`, built once per process.
///
/// # Errors
/// [`SimulatedError`] (in [`Error::Generic`]) when SQLite or the temp dir fails (then on every call).
pub(super) fn empty() -> Result<&'static [u8]> {
    static EMPTY: OnceLock<std::result::Result<Vec<u8>, Arc<SimulatedError>>> = OnceLock::new();
    EMPTY
        .get_or_init(|| encode_contents(&DbContents::default()).map_err(Arc::new))
        .as_deref()
        .map_err(|e| {
            SimulatedError::EmptyDatabase {
                source: Arc::clone(e),
            }
            .into()
        })
}

/// Builds a database holding `contents` and returns its bytes.
///
/// # Errors
/// [`SimulatedError`] (in [`Error::Generic`]) when SQLite or the temp dir fails.
pub(super) fn encode(contents: &DbContents) -> Result<Vec<u8>> {
    encode_contents(contents).map_err(Error::from)
}

/// [`encode`] with the simulator's own error, so [`empty`] can keep its first failure.
fn encode_contents(contents: &DbContents) -> std::result::Result<Vec<u8>, SimulatedError> {
    let fail = |step, source| SimulatedError::Database { step, source };
    let fail_io = |step, source| SimulatedError::DatabaseIo { step, source };
    let dir = tempfile::Builder::new()
        .prefix("gastown-sim-db-")
        .tempdir()
        .map_err(|e| fail_io("temp dir", e))?;
    let path = dir.path().join("kilo.db");
    {
        let mut conn = Connection::open(&path).map_err(|e| fail("create", e))?;
        let tx = conn.transaction().map_err(|e| fail("begin", e))?;
        tx.execute_batch(SCHEMA).map_err(|e| fail("schema", e))?;
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
        conn.close().map_err(|(_, e)| fail("close", e))?;
    }
    std::fs::read(&path).map_err(|e| fail_io("read back", e))
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
    let dir = tempfile::Builder::new()
        .prefix("gastown-sim-db-")
        .tempdir()
        .map_err(|e| fail_io("temp dir", e))?;
    let path = dir.path().join("kilo.db");
    std::fs::write(&path, bytes).map_err(|e| fail_io("copy", e))?;
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| fail("open", e))?;
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
        let err = decode(b"definitely not sqlite, but long enough to have a header....")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a database"), "{err}");
    }
}
