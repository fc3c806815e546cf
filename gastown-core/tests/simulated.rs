//! The simulated runtime (a test double, `gastown_core::simulated`): every scripted
//! duration is charged exactly in virtual time, independent operations overlap, kills end
//! processes, and scripted failures are typed. Its SDK servers are in `simulated_sdk.rs`,
//! the conformance suite in `simulated_conformance.rs`.
//!
//! Every test runs under `start_paused`, so virtual time is exact: assertions compare
//! durations for equality, and no test depends on the machine's speed.

use std::time::Duration;

use gastown_core::simulated::{
    SdkOp, SimEventKind, SimScript, SimulatedError, SimulatedRuntime, TOKEN_REFRESH_PATH,
};
use gastown_core::{
    AgentId, AgentLayout, CommandSpec, ContainerOptions, ContainerPath, ContainerRuntime,
    ContainerRuntimeExt, ContainerStatus, Error, ModelRef, ProcessStatus, Secret,
};
use tokio::time::Instant;

mod common;

use common::*;

#[tokio::test(start_paused = true)]
async fn every_scripted_duration_is_charged_exactly() {
    let s = distinct_script();
    let t = town("charges");
    let rt = SimulatedRuntime::new(s.clone());
    let opts = ContainerOptions::default();

    let (info, took) = timed(rt.start(&t, &opts)).await;
    assert!(info.unwrap().created);
    assert_eq!(took, s.container_create, "create");
    let (info, took) = timed(rt.start(&t, &opts)).await;
    assert!(!info.unwrap().created);
    assert_eq!(took, s.container_adopt, "adopt");

    let db = path("/agents/mayor/data/kilo/kilo.db");
    let (_, took) = timed(rt.put_file(&t, &db, b"x")).await;
    assert_eq!(took, s.file_write, "file_write");
    let token = path(TOKEN_REFRESH_PATH);
    let (_, took) = timed(rt.put_file(&t, &token, b"tok")).await;
    assert_eq!(took, s.token_refresh, "token refresh");
    let (_, took) = timed(rt.get_file(&t, &db)).await;
    assert_eq!(took, s.file_read, "file_read");
    let (exists, took) = timed(rt.file_exists(&t, &path("/nope"))).await;
    assert!(!exists.unwrap());
    assert_eq!(took, s.file_read, "file_read of a missing file");
    let ws = path("/workspace/mayor");
    let (_, took) = timed(rt.create_dir_all(&t, &ws)).await;
    assert_eq!(took, s.mkdir, "mkdir");

    let git = |cwd: &ContainerPath| CommandSpec::new("git").cwd(cwd.clone());
    let rigs = path("/rigs");
    let clone = path("/rigs/r1.git");
    let wt = path("/workspace/mayor/browse/r1");
    let steps: Vec<(CommandSpec, Duration, &str)> = vec![
        (git(&ws).args(["init", "-q"]), s.git_init, "init"),
        (
            git(&ws).args(["commit", "-q", "--allow-empty", "-m", "w"]),
            s.git_commit,
            "commit",
        ),
        (
            git(&rigs)
                .args(["clone", "-q", "--bare", "https://example.com/r1.git"])
                .arg(&clone),
            s.git_clone,
            "clone",
        ),
        (
            git(&clone).args(["fetch", "-q", "origin"]),
            s.git_fetch,
            "fetch",
        ),
        (
            git(&clone)
                .args(["worktree", "add", "-q", "--detach"])
                .arg(&wt)
                .arg("main"),
            s.git_worktree,
            "worktree",
        ),
        (
            git(&wt).args(["checkout", "-q", "--detach", "main"]),
            s.git_checkout,
            "checkout",
        ),
        (git(&ws).args(["status"]), s.git_other, "other"),
    ];
    for (cmd, expected, name) in steps {
        let (out, took) = timed(rt.exec_ok(&t, &cmd)).await;
        out.unwrap_or_else(|e| panic!("git {name}: {e}"));
        assert_eq!(took, expected, "git {name}");
    }
    // The marker files the actors look for.
    for marker in [
        "/workspace/mayor/.git/HEAD",
        "/rigs/r1.git/HEAD",
        "/workspace/mayor/browse/r1/.git",
    ] {
        assert!(rt.peek_file(&t, &path(marker)).is_some(), "{marker}");
    }

    // The SDK server: spawn is instant, the line comes after sdk_boot.
    let pw = Secret::random();
    let (spawned, took) = timed(rt.spawn(&t, &kilo_command(&t, "mayor", &pw))).await;
    let mut spawned = spawned.unwrap();
    assert_eq!(took, Duration::ZERO, "spawn");
    assert_eq!(spawned.handle.status().await, ProcessStatus::Starting);
    let (port, took) = timed(listening_port(&mut spawned)).await;
    assert_eq!(took, s.sdk_boot, "sdk_boot");
    assert_eq!(spawned.handle.status().await, ProcessStatus::Running);

    let c = client(&rt, &t, port, &pw).await;
    let (h, took) = timed(c.health()).await;
    assert!(h.unwrap().healthy);
    assert_eq!(took, s.sdk_health, "health");
    let (_, took) = timed(c.wait_healthy(ms(60_000), ms(25))).await;
    assert_eq!(took, s.sdk_health, "wait_healthy on a listening server");
    let (list, took) = timed(c.list_sessions()).await;
    assert!(list.unwrap().is_empty());
    assert_eq!(took, s.sdk_list_sessions, "list");
    let (created, took) = timed(c.create_session("mayor")).await;
    let session = created.unwrap();
    assert_eq!(took, s.sdk_create_session, "create");
    let model = ModelRef::parse("anthropic/claude-opus-4").unwrap();
    let (msg, took) = timed(c.send_no_reply(&session.id, &model, "model changed")).await;
    assert!(msg.unwrap().starts_with("msg_sim_"));
    assert_eq!(took, s.sdk_send_message, "send");

    let (status, took) = timed(spawned.handle.kill(ms(10_000))).await;
    assert_eq!(status.unwrap(), ProcessStatus::Exited(None));
    assert_eq!(took, s.process_kill, "kill");
    let (_, took) = timed(rt.stop(&t, ms(10_000))).await;
    assert_eq!(took, s.container_stop, "stop");

    // The log agrees with what was measured, event by event.
    let log = rt.log();
    let find = |pred: &dyn Fn(&SimEventKind) -> bool| {
        log.iter()
            .find(|e| pred(&e.kind))
            .unwrap_or_else(|| panic!("no such event in {log:#?}"))
            .clone()
    };
    let ready = find(&|k| matches!(k, SimEventKind::SdkReady { .. }));
    assert_eq!(ready.duration(), s.sdk_boot);
    assert_eq!(ready.agent(), Some("mayor"));
    let create = find(&|k| {
        matches!(
            k,
            SimEventKind::SdkCall {
                op: SdkOp::CreateSession,
                ..
            }
        )
    });
    assert_eq!(create.duration(), s.sdk_create_session);
    assert!(
        ready.end <= create.start,
        "ready before the session is created"
    );
    let total: Duration = log.iter().map(|e| e.duration()).sum();
    assert_eq!(
        total,
        rt.elapsed(),
        "nothing overlapped, nothing was missed"
    );

    assert_eq!(rt.container_creates(&t), 1);
    assert_eq!(rt.writes_to(TOKEN_REFRESH_PATH), 1);
    assert_eq!(rt.execs_of("git", None), 7);
    assert_eq!(rt.execs_of("git", Some("clone")), 1);
    assert_eq!(rt.execs_of("mkdir", None), 1);
    assert_eq!(rt.spawns_of("kilo"), 1);
    assert_eq!(rt.sdk_calls(SdkOp::Health), 2);
}

