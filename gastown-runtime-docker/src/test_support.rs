//! Set-up shared by the Docker tests of this crate and of the workspace (`tests/` of the
//! `gastown` facade): the engine gate, one agent image per test binary, unique name
//! prefixes, cleanup that runs even when a test panics, and label queries. Test support,
//! not API: hidden from the docs and free to change.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures::StreamExt;
use gastown_core::{CommandSpec, ContainerPath, ContainerRuntime, ContainerStatus, TownId};

use crate::options::DEFAULT_SOCKET;
use crate::{AgentImage, DockerOptions, DockerRuntime, LABEL_PREFIX, LABEL_TOWN};

/// The `PATH` of test commands: where the image's busybox applets, git and kilo live.
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A container path, panicking on an invalid one.
pub fn path(p: &str) -> ContainerPath {
    ContainerPath::new(p).expect("test container path")
}

/// `sh -c <script>` with [`PATH`]; more args become `$0`, `$1`, ….
pub fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", PATH)
}

/// Hang guard for polls (not a timing assertion): 60 s.
pub const WAIT_BOUND: Duration = Duration::from_secs(60);

/// Set to `1` to turn a missing or unreachable engine into a failure (CI).
pub const REQUIRE_DOCKER_ENV: &str = "GASTOWN_REQUIRE_DOCKER";

fn required() -> bool {
    std::env::var_os(REQUIRE_DOCKER_ENV).is_some_and(|v| v == "1")
}

/// `Some(client)` when an engine answers at the default socket. Otherwise prints
/// `skipping: no Docker Engine` and returns `None` — or panics when
/// `GASTOWN_REQUIRE_DOCKER=1`.
pub async fn engine() -> Option<Docker> {
    let answer = match Docker::connect_with_unix(DEFAULT_SOCKET, 30, API_DEFAULT_VERSION) {
        Ok(d) => match d.ping().await {
            Ok(_) => match d.negotiate_version().await {
                Ok(d) => Ok(d),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    match answer {
        Ok(d) => Some(d),
        Err(e) if required() => panic!(
            "{REQUIRE_DOCKER_ENV}=1 but no Docker Engine answers at {DEFAULT_SOCKET}: {e} \
             (run scripts/ensure-docker.sh)"
        ),
        Err(e) => {
            eprintln!("skipping: no Docker Engine at {DEFAULT_SOCKET} ({e})");
            None
        }
    }
}

/// The agent image, built once per test binary from the real kilo (in a thread of its
/// own, so every test's runtime can wait for it). `None` (after printing why) when kilo is
/// not installed — `gastown_core::kilo::test_binary` panics instead under
/// `GASTOWN_REQUIRE_KILO=1`.
pub fn agent_image() -> Option<String> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    let kilo = gastown_core::kilo::test_binary()?;
    let built = IMAGE.get_or_init(|| {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let options = DockerOptions::default().with_image(AgentImage::Build {
                    kilo_bin: Some(kilo),
                });
                DockerRuntime::connect(options)
                    .await
                    .map(|r| r.image().to_owned())
                    .map_err(|e| e.to_string())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the image build thread panicked".to_owned()))
    });
    match built {
        Ok(tag) => Some(tag.clone()),
        Err(e) => panic!("building the agent image failed: {e}"),
    }
}

/// A name prefix unique to this test process (and `tag`), so parallel runs never meet.
pub fn prefix(tag: &str) -> String {
    format!("gt{tag}{}", std::process::id())
}

/// A runtime on the shared agent image with `prefix`, or `None` when the engine or kilo
/// is missing (see [`engine`], [`agent_image`]).
pub async fn runtime(prefix: &str) -> Option<DockerRuntime> {
    engine().await?;
    let image = agent_image()?;
    let options = DockerOptions::default()
        .with_image(AgentImage::Named(image))
        .with_name_prefix(prefix);
    Some(
        DockerRuntime::connect(options)
            .await
            .expect("connect to the engine"),
    )
}

/// A town id for a test, panicking on an invalid one.
pub fn town(name: &str) -> TownId {
    TownId::new(name).expect("test town id")
}

/// Force-removes, on drop, every container and volume carrying `prefix` (and `town`, when
/// given, plus the container named for `town` and its volumes of `prefix`, which a
/// container handed over from another town carries) — also when the test panicked.
/// Removing a container ends its processes.
#[derive(Debug)]
pub struct Cleanup {
    prefix: String,
    town: Option<String>,
}

impl Cleanup {
    /// Cleans up everything carrying `prefix`.
    pub fn prefix(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            town: None,
        }
    }

    /// Cleans up `town`'s container and volume under `prefix`.
    pub fn town(prefix: &str, town: &TownId) -> Self {
        Self {
            prefix: prefix.to_owned(),
            town: Some(town.to_string()),
        }
    }
}

/// Containers labelled with `prefix` (and `town`).
pub async fn labelled(docker: &Docker, prefix: &str, town: Option<&str>) -> Vec<String> {
    let mut labels = vec![format!("{LABEL_PREFIX}={prefix}")];
    if let Some(t) = town {
        labels.push(format!("{LABEL_TOWN}={t}"));
    }
    let filters = HashMap::from([("label", labels)]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(opts))
        .await
        .expect("list containers")
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Volumes labelled with `prefix` (and `town`), by name.
pub async fn labelled_volumes(docker: &Docker, prefix: &str, town: Option<&str>) -> Vec<String> {
    let mut labels = vec![format!("{LABEL_PREFIX}={prefix}")];
    if let Some(t) = town {
        labels.push(format!("{LABEL_TOWN}={t}"));
    }
    let filters = HashMap::from([("label", labels)]);
    let opts = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let mut names: Vec<String> = docker
        .list_volumes(Some(opts))
        .await
        .expect("list volumes")
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    names.sort();
    names
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let town = self.town.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(d) = Docker::connect_with_unix(DEFAULT_SOCKET, 30, API_DEFAULT_VERSION)
                else {
                    return;
                };
                let Ok(d) = d.negotiate_version().await else {
                    return;
                };
                let mut containers = labelled(&d, &prefix, town.as_deref()).await;
                let mut volumes = labelled_volumes(&d, &prefix, town.as_deref()).await;
                // A container handed over to this town (`rename_container`) keeps the
                // labels of the town it was made for: found by its name instead, with the
                // volumes of this prefix it mounts.
                if let Some(t) = &town {
                    if let Ok(c) = d.inspect_container(&format!("{prefix}-{t}"), None).await {
                        let ours = labelled_volumes(&d, &prefix, None).await;
                        volumes.extend(
                            c.mounts
                                .unwrap_or_default()
                                .into_iter()
                                .filter_map(|m| m.name)
                                .filter(|v| ours.contains(v) && !volumes.contains(v))
                                .collect::<Vec<_>>(),
                        );
                        containers.extend(c.id.filter(|id| !containers.contains(id)));
                    }
                }
                for id in containers {
                    let opts = RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build();
                    let _ = d.remove_container(&id, Some(opts)).await;
                }
                for name in volumes {
                    let _ = d
                        .remove_volume(
                            &name,
                            None::<bollard::query_parameters::RemoveVolumeOptions>,
                        )
                        .await;
                }
            });
        })
        .join();
    }
}

