//! Docker-specific behaviour on a real engine: faults (wrong socket, failed image build,
//! container killed from outside, racing runtimes), orphan hygiene, the container's
//! confinement, and the real `kilo serve` answering through `endpoint`.
//! Skipped (with a line) when no engine answers, unless `GASTOWN_REQUIRE_DOCKER=1`.

mod common;

use std::time::Duration;

use bollard::query_parameters::KillContainerOptionsBuilder;
use common::{engine, labelled, labelled_volumes, runtime, town, Cleanup};
use gastown_core::{
    CommandSpec, ContainerOptions, ContainerPath, ContainerRuntime, ContainerRuntimeExt,
    ContainerStatus, Error, Secret,
};
use gastown_runtime_docker::{AgentImage, DockerOptions, DockerRuntime};

/// Hang guard for waits (not a timing assertion): 60 s.
const WAIT_BOUND: Duration = Duration::from_secs(60);

const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn path(p: &str) -> ContainerPath {
    ContainerPath::new(p).unwrap()
}

fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", PATH)
}

async fn wait_status(rt: &DockerRuntime, town: &gastown_core::TownId, want: ContainerStatus) {
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

#[tokio::test]
async fn a_wrong_socket_is_engine_unavailable_naming_it() {
    // Needs no engine: nothing answers at this path on any machine.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("elsewhere/docker.sock");
    let err = DockerRuntime::connect(DockerOptions::default().with_socket(&socket))
        .await
        .unwrap_err();
    let Error::EngineUnavailable { socket: named, .. } = &err else {
        panic!("expected EngineUnavailable, got {err:?}");
    };
    assert_eq!(named, &socket.display().to_string());
    assert!(err.to_string().contains("elsewhere/docker.sock"), "{err}");
    // Nothing was created on the way.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A path that exists but is no socket: still typed, still no panic.
    let not_a_socket = dir.path().join("plain-file");
    std::fs::write(&not_a_socket, b"x").unwrap();
    let err = DockerRuntime::connect(DockerOptions::default().with_socket(&not_a_socket))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::EngineUnavailable { .. }),
        "expected EngineUnavailable, got {err:?}"
    );
    assert_eq!(std::fs::read(&not_a_socket).unwrap(), b"x");
}

#[tokio::test]
async fn a_missing_kilo_binary_is_an_image_build_error_with_a_log_tail() {
    let Some(docker) = engine().await else { return };
    let before = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .unwrap()
        .len();
    let missing = std::path::PathBuf::from("/definitely/not/here/kilo");
    let options = DockerOptions::default()
        .with_image(AgentImage::Build {
            kilo_bin: Some(missing),
        })
        .with_name_prefix(common::prefix("nokilo"));
    let err = DockerRuntime::connect(options).await.unwrap_err();
    let Error::ImageBuild { message, log_tail } = &err else {
        panic!("expected ImageBuild, got {err:?}");
    };
    assert!(message.contains("/definitely/not/here/kilo"), "{message}");
    assert!(
        log_tail.contains("kilo: /definitely/not/here/kilo"),
        "{log_tail}"
    );
    assert!(log_tail.contains("error:"), "{log_tail}");
    // No image appeared.
    let after = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .unwrap()
        .len();
    assert!(after <= before, "a failed build left an image behind");
}

#[tokio::test]
async fn the_built_image_is_reused_while_its_inputs_are_unchanged() {
    if engine().await.is_none() {
        return;
    }
    let Some(shared) = common::agent_image() else {
        return;
    };
    let kilo = gastown_core::kilo::test_binary().unwrap();
    // A second connect with the same inputs finds the same tag and builds nothing.
    let rt = DockerRuntime::connect(
        DockerOptions::default()
            .with_image(AgentImage::Build {
                kilo_bin: Some(kilo),
            })
            .with_name_prefix(common::prefix("reuse")),
    )
    .await
    .expect("connect");
    assert_eq!(rt.image(), shared);
    assert!(shared.starts_with("gastown-agent:"), "{shared}");
    assert_eq!(shared.len(), "gastown-agent:".len() + 16);
}

