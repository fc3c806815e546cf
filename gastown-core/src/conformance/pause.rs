//! Pause and resume checks (the trait's *Pause and resume*): the lifecycle and status, a
//! frozen process making no progress, a server answering again after the resume (a request
//! sent while frozen included), and stop and remove of a paused container.
//!
//! Every check needs [`Capabilities::pause`]; without it, the check only makes sure the
//! runtime says it cannot pause ([`can_pause`](ContainerRuntime::can_pause) false, `pause`
//! and `resume` fail with [`Error::Unsupported`]) and says on stderr that it skipped.

use std::time::Duration;

use super::support::{
    finish, free_port, fresh, path, sh, skipped, spawn_stubborn, start, status, wait_exit,
    wait_for_line, SHELL,
};
use super::{Capabilities, WAIT_BOUND};
use crate::error::Error;
use crate::ids::TownId;
use crate::runtime::{ContainerRuntime, ContainerRuntimeExt};
use crate::status::ContainerStatus;

/// What a check that needs [`Capabilities::pause`] names when it skips.
const PAUSE: &str = "pause and resume (Capabilities::pause)";

/// How long the frozen-process check keeps the container paused: 2 s, 40 ticks of its
/// 50 ms loop had it kept running.
const FROZEN_FOR: Duration = Duration::from_secs(2);

/// True when the check may run; otherwise asserts the runtime refuses pause and resume
/// as [`Error::Unsupported`] (when it says it cannot pause) and reports the skip.
async fn pause_capable(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    caps: &Capabilities,
    what: &str,
) -> bool {
    if caps.pause {
        assert!(
            rt.can_pause(),
            "{what}: Capabilities::pause is set but the runtime's can_pause() is false"
        );
        return true;
    }
    if !rt.can_pause() {
        for (op, r) in [
            ("pause", rt.pause(town).await),
            ("resume", rt.resume(town).await),
        ] {
            assert!(
                matches!(r, Err(Error::Unsupported { .. })),
                "{what}: {op} on a runtime that cannot pause must be Unsupported, got {r:?}"
            );
        }
    }
    skipped(what, PAUSE);
    false
}

async fn pause(rt: &dyn ContainerRuntime, town: &TownId, what: &str) {
    rt.pause(town)
        .await
        .unwrap_or_else(|e| panic!("{what}: pause: {e}"));
}

async fn resume(rt: &dyn ContainerRuntime, town: &TownId, what: &str) {
    rt.resume(town)
        .await
        .unwrap_or_else(|e| panic!("{what}: resume: {e}"));
}

