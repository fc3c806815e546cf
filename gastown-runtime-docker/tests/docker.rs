//! Docker-specific faults and lifecycle on a real engine: a wrong socket, a failed image
//! build, image reuse, a container killed from outside, the agents volume across a stop,
//! a foreign volume, racing runtimes, orphan hygiene, and every spawn's host pid.
//! Confinement and the real `kilo serve` are in `confinement.rs`.
//! Skipped (with a line) when no engine answers, unless `GASTOWN_REQUIRE_DOCKER=1`.

use std::time::Duration;

use bollard::query_parameters::KillContainerOptionsBuilder;
use gastown_core::{
    ContainerOptions, ContainerRuntime, ContainerRuntimeExt, ContainerStatus, Error,
};
use gastown_runtime_docker::test_support as support;
use gastown_runtime_docker::test_support::{
    agent_image, engine, labelled, labelled_volumes, path, runtime, sh, town, wait_status, Cleanup,
};
use gastown_runtime_docker::{AgentImage, DockerOptions, DockerRuntime, Error as DockerError};

#[tokio::test]
async fn a_wrong_socket_is_engine_unavailable_naming_it() {
    // Needs no engine: nothing answers at this path on any machine.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("elsewhere/docker.sock");
    let err = DockerRuntime::connect(DockerOptions::default().with_socket(&socket))
        .await
        .unwrap_err();
    let Some(DockerError::EngineUnavailable { socket: named, .. }) = err.backend_error() else {
        panic!("expected EngineUnavailable, got {err:?}");
    };
    assert_eq!(named, &socket);
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
        matches!(
            err.backend_error(),
            Some(DockerError::EngineUnavailable { .. })
        ),
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
        .with_name_prefix(support::prefix("nokilo"));
    let err = DockerRuntime::connect(options).await.unwrap_err();
    let Some(DockerError::ImageBuild {
        message, log_tail, ..
    }) = err.backend_error()
    else {
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
    let Some(shared) = agent_image() else {
        return;
    };
    let kilo = gastown_core::kilo::test_binary().unwrap();
    // A second connect with the same inputs finds the same tag and builds nothing.
    let rt = DockerRuntime::connect(
        DockerOptions::default()
            .with_image(AgentImage::Build {
                kilo_bin: Some(kilo),
            })
            .with_name_prefix(support::prefix("reuse")),
    )
    .await
    .expect("connect");
    assert_eq!(rt.image(), shared);
    assert!(shared.starts_with("gastown-agent:"), "{shared}");
    assert_eq!(shared.len(), "gastown-agent:".len() + 16);
}

#[tokio::test]
async fn a_container_killed_from_outside_reports_exited_and_the_next_start_brings_it_back() {
    let prefix = support::prefix("killed");
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

/// The engine records an exec's pid only after its process started, so a process can
/// announce itself before the engine shows its pid: every handle still carries the host
/// pid, the one the host's `/proc` shows running the program (CI once saw `None` under
/// load). Twelve spawns at once widen that window.
#[tokio::test]
async fn every_spawned_process_carries_its_host_pid() {
    let prefix = support::prefix("hostpid");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let town = town("hostpid");
    let _cleanup = Cleanup::town(&prefix, &town);
    rt.start(&town, &ContainerOptions::default()).await.unwrap();
    let commands: Vec<_> = (0..12)
        .map(|i| sh(&format!("exec sleep {}", 300 + i)))
        .collect();
    let spawns = commands.iter().map(|command| rt.spawn(&town, command));
    let spawned: Vec<_> = futures::future::join_all(spawns)
        .await
        .into_iter()
        .map(|r| r.expect("spawn"))
        .collect();
    for (i, process) in spawned.iter().enumerate() {
        let pid = process.handle.pid().expect("a host pid");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.contains(&format!("sleep {}", 300 + i)),
            "host pid {pid} runs {cmdline:?}"
        );
    }
    rt.remove(&town).await.unwrap();
}

/// After a stop, `start` replaces the container: a new id, files outside `/agents` gone
/// (a fresh container from the image), files under `/agents` kept and still the agents'
/// user's to write. `remove` deletes the volume too.
#[tokio::test]
async fn a_stopped_town_restarts_in_a_new_container_with_its_agents_volume() {
    let prefix = support::prefix("volume");
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
    let prefix = support::prefix("foreign");
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
        matches!(
            err.backend_error(),
            Some(DockerError::NotManaged { name: named, .. }) if named == &name
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Absent);
    let still = docker.inspect_volume(&name).await.unwrap();
    assert!(still.labels.is_empty(), "the foreign volume was relabelled");
}

#[tokio::test]
async fn two_runtimes_racing_to_start_one_town_end_with_one_container() {
    let prefix = support::prefix("race");
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
    let prefix = support::prefix("orphan");
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
    let other_prefix = support::prefix("other");
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
