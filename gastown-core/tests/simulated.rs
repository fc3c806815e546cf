//! The simulated runtime and SDK servers (test doubles, `gastown_core::simulated`): every
//! scripted duration is charged exactly in virtual time, independent operations overlap,
//! state behaves like the real backends' (sessions persist per data dir, passwords are
//! checked, kills end processes), and the `kilo.db` it writes is a real SQLite database.
//!
//! Every test runs under `start_paused`, so virtual time is exact: assertions compare
//! durations for equality, and no test depends on the machine's speed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gastown_core::conformance;
use gastown_core::env::{build_agent_env, AgentEnvInput};
use gastown_core::sdk::{parse_listening_line, SdkApi, SdkClientOptions};
use gastown_core::simulated::{
    SdkOp, SimEventKind, SimScript, SimulatedError, SimulatedRuntime, TOKEN_REFRESH_PATH,
};
use gastown_core::snapshot::SnapshotStore;
use gastown_core::{
    AgentId, AgentLayout, CommandSpec, ContainerOptions, ContainerPath, ContainerRuntime,
    ContainerRuntimeExt, ContainerStatus, Error, ModelRef, ProcessStatus, Role, SdkLauncher,
    Secret, SpawnedProcess, Stream, TownId,
};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn town(name: &str) -> TownId {
    TownId::new(name).unwrap()
}

fn path(p: &str) -> ContainerPath {
    ContainerPath::new(p).unwrap()
}

/// A script whose durations are all different, so a wrong charge cannot hide.
fn distinct_script() -> SimScript {
    SimScript::zero()
        .with_container_create(ms(1009))
        .with_container_adopt(ms(7))
        .with_container_stop(ms(401))
        .with_file_read(ms(3))
        .with_file_write(ms(23))
        .with_mkdir(ms(5))
        .with_git_init(ms(11))
        .with_git_commit(ms(13))
        .with_git_clone(ms(3001))
        .with_git_fetch(ms(809))
        .with_git_worktree(ms(397))
        .with_git_checkout(ms(101))
        .with_git_other(ms(53))
        .with_sdk_boot(ms(4507))
        .with_sdk_health(ms(2))
        .with_sdk_list_sessions(ms(17))
        .with_sdk_create_session(ms(149))
        .with_sdk_send_message(ms(47))
        .with_process_kill(ms(89))
        .with_token_refresh(ms(251))
}

/// The SDK server command of `agent`, with the env the actors build (the one env builder).
fn kilo_command(t: &TownId, agent: &str, password: &Secret) -> CommandSpec {
    let agent = AgentId::new(agent).unwrap();
    let launcher = SdkLauncher::kilo();
    let env = build_agent_env(&AgentEnvInput {
        town: t,
        agent: &agent,
        role: Role::Mayor,
        launcher: &launcher,
        model: "anthropic/claude-sonnet-4.6",
        small_model: "anthropic/claude-haiku-4.5",
        password,
        token: &Secret::new("token"),
        credentials: &BTreeMap::new(),
    });
    CommandSpec::new("kilo")
        .args(["serve", "--port", "0", "--hostname", "127.0.0.1"])
        .envs(env.vars)
        .cwd(AgentLayout::new(agent).workspace())
}

fn data_dir(agent: &str) -> ContainerPath {
    AgentLayout::new(AgentId::new(agent).unwrap()).data()
}

/// Reads the server's output until its listening line; returns the port.
async fn listening_port(spawned: &mut SpawnedProcess) -> u16 {
    loop {
        let line = spawned
            .output
            .recv()
            .await
            .expect("the server exited before listening");
        if let Some((host, port)) = parse_listening_line(&line.line) {
            assert_eq!(host, "127.0.0.1");
            assert_eq!(line.stream, Stream::Stdout);
            return port;
        }
    }
}

async fn client(rt: &SimulatedRuntime, t: &TownId, port: u16, pw: &Secret) -> Arc<dyn SdkApi> {
    let url = rt.endpoint(t, port).await.unwrap();
    rt.sdk_connector()
        .connect(url, "kilo".into(), pw.clone(), SdkClientOptions::default())
        .unwrap()
}

async fn started(script: SimScript, t: &TownId) -> Arc<SimulatedRuntime> {
    let rt = SimulatedRuntime::new(script);
    rt.start(t, &ContainerOptions::default()).await.unwrap();
    rt
}