/// Pause lifecycle: pause and resume of an absent or stopped container are
/// [`Error::ContainerNotRunning`]; resuming a running one and pausing a paused one are
/// no-ops; `status` says `Paused` while paused; `exec`, `spawn`, `put_file`, `get_file`
/// and `endpoint` fail with [`Error::ContainerPaused`] and a frozen process is still
/// alive; after `resume` everything works again; `start` of a paused container resumes
/// and adopts it.
pub async fn check_pause_lifecycle(rt: &dyn ContainerRuntime, town: &TownId, caps: &Capabilities) {
    if !pause_capable(rt, town, caps, "pause lifecycle").await {
        return;
    }
    fresh(rt, town).await;
    let not_running = |r: Result<(), Error>, op: &str| {
        assert!(
            matches!(r, Err(Error::ContainerNotRunning { .. })),
            "pause lifecycle: {op} must be ContainerNotRunning, got {r:?}"
        );
    };
    not_running(rt.pause(town).await, "pause of an absent container");
    not_running(rt.resume(town).await, "resume of an absent container");

    let first = start(rt, town).await;
    resume(rt, town, "pause lifecycle (resume of a running container)").await;
    assert_eq!(status(rt, town).await, ContainerStatus::Running);
    let keep = path("/agents/pause/keep.txt");
    rt.put_file(town, &keep, b"before pause")
        .await
        .expect("pause lifecycle: put_file");
    let sleeper = rt
        .spawn(town, &sh("exec sleep 300"))
        .await
        .expect("pause lifecycle: spawn");

    pause(rt, town, "pause lifecycle").await;
    assert_eq!(status(rt, town).await, ContainerStatus::Paused);
    pause(rt, town, "pause lifecycle (pause of a paused container)").await;
    assert_eq!(status(rt, town).await, ContainerStatus::Paused);
    let paused = |r: Result<(), Error>, op: &str| {
        assert!(
            matches!(r, Err(Error::ContainerPaused { .. })),
            "pause lifecycle: {op} while paused must be ContainerPaused, got {r:?}"
        );
    };
    paused(rt.exec(town, &sh("true")).await.map(|_| ()), "exec");
    paused(rt.spawn(town, &sh("true")).await.map(|_| ()), "spawn");
    paused(rt.put_file(town, &keep, b"x").await, "put_file");
    paused(rt.get_file(town, &keep).await.map(|_| ()), "get_file");
    paused(rt.endpoint(town, 8080).await.map(|_| ()), "endpoint");
    assert!(
        sleeper.handle.status().await.is_alive(),
        "pause lifecycle: a frozen process must still be alive"
    );

    resume(rt, town, "pause lifecycle").await;
    assert_eq!(status(rt, town).await, ContainerStatus::Running);
    resume(rt, town, "pause lifecycle (second resume)").await;
    assert_eq!(status(rt, town).await, ContainerStatus::Running);
    assert!(
        sleeper.handle.status().await.is_alive(),
        "pause lifecycle: the process must survive pause and resume"
    );
    assert_eq!(
        rt.get_file(town, &keep)
            .await
            .expect("pause lifecycle: get_file after resume"),
        b"before pause"
    );
    rt.exec_ok(town, &super::support::true_cmd())
        .await
        .expect("pause lifecycle: exec after resume");

    pause(rt, town, "pause lifecycle (before start)").await;
    let again = start(rt, town).await;
    assert!(
        !again.created && again.id == first.id,
        "pause lifecycle: start of a paused container must adopt it, got {again:?}"
    );
    assert_eq!(
        status(rt, town).await,
        ContainerStatus::Running,
        "pause lifecycle: start must resume a paused container"
    );
    assert!(sleeper.handle.status().await.is_alive());

    rt.stop(town, Duration::from_secs(5))
        .await
        .expect("pause lifecycle: stop");
    not_running(rt.pause(town).await, "pause of a stopped container");
    not_running(rt.resume(town).await, "resume of a stopped container");
    finish(rt, town).await;
}

