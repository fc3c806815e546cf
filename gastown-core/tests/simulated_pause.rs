//! Pause and resume of the simulated runtime (a test double) in virtual time: the scripted
//! durations, the event log, and a frozen SDK server that answers only after the resume.

use gastown_core::simulated::{SimEventKind, SimScript};
use gastown_core::{ContainerOptions, ContainerRuntime, ContainerStatus, Error, Secret};

mod common;

use common::*;

#[tokio::test(start_paused = true)]
async fn pause_and_resume_take_their_scripted_time_and_are_logged() {
    let t = town("pause-time");
    let script = SimScript::zero()
        .with_container_pause(ms(38))
        .with_container_resume(ms(44));
    let rt = started(script, &t).await;
    let ((), took) = timed(async { rt.pause(&t).await.unwrap() }).await;
    assert_eq!(took, ms(38));
    assert_eq!(rt.container_status(&t), ContainerStatus::Paused);
    let ((), again) = timed(async { rt.pause(&t).await.unwrap() }).await;
    assert_eq!(again, ms(0), "pausing a paused container is a free no-op");
    let ((), took) = timed(async { rt.resume(&t).await.unwrap() }).await;
    assert_eq!(took, ms(44));
    assert_eq!(rt.container_status(&t), ContainerStatus::Running);
    let kinds: Vec<SimEventKind> = rt.log().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            SimEventKind::ContainerCreate,
            SimEventKind::ContainerPause,
            SimEventKind::ContainerResume
        ]
    );
    let defaults = SimScript::default();
    assert_eq!(
        (defaults.container_pause, defaults.container_resume),
        (ms(38), ms(44))
    );
}

#[tokio::test(start_paused = true)]
async fn a_frozen_server_answers_only_after_the_resume() {
    let t = town("pause-sdk");
    let rt = started(SimScript::zero().with_sdk_health(ms(5)), &t).await;
    let pw = Secret::random();
    let mut kilo = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    let port = listening_port(&mut kilo).await;
    let c = client(&rt, &t, port, &pw).await;
    c.health().await.unwrap();

    rt.pause(&t).await.unwrap();
    let waiting = tokio::spawn({
        let c = c.clone();
        async move { timed(c.health()).await }
    });
    tokio::time::sleep(ms(1000)).await;
    assert!(!waiting.is_finished(), "a frozen server must not answer");
    rt.resume(&t).await.unwrap();
    let (health, took) = waiting.await.unwrap();
    assert!(health.unwrap().healthy);
    assert_eq!(
        took,
        ms(1005),
        "answered after the resume, plus its own 5 ms"
    );
    assert!(kilo.handle.status().await.is_alive());
}

#[tokio::test(start_paused = true)]
async fn a_call_to_a_frozen_server_times_out_like_the_real_client() {
    let t = town("pause-timeout");
    let rt = started(SimScript::zero(), &t).await;
    let pw = Secret::random();
    let mut kilo = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    let port = listening_port(&mut kilo).await;
    let c = client(&rt, &t, port, &pw).await;
    rt.pause(&t).await.unwrap();
    match c.list_sessions().await {
        Err(Error::Sdk {
            timed_out: true, ..
        }) => {}
        other => panic!("a call to a frozen server must time out, got {other:?}"),
    }
    // Stopping the paused container ends the server; start makes a new container.
    rt.stop(&t, ms(100)).await.unwrap();
    assert_eq!(rt.container_status(&t), ContainerStatus::Exited);
    assert!(!kilo.handle.status().await.is_alive());
    let info = rt.start(&t, &ContainerOptions::default()).await.unwrap();
    assert!(info.created);
}

#[tokio::test(start_paused = true)]
async fn a_server_booting_when_paused_listens_only_after_the_resume() {
    let t = town("pause-boot");
    let rt = started(SimScript::zero().with_sdk_boot(ms(100)), &t).await;
    let pw = Secret::random();
    let mut kilo = rt.spawn(&t, &kilo_command(&t, "mayor", &pw)).await.unwrap();
    rt.pause(&t).await.unwrap();
    tokio::time::sleep(ms(500)).await;
    assert!(
        kilo.output.try_recv().is_err(),
        "no listening line while frozen"
    );
    rt.resume(&t).await.unwrap();
    let (_, took) = timed(listening_port(&mut kilo)).await;
    assert_eq!(took, ms(0), "it listens at the resume");
}
