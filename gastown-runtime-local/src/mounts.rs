//! [`Mount`]s of the local backend: a symlink at the container path to the host directory.
//!
//! A symlink cannot be made read-only, so `Mount::read_only` is not enforced here (the
//! crate docs say so); the Docker backend enforces it.

use std::path::Path;

use gastown_core::{ContainerPath, Error, Mount, Result};

use crate::paths::host_path;

/// Checks every mount before any is made, so a bad one changes nothing.
///
/// # Errors
/// [`Error::InvalidConfig`] for a host path that is relative or not a directory, a mount at
/// the container's root, or a container path already taken by something that is not a
/// mount symlink.
pub(crate) fn validate(town_dir: &Path, mounts: &[Mount]) -> Result<()> {
    for m in mounts {
        let bad = |why: &str| Error::InvalidConfig {
            message: format!("mount {} at {}: {why}", m.host.display(), m.container),
        };
        if !m.host.is_absolute() {
            return Err(bad("the host path must be absolute"));
        }
        if !m.host.is_dir() {
            return Err(bad("the host path is not a directory"));
        }
        if m.container == ContainerPath::root() {
            return Err(bad("cannot mount over the container's root"));
        }
        let link = host_path(town_dir, &m.container);
        if let Ok(meta) = std::fs::symlink_metadata(&link) {
            if !meta.file_type().is_symlink() {
                return Err(bad("the container path already exists and is not a mount"));
            }
        }
    }
    Ok(())
}

/// Makes (or re-points) the symlinks. Call [`validate`] first.
///
/// # Errors
/// [`Error::Io`] when a directory or symlink cannot be made.
pub(crate) fn apply(town_dir: &Path, mounts: &[Mount]) -> Result<()> {
    for m in mounts {
        let link = host_path(town_dir, &m.container);
        let ctx = |what: &str| format!("mount {} at {}: {what}", m.host.display(), m.container);
        if std::fs::read_link(&link).is_ok_and(|target| target == m.host) {
            continue;
        }
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(ctx("creating parents"), e))?;
        }
        match std::fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(ctx("removing the old link"), e)),
        }
        match std::os::unix::fs::symlink(&m.host, &link) {
            Ok(()) => {}
            // A concurrent start made the same link.
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && std::fs::read_link(&link).is_ok_and(|t| t == m.host) => {}
            Err(e) => return Err(Error::io(ctx("linking"), e)),
        }
    }
    Ok(())
}
