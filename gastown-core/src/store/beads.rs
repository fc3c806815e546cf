//! Beads: the town's units of work (ARCHITECTURE.md, *Vocabulary*), one row each.
//!
//! The reconciler (`gastown_core::reconciler`) drives their lifecycle; the actors create
//! them (sling) and read them. Deleting a bead deletes the events queued about it in the
//! same transaction (Kilo Gastown PR #3047, shipped in PR #2974): its orphaned events were
//! retried on every alarm tick forever.

use rusqlite::{named_params, Connection, OptionalExtension};

use super::{parse_column, store_err, TownStore};
use crate::error::Result;
use crate::ids::{AgentId, BeadId, RigId};
use crate::status::{BeadKind, BeadStatus};

/// One bead. Times are ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeadRecord {
    /// Its id.
    pub id: BeadId,
    /// What it is: an issue (for a polecat) or a merge request (for a refinery).
    pub kind: BeadKind,
    /// Where it is in its lifecycle.
    pub status: BeadStatus,
    /// Its title (one line; may be empty).
    pub title: String,
    /// Its body: what to do, as the agent is prompted with it (may be empty).
    pub body: String,
    /// The rig (repository) it is about, if any.
    pub rig: Option<RigId>,
    /// The agent it is assigned to, if any. Set with the agent's hook when it is
    /// dispatched; cleared when the dispatch fails or the agent goes away.
    pub assignee: Option<AgentId>,
    /// The branch its work is on (set once its polecat's commits are checked; a merge
    /// request's branch to review).
    pub branch: Option<String>,
    /// The tip commit of [`branch`](Self::branch) when it was checked (a full or short
    /// hash), so a review sees what was checked.
    pub head: Option<String>,
    /// The bead this one was opened for: a merge request's issue.
    pub source_bead: Option<BeadId>,
    /// How many dispatches of it failed so far (a failed start, a turn without commits,
    /// an agent gone mid-work). At `DispatchRetry::DEFAULT.max_attempts` (5) it fails.
    pub dispatch_attempts: u32,
    /// When the last failed dispatch was recorded (ms since the Unix epoch): the start of
    /// the 30 s retry cooldown (ARCHITECTURE.md, *Lifecycle timings*).
    pub last_dispatch_ms: Option<i64>,
    /// Why the last dispatch failed (kept when the bead fails, so it can be shown).
    pub last_error: Option<String>,
    /// When it was created (ms since the Unix epoch; 0 for a bead from a version 1 file).
    pub created_ms: i64,
    /// When it last changed (ms since the Unix epoch).
    pub updated_ms: i64,
}

impl BeadRecord {
    /// A new, never dispatched issue: [`BeadStatus::Open`], unassigned, no rig or branch,
    /// created and updated at `now_ms` (ms since the Unix epoch).
    pub fn issue(id: BeadId, title: &str, body: &str, now_ms: i64) -> Self {
        Self {
            id,
            kind: BeadKind::Issue,
            status: BeadStatus::Open,
            title: title.to_owned(),
            body: body.to_owned(),
            rig: None,
            assignee: None,
            branch: None,
            head: None,
            source_bead: None,
            dispatch_attempts: 0,
            last_dispatch_ms: None,
            last_error: None,
            created_ms: now_ms,
            updated_ms: now_ms,
        }
    }

    /// True while it still wants work: not [`BeadStatus::Closed`] and not
    /// [`BeadStatus::Failed`] ([`BeadStatus::is_live`]).
    pub fn is_live(&self) -> bool {
        self.status.is_live()
    }
}

/// Every column, in the order [`bead_from_row`] reads them.
pub(super) const BEAD_COLUMNS: &str = "id, kind, status, title, body, rig, assignee, branch, \
     head, source_bead, dispatch_attempts, last_dispatch_ms, last_error, created_ms, updated_ms";

