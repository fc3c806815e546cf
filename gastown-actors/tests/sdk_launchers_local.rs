//! Every SDK launcher keeps its sessions: the whole lifecycle of a mayor on the real
//! `kilo serve` and on the real `opencode serve`, local runtime, with the scripted model
//! server (a test double of an OpenAI-compatible provider) — cold start, a real turn and a
//! `noReply` message, shutdown (the container is removed, the snapshot holds the session),
//! restart → the same session with its history, kill -9 of the SDK server → the same
//! session again. Each server also takes the launcher's password, user and config
//! variables.
//!
//! kilo: `GASTOWN_KILO_BIN` or `.tools/kilo` (`scripts/install-kilo.sh`), mandatory under
//! `GASTOWN_REQUIRE_KILO=1`. opencode: `GASTOWN_OPENCODE_BIN` or `.tools/opencode`
//! (`scripts/install-opencode.sh`, opencode 1.18.34), mandatory under
//! `GASTOWN_REQUIRE_OPENCODE=1`. Either skips with a message otherwise. One SDK server at a
//! time: the tests take a shared lock.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gastown_actors::test_support::reply_of;
use gastown_actors::{TownHandle, TownOptions};
use gastown_core::snapshot::SnapshotStore;
use gastown_core::{
    AgentId, AgentLayout, ContainerRuntime, ContainerStatus, EnsureDecision, ProviderConfig,
    SdkLauncher, TownConfig, TownId, TownStore,
};
use gastown_runtime_local::LocalRuntime;
use gastown_scripted_model::{Reply, ScriptedModelServer, DEFAULT_TEXT, MODEL, PROVIDER_ID};

use common::RecordingRuntime;

/// The variable naming the opencode binary explicitly.
const OPENCODE_BIN_ENV: &str = "GASTOWN_OPENCODE_BIN";
/// The variable that turns a missing opencode into a test failure.
const REQUIRE_OPENCODE_ENV: &str = "GASTOWN_REQUIRE_OPENCODE";
/// Where `scripts/install-opencode.sh` links the binary in this workspace.
const TOOLS_OPENCODE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../.tools/opencode/bin/opencode"
);

/// One real SDK server at a time across this file's tests.
static ONE_SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A bound on waits for real processes (a failure guard, not a timing assertion).
const GUARD: Duration = Duration::from_secs(120);

/// The real opencode, or `None` (skip) when it is not installed and not required. A
/// `GASTOWN_OPENCODE_BIN` that names no executable file is a failure, not a skip.
fn opencode() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os(OPENCODE_BIN_ENV).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "{OPENCODE_BIN_ENV}={} is not a file",
            bin.display()
        );
        return Some(bin);
    }
    let tools = Path::new(TOOLS_OPENCODE);
    if tools.is_file() {
        return Some(tools.to_path_buf());
    }
    let why = format!(
        "opencode not installed: set {OPENCODE_BIN_ENV} or run scripts/install-opencode.sh \
         (searched {})",
        tools.display()
    );
    if std::env::var_os(REQUIRE_OPENCODE_ENV).is_some_and(|v| v == "1") {
        panic!("{REQUIRE_OPENCODE_ENV}=1 but {why}");
    }
    eprintln!("skipping: {why}");
    None
}

fn config(town: &str, launcher: SdkLauncher, model: &ScriptedModelServer) -> TownConfig {
    TownConfig::new(TownId::new(town).unwrap())
        .with_sdk(launcher)
        .with_mayor_model(MODEL)
        .with_mayor_small_model(MODEL)
        .with_provider(PROVIDER_ID, ProviderConfig::new(model.provider_entry()))
}

/// A local runtime under `root` that runs `launcher.program` as `bin`, and the same
/// runtime recording spawns.
fn runtime(
    root: &Path,
    launcher: &SdkLauncher,
    bin: &Path,
) -> (Arc<LocalRuntime>, Arc<RecordingRuntime>) {
    let local = Arc::new(
        LocalRuntime::builder(root.to_path_buf())
            .with_program(&launcher.program, bin.to_path_buf())
            .build(),
    );
    (local.clone(), RecordingRuntime::new(local))
}

async fn start(config: TownConfig, state: &Path, rt: Arc<RecordingRuntime>) -> TownHandle {
    TownHandle::start(TownOptions::new(config, state, rt))
        .await
        .unwrap()
}