#[tokio::test]
async fn a_container_killed_from_outside_reports_exited_and_the_next_start_brings_it_back() {
    let prefix = common::prefix("killed");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let town = town("killed");
    let _cleanup = Cleanup::town(&prefix, &town);
    let info = rt.start(&town, &ContainerOptions::default()).await.unwrap();
    assert!(info.created);
    let db = path("/agents/mayor/data/kilo/kilo.db");
    rt.put_file(&town, &db, b"the mayor's sessions")
        .await
        .unwrap();
    let sleeper = rt.spawn(&town, &sh("exec sleep 300")).await.unwrap();

    let kill = KillContainerOptionsBuilder::default()
        .signal("SIGKILL")
        .build();
    rt.docker()
        .kill_container(&rt.container_name(&town), Some(kill))
        .await
        .expect("docker kill");
    wait_status(&rt, &town, ContainerStatus::Exited).await;
    assert!(
        !sleeper.handle.status().await.is_alive(),
        "a process of a killed container is not alive"
    );
    assert!(matches!(
        rt.exec(&town, &sh("true")).await,
        Err(Error::ContainerNotRunning { .. })
    ));

    let again = rt.start(&town, &ContainerOptions::default()).await.unwrap();
    assert!(again.created, "the next start creates a new container");
    assert_ne!(again.id, info.id, "the killed container was replaced");
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Running);
    let out = rt.exec_ok(&town, &sh("echo back")).await.unwrap();
    assert_eq!(out.stdout_str(), "back\n");
    assert_eq!(
        rt.get_file(&town, &db).await.unwrap(),
        b"the mayor's sessions",
        "the agents' data carried over in the town's volume"
    );
    let docker = engine().await.unwrap();
    assert_eq!(
        labelled(&docker, &prefix, Some(town.as_str())).await,
        vec![again.id.clone()],
        "the killed container is gone, not left beside the new one"
    );
    rt.remove(&town).await.unwrap();
    assert!(labelled_volumes(&docker, &prefix, Some(town.as_str()))
        .await
        .is_empty());
}

/// After a stop, `start` replaces the container: a new id, files outside `/agents` gone
/// (a fresh container from the image), files under `/agents` kept and still the agents'
/// user's to write. `remove` deletes the volume too.
#[tokio::test]
async fn a_stopped_town_restarts_in_a_new_container_with_its_agents_volume() {
    let prefix = common::prefix("volume");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let docker = engine().await.unwrap();
    let town = town("volume");
    let _cleanup = Cleanup::town(&prefix, &town);
    let first = rt.start(&town, &ContainerOptions::default()).await.unwrap();

    // A fresh volume is the agents' user's (the engine copied the image's /agents).
    let out = rt
        .exec_ok(&town, &sh("stat -c '%u %g %a' /agents"))
        .await
        .unwrap();
    assert_eq!(out.stdout_str(), "1000 1000 755\n");
    let volume = docker.inspect_volume(&rt.volume_name(&town)).await.unwrap();
    assert_eq!(
        volume.labels.get(gastown_runtime_docker::LABEL_MANAGED),
        Some(&"true".to_owned())
    );
    assert_eq!(
        volume.labels.get(gastown_runtime_docker::LABEL_TOWN),
        Some(&town.to_string())
    );

    let kept = path("/agents/mayor/data/kilo/kilo.db");
    let scratch = path("/workspace/scratch.txt");
    rt.put_file(&town, &kept, b"kept").await.unwrap();
    rt.put_file(&town, &scratch, b"gone").await.unwrap();
    rt.stop(&town, Duration::from_secs(1)).await.unwrap();
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Exited);

    let second = rt.start(&town, &ContainerOptions::default()).await.unwrap();
    assert!(second.created);
    assert_ne!(second.id, first.id);
    assert_eq!(rt.get_file(&town, &kept).await.unwrap(), b"kept");
    assert!(matches!(
        rt.get_file(&town, &scratch).await,
        Err(Error::FileNotFound { .. })
    ));
    rt.exec_ok(
        &town,
        &sh("echo more >> \"$1\" && touch /agents/new")
            .arg("sh")
            .arg(&kept),
    )
    .await
    .unwrap();
    assert_eq!(
        labelled(&docker, &prefix, Some(town.as_str())).await.len(),
        1
    );
    assert_eq!(
        labelled_volumes(&docker, &prefix, Some(town.as_str())).await,
        vec![rt.volume_name(&town)]
    );

    rt.remove(&town).await.unwrap();
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Absent);
    assert!(labelled_volumes(&docker, &prefix, Some(town.as_str()))
        .await
        .is_empty());
    // Removing an absent town (no container, no volume) still succeeds.
    rt.remove(&town).await.unwrap();
}

