//! Crash safety of the Docker runtime on a real engine: a labelled process outlives the
//! runtime that spawned it (a host killed mid-flight) and a second runtime on the same
//! container adopts it once; a record whose pid now belongs to another process is dropped
//! without a signal; a labelled spawn ends the adopted process of its agent. Skipped (with
//! a line) when no engine answers, unless `GASTOWN_REQUIRE_DOCKER=1`.

use std::time::Duration;

use gastown_core::{
    ContainerOptions, ContainerPath, ContainerRuntime, ContainerRuntimeExt, ProcessLabel,
};
use gastown_runtime_docker::test_support::{path, runtime, sh, town, Cleanup};

fn label(agent: &str) -> ProcessLabel {
    ProcessLabel {
        agent: agent.to_owned(),
        config_hash: "hash-1".to_owned(),
        port: 4321,
        lock: Some(ContainerPath::new("/agents/a/server.lock").unwrap()),
    }
}

/// The record files in the container, by name.
async fn records(rt: &dyn ContainerRuntime, town: &gastown_core::TownId) -> Vec<String> {
    let out = rt
        .exec_ok(town, &sh("ls /run/gastown/processes 2>/dev/null || true"))
        .await
        .unwrap();
    let mut names: Vec<String> = out.stdout_str().lines().map(str::to_owned).collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_labelled_process_outlives_its_runtime_and_is_adopted_once() {
    let prefix = gastown_runtime_docker::test_support::prefix("adopt");
    let Some(first) = runtime(&prefix).await else {
        return;
    };
    let town = town("adopt");
    let _cleanup = Cleanup::town(&prefix, &town);
    assert!(
        first
            .start(&town, &ContainerOptions::default())
            .await
            .unwrap()
            .created
    );
    let spawned = first
        .spawn_labelled(
            &town,
            &sh("exec sleep 300"),
            &label("a"),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    // The record exists once the spawn returned.
    assert_eq!(records(&first, &town).await.len(), 1);
    // The host dies: its runtime and every attached exec go away.
    drop(spawned);
    drop(first);

    let second = runtime(&prefix).await.unwrap();
    let info = second
        .start(&town, &ContainerOptions::default())
        .await
        .unwrap();
    assert!(!info.created, "the running container is adopted");
    assert!(
        second.adopt(&town, "b").await.unwrap().is_none(),
        "another agent"
    );
    let adopted = second
        .adopt(&town, "a")
        .await
        .unwrap()
        .expect("the earlier host's process");
    assert_eq!(adopted.label, label("a"));
    assert!(adopted.handle.status().await.is_alive());
    assert!(
        second.adopt(&town, "a").await.unwrap().is_none(),
        "handed out once"
    );

    // A labelled spawn of the same agent ends the adopted process first.
    let replacement = second
        .spawn_labelled(
            &town,
            &sh("exec sleep 300"),
            &label("a"),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    assert!(!adopted.handle.status().await.is_alive());
    assert!(replacement.handle.status().await.is_alive());
    assert_eq!(
        records(&second, &town).await.len(),
        1,
        "the old record is gone"
    );
    second.remove(&town).await.unwrap();
}

#[tokio::test]
async fn a_record_whose_pid_was_reused_is_dropped_without_a_signal() {
    let prefix = gastown_runtime_docker::test_support::prefix("reuse");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let town = town("reuse");
    let _cleanup = Cleanup::town(&prefix, &town);
    rt.start(&town, &ContainerOptions::default()).await.unwrap();
    // A live process of this container that no host spawned, recorded with another start
    // time: its pid "was reused".
    let mut bystander = rt
        .spawn(&town, &sh("echo $$; exec sleep 300"))
        .await
        .unwrap();
    let pid: u32 = bystander.output.recv().await.unwrap().line.parse().unwrap();
    let record = format!(
        r#"{{"pid":{pid},"start_ticks":1,"label":{{"agent":"a","config_hash":"h","port":1,"lock":null}}}}"#
    );
    rt.put_file(
        &town,
        &path(&format!("/run/gastown/processes/{pid}.json")),
        format!("{record}\n").as_bytes(),
    )
    .await
    .unwrap();
    assert!(rt.adopt(&town, "a").await.unwrap().is_none());
    assert!(
        bystander.handle.status().await.is_alive(),
        "never signalled"
    );
    assert!(
        records(&rt, &town).await.is_empty(),
        "the stale record is deleted"
    );
    rt.remove(&town).await.unwrap();
}
