//! Helpers the checks share: commands, start/finish, reads, waits and the env assertion.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

pub(super) use super::SEARCH_PATH;
use super::{Capabilities, BACKEND_ENV_ALLOWANCE, WAIT_BOUND};
use crate::command::CommandSpec;
use crate::error::Error;
use crate::ids::TownId;
use crate::path::ContainerPath;
use crate::runtime::{
    ContainerOptions, ContainerRuntime, ContainerRuntimeExt, OutputLine, ProcessHandle,
    SpawnedProcess,
};
use crate::status::{ContainerStatus, ProcessStatus};

/// What a check that needs [`Capabilities::shell`](super::Capabilities::shell) names when
/// it skips.
pub(super) const SHELL: &str = "a POSIX shell (Capabilities::shell)";

/// Says, on stderr, that part of a check did not run on this backend and why: a skip is
/// visible in the test output, never silent.
pub(super) fn skipped(what: &str, needs: &str) {
    eprintln!("conformance: {what}: skipped, needs {needs}");
}

/// `true` with [`SEARCH_PATH`]: the one program every backend runs to completion (the
/// simulated runtime interprets it).
pub(super) fn true_cmd() -> CommandSpec {
    CommandSpec::new("true").env("PATH", SEARCH_PATH)
}

pub(super) fn path(p: &str) -> ContainerPath {
    ContainerPath::new(p).unwrap_or_else(|e| panic!("conformance: bad path {p:?}: {e}"))
}

/// `sh -c <script>` with [`SEARCH_PATH`]; more args become `$0`, `$1`, ….
pub(super) fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", SEARCH_PATH)
}

pub(super) async fn fresh(rt: &dyn ContainerRuntime, town: &TownId) {
    rt.remove(town)
        .await
        .unwrap_or_else(|e| panic!("conformance: removing leftovers of {town}: {e}"));
}

pub(super) async fn finish(rt: &dyn ContainerRuntime, town: &TownId) {
    rt.remove(town)
        .await
        .unwrap_or_else(|e| panic!("conformance: remove {town}: {e}"));
    assert_eq!(status(rt, town).await, ContainerStatus::Absent);
}

pub(super) async fn start(
    rt: &dyn ContainerRuntime,
    town: &TownId,
) -> crate::runtime::ContainerInfo {
    rt.start(town, &ContainerOptions::default())
        .await
        .unwrap_or_else(|e| panic!("conformance: start {town}: {e}"))
}

pub(super) async fn status(rt: &dyn ContainerRuntime, town: &TownId) -> ContainerStatus {
    rt.status(town)
        .await
        .unwrap_or_else(|e| panic!("conformance: status {town}: {e}"))
}

pub(super) async fn read(rt: &dyn ContainerRuntime, town: &TownId, p: &ContainerPath) -> Vec<u8> {
    rt.get_file(town, p)
        .await
        .unwrap_or_else(|e| panic!("conformance: get_file {p}: {e}"))
}

pub(super) async fn run_stdout(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    cmd: &CommandSpec,
) -> String {
    rt.exec_ok(town, cmd)
        .await
        .unwrap_or_else(|e| panic!("conformance: exec {cmd:?}: {e}"))
        .stdout_str()
}

/// A port that was free on this host a moment ago.
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("conformance: pick a free port")
}

/// Reads output until the channel closes (the process ended), bounded by [`WAIT_BOUND`].
pub(super) async fn collect_output(mut spawned: SpawnedProcess) -> Vec<OutputLine> {
    tokio::time::timeout(WAIT_BOUND, async {
        let mut lines = Vec::new();
        while let Some(line) = spawned.output.recv().await {
            lines.push(line);
        }
        lines
    })
    .await
    .expect("conformance: output channel never closed")
}

pub(super) async fn drain(output: &mut mpsc::Receiver<OutputLine>) {
    tokio::time::timeout(WAIT_BOUND, async { while output.recv().await.is_some() {} })
        .await
        .expect("conformance: output channel never closed");
}