/// Cold start, a turn and a message, shutdown, restart, kill -9: the same session
/// throughout, and its history with it.
async fn lifecycle(launcher: SdkLauncher, bin: &Path, town_name: &str) {
    let _one = ONE_SERVER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start_local().await.unwrap();
    let state = dir.path().join("state");
    let (local, rt) = runtime(&dir.path().join("c"), &launcher, bin);
    let program = launcher.program.clone();
    let config = config(town_name, launcher.clone(), &model);
    let town_id = config.town.clone();

    // Cold: every phase runs, a session is created.
    let town = start(config.clone(), &state, rt.clone()).await;
    let cold = town.ensure_mayor().await.expect("cold start");
    assert_eq!(cold.report.decision, EnsureDecision::FreshDispatch);
    assert!(cold.session_id.starts_with("ses_"), "{}", cold.session_id);
    let db_path = AgentLayout::new(AgentId::mayor())
        .sdk_database(&launcher)
        .unwrap();
    let db = local.host_path(&town_id, &db_path);
    assert!(db.is_file(), "{program} keeps {}", db.display());
    check_auth_and_config(&town, &launcher, &cold.endpoint).await;

    // A real turn through the scripted provider, and a noReply message.
    let reply = reply_of(&town, "remember the turn", GUARD).await;
    assert_eq!(reply.text, DEFAULT_TEXT);
    assert_eq!(reply.session_id, cold.session_id);
    town.send_mayor_message("remember the message")
        .await
        .expect("noReply message");

    // Shutdown: the container goes, the snapshot holds the session.
    town.shutdown().await.expect("shutdown drains");
    assert_eq!(
        rt.status(&town_id).await.unwrap(),
        ContainerStatus::Absent,
        "the drained container is removed"
    );
    let snapshots = SnapshotStore::new(state.join("snapshots"));
    let snapshot = snapshots.path(&AgentId::mayor());
    assert!(
        gastown_actors::test_support::sqlite_contains(&snapshot, "remember the message"),
        "the snapshot holds the {program} session"
    );
    let store = TownStore::open(&state.join("town.db")).unwrap();
    let recorded = store.agent(&AgentId::mayor()).unwrap().unwrap().session_id;
    assert_eq!(recorded.as_deref(), Some(cold.session_id.as_str()));
    drop(store);

    // Restart from the snapshot: the same session, with its history.
    let town = start(config, &state, rt.clone()).await;
    let again = town.ensure_mayor().await.expect("restart");
    assert_eq!(
        again.session_id, cold.session_id,
        "the same {program} session"
    );
    model.set_default(Reply::text("Welcome back."));
    let woken = reply_of(&town, "what did I say", GUARD).await;
    assert_eq!(woken.text, "Welcome back.");
    assert_eq!(woken.session_id, cold.session_id);
    let history = serde_json::to_string(&model.last_messages()).unwrap();
    for earlier in ["remember the turn", DEFAULT_TEXT, "remember the message"] {
        assert!(
            history.contains(earlier),
            "the restored {program} session holds {earlier:?}: {history}"
        );
    }

    // kill -9 of the SDK server: redispatched to the same session.
    let spawned = rt.spawns_of(&program);
    let pid = town.mayor_info().await.unwrap().unwrap().pid.expect("pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let redispatched = town.ensure_mayor().await.expect("redispatch");
    assert_eq!(
        redispatched.report.decision,
        EnsureDecision::SdkDeadRedispatch
    );
    assert_eq!(redispatched.session_id, cold.session_id);
    assert_eq!(
        rt.spawns_of(&program),
        spawned + 1,
        "one new {program} server"
    );
    town.shutdown().await.unwrap();
}

/// The server took the launcher's password, user and config variables: no request passes
/// without the password, and `GET /config` with it shows the town's model.
async fn check_auth_and_config(town: &TownHandle, launcher: &SdkLauncher, endpoint: &str) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let anonymous = http.get(format!("{endpoint}/config")).send().await.unwrap();
    assert_eq!(
        anonymous.status().as_u16(),
        401,
        "{} without a password",
        launcher.program
    );
    let pid = town.mayor_info().await.unwrap().unwrap().pid.expect("pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let password = environ
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix(&format!("{}=", launcher.password_var)))
        .expect("the password variable is set")
        .to_owned();
    let config: serde_json::Value = http
        .get(format!("{endpoint}/config"))
        .basic_auth(&launcher.username, Some(password))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["model"], MODEL, "{}: {config}", launcher.program);
}

#[tokio::test]
async fn kilo_keeps_its_session_through_shutdown_restart_and_kill_9() {
    let Some(bin) = common::kilo() else { return };
    lifecycle(SdkLauncher::kilo(), &bin, "kilo-life").await;
}

#[tokio::test]
async fn opencode_keeps_its_session_through_shutdown_restart_and_kill_9() {
    let Some(bin) = opencode() else { return };
    lifecycle(SdkLauncher::opencode(), &bin, "opencode-life").await;
}
