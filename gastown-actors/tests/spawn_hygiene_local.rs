//! How an SDK server is spawned, checked on the real kilo and the local runtime: an
//! explicit port (never `--port 0`, which makes kilo try 4096 first), the launcher's
//! defaults (`KILO_TELEMETRY_LEVEL=off`, `KILO_DISABLE_MODELS_FETCH=1`) and, on the local
//! runtime, `KILO_PARENT_PID` = this process, outside the config hash. Skips without kilo
//! unless `GASTOWN_REQUIRE_KILO=1`.

mod common;

use gastown_actors::{TownHandle, TownOptions};

use common::{kilo, local_runtime, town_config};

#[tokio::test]
async fn the_sdk_server_gets_an_explicit_port_the_launcher_defaults_and_its_parent_pid() {
    let Some(bin) = kilo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rt = local_runtime(&dir.path().join("c"), &bin);
    let town = TownHandle::start(TownOptions::new(
        town_config("hygiene"),
        dir.path().join("state"),
        rt,
    ))
    .await
    .unwrap();
    let ready = town.ensure_mayor().await.unwrap();
    let info = town.mayor_info().await.unwrap().unwrap();
    let pid = info.pid.unwrap();

    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let port = args
        .iter()
        .position(|a| a == "--port")
        .map(|i| args[i + 1].clone())
        .expect("a --port argument");
    assert_ne!(port, "0", "an explicit port: {args:?}");
    assert!(
        ready.endpoint.ends_with(&format!(":{port}")),
        "the server listens where it was told: {} vs {port}",
        ready.endpoint
    );

    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let env: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|kv| String::from_utf8_lossy(kv).into_owned())
        .collect();
    for wanted in [
        "KILO_TELEMETRY_LEVEL=off".to_owned(),
        "KILO_DISABLE_MODELS_FETCH=1".to_owned(),
        format!("KILO_PARENT_PID={}", std::process::id()),
    ] {
        assert!(env.contains(&wanted), "{wanted} missing from {env:?}");
    }
    town.shutdown().await.unwrap();
}
