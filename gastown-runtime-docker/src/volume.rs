//! The town's agents volume: `/agents` (each agent's home and `kilo.db`) lives in a named
//! volume rather than in a container, so it outlives any one container. After a stop or a
//! `docker kill`, `start` replaces the container and the new one mounts the same volume;
//! only `remove` deletes it.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::VolumeCreateRequest;
use gastown_core::{Result, TownId};

use crate::claim::agents_volume;
use crate::container::{LABEL_MANAGED, LABEL_PREFIX, LABEL_TOWN};
use crate::error::{is_not_found, status_of, Error as DockerError};
use crate::runtime::DockerRuntime;

/// Where the agents volume is mounted in every container of a town: the agents' data root
/// of `gastown_core::layout` (`/agents/<agent>/…`).
pub const AGENTS_MOUNT: &str = "/agents";

/// How many times `remove` retries a volume the engine still counts as in use (a container
/// removal in progress, or a racing start that mounted it again).
const REMOVE_ATTEMPTS: u32 = 8;

impl DockerRuntime {
    /// The name of `town`'s agents volume: `<prefix>-<town>-agents`.
    pub fn volume_name(&self, town: &TownId) -> String {
        format!("{}-{}-agents", self.options.name_prefix, town)
    }

    /// The labels of every container and volume of `town`.
    pub(crate) fn labels(&self, town: &TownId) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_TOWN.to_owned(), town.to_string()),
            (LABEL_PREFIX.to_owned(), self.options.name_prefix.clone()),
        ])
    }

    /// Creates the town's agents volume, or finds it (the engine's create is idempotent for
    /// a name). A fresh volume is empty until its first container mounts it; the engine then
    /// copies the image's `/agents` into it, ownership (uid 1000) included.
    ///
    /// # Errors
    /// [`DockerError::Api`] when the engine refuses, or [`DockerError::NotManaged`] when a
    /// volume of that name exists without the `gastown.managed=true` label (not ours to
    /// use).
    pub(crate) async fn ensure_volume(&self, town: &TownId) -> Result<String> {
        let name = self.volume_name(town);
        let request = VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(self.labels(town)),
            ..Default::default()
        };
        let volume = self
            .docker
            .create_volume(request)
            .await
            .map_err(|e| DockerError::api("creating volume", &name, e))?;
        if volume.labels.get(LABEL_MANAGED).map(String::as_str) != Some("true") {
            return Err(DockerError::NotManaged {
                kind: "volume",
                name,
            }
            .into());
        }
        Ok(name)
    }

    /// Deletes `town`'s container and then its agents volume. A volume still in use (the
    /// container's removal is in progress, or a racing start mounted it again) is retried
    /// after removing the container again, a few times with a short backoff.
    ///
    /// # Errors
    /// [`DockerError::Api`] when the engine refuses, or [`DockerError::VolumeInUse`] when
    /// the volume stays in use.
    ///
    /// A container handed over by `rename_container` mounts the volume it was created with
    /// (`<prefix>-<pool id>-agents`): that one is deleted too, after the container (only
    /// when it carries this runtime's labels).
    pub(crate) async fn remove_container_and_volume(&self, town: &TownId) -> Result<()> {
        let container = self.container_name(town);
        let volume = self.volume_name(town);
        let handed_over = self
            .inspect(town)
            .await?
            .as_ref()
            .and_then(agents_volume)
            .filter(|v| *v != volume);
        for attempt in 0..REMOVE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            self.remove_by_id(&container).await?;
            if self.remove_volume_named(&volume).await? {
                if let Some(other) = &handed_over {
                    self.remove_foreign_agents_volume(other).await;
                }
                return Ok(());
            }
        }
        Err(DockerError::VolumeInUse {
            volume,
            attempts: REMOVE_ATTEMPTS,
        }
        .into())
    }

    /// Removes the agents volume `name` that a handed-over container of another town id
    /// mounted, once that container is gone: only a volume labelled as this runtime's
    /// (`gastown.managed=true` and its prefix), retried while the engine still counts it
    /// in use. Failures are logged, not returned: the town's own removal succeeded, and
    /// orphan hygiene finds a volume left behind (its town label names no managed town).
    pub(crate) async fn remove_foreign_agents_volume(&self, name: &str) {
        let ours = match self.docker.inspect_volume(name).await {
            Ok(v) => {
                v.labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
                    && v.labels.get(LABEL_PREFIX) == Some(&self.options.name_prefix)
            }
            Err(e) if is_not_found(&e) => return,
            Err(e) => {
                tracing::warn!(volume = name, error = %e, "inspecting a handed-over agents volume");
                return;
            }
        };
        if !ours {
            tracing::warn!(
                volume = name,
                "a handed-over container mounted a volume that is not ours; left alone"
            );
            return;
        }
        for attempt in 0..REMOVE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            match self.remove_volume_named(name).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(volume = name, error = %e, "removing a handed-over agents volume");
                    return;
                }
            }
        }
        tracing::warn!(
            volume = name,
            "a handed-over agents volume stays in use; left for orphan hygiene"
        );
    }

    /// Removes a volume by name: `Ok(true)` once it is gone (also when it never existed),
    /// `Ok(false)` when the engine says a container still uses it (HTTP 409).
    pub(crate) async fn remove_volume_named(&self, name: &str) -> Result<bool> {
        match self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(true),
            Err(e) if status_of(&e) == Some(409) => Ok(false),
            Err(e) => Err(DockerError::api("removing volume", name, e).into()),
        }
    }
}