/// A process of a paused container makes no progress and continues after the resume,
/// where it was: a shell loop that bumps a counter file every 50 ms moves by fewer than
/// 20 ticks (those around the pause and resume calls; a running loop makes 40) across a
/// 2 s pause, then counts on from there. A bound on progress, not on time: a slow host
/// only makes the loop tick less.
///
/// Needs [`Capabilities::shell`].
pub async fn check_paused_process_makes_no_progress(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    caps: &Capabilities,
) {
    if !pause_capable(rt, town, caps, "frozen process").await {
        return;
    }
    if !caps.shell {
        return skipped("frozen process", SHELL);
    }
    fresh(rt, town).await;
    start(rt, town).await;
    let counter = path("/pause/counter");
    rt.create_dir_all(town, &counter.parent().unwrap())
        .await
        .expect("frozen process: mkdir");
    let script = "i=0; echo ready; while :; do i=$((i+1)); echo $i > \"$1.tmp\"; \
                  mv \"$1.tmp\" \"$1\"; sleep 0.05; done";
    let looping = rt
        .spawn(town, &sh(script).arg("sh").arg(&counter))
        .await
        .expect("frozen process: spawn");
    let looping = wait_for_line(looping, "ready").await;
    let read = |what: &'static str| {
        let counter = counter.clone();
        async move {
            let deadline = tokio::time::Instant::now() + WAIT_BOUND;
            loop {
                if let Ok(bytes) = rt.get_file(town, &counter).await {
                    if let Ok(n) = String::from_utf8_lossy(&bytes).trim().parse::<u64>() {
                        return n;
                    }
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "frozen process: no counter {what}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let first = read("before the pause").await;
    // Counting, before the pause: the loop runs.
    let deadline = tokio::time::Instant::now() + WAIT_BOUND;
    let mut before = first;
    while before < first + 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "frozen process: the loop never counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        before = read("while running").await;
    }

    pause(rt, town, "frozen process").await;
    tokio::time::sleep(FROZEN_FOR).await;
    resume(rt, town, "frozen process").await;
    let after = read("after the resume").await;
    let running_ticks = (FROZEN_FOR.as_millis() / 50) as u64;
    assert!(
        after >= before && after - before < running_ticks / 2,
        "frozen process: the counter went {before} -> {after} across a {} ms pause \
         (a running loop makes {running_ticks} ticks)",
        FROZEN_FOR.as_millis()
    );
    let deadline = tokio::time::Instant::now() + WAIT_BOUND;
    while read("counting on").await < after + 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "frozen process: the loop did not continue after the resume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        looping.handle.status().await.is_alive(),
        "frozen process: the same process continues"
    );
    finish(rt, town).await;
}

/// An HTTP server spawned before the pause gives no answer while paused — a request sent
/// then stays open (its connection is kept) — and after the resume that request gets its
/// answer and new requests are served at the same endpoint.
///
/// Needs [`Capabilities::http_server`].
pub async fn check_paused_server_answers_after_resume(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    caps: &Capabilities,
) {
    if !pause_capable(rt, town, caps, "paused server").await {
        return;
    }
    let Some(server) = caps.http_server else {
        return skipped(
            "paused server",
            "an HTTP server (Capabilities::http_server)",
        );
    };
    fresh(rt, town).await;
    start(rt, town).await;
    let dir = path("/srv/www");
    let body = format!("frozen and back in {town}\n");
    rt.put_file(town, &dir.join("index.html").unwrap(), body.as_bytes())
        .await
        .expect("paused server: put index.html");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT_BOUND)
        .build()
        .expect("paused server: http client");

    // The server must answer first (a port taken meanwhile: try another).
    let mut up = None;
    for _ in 0..3 {
        let port = free_port();
        let spawned = rt
            .spawn(town, &server(rt.sdk_bind_host(), port, &dir))
            .await
            .expect("paused server: spawn");
        let url = format!(
            "{}/index.html",
            rt.endpoint(town, port)
                .await
                .expect("paused server: endpoint")
        );
        let deadline = tokio::time::Instant::now() + WAIT_BOUND;
        let mut answered = false;
        while !answered
            && tokio::time::Instant::now() < deadline
            && spawned.handle.status().await.is_alive()
        {
            let quick = client.get(&url).timeout(Duration::from_secs(5)).send();
            answered = quick.await.is_ok_and(|r| r.status().is_success());
            if !answered {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if answered {
            up = Some((spawned, url));
            break;
        }
        let _ = spawned.handle.kill(Duration::from_secs(5)).await;
    }
    let (spawned, url) = up.expect("paused server: the server never answered");

    pause(rt, town, "paused server").await;
    let pending = tokio::spawn(client.get(&url).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pending.is_finished(),
        "paused server: a frozen server answered (or refused) a request"
    );
    resume(rt, town, "paused server").await;
    let resp = pending
        .await
        .expect("paused server: request task")
        .expect("paused server: the request sent while frozen must be answered after resume");
    assert!(resp.status().is_success(), "paused server: {resp:?}");
    assert_eq!(resp.text().await.expect("paused server: body"), body);
    let again = client
        .get(&url)
        .send()
        .await
        .expect("paused server: a new request after resume");
    assert_eq!(again.text().await.expect("paused server: body"), body);
    let end = spawned
        .handle
        .kill(Duration::from_secs(5))
        .await
        .expect("paused server: kill");
    assert!(!end.is_alive());
    finish(rt, town).await;
}

/// `stop` of a paused container ends every process (one that ignores SIGTERM too, with
/// [`Capabilities::shell`]) and leaves it `Exited`; `remove` of a paused container ends
/// its processes and leaves it `Absent`.
pub async fn check_stop_and_remove_paused(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    caps: &Capabilities,
) {
    if !pause_capable(rt, town, caps, "stop paused").await {
        return;
    }
    fresh(rt, town).await;
    start(rt, town).await;
    let mut handles = vec![
        rt.spawn(town, &sh("exec sleep 300"))
            .await
            .expect("stop paused: spawn")
            .handle,
    ];
    let _stubborn = spawn_stubborn(rt, town, caps, "stop paused", &mut handles).await;
    pause(rt, town, "stop paused").await;
    rt.stop(town, Duration::from_millis(500))
        .await
        .expect("stop paused: stop");
    for h in &handles {
        let end = wait_exit(h.as_ref()).await;
        assert!(!end.is_alive(), "stop paused: {h:?} is {end:?}");
    }
    assert_eq!(status(rt, town).await, ContainerStatus::Exited);

    start(rt, town).await;
    let sleeper = rt
        .spawn(town, &sh("exec sleep 300"))
        .await
        .expect("remove paused: spawn");
    pause(rt, town, "remove paused").await;
    rt.remove(town).await.expect("remove paused: remove");
    assert_eq!(status(rt, town).await, ContainerStatus::Absent);
    let end = wait_exit(sleeper.handle.as_ref()).await;
    assert!(!end.is_alive(), "remove paused: the process is {end:?}");
    finish(rt, town).await;
}
