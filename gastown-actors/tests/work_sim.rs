//! Workers and the reconciler in virtual time on the simulated runtime (a test double
//! whose every operation takes a scripted duration; `tokio::time::pause` makes the clock
//! exact): beads slung across rigs reach one polecat each, a polecat's turn end puts its
//! bead in review with a merge request, failed dispatches are retried 30 s apart at most
//! 5 times, idle workers exit after 120 s (polecat) / 600 s (refinery), and the container
//! stops once no work is left and the mayor is quiet.
//!
//! The simulated SDK server runs no model: a prompt is stored and the session stays idle,
//! so a turn ends when the town's watcher polls the status of a silent stream (20 s). Its
//! `git rev-list` prints what the script says (`1`: one new commit on the branch).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gastown_actors::{AgentSpec, Error, TownHandle, TownOptions};
use gastown_core::reconciler::ReconcileEvent;
use gastown_core::simulated::{SimScript, SimulatedRuntime};
use gastown_core::store::BeadKind;
use gastown_core::{
    AgentId, BeadId, BeadStatus, ContainerStatus, RigConfig, RigId, Role, TownConfig, TownId,
    TownStore,
};

const SEC: Duration = Duration::from_secs(1);

fn script() -> SimScript {
    SimScript::zero()
        .with_container_create(Duration::from_millis(1500))
        .with_sdk_boot(Duration::from_millis(2500))
        .with_sdk_health(Duration::from_millis(5))
        .with_sdk_send_message(Duration::from_millis(50))
        .with_git_stdout("rev-list", "1\n")
}

fn rig(i: usize) -> RigId {
    RigId::new(format!("rig-{i}")).unwrap()
}

fn config(rigs: usize) -> TownConfig {
    let mut c = TownConfig::new(TownId::new("work").unwrap());
    for i in 0..rigs {
        c = c.with_rig(RigConfig::new(
            rig(i),
            format!("https://example.invalid/rig-{i}.git"),
        ));
    }
    c
}

async fn start(rt: &Arc<SimulatedRuntime>, state: &std::path::Path, quiet: Duration) -> TownHandle {
    let options = TownOptions::new(config(5), state, rt.clone())
        .with_sdk_connector(rt.sdk_connector())
        .with_idle_stop_after(quiet)
        .with_pause(false, Duration::ZERO);
    TownHandle::start(options).await.unwrap()
}