/// Runs `op` and returns how much virtual time it took.
async fn timed<T>(op: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = op.await;
    (out, start.elapsed())
}

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
async fn sessions_persist_across_kill_and_respawn_on_the_same_data_dir() {
    let t = town("persist");
    let rt = started(SimScript::default(), &t).await;
    let pw = Secret::random();
    let mut first = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    let port = listening_port(&mut first).await;
    let c = client(&rt, &t, port, &pw).await;
    let older = c.create_session("one").await.unwrap();
    let newer = c.create_session("two").await.unwrap();
    assert!(newer.updated_ms > older.updated_ms, "updated_ms increases");
    assert!(older.id.starts_with("ses_sim_"));

    let pid = first.handle.pid().unwrap();
    assert!(rt.kill_process(pid));
    assert!(!rt.kill_process(pid), "a second kill finds it dead");
    assert_eq!(first.handle.status().await, ProcessStatus::Exited(None));
    assert!(first.output.recv().await.is_none(), "its output closed");
    match c.list_sessions().await {
        Err(Error::Sdk {
            status: None,
            timed_out: false,
            ..
        }) => {}
        other => panic!("a killed server must refuse connections, got {other:?}"),
    }
    let probe = Instant::now();
    let err = c.wait_healthy(ms(1000), ms(25)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sdk {
                timed_out: true,
                ..
            }
        ),
        "{err:?}"
    );
    // Refusals are instant; it polled every 25 ms and gave up when the next poll would
    // pass the bound, as the HTTP client does.
    assert_eq!(probe.elapsed(), ms(975), "polled up to the bound");

    let mut second = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    let port2 = listening_port(&mut second).await;
    assert_ne!(port, port2, "ports are never reused");
    let c2 = client(&rt, &t, port2, &pw).await;
    let listed = c2.list_sessions().await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [newer.id.as_str(), older.id.as_str()], "newest first");
    assert_eq!(rt.sessions_in(&t, &data_dir("mayor")).unwrap().len(), 2);

    // Another data dir has its own, empty, database.
    let mut other = rt
        .spawn(&t, &kilo_command(&t, "polecat-1", &pw))
        .await
        .unwrap();
    let port3 = listening_port(&mut other).await;
    assert!(client(&rt, &t, port3, &pw)
        .await
        .list_sessions()
        .await
        .unwrap()
        .is_empty());
    assert_eq!(rt.spawns_of("kilo"), 3);
}

