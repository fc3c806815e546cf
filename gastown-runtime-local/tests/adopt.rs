//! Crash safety of [`LocalRuntime`]: process records, adopt-or-reap when a town starts on
//! a root an earlier host left, one labelled process per agent, the agent's lock, and
//! `stop`/`remove` ending every recorded process.
//!
//! A crashed host is modelled by forgetting its runtime (`std::mem::forget`): no `Drop`
//! runs, so its processes keep running as after a SIGKILL of the host; the chaos test of
//! `gastown-actors` kills a real host process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gastown_core::{
    CommandSpec, ContainerOptions, ContainerPath, ContainerRuntime, ProcessLabel, TownId,
};
use gastown_runtime_local::{LocalError, LocalRuntime};

/// Generous bound for waiting on real processes; a hang guard, not a timing assertion.
const WAIT: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(2);

fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", "/usr/bin:/bin")
}

fn label(agent: &str, lock: Option<&str>) -> ProcessLabel {
    ProcessLabel {
        agent: agent.to_owned(),
        config_hash: format!("hash-of-{agent}"),
        port: 4321,
        lock: lock.map(|l| ContainerPath::new(l).unwrap()),
    }
}

/// The state letter of `/proc/<pid>/stat`, `None` when the pid is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn dead(pid: u32) -> bool {
    matches!(state(pid), None | Some('Z' | 'X'))
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn records(root: &Path, town: &TownId) -> Vec<PathBuf> {
    let dir = root.join(town.as_str()).join("run/gastown/processes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// A runtime on `root` with `town` started.
async fn host(root: &Path, town: &TownId) -> (LocalRuntime, bool) {
    let rt = LocalRuntime::new(root.to_owned());
    let info = rt.start(town, &ContainerOptions::default()).await.unwrap();
    (rt, info.created)
}

#[tokio::test]
async fn a_labelled_server_outlives_a_crashed_host_and_is_adopted_once() {
    let root = tempfile::tempdir().unwrap();
    let town = TownId::new("adopt").unwrap();
    let (first, created) = host(root.path(), &town).await;
    assert!(created);
    let server = first
        .spawn_labelled(&town, &sh("exec sleep 300"), &label("mayor", None), GRACE)
        .await
        .unwrap();
    let pid = server.handle.pid().unwrap();
    assert_eq!(
        records(root.path(), &town).len(),
        1,
        "recorded before spawn returned"
    );
    std::mem::forget(first);

    let (second, created) = host(root.path(), &town).await;
    assert!(!created, "a container with a live server is adopted");
    assert_eq!(
        second
            .adopt(&town, "polecat-1")
            .await
            .unwrap()
            .map(|a| a.label),
        None
    );
    let adopted = second
        .adopt(&town, "mayor")
        .await
        .unwrap()
        .expect("adopted");
    assert_eq!(adopted.handle.pid(), Some(pid));
    assert_eq!(adopted.label, label("mayor", None));
    assert!(adopted.handle.status().await.is_alive());
    assert!(
        second.adopt(&town, "mayor").await.unwrap().is_none(),
        "a process is adopted once"
    );

    // It is the container's now: its handle kills it, and its record goes with it.
    adopted.handle.kill(GRACE).await.unwrap();
    assert!(dead(pid));
    wait_until("record removed", || records(root.path(), &town).is_empty()).await;
    second.remove(&town).await.unwrap();
}

#[tokio::test]
async fn unlabelled_leftovers_are_killed_and_frozen_servers_continued_on_start() {
    let root = tempfile::tempdir().unwrap();
    let town = TownId::new("reap").unwrap();
    let (first, _) = host(root.path(), &town).await;
    let stray = first.spawn(&town, &sh("exec sleep 300")).await.unwrap();
    let server = first
        .spawn_labelled(&town, &sh("exec sleep 300"), &label("mayor", None), GRACE)
        .await
        .unwrap();
    let (stray, server) = (stray.handle.pid().unwrap(), server.handle.pid().unwrap());
    // The host died while the town was paused: every group is stopped.
    first.pause(&town).await.unwrap();
    wait_until("server stopped", || state(server) == Some('T')).await;
    std::mem::forget(first);

    let (second, created) = host(root.path(), &town).await;
    assert!(!created);
    wait_until("stray killed", || dead(stray)).await;
    assert!(
        matches!(state(server), Some('S' | 'R')),
        "the labelled server runs again: {:?}",
        state(server)
    );
    assert!(second.adopt(&town, "mayor").await.unwrap().is_some());
    second.remove(&town).await.unwrap();
    assert!(dead(server));
}

#[tokio::test]
async fn a_record_whose_pid_was_reused_is_dropped_without_a_signal() {
    let root = tempfile::tempdir().unwrap();
    let town = TownId::new("reused").unwrap();
    // An unrelated live process, recorded with a start time that is not its own.
    let mut unrelated = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .unwrap();
    let pid = unrelated.id();
    let dir = root.path().join("reused/run/gastown/processes");
    std::fs::create_dir_all(&dir).unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let record = serde_json::json!({
        "pid": pid, "start_ticks": 1, "boot_id": boot.trim(), "program": "kilo",
        "label": {"agent": "mayor", "config_hash": "h", "port": 1, "lock": null},
    });
    std::fs::write(dir.join(format!("{pid}.json")), record.to_string()).unwrap();

    let (rt, created) = host(root.path(), &town).await;
    assert!(created, "nothing of ours runs");
    assert!(rt.adopt(&town, "mayor").await.unwrap().is_none());
    rt.remove(&town).await.unwrap();
    assert!(!dead(pid), "the unrelated process survives");
    assert!(
        !dir.join(format!("{pid}.json")).exists(),
        "the stale record is gone"
    );
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
}

#[tokio::test]
async fn remove_by_a_host_that_never_started_the_town_kills_every_recorded_process() {
    let root = tempfile::tempdir().unwrap();
    let town = TownId::new("remove-all").unwrap();
    let (first, _) = host(root.path(), &town).await;
    let a = first
        .spawn_labelled(&town, &sh("exec sleep 300"), &label("mayor", None), GRACE)
        .await
        .unwrap();
    let b = first
        .spawn(&town, &sh("trap '' TERM; sleep 300"))
        .await
        .unwrap();
    let pids = [a.handle.pid().unwrap(), b.handle.pid().unwrap()];
    std::mem::forget(first);

    let second = LocalRuntime::new(root.path().to_owned());
    second.remove(&town).await.unwrap();
    for pid in pids {
        assert!(dead(pid), "pid {pid} survived remove");
    }
    assert!(!root.path().join(town.as_str()).exists());
}

#[tokio::test]
async fn one_labelled_process_per_agent_and_its_lock_is_exclusive() {
    let root = tempfile::tempdir().unwrap();
    let town = TownId::new("one-per-agent").unwrap();
    let (rt, _) = host(root.path(), &town).await;
    let lock = "/agents/mayor/server.lock";
    let lock_host = root.path().join("one-per-agent/agents/mayor/server.lock");
    let first = rt
        .spawn_labelled(
            &town,
            &sh("trap '' TERM; sleep 300"),
            &label("mayor", Some(lock)),
            GRACE,
        )
        .await
        .unwrap();
    let first_pid = first.handle.pid().unwrap();
    let other = rt
        .spawn_labelled(
            &town,
            &sh("exec sleep 300"),
            &label("polecat-1", None),
            GRACE,
        )
        .await
        .unwrap();

    // The lock is held by the server (its stdin), not by this process.
    let probe = std::fs::File::open(&lock_host).unwrap();
    assert!(matches!(
        probe.try_lock(),
        Err(std::fs::TryLockError::WouldBlock)
    ));

    // A second server for the mayor ends the first (it ignores SIGTERM: SIGKILL after the
    // grace) before it starts, and takes the lock over; the other agent's is untouched.
    let second = rt
        .spawn_labelled(
            &town,
            &sh("exec sleep 300"),
            &label("mayor", Some(lock)),
            GRACE,
        )
        .await
        .unwrap();
    assert!(dead(first_pid));
    assert!(!first.handle.status().await.is_alive());
    assert!(other.handle.status().await.is_alive());
    assert!(second.handle.status().await.is_alive());
    assert!(matches!(
        probe.try_lock(),
        Err(std::fs::TryLockError::WouldBlock)
    ));

    // A lock held by a process the runtime has no record of is refused, never killed.
    second.handle.kill(GRACE).await.unwrap();
    probe.try_lock().expect("free once the server ended");
    let err = rt
        .spawn_labelled(
            &town,
            &sh("exec sleep 300"),
            &label("mayor", Some(lock)),
            GRACE,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.backend_error::<LocalError>(),
            Some(LocalError::Locked { .. })
        ),
        "{err}"
    );
    probe.unlock().unwrap();
    rt.remove(&town).await.unwrap();
}