fn registered(state: &std::path::Path) -> BTreeSet<String> {
    let store = TownStore::open(&state.join("town.db")).unwrap();
    store
        .registry()
        .unwrap()
        .into_iter()
        .map(|e| e.agent.to_string())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn twenty_beads_across_five_rigs_reach_review_and_the_workers_exit() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(script());
    let town = start(&rt, &state, Duration::from_secs(300)).await;
    town.ensure_mayor().await.unwrap();

    let mut slung = Vec::new();
    for i in 0..20 {
        let bead = town
            .create_bead_with_id(
                BeadId::new(format!("b-{i}")).unwrap(),
                &format!("task {i}"),
                "do it",
            )
            .unwrap();
        slung.push(town.sling(&bead.id, &rig(i % 5)).await.unwrap());
    }
    let polecats: BTreeSet<_> = slung.iter().map(|s| s.polecat.clone()).collect();
    assert_eq!(polecats.len(), 20, "one polecat per bead");
    for s in &slung {
        assert_eq!(s.branch, format!("gt/{}/{}", s.polecat, s.bead));
        let bead = town.bead(&s.bead).unwrap().unwrap();
        assert_eq!(bead.status, BeadStatus::InProgress);
        assert_eq!(bead.assignee.as_ref(), Some(&s.polecat));
    }

    // Boots, prompts, turn ends (status polls), work checks, one reconciler tick.
    tokio::time::sleep(60 * SEC).await;
    let beads = town.beads().unwrap();
    for s in &slung {
        let bead = beads.iter().find(|b| b.id == s.bead).unwrap();
        assert_eq!(bead.status, BeadStatus::InReview, "{bead:?}");
        let mr = beads
            .iter()
            .find(|b| b.kind == BeadKind::MergeRequest && b.source_bead.as_ref() == Some(&s.bead))
            .unwrap_or_else(|| panic!("no merge request for {}", s.bead));
        assert_eq!(mr.status, BeadStatus::Open, "{mr:?}");
        assert_eq!(mr.branch.as_deref(), Some(s.branch.as_str()), "{mr:?}");
    }
    assert_eq!(
        rt.spawns_of("kilo"),
        21,
        "the mayor and one server per polecat"
    );
    let store = TownStore::open(&state.join("town.db")).unwrap();
    for p in &polecats {
        let agent = store.agent(p).unwrap().unwrap();
        assert_eq!(agent.hook, None, "{p} unhooked after review");
        assert!(agent.heartbeat_ms.is_some(), "{p} has a heartbeat");
    }

    // 120 s after their turns ended the polecats exit: unregistered, servers stopped.
    assert_eq!(registered(&state).len(), 21);
    tokio::time::sleep(100 * SEC).await;
    assert_eq!(registered(&state), BTreeSet::from(["mayor".to_owned()]));
    assert_eq!(rt.live_processes(&TownId::new("work").unwrap()).len(), 1);

    // Merge requests are live work: the container stays. Closing them leaves none, and
    // the idle stop follows the mayor's quiet window.
    assert_eq!(rt.container_status(town.town()), ContainerStatus::Running);
    for b in town.beads().unwrap() {
        if b.kind == BeadKind::MergeRequest {
            town.update_bead_status(&b.id, BeadStatus::Closed).unwrap();
        }
    }
    tokio::time::sleep(600 * SEC).await;
    assert_ne!(rt.container_status(town.town()), ContainerStatus::Running);
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_dispatch_that_keeps_failing_is_retried_five_times_then_the_bead_fails() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // Every polecat's worktree fails: the start fails before any SDK server is spawned.
    let rt = SimulatedRuntime::new(script().with_failing_git("worktree"));
    let town = start(&rt, &state, Duration::from_secs(86_400)).await;
    town.ensure_mayor().await.unwrap();
    let bead = town.create_bead("broken", "never starts").unwrap();
    town.sling(&bead.id, &rig(0)).await.unwrap();

    let mut seen = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(10 * SEC).await;
        let b = town.bead(&bead.id).unwrap().unwrap();
        seen.push((b.status, b.dispatch_attempts));
        if b.status == BeadStatus::Failed {
            break;
        }
    }
    let b = town.bead(&bead.id).unwrap().unwrap();
    assert_eq!(b.status, BeadStatus::Failed, "{seen:?}");
    assert_eq!(b.dispatch_attempts, 5);
    assert!(
        b.last_error.as_deref().unwrap_or("").contains("worktree"),
        "{b:?}"
    );
    assert_eq!(rt.spawns_of("kilo"), 1, "only the mayor's server ever ran");
    // Nothing more is tried.
    tokio::time::sleep(300 * SEC).await;
    assert_eq!(town.bead(&bead.id).unwrap().unwrap().dispatch_attempts, 5);
    assert_eq!(registered(&state), BTreeSet::from(["mayor".to_owned()]));
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_refinery_exits_after_600_s_idle_and_the_mayor_never_does() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(script());
    let town = start(&rt, &state, Duration::from_secs(86_400)).await;
    town.ensure_mayor().await.unwrap();
    let refinery = AgentId::new("refinery-1").unwrap();
    town.start_agent(AgentSpec::worker(
        refinery.clone(),
        Role::Refinery,
        "a/b",
        "a/c",
    ))
    .await
    .unwrap();
    tokio::time::sleep(590 * SEC).await;
    assert!(
        registered(&state).contains("refinery-1"),
        "still inside its window"
    );
    tokio::time::sleep(20 * SEC).await;
    assert!(
        !registered(&state).contains("refinery-1"),
        "exited after 600 s idle"
    );
    tokio::time::sleep(3_600 * SEC).await;
    assert!(
        registered(&state).contains("mayor"),
        "the mayor never idle-exits"
    );
    assert!(town.mayor_info().await.unwrap().unwrap().pid.is_some());
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn bad_slings_are_typed_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(script());
    let town = start(&rt, &state, Duration::from_secs(86_400)).await;
    let bead = town.create_bead("real", "work").unwrap();
    let before = town.beads().unwrap();

    let unknown_rig = RigId::new("nope").unwrap();
    assert!(matches!(
        town.sling(&bead.id, &unknown_rig).await,
        Err(Error::UnknownRig { rig }) if rig == unknown_rig
    ));
    let missing = BeadId::new("missing").unwrap();
    assert!(matches!(
        town.sling(&missing, &rig(0)).await,
        Err(Error::BeadNotFound { bead }) if bead == missing
    ));
    town.delete_bead(&bead.id).unwrap();
    assert!(matches!(
        town.sling(&bead.id, &rig(0)).await,
        Err(Error::BeadNotFound { .. })
    ));
    let closed = town.create_bead("done", "already").unwrap();
    town.update_bead_status(&closed.id, BeadStatus::Closed)
        .unwrap();
    assert!(matches!(
        town.sling(&closed.id, &rig(0)).await,
        Err(Error::BeadNotSlingable { .. })
    ));
    assert!(matches!(
        town.update_bead_status(&missing, BeadStatus::Closed),
        Err(Error::BeadNotFound { .. })
    ));
    // An event about an agent that does not exist is terminal: processed on the next tick,
    // never retried, and it changes nothing.
    let store = TownStore::open(&state.join("town.db")).unwrap();
    let ghost = AgentId::new("polecat-ghost").unwrap();
    store
        .enqueue(&ReconcileEvent::AgentExited {
            agent: ghost.clone(),
        })
        .unwrap();
    store
        .enqueue(&ReconcileEvent::WorkChecked {
            bead: missing.clone(),
            agent: ghost,
            branch: "gt/polecat-ghost/missing".into(),
            commits: 1,
            head: None,
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(301)).await;
    assert!(store.pending_reconcile_events().unwrap().is_empty());

    // Nothing started, nothing else changed.
    assert_eq!(rt.spawns_of("kilo"), 0);
    assert_eq!(registered(&state), BTreeSet::new());
    let after: Vec<_> = town
        .beads()
        .unwrap()
        .into_iter()
        .filter(|b| b.id != closed.id)
        .collect();
    assert_eq!(
        after,
        before
            .into_iter()
            .filter(|b| b.id != bead.id)
            .collect::<Vec<_>>()
    );
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_idle_stop_drains_idle_workers_out_of_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(script());
    // The mayor's quiet window (5 min) ends well before the refinery's own (600 s).
    let town = start(&rt, &state, Duration::from_secs(300)).await;
    town.ensure_mayor().await.unwrap();
    town.start_agent(AgentSpec::worker(
        AgentId::new("refinery-1").unwrap(),
        Role::Refinery,
        "a/b",
        "a/c",
    ))
    .await
    .unwrap();
    assert!(registered(&state).contains("refinery-1"));
    tokio::time::sleep(400 * SEC).await;
    // The container drained: the idle refinery exited (10 s while draining) and left the
    // registry, so the next wake boots only the mayor.
    assert_ne!(rt.container_status(town.town()), ContainerStatus::Running);
    assert_eq!(registered(&state), BTreeSet::from(["mayor".to_owned()]));
    town.ensure_mayor().await.unwrap();
    tokio::time::sleep(10 * SEC).await;
    assert_eq!(
        rt.spawns_of("kilo"),
        3,
        "mayor, refinery, then the mayor again"
    );
    town.shutdown().await.unwrap();
}
