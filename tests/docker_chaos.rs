//! Chaos on the real kilo in gastown's agent image on a real Docker Engine, the Docker twin
//! of `gastown-actors/tests/chaos_local.rs`: a host process is killed with SIGKILL while
//! its container lives on (the restarted host adopts the same SDK server), or the container
//! itself is killed with `docker kill` (the host replaces it, and the mayor comes back from
//! the town's agents volume); every time the mayor keeps its session and every message, and
//! the container runs exactly one `kilo serve` — none that belongs to no live host.
//!
//! Ten cycles each, as on the local runtime (`gastown-actors/tests/chaos_local.rs`).
//!
//! The crashed host is a child process: this test binary run again with `--exact
//! docker_chaos_child_host` (a no-op without the `GASTOWN_DCHAOS_*` variables), which
//! starts the town on the state directory and container prefix it is given (through its
//! environment) and obeys one command per stdin line (`ensure`, `prompt <text>`,
//! `shutdown`), answering with a `CHAOS …` line. The model
//! is the scripted model server (a test double of an OpenAI-compatible provider) on the
//! docker bridge's gateway, in this process. Skipped (with a line) when no engine answers or
//! kilo is missing, unless `GASTOWN_REQUIRE_DOCKER=1` / `GASTOWN_REQUIRE_KILO=1`.
#![cfg(feature = "docker")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::KillContainerOptionsBuilder;
use gastown::actors::test_support::{reply_of, sqlite_contains, ChildHost};
use gastown::core::{CommandSpec, ContainerRuntime, ContainerRuntimeExt, ProviderConfig};
use gastown::docker::test_support::{bridge_gateway, engine, prefix, runtime, Cleanup};
use gastown::docker::DockerRuntime;
use gastown::{TownConfig, TownHandle, TownId, TownOptions};
use gastown_scripted_model::{ScriptedModelServer, MODEL, PROVIDER_ID};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Cycles per test (see the module docs for why three).
const CYCLES: usize = 10;
/// A bound on one answer (a container start, a kilo boot, a turn): a hang guard only.
const GUARD: Duration = Duration::from_secs(180);
const TOWN: &str = "dchaos";

/// One real kilo at a time across this file's tests.
static ONE_KILO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(provider_url: &str) -> TownConfig {
    TownConfig::new(TownId::new(TOWN).unwrap())
        .with_mayor_model(MODEL)
        .with_mayor_small_model(MODEL)
        .with_provider(
            PROVIDER_ID,
            ProviderConfig::new(gastown_scripted_model::provider_entry_for(provider_url)),
        )
}

/// The child host's side: does nothing unless run by [`Host::spawn`].
#[tokio::test]
async fn docker_chaos_child_host() {
    let (Ok(state), Ok(prefix), Ok(url)) = (
        std::env::var("GASTOWN_DCHAOS_STATE"),
        std::env::var("GASTOWN_DCHAOS_PREFIX"),
        std::env::var("GASTOWN_DCHAOS_MODEL_URL"),
    ) else {
        return;
    };
    let rt: Arc<dyn ContainerRuntime> = Arc::new(runtime(&prefix).await.unwrap());
    let town = TownHandle::start(TownOptions::new(config(&url), &state, rt))
        .await
        .unwrap();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match cmd {
            "ensure" => {
                let ready = town.ensure_mayor().await.unwrap();
                println!("CHAOS ready {} {}", ready.report.decision, ready.session_id);
            }
            "prompt" => {
                reply_of(&town, arg, GUARD).await;
                println!("CHAOS replied");
            }
            "shutdown" => {
                town.shutdown().await.unwrap();
                println!("CHAOS down");
                return;
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}

/// A child host process (the protocol is `test_support::ChildHost`'s).
struct Host(ChildHost);

impl Host {
    fn spawn(state: &Path, prefix: &str, model_url: &str) -> Self {
        let envs: [(&str, &std::ffi::OsStr); 3] = [
            ("GASTOWN_DCHAOS_STATE", state.as_os_str()),
            ("GASTOWN_DCHAOS_PREFIX", prefix.as_ref()),
            ("GASTOWN_DCHAOS_MODEL_URL", model_url.as_ref()),
        ];
        Self(ChildHost::spawn("docker_chaos_child_host", &envs, GUARD))
    }

    async fn ask(&mut self, command: &str) -> Vec<String> {
        self.0.ask(command).await
    }

    /// `ensure`: the decision and the session.
    async fn ensure(&mut self) -> (String, String) {
        let words = self.ask("ensure").await;
        assert_eq!(words[0], "ready", "{words:?}");
        (words[1].clone(), words[2].clone())
    }

    /// SIGKILL, as a crash: nothing of the host runs its cleanup.
    async fn crash(self) {
        self.0.crash().await;
    }
}

/// The in-container pids of every live `kilo serve` in the town's container (not this
/// listing's own shell, whose command line holds the pattern).
async fn servers(rt: &DockerRuntime) -> Vec<u32> {
    let script = r#"for d in /proc/[0-9]*; do
  c=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null) || continue
  case $c in /bin/sh\ *) continue ;; *kilo\ serve\ *) ;; *) continue ;; esac
  read -r s < "$d/stat" 2>/dev/null || continue
  case $s in *") Z "*|*") X "*) continue ;; esac
  echo "${d#/proc/}"