#[tokio::test(start_paused = true)]
async fn wrong_password_is_401_and_changes_nothing() {
    let t = town("auth");
    let rt = started(SimScript::default(), &t).await;
    let pw = Secret::new("right-password-123");
    let mut spawned = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    let port = listening_port(&mut spawned).await;
    let good = client(&rt, &t, port, &pw).await;
    let session = good.create_session("keep").await.unwrap();

    let wrong = Secret::new("wrong-password-456");
    let bad = client(&rt, &t, port, &wrong).await;
    for result in [
        bad.list_sessions().await.map(|_| ()),
        bad.create_session("x").await.map(|_| ()),
        bad.health().await.map(|_| ()),
    ] {
        match result {
            Err(Error::Sdk {
                status: Some(401),
                ref message,
                ..
            }) => {
                assert!(!message.contains("right-password") && !message.contains("wrong-password"));
            }
            other => panic!("expected 401, got {other:?}"),
        }
    }
    // wait_healthy gives up at once on a 401: waiting cannot fix a password.
    let start = Instant::now();
    let err = bad.wait_healthy(ms(60_000), ms(25)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sdk {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(start.elapsed(), SimScript::default().sdk_health);
    // The wrong username fails the same way.
    let url = rt.endpoint(&t, port).await.unwrap();
    let other_user = rt
        .sdk_connector()
        .connect(
            url,
            "opencode".into(),
            pw.clone(),
            SdkClientOptions::default(),
        )
        .unwrap();
    assert!(matches!(
        other_user.list_sessions().await,
        Err(Error::Sdk {
            status: Some(401),
            ..
        })
    ));
    // Nothing was created or lost; Debug output hides the password.
    let listed = good.list_sessions().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, session.id);
    assert!(!format!("{bad:?}").contains("wrong-password"));
}

#[tokio::test(start_paused = true)]
async fn connect_rejects_bad_arguments() {
    let rt = SimulatedRuntime::new(SimScript::zero());
    let conn = rt.sdk_connector();
    let pw = Secret::new("pw");
    let opts = SdkClientOptions::default();
    for (url, user) in [
        ("not a url", "kilo"),
        ("https://127.0.0.1:1", "kilo"),
        ("http://u:p@127.0.0.1:1", "kilo"),
        ("http://127.0.0.1:1", ""),
        ("http://127.0.0.1:1", "a:b"),
    ] {
        let err = conn
            .connect(url.into(), user.into(), pw.clone(), opts.clone())
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Sdk {
                    operation: "new",
                    ..
                }
            ),
            "{url} {user}: {err:?}"
        );
    }
    let zero = SdkClientOptions {
        timeout: Duration::ZERO,
    };
    assert!(conn
        .connect("http://127.0.0.1:1".into(), "kilo".into(), pw.clone(), zero)
        .is_err());
    // A port nobody ever listened on: refused at once, no time charged, nothing logged.
    let c = conn
        .connect("http://127.0.0.1:1/".into(), "kilo".into(), pw, opts)
        .unwrap();
    assert_eq!(c.base_url(), "http://127.0.0.1:1");
    let (r, took) = timed(c.health()).await;
    assert!(matches!(r, Err(Error::Sdk { status: None, .. })));
    assert_eq!(took, Duration::ZERO);
    assert!(rt.log().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_call_slower_than_the_client_timeout_times_out() {
    let t = town("timeout");
    let rt = started(SimScript::default().with_sdk_create_session(ms(10_000)), &t).await;
    let pw = Secret::random();
    let mut spawned = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    let port = listening_port(&mut spawned).await;
    let url = rt.endpoint(&t, port).await.unwrap();
    let c = rt
        .sdk_connector()
        .connect(
            url,
            "kilo".into(),
            pw,
            SdkClientOptions { timeout: ms(5000) },
        )
        .unwrap();
    let (r, took) = timed(c.create_session("slow")).await;
    assert!(
        matches!(
            r,
            Err(Error::Sdk {
                timed_out: true,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(took, ms(5000));
}

#[tokio::test(start_paused = true)]
async fn send_no_reply_records_the_model_and_rejects_unknown_sessions() {
    let t = town("messages");
    let rt = started(SimScript::default(), &t).await;
    let pw = Secret::random();
    let mut spawned = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    let port = listening_port(&mut spawned).await;
    let c = client(&rt, &t, port, &pw).await;
    let session = c.create_session("mayor").await.unwrap();
    let model = ModelRef::parse("anthropic/claude-opus-4").unwrap();
    c.send_no_reply(&session.id, &model, "now on opus")
        .await
        .unwrap();
    let msgs = rt.messages_in(&t, &data_dir("mayor")).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        (msgs[0].model_id.as_str(), msgs[0].text.as_str()),
        ("claude-opus-4", "now on opus")
    );
    let listed = c.list_sessions().await.unwrap();
    assert!(
        listed[0].updated_ms > session.updated_ms,
        "a message bumps updated_ms"
    );

    let err = c.send_no_reply("ses_nope", &model, "x").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sdk {
                status: Some(404),
                ..
            }
        ),
        "{err:?}"
    );
    let err = c.send_no_reply("../x", &model, "x").await.unwrap_err();
    assert!(matches!(
        err,
        Error::Sdk {
            operation: "send_no_reply",
            status: None,
            ..
        }
    ));
    assert_eq!(
        rt.messages_in(&t, &data_dir("mayor")).unwrap().len(),
        1,
        "nothing else stored"
    );
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
async fn kilo_db_is_a_real_sqlite_database_and_survives_a_snapshot_round_trip() {
    let t = town("drain");
    let rt = started(SimScript::default(), &t).await;
    let pw = Secret::random();
    let mut spawned = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    let port = listening_port(&mut spawned).await;
    let c = client(&rt, &t, port, &pw).await;
    let session = c.create_session("mayor").await.unwrap();
    spawned.handle.kill(ms(5000)).await.unwrap();

    // Read it out as the drain does, and open it with SQLite.
    let db_path = AgentLayout::new(AgentId::mayor()).kilo_db();
    let bytes = rt.get_file(&t, &db_path).await.unwrap();
    assert!(!rt
        .file_exists(&t, &path("/agents/mayor/data/kilo/kilo.db-wal"))
        .await
        .unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kilo.db");
    std::fs::write(&file, &bytes).unwrap();
    let conn = rusqlite::Connection::open(&file).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM sim_session", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);

    // Snapshot it, remove the container (the files go), restore into a fresh one.
    let store = SnapshotStore::new(dir.path().join("snapshots"));
    let mayor = AgentId::mayor();
    store.take_from_bytes(&mayor, &bytes, None).unwrap();
    rt.remove(&t).await.unwrap();
    assert_eq!(rt.status(&t).await.unwrap(), ContainerStatus::Absent);
    rt.start(&t, &ContainerOptions::default()).await.unwrap();
    assert!(
        !rt.file_exists(&t, &db_path).await.unwrap(),
        "remove deleted the files"
    );
    let restored = store.load(&mayor).unwrap().expect("a snapshot");
    rt.put_file(&t, &db_path, &restored).await.unwrap();
    let mut again = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    let port = listening_port(&mut again).await;
    let listed = client(&rt, &t, port, &pw)
        .await
        .list_sessions()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].id, session.id,
        "the session came back with the snapshot"
    );
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_kilo_db_makes_the_server_exit_before_listening() {
    let t = town("corrupt");
    let rt = started(SimScript::default(), &t).await;
    let db_path = AgentLayout::new(AgentId::mayor()).kilo_db();
    let garbage = b"this is not a database, and it is long enough to have a header".to_vec();
    rt.put_file(&t, &db_path, &garbage).await.unwrap();
    let mut spawned = rt
        .spawn(&t, &kilo_command(&t, "mayor", &Secret::random()))
        .await
        .unwrap();
    let line = spawned.output.recv().await.expect("an error line");
    assert_eq!(line.stream, Stream::Stderr);
    assert!(line.line.contains("not a database"), "{}", line.line);
    assert!(spawned.output.recv().await.is_none());
    assert_eq!(
        spawned.handle.status().await,
        ProcessStatus::Exited(Some(1))
    );
    assert_eq!(
        rt.peek_file(&t, &db_path).unwrap(),
        garbage,
        "the file is left as it was"
    );
    assert!(rt
        .log()
        .iter()
        .any(|e| matches!(e.kind, SimEventKind::SdkBootFailed { .. }) && !e.ok));
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
    let r = rt
        .exec(&t, &CommandSpec::new("sh").args(["-c", "true"]))
        .await;
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

#[tokio::test(start_paused = true)]
async fn opencode_servers_read_their_own_variables() {
    let t = town("opencode");
    let rt = started(SimScript::default(), &t).await;
    let cmd = CommandSpec::new("/opt/opencode/bin/opencode")
        .args(["serve", "--port", "0", "--hostname", "127.0.0.1"])
        .env("XDG_DATA_HOME", path("/agents/mayor/data"))
        .env("OPENCODE_SERVER_PASSWORD", Secret::new("oc-pw"));
    let mut spawned = rt.spawn(&t, &cmd).await.unwrap();
    let line = spawned.output.recv().await.unwrap();
    assert!(line
        .line
        .starts_with("opencode server listening on http://127.0.0.1:"));
    let (_, port) = parse_listening_line(&line.line).unwrap();
    let url = rt.endpoint(&t, port).await.unwrap();
    let connect = |user: &str| {
        rt.sdk_connector()
            .connect(
                url.clone(),
                user.into(),
                Secret::new("oc-pw"),
                SdkClientOptions::default(),
            )
            .unwrap()
    };
    assert!(connect("opencode").health().await.is_ok());
    assert!(matches!(
        connect("kilo").health().await,
        Err(Error::Sdk {
            status: Some(401),
            ..
        })
    ));
    assert_eq!(rt.spawns_of("opencode"), 1);
}

/// The conformance checks the simulated runtime can run (those needing a shell or an HTTP
/// server are for real backends).
#[tokio::test(start_paused = true)]
async fn conformance_subset() {
    let rt = SimulatedRuntime::new(SimScript::default());
    let rt: &dyn ContainerRuntime = rt.as_ref();
    conformance::check_lifecycle(rt, &town("lifecycle")).await;
    conformance::check_idempotent_start(rt, &town("idempotent")).await;
    conformance::check_concurrent_start(rt, &town("concurrent")).await;
    conformance::check_stop_and_remove_absent(rt, &town("absent")).await;
    conformance::check_missing_file(rt, &town("missing-file")).await;
    conformance::check_path_validation(rt, &town("path-validation")).await;
    conformance::check_stopped_container_rejects(rt, &town("stopped")).await;
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
