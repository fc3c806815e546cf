//! Helpers shared by the simulated runtime's test files: a script with distinct
//! durations, the SDK server command the actors build, and small timing helpers.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gastown_core::env::{build_agent_env, AgentEnvInput};
use gastown_core::sdk::{parse_listening_line, SdkApi, SdkClientOptions};
use gastown_core::simulated::{SimScript, SimulatedRuntime};
use gastown_core::{
    AgentId, AgentLayout, CommandSpec, ContainerOptions, ContainerPath, ContainerRuntime, Role,
    SdkLauncher, Secret, SpawnedProcess, Stream, TownId,
};
use tokio::time::Instant;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn town(name: &str) -> TownId {
    TownId::new(name).unwrap()
}

pub fn path(p: &str) -> ContainerPath {
    ContainerPath::new(p).unwrap()
}

/// A script whose durations are all different, so a wrong charge cannot hide.
pub fn distinct_script() -> SimScript {
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
pub fn kilo_command(t: &TownId, agent: &str, password: &Secret) -> CommandSpec {
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

pub fn data_dir(agent: &str) -> ContainerPath {
    AgentLayout::new(AgentId::new(agent).unwrap()).data()
}

/// Reads the server's output until its listening line; returns the port.
pub async fn listening_port(spawned: &mut SpawnedProcess) -> u16 {
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

pub async fn client(rt: &SimulatedRuntime, t: &TownId, port: u16, pw: &Secret) -> Arc<dyn SdkApi> {
    let url = rt.endpoint(t, port).await.unwrap();
    rt.sdk_connector()
        .connect(url, "kilo".into(), pw.clone(), SdkClientOptions::default())
        .unwrap()
}

pub async fn started(script: SimScript, t: &TownId) -> Arc<SimulatedRuntime> {
    let rt = SimulatedRuntime::new(script);
    rt.start(t, &ContainerOptions::default()).await.unwrap();
    rt
}

/// Runs `op` and returns how much virtual time it took.
pub async fn timed<T>(op: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = op.await;
    (out, start.elapsed())
}
