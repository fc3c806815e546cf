//! The schema, as an ordered list of migrations keyed by `PRAGMA user_version`.
//!
//! Migration `i` (0-based) moves a file from version `i` to `i + 1`. Never edit a shipped
//! migration; append a new one.

use rusqlite::{Connection, TransactionBehavior};

use super::store_err;
use crate::error::{Error, Result};

/// Version 1: agents, registry, key/value, timestamps, secrets, beads, events.
///
/// Role and status columns hold the names of [`Role`](crate::Role) and
/// [`AgentStatus`](crate::AgentStatus) without CHECK constraints: the code parses them on
/// read, and a new variant then needs no table rebuild.
const V1: &str = "
CREATE TABLE agents (
    id               TEXT PRIMARY KEY NOT NULL,
    role             TEXT NOT NULL,
    status           TEXT NOT NULL,
    hook             TEXT,
    session_id       TEXT,
    config_hash      TEXT,
    last_activity_ms INTEGER,
    heartbeat_ms     INTEGER
) STRICT;

CREATE TABLE registry (
    agent_id TEXT PRIMARY KEY NOT NULL,
    role     TEXT NOT NULL
) STRICT;

CREATE TABLE kv (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE times (
    key TEXT PRIMARY KEY NOT NULL,
    ms  INTEGER NOT NULL
) STRICT;

CREATE TABLE secrets (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE beads (
    id       TEXT PRIMARY KEY NOT NULL,
    kind     TEXT NOT NULL,
    status   TEXT NOT NULL,
    assignee TEXT
) STRICT;

CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    bead_id   TEXT,
    agent_id  TEXT,
    kind      TEXT NOT NULL,
    payload   TEXT NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX events_pending ON events (id) WHERE processed = 0;
CREATE INDEX events_bead ON events (bead_id) WHERE bead_id IS NOT NULL;
CREATE INDEX events_agent ON events (agent_id) WHERE agent_id IS NOT NULL;
";

/// Version 2: what the reconciler needs. Beads gain their text, rig, branch, the bead they
/// were opened for (a merge request's issue), the dispatch retry budget's counters and
/// their times; registry rows gain what an agent is resumed with (models, rig, branch,
/// hook). Every new column is nullable or has a default, so V1 rows are kept as they are
/// (a V1 bead reads as created at 0 ms, never dispatched).
const V2: &str = "
ALTER TABLE beads ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE beads ADD COLUMN body TEXT NOT NULL DEFAULT '';
ALTER TABLE beads ADD COLUMN rig TEXT;
ALTER TABLE beads ADD COLUMN branch TEXT;
ALTER TABLE beads ADD COLUMN head TEXT;
ALTER TABLE beads ADD COLUMN source_bead TEXT;
ALTER TABLE beads ADD COLUMN dispatch_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE beads ADD COLUMN last_dispatch_ms INTEGER;
ALTER TABLE beads ADD COLUMN last_error TEXT;
ALTER TABLE beads ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE beads ADD COLUMN updated_ms INTEGER NOT NULL DEFAULT 0;

ALTER TABLE registry ADD COLUMN model TEXT;
ALTER TABLE registry ADD COLUMN small_model TEXT;
ALTER TABLE registry ADD COLUMN rig TEXT;
ALTER TABLE registry ADD COLUMN branch TEXT;
ALTER TABLE registry ADD COLUMN hook TEXT;
";

/// The migrations, oldest first.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this build writes and understands: the number of migrations.
/// A file with a higher `user_version` is refused.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The file's `PRAGMA user_version`. It is the first read of the file, so a file that is
/// not SQLite fails here.
pub(super) fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Refuses a schema newer than [`SCHEMA_VERSION`]; `location` names the file in the error.
///
/// # Errors
/// [`Error::InvalidConfig`] when `version` is newer (the file was written by a newer
/// gastown and is left untouched).
pub(super) fn check_known(version: u32, location: &str) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(Error::InvalidConfig {
            message: format!(
                "town store {location} has schema version {version}, newer than the {SCHEMA_VERSION} \
                 this build of gastown understands; it was left untouched (use a newer gastown)"
            ),
        });
    }
    Ok(())
}

/// Applies every missing migration, each in its own `BEGIN IMMEDIATE` transaction that
/// re-reads the version under the write lock, so concurrent openers apply each one once.
///
/// # Errors
/// [`Error::Store`] naming `location` and the version migrated from when a statement
/// fails (that migration is rolled back; earlier ones stay); [`Error::InvalidConfig`] as
/// [`check_known`].
pub(super) fn migrate(conn: &mut Connection, location: &str) -> Result<()> {
    loop {
        let version = user_version(conn)
            .map_err(store_err(format!("read the schema version of {location}")))?;
        check_known(version, location)?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let context = format!("migrate {location} from version {version}");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_err(context.clone()))?;
        let locked_version = user_version(&tx).map_err(store_err(context.clone()))?;
        if locked_version != version {
            // Another connection migrated meanwhile; look again.
            continue;
        }
        tx.execute_batch(MIGRATIONS[version as usize])
            .map_err(store_err(context.clone()))?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(store_err(context.clone()))?;
        tx.commit().map_err(store_err(context))?;
        tracing::debug!(
            store = location,
            version = version + 1,
            "town store migrated"
        );
    }
}
