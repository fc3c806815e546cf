//! A town's container: create or adopt it, read its state, stop it, remove it, and find
//! the orphans an earlier crash left behind.

use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, HostConfig, Mount,
    MountType, MountVolumeOptions,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use gastown_core::{ContainerInfo, ContainerOptions, ContainerStatus, Error, Result, TownId};

use crate::claim::agents_volume;
use crate::error::{is_not_found, status_of, Error as DockerError};
use crate::runtime::DockerRuntime;
use crate::volume::AGENTS_MOUNT;

/// Label on every container and volume the runtime creates.
pub const LABEL_MANAGED: &str = "gastown.managed";
/// Label naming the container's (or volume's) town.
pub const LABEL_TOWN: &str = "gastown.town";
/// Label holding the runtime's name prefix (on containers and volumes), so hygiene only
/// touches its own deployment.
pub const LABEL_PREFIX: &str = "gastown.prefix";

/// The `PATH` of the container itself (what the exec wrapper resolves programs against when
/// a command sets none): `gastown_core::env::AGENT_PATH`.
const CONTAINER_PATH_VAR: &str = "PATH=/usr/local/bin:/usr/bin:/bin";

/// The container's main process, under the engine's init (`docker-init`, which reaps
/// zombies). It idles; on SIGTERM (`docker stop`) it passes SIGTERM to every other process
/// and exits once they are gone — the engine's SIGKILL after the grace period covers the
/// rest.
const KEEPALIVE: &str = r#"trap 'kill -TERM -1 2>/dev/null
while :; do o=0
  for d in /proc/[0-9]*; do p=${d#/proc/}
    if [ "$p" = 1 ] || [ "$p" = $$ ]; then continue; fi
    read -r l 2>/dev/null < "$d/stat" || continue
    case $l in *") Z "*) ;; *) o=1 ;; esac
  done
  [ $o = 0 ] && exit 0
  sleep 0.1
done' TERM
while :; do sleep 3600 & wait; done"#;

/// What starting a container did.
enum Started {
    /// This call started it.
    Now,
    /// It was running already (a racing start got there first). The engine says so with
    /// a 304, which bollard 0.21 returns as `Ok(())`, so this is rarely seen: in-process
    /// races are kept out by the runtime's `starts` lock instead.
    Already,
    /// It no longer exists (a racing remove).
    Vanished,
}

/// The user every process of a town runs as (`uid:gid`), execs included.
pub(crate) const AGENT_USER: &str = "1000:1000";

/// The built image's first step, as root with only CHOWN/SETUID/SETGID: give `/` and the
/// agents volume's root to the agents' user (a fresh volume already copies the image's
/// uid-1000 `/agents`; this also covers a volume first filled from elsewhere), then become
/// it (`gastown` in the image's `/etc/passwd`) and run `$0`, the keepalive script.
const ROOT_SETUP: &str = r#"chown 1000:1000 / /agents ; exec su -s /bin/sh gastown -c "$0""#;

/// How many times `start` re-reads the engine's state after losing a race (another runtime
/// created, started or removed the container between two of our calls).
const START_ATTEMPTS: usize = 8;

impl DockerRuntime {
    /// The container name of `town`: `<prefix>-<town>`.
    pub fn container_name(&self, town: &TownId) -> String {
        format!("{}-{}", self.options.name_prefix, town)
    }

    /// Inspects the town's container; `None` when there is none.
    pub(crate) async fn inspect(&self, town: &TownId) -> Result<Option<ContainerInspectResponse>> {
        let name = self.container_name(town);
        match self.docker.inspect_container(&name, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(DockerError::api("inspecting container", name, e).into()),
        }
    }

    /// The inspected container when it runs, else [`Error::ContainerPaused`] (paused) or
    /// [`Error::ContainerNotRunning`] (absent, stopped).
    pub(crate) async fn running(&self, town: &TownId) -> Result<ContainerInspectResponse> {
        match self.inspect(town).await? {
            Some(c) if is_running(&c) => Ok(c),
            Some(c) if is_paused(&c) => Err(Error::ContainerPaused { town: town.clone() }),
            _ => Err(Error::ContainerNotRunning { town: town.clone() }),
        }
    }

    /// Why an engine call refused the town's container (a 404 or 409): paused, or not
    /// running, from a fresh inspect.
    pub(crate) async fn refusal(&self, town: &TownId) -> Error {
        match self.running(town).await {
            Err(e @ Error::ContainerPaused { .. }) => e,
            _ => Error::ContainerNotRunning { town: town.clone() },
        }
    }

