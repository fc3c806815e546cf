//! Chaos on the real kilo and the local runtime: a host process is killed with SIGKILL
//! again and again (or its SDK server is), and every restart must find the same session
//! with every message, and leave no `kilo serve` that belongs to no live host.
//!
//! The host is a child process: this test binary run again with `--exact
//! chaos_child_host` (a no-op in a normal run: it acts only with the `GASTOWN_CHAOS_*`
//! variables the parent sets), which starts the town on the state directory and root it is
//! given (through its environment) and obeys one command per stdin line (`ensure`,
//! `prompt <text>`, `shutdown`), answering each with a `CHAOS …` line on stdout. The model
//! is the scripted model server (a test double of an OpenAI-compatible provider) in this
//! process. Skips when kilo is missing unless `GASTOWN_REQUIRE_KILO=1`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use gastown_actors::test_support::{reply_of, sqlite_contains, ChildHost};
use gastown_actors::{TownHandle, TownOptions};
use gastown_core::{ProviderConfig, TownConfig, TownId};
use gastown_scripted_model::{ScriptedModelServer, MODEL, PROVIDER_ID};
use tokio::io::{AsyncBufReadExt, BufReader};

use common::{kilo, local_runtime, RecordingRuntime};

/// Restarts per run: ten, so a leak of one server per restart shows as ten.
const CYCLES: usize = 10;
/// A bound on one answer of the child host (a kilo boot, a turn): a hang guard only.
const GUARD: Duration = Duration::from_secs(180);
const TOWN: &str = "chaos";

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
async fn chaos_child_host() {
    let (Ok(state), Ok(root), Ok(bin), Ok(url)) = (
        std::env::var("GASTOWN_CHAOS_STATE"),
        std::env::var("GASTOWN_CHAOS_ROOT"),
        std::env::var("GASTOWN_CHAOS_KILO"),
        std::env::var("GASTOWN_CHAOS_MODEL_URL"),
    ) else {
        return;
    };
    let rt = RecordingRuntime::new(local_runtime(Path::new(&root), Path::new(&bin)));
    let town = TownHandle::start(TownOptions::new(config(&url), &state, rt.clone()))
        .await
        .unwrap();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match cmd {
            "ensure" => {
                let ready = town.ensure_mayor().await.unwrap();
                let pid = town.mayor_info().await.unwrap().unwrap().pid.unwrap();
                println!(
                    "CHAOS ready {} {} {pid} {}",
                    ready.report.decision,
                    ready.session_id,
                    rt.spawns_of("kilo")
                );
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

/// What the child host answered to `ensure`.
#[derive(Debug)]
struct Ready {
    decision: String,
    session: String,
    pid: u32,
    kilo_spawns: usize,
}

impl Host {
    fn spawn(state: &Path, root: &Path, kilo: &Path, model_url: &str) -> Self {
        let envs: [(&str, &std::ffi::OsStr); 4] = [
            ("GASTOWN_CHAOS_STATE", state.as_os_str()),
            ("GASTOWN_CHAOS_ROOT", root.as_os_str()),
            ("GASTOWN_CHAOS_KILO", kilo.as_os_str()),
            ("GASTOWN_CHAOS_MODEL_URL", model_url.as_ref()),
        ];
        Self(ChildHost::spawn("chaos_child_host", &envs, GUARD))
    }

    async fn ask(&mut self, command: &str) -> Vec<String> {
        self.0.ask(command).await
    }

    async fn ensure(&mut self) -> Ready {
        let words = self.ask("ensure").await;
        assert_eq!(words[0], "ready", "{words:?}");
        Ready {
            decision: words[1].clone(),
            session: words[2].clone(),
            pid: words[3].parse().unwrap(),
            kilo_spawns: words[4].parse().unwrap(),
        }
    }

    /// SIGKILL, as a crash: nothing of the host runs its cleanup.
    async fn crash(self) {
        self.0.crash().await;
    }
}

/// Every live `kilo serve` whose environment points into `root` (its data directory is
/// there), by pid.
fn servers_under(root: &Path) -> Vec<u32> {
    let needle = root.as_os_str().as_encoded_bytes();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let serves = cmdline.split(|b| *b == 0).any(|a| a == b"serve");
            serves && environ.windows(needle.len()).any(|w| w == needle)
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| !r.trim_start().starts_with(['Z', 'X']))
            })
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Waits until the servers under `root` are exactly `want` (a killed one takes a moment
/// to be reaped by init).
async fn servers_become(root: &Path, want: &[u32], when: &str) {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let now = servers_under(root);
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{when}: servers {now:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    state: PathBuf,
    root: PathBuf,
    kilo: PathBuf,
    model: ScriptedModelServer,
}

impl Setup {
    async fn new(kilo: PathBuf) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            state: dir.path().join("state"),
            root: dir.path().join("containers"),
            _dir: dir,
            kilo,
            model: ScriptedModelServer::start_local().await.unwrap(),
        }
    }

    fn host(&self) -> Host {
        Host::spawn(&self.state, &self.root, &self.kilo, &self.model.base_url())
    }

    fn kilo_db(&self) -> PathBuf {
        self.root.join(TOWN).join("agents/mayor/data/kilo/kilo.db")
    }

    /// Every message sent so far is in the mayor's live `kilo.db`.
    fn assert_messages(&self, sent: &[String]) {
        for m in sent {
            assert!(sqlite_contains(&self.kilo_db(), m), "{m} lost");
        }
    }

    /// A last host shuts the town down: nothing may run afterwards.
    async fn shut_down(&self, mut host: Host) {
        assert_eq!(host.ask("shutdown").await, ["down"]);
        host.0.wait().await;
        servers_become(&self.root, &[], "after shutdown").await;
    }
}

#[tokio::test]
async fn ten_host_crashes_keep_the_session_and_every_message_and_leave_no_orphan() {
    let Some(bin) = kilo() else { return };
    let _one = ONE_KILO.lock().await;
    let setup = Setup::new(bin).await;
    let mut sent = Vec::new();
    let mut host = setup.host();
    let first = host.ensure().await;
    assert_eq!(first.decision, "fresh_dispatch", "{first:?}");
    assert_eq!(first.kilo_spawns, 1);
    for cycle in 0..CYCLES {
        let text = format!("chaos message {cycle}");
        assert_eq!(host.ask(&format!("prompt {text}")).await, ["replied"]);
        sent.push(text);
        host.crash().await;
        // The server outlives the crashed host (it is adopted next), nothing else runs.
        servers_become(&setup.root, &[first.pid], "after the crash").await;

        host = setup.host();
        let ready = host.ensure().await;
        assert_eq!(
            ready.decision, "short_circuit_warm",
            "cycle {cycle}: {ready:?}"
        );
        assert_eq!(ready.kilo_spawns, 0, "cycle {cycle}: adopted, no new boot");
        assert_eq!(ready.pid, first.pid, "cycle {cycle}: the same server");
        assert_eq!(ready.session, first.session, "cycle {cycle}: same session");
        servers_become(&setup.root, &[first.pid], "after the restart").await;
        setup.assert_messages(&sent);
    }
    setup.shut_down(host).await;
}

#[tokio::test]
async fn ten_sdk_server_kills_keep_the_session_and_every_message_and_leave_no_orphan() {
    let Some(bin) = kilo() else { return };
    let _one = ONE_KILO.lock().await;
    let setup = Setup::new(bin).await;
    let mut sent = Vec::new();
    let mut host = setup.host();
    let first = host.ensure().await;
    let mut pid = first.pid;
    for cycle in 0..CYCLES {
        let text = format!("server kill message {cycle}");
        assert_eq!(host.ask(&format!("prompt {text}")).await, ["replied"]);
        sent.push(text);
        sigkill(pid);
        servers_become(&setup.root, &[], "after the server kill").await;

        let ready = host.ensure().await;
        assert_eq!(
            ready.decision, "sdk_dead_redispatch",
            "cycle {cycle}: {ready:?}"
        );
        assert_eq!(ready.session, first.session, "cycle {cycle}: same session");
        assert_ne!(ready.pid, pid, "cycle {cycle}: a new server");
        pid = ready.pid;
        servers_become(&setup.root, &[pid], "after the redispatch").await;
        setup.assert_messages(&sent);
    }
    setup.shut_down(host).await;
}

/// SIGKILL to one process (the SDK server), through `kill(1)`: the crates forbid unsafe
/// code and the test needs nothing more.
fn sigkill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
