//! The pure policies driven through the public API, with their inputs read from a real
//! town store (SQLite file in a temp dir), as the TownActor's alarm tick will.

use std::time::Duration;

use gastown_core::policy::{
    alarm_interval, decide_ensure, has_active_work, idle_exit_after, is_heartbeat_stale,
    next_dispatch_attempt, should_probe_health, should_refresh_token, should_stop_idle_container,
    should_unhook, DispatchVerdict, EnsureObservation, IdleStopInput, ServerObservation,
    TokenRefreshInput, TownView,
};
use gastown_core::store::{town_view, AgentRecord, BeadRecord, BeadStatus};
use gastown_core::{AgentId, AgentStatus, BeadId, BeadKind, EnsureDecision, Role, TownStore};

const NOW: i64 = 1_700_000_000_000;
const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const TOKEN_REFRESH_KEY: &str = "token_refresh_ms";

fn open(dir: &tempfile::TempDir) -> TownStore {
    TownStore::open(&dir.path().join("town.db")).unwrap()
}

fn view(store: &TownStore, bead_ids: &[&str]) -> TownView {
    let agents = store.agents().unwrap();
    let beads: Vec<BeadRecord> = bead_ids
        .iter()
        .filter_map(|id| store.bead(&bead_id(id)).unwrap())
        .collect();
    town_view(&agents, &beads)
}

fn bead_id(id: &str) -> BeadId {
    BeadId::new(id).unwrap()
}

fn bead(id: &str, kind: BeadKind, status: BeadStatus, assignee: Option<AgentId>) -> BeadRecord {
    BeadRecord {
        kind,
        status,
        assignee,
        ..BeadRecord::issue(bead_id(id), "", "", NOW)
    }
}

fn mayor(status: AgentStatus, last_activity_ms: i64) -> AgentRecord {
    let mut m = AgentRecord::new(AgentId::mayor(), Role::Mayor);
    m.status = status;
    m.last_activity_ms = Some(last_activity_ms);
    m.heartbeat_ms = Some(last_activity_ms);
    m
}

/// Kilo Gastown #1450's bug end to end: a town whose only agent is a waiting mayor has no active
/// work, ticks slowly, sends no probes, and its container is stopped once the mayor has
/// been quiet for 5 min.
#[test]
fn a_waiting_mayor_lets_the_town_sleep() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .upsert_agent(&mayor(AgentStatus::Waiting, NOW - 6 * MIN))
        .unwrap();

    let town = view(&store, &[]);
    let active = has_active_work(&town, NOW);
    assert!(!active);
    assert_eq!(alarm_interval(active), Duration::from_secs(300));
    assert!(!should_probe_health(active));

    let stored_mayor = store.agent(&AgentId::mayor()).unwrap().unwrap();
    let input = IdleStopInput {
        active_work: active,
        mayor_status: Some(stored_mayor.status),
        mayor_last_activity_ms: stored_mayor.last_activity_ms,
        container_running_healthy: true,
        last_stop_attempt_ms: store.time_get("idle_stop_ms").unwrap(),
    };
    assert!(should_stop_idle_container(input, NOW));

    // The caller stamps the attempt; the next tick inside 2 min does not retry.
    store.time_set("idle_stop_ms", NOW).unwrap();
    let again = IdleStopInput {
        last_stop_attempt_ms: store.time_get("idle_stop_ms").unwrap(),
        ..input
    };
    assert!(!should_stop_idle_container(again, NOW + MIN));
    assert!(should_stop_idle_container(again, NOW + 5 * MIN));
}

#[test]
fn worker_and_bead_state_from_the_store_is_active_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .upsert_agent(&mayor(AgentStatus::Working, NOW))
        .unwrap();
    assert!(
        !has_active_work(&view(&store, &[]), NOW),
        "a working mayor alone"
    );

    // An unassigned open issue.
    store
        .insert_bead(&bead("b1", BeadKind::Issue, BeadStatus::Open, None))
        .unwrap();
    assert!(has_active_work(&view(&store, &["b1"]), NOW));

    // Assigned to a polecat that is idle but holds its hook: still active.
    let polecat = AgentId::new("polecat-1").unwrap();
    store.delete_bead(&bead_id("b1")).unwrap();
    store
        .insert_bead(&bead(
            "b1",
            BeadKind::Issue,
            BeadStatus::Open,
            Some(polecat.clone()),
        ))
        .unwrap();
    let mut worker = AgentRecord::new(polecat.clone(), Role::Polecat);
    worker.hook = Some("b1".into());
    worker.heartbeat_ms = Some(NOW - 10 * SEC);
    store.upsert_agent(&worker).unwrap();
    let town = view(&store, &["b1"]);
    assert!(has_active_work(&town, NOW));
    assert_eq!(alarm_interval(true), Duration::from_secs(5));

    // Its heartbeat is fresh: it keeps the hook; once stale, it loses it.
    let w = store.agent(&polecat).unwrap().unwrap();
    assert!(!should_unhook(w.status, w.heartbeat_ms, true, NOW));
    assert!(should_unhook(w.status, w.heartbeat_ms, true, NOW + 2 * MIN));

    // Unhooked, and the issue taken: no active work left.
    store.set_hook(&polecat, None).unwrap();
    assert!(!has_active_work(&view(&store, &["b1"]), NOW));

    // An in-progress merge request is active work again.
    store
        .insert_bead(&bead(
            "mr1",
            BeadKind::MergeRequest,
            BeadStatus::InProgress,
            None,
        ))
        .unwrap();
    assert!(has_active_work(&view(&store, &["b1", "mr1"]), NOW));
}