    /// `pause` (`freeze`) and `resume` of the trait: the engine's pause and unpause API
    /// (the cgroup freezer). A container already in the wanted state is left alone; an
    /// absent or stopped one is [`Error::ContainerNotRunning`].
    pub(crate) async fn freeze(&self, town: &TownId, freeze: bool) -> Result<()> {
        let name = self.container_name(town);
        let c = match self.inspect(town).await? {
            Some(c) if is_running(&c) || is_paused(&c) => c,
            _ => return Err(Error::ContainerNotRunning { town: town.clone() }),
        };
        if is_paused(&c) == freeze {
            return Ok(());
        }
        let result = if freeze {
            self.docker.pause_container(&name).await
        } else {
            self.docker.unpause_container(&name).await
        };
        match result {
            Ok(()) => Ok(()),
            // 409: a racing pause/unpause got there first, or the container stopped.
            Err(e) if status_of(&e) == Some(409) || is_not_found(&e) => {
                match self.inspect(town).await? {
                    Some(c) if is_paused(&c) == freeze && (is_paused(&c) || is_running(&c)) => {
                        Ok(())
                    }
                    _ => Err(Error::ContainerNotRunning { town: town.clone() }),
                }
            }
            Err(e) => {
                let what = if freeze { "pausing" } else { "unpausing" };
                Err(DockerError::api(what, name, e).into())
            }
        }
    }

    /// `start` of the trait: creates, adopts, starts or replaces the container until one
    /// runs, creating the town's agents volume before it creates a container. A stopped
    /// container that a hand-over (`rename_container`) gave the town is replaced like any
    /// other, and the volume it was created with is deleted: the new container mounts the
    /// town's own volume, where each agent's `kilo.db` comes back from its snapshot. Every engine call can lose a race
    /// with another runtime (even in another process) starting or removing the same town,
    /// so each round re-reads the engine's state instead of trusting the previous one;
    /// [`START_ATTEMPTS`] rounds bound it.
    ///
    /// # Errors
    /// `InvalidConfig` for a bad mount or limit; `NotManaged` (in `Generic`) when a
    /// container of that name is not ours; `StartContention` when the races never settle.
    pub(crate) async fn start_container(
        &self,
        town: &TownId,
        options: &ContainerOptions,
    ) -> Result<ContainerInfo> {
        let name = self.container_name(town);
        let body = self.create_body(town, options)?;
        // A racing start of this runtime waits here and then finds the container running;
        // the loop below still settles races with other processes on the engine.
        let _one_at_a_time = self.starts.lock(town).await;
        for attempt in 0..START_ATTEMPTS {
            if attempt > 0 {
                // Lost a race: let the other start (or a removal in progress) settle.
                tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
            }
            let id = match self.inspect(town).await? {
                None => {
                    // Only a container to create needs the volume made first: a running
                    // one (adopted) mounts its own, which after a hand-over
                    // (`rename_container`) is not the town's.
                    self.ensure_volume(town).await?;
                    let create = CreateContainerOptionsBuilder::default().name(&name).build();
                    match self
                        .docker
                        .create_container(Some(create), body.clone())
                        .await
                    {
                        Ok(created) => created.id,
                        // Someone else created it first: take it up on the next round.
                        Err(e) if status_of(&e) == Some(409) => continue,
                        // 400: the engine refused the town's configuration (a mount, a
                        // limit); its own error says which.
                        Err(e) if status_of(&e) == Some(400) => {
                            return Err(DockerError::Refused {
                                container: name,
                                source: e,
                            }
                            .into())
                        }
                        Err(e) => {
                            return Err(DockerError::api("creating container", name, e).into())
                        }
                    }
                }
                Some(c) => {
                    let id = c.id.clone().unwrap_or_else(|| name.clone());
                    if !is_managed(&c) {
                        return Err(DockerError::NotManaged {
                            kind: "container",
                            name,
                        }
                        .into());
                    }
                    if is_running(&c) {
                        self.remember(town);
                        return Ok(ContainerInfo { id, created: false });
                    }
                    // Paused: adopted, resumed (its processes and memory are all there).
                    if is_paused(&c) {
                        self.freeze(town, false).await?;
                        self.remember(town);
                        return Ok(ContainerInfo { id, created: false });
                    }
                    let state = c.state.as_ref().and_then(|s| s.status);
                    let current = c.config.as_ref().and_then(|cfg| cfg.image.as_deref())
                        == Some(self.image.as_str())
                        && mounts_agents_volume(&c, &self.volume_name(town));
                    match state {
                        // Transient: another start or remove is at work.
                        Some(ContainerStateStatusEnum::REMOVING)
                        | Some(ContainerStateStatusEnum::RESTARTING) => continue,
                        // Never started: a racing start's fresh container (or a crash's
                        // between create and start) — start it.
                        Some(ContainerStateStatusEnum::CREATED) if current => id,
                        // Stopped, killed from outside, dead, or from another image
                        // or layout: a fresh container replaces it, so every start after a
                        // stop begins from the image; the agents' data carries over in the
                        // town's volume. Removed by id, so a racing start's new container
                        // is never hit.
                        _ => {
                            tracing::info!(%town, container = %name, ?state, current, "replacing container");
                            self.remove_by_id(&id).await?;
                            // A container handed over by `rename_container` mounted the
                            // volume it was created with; nothing mounts it any more.
                            if let Some(volume) =
                                agents_volume(&c).filter(|v| *v != self.volume_name(town))
                            {
                                self.remove_foreign_agents_volume(&volume).await;
                            }
                            continue;
                        }
                    }
                }
            };
            match self.start_by_id(&id).await {
                Ok(Started::Now) => {
                    self.verify_up(&id).await?;
                    self.remember(town);
                    // A new pid namespace: pids this runtime knew mean nothing there, and
                    // the only records it will hold are this runtime's.
                    self.known.started_here(town);
                    tracing::info!(%town, container = %name, "container started");
                    return Ok(ContainerInfo { id, created: true });
                }
                Ok(Started::Already) => {
                    self.remember(town);
                    return Ok(ContainerInfo { id, created: false });
                }
                Ok(Started::Vanished) => continue,
                Err(e) => {
                    // A stopped container that no longer starts (a mount source gone):
                    // replace it; a fresh one that does not start is an error.
                    tracing::warn!(%town, container = %name, error = %e, "start failed; replacing the container");
                    self.remove_by_id(&id).await?;
                    if attempt + 1 == START_ATTEMPTS {
                        return Err(e);
                    }
                }
            }
        }
        Err(DockerError::StartContention {
            name,
            attempts: START_ATTEMPTS,
        }
        .into())
    }