/// A volume with the town's volume name that gastown did not create is never used: `start`
/// fails with a typed error naming it, creates no container, and leaves the volume as it was.
#[tokio::test]
async fn a_foreign_volume_with_the_towns_name_is_refused_and_left_alone() {
    let prefix = common::prefix("foreign");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let docker = engine().await.unwrap();
    let town = town("foreign");
    let _cleanup = Cleanup::town(&prefix, &town);
    let name = rt.volume_name(&town);
    struct DropVolume(bollard::Docker, String);
    impl Drop for DropVolume {
        fn drop(&mut self) {
            let (d, n) = (self.0.clone(), self.1.clone());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let _ = d
                        .remove_volume(&n, None::<bollard::query_parameters::RemoveVolumeOptions>)
                        .await;
                });
            })
            .join();
        }
    }
    docker
        .create_volume(bollard::models::VolumeCreateRequest {
            name: Some(name.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let _drop = DropVolume(docker.clone(), name.clone());

    let err = rt
        .start(&town, &ContainerOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Runtime { message, .. } if message.contains(&name)),
        "{err:?}"
    );
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Absent);
    let still = docker.inspect_volume(&name).await.unwrap();
    assert!(still.labels.is_empty(), "the foreign volume was relabelled");
}

#[tokio::test]
async fn two_runtimes_racing_to_start_one_town_end_with_one_container() {
    let prefix = common::prefix("race");
    let Some(a) = runtime(&prefix).await else {
        return;
    };
    let b = runtime(&prefix).await.unwrap();
    let docker = engine().await.unwrap();
    let town = town("race");
    let _cleanup = Cleanup::town(&prefix, &town);
    let opts = ContainerOptions::default();

    for round in 0..3 {
        let (x, y) = tokio::join!(a.start(&town, &opts), b.start(&town, &opts));
        let (x, y) = (x.expect("start a"), y.expect("start b"));
        assert_eq!(x.id, y.id, "round {round}: two containers");
        assert_eq!(
            labelled(&docker, &prefix, Some(town.as_str())).await.len(),
            1,
            "round {round}: exactly one container carries the town's label"
        );
        assert_eq!(
            labelled_volumes(&docker, &prefix, Some(town.as_str())).await,
            vec![a.volume_name(&town)],
            "round {round}: exactly one agents volume"
        );
        assert_eq!(a.status(&town).await.unwrap(), ContainerStatus::Running);
        match round {
            // Round 1 races on a stopped container, round 2 on an absent one again.
            0 => a.stop(&town, Duration::from_secs(1)).await.unwrap(),
            1 => b.remove(&town).await.unwrap(),
            _ => {}
        }
    }
    a.remove(&town).await.unwrap();
    assert!(labelled(&docker, &prefix, Some(town.as_str()))
        .await
        .is_empty());
    assert!(labelled_volumes(&docker, &prefix, Some(town.as_str()))
        .await
        .is_empty());
}