#[test]
fn a_stalled_worker_stops_counting_after_thirty_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = AgentId::new("refinery-1").unwrap();
    let mut r = AgentRecord::new(id.clone(), Role::Refinery);
    r.status = AgentStatus::Stalled;
    r.last_activity_ms = Some(NOW);
    store.upsert_agent(&r).unwrap();
    assert!(has_active_work(&view(&store, &[]), NOW + 29 * MIN));
    assert!(!has_active_work(&view(&store, &[]), NOW + 30 * MIN));
}

/// The hourly throttle lives in the store, so a restarted town (store reopened) does not
/// refresh early; a cold container is never refreshed.
#[test]
fn the_token_refresh_throttle_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let expires = Some(NOW + 8 * HOUR);
    {
        let store = open(&dir);
        let input = TokenRefreshInput {
            container_warm: true,
            last_refresh_ms: store.time_get(TOKEN_REFRESH_KEY).unwrap(),
            token_expires_ms: expires,
        };
        assert!(should_refresh_token(input, NOW));
        store.time_set(TOKEN_REFRESH_KEY, NOW).unwrap();
    }
    let store = open(&dir);
    let input = TokenRefreshInput {
        container_warm: true,
        last_refresh_ms: store.time_get(TOKEN_REFRESH_KEY).unwrap(),
        token_expires_ms: expires,
    };
    assert!(!should_refresh_token(input, NOW + 5 * MIN));
    assert!(should_refresh_token(input, NOW + HOUR));
    let cold = TokenRefreshInput {
        container_warm: false,
        ..input
    };
    assert!(!should_refresh_token(cold, NOW + 2 * HOUR));
}

#[test]
fn ensure_decisions_from_the_stored_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let stored = |store: &TownStore| store.agent(&AgentId::mayor()).unwrap().map(|m| m.status);
    let live = Some(ServerObservation {
        process_alive: true,
        healthy: true,
    });
    let gone = Some(ServerObservation {
        process_alive: false,
        healthy: false,
    });

    let obs = |store: &TownStore, server| EnsureObservation {
        stored_status: stored(store),
        server,
    };
    assert_eq!(
        decide_ensure(&obs(&store, None)),
        EnsureDecision::FreshDispatch
    );

    store
        .upsert_agent(&mayor(AgentStatus::Waiting, NOW))
        .unwrap();
    assert_eq!(
        decide_ensure(&obs(&store, live)),
        EnsureDecision::ShortCircuitWarm
    );
    assert_eq!(
        decide_ensure(&obs(&store, gone)),
        EnsureDecision::SdkDeadRedispatch
    );
    assert_eq!(
        decide_ensure(&obs(&store, None)),
        EnsureDecision::SdkDeadRedispatch
    );

    store
        .set_agent_status(&AgentId::mayor(), AgentStatus::Idle)
        .unwrap();
    assert_eq!(
        decide_ensure(&obs(&store, live)),
        EnsureDecision::ShortCircuitIdle
    );
    assert_eq!(
        decide_ensure(&obs(&store, None)),
        EnsureDecision::FreshDispatch
    );
}

#[test]
fn dispatch_retries_then_gives_up() {
    let mut attempts = 0;
    let mut last = None;
    let mut now = NOW;
    let mut waits = Vec::new();
    loop {
        match next_dispatch_attempt(attempts, last, now) {
            DispatchVerdict::Now => {
                attempts += 1;
                last = Some(now);
                now += SEC;
            }
            DispatchVerdict::Wait(d) => {
                waits.push(d);
                now += i64::try_from(d.as_millis()).unwrap();
            }
            DispatchVerdict::GiveUp => break,
        }
    }
    assert_eq!(attempts, 5);
    assert_eq!(waits, vec![Duration::from_secs(29); 4]);
}

#[test]
fn heartbeat_and_idle_exit_constants() {
    assert!(!is_heartbeat_stale(Some(NOW - 90 * SEC), NOW));
    assert!(is_heartbeat_stale(Some(NOW - 91 * SEC), NOW));
    assert_eq!(
        idle_exit_after(Role::Polecat, false),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        idle_exit_after(Role::Refinery, false),
        Some(Duration::from_secs(600))
    );
    assert_eq!(
        idle_exit_after(Role::Refinery, true),
        Some(Duration::from_secs(10))
    );
    assert_eq!(idle_exit_after(Role::Mayor, true), None);
}
