//! The events queue the reconciler drains (ARCHITECTURE.md, *Lifecycle timings*): rows of
//! kind + JSON payload, tagged with the bead and agent they are about so deleting either
//! deletes them in the same transaction. An event about a deleted bead or agent is
//! terminal — marked processed, never retried (Kilo Gastown PR #3047).
//!
//! These are the raw rows; `TownStore::enqueue` and `TownStore::pending_reconcile_events`
//! (the `reconcile` submodule) write and read them as typed
//! [`ReconcileEvent`](crate::reconciler::ReconcileEvent)s.

use super::{parse_column, store_err, TownStore};
use crate::error::Result;
use crate::ids::{AgentId, BeadId};

/// One queued event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Its id, increasing in queue order.
    pub id: i64,
    /// The bead it is about, if any.
    pub bead_id: Option<BeadId>,
    /// The agent it is about, if any.
    pub agent_id: Option<AgentId>,
    /// What happened (`dispatch_failed`, `work_checked`, `agent_exited`, …).
    pub kind: String,
    /// Its payload (JSON by convention).
    pub payload: String,
    /// True once the reconciler has handled it.
    pub processed: bool,
}

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventRecord> {
    let id: i64 = row.get(0)?;
    let key = id.to_string();
    Ok(EventRecord {
        id,
        bead_id: match row.get::<_, Option<String>>(1)? {
            None => None,
            Some(_) => Some(parse_column(row, 1, "events", &key, "bead id", |s| {
                BeadId::new(s).ok()
            })?),
        },
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
    /// Appends an event to the queue and returns its id.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails.
    pub fn enqueue_event(
        &self,
        bead_id: Option<&BeadId>,
        agent_id: Option<&AgentId>,
        kind: &str,
        payload: &str,
    ) -> Result<i64> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "INSERT INTO events (bead_id, agent_id, kind, payload) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut stmt| {
                stmt.execute(rusqlite::params![
                    bead_id.map(BeadId::as_str),
                    agent_id.map(AgentId::as_str),
                    kind,
                    payload
                ])
            })
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