/// The commands of the execs the engine created in the town's container from `since` on,
/// in order, from the engine's event log (`exec_create` events; each exec is an engine
/// round trip, which is what the count is for). The log is read up to one second after
/// the call, so an exec created just before it is in.
///
/// # Panics
/// When the container cannot be inspected or the events cannot be read.
pub async fn execs_since(rt: &DockerRuntime, town: &TownId, since: SystemTime) -> Vec<String> {
    let id = container_id(rt, town).await;
    let secs = |t: SystemTime| {
        let d = t.duration_since(UNIX_EPOCH).expect("after the epoch");
        format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
    };
    let until = SystemTime::now() + Duration::from_secs(1);
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("container".to_owned(), vec![id]),
    ]);
    let options = EventsOptionsBuilder::new()
        .since(&secs(since))
        .until(&secs(until))
        .filters(&filters)
        .build();
    let mut events = rt.docker().events(Some(options));
    let mut execs = Vec::new();
    while let Some(event) = events.next().await {
        let action = event
            .expect("read engine events")
            .action
            .unwrap_or_default();
        if let Some(command) = action.strip_prefix("exec_create:") {
            execs.push(command.trim().to_owned());
        }
    }
    execs
}

/// Polls `rt.status(town)` until it is `want`, bounded by [`WAIT_BOUND`].
///
/// # Panics
/// When the status stays different, or cannot be read.
pub async fn wait_status(rt: &DockerRuntime, town: &TownId, want: ContainerStatus) {
    let deadline = tokio::time::Instant::now() + WAIT_BOUND;
    loop {
        let got = rt.status(town).await.expect("status");
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status stayed {got:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The id of the town's container, by inspecting it.
///
/// # Panics
/// When the town has no container.
pub async fn container_id(rt: &DockerRuntime, town: &TownId) -> String {
    rt.docker()
        .inspect_container(&rt.container_name(town), None)
        .await
        .expect("inspect the town's container")
        .id
        .expect("a container id")
}

/// The gateway of the default bridge network, where a container on it reaches the host:
/// the IPAM gateway when the engine reports one, else the first address of its subnet
/// (the engine's own choice when none is configured), else the engine's default.
pub async fn bridge_gateway(docker: &Docker) -> IpAddr {
    let configs = docker
        .inspect_network("bridge", None)
        .await
        .ok()
        .and_then(|n| n.ipam)
        .and_then(|ipam| ipam.config)
        .unwrap_or_default();
    let gateway = configs
        .iter()
        .filter_map(|c| c.gateway.as_deref()?.parse::<Ipv4Addr>().ok())
        .next();
    let first_of_subnet = || {
        configs
            .iter()
            .filter_map(|c| {
                let (net, _) = c.subnet.as_deref()?.split_once('/')?;
                let net = net.parse::<Ipv4Addr>().ok()?;
                Some(Ipv4Addr::from(u32::from(net) + 1))
            })
            .next()
    };
    IpAddr::V4(
        gateway
            .or_else(first_of_subnet)
            .unwrap_or(Ipv4Addr::new(172, 17, 0, 1)),
    )
}
