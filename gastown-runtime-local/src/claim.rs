//! Handing a running container to another town (`ContainerRuntime::rename_container`): how
//! a brand-new town claims a warm pool's pre-booted server (`ARCHITECTURE.md`, *Warm pool*).
//!
//! The pool's directory stays where it is and the town's directory becomes a symbolic link
//! to it. A running server keeps every path it was given at boot (its `HOME`, its data
//! directory, its records): they are the pool directory's, and still valid. The town's
//! paths resolve through the link to the same files, so the town sees exactly what the
//! server sees. `remove` deletes both the link and the directory it points to.

use std::path::Path;

use gastown_core::{ContainerOptions, Error, Result, TownId};

use crate::mounts;
use crate::runtime::LocalRuntime;

impl LocalRuntime {
    /// [`ContainerRuntime::rename_container`](gastown_core::ContainerRuntime::rename_container)
    /// for the local runtime: see the module docs. `to`'s mounts are applied in the
    /// shared directory; its labelled processes are offered for adoption again.
    pub(crate) fn rename_town(
        &self,
        from: &TownId,
        to: &TownId,
        options: &ContainerOptions,
    ) -> Result<()> {
        let from_dir = self.town_dir(from);
        let to_dir = self.town_dir(to);
        let mut towns = self.towns.lock();
        if towns.get(to).is_some_and(|s| s.running) || to_dir.symlink_metadata().is_ok() {
            return Err(Error::InvalidConfig {
                message: format!("town {to} already has a container"),
            });
        }
        if !towns.get(from).is_some_and(|s| s.running && !s.paused) {
            return Err(Error::ContainerNotRunning { town: from.clone() });
        }
        mounts::validate(&from_dir, &options.mounts)?;
        // Relative, so the root can move as a whole.
        let target = Path::new(from.as_str());
        std::os::unix::fs::symlink(target, &to_dir)
            .map_err(|e| Error::io(format!("linking {}", to_dir.display()), e))?;
        if let Err(e) = mounts::apply(&from_dir, &options.mounts) {
            let _ = std::fs::remove_file(&to_dir);
            return Err(e);
        }
        let state = towns.remove(from).expect("checked running above");
        for p in &state.processes {
            p.offer();
        }
        towns.insert(to.clone(), state);
        tracing::debug!(%from, %to, "local container handed over");
        Ok(())
    }

    /// Deletes the directory of `town`: when it is a link made by
    /// [`rename_town`](Self::rename_town), the directory it points to and the link.
    pub(crate) async fn remove_town_dir(&self, town: &TownId) -> Result<()> {
        let dir = self.town_dir(town);
        let ctx = |d: &Path| format!("removing {}", d.display());
        let meta = match tokio::fs::symlink_metadata(&dir).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(ctx(&dir), e)),
        };
        if meta.file_type().is_symlink() {
            let target = tokio::fs::read_link(&dir)
                .await
                .map_err(|e| Error::io(ctx(&dir), e))?;
            let real = self.root().join(target);
            // Only a directory of this root: a link pointing elsewhere was not made here.
            if real.parent() == Some(self.root()) {
                remove_dir(&real).await?;
            }
            return match tokio::fs::remove_file(&dir).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(ctx(&dir), e)),
            };
        }
        remove_dir(&dir).await
    }
}

async fn remove_dir(dir: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", dir.display()), e)),
    }
}
