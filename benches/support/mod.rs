//! Scenarios shared by `benches/cold_start.rs` and `examples/cold_start_report.rs`: the
//! mayor-first actor path against the serial schedule of the Gastown cold-start analysis
//! (ARCHITECTURE.md, *Phase path*) on the simulated runtime (a test double, in virtual
//! time), and against a bare "physical floor" sequence on real
//! runtimes with the real kilo.
//!
//! Not a library API: bench and example code only.

#![allow(dead_code, unreachable_pub)]

pub mod fields;
pub mod host_restart;
pub mod pool;
pub mod scale;
pub mod storm;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gastown::actors::bench_support::SerialTown;
use gastown::actors::{AgentSpec, TownEvent, TownHandle, TownOptions};
use gastown::core::env::{build_agent_env, AgentEnvInput};
use gastown::core::sdk::{parse_listening_line, SdkApi, SdkClient, SdkClientOptions};
use gastown::core::simulated::{SimScript, SimulatedRuntime};
use gastown::core::{
    AgentId, AgentLayout, CommandSpec, ContainerOptions, ContainerRuntime, ContainerRuntimeExt,
    EnsureDecision, ModelRef, RigConfig, RigId, Role, SdkLauncher, Secret, SpawnedProcess,
    TownConfig, TownId, TownStore,
};
use tokio::time::Instant;

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: &'static str,
    pub runtime: &'static str,
    pub agents: usize,
    pub rigs: usize,
    pub mayor_ready_ms: f64,
    pub floor_ms: f64,
}

impl Row {
    pub fn ratio(&self) -> f64 {
        self.mayor_ready_ms / self.floor_ms
    }

    pub fn json(&self) -> String {
        serde_json::json!({
            "scenario": self.scenario,
            "runtime": self.runtime,
            "agents": self.agents,
            "rigs": self.rigs,
            "mayor_ready_ms": round2(self.mayor_ready_ms),
            "floor_ms": round2(self.floor_ms),
            "ratio": (self.ratio() * 1000.0).round() / 1000.0,
        })
        .to_string()
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------- simulated (virtual time)

/// The script the simulated scenarios use: the defaults (realistic orders of magnitude).
pub fn sim_script() -> SimScript {
    SimScript::default()
}

/// The physical floor of a first cold mayor start on the simulated runtime: container
/// start + hydrate (nothing to restore: a directory) + SDK boot + health + session list and
/// create.
pub fn sim_floor(s: &SimScript) -> Duration {
    s.container_create
        + s.mkdir
        + s.sdk_boot
        + s.sdk_health
        + s.sdk_list_sessions
        + s.sdk_create_session
}

fn sim_config(rigs: usize) -> TownConfig {
    let mut c = TownConfig::new(TownId::new("bench").unwrap());
    for i in 0..rigs {
        c = c.with_rig(RigConfig::new(
            RigId::new(format!("rig-{i}")).unwrap(),
            format!("https://example.invalid/rig-{i}.git"),
        ));
    }
    c
}

fn sim_state(dir: &Path, agents: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let store = TownStore::open(&dir.join("town.db")).unwrap();
    for i in 0..agents {
        store
            .register(
                &AgentId::new(format!("polecat-{i}")).unwrap(),
                Role::Polecat,
            )
            .unwrap();
    }
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Mayor-ready time (virtual) of the actor path with `agents` registered and `rigs` rigs.
pub fn sim_mayor_first(agents: usize, rigs: usize) -> Duration {
    paused_runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        sim_state(&state, agents);
        let rt = SimulatedRuntime::new(sim_script());
        let options = TownOptions::new(sim_config(rigs), &state, rt.clone())
            .with_sdk_connector(rt.sdk_connector());
        let town = TownHandle::start(options).await.unwrap();
        let t0 = Instant::now();
        town.ensure_mayor().await.unwrap();
        let ready = t0.elapsed();
        town.shutdown().await.unwrap();
        ready
    })
}

/// Mayor-ready time (virtual) of the serial schedule the Gastown cold-start analysis
/// measured, built from the same phase steps: live token refresh to a cold container
/// (starting it), registry fetch, every registered agent resumed one after another, browse
/// worktrees for every rig, then the mayor's start.
pub fn sim_seed_serial(agents: usize, rigs: usize) -> Duration {
    paused_runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        sim_state(&state, agents);
        let rt = SimulatedRuntime::new(sim_script());
        let options = TownOptions::new(sim_config(rigs), &state, rt.clone())
            .with_sdk_connector(rt.sdk_connector());
        let serial = SerialTown::open(options).unwrap();
        let mayor = serial.mayor();
        let t0 = Instant::now();
        serial.start_container().await.unwrap();
        serial.live_token_refresh().await.unwrap();
        let mut agents_started = Vec::new();
        for entry in serial.registry().unwrap() {
            let spec = AgentSpec::worker(entry.agent, entry.role, &mayor.model, &mayor.small_model);
            agents_started.push(serial.start_agent(spec).await.unwrap());
        }
        serial.browse_worktrees(mayor.clone()).await;
        serial.start_agent(mayor).await.unwrap();
        t0.elapsed()
    })
}

