//! Handing a running container to another town (`ContainerRuntime::rename_container`): how
//! a brand-new town claims a warm pool's pre-booted server (`ARCHITECTURE.md`, *Warm pool*).
//!
//! The engine renames the container to the new town's name, and every lookup by town
//! (`start`, `status`, `exec`, files, `endpoint`, `stop`, `remove`, pause) goes by that
//! name, so they all reach it. What the engine cannot change after create stays the pool
//! container's: its labels (`gastown.town` keeps the pool's id), its hostname, its mounts
//! and limits, and its agents volume (`<prefix>-<pool id>-agents`). So:
//!
//! - a town whose container options ask for something the container lacks — any bind
//!   mount (a rig from a host path), other memory or pids limits — is refused with
//!   `Unsupported` and nothing changes (the pool keeps the server, the town starts cold);
//! - `remove` of the town deletes the volume its container mounts at `/agents` as well as
//!   the town's own, and so does `start` when it replaces a stopped container: after a
//!   stop, the town's next container mounts the town's own volume, whose agents start
//!   from their snapshots (the drain before the stop took the mayor's `kilo.db`);
//! - orphan hygiene counts a container named for a town this runtime manages, and the
//!   volume such a container mounts, as that town's whatever their labels say.
//!
//! What this runtime knows host-side of the container's processes moves to the new town,
//! and the labelled processes it spawned there (the pool's server) are offered for
//! adoption, each once (`records::Known::rename`).

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::RenameContainerOptionsBuilder;
use gastown_core::{ContainerOptions, Error, Result, TownId};

use crate::container::{is_managed, is_running};
use crate::error::{is_not_found, status_of, Error as DockerError};
use crate::runtime::DockerRuntime;
use crate::volume::AGENTS_MOUNT;

impl DockerRuntime {
    /// `rename_container` of the trait (see the module docs).
    ///
    /// # Errors
    /// [`Error::Unsupported`] when `options` asks for bind mounts or limits the container
    /// does not have (nothing changed); [`Error::InvalidConfig`] when `to` already has a
    /// container (also when one appears while renaming); [`Error::ContainerNotRunning`]
    /// when `from` has no running container (absent, stopped or paused, or not gastown's);
    /// engine failures as `Api` (in `Generic`).
    pub(crate) async fn rename_town(
        &self,
        from: &TownId,
        to: &TownId,
        options: &ContainerOptions,
    ) -> Result<()> {
        let target = self.container_name(to);
        if self.inspect(to).await?.is_some() {
            return Err(Error::InvalidConfig {
                message: format!("town {to} already has a container ({target})"),
            });
        }
        let container = match self.inspect(from).await? {
            Some(c) if is_managed(&c) && is_running(&c) => c,
            _ => return Err(Error::ContainerNotRunning { town: from.clone() }),
        };
        if let Some(operation) = self.lacks(&container, options) {
            return Err(Error::Unsupported {
                runtime: crate::error::RUNTIME,
                operation,
            });
        }
        let id = container
            .id
            .clone()
            .unwrap_or_else(|| self.container_name(from));
        let rename = RenameContainerOptionsBuilder::default()
            .name(&target)
            .build();
        match self.docker.rename_container(&id, rename).await {
            Ok(()) => {}
            // The name was taken meanwhile: a racing start of `to`.
            Err(e) if status_of(&e) == Some(409) => {
                return Err(Error::InvalidConfig {
                    message: format!("town {to} already has a container ({target})"),
                })
            }
            Err(e) if is_not_found(&e) => {
                return Err(Error::ContainerNotRunning { town: from.clone() })
            }
            Err(e) => return Err(DockerError::api("renaming container", id, e).into()),
        }
        {
            let mut managed = self.managed.lock();
            managed.remove(from);
            managed.insert(to.clone());
        }
        self.known.rename(from, to);
        tracing::debug!(%from, %to, container = %target, "container handed over");
        Ok(())
    }

    /// What the running container lacks of what `options` asks for, as the operation
    /// `Unsupported` names; `None` when it serves them. Bind mounts, memory and pids limits
    /// are fixed when the engine creates a container.
    fn lacks(
        &self,
        container: &ContainerInspectResponse,
        options: &ContainerOptions,
    ) -> Option<&'static str> {
        if !options.mounts.is_empty() {
            return Some("rename_container with bind mounts");
        }
        let host = container.host_config.as_ref();
        let memory = options.memory_bytes.unwrap_or(self.options.memory_bytes);
        if i64::try_from(memory).ok() != host.and_then(|h| h.memory) {
            return Some("rename_container with another memory limit");
        }
        let pids = options.pids_limit.unwrap_or(self.options.pids_limit);
        if Some(pids) != host.and_then(|h| h.pids_limit) {
            return Some("rename_container with another pids limit");
        }
        None
    }
}

/// The name of the volume a container mounts at [`AGENTS_MOUNT`], if any: its town's own,
/// or, for a container handed over by `rename_container`, the one it was created with.
pub(crate) fn agents_volume(c: &ContainerInspectResponse) -> Option<String> {
    c.mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|m| m.destination.as_deref() == Some(AGENTS_MOUNT))
        .and_then(|m| m.name.clone())
}
