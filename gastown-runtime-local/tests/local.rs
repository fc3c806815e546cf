//! Behaviour of [`LocalRuntime`] beyond the shared conformance suite: program resolution,
//! strict environment isolation, host path mapping, mounts, cleanup on drop and on
//! cancellation, and a real `kilo serve` (skipped when kilo is not installed, unless
//! `GASTOWN_REQUIRE_KILO=1`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gastown_core::{
    CommandSpec, ContainerOptions, ContainerPath, ContainerRuntime, ContainerRuntimeExt,
    ContainerStatus, Error, ProcessHandle, ProcessStatus, Secret, TownId,
};
use gastown_runtime_local::LocalRuntime;
use tempfile::TempDir;

/// Generous bound for waiting on real processes; a hang guard, not a timing assertion.
const WAIT: Duration = Duration::from_secs(60);

fn town(name: &str) -> TownId {
    TownId::new(name).unwrap()
}

fn path(p: &str) -> ContainerPath {
    ContainerPath::new(p).unwrap()
}

async fn started(name: &str) -> (TempDir, LocalRuntime, TownId) {
    let root = tempfile::tempdir().unwrap();
    let rt = LocalRuntime::new(root.path().to_owned());
    let town = town(name);
    rt.start(&town, &ContainerOptions::default()).await.unwrap();
    (root, rt, town)
}

fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", "/usr/bin:/bin")
}

/// Whether a pid is gone (or a zombie nobody reaped yet: it runs no more code).
fn pid_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