// ---------------------------------------------------------------- real runtimes

/// A fresh town id per run, so runs never share a container.
pub fn town_id(prefix: &str, n: usize) -> TownId {
    TownId::new(format!("{prefix}-{}-{n}", std::process::id())).unwrap()
}

/// The bare sequence without the actors: start the container, make the agent's dirs and
/// its workspace's git repository (one exec), start kilo with the same env builder and wait for health, create or resume a session.
pub struct Bare {
    pub client: Arc<dyn SdkApi>,
    pub process: SpawnedProcess,
    pub session_id: String,
}

pub async fn bare_start(
    rt: &Arc<dyn ContainerRuntime>,
    town: &TownId,
    model: &str,
    start_container: bool,
) -> Bare {
    let agent = AgentId::mayor();
    let layout = AgentLayout::new(agent.clone());
    if start_container {
        rt.start(town, &ContainerOptions::default()).await.unwrap();
    }
    // The agent's directories and its workspace as a git repository with one empty commit
    // (fixed dates), in one exec — the worktrees phase's own command: what every start
    // must make. kilo keys its sessions by the
    // workspace's root commit, and its first requests naming a git workspace cost about
    // 130 ms more than on a plain directory (kilo 7.7.9, measured here), so a floor without
    // the repository would be one no mayor start can reach.
    let workspace = gastown::actors::bench_support::workspace_command(
        &layout,
        &[layout.kilo_db().parent().unwrap()],
    );
    rt.exec_ok(town, &workspace).await.unwrap();
    let launcher = SdkLauncher::kilo();
    let password = Secret::random();
    let env = build_agent_env(&AgentEnvInput {
        town,
        agent: &agent,
        role: Role::Mayor,
        launcher: &launcher,
        model,
        small_model: "anthropic/claude-haiku-4.5",
        password: &password,
        token: &Secret::random(),
        credentials: &BTreeMap::new(),
    });
    let cmd = CommandSpec::new("kilo")
        // A free port passed explicitly, as the library's sdk phase does (`--port 0` makes
        // kilo try 4096 first and rebuild its server when that is taken).
        .args(["serve", "--port"])
        .arg(free_port().to_string())
        .args(["--hostname", rt.sdk_bind_host()])
        .envs(env.vars)
        .cwd(layout.workspace());
    let mut process = rt.spawn(town, &cmd).await.unwrap();
    let port = loop {
        let line = process
            .output
            .recv()
            .await
            .expect("kilo exited before listening");
        if let Some((_, port)) = parse_listening_line(&line.line) {
            break port;
        }
    };
    let endpoint = rt.endpoint(town, port).await.unwrap();
    let client: Arc<dyn SdkApi> =
        Arc::new(SdkClient::new(endpoint, "kilo", password, SdkClientOptions::default()).unwrap());
    client
        .wait_healthy(Duration::from_secs(60), Duration::from_millis(25))
        .await
        .unwrap();
    let sessions = client.list_sessions().await.unwrap();
    let session_id = match gastown::core::sdk::newest_session(&sessions) {
        Some(s) => s.id.clone(),
        None => client.create_session("mayor").await.unwrap().id,
    };
    Bare {
        client,
        process,
        session_id,
    }
}

pub async fn bare_stop(bare: Bare) {
    let _ = bare.process.handle.kill(Duration::from_secs(5)).await;
}

pub type MakeOptions<'a> = dyn Fn(&Path, &TownId) -> TownOptions + 'a;

/// `cold`: a fresh town, no container, no snapshot: `ensure_mayor` against the bare
/// sequence, alternating, medians of `runs` each.
pub async fn real_cold(
    rt: &Arc<dyn ContainerRuntime>,
    options: &MakeOptions<'_>,
    runs: usize,
) -> (f64, f64) {
    let (mut actor, mut floor) = (Vec::new(), Vec::new());
    for n in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let town = town_id("cold", n);
        let handle = TownHandle::start(options(dir.path(), &town)).await.unwrap();
        let t0 = Instant::now();
        handle.ensure_mayor().await.unwrap();
        actor.push(ms(t0.elapsed()));
        handle.shutdown().await.unwrap();

        let bare_town = town_id("cold-floor", n);
        let t0 = Instant::now();
        let bare = bare_start(rt, &bare_town, "anthropic/claude-sonnet-4.6", true).await;
        floor.push(ms(t0.elapsed()));
        bare_stop(bare).await;
        rt.remove(&bare_town).await.unwrap();
    }
    (median(actor), median(floor))
}

