//! A warm pool's claim on a real engine: `rename_container` hands a running container,
//! with its labelled process, to another town (every lookup by the new town reaches it,
//! its process is adopted once, hygiene counts it as the town's, `remove` takes the volume
//! it was created with), refuses what the container cannot serve without changing
//! anything; and `put_files` writes an agent's secrets directory in one upload, its
//! missing parents owned by the agents' user; the tests' `Cleanup::town` takes a
//! handed-over container. Skipped (with a line) when no engine
//! answers, unless `GASTOWN_REQUIRE_DOCKER=1`.

use std::time::{Duration, SystemTime};

use gastown_core::{
    ContainerOptions, ContainerPath, ContainerRuntime, ContainerRuntimeExt, ContainerStatus, Error,
    ProcessLabel,
};
use gastown_runtime_docker::test_support as support;
use gastown_runtime_docker::test_support::{
    engine, execs_since, labelled_volumes, path, runtime, sh, town, Cleanup,
};

fn mayor_label() -> ProcessLabel {
    ProcessLabel {
        agent: "mayor".to_owned(),
        config_hash: "hash-1".to_owned(),
        port: 4321,
        lock: Some(ContainerPath::new("/agents/mayor/server.lock").unwrap()),
    }
}

/// `stat -c '%u %g %a'` of each path, one line each.
async fn modes(rt: &dyn ContainerRuntime, town: &gastown_core::TownId, paths: &[&str]) -> String {
    let mut cmd = sh("stat -c '%u %g %a' \"$@\"").arg("sh");
    for p in paths {
        cmd = cmd.arg(*p);
    }
    rt.exec_ok(town, &cmd).await.unwrap().stdout_str()
}

