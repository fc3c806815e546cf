//! Orphan hygiene: containers and agents volumes an earlier process left behind (a crash, a
//! kill) are found by their labels and removed.

use std::collections::{BTreeSet, HashMap};

use bollard::query_parameters::{ListContainersOptionsBuilder, ListVolumesOptionsBuilder};
use gastown_core::{Result, TownId};

use crate::container::{LABEL_MANAGED, LABEL_PREFIX, LABEL_TOWN};
use crate::error::Error as DockerError;
use crate::runtime::DockerRuntime;

impl DockerRuntime {
    /// Names of containers carrying this runtime's labels (`gastown.managed=true` and its
    /// `gastown.prefix`) whose town this runtime instance has not started or adopted —
    /// left over from an earlier process. Running or not.
    ///
    /// # Errors
    /// [`DockerError::Api`] when the engine cannot list containers.
    pub async fn list_orphans(&self) -> Result<Vec<String>> {
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
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| DockerError::api("listing containers", "", e))?;
        let managed = self.managed.lock().clone();
        let mut orphans: Vec<String> = list
            .into_iter()
            .filter(|c| is_orphan(&managed, c.labels.as_ref()))
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

    /// Names of agents volumes carrying this runtime's labels (`gastown.managed=true` and
    /// its `gastown.prefix`) whose town this runtime instance has not started or adopted —
    /// left over from an earlier process (with or without their container).
    ///
    /// # Errors
    /// [`DockerError::Api`] when the engine cannot list volumes.
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
        let mut orphans: Vec<String> = list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| is_orphan(&managed, Some(&v.labels)))
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
