//! Agent rows: what the town remembers about each agent between restarts.

use rusqlite::{named_params, Connection, OptionalExtension, ToSql};

use super::{parse_column, store_err, TownStore};
use crate::error::{Error, Result};
use crate::ids::AgentId;
use crate::role::Role;
use crate::status::AgentStatus;

/// One agent as the town store keeps it. Times are ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    /// The agent.
    pub id: AgentId,
    /// What it does.
    pub role: Role,
    /// Its worker-side status.
    pub status: AgentStatus,
    /// The bead it is bound to (a [`BeadId`](crate::BeadId)'s text), if any. Kept as text:
    /// a hook may outlive its bead (deleted), and the reconciler's sweep clears it then.
    pub hook: Option<String>,
    /// Its current SDK session id, if one was opened.
    pub session_id: Option<String>,
    /// The hash of the configuration its SDK server was started with.
    pub config_hash: Option<String>,
    /// When it last did something (ms since the Unix epoch).
    pub last_activity_ms: Option<i64>,
    /// When it last reported a heartbeat (ms since the Unix epoch).
    pub heartbeat_ms: Option<i64>,
}

impl AgentRecord {
    /// A new agent: [`AgentStatus::Idle`], every optional field `None`.
    pub fn new(id: AgentId, role: Role) -> Self {
        Self::with_status(id, role, AgentStatus::Idle)
    }

    /// A new agent with `status` (e.g. `working` for a worker being dispatched), every
    /// optional field `None`: the row a first status write creates.
    pub fn with_status(id: AgentId, role: Role, status: AgentStatus) -> Self {
        Self {
            id,
            role,
            status,
            hook: None,
            session_id: None,
            config_hash: None,
            last_activity_ms: None,
            heartbeat_ms: None,
        }
    }
}

const SELECT: &str = "SELECT id, role, status, hook, session_id, config_hash, \
                      last_activity_ms, heartbeat_ms FROM agents";

/// One agent's row. A literal, so the connection's statement cache prepares it once per
/// store: every status change and start reads or writes agent rows, and re-preparing a
/// statement was the largest part of a store call's CPU time.
const SELECT_BY_ID: &str = "SELECT id, role, status, hook, session_id, config_hash, \
                            last_activity_ms, heartbeat_ms FROM agents WHERE id = ?1";

/// Sets an agent's status, creating its row (every optional field `NULL`) when it has none.
const UPSERT_STATUS: &str = "INSERT INTO agents (id, role, status) VALUES (?1, ?2, ?3) \
                             ON CONFLICT (id) DO UPDATE SET status = excluded.status";

/// What a finished start writes about its agent in one transaction (see
/// [`TownStore::record_started`]).
#[derive(Debug, Clone, Copy)]
pub struct AgentStarted<'a> {
    /// The agent's role (used when the agent has no row yet).
    pub role: Role,
    /// The session the start resumed or created.
    pub session_id: &'a str,
    /// The hash of the SDK server's configuration.
    pub config_hash: &'a str,
    /// The registry row that brings the agent back after a container restart.
    pub registry: &'a super::RegistryEntry,
    /// The status the agent rests in (`waiting` for a mayor, `idle` for a worker).
    pub status: AgentStatus,
    /// When the start finished, ms since the Unix epoch: the agent's activity stamp, and
    /// its heartbeat (the server has just answered the session call, so it is alive; its
    /// event watcher's first stamp would say the same a moment later, in a commit of its
    /// own).
    pub activity_ms: i64,
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRecord> {
    let key: String = row.get(0)?;
    Ok(AgentRecord {
        id: parse_column(row, 0, "agents", &key, "agent id", |s| AgentId::new(s).ok())?,
        role: parse_column(row, 1, "agents", &key, "role", Role::parse)?,
        status: parse_column(row, 2, "agents", &key, "agent status", AgentStatus::parse)?,
        hook: row.get(3)?,
        session_id: row.get(4)?,
        config_hash: row.get(5)?,
        last_activity_ms: row.get(6)?,
        heartbeat_ms: row.get(7)?,
    })
}