    /// Starts a container by id.
    /// 304 means a racing start got there first and 404 a racing remove: both are
    /// outcomes for the caller's loop to act on, not errors.
    async fn start_by_id(&self, id: &str) -> Result<Started> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(Started::Now),
            Err(e) if status_of(&e) == Some(304) => Ok(Started::Already),
            Err(e) if is_not_found(&e) => Ok(Started::Vanished),
            Err(e) => Err(DockerError::api("starting container", id, e).into()),
        }
    }

    /// Fails when a container we just started is not running (its main process died).
    async fn verify_up(&self, id: &str) -> Result<()> {
        match self.docker.inspect_container(id, None).await {
            Ok(c) if is_running(&c) => Ok(()),
            Ok(c) => Err(DockerError::ExitedAtStart {
                id: id.to_owned(),
                exit_code: c.state.as_ref().and_then(|s| s.exit_code),
                error: c
                    .state
                    .as_ref()
                    .and_then(|s| s.error.clone())
                    .unwrap_or_default(),
            }
            .into()),
            Err(e) => Err(DockerError::api("inspecting container", id, e).into()),
        }
    }

    pub(crate) async fn remove_by_id(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 409: removal already in progress (a racing remove).
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(DockerError::api("removing container", id, e).into()),
        }
    }

    /// The create request of `town`'s container: the keepalive entrypoint, the declared
    /// mounts plus the agents volume, the limits, and the confinement (no capabilities,
    /// `no-new-privileges`). Validated here, before the engine sees it, so a bad mount is
    /// `InvalidConfig` naming the host path rather than an engine error.
    fn create_body(
        &self,
        town: &TownId,
        options: &ContainerOptions,
    ) -> Result<ContainerCreateBody> {
        let mut mounts = Vec::with_capacity(options.mounts.len());
        for m in &options.mounts {
            if !m.host.is_absolute() || !m.host.exists() {
                return Err(Error::InvalidConfig {
                    message: format!(
                        "mount source {} must be an existing absolute host path",
                        m.host.display()
                    ),
                });
            }
            mounts.push(Mount {
                target: Some(m.container.as_str().to_owned()),
                source: Some(m.host.to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                read_only: Some(m.read_only),
                ..Default::default()
            });
        }
        // The agents' data, in the town's named volume. `start` creates the volume with its
        // labels first; the labels here cover a racing `remove` deleting it in between (the
        // engine then creates it again, labelled, as it mounts it).
        mounts.push(Mount {
            target: Some(AGENTS_MOUNT.to_owned()),
            source: Some(self.volume_name(town)),
            typ: Some(MountType::VOLUME),
            read_only: Some(false),
            volume_options: Some(MountVolumeOptions {
                labels: Some(self.labels(town)),
                ..Default::default()
            }),
            ..Default::default()
        });
        let memory = options.memory_bytes.unwrap_or(self.options.memory_bytes);
        let memory = i64::try_from(memory).map_err(|_| Error::InvalidConfig {
            message: format!("memory limit {memory} bytes is too large"),
        })?;
        let labels = self.labels(town);
        // The built image starts as root only to hand `/` to the agents' user (the engine
        // creates the container's root directory root-owned, and processes must be able to
        // write anywhere a town's layout puts files), then `su`s to it for good. A user's
        // image starts as the agents' user directly.
        let (user, entrypoint, caps) = if self.root_setup {
            (
                "0:0".to_owned(),
                vec![
                    "/bin/sh".to_owned(),
                    "-c".to_owned(),
                    ROOT_SETUP.to_owned(),
                    KEEPALIVE.to_owned(),
                ],
                vec!["CHOWN".to_owned(), "SETUID".to_owned(), "SETGID".to_owned()],
            )
        } else {
            (
                AGENT_USER.to_owned(),
                vec![
                    "/bin/sh".to_owned(),
                    "-c".to_owned(),
                    KEEPALIVE.to_owned(),
                    "gastown-keepalive".to_owned(),
                ],
                Vec::new(),
            )
        };
        Ok(ContainerCreateBody {
            image: Some(self.image.clone()),
            hostname: Some(town.to_string()),
            user: Some(user),
            env: Some(vec![CONTAINER_PATH_VAR.to_owned()]),
            entrypoint: Some(entrypoint),
            cmd: Some(Vec::new()),
            working_dir: Some("/".to_owned()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                init: Some(true),
                memory: Some(memory),
                memory_swap: Some(memory),
                pids_limit: Some(options.pids_limit.unwrap_or(self.options.pids_limit)),
                // Bounding set: only what the root setup step needs; every process after it
                // runs as uid 1000 with no capability and cannot gain one
                // (no-new-privileges).
                cap_drop: Some(vec!["ALL".to_owned()]),
                cap_add: Some(caps),
                security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
                privileged: Some(false),
                mounts: Some(mounts),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// `status` of the trait, from the engine's inspect (`State.Paused` for `Paused`).
    pub(crate) async fn container_status(&self, town: &TownId) -> Result<ContainerStatus> {
        Ok(match self.inspect(town).await? {
            None => ContainerStatus::Absent,
            Some(c) if is_running(&c) => ContainerStatus::Running,
            Some(c) if is_paused(&c) => ContainerStatus::Paused,
            Some(_) => ContainerStatus::Exited,
        })
    }

    /// `stop` of the trait: the engine's stop sends SIGTERM to the keepalive (which
    /// passes it to every process) and SIGKILL after `grace`. An absent or stopped
    /// container is already where the caller wants it.
    pub(crate) async fn stop_container(&self, town: &TownId, grace: Duration) -> Result<()> {
        let name = self.container_name(town);
        // The engine counts whole seconds; round up so the grace is never cut short.
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let secs = i32::try_from(secs).unwrap_or(i32::MAX);
        let opts = StopContainerOptionsBuilder::default().t(secs).build();
        match self.docker.stop_container(&name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(304) || is_not_found(&e) => Ok(()),
            Err(e) => Err(DockerError::api("stopping container", name, e).into()),
        }
    }

    /// `remove` of the trait: container and agents volume, then the town is forgotten, so
    /// it counts as an orphan for nobody.
    pub(crate) async fn remove_container(&self, town: &TownId) -> Result<()> {
        self.remove_container_and_volume(town).await?;
        self.managed.lock().remove(town);
        self.known.forget(town);
        Ok(())
    }

    /// Records that this instance started or adopted `town`: orphan hygiene skips it.
    pub(crate) fn remember(&self, town: &TownId) {
        self.managed.lock().insert(town.clone());
    }
}

/// Running and not paused: only then can an exec start in it.
pub(crate) fn is_running(c: &ContainerInspectResponse) -> bool {
    c.state.as_ref().and_then(|s| s.running).unwrap_or(false)
        && !c.state.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// Running and paused (the engine reports both flags for a frozen container).
fn is_paused(c: &ContainerInspectResponse) -> bool {
    c.state.as_ref().and_then(|s| s.paused).unwrap_or(false)
        && c.state.as_ref().and_then(|s| s.running).unwrap_or(false)
}

/// True when the container mounts the town's agents volume at [`AGENTS_MOUNT`] (containers
/// made before the volume existed do not).
fn mounts_agents_volume(c: &ContainerInspectResponse, volume: &str) -> bool {
    c.mounts.as_deref().unwrap_or_default().iter().any(|m| {
        m.destination.as_deref() == Some(AGENTS_MOUNT) && m.name.as_deref() == Some(volume)
    })
}

/// Whether the container carries `gastown.managed=true`: gastown never adopts, replaces or
/// removes a container it did not create.
pub(crate) fn is_managed(c: &ContainerInspectResponse) -> bool {
    c.config
        .as_ref()
        .and_then(|cfg| cfg.labels.as_ref())
        .and_then(|l| l.get(LABEL_MANAGED))
        .is_some_and(|v| v == "true")
}
