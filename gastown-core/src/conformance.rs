//! The conformance suite: what every [`ContainerRuntime`] backend must do (the trait's
//! `# Contract`), as a flat list of checks.
//!
//! Modelled on arrow-rs object_store's `integration.rs`: each `check_*` takes the runtime
//! under test and a town id it owns for the duration of the check. A check first removes
//! any container left over for that town (a failed earlier run), and removes the town again
//! when it passes. Checks are test code: they panic (assert) on failure, with a message
//! that names the check.
//!
//! [`run_all`] runs every check, each with its own town id (`<prefix>-<check>`), one after
//! another. A backend's test file can also call the checks one by one, one `#[tokio::test]`
//! each, to see every failure at once.
//!
//! # Programs the checks use
//!
//! Only POSIX `sh` and applets both backends have: the Docker image is a static busybox
//! (applets in `/bin`) plus git; the local backend takes the same names from the host's
//! `PATH`. Every command gets `PATH=`[`SEARCH_PATH`] explicitly (commands inherit nothing).
//! The HTTP server of [`check_port_reachable`] differs per host, so it is an argument
//! ([`HttpServerCommand`]); [`busybox_httpd`] fits both backends when busybox is installed.
//!
//! # Waiting
//!
//! No check asserts on wall-clock time. Where a check waits for something (a server to
//! answer, a process to be reaped), it polls with a generous bound ([`WAIT_BOUND`]) so a
//! loaded machine is slow, not failing; the bound only turns a hang into a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::command::CommandSpec;
use crate::error::Error;
use crate::ids::TownId;
use crate::path::ContainerPath;
use crate::runtime::{
    ContainerOptions, ContainerRuntime, ContainerRuntimeExt, OutputLine, ProcessHandle,
    SpawnedProcess, Stream,
};
use crate::secret::Secret;
use crate::status::{ContainerStatus, ProcessStatus};

