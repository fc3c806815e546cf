//! Orphan hygiene: containers an earlier process left behind (a crash, a kill) are found by
//! their labels and removed.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptionsBuilder;
use gastown_core::{Result, TownId};

use crate::container::{LABEL_MANAGED, LABEL_PREFIX, LABEL_TOWN};
use crate::errors::runtime;
use crate::runtime::DockerRuntime;

impl DockerRuntime {
    /// Names of containers carrying this runtime's labels (`gastown.managed=true` and its
    /// `gastown.prefix`) whose town this runtime instance has not started or adopted —
    /// left over from an earlier process. Running or not.
    ///
    /// # Errors
    /// [`Error::Runtime`](gastown_core::Error::Runtime) when the engine cannot list containers.
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
            .map_err(|e| runtime("listing containers", e))?;
        let managed = self.managed.lock().clone();
        let mut orphans: Vec<String> = list
            .into_iter()
            .filter(|c| {
                let town = c.labels.as_ref().and_then(|l| l.get(LABEL_TOWN));
                !town
                    .and_then(|t| TownId::new(t.as_str()).ok())
                    .is_some_and(|t| managed.contains(&t))
            })
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

    /// Force-removes every container [`list_orphans`](Self::list_orphans) names (with its
    /// anonymous volumes). Returns how many were removed.
    ///
    /// # Errors
    /// [`Error::Runtime`](gastown_core::Error::Runtime) when the engine cannot list or remove them.
    pub async fn remove_orphans(&self) -> Result<usize> {
        let orphans = self.list_orphans().await?;
        for name in &orphans {
            tracing::info!(container = %name, "removing orphan container");
            self.remove_by_id(name).await?;
        }
        Ok(orphans.len())
    }
}
