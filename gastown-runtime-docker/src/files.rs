//! Files in and out of a town's container (engine archive endpoints, tar), and its endpoint.

use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures::TryStreamExt;
use gastown_core::{CommandSpec, ContainerPath, Error, Result, TownId};

use crate::archive::{first_file, single_file, tree, Extracted};
use crate::error::{is_not_found, status_of, Error as DockerError};
use crate::runtime::DockerRuntime;
use crate::volume::AGENTS_MOUNT;

/// How many symlinks `get_file` follows before giving up (as a loop guard).
pub(crate) const MAX_SYMLINKS: usize = 8;

impl DockerRuntime {
    /// `put_file` of the trait: a one-file tar uploaded into the parent directory. The
    /// engine's archive endpoint does not create directories, so a missing parent is
    /// created with `mkdir -p` as the agents' user (so they own it) and the upload retried
    /// once.
    pub(crate) async fn put(
        &self,
        town: &TownId,
        path: &ContainerPath,
        contents: &[u8],
    ) -> Result<()> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(Error::InvalidPath {
                path: path.to_string(),
                reason: "must name a file, not the root",
            });
        };
        self.running(town).await?;
        let tar = single_file(name, contents).map_err(|e| Error::io("building a tar", e))?;
        match self.upload(town, &parent, tar.clone()).await? {
            true => Ok(()),
            false => {
                // The parent is missing: create it as the agents' user, then retry once.
                let mkdir = CommandSpec::new("mkdir")
                    .arg("-p")
                    .arg(&parent)
                    .env("PATH", "/usr/local/bin:/usr/bin:/bin");
                let out = self.exec_command(town, &mkdir).await?;
                if !out.success() {
                    return Err(Error::CommandFailed {
                        program: "mkdir".to_owned(),
                        exit_code: out.exit_code,
                        stderr_tail: out.stderr_tail(2000),
                    });
                }
                if self.upload(town, &parent, tar).await? {
                    Ok(())
                } else {
                    Err(DockerError::ParentVanished {
                        parent: parent.to_string(),
                        path: path.to_string(),
                    }
                    .into())
                }
            }
        }
    }

    /// `put_files` of the trait: when every file is under [`AGENTS_MOUNT`] (the agents
    /// volume's mount point, which every container has), one archive uploaded there
    /// holding the files and an entry for each directory between `/agents` and them
    /// ([`tree`]: owned by the agents' user; files `0600`, the directories holding them
    /// `0700`, the others `0755`, what `mkdir -p` makes): one engine round trip, where a
    /// file at a time costs an upload each, plus an exec (`mkdir -p`) and a retry when
    /// the parent is missing, as it is in a fresh container. The engine applies an
    /// entry's owner and mode to a directory that exists too; under `/agents` every
    /// directory is the agents' user's already, and `0755` is what they were made with.
    /// Anything else — a file outside `/agents`, files that cannot share an archive —
    /// is written a file at a time ([`put`](Self::put)).
    ///
    /// # Errors
    /// As `put_file`: `ContainerNotRunning`, `ContainerPaused`, `InvalidPath` for the
    /// root, engine failures as `Api` (in `Generic`); files before a failing one may be
    /// written.
    pub(crate) async fn put_many(
        &self,
        town: &TownId,
        files: &[(ContainerPath, Vec<u8>)],
    ) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        // The engine writes into a stopped container too; a town's files go to a running
        // one only (an inspect: a few ms, no exec).
        self.running(town).await?;
        let relative: Option<Vec<(Vec<&str>, &[u8])>> = files
            .iter()
            .map(|(path, contents)| {
                let mut components = path.components();
                (components.next() == Some(AGENTS_MOUNT.trim_start_matches('/')))
                    .then(|| (components.collect(), contents.as_slice()))
            })
            .collect();
        let archive = match relative {
            Some(relative) => tree(&relative).map_err(|e| Error::io("building a tar", e))?,
            None => None,
        };
        if let Some(tar) = archive {
            // `/agents` is always there (a volume mount point): `false` means a user's
            // image without it, for the file-at-a-time path to handle.
            if self
                .upload(town, &ContainerPath::new(AGENTS_MOUNT)?, tar)
                .await?
            {
                return Ok(());
            }
        }
        for (path, contents) in files {
            self.put(town, path, contents).await?;
        }
        Ok(())
    }

    /// Uploads into `dir`; `Ok(false)` when `dir` does not exist.
    async fn upload(&self, town: &TownId, dir: &ContainerPath, tar: Vec<u8>) -> Result<bool> {
        let name = self.container_name(town);
        let opts = UploadToContainerOptionsBuilder::default()
            .path(dir.as_str())
            .build();
        match self
            .docker
            .upload_to_container(&name, Some(opts), bollard::body_full(tar.into()))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => {
                // Either the directory or the container is missing.
                self.running(town).await?;
                Ok(false)
            }
            Err(e) if status_of(&e) == Some(409) => Err(self.refusal(town).await),
            Err(e) => Err(DockerError::api("writing into", format!("{dir} in {name}"), e).into()),
        }
    }

    /// `get_file` of the trait: the engine's archive of the path, unpacked. The engine
    /// does not follow a symlink in the last component, so links are resolved here (up to
    /// [`MAX_SYMLINKS`]) the way a process opening the path would.
    pub(crate) async fn get(&self, town: &TownId, path: &ContainerPath) -> Result<Vec<u8>> {
        self.running(town).await?;
        let name = self.container_name(town);
        let mut current = path.clone();
        for _ in 0..MAX_SYMLINKS {
            let opts = DownloadFromContainerOptionsBuilder::default()
                .path(current.as_str())
                .build();
            let bytes: Vec<u8> = match self
                .docker
                .download_from_container(&name, Some(opts))
                .try_fold(Vec::new(), |mut acc, chunk| async move {
                    acc.extend_from_slice(&chunk);
                    Ok(acc)
                })
                .await
            {
                Ok(b) => b,
                Err(e) if is_not_found(&e) => {
                    self.running(town).await?;
                    return Err(Error::FileNotFound {
                        path: path.to_string(),
                    });
                }
                Err(e) => {
                    return Err(DockerError::api("reading", format!("{path} in {name}"), e).into())
                }
            };
            match first_file(&bytes)
                .map_err(|e| Error::io(format!("reading the archive of {path}"), e))?
            {
                Extracted::File(contents) => return Ok(contents),
                Extracted::Symlink(target) => {
                    current = resolve_link(&current, &target)?;
                }
                Extracted::NotAFile => {
                    return Err(DockerError::NotAFile {
                        path: path.to_string(),
                        container: name,
                    }
                    .into())
                }
            }
        }
        Err(DockerError::SymlinkLoop {
            path: path.to_string(),
            container: name,
        }
        .into())
    }

    /// `endpoint` of the trait: the container's bridge address. Nothing is published on
    /// the host, so a town's SDK servers are reachable from this host only.
    pub(crate) async fn endpoint_url(&self, town: &TownId, port: u16) -> Result<String> {
        let c = self.running(town).await?;
        let networks = c
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        // The default bridge first; otherwise any network with an address.
        let ip = networks
            .get("bridge")
            .and_then(|n| n.ip_address.clone())
            .filter(|ip| !ip.is_empty())
            .or_else(|| {
                networks
                    .values()
                    .filter_map(|n| n.ip_address.clone())
                    .find(|ip| !ip.is_empty())
            })
            .ok_or_else(|| DockerError::NoAddress {
                container: self.container_name(town),
            })?;
        Ok(format!("http://{ip}:{port}"))
    }
}

/// The path a symlink at `link` pointing at `target` names.
pub(crate) fn resolve_link(link: &ContainerPath, target: &str) -> Result<ContainerPath> {
    let base = if target.starts_with('/') {
        Vec::new()
    } else {
        link.parent()
            .map(|p| p.components().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let mut parts: Vec<String> = base;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c.to_owned()),
        }
    }
    ContainerPath::new(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_relative_and_absolute() {
        let link = ContainerPath::new("/a/b/link").unwrap();
        assert_eq!(resolve_link(&link, "file").unwrap().as_str(), "/a/b/file");
        assert_eq!(resolve_link(&link, "../c/f").unwrap().as_str(), "/a/c/f");
        assert_eq!(resolve_link(&link, "/etc/x").unwrap().as_str(), "/etc/x");
        assert_eq!(resolve_link(&link, "../../../../x").unwrap().as_str(), "/x");
    }
}