/// Parses an optional id column; `None` stays `None`, a bad id names the row.
fn optional_id<T>(
    row: &rusqlite::Row<'_>,
    column: usize,
    key: &str,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<Option<T>> {
    match row.get::<_, Option<String>>(column)? {
        None => Ok(None),
        Some(_) => parse_column(row, column, "beads", key, what, parse).map(Some),
    }
}

/// Reads a bead row selected with [`BEAD_COLUMNS`].
pub(super) fn bead_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BeadRecord> {
    let key: String = row.get(0)?;
    Ok(BeadRecord {
        id: parse_column(row, 0, "beads", &key, "bead id", |s| BeadId::new(s).ok())?,
        kind: parse_column(row, 1, "beads", &key, "bead kind", BeadKind::parse)?,
        status: parse_column(row, 2, "beads", &key, "bead status", BeadStatus::parse)?,
        title: row.get(3)?,
        body: row.get(4)?,
        rig: optional_id(row, 5, &key, "rig id", |s| RigId::new(s).ok())?,
        assignee: optional_id(row, 6, &key, "agent id", |s| AgentId::new(s).ok())?,
        branch: row.get(7)?,
        head: row.get(8)?,
        source_bead: optional_id(row, 9, &key, "bead id", |s| BeadId::new(s).ok())?,
        dispatch_attempts: row.get(10)?,
        last_dispatch_ms: row.get(11)?,
        last_error: row.get(12)?,
        created_ms: row.get(13)?,
        updated_ms: row.get(14)?,
    })
}

/// Writes `bead`: a plain insert (`upsert` false; fails on an existing id) or an insert
/// that replaces every column of an existing row (`upsert` true).
pub(super) fn write_bead(
    conn: &Connection,
    bead: &BeadRecord,
    upsert: bool,
) -> rusqlite::Result<()> {
    let conflict = if upsert {
        " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, status = excluded.status, \
         title = excluded.title, body = excluded.body, rig = excluded.rig, \
         assignee = excluded.assignee, branch = excluded.branch, head = excluded.head, \
         source_bead = excluded.source_bead, dispatch_attempts = excluded.dispatch_attempts, \
         last_dispatch_ms = excluded.last_dispatch_ms, last_error = excluded.last_error, \
         created_ms = excluded.created_ms, updated_ms = excluded.updated_ms"
    } else {
        ""
    };
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO beads ({BEAD_COLUMNS}) VALUES (:id, :kind, :status, :title, :body, :rig, \
         :assignee, :branch, :head, :source_bead, :dispatch_attempts, :last_dispatch_ms, \
         :last_error, :created_ms, :updated_ms){conflict}"
    ))?;
    stmt.execute(named_params! {
        ":id": bead.id.as_str(),
        ":kind": bead.kind.as_str(),
        ":status": bead.status.as_str(),
        ":title": bead.title,
        ":body": bead.body,
        ":rig": bead.rig.as_ref().map(RigId::as_str),
        ":assignee": bead.assignee.as_ref().map(AgentId::as_str),
        ":branch": bead.branch,
        ":head": bead.head,
        ":source_bead": bead.source_bead.as_ref().map(BeadId::as_str),
        ":dispatch_attempts": bead.dispatch_attempts,
        ":last_dispatch_ms": bead.last_dispatch_ms,
        ":last_error": bead.last_error,
        ":created_ms": bead.created_ms,
        ":updated_ms": bead.updated_ms,
    })?;
    Ok(())
}

/// Every bead, ordered by id.
pub(super) fn read_beads(conn: &Connection) -> rusqlite::Result<Vec<BeadRecord>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {BEAD_COLUMNS} FROM beads ORDER BY id"))?;
    let rows = stmt.query_map([], bead_from_row)?;
    rows.collect()
}

impl TownStore {
    /// Inserts a new bead.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails, including when a bead
    /// with this id exists (it is left as it was).
    pub fn insert_bead(&self, bead: &BeadRecord) -> Result<()> {
        self.with_conn(|conn| {
            write_bead(conn, bead, false).map_err(store_err(format!("insert bead {}", bead.id)))
        })
    }

    /// Replaces every column of the bead with `bead.id`. Returns `false` (and writes
    /// nothing) when the store has no such bead.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails.
    pub fn update_bead(&self, bead: &BeadRecord) -> Result<bool> {
        self.with_conn(|conn| {
            let update = |conn: &mut Connection| -> rusqlite::Result<bool> {
                let tx = conn.transaction()?;
                let exists = tx
                    .query_row(
                        "SELECT 1 FROM beads WHERE id = ?1",
                        [bead.id.as_str()],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if exists {
                    write_bead(&tx, bead, true)?;
                }
                tx.commit()?;
                Ok(exists)
            };
            update(conn).map_err(store_err(format!("update bead {}", bead.id)))
        })
    }

    /// The bead with id `id`, or `None`.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the read fails or the row holds a value
    /// that does not parse (the message names the row).
    pub fn bead(&self, id: &BeadId) -> Result<Option<BeadRecord>> {
        self.with_conn(|conn| {
            conn.query_row(
                &format!("SELECT {BEAD_COLUMNS} FROM beads WHERE id = ?1"),
                [id.as_str()],
                bead_from_row,
            )
            .optional()
            .map_err(store_err(format!("read bead {id}")))
        })
    }

    /// Every bead, ordered by id.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the read fails or a row holds a value
    /// that does not parse (the message names the row).
    pub fn beads(&self) -> Result<Vec<BeadRecord>> {
        self.with_conn(|conn| read_beads(conn).map_err(store_err("list beads")))
    }

    /// Deletes the bead and every event queued about it, in one transaction (Kilo Gastown
    /// PR #3047). Deleting an unknown bead is not an error. An agent hooked to it keeps
    /// the hook until the reconciler's sweep clears it (a hook on a missing bead).
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails (nothing is deleted then).
    pub fn delete_bead(&self, id: &BeadId) -> Result<()> {
        self.with_conn(|conn| {
            let delete = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                tx.execute("DELETE FROM events WHERE bead_id = ?1", [id.as_str()])?;
                tx.execute("DELETE FROM beads WHERE id = ?1", [id.as_str()])?;
                tx.commit()
            };
            delete(conn).map_err(store_err(format!("delete bead {id}")))
        })
    }
}