#[tokio::test]
async fn a_running_container_is_handed_to_a_new_town_with_its_labelled_process() {
    let prefix = support::prefix("claim");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let docker = engine().await.unwrap();
    let _cleanup = Cleanup::prefix(&prefix);
    let (pool, claimer, other) = (town("pool-1a2b3c4d"), town("claimer"), town("other"));
    let defaults = ContainerOptions::default();
    let first = rt.start(&pool, &defaults).await.unwrap();
    assert!(first.created);
    let server = rt
        .spawn_labelled(
            &pool,
            &sh("exec sleep 300"),
            &mayor_label(),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    let kept = path("/agents/mayor/data/kilo/kilo.db");
    rt.put_file(&pool, &kept, b"pool data").await.unwrap();
    let pool_volume = rt.volume_name(&pool);

    // What the container cannot serve is refused, and nothing changes.
    let dir = tempfile::tempdir().unwrap();
    let with_rig = defaults
        .clone()
        .with_read_only_mount(dir.path().to_owned(), path("/rigs/host"));
    let mut other_memory = defaults.clone();
    other_memory.memory_bytes = Some(512 * 1024 * 1024);
    let mut other_pids = defaults.clone();
    other_pids.pids_limit = Some(64);
    for refused in [&with_rig, &other_memory, &other_pids] {
        assert!(
            matches!(
                rt.rename_container(&pool, &claimer, refused).await,
                Err(Error::Unsupported { .. })
            ),
            "{refused:?}"
        );
    }
    assert_eq!(rt.status(&pool).await.unwrap(), ContainerStatus::Running);
    assert_eq!(rt.status(&claimer).await.unwrap(), ContainerStatus::Absent);
    // A town with a container of its own, or a pool id with none, are errors.
    rt.start(&other, &defaults).await.unwrap();
    assert!(matches!(
        rt.rename_container(&pool, &other, &defaults).await,
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        rt.rename_container(&town("pool-none"), &claimer, &defaults)
            .await,
        Err(Error::ContainerNotRunning { .. })
    ));
    rt.remove(&other).await.unwrap();

    rt.rename_container(&pool, &claimer, &defaults)
        .await
        .unwrap();
    assert_eq!(rt.status(&pool).await.unwrap(), ContainerStatus::Absent);
    let info = rt.start(&claimer, &defaults).await.unwrap();
    assert!(!info.created, "the handed-over container is adopted");
    assert_eq!(info.id, first.id);
    assert_eq!(
        rt.container_name(&claimer),
        docker
            .inspect_container(&first.id, None)
            .await
            .unwrap()
            .name
            .unwrap()
            .trim_start_matches('/')
    );
    // The labelled process is the new town's to adopt, once, without a record read.
    let since = SystemTime::now();
    assert!(rt.adopt(&claimer, "worker").await.unwrap().is_none());
    let adopted = rt
        .adopt(&claimer, "mayor")
        .await
        .unwrap()
        .expect("the pool's server");
    assert_eq!(adopted.label, mayor_label());
    assert_eq!(adopted.handle.pid(), server.handle.pid());
    assert!(adopted.handle.status().await.is_alive());
    let execs = execs_since(&rt, &claimer, since).await;
    assert!(
        execs.is_empty(),
        "adopting a handed-over process reads no records: {execs:?}"
    );
    assert!(rt.adopt(&claimer, "mayor").await.unwrap().is_none(), "once");
    // Files, execs, endpoint, pause and resume all reach it by the new town's name.
    assert_eq!(rt.get_file(&claimer, &kept).await.unwrap(), b"pool data");
    assert!(rt
        .endpoint(&claimer, 4321)
        .await
        .unwrap()
        .starts_with("http://"));
    rt.pause(&claimer).await.unwrap();
    assert_eq!(rt.status(&claimer).await.unwrap(), ContainerStatus::Paused);
    rt.resume(&claimer).await.unwrap();
    // No volume of the claimer's own name was made: the container keeps the pool's.
    assert_eq!(
        labelled_volumes(&docker, &prefix, None).await,
        vec![pool_volume.clone()]
    );
    // Hygiene, here and in a runtime that adopts the town later, counts both as the town's.
    assert!(rt.list_orphans().await.unwrap().is_empty());
    assert!(rt.list_orphan_volumes().await.unwrap().is_empty());
    let later = runtime(&prefix).await.unwrap();
    assert!(!later.start(&claimer, &defaults).await.unwrap().created);
    assert!(later.list_orphans().await.unwrap().is_empty());
    assert!(later.list_orphan_volumes().await.unwrap().is_empty());
    drop(later);
    // The adopted handle ends the process through the renamed container.
    assert!(!adopted
        .handle
        .kill(Duration::from_millis(300))
        .await
        .unwrap()
        .is_alive());

    rt.remove(&claimer).await.unwrap();
    assert_eq!(rt.status(&claimer).await.unwrap(), ContainerStatus::Absent);
    assert!(
        labelled_volumes(&docker, &prefix, None).await.is_empty(),
        "remove takes the volume the container was created with"
    );
}

#[tokio::test]
async fn a_handed_over_town_restarted_after_a_stop_gets_a_container_of_its_own() {
    let prefix = support::prefix("claimstop");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let docker = engine().await.unwrap();
    let _cleanup = Cleanup::prefix(&prefix);
    let (pool, claimer) = (town("pool-5e6f7a8b"), town("claimer"));
    let defaults = ContainerOptions::default();
    let first = rt.start(&pool, &defaults).await.unwrap();
    rt.rename_container(&pool, &claimer, &defaults)
        .await
        .unwrap();
    rt.stop(&claimer, Duration::from_secs(1)).await.unwrap();
    assert_eq!(rt.status(&claimer).await.unwrap(), ContainerStatus::Exited);
    let second = rt.start(&claimer, &defaults).await.unwrap();
    assert!(second.created);
    assert_ne!(second.id, first.id);
    assert_eq!(
        labelled_volumes(&docker, &prefix, None).await,
        vec![rt.volume_name(&claimer)],
        "the pool's volume went with its container; the town's own is mounted"
    );
    rt.remove(&claimer).await.unwrap();
    assert!(labelled_volumes(&docker, &prefix, None).await.is_empty());
}

/// The test helper that other suites lean on: `Cleanup::town` of the claiming town takes a
/// container handed over to it (whose labels still name the pool's town) and its volume.
#[tokio::test]
async fn a_town_cleanup_takes_a_handed_over_container_and_its_volume() {
    let prefix = support::prefix("claimclean");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let docker = engine().await.unwrap();
    let _all = Cleanup::prefix(&prefix);
    let (pool, claimer) = (town("pool-9c0d1e2f"), town("claimer"));
    let defaults = ContainerOptions::default();
    rt.start(&pool, &defaults).await.unwrap();
    rt.rename_container(&pool, &claimer, &defaults)
        .await
        .unwrap();
    assert_eq!(rt.status(&claimer).await.unwrap(), ContainerStatus::Running);
    drop(Cleanup::town(&prefix, &claimer));
    assert_eq!(rt.status(&claimer).await.unwrap(), ContainerStatus::Absent);
    assert!(support::labelled(&docker, &prefix, None).await.is_empty());
    assert!(labelled_volumes(&docker, &prefix, None).await.is_empty());
}

#[tokio::test]
async fn put_files_writes_one_archive_with_parents_owned_by_the_agents_user() {
    let prefix = support::prefix("putfiles");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let town = town("putfiles");
    let _cleanup = Cleanup::prefix(&prefix);
    rt.start(&town, &ContainerOptions::default()).await.unwrap();
    // An agent whose directory exists, with a file of its own in it.
    rt.exec_ok(
        &town,
        &sh("mkdir -p /agents/old/keep && echo mine > /agents/old/keep/f"),
    )
    .await
    .unwrap();
    let files = vec![
        (
            path("/agents/fresh/secrets/GASTOWN_TOWN_ID"),
            b"putfiles".to_vec(),
        ),
        (
            path("/agents/fresh/secrets/GASTOWN_CONTAINER_TOKEN"),
            b"tok".to_vec(),
        ),
        (path("/agents/old/secrets/GIT_TOKEN"), b"git".to_vec()),
    ];
    let since = SystemTime::now();
    rt.put_files(&town, &files).await.unwrap();
    assert!(
        execs_since(&rt, &town, since).await.is_empty(),
        "one upload, no mkdir exec"
    );
    for (p, contents) in &files {
        assert_eq!(&rt.get_file(&town, p).await.unwrap(), contents);
    }
    assert_eq!(
        modes(
            &rt,
            &town,
            &[
                "/agents",
                "/agents/fresh",
                "/agents/fresh/secrets",
                "/agents/fresh/secrets/GASTOWN_TOWN_ID",
                "/agents/old",
                "/agents/old/keep",
                "/agents/old/secrets/GIT_TOKEN",
            ]
        )
        .await,
        "1000 1000 755\n1000 1000 755\n1000 1000 700\n1000 1000 600\n\
         1000 1000 755\n1000 1000 755\n1000 1000 600\n"
    );
    // The agents can write beside them; what was there is untouched.
    rt.exec_ok(
        &town,
        &sh("echo x > /agents/fresh/secrets/more && echo y > /agents/fresh/other"),
    )
    .await
    .unwrap();
    assert_eq!(
        rt.get_file(&town, &path("/agents/old/keep/f"))
            .await
            .unwrap(),
        b"mine\n"
    );
    // A file outside /agents is written a file at a time, parents made as well.
    let mixed = vec![
        (
            path("/agents/fresh/secrets/GASTOWN_TOWN_ID"),
            b"again".to_vec(),
        ),
        (path("/workspace/notes/n.txt"), b"note".to_vec()),
    ];
    rt.put_files(&town, &mixed).await.unwrap();
    for (p, contents) in &mixed {
        assert_eq!(&rt.get_file(&town, p).await.unwrap(), contents);
    }
    // A stopped container is `ContainerNotRunning`, as for put_file.
    rt.stop(&town, Duration::from_secs(1)).await.unwrap();
    assert!(matches!(
        rt.put_files(&town, &files).await,
        Err(Error::ContainerNotRunning { .. })
    ));
    rt.remove(&town).await.unwrap();
}
