//! `stat` of the trait: what a path in a town's container is, from the engine's
//! `HEAD /containers/{id}/archive?path=` — a stat header (`X-Docker-Container-Path-Stat`)
//! and no body, where `get_file` would stream a tar of the whole file.

use bollard::container::PathStatResponse;
use bollard::query_parameters::ContainerArchiveInfoOptionsBuilder;
use gastown_core::{ContainerPath, PathKind, PathStat, Result, TownId};

use crate::error::{is_not_found, Error as DockerError};
use crate::files::{resolve_link, MAX_SYMLINKS};
use crate::runtime::DockerRuntime;

/// Go's `os.FileMode` bits as the engine reports a path's mode (Go's `io/fs` package):
/// `ModeDir`.
const MODE_DIR: u32 = 1 << 31;
/// `ModeSymlink`.
const MODE_SYMLINK: u32 = 1 << 27;
/// `ModeType`: every bit that makes a path something other than a regular file
/// (`ModeDir | ModeSymlink | ModeNamedPipe | ModeSocket | ModeDevice | ModeCharDevice |
/// ModeIrregular`).
const MODE_TYPE: u32 =
    MODE_DIR | MODE_SYMLINK | (1 << 25) | (1 << 24) | (1 << 26) | (1 << 21) | (1 << 19);

impl DockerRuntime {
    /// `stat` of the trait. The engine answers a stat in a paused container, but the
    /// trait refuses file operations there on every backend, so the container's state is
    /// read too — concurrently with the first stat, so the call costs one round trip's
    /// latency. A symlink is followed (the engine reports its target fully resolved
    /// inside the container), up to [`MAX_SYMLINKS`] times.
    ///
    /// A 404 is a missing path: the container was running when the stat went out (a
    /// container removed between the two answers is seen by the caller's next call).
    pub(crate) async fn stat_path(
        &self,
        town: &TownId,
        path: &ContainerPath,
    ) -> Result<Option<PathStat>> {
        let name = self.container_name(town);
        let (state, first) = tokio::join!(self.running(town), self.archive_stat(&name, path));
        state?;
        let mut current = path.clone();
        let mut answer = first;
        for _ in 0..MAX_SYMLINKS {
            let stat = match answer {
                Ok(stat) => stat,
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => {
                    return Err(
                        DockerError::api("looking at", format!("{current} in {name}"), e).into(),
                    )
                }
            };
            if stat.file_mode & MODE_SYMLINK == 0 {
                return Ok(Some(path_stat(&stat)));
            }
            current = resolve_link(&current, &stat.link_target)?;
            answer = self.archive_stat(&name, &current).await;
        }
        Err(DockerError::SymlinkLoop {
            path: path.to_string(),
            container: name,
        }
        .into())
    }

    /// One `HEAD /containers/{name}/archive?path=`.
    async fn archive_stat(
        &self,
        name: &str,
        path: &ContainerPath,
    ) -> std::result::Result<PathStatResponse, bollard::errors::Error> {
        let opts = ContainerArchiveInfoOptionsBuilder::default()
            .path(path.as_str())
            .build();
        self.docker
            .get_container_archive_info(name, Some(opts))
            .await
    }
}

/// The trait's view of the engine's stat of a path that is not a symlink.
fn path_stat(stat: &PathStatResponse) -> PathStat {
    let kind = if stat.file_mode & MODE_DIR != 0 {
        PathKind::Dir
    } else if stat.file_mode & MODE_TYPE == 0 {
        PathKind::File
    } else {
        PathKind::Other
    };
    PathStat::new(kind, u64::try_from(stat.size).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mode: u32, size: i64) -> PathStatResponse {
        serde_json::from_value(serde_json::json!({
            "name": "x", "size": size, "mode": mode, "mtime": null, "linkTarget": ""
        }))
        .unwrap()
    }

    #[test]
    fn go_file_modes_map_to_kinds() {
        // 0644 regular file, 0755 directory, a socket (ModeSocket | 0755).
        assert_eq!(
            path_stat(&stat(0o644, 12)),
            PathStat::new(PathKind::File, 12)
        );
        assert_eq!(path_stat(&stat(MODE_DIR | 0o755, 4096)).kind, PathKind::Dir);
        assert_eq!(path_stat(&stat((1 << 24) | 0o755, 0)).kind, PathKind::Other);
        assert_eq!(path_stat(&stat(0o644, -1)).size_bytes, 0);
    }
}