#[tokio::test(start_paused = true)]
async fn critical_path_sequence_takes_exactly_the_floor() {
    let s = SimScript::default();
    let t = town("floor");
    let rt = SimulatedRuntime::new(s.clone());
    let start = Instant::now();
    rt.start(&t, &ContainerOptions::default()).await.unwrap();
    let layout = AgentLayout::new(AgentId::mayor());
    // The hydrate restore (an empty file is an empty SQLite database).
    rt.put_file(&t, &layout.kilo_db(), &[]).await.unwrap();
    let pw = Secret::random();
    let mut spawned = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    let port = listening_port(&mut spawned).await;
    let c = client(&rt, &t, port, &pw).await;
    c.wait_healthy(ms(60_000), ms(25)).await.unwrap();
    assert!(c.list_sessions().await.unwrap().is_empty());
    c.create_session("mayor").await.unwrap();
    assert_eq!(start.elapsed(), s.critical_path());
}

#[tokio::test(start_paused = true)]
async fn independent_operations_overlap() {
    let s = SimScript::default();
    let t = town("overlap");
    let rt = started(s.clone(), &t).await;
    let (pa, pb) = (Secret::random(), Secret::random());

    // Two SDK servers boot concurrently: both are ready at sdk_boot, not 2×.
    let start = Instant::now();
    let (cmd_a, cmd_b) = (
        kilo_command(&t, "mayor", &pa),
        kilo_command(&t, "polecat-1", &pb),
    );
    let (a, b) = tokio::join!(rt.spawn(&t, &cmd_a), rt.spawn(&t, &cmd_b));
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    let (port_a, port_b) = tokio::join!(listening_port(&mut a), listening_port(&mut b));
    assert_eq!(start.elapsed(), s.sdk_boot);
    assert_ne!(port_a, port_b, "each server has its own port");

    // Two clones of different rigs run side by side too.
    let start = Instant::now();
    let clone = |rig: &str| {
        CommandSpec::new("git")
            .args([
                "clone",
                "-q",
                "--bare",
                &format!("https://example.com/{rig}"),
            ])
            .arg(path(&format!("/rigs/{rig}.git")))
            .cwd(path("/rigs"))
    };
    let (r1, r2) = (clone("r1"), clone("r2"));
    let (x, y) = tokio::join!(rt.exec_ok(&t, &r1), rt.exec_ok(&t, &r2));
    x.unwrap();
    y.unwrap();
    assert_eq!(start.elapsed(), s.git_clone);

    // And calls on two servers.
    let (ca, cb) = (
        client(&rt, &t, port_a, &pa).await,
        client(&rt, &t, port_b, &pb).await,
    );
    let start = Instant::now();
    let (x, y) = tokio::join!(ca.create_session("a"), cb.create_session("b"));
    assert_ne!(x.unwrap().id, y.unwrap().id);
    assert_eq!(start.elapsed(), s.sdk_create_session);
    // Per data dir: each server sees only its own session.
    assert_eq!(ca.list_sessions().await.unwrap().len(), 1);
    assert_eq!(cb.list_sessions().await.unwrap()[0].title, "b");
}