#[tokio::test]
async fn orphans_of_an_earlier_runtime_are_listed_and_removed() {
    let prefix = common::prefix("orphan");
    let Some(old) = runtime(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup::prefix(&prefix);
    let (t1, t2) = (town("orphan-one"), town("orphan-two"));
    old.start(&t1, &ContainerOptions::default()).await.unwrap();
    old.start(&t2, &ContainerOptions::default()).await.unwrap();
    old.stop(&t1, Duration::from_secs(1)).await.unwrap();
    drop(old); // the "crashed" process

    // Another deployment's containers (another prefix) are never touched.
    let other_prefix = common::prefix("other");
    let other = runtime(&other_prefix).await.unwrap();
    let _cleanup_other = Cleanup::prefix(&other_prefix);
    let t3 = town("orphan-other");
    other
        .start(&t3, &ContainerOptions::default())
        .await
        .unwrap();

    let new = runtime(&prefix).await.unwrap();
    new.start(&t2, &ContainerOptions::default()).await.unwrap(); // adopted: not an orphan
    let orphans = new.list_orphans().await.unwrap();
    assert_eq!(orphans, vec![new.container_name(&t1)]);
    assert_eq!(
        new.list_orphan_volumes().await.unwrap(),
        vec![new.volume_name(&t1)]
    );
    // t1's container and its agents volume.
    assert_eq!(new.remove_orphans().await.unwrap(), 2);
    assert_eq!(new.status(&t1).await.unwrap(), ContainerStatus::Absent);
    assert_eq!(new.status(&t2).await.unwrap(), ContainerStatus::Running);
    assert_eq!(other.status(&t3).await.unwrap(), ContainerStatus::Running);
    assert!(new.list_orphans().await.unwrap().is_empty());
    assert!(new.list_orphan_volumes().await.unwrap().is_empty());
    let docker = engine().await.unwrap();
    assert_eq!(
        labelled_volumes(&docker, &prefix, None).await,
        vec![new.volume_name(&t2)],
        "the adopted town keeps its volume"
    );
    assert_eq!(
        labelled_volumes(&docker, &other_prefix, None).await,
        vec![other.volume_name(&t3)],
        "another deployment's volume is untouched"
    );

    new.remove(&t2).await.unwrap();
    other.remove(&t3).await.unwrap();
}

#[tokio::test]
async fn containers_are_unprivileged_limited_and_mount_only_what_the_town_declares() {
    let prefix = common::prefix("confine");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let town = town("confine");
    let _cleanup = Cleanup::town(&prefix, &town);
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("README"), b"from the host").unwrap();
    let opts = ContainerOptions::default()
        .with_read_only_mount(host_dir.path().to_owned(), path("/rigs-src/demo"));
    rt.start(&town, &opts).await.unwrap();

    let out = rt
        .exec_ok(&town, &sh("id -u; id -g; grep CapEff /proc/self/status"))
        .await
        .unwrap();
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1000", "{text}");
    assert_eq!(lines[1], "1000", "{text}");
    assert!(
        lines[2].ends_with("0000000000000000"),
        "capabilities: {text}"
    );

    // The declared mount is there and read-only; the host file is unchanged.
    let out = rt
        .exec_ok(&town, &sh("cat /rigs-src/demo/README"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"from the host");
    let write = rt
        .exec(&town, &sh("echo x > /rigs-src/demo/README"))
        .await
        .unwrap();
    assert_ne!(write.exit_code, 0, "a read-only mount was writable");
    assert_eq!(
        std::fs::read(host_dir.path().join("README")).unwrap(),
        b"from the host"
    );

    let inspected = rt
        .docker()
        .inspect_container(&rt.container_name(&town), None)
        .await
        .unwrap();
    let host = inspected.host_config.unwrap();
    assert_eq!(
        host.memory,
        Some(gastown_runtime_docker::options::DEFAULT_MEMORY_BYTES as i64)
    );
    assert_eq!(
        host.pids_limit,
        Some(gastown_runtime_docker::options::DEFAULT_PIDS_LIMIT)
    );
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert!(host
        .security_opt
        .unwrap_or_default()
        .iter()
        .any(|o| o.starts_with("no-new-privileges")));
    // The declared mount (read-only) and the town's agents volume; nothing else from the host.
    let mut mounts = inspected.mounts.unwrap_or_default();
    mounts.sort_by(|a, b| a.destination.cmp(&b.destination));
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    assert_eq!(mounts[0].destination.as_deref(), Some("/agents"));
    assert_eq!(mounts[0].typ, Some("volume".to_owned()));
    assert_eq!(
        mounts[0].name.as_deref(),
        Some(rt.volume_name(&town).as_str())
    );
    assert_eq!(mounts[1].destination.as_deref(), Some("/rigs-src/demo"));
    assert_eq!(mounts[1].rw, Some(false));

    // A missing mount source is a typed error, and the town stays as it was.
    let bad = ContainerOptions::default()
        .with_read_only_mount("/definitely/not/here".into(), path("/rigs-src/x"));
    let other = common::town("confine-bad");
    assert!(matches!(
        rt.start(&other, &bad).await,
        Err(Error::InvalidConfig { .. })
    ));
    assert_eq!(rt.status(&other).await.unwrap(), ContainerStatus::Absent);
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Running);
    rt.remove(&town).await.unwrap();
}

