//! [`TownStore`]: a town's state in one SQLite file (ARCHITECTURE.md, *Persistence*).
//!
//! One file per town, in WAL mode so readers never wait for the writer. The schema is
//! versioned with `PRAGMA user_version` and upgraded by the `migrations` submodule when
//! the file is opened. Each submodule adds one concern to [`TownStore`]:
//!
//! - `agents`: [`AgentRecord`] rows (role, status, hook, session, config hash, times);
//! - `registry`: [`RegistryEntry`] rows, the agents to resume when the container boots;
//! - `kv`: strings, millisecond timestamps (throttles) and secrets by key;
//! - `beads`: [`BeadRecord`] rows, the town's units of work;
//! - `events`: the reconciler's [`EventRecord`] queue;
//! - `reconcile`: the reconciler's state, typed events and atomic writes
//!   ([`TownStore::reconcile_state`], [`TownStore::enqueue`],
//!   [`TownStore::pending_reconcile_events`], [`TownStore::apply_reconciled`]).
//!
//! Every method is blocking but short (one or two statements on a local file, guarded by
//! one mutex per store); an async caller with a busy runtime may wrap a batch of calls in
//! `tokio::task::spawn_blocking`.

mod agents;
mod beads;
mod events;
mod kv;
mod migrations;
mod reconcile;
mod registry;
mod view;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

pub use crate::status::BeadKind;
pub use crate::status::BeadStatus;
pub use agents::{AgentRecord, AgentStarted};
pub use beads::BeadRecord;
pub use events::EventRecord;
pub use migrations::SCHEMA_VERSION;
pub use reconcile::PROCESSED_EVENTS_KEPT;
pub use registry::RegistryEntry;
pub use view::town_view;

/// How long a statement waits for another connection's lock before failing with
/// `SQLITE_BUSY`, in ms. Writes here take well under a millisecond, so 5 s only runs out
/// when another process holds the file locked for good.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// The town's SQLite state. Cheap to clone (all clones share one connection behind a
/// mutex), `Send + Sync`.
#[derive(Clone)]
pub struct TownStore {
    conn: Arc<Mutex<Connection>>,
    /// The file's path (or `:memory:`), for error messages and `Debug`.
    location: Arc<str>,
}

impl fmt::Debug for TownStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TownStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl TownStore {
    /// Opens the town store at `path`, creating the file if it does not exist, and brings
    /// its schema up to [`SCHEMA_VERSION`] (each migration in its own transaction, so two
    /// processes opening one fresh file do not both migrate it). The parent directory must
    /// exist.
    ///
    /// The file is checked before anything is written to it: a file that is not a SQLite
    /// database, or whose schema is newer than this build knows, is left byte-for-byte as
    /// it was.
    ///
    /// # Errors
    /// - [`Error::Store`] when the file cannot be opened or created (missing parent
    ///   directory, permissions), is not a SQLite database, or a migration fails;
    /// - [`Error::InvalidConfig`] when the file's schema version is newer than
    ///   [`SCHEMA_VERSION`] (written by a newer gastown).
    pub fn open(path: &Path) -> Result<TownStore> {
        let location = path.display().to_string();
        // No SQLITE_OPEN_URI: a file named `file:…` is a file, not a URI.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags)
            .map_err(store_err(format!("open {location}")))?;
        configure(&conn).map_err(store_err(format!("configure {location}")))?;

        // Reading the header is the first I/O: it fails on a file that is not SQLite and
        // tells a too-new schema apart before the WAL switch rewrites the header.
        let version = migrations::user_version(&conn).map_err(store_err(format!(
            "open {location} (is it a SQLite database?)"
        )))?;
        migrations::check_known(version, &location)?;

        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(store_err(format!("switch {location} to WAL mode")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Store {
                context: format!("switch {location} to WAL mode"),
                source: conversion_failure(0, format!("journal mode stayed {mode:?}")),
            });
        }
        // NORMAL is durable across application crashes in WAL mode; only an OS crash or
        // power loss may drop the last commits, which the reconciler re-derives.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(store_err(format!("configure {location}")))?;

        migrations::migrate(&mut conn, &location)?;
        Ok(TownStore {
            conn: Arc::new(Mutex::new(conn)),
            location: location.into(),
        })
    }

    /// Opens a fresh store that lives in memory only (tests, throwaway towns), at
    /// [`SCHEMA_VERSION`].
    ///
    /// # Errors
    /// [`Error::Store`] when SQLite cannot allocate the database or a migration fails.
    pub fn open_in_memory() -> Result<TownStore> {
        let location = ":memory:";
        let mut conn =
            Connection::open_in_memory().map_err(store_err(format!("open {location}")))?;
        configure(&conn).map_err(store_err(format!("configure {location}")))?;
        migrations::migrate(&mut conn, location)?;
        Ok(TownStore {
            conn: Arc::new(Mutex::new(conn)),
            location: location.into(),
        })
    }

    /// The schema version of the file (`PRAGMA user_version`); [`SCHEMA_VERSION`] once
    /// opened.
    ///
    /// # Errors
    /// [`Error::Store`] when the pragma cannot be read.
    pub fn schema_version(&self) -> Result<u32> {
        let conn = self.conn.lock();
        migrations::user_version(&conn).map_err(store_err("read the schema version"))
    }

    /// Runs `f` on the connection, holding the store's lock for its duration.
    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock();
        f(&mut conn)
    }
}

/// Per-connection settings (none of them touches the file).
/// The page size of a new `town.db`, bytes (SQLite's default is 4096).
const STORE_PAGE_SIZE: i64 = 1024;

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // A new store's pages (a no-op on an existing file): a town's rows fit in few small
    // pages, and SQLite preallocates its page cache per connection by page (20 pages of
    // 4 KiB were 87 KB per town; a process may hold a thousand towns).
    conn.pragma_update(None, "page_size", STORE_PAGE_SIZE)?;
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.pragma_update(None, "foreign_keys", "ON")
}

/// Maps a SQLite error to [`Error::Store`] with `context`.
fn store_err(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let context = context.into();
    move |source| Error::Store { context, source }
}

/// A rusqlite conversion error carrying `message`, for stored values the code cannot
/// parse (a hand-edited role, a malformed id). `column` is the 0-based column index.
fn conversion_failure(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, message.into())
}

/// Reads text column `column` of a `table` row keyed `key` and parses it with `parse`;
/// an unparsable value becomes an error naming the table, the row and the value.
fn parse_column<T>(
    row: &rusqlite::Row<'_>,
    column: usize,
    table: &str,
    key: &str,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let raw: String = row.get(column)?;
    parse(&raw).ok_or_else(|| {
        conversion_failure(
            column,
            format!("{table} row {key:?}: {raw:?} is not a valid {what}"),
        )
    })
}