async fn wait_until_dead(pid: u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pid_dead(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pid {pid} still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_exited(handle: &dyn ProcessHandle) -> ProcessStatus {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = handle.status().await;
        if !s.is_alive() {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "{handle:?} alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn missing_program_is_program_not_found_and_changes_nothing() {
    let (_root, rt, town) = started("not-found").await;
    rt.put_file(&town, &path("/keep"), b"kept").await.unwrap();
    for program in [
        "gastown-no-such-program",
        "/no/such/binary",
        "relative/prog",
    ] {
        let cmd = CommandSpec::new(program);
        match rt.exec(&town, &cmd).await {
            Err(Error::ProgramNotFound { program: p, hint }) => {
                assert_eq!(p, program);
                assert!(hint.starts_with("; "), "{hint}");
            }
            other => panic!("{program}: expected ProgramNotFound, got {other:?}"),
        }
        assert!(matches!(
            rt.spawn(&town, &cmd).await,
            Err(Error::ProgramNotFound { .. })
        ));
    }
    let msg = rt
        .exec(&town, &CommandSpec::new("gastown-no-such-program"))
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("with_program"), "{msg}");
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Running);
    assert_eq!(rt.get_file(&town, &path("/keep")).await.unwrap(), b"kept");
}

#[tokio::test]
async fn program_map_wins_and_argv0_is_the_name_asked_for() {
    let root = tempfile::tempdir().unwrap();
    let host_sh = ["/usr/bin/sh", "/bin/sh"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    let rt = LocalRuntime::builder(root.path().to_owned())
        .with_program("my-shell", host_sh)
        .with_program("ghost", "/nonexistent/ghost")
        .build();
    let town = town("program-map");
    rt.start(&town, &ContainerOptions::default()).await.unwrap();
    let out = rt
        .exec_ok(
            &town,
            &CommandSpec::new("my-shell").arg("-c").arg("echo \"$0\""),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_str(), "my-shell\n");
    match rt.exec(&town, &CommandSpec::new("ghost")).await {
        Err(Error::ProgramNotFound { hint, .. }) => assert!(hint.contains("/nonexistent/ghost")),
        other => panic!("expected ProgramNotFound, got {other:?}"),
    }
}

/// The parent has PATH, HOME and more; a child given only FOO=1 sees exactly that.
#[tokio::test]
async fn child_env_is_exactly_the_spec() {
    assert!(std::env::var_os("PATH").is_some(), "the test needs a PATH");
    let (_root, rt, town) = started("env-exact").await;

    let out = rt
        .exec_ok(&town, &CommandSpec::new("env").env("FOO", "1"))
        .await
        .unwrap();
    assert_eq!(out.stdout_str(), "FOO=1\n");

    let spawned = rt
        .spawn(&town, &CommandSpec::new("env").env("FOO", "1"))
        .await
        .unwrap();
    let mut output = spawned.output;
    let mut lines = Vec::new();
    while let Some(l) = output.recv().await {
        lines.push(l.line);
    }
    assert_eq!(lines, ["FOO=1"]);

    let out = rt.exec_ok(&town, &CommandSpec::new("env")).await.unwrap();
    assert_eq!(out.stdout_str(), "", "an empty spec env gives an empty env");
}

#[tokio::test]
async fn secrets_reach_the_child_but_no_debug_output() {
    let (_root, rt, town) = started("secrets").await;
    let secret = Secret::new("pw-do-not-print-9431");
    let cmd = sh("echo \"$PW\" \"$1\"; exec sleep 300")
        .arg("sh")
        .arg(secret.clone())
        .env("PW", secret);
    let spawned = rt.spawn(&town, &cmd).await.unwrap();
    let mut output = spawned.output;
    let line = tokio::time::timeout(WAIT, output.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line.line, "pw-do-not-print-9431 pw-do-not-print-9431");
    for shown in [
        format!("{cmd:?}"),
        format!("{:?}", spawned.handle),
        format!("{rt:?}"),
    ] {
        assert!(!shown.contains("pw-do-not-print"), "{shown}");
    }
    spawned.handle.kill(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn container_paths_map_under_the_town_dir() {
    let (root, rt, town) = started("mapping").await;
    let p = path("/agents/mayor/data");
    let host = rt.host_path(&town, &p);
    assert_eq!(host, root.path().join("mapping/agents/mayor/data"));
    assert_eq!(rt.town_dir(&town), root.path().join("mapping"));

    rt.put_file(&town, &p.join("f.txt").unwrap(), b"x")
        .await
        .unwrap();
    assert_eq!(std::fs::read(host.join("f.txt")).unwrap(), b"x");
    // The process sees host paths for container paths (args and env).
    let out = rt
        .exec_ok(&town, &sh("echo \"$1|$D\"").arg("sh").arg(&p).env("D", &p))
        .await
        .unwrap();
    let h = host.display();
    assert_eq!(out.stdout_str(), format!("{h}|{h}\n"));
    // The default cwd is the container root.
    let out = rt.exec_ok(&town, &sh("pwd -P")).await.unwrap();
    let expected = rt.town_dir(&town).canonicalize().unwrap();
    assert_eq!(out.stdout_str().trim(), expected.display().to_string());
}

#[tokio::test]
async fn a_missing_cwd_is_a_typed_error_and_the_town_keeps_running() {
    let (_root, rt, town) = started("bad-cwd").await;
    rt.put_file(&town, &path("/file"), b"f").await.unwrap();
    for cwd in ["/no/such/dir", "/file"] {
        match rt.exec(&town, &sh("true").cwd(path(cwd))).await {
            Err(Error::Io { context, .. }) => assert!(context.contains(cwd), "{context}"),
            other => panic!("cwd {cwd}: expected Io, got {other:?}"),
        }
    }
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Running);
    rt.exec_ok(&town, &sh("true")).await.unwrap();
}

#[tokio::test]
async fn put_file_rejects_the_root_and_directories_without_losing_them() {
    let (_root, rt, town) = started("put-root").await;
    rt.put_file(&town, &path("/d/inner"), b"inner")
        .await
        .unwrap();
    assert!(matches!(
        rt.put_file(&town, &ContainerPath::root(), b"x").await,
        Err(Error::InvalidPath { .. })
    ));
    assert!(matches!(
        rt.put_file(&town, &path("/d"), b"x").await,
        Err(Error::Io { .. })
    ));
    assert_eq!(
        rt.get_file(&town, &path("/d/inner")).await.unwrap(),
        b"inner"
    );
    // No temp file left behind by the failed write.
    let entries = std::fs::read_dir(rt.town_dir(&town)).unwrap().count();
    assert_eq!(entries, 1, "only /d should be in the container root");
}

#[tokio::test]
async fn a_directory_from_an_earlier_run_is_exited_until_started() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("old-town/agents")).unwrap();
    std::fs::write(root.path().join("old-town/agents/state"), b"old").unwrap();
    let rt = LocalRuntime::new(root.path().to_owned());
    let town = town("old-town");
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Exited);
    assert!(matches!(
        rt.get_file(&town, &path("/agents/state")).await,
        Err(Error::ContainerNotRunning { .. })
    ));
    let info = rt.start(&town, &ContainerOptions::default()).await.unwrap();
    assert!(
        info.created,
        "nothing was running: this start brings the town up"
    );
    assert_eq!(
        rt.get_file(&town, &path("/agents/state")).await.unwrap(),
        b"old"
    );
}