#[tokio::test]
async fn files_put_by_the_runtime_belong_to_the_agents_user() {
    let prefix = common::prefix("owner");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let town = town("owner");
    let _cleanup = Cleanup::town(&prefix, &town);
    rt.start(&town, &ContainerOptions::default()).await.unwrap();
    let db = path("/agents/mayor/data/kilo/kilo.db");
    rt.put_file(&town, &db, b"snapshot bytes").await.unwrap();
    // The agent can rewrite what the runtime restored, and create files beside it.
    let out = rt
        .exec_ok(
            &town,
            &sh("echo more >> \"$1\" && touch \"$(dirname \"$1\")/wal\" && stat -c '%u %g' \"$1\"")
                .arg("sh")
                .arg(&db),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_str(), "1000 1000\n");
    assert_eq!(
        rt.get_file(&town, &db).await.unwrap(),
        b"snapshot bytesmore\n"
    );
    // A directory is not a file; the root is not a file name.
    assert!(rt.get_file(&town, &path("/agents/mayor")).await.is_err());
    assert!(matches!(
        rt.put_file(&town, &ContainerPath::root(), b"x").await,
        Err(Error::InvalidPath { .. })
    ));
    rt.remove(&town).await.unwrap();
}

/// The built image runs the real kilo: `kilo serve` with an agent's environment (DESIGN.md
/// §7) announces its port, and `/global/health` answers through `endpoint` with basic auth.
#[tokio::test]
async fn the_image_runs_kilo_serve_reachable_through_endpoint() {
    let prefix = common::prefix("kilo");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let town = town("kilo");
    let _cleanup = Cleanup::town(&prefix, &town);
    rt.start(&town, &ContainerOptions::default()).await.unwrap();

    let root = path("/agents/probe");
    let sub = |p: &str| root.join(p).unwrap();
    for dir in ["home", "data", "config", "cache", "state"] {
        rt.create_dir_all(&town, &sub(dir)).await.unwrap();
    }
    let workspace = path("/workspace/probe");
    rt.create_dir_all(&town, &workspace).await.unwrap();
    let password = Secret::random();
    let cmd = CommandSpec::new("kilo")
        .args(["serve", "--port", "0", "--hostname"])
        .arg(rt.sdk_bind_host())
        .env("PATH", PATH)
        .env("HOME", sub("home"))
        .env("KILO_TEST_HOME", sub("home"))
        .env("XDG_DATA_HOME", sub("data"))
        .env("XDG_CONFIG_HOME", sub("config"))
        .env("XDG_CACHE_HOME", sub("cache"))
        .env("XDG_STATE_HOME", sub("state"))
        .env("KILO_SERVER_PASSWORD", password.clone())
        .cwd(workspace);
    let mut spawned = rt.spawn(&town, &cmd).await.expect("spawn kilo serve");

    let port = tokio::time::timeout(WAIT_BOUND, async {
        let mut seen = Vec::new();
        while let Some(line) = spawned.output.recv().await {
            if let Some(rest) = line.line.split("listening on ").nth(1) {
                let port = rest.trim().rsplit(':').next().unwrap_or("");
                return port.trim_end_matches('/').parse::<u16>().ok();
            }
            seen.push(line.line);
        }
        panic!("kilo serve ended without listening: {seen:?}");
    })
    .await
    .expect("kilo serve never said it listens")
    .expect("a port in the listening line");

    let url = rt.endpoint(&town, port).await.unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health: serde_json::Value = client
        .get(format!("{url}/global/health"))
        .basic_auth("kilo", Some(password.expose()))
        .send()
        .await
        .expect("GET /global/health")
        .error_for_status()
        .expect("health status")
        .json()
        .await
        .expect("health body");
    assert_eq!(health["healthy"], serde_json::Value::Bool(true), "{health}");

    // Without the password: refused.
    let anon = client
        .get(format!("{url}/global/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);

    let end = spawned.handle.kill(Duration::from_secs(10)).await.unwrap();
    assert!(!end.is_alive(), "{end:?}");
    rt.remove(&town).await.unwrap();
}
