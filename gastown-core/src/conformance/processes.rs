//! Long-running process checks: a reachable port, output lines, output nobody reads, and
//! `kill` with a grace period.

use std::time::Duration;

use super::support::{
    assert_killed, collect_output, drain, finish, free_port, fresh, path, sh, skipped, spawn_ready,
    start, wait_exit, wait_for_line, SHELL, STUBBORN,
};
use super::{Capabilities, WAIT_BOUND};
use crate::ids::TownId;
use crate::runtime::{ContainerRuntime, ContainerRuntimeExt, Stream};
use crate::status::ProcessStatus;

/// A long-running server bound to [`sdk_bind_host`](ContainerRuntime::sdk_bind_host) on a
/// port inside the container answers at [`endpoint`](ContainerRuntime::endpoint)`(port)`.
/// The port is chosen free on the caller's host (the local backend shares its network);
/// if the server dies at once (port taken meanwhile), another port is tried. Needs
/// [`Capabilities::http_server`].
pub async fn check_port_reachable(rt: &dyn ContainerRuntime, town: &TownId, caps: &Capabilities) {
    let Some(server) = caps.http_server else {
        return skipped("port", "an HTTP server (Capabilities::http_server)");
    };
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
///
/// Needs [`Capabilities::shell`].
pub async fn check_output_lines(rt: &dyn ContainerRuntime, town: &TownId, caps: &Capabilities) {
    if !caps.shell {
        return skipped("output", SHELL);
    }
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
///
/// Needs [`Capabilities::shell`].
pub async fn check_unread_output_does_not_block(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    caps: &Capabilities,
) {
    if !caps.shell {
        return skipped("unread", SHELL);
    }
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
/// Without [`Capabilities::shell`], only the plain process is checked.
pub async fn check_kill_with_grace(rt: &dyn ContainerRuntime, town: &TownId, caps: &Capabilities) {
    fresh(rt, town).await;
    start(rt, town).await;

    // A plain `sleep` dies on TERM (a long grace: a missing TERM is slow, not wrong).
    let plain = rt
        .spawn(town, &sh("exec sleep 300"))
        .await
        .expect("kill: spawn sleep");
    assert_killed(
        plain.handle.as_ref(),
        Duration::from_secs(30),
        "kill: plain",
    )
    .await;

    if !caps.shell {
        skipped("kill: trapping and ignoring TERM", SHELL);
        return finish(rt, town).await;
    }

    // Handles TERM and exits 7: the grace period is honoured, the exit code is its own.
    let script = "trap 'exit 7' TERM; echo ready; while :; do sleep 1; done";
    let mut graceful = spawn_ready(rt, town, script, "kill: spawn graceful").await;
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
    let stubborn = spawn_ready(rt, town, STUBBORN, "kill: spawn stubborn").await;
    let grace = Duration::from_millis(300);
    assert_killed(stubborn.handle.as_ref(), grace, "kill: stubborn").await;

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

/// [`spawn_labelled`](ContainerRuntime::spawn_labelled) keeps one process per agent: a
/// second labelled spawn for the same agent ends the first (which ignores SIGTERM, so
/// only SIGKILL after the grace does) before it returns, and leaves another agent's
/// process alone; [`adopt`](ContainerRuntime::adopt) never hands out a process this
/// runtime spawned itself; `stop` ends the rest. Needs [`Capabilities::records`] and
/// [`Capabilities::shell`].
pub async fn check_labelled_spawn_replaces_the_agents_process(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    caps: &Capabilities,
) {
    if !caps.records || !caps.shell {
        return skipped(
            "labelled spawns",
            "process records (Capabilities::records) and a shell",
        );
    }
    fresh(rt, town).await;
    start(rt, town).await;
    let grace = Duration::from_millis(300);
    let label = |agent: &str| crate::runtime::ProcessLabel {
        agent: agent.to_owned(),
        config_hash: "conformance".to_owned(),
        port: 1,
        lock: None,
    };
    let first = rt
        .spawn_labelled(town, &sh(STUBBORN), &label("a"), grace)
        .await
        .expect("labelled: first spawn");
    let first = wait_for_line(first, "ready").await;
    let other = rt
        .spawn_labelled(town, &sh("exec sleep 300"), &label("b"), grace)
        .await
        .expect("labelled: other agent");
    let second = rt
        .spawn_labelled(town, &sh("exec sleep 300"), &label("a"), grace)
        .await
        .expect("labelled: second spawn");
    assert!(
        !first.handle.status().await.is_alive(),
        "labelled: the agent's first process ended before the second started"
    );
    assert!(
        other.handle.status().await.is_alive(),
        "labelled: other agent"
    );
    assert!(second.handle.status().await.is_alive(), "labelled: second");
    assert!(
        rt.adopt(town, "a")
            .await
            .expect("labelled: adopt")
            .is_none(),
        "labelled: a process of this runtime is not up for adoption"
    );
    rt.stop(town, grace).await.expect("labelled: stop");
    assert!(!wait_exit(other.handle.as_ref()).await.is_alive());
    assert!(!wait_exit(second.handle.as_ref()).await.is_alive());
    finish(rt, town).await;
}
