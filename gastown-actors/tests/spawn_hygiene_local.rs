//! How an SDK server is spawned, checked on the real kilo and the local runtime: an
//! explicit port (never `--port 0`, which makes kilo try 4096 first), the launcher's
//! defaults (`KILO_TELEMETRY_LEVEL=off`, `KILO_DISABLE_MODELS_FETCH=1`), no
//! `KILO_PARENT_PID` (a server outlives a crashed host, which the next host adopts), and
//! the agent's server lock held as its stdin. Skips without kilo unless
//! `GASTOWN_REQUIRE_KILO=1`.

mod common;

use gastown_actors::{TownHandle, TownOptions};

use common::{kilo, local_runtime, town_config};

#[tokio::test]
async fn the_sdk_server_gets_an_explicit_port_the_launcher_defaults_and_holds_its_lock() {
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
    for wanted in ["KILO_TELEMETRY_LEVEL=off", "KILO_DISABLE_MODELS_FETCH=1"] {
        assert!(
            env.iter().any(|kv| kv == wanted),
            "{wanted} missing from {env:?}"
        );
    }
    assert!(
        !env.iter().any(|kv| kv.starts_with("KILO_PARENT_PID=")),
        "a server must survive its host's crash to be adopted"
    );
    // The agent's lock is the server's stdin, still open after boot: a second server for
    // the mayor's data directory cannot take it while this one lives.
    let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
    assert!(
        stdin.ends_with("agents/mayor/server.lock"),
        "{}",
        stdin.display()
    );
    let lock = std::fs::File::open(&stdin).unwrap();
    assert!(matches!(
        lock.try_lock(),
        Err(std::fs::TryLockError::WouldBlock)
    ));
    town.shutdown().await.unwrap();
}