/// Reads output until a line equal to `wanted` arrives; returns the process for more.
pub(super) async fn wait_for_line(mut spawned: SpawnedProcess, wanted: &str) -> SpawnedProcess {
    let found = tokio::time::timeout(WAIT_BOUND, async {
        while let Some(line) = spawned.output.recv().await {
            if line.line == wanted {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "conformance: the process never printed {wanted:?}");
    spawned
}

/// A script that ignores SIGTERM (its `sleep` inherits the trap) and prints `ready` once
/// the trap is set: only SIGKILL ends it.
pub(super) const STUBBORN: &str = "trap '' TERM; echo ready; sleep 300";

/// Spawns `sh -c <script>` and returns once it printed `ready`, so a signal sent after it
/// meets the script's trap. `what` names the spawn in a failure.
pub(super) async fn spawn_ready(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    script: &str,
    what: &str,
) -> SpawnedProcess {
    let spawned = rt
        .spawn(town, &sh(script))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    wait_for_line(spawned, "ready").await
}

/// For a `stop` check: with [`Capabilities::shell`], spawns a [`STUBBORN`] process, waits
/// until it is ready and adds its handle to `handles`; the process is returned for the
/// caller to keep (output and all) until the end, like the other handles. Without a
/// shell, says that `check` skips it and returns `None`.
pub(super) async fn spawn_stubborn(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    caps: &Capabilities,
    check: &str,
    handles: &mut Vec<Arc<dyn ProcessHandle>>,
) -> Option<SpawnedProcess> {
    if !caps.shell {
        skipped(&format!("{check}: a process ignoring TERM"), SHELL);
        return None;
    }
    let what = format!("{check}: spawn stubborn");
    let stubborn = spawn_ready(rt, town, STUBBORN, &what).await;
    handles.push(stubborn.handle.clone());
    Some(stubborn)
}

/// Kills `handle` with `grace` and asserts that it ended: the kill reports `Exited`, and so
/// does the handle's status afterwards. `what` names the process in a failure.
pub(super) async fn assert_killed(handle: &dyn ProcessHandle, grace: Duration, what: &str) {
    let end = handle
        .kill(grace)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(matches!(end, ProcessStatus::Exited(_)), "{what}: {end:?}");
    assert!(matches!(handle.status().await, ProcessStatus::Exited(_)));
}

/// Polls the handle until the process is reaped, bounded by [`WAIT_BOUND`].
pub(super) async fn wait_exit(handle: &dyn ProcessHandle) -> ProcessStatus {
    let deadline = tokio::time::Instant::now() + WAIT_BOUND;
    loop {
        let s = handle.status().await;
        if !s.is_alive() {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "conformance: {handle:?} never exited ({s:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts `env_output` (lines of `K=V`) is exactly `expected`, give or take
/// [`BACKEND_ENV_ALLOWANCE`], and holds no variable of the caller's own environment that
/// was not set (reading the caller's env is fine; it is never changed).
pub(super) fn assert_env(env_output: &str, expected: &BTreeMap<String, String>, what: &str) {
    let got: BTreeMap<&str, &str> = env_output
        .lines()
        .filter_map(|l| l.split_once('='))
        .collect();
    for (k, v) in expected {
        assert_eq!(got.get(k.as_str()), Some(&v.as_str()), "env ({what}): {k}");
    }
    let allowed: BTreeSet<&str> = expected
        .keys()
        .map(String::as_str)
        .chain(BACKEND_ENV_ALLOWANCE.iter().copied())
        .collect();
    let extra: Vec<&&str> = got.keys().filter(|k| !allowed.contains(**k)).collect();
    assert!(
        extra.is_empty(),
        "env ({what}): unexpected variables {extra:?}"
    );
    assert!(
        !env_output.contains("other-secret-4711") && !env_output.contains("other-value"),
        "env ({what}): another process's variables leaked in"
    );
    // The allowance names are skipped here: an engine may set them to values that happen to
    // equal the caller's (`HOME=/root`); the local backend's own tests check them strictly.
    for (k, v) in std::env::vars() {
        if !allowed.contains(k.as_str()) && !v.is_empty() {
            assert!(
                got.get(k.as_str()) != Some(&v.as_str()),
                "env ({what}): the caller's {k} leaked in"
            );
        }
    }
}

pub(super) async fn assert_not_running(rt: &dyn ContainerRuntime, town: &TownId, when: &str) {
    let p = path("/agents/stopped/keep.txt");
    let not_running = |r: &Result<(), Error>, op: &str| {
        assert!(
            matches!(r, Err(Error::ContainerNotRunning { .. })),
            "{when}: {op} must be ContainerNotRunning, got {r:?}"
        );
    };
    not_running(&rt.exec(town, &sh("true")).await.map(|_| ()), "exec");
    not_running(&rt.spawn(town, &sh("true")).await.map(|_| ()), "spawn");
    not_running(&rt.put_file(town, &p, b"x").await, "put_file");
    not_running(&rt.get_file(town, &p).await.map(|_| ()), "get_file");
    not_running(&rt.endpoint(town, 8080).await.map(|_| ()), "endpoint");
}
