//! The reconciler's side of the store: load its state, queue and read its events, and
//! write what it decided together with the event's processed mark, atomically
//! (ARCHITECTURE.md, *Lifecycle timings*).

use rusqlite::{Connection, TransactionBehavior};

use super::agents::{read_agents, update_column};
use super::beads::{read_beads, write_bead};
use super::registry::delete_entry;
use super::{store_err, TownStore};
use crate::error::{Error, Result};
use crate::ids::BeadId;
use crate::reconciler::{Action, ReconcileEvent, ReconcileState};

/// How many of the newest event ids keep their processed events, for inspection; older
/// processed events are deleted as the reconciler marks new ones (this project: the
/// queue grew by every handled event for the life of the town).
pub const PROCESSED_EVENTS_KEPT: i64 = 1000;

impl TownStore {
    /// Every bead and agent, read in one transaction (a consistent snapshot even while
    /// another process writes), as the reconciler reads them once per tick.
    ///
    /// # Errors
    /// [`Error::Store`] when the read fails or a row holds a value that does not parse
    /// (the message names the row).
    pub fn reconcile_state(&self) -> Result<ReconcileState> {
        self.with_conn(|conn| {
            let read = |conn: &mut Connection| -> rusqlite::Result<ReconcileState> {
                let tx = conn.transaction()?;
                let beads = read_beads(&tx)?;
                let agents = read_agents(&tx)?;
                tx.commit()?;
                Ok(ReconcileState::from_records(beads, agents))
            };
            read(conn).map_err(store_err("load the reconciler state"))
        })
    }

    /// Queues `event` (its [`kind`](ReconcileEvent::kind) and
    /// [`payload`](ReconcileEvent::payload), tagged with its bead and agent, so deleting
    /// either deletes it) and returns its id.
    ///
    /// # Errors
    /// [`Error::Store`] when the write fails.
    pub fn enqueue(&self, event: &ReconcileEvent) -> Result<i64> {
        self.enqueue_event(event.bead(), event.agent(), event.kind(), &event.payload())
    }

    /// Every unprocessed event, oldest first, with its id, parsed. A row that does not
    /// parse comes back as its [`Error::InvalidEvent`] (the other rows still parse): the
    /// caller marks it processed (`apply_reconciled(Some(id), &[])`) and logs it once,
    /// rather than failing every tick on it (Kilo Gastown PR #3047).
    ///
    /// # Errors
    /// [`Error::Store`] when the read fails.
    pub fn pending_reconcile_events(
        &self,
    ) -> Result<Vec<(i64, std::result::Result<ReconcileEvent, Error>)>> {
        self.with_conn(|conn| {
            let read = || -> rusqlite::Result<Vec<(i64, String, String)>> {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, kind, payload FROM events WHERE processed = 0 ORDER BY id",
                )?;
                let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
                rows.collect()
            };
            let rows = read().map_err(store_err("list pending reconciler events"))?;
            Ok(rows
                .into_iter()
                .map(|(id, kind, payload)| (id, ReconcileEvent::parse(&kind, &payload)))
                .collect())
        })
    }

    /// Writes `actions` in order and marks the event `event_id` processed, in one
    /// `BEGIN IMMEDIATE` transaction: all of it or none. `None` (a sweep) marks nothing;
    /// an id with no row (deleted with its bead or agent) is fine. The same transaction
    /// deletes processed events more than [`PROCESSED_EVENTS_KEPT`] ids older than
    /// `event_id`, so a town that lives for months keeps a bounded queue.
    ///
    /// [`Action::SetHook`] also sets the hook of the agent's registry row, if it has one,
    /// so a resumed agent gets the hook it holds.
    ///
    /// # Errors
    /// Nothing is written (and the event stays unprocessed) when any of it fails:
    /// [`Error::UnknownAgent`] when a [`Action::SetAgentStatus`] or [`Action::SetHook`]
    /// names an agent with no row; [`Error::Store`] when a write fails.
    pub fn apply_reconciled(&self, event_id: Option<i64>, actions: &[Action]) -> Result<()> {
        self.with_conn(|conn| {
            let context = match event_id {
                Some(id) => format!("apply the reconciler's actions for event {id}"),
                None => "apply the reconciler's sweep".to_owned(),
            };
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(store_err(context.clone()))?;
            for action in actions {
                // An error drops `tx`, which rolls every earlier action back.
                apply_action(&tx, action)?;
            }
            if let Some(id) = event_id {
                tx.prepare_cached("UPDATE events SET processed = 1 WHERE id = ?1")
                    .and_then(|mut stmt| stmt.execute([id]))
                    .map_err(store_err(context.clone()))?;
                // The queue's history is bounded: processed events more than
                // PROCESSED_EVENTS_KEPT ids behind this one go (an unprocessed one never).
                tx.prepare_cached("DELETE FROM events WHERE processed = 1 AND id <= ?1")
                    .and_then(|mut stmt| stmt.execute([id - PROCESSED_EVENTS_KEPT]))
                    .map_err(store_err(context.clone()))?;
            }
            tx.commit().map_err(store_err(context))
        })
    }
}

/// Writes one action on `conn` (inside the caller's transaction).
fn apply_action(conn: &Connection, action: &Action) -> Result<()> {
    match action {
        Action::PutBead(bead) => {
            write_bead(conn, bead, true).map_err(store_err(format!("put bead {}", bead.id)))
        }
        Action::SetAgentStatus { agent, status } => {
            update_column(conn, agent, "status", &status.as_str())
        }
        Action::SetHook { agent, hook } => {
            let hook = hook.as_ref().map(BeadId::as_str);
            update_column(conn, agent, "hook", &hook)?;
            conn.prepare_cached("UPDATE registry SET hook = ?1 WHERE agent_id = ?2")
                .and_then(|mut stmt| stmt.execute(rusqlite::params![hook, agent.as_str()]))
                .map_err(store_err(format!("set the registry hook of {agent}")))?;
            Ok(())
        }
        Action::Unregister { agent } => {
            delete_entry(conn, agent).map_err(store_err(format!("unregister agent {agent}")))
        }
    }
}
