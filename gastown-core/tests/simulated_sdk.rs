//! The simulated SDK servers (test doubles, `gastown_core::simulated`): sessions persist
//! per data dir, passwords are checked, calls time out like the real client's, and the
//! `kilo.db` they write is a real SQLite database.
//!
//! Every test runs under `start_paused`, so virtual time is exact: assertions compare
//! durations for equality, and no test depends on the machine's speed.

use std::time::Duration;

use gastown_core::sdk::{parse_listening_line, SdkClientOptions};
use gastown_core::simulated::{SimEventKind, SimScript, SimulatedRuntime};
use gastown_core::snapshot::SnapshotStore;
use gastown_core::{
    AgentId, AgentLayout, CommandSpec, ContainerOptions, ContainerRuntime, ContainerRuntimeExt,
    ContainerStatus, Error, ModelRef, ProcessStatus, Secret, Stream,
};
use tokio::time::Instant;

mod common;

use common::*;

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