/// `warm_prewarmed`: the container is up and boot hydration prewarmed the mayor;
/// `ensure_mayor` against one session resume round trip on a bare server.
pub async fn real_warm_prewarmed(
    rt: &Arc<dyn ContainerRuntime>,
    options: &MakeOptions<'_>,
    runs: usize,
) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let town = town_id("warm", 0);
    let handle = TownHandle::start(options(dir.path(), &town)).await.unwrap();
    handle.warm_up().await.unwrap();
    let bare_town = town_id("warm-floor", 0);
    let bare = bare_start(rt, &bare_town, "anthropic/claude-sonnet-4.6", true).await;
    let (mut actor, mut floor) = (Vec::new(), Vec::new());
    // Round trips of a few ms: more samples than the slow scenarios, same alternation.
    for _ in 0..runs.max(5) * 4 {
        let t0 = Instant::now();
        let ready = handle.ensure_mayor().await.unwrap();
        actor.push(ms(t0.elapsed()));
        assert!(ready.report.prewarmed);
        let t0 = Instant::now();
        bare.client.list_sessions().await.unwrap();
        floor.push(ms(t0.elapsed()));
    }
    bare_stop(bare).await;
    rt.remove(&bare_town).await.unwrap();
    handle.shutdown().await.unwrap();
    (median(actor), median(floor))
}

/// `warm_model_changed`: a live mayor whose model changes: `ensure_mayor` (the server is
/// kept — only the models differ — the session resumed, the model pushed with a `noReply`)
/// against one `noReply` round trip on a bare running server: the floor of a model change
/// that is not a restart.
pub async fn real_warm_model_changed(
    rt: &Arc<dyn ContainerRuntime>,
    options: &MakeOptions<'_>,
    runs: usize,
) -> (f64, f64) {
    let models = ["anthropic/claude-opus-4.1", "anthropic/claude-sonnet-4.6"];
    let dir = tempfile::tempdir().unwrap();
    let town = town_id("model", 0);
    let handle = TownHandle::start(options(dir.path(), &town)).await.unwrap();
    handle.ensure_mayor().await.unwrap();
    let bare_town = town_id("model-floor", 0);
    let bare = bare_start(rt, &bare_town, models[1], true).await;
    let (mut actor, mut floor) = (Vec::new(), Vec::new());
    for n in 0..runs {
        let model = models[n % 2];
        handle.update_mayor_model(model, None).await.unwrap();
        let t0 = Instant::now();
        handle.ensure_mayor().await.unwrap();
        actor.push(ms(t0.elapsed()));

        let t0 = Instant::now();
        bare.client
            .send_no_reply(
                &bare.session_id,
                &ModelRef::parse(model).unwrap(),
                "[gastown] model changed",
            )
            .await
            .unwrap();
        floor.push(ms(t0.elapsed()));
    }
    bare_stop(bare).await;
    rt.remove(&bare_town).await.unwrap();
    handle.shutdown().await.unwrap();
    (median(actor), median(floor))
}

/// The idle window of the `wake_paused` towns: the library pauses them this long after the
/// mayor went quiet (the alarm ticks at most a second apart with a window this short).
pub const WAKE_QUIET: Duration = Duration::from_secs(1);

/// How long a `wake_paused` sample waits for the library to pause its town.
const PAUSE_WAIT: Duration = Duration::from_secs(60);

/// `wake_paused`: `ensure_mayor` on a town the library paused itself (idle window
/// [`WAKE_QUIET`], pause on, stopped only after an hour paused), which must decide
/// `resume_paused`; the median of `runs` samples.
///
/// One town per sample: the library does not pause a woken town again within a short
/// window (the alarm's next tick after a pause is `stop_paused_after` later, and the idle
/// decision is throttled to one per 2 min), so repeated cycles on one town would take
/// that long each.
pub async fn real_wake_paused(options: &MakeOptions<'_>, runs: usize) -> f64 {
    let mut wake = Vec::new();
    for n in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let town = town_id("wake", n);
        let options = options(dir.path(), &town)
            .with_idle_stop_after(WAKE_QUIET)
            .with_pause(true, Duration::from_secs(3600));
        let handle = TownHandle::start(options).await.unwrap();
        let mut events = handle.events();
        handle.ensure_mayor().await.unwrap();
        let paused = tokio::time::timeout(PAUSE_WAIT, async {
            while let Some(record) = events.next().await {
                if record.event == TownEvent::ContainerPaused {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(paused, Ok(true)),
            "wake_paused sample {n}: the town was not paused within {PAUSE_WAIT:?}"
        );
        let t0 = Instant::now();
        let ready = handle.ensure_mayor().await.unwrap();
        let elapsed = ms(t0.elapsed());
        assert_eq!(
            ready.report.decision,
            EnsureDecision::ResumePaused,
            "wake_paused sample {n}: ensure_mayor on the paused town did not resume it"
        );
        wake.push(elapsed);
        handle.shutdown().await.unwrap();
    }
    median(wake)
}

/// A port free on this host right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
