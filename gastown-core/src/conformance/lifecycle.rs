//! Lifecycle checks: start, adopt, stop, remove, and what a stopped container refuses.

use std::time::Duration;

use super::support::{
    assert_not_running, finish, fresh, path, read, sh, spawn_stubborn, start, status, wait_exit,
};
use super::Capabilities;
use crate::error::Error;
use crate::ids::TownId;
use crate::runtime::{ContainerOptions, ContainerRuntime};
use crate::status::{ContainerStatus, ProcessStatus};

/// Lifecycle: `Absent` → start (`created`) → `Running` → stop → `Exited` → start again →
/// `Running`, a file under `/agents` (the persistent area) still there → remove → `Absent`,
/// files gone. The second start may create a new container (Docker does); only `/agents`
/// is promised to carry over.
pub async fn check_lifecycle(rt: &dyn ContainerRuntime, town: &TownId, _caps: &Capabilities) {
    fresh(rt, town).await;
    assert_eq!(
        status(rt, town).await,
        ContainerStatus::Absent,
        "lifecycle: before start"
    );

    let info = start(rt, town).await;
    assert!(
        info.created,
        "lifecycle: first start must create the container"
    );
    assert!(!info.id.is_empty(), "lifecycle: container id is empty");
    assert_eq!(
        status(rt, town).await,
        ContainerStatus::Running,
        "lifecycle: after start"
    );

    let keep = path("/agents/lifecycle/keep.txt");
    rt.put_file(town, &keep, b"kept across stop")
        .await
        .expect("lifecycle: put_file");
    rt.stop(town, Duration::from_secs(5))
        .await
        .expect("lifecycle: stop");
    assert_eq!(
        status(rt, town).await,
        ContainerStatus::Exited,
        "lifecycle: after stop"
    );

    start(rt, town).await;
    assert_eq!(
        status(rt, town).await,
        ContainerStatus::Running,
        "lifecycle: restart"
    );
    assert_eq!(
        rt.get_file(town, &keep)
            .await
            .expect("lifecycle: get_file after restart"),
        b"kept across stop",
        "lifecycle: files under /agents must survive stop + start"
    );

    rt.remove(town).await.expect("lifecycle: remove");
    assert_eq!(
        status(rt, town).await,
        ContainerStatus::Absent,
        "lifecycle: after remove"
    );

    start(rt, town).await;
    assert!(
        matches!(
            rt.get_file(town, &keep).await,
            Err(Error::FileNotFound { .. })
        ),
        "lifecycle: remove must delete the container's files"
    );
    finish(rt, town).await;
}

/// A second start of a running town adopts it: `created == false`, same id, still running,
/// and a process it runs survives the second start.
pub async fn check_idempotent_start(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    _caps: &Capabilities,
) {
    fresh(rt, town).await;
    let first = start(rt, town).await;
    let sleeper = rt
        .spawn(town, &sh("exec sleep 300"))
        .await
        .expect("idempotent start: spawn");
    let second = start(rt, town).await;
    assert!(first.created, "idempotent start: first start must create");
    assert!(!second.created, "idempotent start: second start must adopt");
    assert_eq!(first.id, second.id, "idempotent start: ids differ");
    assert_eq!(status(rt, town).await, ContainerStatus::Running);
    assert!(
        sleeper.handle.status().await.is_alive(),
        "idempotent start: a second start must not disturb running processes"
    );
    finish(rt, town).await;
}

/// Two concurrent starts of an absent town both succeed and end with one container:
/// the same id, exactly one of them `created`.
pub async fn check_concurrent_start(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    _caps: &Capabilities,
) {
    fresh(rt, town).await;
    let opts = ContainerOptions::default();
    let (a, b) = tokio::join!(rt.start(town, &opts), rt.start(town, &opts));
    let (a, b) = (
        a.expect("concurrent start: first"),
        b.expect("concurrent start: second"),
    );
    assert_eq!(a.id, b.id, "concurrent start: two containers for one town");
    assert!(
        a.created != b.created,
        "concurrent start: exactly one start must create (got {a:?}, {b:?})"
    );
    assert_eq!(status(rt, town).await, ContainerStatus::Running);
    finish(rt, town).await;
}

/// `stop` and `remove` succeed on a town that has no container, and leave it absent.
pub async fn check_stop_and_remove_absent(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    _caps: &Capabilities,
) {
    fresh(rt, town).await;
    rt.stop(town, Duration::from_secs(1))
        .await
        .expect("stop of an absent town");
    rt.remove(town).await.expect("remove of an absent town");
    assert_eq!(status(rt, town).await, ContainerStatus::Absent);
}

/// On a stopped or absent container, `exec`, `spawn`, `put_file`, `get_file` and `endpoint`
/// fail with [`Error::ContainerNotRunning`], and nothing is lost: the files under `/agents`
/// are there after the next start.
pub async fn check_stopped_container_rejects(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    _caps: &Capabilities,
) {
    fresh(rt, town).await;
    assert_not_running(rt, town, "absent").await;

    start(rt, town).await;
    // Under /agents: the only area a stop + start is promised to carry over.
    let keep = path("/agents/stopped/keep.txt");
    rt.put_file(town, &keep, b"before stop")
        .await
        .expect("stopped: put");
    rt.stop(town, Duration::from_secs(5))
        .await
        .expect("stopped: stop");
    assert_not_running(rt, town, "stopped").await;
    assert_eq!(status(rt, town).await, ContainerStatus::Exited);

    start(rt, town).await;
    assert_eq!(
        read(rt, town, &keep).await,
        b"before stop",
        "stopped: file lost"
    );
    finish(rt, town).await;
}

/// `stop` ends every process the container runs — those that die on SIGTERM and one that
/// ignores it (killed after the grace, with [`Capabilities::shell`]) — and every handle
/// reports `Exited`.
pub async fn check_stop_kills_every_process(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    caps: &Capabilities,
) {
    fresh(rt, town).await;
    start(rt, town).await;
    let mut handles = Vec::new();
    for _ in 0..2 {
        let p = rt
            .spawn(town, &sh("exec sleep 300"))
            .await
            .expect("stop: spawn sleep");
        handles.push(p.handle);
    }
    let _stubborn = spawn_stubborn(rt, town, caps, "stop", &mut handles).await;
    for h in &handles {
        assert!(h.status().await.is_alive(), "stop: process died early");
    }

    rt.stop(town, Duration::from_millis(500))
        .await
        .expect("stop: stop");
    for h in &handles {
        let end = wait_exit(h.as_ref()).await;
        assert!(
            matches!(end, ProcessStatus::Exited(_)),
            "stop: {h:?} is {end:?}"
        );
    }
    assert_eq!(status(rt, town).await, ContainerStatus::Exited);
    finish(rt, town).await;
}
