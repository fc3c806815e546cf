//! [`DockerRuntime`]: connecting to the engine, and the [`ContainerRuntime`] impl.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bollard::{Docker, API_DEFAULT_VERSION};
use gastown_core::{
    AdoptedProcess, CommandSpec, ContainerInfo, ContainerOptions, ContainerPath, ContainerRuntime,
    ContainerStatus, Error, ExecOutput, PathStat, ProcessLabel, Result, SpawnedProcess, TownId,
};
use parking_lot::Mutex;

use crate::error::{is_not_found, Error as DockerError};
use crate::image::{ensure_built, IMAGE_LABEL, IMAGE_LABEL_VALUE};
use crate::options::{AgentImage, DockerOptions};

/// Timeout of one engine request (not of a streamed exec or build), in seconds.
const REQUEST_TIMEOUT_S: u64 = 120;

/// gastown's [`ContainerRuntime`] on a Docker Engine: one container per town, named
/// `<prefix>-<town>`, labelled `gastown.managed=true` and `gastown.town=<town>`, running
/// as uid 1000 with every capability dropped, `no-new-privileges`, memory and pids limits,
/// and no host mount but the town's declared ones. Commands run as engine execs;
/// endpoints are the container's bridge IP; files move as tar archives.
///
/// `/agents` (the agents' homes and `kilo.db`s) is the town's named volume
/// `<prefix>-<town>-agents`, labelled like the container. A container that stopped or was
/// killed from outside is not restarted: the next `start` replaces it with a fresh
/// container (`created == true`, a new id) mounting the same volume, so agent data carries
/// over and everything else begins from the image. `remove` deletes container and volume.
///
/// Cheap to share behind an `Arc`; all state but the set of towns it manages lives in the
/// engine, so several instances (even in several processes) can drive the same towns.
pub struct DockerRuntime {
    pub(crate) docker: Docker,
    pub(crate) socket: PathBuf,
    pub(crate) options: DockerOptions,
    /// The image containers run (a tag or the user's name).
    pub(crate) image: String,
    /// Names the image's `ENV` sets: unset in every command whose spec does not set them.
    pub(crate) image_env_names: Vec<String>,
    /// True for gastown's built image, whose containers start with a root setup step.
    pub(crate) root_setup: bool,
    /// Towns this instance started or adopted (not orphans).
    pub(crate) managed: Mutex<BTreeSet<TownId>>,
    /// The labelled processes this instance spawned or adopted, per town (`records.rs`).
    pub(crate) known: crate::records::Known,
    /// One start of a town at a time: the engine cannot tell two racing starts apart
    /// (`town_locks`).
    pub(crate) starts: crate::town_locks::TownLocks,
}