#[tokio::test]
async fn many_concurrent_starts_create_once() {
    let root = tempfile::tempdir().unwrap();
    let rt = Arc::new(LocalRuntime::new(root.path().to_owned()));
    let town = town("stampede");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (rt, town) = (rt.clone(), town.clone());
            tokio::spawn(async move { rt.start(&town, &ContainerOptions::default()).await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        created += usize::from(t.await.unwrap().unwrap().created);
    }
    assert_eq!(created, 1);
}

#[tokio::test]
async fn stop_kills_grandchildren_in_the_group() {
    let (_root, rt, town) = started("grandchildren").await;
    let spawned = rt
        .spawn(&town, &sh("sleep 300 & echo $!; wait"))
        .await
        .unwrap();
    let mut output = spawned.output;
    let line = tokio::time::timeout(WAIT, output.recv())
        .await
        .unwrap()
        .unwrap();
    let grandchild: u32 = line.line.parse().unwrap();
    assert!(!pid_dead(grandchild));
    rt.stop(&town, Duration::from_secs(5)).await.unwrap();
    wait_until_dead(grandchild).await;
    assert!(!wait_exited(spawned.handle.as_ref()).await.is_alive());
}

/// A leader that exits at once may leave a child in its group; later starts must not
/// forget the group, and stop must still kill the child.
#[tokio::test]
async fn stop_kills_what_an_exited_leader_left_behind() {
    let (_root, rt, town) = started("left-behind").await;
    let spawned = rt.spawn(&town, &sh("sleep 300 & echo $!")).await.unwrap();
    let mut output = spawned.output;
    let line = tokio::time::timeout(WAIT, output.recv())
        .await
        .unwrap()
        .unwrap();
    let orphan: u32 = line.line.parse().unwrap();
    assert_eq!(
        wait_exited(spawned.handle.as_ref()).await,
        ProcessStatus::Exited(Some(0))
    );
    // More processes come and go (each start prunes the town's list).
    for _ in 0..3 {
        rt.exec_ok(&town, &sh("true")).await.unwrap();
    }
    assert!(!pid_dead(orphan), "the child outlives its leader");
    rt.stop(&town, Duration::from_secs(5)).await.unwrap();
    wait_until_dead(orphan).await;
}

#[tokio::test]
async fn bad_env_names_are_rejected_without_echoing_values() {
    let (_root, rt, town) = started("bad-env").await;
    for key in ["", "A=B", "A\0B"] {
        let cmd = sh("true").env(key, Secret::new("value-never-shown"));
        match rt.exec(&town, &cmd).await {
            Err(e @ Error::InvalidConfig { .. }) => {
                assert!(!e.to_string().contains("value-never-shown"), "{e}")
            }
            other => panic!("{key:?}: expected InvalidConfig, got {other:?}"),
        }
        assert!(matches!(
            rt.spawn(&town, &cmd).await,
            Err(Error::InvalidConfig { .. })
        ));
    }
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Running);
    rt.exec_ok(&town, &sh("true")).await.unwrap();
}

