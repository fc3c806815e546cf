//! The real-turn calls of the simulated SDK server (a test double, `gastown_core::simulated`),
//! which runs no model: `prompt_async` stores the user message with no reply, every session
//! is idle, and the event stream says `server.connected` then stays silent. Under
//! `start_paused`, so virtual time is exact.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gastown_core::env::{build_agent_env, AgentEnvInput};
use gastown_core::sdk::{parse_listening_line, SdkApi, SdkClientOptions, SdkEvent};
use gastown_core::simulated::{SimScript, SimulatedRuntime};
use gastown_core::{
    AgentId, AgentLayout, CommandSpec, ContainerOptions, ContainerRuntime, ContainerRuntimeExt,
    Error, ModelRef, Role, SdkLauncher, Secret, TownId,
};

async fn server(rt: &SimulatedRuntime, t: &TownId, password: &Secret) -> Arc<dyn SdkApi> {
    rt.start(t, &ContainerOptions::default()).await.unwrap();
    let agent = AgentId::new("mayor").unwrap();
    let layout = AgentLayout::new(agent.clone());
    rt.create_dir_all(t, &layout.kilo_db().parent().unwrap())
        .await
        .unwrap();
    rt.create_dir_all(t, &layout.workspace()).await.unwrap();
    let launcher = SdkLauncher::kilo();
    let env = build_agent_env(&AgentEnvInput {
        town: t,
        agent: &agent,
        role: Role::Mayor,
        launcher: &launcher,
        model: "scripted/scripted-1",
        small_model: "scripted/scripted-1",
        password,
        token: &Secret::random(),
        credentials: &BTreeMap::new(),
    });
    let cmd = CommandSpec::new("kilo")
        .args(["serve", "--port", "0", "--hostname", "127.0.0.1"])
        .envs(env.vars)
        .cwd(layout.workspace());
    let mut spawned = rt.spawn(t, &cmd).await.unwrap();
    let port = loop {
        let line = spawned.output.recv().await.expect("the server exited");
        if let Some((_, port)) = parse_listening_line(&line.line) {
            break port;
        }
    };
    let url = rt.endpoint(t, port).await.unwrap();
    rt.sdk_connector()
        .connect(
            url,
            "kilo".into(),
            password.clone(),
            SdkClientOptions::default(),
        )
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_simulated_turn_stores_the_prompt_and_stays_idle() {
    let rt = SimulatedRuntime::new(SimScript::zero());
    let t = TownId::new("sim-turns").unwrap();
    let password = Secret::random();
    let client = server(&rt, &t, &password).await;
    let session = client.create_session("mayor").await.unwrap();
    let model = ModelRef::parse("scripted/scripted-1").unwrap();

    let mut events = client.events().await.unwrap();
    assert_eq!(
        events.next().await.unwrap().unwrap(),
        SdkEvent::ServerConnected
    );
    client
        .prompt_async(&session.id, &model, "hi")
        .await
        .unwrap();
    let messages = client.messages(&session.id).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        (messages[0].role.as_str(), messages[0].text.as_str()),
        ("user", "hi")
    );
    assert!(client.session_status().await.unwrap().is_empty());
    assert!(client.abort(&session.id).await.unwrap());
    // Nothing else arrives: no turn runs in the simulated server.
    let silent = tokio::time::timeout(Duration::from_secs(3600), events.next()).await;
    assert!(silent.is_err(), "{silent:?}");

    let err = client.messages("ses_missing").await.unwrap_err();
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
    let err = client.prompt_async("../x", &model, "hi").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sdk {
                operation: "prompt_async",
                ..
            }
        ),
        "{err:?}"
    );

    rt.stop(&t, Duration::ZERO).await.unwrap();
    assert!(
        client.session_status().await.is_err(),
        "a stopped server refuses"
    );
    assert!(client.events().await.is_err());
}
