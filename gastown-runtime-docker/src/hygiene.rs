//! Orphan hygiene: containers and agents volumes an earlier process left behind (a crash, a
//! kill) are found by their labels and removed.

use std::collections::{BTreeSet, HashMap};

use bollard::models::ContainerSummary;
use bollard::query_parameters::{ListContainersOptionsBuilder, ListVolumesOptionsBuilder};
use gastown_core::{Result, TownId};

use crate::container::{LABEL_MANAGED, LABEL_PREFIX, LABEL_TOWN};
use crate::error::Error as DockerError;
use crate::runtime::DockerRuntime;
use crate::volume::AGENTS_MOUNT;

impl DockerRuntime {
    /// Names of containers carrying this runtime's labels (`gastown.managed=true` and its
    /// `gastown.prefix`) whose town this runtime instance has not started or adopted —
    /// left over from an earlier process. Running or not. A container named for a managed
    /// town is that town's whatever its label says (a hand-over by `rename_container`
    /// keeps the label of the town it was created for).
    ///
    /// # Errors
    /// [`DockerError::Api`] when the engine cannot list containers.
    pub async fn list_orphans(&self) -> Result<Vec<String>> {
        let list = self.labelled_containers().await?;
        let managed = self.managed.lock().clone();
        let mut orphans: Vec<String> = list
            .into_iter()
            .filter(|c| !self.is_managed_container(&managed, c))
            .filter_map(|c| {
                c.names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .or(c.id)
            })
            .collect();
        orphans.sort();
        Ok(orphans)
    }

    /// The containers carrying this runtime's labels (`gastown.managed=true` and its
    /// `gastown.prefix`), running or not.
    async fn labelled_containers(&self) -> Result<Vec<ContainerSummary>> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_PREFIX}={}", self.options.name_prefix),
            ],
        )]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| DockerError::api("listing containers", "", e).into())
    }

    /// Whether a listed container belongs to a town this runtime instance started or
    /// adopted: by its town label, or by its name — a container handed over by
    /// `rename_container` keeps the label of the town it was created for.
    fn is_managed_container(&self, managed: &BTreeSet<TownId>, c: &ContainerSummary) -> bool {
        !is_orphan(managed, c.labels.as_ref())
            || c.names.iter().flatten().any(|n| {
                let n = n.trim_start_matches('/');
                managed.iter().any(|t| self.container_name(t) == n)
            })
    }

    /// Names of agents volumes carrying this runtime's labels (`gastown.managed=true` and
    /// its `gastown.prefix`) whose town this runtime instance has not started or adopted —
    /// left over from an earlier process (with or without their container). A volume that
    /// a managed town's container mounts at `/agents` is that town's whatever its label
    /// says (a handed-over container's).
    ///
    /// # Errors
    /// [`DockerError::Api`] when the engine cannot list volumes or containers.
    pub async fn list_orphan_volumes(&self) -> Result<Vec<String>> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_PREFIX}={}", self.options.name_prefix),
            ],
        )]);
        let opts = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_volumes(Some(opts))
            .await
            .map_err(|e| DockerError::api("listing volumes", "", e))?;
        let managed = self.managed.lock().clone();
        // A handed-over container's volume is named for the town it was created for: it
        // is its new town's while that town's container mounts it.
        let mounted: BTreeSet<String> = self
            .labelled_containers()
            .await?
            .iter()
            .filter(|c| self.is_managed_container(&managed, c))
            .flat_map(|c| c.mounts.iter().flatten())
            .filter(|m| m.destination.as_deref() == Some(AGENTS_MOUNT))
            .filter_map(|m| m.name.clone())
            .collect();
        let mut orphans: Vec<String> = list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| is_orphan(&managed, Some(&v.labels)) && !mounted.contains(&v.name))
            .map(|v| v.name)
            .collect();
        orphans.sort();
        Ok(orphans)
    }

    /// Force-removes every container [`list_orphans`](Self::list_orphans) names, then every
    /// volume [`list_orphan_volumes`](Self::list_orphan_volumes) names (a volume that is
    /// still in use is left alone, with a warning). Returns how many containers and volumes
    /// were removed, together.
    ///
    /// # Errors
    /// [`DockerError::Api`] when the engine cannot list or remove them.
    pub async fn remove_orphans(&self) -> Result<usize> {
        let orphans = self.list_orphans().await?;
        for name in &orphans {
            tracing::info!(container = %name, "removing orphan container");
            self.remove_by_id(name).await?;
        }
        let mut removed = orphans.len();
        for name in self.list_orphan_volumes().await? {
            if self.remove_volume_named(&name).await? {
                tracing::info!(volume = %name, "removed orphan volume");
                removed += 1;
            } else {
                tracing::warn!(volume = %name, "orphan volume still in use; left alone");
            }
        }
        Ok(removed)
    }
}

/// True unless the labels name a town this runtime instance started or adopted.
fn is_orphan(managed: &BTreeSet<TownId>, labels: Option<&HashMap<String, String>>) -> bool {
    !labels
        .and_then(|l| l.get(LABEL_TOWN))
        .and_then(|t| TownId::new(t.as_str()).ok())
        .is_some_and(|t| managed.contains(&t))
}