#[tokio::test]
async fn a_cancelled_exec_kills_its_command() {
    let (_root, rt, town) = started("cancelled").await;
    let pidfile = path("/pid");
    let cmd = sh("echo $$ > \"$1\"; exec sleep 300")
        .arg("sh")
        .arg(&pidfile);
    // Boxed so that dropping it really drops the future (a `pin!` would only drop a reference).
    let mut exec = Box::pin(rt.exec(&town, &cmd));
    // Drive the exec until the command has written its pid, then drop the future.
    let pid = loop {
        tokio::select! {
            r = &mut exec => panic!("exec ended early: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        if let Ok(text) = rt.get_file(&town, &pidfile).await {
            if let Ok(pid) = String::from_utf8_lossy(&text).trim().parse::<u32>() {
                break pid;
            }
        }
    };
    drop(exec);
    wait_until_dead(pid).await;
}

#[tokio::test]
async fn dropping_the_runtime_kills_its_processes() {
    let (_root, rt, town) = started("dropped").await;
    let spawned = rt.spawn(&town, &sh("exec sleep 300")).await.unwrap();
    let pid = spawned.handle.pid().unwrap();
    assert!(spawned.handle.status().await.is_alive());
    drop(rt);
    wait_until_dead(pid).await;
    assert!(!wait_exited(spawned.handle.as_ref()).await.is_alive());
}

#[tokio::test]
async fn exec_killed_by_a_signal_reports_minus_one() {
    let (_root, rt, town) = started("signalled").await;
    let out = rt.exec(&town, &sh("kill -9 $$")).await.unwrap();
    assert_eq!(out.exit_code, -1);
}

#[tokio::test]
async fn mounts_link_host_directories_and_bad_ones_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("README"), b"rig readme").unwrap();
    let rt = LocalRuntime::new(root.path().to_owned());
    let town = town("mounts");

    let bad = ContainerOptions::default()
        .with_read_only_mount(host.path().to_owned(), path("/rigs/ok"))
        .with_read_only_mount("relative/dir".into(), path("/rigs/bad"));
    assert!(matches!(
        rt.start(&town, &bad).await,
        Err(Error::InvalidConfig { .. })
    ));
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Absent);

    let good =
        ContainerOptions::default().with_read_only_mount(host.path().to_owned(), path("/rigs/r"));
    rt.start(&town, &good).await.unwrap();
    assert_eq!(
        rt.get_file(&town, &path("/rigs/r/README")).await.unwrap(),
        b"rig readme"
    );
    let out = rt.exec_ok(&town, &sh("cat rigs/r/README")).await.unwrap();
    assert_eq!(out.stdout, b"rig readme");
    // Adopting with the same mounts is fine; removing the town leaves the host dir alone.
    assert!(!rt.start(&town, &good).await.unwrap().created);
    rt.remove(&town).await.unwrap();
    assert_eq!(
        std::fs::read(host.path().join("README")).unwrap(),
        b"rig readme"
    );
}

/// A real SDK server through the runtime: `kilo serve` with its own data dir (a container
/// path) and password (a secret), reached at the runtime's endpoint, killed with grace.
#[tokio::test]
async fn kilo_serve_runs_and_answers_health() {
    let Some(kilo) = gastown_core::kilo::test_binary() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let rt = LocalRuntime::builder(root.path().to_owned())
        .with_program("kilo", kilo)
        .build();
    let town = town("kilo");
    rt.start(&town, &ContainerOptions::default()).await.unwrap();
    let home = path("/agents/mayor");
    let data = home.join("data").unwrap();
    rt.create_dir_all(&town, &data).await.unwrap();
    let password = Secret::random();
    let cmd = CommandSpec::new("kilo")
        .args(["serve", "--port", "0", "--hostname", rt.sdk_bind_host()])
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("XDG_DATA_HOME", &data)
        .env("KILO_TEST_HOME", &home)
        .env("KILO_SERVER_PASSWORD", password.clone())
        .cwd(home.clone());
    let spawned = rt.spawn(&town, &cmd).await.unwrap();
    let mut output = spawned.output;
    let port = tokio::time::timeout(WAIT, async {
        while let Some(l) = output.recv().await {
            if let Some(url) = l.line.split("listening on ").nth(1) {
                let port = url.trim().rsplit(':').next().unwrap_or("");
                return port.trim_end_matches('/').parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .expect("kilo never said it was listening")
    .expect("kilo's output ended before it listened");

    let url = rt.endpoint(&town, port).await.unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let health = client
        .get(format!("{url}/global/health"))
        .basic_auth("kilo", Some(password.expose()))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success(), "{}", health.status());
    let unauthorised = client
        .get(format!("{url}/global/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status().as_u16(), 401);
    assert!(
        rt.host_path(&town, &data).join("kilo/kilo.db").exists(),
        "kilo.db must be in the agent's own data dir"
    );

    let end = spawned.handle.kill(Duration::from_secs(10)).await.unwrap();
    assert!(matches!(end, ProcessStatus::Exited(_)), "{end:?}");
    rt.remove(&town).await.unwrap();
}