done"#;
    let cmd = CommandSpec::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", gastown::core::env::AGENT_PATH);
    let out = rt.exec_ok(&TownId::new(TOWN).unwrap(), &cmd).await.unwrap();
    let mut pids: Vec<u32> = out
        .stdout_str()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

/// Waits until exactly one `kilo serve` runs in the container and returns its pid (a
/// killed one takes a moment to be reaped).
async fn one_server(rt: &DockerRuntime, when: &str) -> u32 {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let now = servers(rt).await;
        if let [pid] = now[..] {
            return pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{when}: servers {now:?}, expected exactly one"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every message sent so far is in the mayor's `kilo.db` in the container (copied out
/// with its WAL, so what kilo has not checkpointed counts).
async fn assert_messages(rt: &DockerRuntime, sent: &[String]) {
    let town = TownId::new(TOWN).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["kilo.db", "kilo.db-wal"] {
        let path =
            gastown::core::ContainerPath::new(format!("/agents/mayor/data/kilo/{name}")).unwrap();
        match rt.get_file(&town, &path).await {
            Ok(bytes) => std::fs::write(dir.path().join(name), bytes).unwrap(),
            Err(gastown::core::Error::FileNotFound { .. }) if name != "kilo.db" => {}
            Err(e) => panic!("reading {path}: {e}"),
        }
    }
    let db = dir.path().join("kilo.db");
    for m in sent {
        assert!(sqlite_contains(&db, m), "{m} lost");
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    state: PathBuf,
    prefix: String,
    rt: Arc<DockerRuntime>,
    model: ScriptedModelServer,
    _cleanup: Cleanup,
}

impl Setup {
    async fn new(tag: &str) -> Option<Self> {
        let docker = engine().await?;
        let prefix = prefix(tag);
        let rt = Arc::new(runtime(&prefix).await?);
        let gateway = bridge_gateway(&docker).await;
        let model = ScriptedModelServer::start(SocketAddr::new(gateway, 0))
            .await
            .unwrap_or_else(|e| panic!("binding the scripted model server on {gateway}: {e}"));
        let dir = tempfile::tempdir().unwrap();
        Some(Self {
            state: dir.path().join("state"),
            _dir: dir,
            _cleanup: Cleanup::prefix(&prefix),
            prefix,
            rt,
            model,
        })
    }

    fn host(&self) -> Host {
        Host::spawn(&self.state, &self.prefix, &self.model.base_url())
    }
}

#[tokio::test]
async fn host_crashes_on_docker_adopt_the_same_server_and_keep_every_message() {
    let _one = ONE_KILO.lock().await;
    let Some(setup) = Setup::new("hcrash").await else {
        return;
    };
    let mut sent = Vec::new();
    let mut host = setup.host();
    let (decision, session) = host.ensure().await;
    assert_eq!(decision, "fresh_dispatch");
    let server = one_server(&setup.rt, "first start").await;
    for cycle in 0..CYCLES {
        let text = format!("docker chaos message {cycle}");
        assert_eq!(host.ask(&format!("prompt {text}")).await, ["replied"]);
        sent.push(text);
        host.crash().await;
        // The server outlives the crashed host.
        assert_eq!(one_server(&setup.rt, "after the crash").await, server);

        host = setup.host();
        let (decision, again) = host.ensure().await;
        assert_eq!(decision, "short_circuit_warm", "cycle {cycle}: adopted");
        assert_eq!(again, session, "cycle {cycle}: same session");
        assert_eq!(
            one_server(&setup.rt, "after the restart").await,
            server,
            "cycle {cycle}: the same server, no second one"
        );
        assert_messages(&setup.rt, &sent).await;
    }
    assert_eq!(host.ask("shutdown").await, ["down"]);
    host.0.wait().await;
}

#[tokio::test]
async fn docker_kills_of_the_container_keep_the_session_and_every_message() {
    let _one = ONE_KILO.lock().await;
    let Some(setup) = Setup::new("ckill").await else {
        return;
    };
    let docker = engine().await.unwrap();
    let rt: Arc<dyn ContainerRuntime> = setup.rt.clone();
    let town = TownHandle::start(TownOptions::new(
        config(&setup.model.base_url()),
        &setup.state,
        rt,
    ))
    .await
    .unwrap();
    let first = town.ensure_mayor().await.unwrap();
    let container = setup.rt.container_name(&TownId::new(TOWN).unwrap());
    let mut sent = Vec::new();
    for cycle in 0..CYCLES {
        let text = format!("container kill message {cycle}");
        reply_of(&town, &text, GUARD).await;
        sent.push(text);
        docker
            .kill_container(
                &container,
                Some(
                    KillContainerOptionsBuilder::default()
                        .signal("SIGKILL")
                        .build(),
                ),
            )
            .await
            .unwrap();
        let ready = tokio::time::timeout(GUARD, town.ensure_mayor())
            .await
            .expect("ensure hung")
            .unwrap();
        assert_eq!(
            ready.session_id, first.session_id,
            "cycle {cycle}: same session"
        );
        one_server(&setup.rt, "after the container was replaced").await;
        assert_messages(&setup.rt, &sent).await;
    }
    town.shutdown().await.unwrap();
}
