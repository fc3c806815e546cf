//! A town container's confinement on a real engine (unprivileged, limited, only the
//! declared mounts), file ownership, and the real `kilo serve` answering through
//! `endpoint`. Skipped (with a line) when no engine answers, unless
//! `GASTOWN_REQUIRE_DOCKER=1`.

use std::time::Duration;

use gastown_core::{
    CommandSpec, ContainerOptions, ContainerPath, ContainerRuntime, ContainerRuntimeExt,
    ContainerStatus, Error, Secret,
};
use gastown_runtime_docker::test_support as support;
use gastown_runtime_docker::test_support::{path, runtime, sh, town, Cleanup, PATH, WAIT_BOUND};

#[tokio::test]
async fn containers_are_unprivileged_limited_and_mount_only_what_the_town_declares() {
    let prefix = support::prefix("confine");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let town = town("confine");
    let _cleanup = Cleanup::town(&prefix, &town);
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("README"), b"from the host").unwrap();
    let opts = ContainerOptions::default()
        .with_read_only_mount(host_dir.path().to_owned(), path("/rigs-src/demo"));
    rt.start(&town, &opts).await.unwrap();

    let out = rt
        .exec_ok(&town, &sh("id -u; id -g; grep CapEff /proc/self/status"))
        .await
        .unwrap();
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1000", "{text}");
    assert_eq!(lines[1], "1000", "{text}");
    assert!(
        lines[2].ends_with("0000000000000000"),
        "capabilities: {text}"
    );

    // The declared mount is there and read-only; the host file is unchanged.
    let out = rt
        .exec_ok(&town, &sh("cat /rigs-src/demo/README"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"from the host");
    let write = rt
        .exec(&town, &sh("echo x > /rigs-src/demo/README"))
        .await
        .unwrap();
    assert_ne!(write.exit_code, 0, "a read-only mount was writable");
    assert_eq!(
        std::fs::read(host_dir.path().join("README")).unwrap(),
        b"from the host"
    );

    let inspected = rt
        .docker()
        .inspect_container(&rt.container_name(&town), None)
        .await
        .unwrap();
    let host = inspected.host_config.unwrap();
    assert_eq!(
        host.memory,
        Some(gastown_runtime_docker::options::DEFAULT_MEMORY_BYTES as i64)
    );
    assert_eq!(
        host.pids_limit,
        Some(gastown_runtime_docker::options::DEFAULT_PIDS_LIMIT)
    );
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert!(host
        .security_opt
        .unwrap_or_default()
        .iter()
        .any(|o| o.starts_with("no-new-privileges")));
    // The declared mount (read-only) and the town's agents volume; nothing else from the host.
    let mut mounts = inspected.mounts.unwrap_or_default();
    mounts.sort_by(|a, b| a.destination.cmp(&b.destination));
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    assert_eq!(mounts[0].destination.as_deref(), Some("/agents"));
    assert_eq!(mounts[0].typ, Some("volume".to_owned()));
    assert_eq!(
        mounts[0].name.as_deref(),
        Some(rt.volume_name(&town).as_str())
    );
    assert_eq!(mounts[1].destination.as_deref(), Some("/rigs-src/demo"));
    assert_eq!(mounts[1].rw, Some(false));

    // A missing mount source is a typed error, and the town stays as it was.
    let bad = ContainerOptions::default()
        .with_read_only_mount("/definitely/not/here".into(), path("/rigs-src/x"));
    let other = support::town("confine-bad");
    assert!(matches!(
        rt.start(&other, &bad).await,
        Err(Error::InvalidConfig { .. })
    ));
    assert_eq!(rt.status(&other).await.unwrap(), ContainerStatus::Absent);
    assert_eq!(rt.status(&town).await.unwrap(), ContainerStatus::Running);
    rt.remove(&town).await.unwrap();
}