impl fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("socket", &self.socket)
            .field("image", &self.image)
            .field("name_prefix", &self.options.name_prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(socket: &Path, source: bollard::errors::Error) -> Error {
    DockerError::EngineUnavailable {
        socket: socket.to_owned(),
        source,
    }
    .into()
}

fn valid_prefix(prefix: &str) -> bool {
    // Docker container names: [a-zA-Z0-9][a-zA-Z0-9_.-]*; the town id follows a '-'.
    let mut chars = prefix.chars();
    prefix.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl DockerRuntime {
    /// Connects to the engine at `options.socket`, checks it answers (and settles on an API
    /// version both sides speak), and makes sure the image exists — building gastown's
    /// agent image when `options.image` is [`AgentImage::Build`] and no image with the same
    /// inputs is there yet (a few seconds; reused afterwards).
    ///
    /// # Errors
    /// Docker's own conditions arrive as [`Error::Generic`] holding a [`DockerError`]
    /// (reach it with [`Error::backend_error`]):
    ///
    /// - [`DockerError::EngineUnavailable`] naming the socket when nothing answers there;
    /// - [`DockerError::ImageBuild`] with the tail of the build log when the image cannot
    ///   be built (a missing kilo binary at an explicit path, no busybox-static, no git, a
    ///   failed engine build).
    ///
    /// And core variants:
    ///
    /// - [`Error::KiloNotFound`] when `AgentImage::Build { kilo_bin: None }` and kilo is
    ///   not installed;
    /// - [`Error::InvalidConfig`] for a bad name prefix, a socket path that is not UTF-8,
    ///   or an [`AgentImage::Named`] image the engine does not have (nothing is pulled).
    pub async fn connect(options: DockerOptions) -> Result<DockerRuntime> {
        if !valid_prefix(&options.name_prefix) {
            return Err(Error::InvalidConfig {
                message: format!(
                    "container name prefix {:?} must be 1-64 characters of [a-zA-Z0-9_.-], starting alphanumeric",
                    options.name_prefix
                ),
            });
        }
        let socket = options.socket.clone();
        let socket_str = socket.to_str().ok_or_else(|| Error::InvalidConfig {
            message: format!(
                "the engine socket path {} is not valid UTF-8",
                socket.display()
            ),
        })?;
        let docker = Docker::connect_with_unix(socket_str, REQUEST_TIMEOUT_S, API_DEFAULT_VERSION)
            .map_err(|e| unavailable(&socket, e))?;
        docker.ping().await.map_err(|e| unavailable(&socket, e))?;
        // Older engines (Debian's 20.10 speaks API 1.41) refuse newer API versions.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unavailable(&socket, e))?;

        let image = match &options.image {
            AgentImage::Build { kilo_bin } => {
                let kilo = match kilo_bin {
                    Some(p) => p.clone(),
                    None => gastown_core::kilo::locate(None)?,
                };
                ensure_built(&docker, &kilo).await?.tag
            }
            AgentImage::Named(name) => name.clone(),
        };
        let inspected = match docker.inspect_image(&image).await {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => {
                return Err(Error::InvalidConfig {
                    message: format!(
                        "image {image} is not in the engine at {} (nothing is pulled; build or load it first)",
                        socket.display()
                    ),
                })
            }
            Err(e) => return Err(unavailable(&socket, e)),
        };
        let config = inspected.config.unwrap_or_default();
        // Images gastown built (this run or another, even when named) carry its label and
        // get the root setup step; a user's own image does not.
        let root_setup = config
            .labels
            .as_ref()
            .and_then(|l| l.get(IMAGE_LABEL))
            .is_some_and(|v| v == IMAGE_LABEL_VALUE);
        let image_env_names = config
            .env
            .unwrap_or_default()
            .iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_owned()))
            .collect();
        Ok(DockerRuntime {
            docker,
            socket,
            options,
            image,
            image_env_names,
            root_setup,
            managed: Mutex::new(BTreeSet::new()),
            known: crate::records::Known::default(),
            starts: crate::town_locks::TownLocks::default(),
        })
    }

    /// The image town containers run.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The engine socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The options this runtime was connected with.
    pub fn options(&self) -> &DockerOptions {
        &self.options
    }

    /// The engine client (for callers and tests that need an engine call this runtime
    /// does not offer).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    fn name(&self) -> &'static str {
        crate::error::RUNTIME
    }

    fn sdk_bind_host(&self) -> &str {
        "0.0.0.0"
    }

    async fn start(&self, town: &TownId, options: &ContainerOptions) -> Result<ContainerInfo> {
        self.start_container(town, options).await
    }

    async fn status(&self, town: &TownId) -> Result<ContainerStatus> {
        self.container_status(town).await
    }

    async fn exec(&self, town: &TownId, command: &CommandSpec) -> Result<ExecOutput> {
        self.exec_command(town, command).await
    }

    async fn spawn(&self, town: &TownId, command: &CommandSpec) -> Result<SpawnedProcess> {
        self.spawn_command(town, command).await
    }

    async fn endpoint(&self, town: &TownId, port: u16) -> Result<String> {
        self.endpoint_url(town, port).await
    }

    async fn put_file(&self, town: &TownId, path: &ContainerPath, contents: &[u8]) -> Result<()> {
        self.put(town, path, contents).await
    }

    /// One archive upload at `/agents` when every file is under it (parents created,
    /// owned by the agents' user; files `0600`), else a file at a time.
    async fn put_files(&self, town: &TownId, files: &[(ContainerPath, Vec<u8>)]) -> Result<()> {
        self.put_many(town, files).await
    }

    async fn get_file(&self, town: &TownId, path: &ContainerPath) -> Result<Vec<u8>> {
        self.get(town, path).await
    }

    async fn stat(&self, town: &TownId, path: &ContainerPath) -> Result<Option<PathStat>> {
        self.stat_path(town, path).await
    }

    /// The engine renames the container; labels, hostname, mounts and limits stay what
    /// they were at create, so `options` with bind mounts or other limits is refused
    /// (`Unsupported`, nothing changed). `remove` of `to` deletes the volume the container
    /// mounts as well as `to`'s own. Details: the `claim` module of this crate.
    async fn rename_container(
        &self,
        from: &TownId,
        to: &TownId,
        options: &ContainerOptions,
    ) -> Result<()> {
        self.rename_town(from, to, options).await
    }

    async fn stop(&self, town: &TownId, grace: Duration) -> Result<()> {
        self.stop_container(town, grace).await
    }

    async fn remove(&self, town: &TownId) -> Result<()> {
        self.remove_container(town).await
    }

    /// Recorded in the container (`/run/gastown/processes/<pid>.json`, written by the exec
    /// that starts the process, before this returns). The label's lock file is not taken
    /// (the image's busybox has no `flock`): the agent's earlier processes are ended first,
    /// and one agent's spawns are serialised within this runtime. Finding them costs an
    /// exec, skipped for an agent's first spawn in a container this runtime started (no
    /// record of it can be there; `adopt` skips it likewise).
    async fn spawn_labelled(
        &self,
        town: &TownId,
        command: &CommandSpec,
        label: &ProcessLabel,
        grace: Duration,
    ) -> Result<SpawnedProcess> {
        self.spawn_recorded(town, command, label, grace).await
    }

    /// A live recorded process of `agent` (pid and start time checked in the container's
    /// `/proc`) that this runtime neither spawned nor adopted before; its handle reads
    /// `/proc` and signals by pid through execs.
    async fn adopt(&self, town: &TownId, agent: &str) -> Result<Option<AdoptedProcess>> {
        self.adopt_recorded(town, agent).await
    }

    fn can_pause(&self) -> bool {
        true
    }

    /// The engine's pause (cgroup freezer). Measured here with a `kilo serve` in the
    /// container (`examples/pause_cost.rs`, Docker 20.10.24, kilo 7.7.9, medians of 5 on a
    /// loaded 2-core host): 15–23 ms, against 30–46 ms for `docker pause` through the CLI.
    async fn pause(&self, town: &TownId) -> Result<()> {
        self.freeze(town, true).await
    }

    /// The engine's unpause.
    async fn resume(&self, town: &TownId) -> Result<()> {
        self.freeze(town, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_validated() {
        for ok in ["gastown", "gt-test.1", "a"] {
            assert!(valid_prefix(ok), "{ok}");
        }
        for bad in ["", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_prefix(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_missing_socket_is_engine_unavailable_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("no-docker.sock");
        let err = DockerRuntime::connect(DockerOptions::default().with_socket(&socket))
            .await
            .unwrap_err();
        match err.backend_error::<DockerError>() {
            Some(DockerError::EngineUnavailable { socket: s, .. }) => assert_eq!(s, &socket),
            other => panic!("unexpected {other:?} in {err:?}"),
        }
        assert!(err.to_string().contains("no-docker.sock"));
        assert!(!socket.exists(), "nothing was created at the socket path");
    }
}
