//! The registry: the agents that were running or starting when the container last
//! stopped, which boot hydration resumes (mayor first; ARCHITECTURE.md, *Phase path*),
//! with what each is resumed with (models, rig, branch, hook).

use rusqlite::{named_params, Connection, OptionalExtension};

use super::{parse_column, store_err, TownStore};
use crate::error::Result;
use crate::ids::{AgentId, BeadId, RigId};
use crate::role::Role;

/// One registered agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// The agent.
    pub agent: AgentId,
    /// Its role.
    pub role: Role,
    /// The model it runs (`provider/model`), when not the town's default.
    pub model: Option<String>,
    /// Its small model (titles, summaries), when not the town's default.
    pub small_model: Option<String>,
    /// The rig its worktree is of (a polecat's, a refinery's); `None` for the mayor.
    pub rig: Option<RigId>,
    /// The branch its worktree has checked out.
    pub branch: Option<String>,
    /// The bead it was hooked to, so a resumed agent picks its work back up.
    pub hook: Option<BeadId>,
}

impl RegistryEntry {
    /// `agent` with `role` and every optional field `None`.
    pub fn new(agent: AgentId, role: Role) -> Self {
        Self {
            agent,
            role,
            model: None,
            small_model: None,
            rig: None,
            branch: None,
            hook: None,
        }
    }
}

const SELECT: &str = "SELECT agent_id, role, model, small_model, rig, branch, hook FROM registry";

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RegistryEntry> {
    let key: String = row.get(0)?;
    let optional = |column: usize| row.get::<_, Option<String>>(column);
    Ok(RegistryEntry {
        agent: parse_column(row, 0, "registry", &key, "agent id", |s| {
            AgentId::new(s).ok()
        })?,
        role: parse_column(row, 1, "registry", &key, "role", Role::parse)?,
        model: optional(2)?,
        small_model: optional(3)?,
        rig: match optional(4)? {
            None => None,
            Some(_) => Some(parse_column(row, 4, "registry", &key, "rig id", |s| {
                RigId::new(s).ok()
            })?),
        },
        branch: optional(5)?,
        hook: match optional(6)? {
            None => None,
            Some(_) => Some(parse_column(row, 6, "registry", &key, "bead id", |s| {
                BeadId::new(s).ok()
            })?),
        },
    })
}

/// Removes `agent`'s registry row, if any (also one action of `apply_reconciled`).
pub(super) fn delete_entry(conn: &Connection, agent: &AgentId) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM registry WHERE agent_id = ?1")?
        .execute([agent.as_str()])?;
    Ok(())
}

impl TownStore {
    /// Registers `agent` with `role`. Registering it again is a no-op (a changed role
    /// replaces the stored one); the other columns of an existing row are left as they
    /// are. The agent need not have an agent row.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails.
    pub fn register(&self, agent: &AgentId, role: Role) -> Result<()> {
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO registry (agent_id, role) VALUES (?1, ?2) \
                 ON CONFLICT (agent_id) DO UPDATE SET role = excluded.role",
                [agent.as_str(), role.as_str()],
            )
            .map_err(store_err(format!("register agent {agent}")))?;
            Ok(())
        })
    }

    /// Registers `entry.agent`, or replaces every column of its existing row (a `None`
    /// clears the stored value).
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails.
    pub fn register_entry(&self, entry: &RegistryEntry) -> Result<()> {
        self.with_conn(|conn| {
            upsert_entry(conn, entry).map_err(store_err(format!("register agent {}", entry.agent)))
        })
    }

    /// Removes `agent` from the registry; not an error when it was not registered.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails.
    pub fn unregister(&self, agent: &AgentId) -> Result<()> {
        self.with_conn(|conn| {
            delete_entry(conn, agent).map_err(store_err(format!("unregister agent {agent}")))
        })
    }

    /// `agent`'s registry row, or `None` when it is not registered.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the read fails or the row holds a value
    /// that does not parse (the message names the row).
    pub fn registry_entry(&self, agent: &AgentId) -> Result<Option<RegistryEntry>> {
        self.with_conn(|conn| {
            conn.query_row(
                &format!("{SELECT} WHERE agent_id = ?1"),
                [agent.as_str()],
                entry_from_row,
            )
            .optional()
            .map_err(store_err(format!("read the registry entry of {agent}")))
        })
    }

    /// Every registered agent: mayors first, then by id.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the read fails or a row holds a value
    /// that does not parse (the message names the row).
    pub fn registry(&self) -> Result<Vec<RegistryEntry>> {
        self.with_conn(|conn| {
            let read = || -> rusqlite::Result<Vec<RegistryEntry>> {
                let mut stmt =
                    conn.prepare(&format!("{SELECT} ORDER BY role = 'mayor' DESC, agent_id"))?;
                let rows = stmt.query_map([], entry_from_row)?;
                rows.collect()
            };
            read().map_err(store_err("list the registry"))
        })
    }
}

/// Inserts `entry`, or replaces every field of the agent's registry row, on `conn` (a
/// connection or a transaction).
pub(super) fn upsert_entry(conn: &Connection, entry: &RegistryEntry) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO registry (agent_id, role, model, small_model, rig, branch, hook) \
         VALUES (:agent, :role, :model, :small_model, :rig, :branch, :hook) \
         ON CONFLICT (agent_id) DO UPDATE SET role = excluded.role, \
             model = excluded.model, small_model = excluded.small_model, \
             rig = excluded.rig, branch = excluded.branch, hook = excluded.hook",
    )?
    .execute(named_params! {
        ":agent": entry.agent.as_str(),
        ":role": entry.role.as_str(),
        ":model": entry.model,
        ":small_model": entry.small_model,
        ":rig": entry.rig.as_ref().map(RigId::as_str),
        ":branch": entry.branch,
        ":hook": entry.hook.as_ref().map(BeadId::as_str),
    })
    .map(|_| ())
}