#[tokio::test]
async fn files_put_by_the_runtime_belong_to_the_agents_user() {
    let prefix = support::prefix("owner");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let town = town("owner");
    let _cleanup = Cleanup::town(&prefix, &town);
    rt.start(&town, &ContainerOptions::default()).await.unwrap();
    let db = path("/agents/mayor/data/kilo/kilo.db");
    rt.put_file(&town, &db, b"snapshot bytes").await.unwrap();
    // The agent can rewrite what the runtime restored, and create files beside it.
    let out = rt
        .exec_ok(
            &town,
            &sh("echo more >> \"$1\" && touch \"$(dirname \"$1\")/wal\" && stat -c '%u %g' \"$1\"")
                .arg("sh")
                .arg(&db),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_str(), "1000 1000\n");
    assert_eq!(
        rt.get_file(&town, &db).await.unwrap(),
        b"snapshot bytesmore\n"
    );
    // A directory is not a file; the root is not a file name.
    assert!(rt.get_file(&town, &path("/agents/mayor")).await.is_err());
    assert!(matches!(
        rt.put_file(&town, &ContainerPath::root(), b"x").await,
        Err(Error::InvalidPath { .. })
    ));
    rt.remove(&town).await.unwrap();
}

/// The built image runs the real kilo: `kilo serve` with an agent's environment (the one
/// env builder's variables) announces its port, and `/global/health` answers through `endpoint` with basic auth.
#[tokio::test]
async fn the_image_runs_kilo_serve_reachable_through_endpoint() {
    let prefix = support::prefix("kilo");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let town = town("kilo");
    let _cleanup = Cleanup::town(&prefix, &town);
    rt.start(&town, &ContainerOptions::default()).await.unwrap();

    let root = path("/agents/probe");
    let sub = |p: &str| root.join(p).unwrap();
    for dir in ["home", "data", "config", "cache", "state"] {
        rt.create_dir_all(&town, &sub(dir)).await.unwrap();
    }
    let workspace = path("/workspace/probe");
    rt.create_dir_all(&town, &workspace).await.unwrap();
    let password = Secret::random();
    let cmd = CommandSpec::new("kilo")
        .args(["serve", "--port", "0", "--hostname"])
        .arg(rt.sdk_bind_host())
        .env("PATH", PATH)
        .env("HOME", sub("home"))
        .env("KILO_TEST_HOME", sub("home"))
        .env("XDG_DATA_HOME", sub("data"))
        .env("XDG_CONFIG_HOME", sub("config"))
        .env("XDG_CACHE_HOME", sub("cache"))
        .env("XDG_STATE_HOME", sub("state"))
        .env("KILO_SERVER_PASSWORD", password.clone())
        .cwd(workspace);
    let mut spawned = rt.spawn(&town, &cmd).await.expect("spawn kilo serve");

    let port = tokio::time::timeout(WAIT_BOUND, async {
        let mut seen = Vec::new();
        while let Some(line) = spawned.output.recv().await {
            if let Some(rest) = line.line.split("listening on ").nth(1) {
                let port = rest.trim().rsplit(':').next().unwrap_or("");
                return port.trim_end_matches('/').parse::<u16>().ok();
            }
            seen.push(line.line);
        }
        panic!("kilo serve ended without listening: {seen:?}");
    })
    .await
    .expect("kilo serve never said it listens")
    .expect("a port in the listening line");

    let url = rt.endpoint(&town, port).await.unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health: serde_json::Value = client
        .get(format!("{url}/global/health"))
        .basic_auth("kilo", Some(password.expose()))
        .send()
        .await
        .expect("GET /global/health")
        .error_for_status()
        .expect("health status")
        .json()
        .await
        .expect("health body");
    assert_eq!(health["healthy"], serde_json::Value::Bool(true), "{health}");

    // Without the password: refused.
    let anon = client
        .get(format!("{url}/global/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);

    let end = spawned.handle.kill(Duration::from_secs(10)).await.unwrap();
    assert!(!end.is_alive(), "{end:?}");
    rt.remove(&town).await.unwrap();
}