impl TownStore {
    /// Inserts `record`, or replaces every field of the agent's existing row.
    ///
    /// # Errors
    /// [`Error::Store`] when the write fails.
    pub fn upsert_agent(&self, record: &AgentRecord) -> Result<()> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "INSERT INTO agents (id, role, status, hook, session_id, config_hash, \
                                     last_activity_ms, heartbeat_ms) \
                 VALUES (:id, :role, :status, :hook, :session_id, :config_hash, \
                         :last_activity_ms, :heartbeat_ms) \
                 ON CONFLICT (id) DO UPDATE SET \
                     role = excluded.role, status = excluded.status, hook = excluded.hook, \
                     session_id = excluded.session_id, config_hash = excluded.config_hash, \
                     last_activity_ms = excluded.last_activity_ms, \
                     heartbeat_ms = excluded.heartbeat_ms",
            )
            .and_then(|mut stmt| {
                stmt.execute(named_params! {
                    ":id": record.id.as_str(),
                    ":role": record.role.as_str(),
                    ":status": record.status.as_str(),
                    ":hook": record.hook,
                    ":session_id": record.session_id,
                    ":config_hash": record.config_hash,
                    ":last_activity_ms": record.last_activity_ms,
                    ":heartbeat_ms": record.heartbeat_ms,
                })
            })
            .map_err(store_err(format!("upsert agent {}", record.id)))?;
            Ok(())
        })
    }

    /// The agent's row, or `None` when the store has none.
    ///
    /// # Errors
    /// [`Error::Store`] when the read fails or the row holds a value that does not parse
    /// (a hand-edited role or status); the message names the row.
    pub fn agent(&self, id: &AgentId) -> Result<Option<AgentRecord>> {
        self.with_conn(|conn| {
            conn.prepare_cached(SELECT_BY_ID)
                .and_then(|mut stmt| stmt.query_row([id.as_str()], from_row).optional())
                .map_err(store_err(format!("read agent {id}")))
        })
    }

    /// Every agent, ordered by id.
    ///
    /// # Errors
    /// [`Error::Store`] when the read fails or a row holds a value that does not parse;
    /// the message names the row.
    pub fn agents(&self) -> Result<Vec<AgentRecord>> {
        self.with_conn(|conn| read_agents(conn).map_err(store_err("list agents")))
    }

    /// Sets the agent's status.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`] when the store has no row for `id` (nothing is written);
    /// [`Error::Store`] when the write fails.
    pub fn set_agent_status(&self, id: &AgentId, status: AgentStatus) -> Result<()> {
        self.update_agent(id, "status", &status.as_str())
    }

    /// Sets the agent's status, creating its row with `role` (every optional field
    /// `None`) when the store has none: one statement, where a read and a write were two.
    ///
    /// # Errors
    /// [`Error::Store`] when the write fails.
    pub fn record_status(&self, id: &AgentId, role: Role, status: AgentStatus) -> Result<()> {
        self.with_conn(|conn| {
            upsert_status(conn, id, role, status)
                .map_err(store_err(format!("record status of agent {id}")))
        })
    }

    /// Records a finished start in one transaction (one commit, where five writes were
    /// five): the agent's status (its row created when missing), session id, config hash,
    /// activity stamp and heartbeat, and its registry row ([`TownStore::register_entry`]).
    ///
    /// # Errors
    /// [`Error::Store`] when a write fails (nothing is written then).
    pub fn record_started(&self, id: &AgentId, started: &AgentStarted<'_>) -> Result<()> {
        self.with_conn(|conn| {
            let write = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                upsert_status(&tx, id, started.role, started.status)?;
                tx.prepare_cached(
                    "UPDATE agents SET session_id = ?1, config_hash = ?2, \
                     last_activity_ms = ?3, heartbeat_ms = ?3 WHERE id = ?4",
                )?
                .execute(rusqlite::params![
                    started.session_id,
                    started.config_hash,
                    started.activity_ms,
                    id.as_str()
                ])?;
                super::registry::upsert_entry(&tx, started.registry)?;
                tx.commit()
            };
            write(conn).map_err(store_err(format!("record the start of agent {id}")))
        })
    }

    /// Sets (or clears, with `None`) the agent's hooked bead.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`] when the store has no row for `id`; [`Error::Store`] when
    /// the write fails.
    pub fn set_hook(&self, id: &AgentId, hook: Option<&str>) -> Result<()> {
        self.update_agent(id, "hook", &hook)
    }

    /// Sets (or clears, with `None`) the agent's SDK session id.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`] when the store has no row for `id`; [`Error::Store`] when
    /// the write fails.
    pub fn set_session_id(&self, id: &AgentId, session_id: Option<&str>) -> Result<()> {
        self.update_agent(id, "session_id", &session_id)
    }

    /// Sets (or clears, with `None`) the hash of the agent's SDK server configuration.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`] when the store has no row for `id`; [`Error::Store`] when
    /// the write fails.
    pub fn set_config_hash(&self, id: &AgentId, config_hash: Option<&str>) -> Result<()> {
        self.update_agent(id, "config_hash", &config_hash)
    }

    /// Records a heartbeat of the agent at `at_ms` (ms since the Unix epoch).
    ///
    /// # Errors
    /// [`Error::UnknownAgent`] when the store has no row for `id`; [`Error::Store`] when
    /// the write fails.
    pub fn touch_heartbeat(&self, id: &AgentId, at_ms: i64) -> Result<()> {
        self.update_agent(id, "heartbeat_ms", &at_ms)
    }

    /// Records activity of the agent at `at_ms` (ms since the Unix epoch).
    ///
    /// # Errors
    /// [`Error::UnknownAgent`] when the store has no row for `id`; [`Error::Store`] when
    /// the write fails.
    pub fn touch_activity(&self, id: &AgentId, at_ms: i64) -> Result<()> {
        self.update_agent(id, "last_activity_ms", &at_ms)
    }

    /// Deletes the agent, its registry row and every event queued about it, in one
    /// transaction. Deleting an agent the store does not know is not an error.
    ///
    /// # Errors
    /// [`Error::Store`] when the write fails (nothing is deleted then).
    pub fn delete_agent(&self, id: &AgentId) -> Result<()> {
        self.with_conn(|conn| {
            let delete = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                tx.execute("DELETE FROM events WHERE agent_id = ?1", [id.as_str()])?;
                tx.execute("DELETE FROM registry WHERE agent_id = ?1", [id.as_str()])?;
                tx.execute("DELETE FROM agents WHERE id = ?1", [id.as_str()])?;
                tx.commit()
            };
            delete(conn).map_err(store_err(format!("delete agent {id}")))
        })
    }

    /// Sets one column of an existing agent row; `column` is one of this module's
    /// literals, never input.
    fn update_agent(&self, id: &AgentId, column: &'static str, value: &dyn ToSql) -> Result<()> {
        self.with_conn(|conn| update_column(conn, id, column, value))
    }
}

