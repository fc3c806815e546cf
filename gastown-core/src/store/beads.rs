//! A minimal bead table and the events queue the reconciler drains (ARCHITECTURE.md,
//! *Lifecycle timings*): an event about a deleted bead or agent is terminal, and deleting
//! a bead deletes its queued events in the same transaction — Kilo Gastown PR #3047
//! (shipped in PR #2974), whose orphaned events were retried on every alarm tick forever.

use rusqlite::{Connection, OptionalExtension};

use super::{parse_column, store_err, TownStore};
use crate::error::Result;
use crate::ids::AgentId;
use crate::status::BeadStatus;

/// One bead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeadRecord {
    /// Its id.
    pub id: String,
    /// Its kind (`issue`, `merge_request`, `convoy`, …).
    pub kind: String,
    /// Its status.
    pub status: BeadStatus,
    /// The agent it is assigned to, if any.
    pub assignee: Option<AgentId>,
}

/// One queued event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Its id, increasing in queue order.
    pub id: i64,
    /// The bead it is about, if any.
    pub bead_id: Option<String>,
    /// The agent it is about, if any.
    pub agent_id: Option<AgentId>,
    /// What happened.
    pub kind: String,
    /// Its payload (JSON by convention).
    pub payload: String,
    /// True once the reconciler has handled it.
    pub processed: bool,
}

fn bead_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BeadRecord> {
    let id: String = row.get(0)?;
    Ok(BeadRecord {
        kind: row.get(1)?,
        status: parse_column(row, 2, "beads", &id, "bead status", BeadStatus::parse)?,
        assignee: match row.get::<_, Option<String>>(3)? {
            None => None,
            Some(_) => Some(parse_column(row, 3, "beads", &id, "agent id", |s| {
                AgentId::new(s).ok()
            })?),
        },
        id,
    })
}

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventRecord> {
    let id: i64 = row.get(0)?;
    let key = id.to_string();
    Ok(EventRecord {
        id,
        bead_id: row.get(1)?,
        agent_id: match row.get::<_, Option<String>>(2)? {
            None => None,
            Some(_) => Some(parse_column(row, 2, "events", &key, "agent id", |s| {
                AgentId::new(s).ok()
            })?),
        },
        kind: row.get(3)?,
        payload: row.get(4)?,
        processed: row.get(5)?,
    })
}

impl TownStore {
    /// Inserts a new bead.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails, including when a bead
    /// with this id exists (it is left as it was).
    pub fn insert_bead(&self, bead: &BeadRecord) -> Result<()> {
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO beads (id, kind, status, assignee) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    bead.id,
                    bead.kind,
                    bead.status.as_str(),
                    bead.assignee.as_ref().map(AgentId::as_str),
                ],
            )
            .map_err(store_err(format!("insert bead {:?}", bead.id)))?;
            Ok(())
        })
    }

    /// The bead with id `id`, or `None`.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the read fails or the row holds a value
    /// that does not parse (the message names the row).
    pub fn bead(&self, id: &str) -> Result<Option<BeadRecord>> {
        self.with_conn(|conn| {
            conn.query_row(
                "SELECT id, kind, status, assignee FROM beads WHERE id = ?1",
                [id],
                bead_from_row,
            )
            .optional()
            .map_err(store_err(format!("read bead {id:?}")))
        })
    }

    /// Every bead, ordered by id.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the read fails or a row holds a value
    /// that does not parse (the message names the row).
    pub fn beads(&self) -> Result<Vec<BeadRecord>> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, kind, status, assignee FROM beads ORDER BY id")
                .map_err(store_err("list beads".to_owned()))?;
            let rows = stmt
                .query_map([], bead_from_row)
                .map_err(store_err("list beads".to_owned()))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(store_err("list beads".to_owned()))
        })
    }

    /// Deletes the bead and every event about it, in one transaction. Deleting an unknown
    /// bead is not an error.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails (nothing is deleted then).
    pub fn delete_bead(&self, id: &str) -> Result<()> {
        self.with_conn(|conn| {
            let delete = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                tx.execute("DELETE FROM events WHERE bead_id = ?1", [id])?;
                tx.execute("DELETE FROM beads WHERE id = ?1", [id])?;
                tx.commit()
            };
            delete(conn).map_err(store_err(format!("delete bead {id:?}")))
        })
    }

    /// Appends an event to the queue and returns its id.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails.
    pub fn enqueue_event(
        &self,
        bead_id: Option<&str>,
        agent_id: Option<&AgentId>,
        kind: &str,
        payload: &str,
    ) -> Result<i64> {
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO events (bead_id, agent_id, kind, payload) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![bead_id, agent_id.map(AgentId::as_str), kind, payload],
            )
            .map_err(store_err(format!("enqueue event {kind:?}")))?;
            Ok(conn.last_insert_rowid())
        })
    }

    /// Every event not yet processed, oldest first.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the read fails or a row holds a value
    /// that does not parse (the message names the row).
    pub fn pending_events(&self) -> Result<Vec<EventRecord>> {
        self.with_conn(|conn| {
            let read = || -> rusqlite::Result<Vec<EventRecord>> {
                let mut stmt = conn.prepare(
                    "SELECT id, bead_id, agent_id, kind, payload, processed FROM events \
                     WHERE processed = 0 ORDER BY id",
                )?;
                let rows = stmt.query_map([], event_from_row)?;
                rows.collect()
            };
            read().map_err(store_err("list pending events"))
        })
    }

    /// Marks the event `id` processed. Returns `false` when no such event exists (it was
    /// deleted with its bead or agent), which the reconciler treats as done.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails.
    pub fn mark_event_processed(&self, id: i64) -> Result<bool> {
        self.with_conn(|conn| {
            let changed = conn
                .execute("UPDATE events SET processed = 1 WHERE id = ?1", [id])
                .map_err(store_err(format!("mark event {id} processed")))?;
            Ok(changed > 0)
        })
    }
}