#[tokio::test(start_paused = true)]
async fn concurrent_starts_wait_for_the_one_creation() {
    let s = SimScript::default();
    let t = town("join");
    let rt = SimulatedRuntime::new(s.clone());
    let opts = ContainerOptions::default();
    let start = Instant::now();
    let (a, b) = tokio::join!(rt.start(&t, &opts), rt.start(&t, &opts));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.created && !b.created);
    assert_eq!(a.id, b.id);
    assert_eq!(start.elapsed(), s.container_create + s.container_adopt);
    assert_eq!(rt.container_creates(&t), 1);
    // Another town is not held up by this one's lifecycle.
    let other = town("join-other");
    let start = Instant::now();
    let (x, y) = tokio::join!(rt.start(&other, &opts), rt.stop(&t, ms(1000)));
    x.unwrap();
    y.unwrap();
    assert_eq!(start.elapsed(), s.container_create.max(s.container_stop));
}

#[tokio::test(start_paused = true)]
async fn kill_container_ends_every_process_and_keeps_the_files() {
    let t = town("crash");
    let rt = started(SimScript::default(), &t).await;
    let pw = Secret::random();
    let mut kilo = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    let port = listening_port(&mut kilo).await;
    let c = client(&rt, &t, port, &pw).await;
    c.create_session("mayor").await.unwrap();
    let mut sleeper = rt
        .spawn(&t, &CommandSpec::new("sh").args(["-c", "exec sleep 300"]))
        .await
        .unwrap();
    assert_eq!(sleeper.handle.status().await, ProcessStatus::Running);
    rt.put_file(&t, &path("/keep.txt"), b"kept").await.unwrap();
    assert_eq!(rt.live_processes(&t).len(), 2);

    let before = rt.elapsed();
    assert!(rt.kill_container(&t));
    assert_eq!(rt.elapsed(), before, "a kill takes no time");
    assert_eq!(rt.status(&t).await.unwrap(), ContainerStatus::Exited);
    for h in [&kilo.handle, &sleeper.handle] {
        assert_eq!(h.status().await, ProcessStatus::Exited(None));
    }
    assert!(kilo.output.recv().await.is_none());
    assert!(sleeper.output.recv().await.is_none());
    assert!(rt.live_processes(&t).is_empty());
    assert!(matches!(
        c.health().await,
        Err(Error::Sdk { status: None, .. })
    ));
    for r in [
        rt.exec(&t, &CommandSpec::new("true")).await.map(|_| ()),
        rt.get_file(&t, &path("/keep.txt")).await.map(|_| ()),
        rt.put_file(&t, &path("/x"), b"x").await,
        rt.spawn(&t, &CommandSpec::new("sh")).await.map(|_| ()),
    ] {
        assert!(matches!(r, Err(Error::ContainerNotRunning { .. })), "{r:?}");
    }
    assert!(!rt.kill_container(&t), "already down");

    // A restart is a create; the files (and the sessions in kilo.db) are still there.
    let info = rt.start(&t, &ContainerOptions::default()).await.unwrap();
    assert!(info.created);
    assert_eq!(rt.container_creates(&t), 2);
    assert_eq!(rt.get_file(&t, &path("/keep.txt")).await.unwrap(), b"kept");
    assert_eq!(rt.sessions_in(&t, &data_dir("mayor")).unwrap().len(), 1);
    // A kill of an already dead process is harmless and takes no time.
    let (st, took) = timed(kilo.handle.kill(ms(1000))).await;
    assert_eq!(st.unwrap(), ProcessStatus::Exited(None));
    assert_eq!(took, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_kill_during_boot_closes_the_output_without_a_line() {
    let s = SimScript::default();
    let t = town("early-kill");
    let rt = started(s.clone(), &t).await;
    let mut spawned = rt
        .spawn(&t, &kilo_command(&t, "mayor", &Secret::random()))
        .await
        .unwrap();
    tokio::time::sleep(ms(1000)).await;
    let start = Instant::now();
    let status = spawned.handle.kill(ms(5000)).await.unwrap();
    assert_eq!(status, ProcessStatus::Exited(None));
    assert!(
        spawned.output.recv().await.is_none(),
        "no listening line, output closed"
    );
    assert_eq!(start.elapsed(), s.process_kill);
    assert!(!rt
        .log()
        .iter()
        .any(|e| matches!(e.kind, SimEventKind::SdkReady { .. })));
    // The aborted boot leaves no timer behind: a long sleep ends exactly when asked.
    let start = Instant::now();
    tokio::time::sleep(ms(10_000)).await;
    assert_eq!(start.elapsed(), ms(10_000));
    assert!(rt
        .peek_file(&t, &AgentLayout::new(AgentId::mayor()).kilo_db())
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn scripted_failures_are_typed_and_lose_nothing() {
    let t = town("failures");
    let s = SimScript::default()
        .with_failing_program("kilo")
        .with_failing_git("clone");
    let rt = started(s.clone(), &t).await;
    rt.put_file(&t, &path("/keep"), b"k").await.unwrap();

    match rt
        .spawn(&t, &kilo_command(&t, "mayor", &Secret::random()))
        .await
    {
        Err(Error::ProgramNotFound { program, hint }) => {
            assert_eq!(program, "kilo");
            assert!(hint.contains("fail_programs"), "{hint}");
        }
        other => panic!("expected ProgramNotFound, got {other:?}"),
    }
    for program in ["no-such-program", "/usr/bin/no-such-program"] {
        let r = rt.exec(&t, &CommandSpec::new(program)).await;
        assert!(matches!(r, Err(Error::ProgramNotFound { .. })), "{r:?}");
        let r = rt.spawn(&t, &CommandSpec::new(program)).await;
        assert!(matches!(r, Err(Error::ProgramNotFound { .. })), "{r:?}");
    }
    // An installed program that can only be spawned.
    let r = rt.exec(&t, &CommandSpec::new("sleep").arg("1")).await;
    let err = r.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Generic {
                runtime: "simulated",
                ..
            }
        ) && matches!(
            err.backend_error::<SimulatedError>(),
            Some(SimulatedError::CannotRun { .. })
        ),
        "{err:?}"
    );

    // A failing git subcommand is charged, exits 128, and leaves no marker.
    let clone = CommandSpec::new("git")
        .args(["clone", "-q", "--bare", "https://example.com/r"])
        .arg(path("/rigs/r.git"))
        .cwd(path("/rigs"));
    let (out, took) = timed(rt.exec(&t, &clone)).await;
    let out = out.unwrap();
    assert_eq!(out.exit_code, 128);
    assert!(out.stderr_tail(200).contains("fail_git"));
    assert_eq!(took, s.git_clone);
    assert!(matches!(
        rt.exec_ok(&t, &clone).await,
        Err(Error::CommandFailed { exit_code: 128, .. })
    ));
    assert!(rt.peek_file(&t, &path("/rigs/r.git/HEAD")).is_none());
    // git that needs a repository fails without one, as real git does.
    let commit = CommandSpec::new("git")
        .args(["commit", "--allow-empty", "-m", "x"])
        .cwd(path("/workspace/nobody"));
    assert_eq!(rt.exec(&t, &commit).await.unwrap().exit_code, 128);

    // The failures are logged as such; the container and its files are intact.
    assert_eq!(rt.execs_of("git", Some("clone")), 2);
    assert!(rt
        .log()
        .iter()
        .filter(|e| matches!(e.kind, SimEventKind::Exec { .. }))
        .all(|e| !e.ok));
    assert_eq!(rt.status(&t).await.unwrap(), ContainerStatus::Running);
    assert_eq!(rt.get_file(&t, &path("/keep")).await.unwrap(), b"k");

    // Lifting the failure mid-test works.
    rt.update_script(|s| s.fail_git.clear());
    assert!(rt.exec(&t, &clone).await.unwrap().success());
    assert!(rt.peek_file(&t, &path("/rigs/r.git/HEAD")).is_some());
}

/// Answers the question the actors need answered: `spawn_blocking` work (their snapshot
/// I/O) does NOT let a paused clock auto-advance. A 60 s timeout around a blocking task
/// that sleeps 50 ms of real time does not fire, and no virtual time passes.
#[tokio::test(start_paused = true)]
async fn spawn_blocking_does_not_let_paused_time_auto_advance() {
    let start = Instant::now();
    let blocking = tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)));
    let outcome = tokio::time::timeout(Duration::from_secs(60), blocking).await;
    assert!(
        outcome.is_ok(),
        "the 60 s timeout fired: paused time auto-advanced while spawn_blocking ran"
    );
    outcome.unwrap().unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "no virtual time passed");
}

/// The control for the test above: work on a plain OS thread (not tokio's blocking pool)
/// is invisible to the paused clock, which auto-advances past it — the 60 s timeout fires
/// at once in virtual time. So only `spawn_blocking` (and what is built on it, like
/// `tokio::fs`) is safe to mix with paused time.
#[tokio::test(start_paused = true)]
async fn a_plain_thread_does_let_paused_time_auto_advance() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let worker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let _ = tx.send(());
    });
    let start = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), rx).await;
    assert!(
        outcome.is_err(),
        "expected the paused clock to jump to the timeout"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    worker.join().unwrap();
}