/// Sets the agent's status on `conn`, creating its row with `role` when it has none.
fn upsert_status(
    conn: &Connection,
    id: &AgentId,
    role: Role,
    status: AgentStatus,
) -> rusqlite::Result<()> {
    conn.prepare_cached(UPSERT_STATUS)?
        .execute([id.as_str(), role.as_str(), status.as_str()])
        .map(|_| ())
}

/// Every agent, ordered by id.
pub(super) fn read_agents(conn: &Connection) -> rusqlite::Result<Vec<AgentRecord>> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} ORDER BY id"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// Sets one column of an existing agent row on `conn` (a connection or a transaction);
/// `column` is a literal of the store's code, never input.
///
/// # Errors
/// [`Error::UnknownAgent`] when there is no row for `id`; [`Error::Store`] when the write
/// fails.
pub(super) fn update_column(
    conn: &Connection,
    id: &AgentId,
    column: &'static str,
    value: &dyn ToSql,
) -> Result<()> {
    let changed = conn
        .prepare_cached(&format!("UPDATE agents SET {column} = ?1 WHERE id = ?2"))
        .and_then(|mut stmt| stmt.execute(rusqlite::params![value, id.as_str()]))
        .map_err(store_err(format!("set {column} of agent {id}")))?;
    if changed == 0 {
        return Err(Error::UnknownAgent { agent: id.clone() });
    }
    Ok(())
}
