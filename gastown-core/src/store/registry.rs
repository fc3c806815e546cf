//! The registry: the agents that were running or starting when the container last
//! stopped, which boot hydration resumes (mayor first; ARCHITECTURE.md, *Phase path*).

use super::{parse_column, store_err, TownStore};
use crate::error::Result;
use crate::ids::AgentId;
use crate::role::Role;

/// One registered agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// The agent.
    pub agent: AgentId,
    /// Its role.
    pub role: Role,
}

impl TownStore {
    /// Registers `agent` with `role`. Registering it again is a no-op (a changed role
    /// replaces the stored one). The agent need not have an agent row.
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

    /// Removes `agent` from the registry; not an error when it was not registered.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails.
    pub fn unregister(&self, agent: &AgentId) -> Result<()> {
        self.with_conn(|conn| {
            conn.execute("DELETE FROM registry WHERE agent_id = ?1", [agent.as_str()])
                .map_err(store_err(format!("unregister agent {agent}")))?;
            Ok(())
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
                let mut stmt = conn.prepare(
                    "SELECT agent_id, role FROM registry \
                     ORDER BY role = 'mayor' DESC, agent_id",
                )?;
                let rows = stmt.query_map([], |row| {
                    let key: String = row.get(0)?;
                    Ok(RegistryEntry {
                        agent: parse_column(row, 0, "registry", &key, "agent id", |s| {
                            AgentId::new(s).ok()
                        })?,
                        role: parse_column(row, 1, "registry", &key, "role", Role::parse)?,
                    })
                })?;
                rows.collect()
            };
            read().map_err(store_err("list the registry"))
        })
    }
}