/// The `PATH` every check's command gets: where `sh` and the busybox applets live in the
/// Docker image (`/bin`) and on a usual host (`/usr/bin`, `/bin`).
pub const SEARCH_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The longest a check waits for something to happen (a server to answer, a process to be
/// reaped, output to arrive) before it fails: 60 s. A hang guard, not a timing assertion.
pub const WAIT_BOUND: Duration = Duration::from_secs(60);

/// Environment variables a container engine may add to a process's environment on its own
/// (never copied from the caller's host): Docker puts `HOSTNAME` in every container's
/// environment, and runc sets `HOME` (from `/etc/passwd`, else `/`) when it is unset.
/// [`check_env_isolation`] tolerates these names and nothing else it did not set.
pub const BACKEND_ENV_ALLOWANCE: &[&str] = &["HOSTNAME", "HOME"];

/// Builds the command of a tiny HTTP server for [`check_port_reachable`]: given the host to
/// bind (the runtime's [`sdk_bind_host`](ContainerRuntime::sdk_bind_host)), a port, and the
/// container directory to serve, a command that serves that directory's files over HTTP in
/// the foreground until killed.
pub type HttpServerCommand = dyn Fn(&str, u16, &ContainerPath) -> CommandSpec + Send + Sync;

/// An [`HttpServerCommand`] for busybox's `httpd` applet, run as `busybox httpd -f -p
/// HOST:PORT -h DIR` (`-f`: stay in the foreground). Works in the Docker image and on a
/// host with busybox installed.
pub fn busybox_httpd(host: &str, port: u16, dir: &ContainerPath) -> CommandSpec {
    CommandSpec::new("busybox")
        .args(["httpd", "-f", "-p"])
        .arg(format!("{host}:{port}"))
        .arg("-h")
        .arg(dir)
        .env("PATH", SEARCH_PATH)
}

/// An [`HttpServerCommand`] for `python3 -m http.server --bind HOST PORT`, run in `dir`.
/// For hosts without busybox.
pub fn python_http_server(host: &str, port: u16, dir: &ContainerPath) -> CommandSpec {
    CommandSpec::new("python3")
        .args(["-m", "http.server", "--bind", host])
        .arg(port.to_string())
        .cwd(dir.clone())
        .env("PATH", SEARCH_PATH)
}

/// Runs every check against `rt`, one after another, each on its own town
/// `<town_prefix>-<check>` (so `town_prefix` must be a valid [`TownId`] of at most 40
/// characters). `server` is the HTTP server of [`check_port_reachable`].
///
/// # Panics
/// When a check fails, or `town_prefix` makes an invalid town id.
pub async fn run_all(rt: &dyn ContainerRuntime, town_prefix: &str, server: &HttpServerCommand) {
    let town = |name: &str| {
        TownId::new(format!("{town_prefix}-{name}"))
            .unwrap_or_else(|e| panic!("conformance: bad town prefix {town_prefix:?}: {e}"))
    };
    check_lifecycle(rt, &town("lifecycle")).await;
    check_idempotent_start(rt, &town("idempotent")).await;
    check_concurrent_start(rt, &town("concurrent")).await;
    check_stop_and_remove_absent(rt, &town("absent")).await;
    check_exec_exit_codes(rt, &town("exit-codes")).await;
    check_exec_output(rt, &town("exec-output")).await;
    check_program_not_found(rt, &town("not-found")).await;
    check_env_isolation(rt, &town("env")).await;
    check_cwd(rt, &town("cwd")).await;
    check_paths_in_args_and_env(rt, &town("paths")).await;
    check_port_reachable(rt, &town("port"), server).await;
    check_output_lines(rt, &town("output")).await;
    check_unread_output_does_not_block(rt, &town("unread")).await;
    check_kill_with_grace(rt, &town("kill")).await;
    check_file_round_trip(rt, &town("files")).await;
    check_missing_file(rt, &town("missing-file")).await;
    check_path_validation(rt, &town("path-validation")).await;
    check_stopped_container_rejects(rt, &town("stopped")).await;
    check_stop_kills_every_process(rt, &town("stop-kills")).await;
}

/// Lifecycle: `Absent` → start (`created`) → `Running` → stop → `Exited` → start again →
/// `Running`, a file under `/agents` (the persistent area) still there → remove → `Absent`,
/// files gone. The second start may create a new container (Docker does); only `/agents`
/// is promised to carry over.
pub async fn check_lifecycle(rt: &dyn ContainerRuntime, town: &TownId) {
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
pub async fn check_idempotent_start(rt: &dyn ContainerRuntime, town: &TownId) {
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
pub async fn check_concurrent_start(rt: &dyn ContainerRuntime, town: &TownId) {
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
pub async fn check_stop_and_remove_absent(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    rt.stop(town, Duration::from_secs(1))
        .await
        .expect("stop of an absent town");
    rt.remove(town).await.expect("remove of an absent town");
    assert_eq!(status(rt, town).await, ContainerStatus::Absent);
}

/// `exec` reports exit codes as `Ok`, zero and non-zero alike.
pub async fn check_exec_exit_codes(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;
    for code in [0, 1, 3, 42, 255] {
        let out = rt
            .exec(town, &sh(&format!("exit {code}")))
            .await
            .unwrap_or_else(|e| panic!("exec exit {code}: {e}"));
        assert_eq!(out.exit_code, code, "exec exit code");
        assert_eq!(out.success(), code == 0);
    }
    let err = rt.exec_ok(town, &sh("echo boom >&2; exit 9")).await;
    match err {
        Err(Error::CommandFailed {
            exit_code,
            stderr_tail,
            ..
        }) => {
            assert_eq!(exit_code, 9);
            assert!(stderr_tail.contains("boom"), "{stderr_tail:?}");
        }
        other => panic!("exec_ok of a failing command: expected CommandFailed, got {other:?}"),
    }
    finish(rt, town).await;
}

/// `exec` keeps stdout and stderr apart and whole (a megabyte on each, interleaved, must not
/// deadlock on full pipes), and gives the command an empty stdin.
pub async fn check_exec_output(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;

    let out = rt
        .exec(town, &sh("echo out; echo err >&2; printf 'no-newline'"))
        .await
        .expect("exec output");
    assert_eq!(out.stdout, b"out\nno-newline");
    assert_eq!(out.stderr, b"err\n");

    // 16384 lines of 64 bytes = 1 MiB on each stream.
    let script = format!(
        "line={}; i=0; while [ $i -lt 16384 ]; do echo $line; echo $line >&2; i=$((i+1)); done",
        "x".repeat(63)
    );
    let out = rt.exec(town, &sh(&script)).await.expect("exec big output");
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout.len(), 16384 * 64, "stdout bytes");
    assert_eq!(out.stderr.len(), 16384 * 64, "stderr bytes");

    // stdin is empty (not the caller's terminal): `cat` ends at once with no output.
    let out = rt
        .exec(town, &CommandSpec::new("cat").env("PATH", SEARCH_PATH))
        .await
        .expect("exec cat");
    assert_eq!(
        (out.exit_code, out.stdout.len()),
        (0, 0),
        "stdin must be empty"
    );
    finish(rt, town).await;
}

/// A program that does not exist is [`Error::ProgramNotFound`] from `exec` and `spawn`,
/// and the container keeps running.
pub async fn check_program_not_found(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;
    let missing = CommandSpec::new("gastown-no-such-program").env("PATH", SEARCH_PATH);
    match rt.exec(town, &missing).await {
        Err(Error::ProgramNotFound { program, .. }) => {
            assert_eq!(program, "gastown-no-such-program")
        }
        other => panic!("exec of a missing program: expected ProgramNotFound, got {other:?}"),
    }
    match rt.spawn(town, &missing).await {
        Err(Error::ProgramNotFound { .. }) => {}
        other => panic!("spawn of a missing program: expected ProgramNotFound, got {other:?}"),
    }
    assert_eq!(status(rt, town).await, ContainerStatus::Running);
    assert_eq!(run_stdout(rt, town, &sh("echo still")).await, "still\n");
    finish(rt, town).await;
}

/// A process sees exactly the environment of its [`CommandSpec`]: the variables set (a
/// secret included), none set for another process running beside it, nothing from the
/// caller's host; only [`BACKEND_ENV_ALLOWANCE`] may be added by the engine. Checked for
/// `exec` and for `spawn`.
pub async fn check_env_isolation(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;

    let other = rt
        .spawn(
            town,
            &sh("exec sleep 300")
                .env("GASTOWN_OTHER_ONLY", "other-value")
                .env("GASTOWN_OTHER_SECRET", Secret::new("other-secret-4711")),
        )
        .await
        .expect("env: spawn the other process");

    let mut expected = BTreeMap::from([
        ("PATH".to_owned(), SEARCH_PATH.to_owned()),
        ("GASTOWN_CHECK_PLAIN".to_owned(), "plain value".to_owned()),
        ("GASTOWN_CHECK_SECRET".to_owned(), "s3cret-0815".to_owned()),
        ("HOME".to_owned(), "/home/checker".to_owned()),
    ]);
    let env_cmd = |expected: &BTreeMap<String, String>| {
        let mut cmd = CommandSpec::new("env");
        for (k, v) in expected {
            cmd = if k.ends_with("SECRET") {
                cmd.env(k.clone(), Secret::new(v.clone()))
            } else {
                cmd.env(k.clone(), v.clone())
            };
        }
        cmd
    };

    let out = rt
        .exec_ok(town, &env_cmd(&expected))
        .await
        .expect("env: exec");
    assert_env(&out.stdout_str(), &expected, "exec");

    // Without HOME set: whatever HOME the engine adds, it is not the caller's.
    expected.remove("HOME");
    let spawned = rt
        .spawn(town, &env_cmd(&expected))
        .await
        .expect("env: spawn");
    let lines = collect_output(spawned).await;
    let text: String = lines
        .iter()
        .filter(|l| l.stream == Stream::Stdout)
        .map(|l| format!("{}\n", l.line))
        .collect();
    assert_env(&text, &expected, "spawn");

    other
        .handle
        .kill(Duration::from_secs(5))
        .await
        .expect("env: kill the other process");
    finish(rt, town).await;
}

/// A command runs in its `cwd`, or in the container's `/` without one: a file it writes
/// relative to its cwd shows at the container path (read back with `get_file`, since a
/// backend's `pwd` may print a host path).
pub async fn check_cwd(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;
    let dir = path("/cwd-check/nested dir");
    rt.create_dir_all(town, &dir).await.expect("cwd: mkdir");

    rt.exec_ok(town, &sh("echo exec-here > marker.txt").cwd(dir.clone()))
        .await
        .expect("cwd: exec");
    assert_eq!(
        read(rt, town, &dir.join("marker.txt").unwrap()).await,
        b"exec-here\n"
    );

    rt.exec_ok(town, &sh("echo at-root > cwd-root-marker.txt"))
        .await
        .expect("cwd: exec without cwd");
    assert_eq!(
        read(rt, town, &path("/cwd-root-marker.txt")).await,
        b"at-root\n"
    );

    let spawned = rt
        .spawn(town, &sh("echo spawn-here > spawned.txt").cwd(dir.clone()))
        .await
        .expect("cwd: spawn");
    let handle = spawned.handle.clone();
    collect_output(spawned).await;
    assert_eq!(
        wait_exit(handle.as_ref()).await,
        ProcessStatus::Exited(Some(0))
    );
    assert_eq!(
        read(rt, town, &dir.join("spawned.txt").unwrap()).await,
        b"spawn-here\n"
    );
    finish(rt, town).await;
}

/// Container paths given as [`Word::Path`](crate::Word::Path) in args and env reach the
/// process as paths it can open.
pub async fn check_paths_in_args_and_env(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;
    let file = path("/data/paths/payload.txt");
    rt.put_file(town, &file, b"payload")
        .await
        .expect("paths: put");

    let by_arg = CommandSpec::new("cat").arg(&file).env("PATH", SEARCH_PATH);
    assert_eq!(run_stdout(rt, town, &by_arg).await, "payload");

    let by_env = sh("cat \"$PAYLOAD\"").env("PAYLOAD", &file);
    assert_eq!(run_stdout(rt, town, &by_env).await, "payload");

    // Written through a path argument, read back through the API.
    let out = path("/data/paths/out.txt");
    let write = sh("echo written > \"$1\"").arg("sh").arg(&out);
    rt.exec_ok(town, &write).await.expect("paths: write");
    assert_eq!(read(rt, town, &out).await, b"written\n");
    finish(rt, town).await;
}

/// A long-running server bound to [`sdk_bind_host`](ContainerRuntime::sdk_bind_host) on a
/// port inside the container answers at [`endpoint`](ContainerRuntime::endpoint)`(port)`.
/// The port is chosen free on the caller's host (the local backend shares its network);
/// if the server dies at once (port taken meanwhile), another port is tried.
pub async fn check_port_reachable(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    server: &HttpServerCommand,
) {
    fresh(rt, town).await;
    start(rt, town).await;
    let dir = path("/srv/www");
    let body = format!("hello from {town}\n");
    rt.put_file(town, &dir.join("index.html").unwrap(), body.as_bytes())
        .await
        .expect("port: put index.html");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("port: http client");

    for attempt in 1..=3 {
        let port = free_port();
        let spawned = rt
            .spawn(town, &server(rt.sdk_bind_host(), port, &dir))
            .await
            .expect("port: spawn the server");
        let url = rt.endpoint(town, port).await.expect("port: endpoint");
        assert!(
            url.starts_with("http://") && !url.ends_with('/'),
            "port: endpoint must be http://host:port, got {url}"
        );
        let deadline = tokio::time::Instant::now() + WAIT_BOUND;
        while tokio::time::Instant::now() < deadline {
            if let Ok(resp) = client.get(format!("{url}/index.html")).send().await {
                if resp.status().is_success() {
                    let got = resp.text().await.expect("port: body");
                    assert_eq!(got, body, "port: served body");
                    let end = spawned
                        .handle
                        .kill(Duration::from_secs(5))
                        .await
                        .expect("port: kill the server");
                    assert!(!end.is_alive(), "port: server alive after kill: {end:?}");
                    finish(rt, town).await;
                    return;
                }
            }
            if !spawned.handle.status().await.is_alive() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = spawned.handle.kill(Duration::from_secs(5)).await;
        let lines = collect_output(spawned).await;
        eprintln!("port: attempt {attempt} on {port} failed ({status:?}); output: {lines:?}");
    }
    panic!("port: the server never answered at its endpoint");
}

/// A spawned process's stdout and stderr arrive line by line on `output`, tagged with their
/// stream, without line endings (a last line without `\n` included); the channel closes when
/// the process ends, and the handle reports its real exit code.
pub async fn check_output_lines(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;
    let spawned = rt
        .spawn(
            town,
            &sh("echo one; echo two >&2; echo three; printf 'four'; exit 5"),
        )
        .await
        .expect("output: spawn");
    let handle = spawned.handle.clone();
    let lines = collect_output(spawned).await;
    let of = |s: Stream| -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.stream == s)
            .map(|l| l.line.as_str())
            .collect()
    };
    assert_eq!(
        of(Stream::Stdout),
        ["one", "three", "four"],
        "output: stdout"
    );
    assert_eq!(of(Stream::Stderr), ["two"], "output: stderr");
    assert_eq!(
        wait_exit(handle.as_ref()).await,
        ProcessStatus::Exited(Some(5))
    );
    finish(rt, town).await;
}

/// A process whose output nobody reads is not blocked by it (lines past the buffer bound
/// are dropped, not waited for): it runs to its end, the newest line still arrives, and the
/// lines that arrive are in order.
pub async fn check_unread_output_does_not_block(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;
    let marker = path("/unread/done");
    rt.create_dir_all(town, &marker.parent().unwrap())
        .await
        .expect("unread: mkdir");
    let script = "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done; \
                  echo done > \"$1\"; echo last-line";
    let spawned = rt
        .spawn(town, &sh(script).arg("sh").arg(&marker))
        .await
        .expect("unread: spawn");
    // Do not read `output` until the process has finished writing.
    let deadline = tokio::time::Instant::now() + WAIT_BOUND;
    while !rt.file_exists(town, &marker).await.expect("unread: probe") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "unread: the process blocked on output nobody read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let handle = spawned.handle.clone();
    let lines = collect_output(spawned).await;
    assert_eq!(
        wait_exit(handle.as_ref()).await,
        ProcessStatus::Exited(Some(0))
    );
    assert_eq!(
        lines.last().map(|l| l.line.as_str()),
        Some("last-line"),
        "unread: the newest line must arrive"
    );
    let numbers: Vec<u32> = lines
        .iter()
        .filter_map(|l| l.line.strip_prefix("line-")?.parse().ok())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "unread: lines out of order"
    );
    finish(rt, town).await;
}

/// `kill(grace)`: a plain process dies on SIGTERM; a process that handles SIGTERM and exits
/// is waited for (its own exit code is reported); a process that ignores SIGTERM is killed
/// after `grace`; killing an ended process is `Ok`. Afterwards the handle reports `Exited`.
pub async fn check_kill_with_grace(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;

    // A plain `sleep` dies on TERM (a long grace: a missing TERM is slow, not wrong).
    let plain = rt
        .spawn(town, &sh("exec sleep 300"))
        .await
        .expect("kill: spawn sleep");
    let end = plain
        .handle
        .kill(Duration::from_secs(30))
        .await
        .expect("kill: plain");
    assert!(
        matches!(end, ProcessStatus::Exited(_)),
        "kill: plain: {end:?}"
    );
    assert!(matches!(
        plain.handle.status().await,
        ProcessStatus::Exited(_)
    ));

    // Handles TERM and exits 7: the grace period is honoured, the exit code is its own.
    let graceful = rt
        .spawn(
            town,
            &sh("trap 'exit 7' TERM; echo ready; while :; do sleep 1; done"),
        )
        .await
        .expect("kill: spawn graceful");
    let mut graceful = wait_for_line(graceful, "ready").await;
    let end = graceful
        .handle
        .kill(Duration::from_secs(30))
        .await
        .expect("kill: graceful");
    assert_eq!(
        end,
        ProcessStatus::Exited(Some(7)),
        "kill: graceful exit code"
    );
    drain(&mut graceful.output).await;

    // Ignores TERM (inherited by its `sleep`): only SIGKILL after the grace ends it.
    let stubborn = rt
        .spawn(town, &sh("trap '' TERM; echo ready; sleep 300"))
        .await
        .expect("kill: spawn stubborn");
    let stubborn = wait_for_line(stubborn, "ready").await;
    let end = stubborn
        .handle
        .kill(Duration::from_millis(300))
        .await
        .expect("kill: stubborn");
    assert!(
        matches!(end, ProcessStatus::Exited(_)),
        "kill: stubborn: {end:?}"
    );
    assert!(matches!(
        stubborn.handle.status().await,
        ProcessStatus::Exited(_)
    ));

    // Killing again, and killing a process that ended by itself, is fine.
    stubborn
        .handle
        .kill(Duration::from_secs(1))
        .await
        .expect("kill: second kill");
    let quick = rt
        .spawn(town, &sh("exit 0"))
        .await
        .expect("kill: spawn quick");
    let handle = quick.handle.clone();
    collect_output(quick).await;
    assert_eq!(
        wait_exit(handle.as_ref()).await,
        ProcessStatus::Exited(Some(0))
    );
    let end = handle
        .kill(Duration::from_secs(1))
        .await
        .expect("kill: ended process");
    assert_eq!(end, ProcessStatus::Exited(Some(0)));
    finish(rt, town).await;
}

/// Files round-trip byte for byte (all 256 byte values, an empty file), parents are
/// created, and a second put replaces the whole file.
pub async fn check_file_round_trip(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(256 * 64).collect();
    let file = path("/files/a/b/c/all-bytes.bin");
    rt.put_file(town, &file, &all_bytes)
        .await
        .expect("files: put");
    assert_eq!(read(rt, town, &file).await, all_bytes, "files: round trip");

    // The process sees the same bytes.
    let out = rt
        .exec_ok(
            town,
            &CommandSpec::new("cat").arg(&file).env("PATH", SEARCH_PATH),
        )
        .await
        .expect("files: cat");
    assert_eq!(out.stdout, all_bytes, "files: as the process reads them");

    rt.put_file(town, &file, b"short")
        .await
        .expect("files: replace");
    assert_eq!(
        read(rt, town, &file).await,
        b"short",
        "files: replaced whole"
    );

    let empty = path("/files/empty");
    rt.put_file(town, &empty, b"")
        .await
        .expect("files: put empty");
    assert_eq!(read(rt, town, &empty).await, b"");

    // A file a process wrote reads back through the API.
    let made = path("/files/made-by-sh.txt");
    rt.exec_ok(town, &sh("printf 'a\\nb' > \"$1\"").arg("sh").arg(&made))
        .await
        .expect("files: write by sh");
    assert_eq!(read(rt, town, &made).await, b"a\nb");
    finish(rt, town).await;
}

/// `get_file` of a missing file (or one in a missing directory) is
/// [`Error::FileNotFound`]; other files are unaffected.
pub async fn check_missing_file(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;
    let present = path("/missing/present.txt");
    rt.put_file(town, &present, b"here")
        .await
        .expect("missing: put");
    for missing in ["/missing/absent.txt", "/no/such/dir/file"] {
        match rt.get_file(town, &path(missing)).await {
            Err(Error::FileNotFound { path }) => assert_eq!(path, missing),
            other => panic!("get_file {missing}: expected FileNotFound, got {other:?}"),
        }
    }
    assert!(!rt
        .file_exists(town, &path("/missing/absent.txt"))
        .await
        .unwrap());
    assert_eq!(read(rt, town, &present).await, b"here");
    finish(rt, town).await;
}

/// Paths that could escape the container are rejected before reaching the runtime:
/// relative, `..`, `.`, empty components, NUL bytes; the container's files are untouched.
pub async fn check_path_validation(rt: &dyn ContainerRuntime, town: &TownId) {
    fresh(rt, town).await;
    start(rt, town).await;
    let file = path("/validation/keep.txt");
    rt.put_file(town, &file, b"intact")
        .await
        .expect("validation: put");
    for bad in [
        "../x", "x", "", "/a/../b", "/..", "/a/./b", "/a//b", "/a\0b",
    ] {
        assert!(
            matches!(ContainerPath::new(bad), Err(Error::InvalidPath { .. })),
            "path validation: {bad:?} must be rejected"
        );
    }
    for bad in ["../x", "/etc", "a/../../x"] {
        assert!(
            matches!(
                file.parent().unwrap().join(bad),
                Err(Error::InvalidPath { .. })
            ),
            "path validation: join({bad:?}) must be rejected"
        );
    }
    assert_eq!(read(rt, town, &file).await, b"intact");
    finish(rt, town).await;
}

/// On a stopped or absent container, `exec`, `spawn`, `put_file`, `get_file` and `endpoint`
/// fail with [`Error::ContainerNotRunning`], and nothing is lost: the files under `/agents`
/// are there after the next start.
pub async fn check_stopped_container_rejects(rt: &dyn ContainerRuntime, town: &TownId) {
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
/// ignores it (killed after the grace) — and every handle reports `Exited`.
pub async fn check_stop_kills_every_process(rt: &dyn ContainerRuntime, town: &TownId) {
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
    let stubborn = rt
        .spawn(town, &sh("trap '' TERM; echo ready; sleep 300"))
        .await
        .expect("stop: spawn stubborn");
    let stubborn = wait_for_line(stubborn, "ready").await;
    handles.push(stubborn.handle.clone());
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

// ---- helpers -------------------------------------------------------------------------

fn path(p: &str) -> ContainerPath {
    ContainerPath::new(p).unwrap_or_else(|e| panic!("conformance: bad path {p:?}: {e}"))
}

/// `sh -c <script>` with [`SEARCH_PATH`]; more args become `$0`, `$1`, ….
fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", SEARCH_PATH)
}

async fn fresh(rt: &dyn ContainerRuntime, town: &TownId) {
    rt.remove(town)
        .await
        .unwrap_or_else(|e| panic!("conformance: removing leftovers of {town}: {e}"));
}

async fn finish(rt: &dyn ContainerRuntime, town: &TownId) {
    rt.remove(town)
        .await
        .unwrap_or_else(|e| panic!("conformance: remove {town}: {e}"));
    assert_eq!(status(rt, town).await, ContainerStatus::Absent);
}

async fn start(rt: &dyn ContainerRuntime, town: &TownId) -> crate::runtime::ContainerInfo {
    rt.start(town, &ContainerOptions::default())
        .await
        .unwrap_or_else(|e| panic!("conformance: start {town}: {e}"))
}

async fn status(rt: &dyn ContainerRuntime, town: &TownId) -> ContainerStatus {
    rt.status(town)
        .await
        .unwrap_or_else(|e| panic!("conformance: status {town}: {e}"))
}

async fn read(rt: &dyn ContainerRuntime, town: &TownId, p: &ContainerPath) -> Vec<u8> {
    rt.get_file(town, p)
        .await
        .unwrap_or_else(|e| panic!("conformance: get_file {p}: {e}"))
}

async fn run_stdout(rt: &dyn ContainerRuntime, town: &TownId, cmd: &CommandSpec) -> String {
    rt.exec_ok(town, cmd)
        .await
        .unwrap_or_else(|e| panic!("conformance: exec {cmd:?}: {e}"))
        .stdout_str()
}

/// A port that was free on this host a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("conformance: pick a free port")
}

/// Reads output until the channel closes (the process ended), bounded by [`WAIT_BOUND`].
async fn collect_output(mut spawned: SpawnedProcess) -> Vec<OutputLine> {
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

async fn drain(output: &mut mpsc::Receiver<OutputLine>) {
    tokio::time::timeout(WAIT_BOUND, async { while output.recv().await.is_some() {} })
        .await
        .expect("conformance: output channel never closed");
}

/// Reads output until a line equal to `wanted` arrives; returns the process for more.
async fn wait_for_line(mut spawned: SpawnedProcess, wanted: &str) -> SpawnedProcess {
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

/// Polls the handle until the process is reaped, bounded by [`WAIT_BOUND`].
async fn wait_exit(handle: &dyn ProcessHandle) -> ProcessStatus {
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
fn assert_env(env_output: &str, expected: &BTreeMap<String, String>, what: &str) {
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

async fn assert_not_running(rt: &dyn ContainerRuntime, town: &TownId, when: &str) {
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
