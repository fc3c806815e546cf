//! Criterion benches of the reconciler on a town of 1,000 beads and 50 agents (one mayor,
//! 39 polecats, 10 refineries): the pure [`reconcile`] per event and [`sweep`] per alarm
//! tick (µs, no I/O), and the store side on a real SQLite file in a temp dir (WAL,
//! `synchronous = NORMAL`): loading the state once per tick and `apply_reconciled` per
//! event (the actions and the processed mark in one transaction).
//!
//! Run: `cargo bench -p gastown-core --bench reconciler -- --warm-up-time 1
//! --measurement-time 3` (compare a change with `-- --save-baseline main`, then
//! `-- --baseline main`).

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use gastown_core::reconciler::{reconcile, sweep, ReconcileEvent, ReconcileState};
use gastown_core::store::{AgentRecord, BeadRecord};
use gastown_core::{AgentId, AgentStatus, BeadId, BeadKind, BeadStatus, Role, TownStore};
use std::hint::black_box;

const NOW: i64 = 1_700_000_000_000;
const BEADS: usize = 1_000;
const AGENTS: usize = 50;

fn worker(i: usize) -> (AgentId, Role) {
    if i < 39 {
        (
            AgentId::new(format!("polecat-{i:02}")).unwrap(),
            Role::Polecat,
        )
    } else {
        (
            AgentId::new(format!("refinery-{i:02}")).unwrap(),
            Role::Refinery,
        )
    }
}

/// The town: agents 0..49 each working on one bead (`b-0000`…), the other beads a mix of
/// open (a fifth of them waiting for a retry), in review, merge requests and closed.
fn town() -> ReconcileState {
    let mut agents = vec![{
        let mut m = AgentRecord::new(AgentId::mayor(), Role::Mayor);
        m.status = AgentStatus::Waiting;
        m
    }];
    let mut beads = Vec::with_capacity(BEADS);
    for i in 0..BEADS {
        let id = BeadId::new(format!("b-{i:04}")).unwrap();
        let mut bead = BeadRecord::issue(id.clone(), "Fix the thing", "body", NOW - 3_600_000);
        if i < AGENTS - 1 {
            let (agent, role) = worker(i);
            bead.status = BeadStatus::InProgress;
            bead.assignee = Some(agent.clone());
            let mut a = AgentRecord::new(agent, role);
            a.status = AgentStatus::Working;
            a.hook = Some(id.to_string());
            a.heartbeat_ms = Some(NOW - 10_000);
            a.last_activity_ms = Some(NOW - 10_000);
            agents.push(a);
        } else {
            match i % 5 {
                0 => {
                    bead.dispatch_attempts = 2;
                    bead.last_dispatch_ms = Some(NOW - 10_000);
                }
                1 => bead.status = BeadStatus::InReview,
                2 => {
                    bead.kind = BeadKind::MergeRequest;
                    bead.status = BeadStatus::Closed;
                }
                3 => bead.status = BeadStatus::Closed,
                _ => {}
            }
        }
        beads.push(bead);
    }
    ReconcileState::from_records(beads, agents)
}

fn events() -> [(&'static str, ReconcileEvent); 3] {
    let (agent, _) = worker(7);
    let bead = BeadId::new("b-0007").unwrap();
    [
        (
            "dispatch_failed",
            ReconcileEvent::DispatchFailed {
                bead: bead.clone(),
                agent: agent.clone(),
                error: "start refused".into(),
                maybe_accepted: false,
            },
        ),
        (
            "work_checked",
            ReconcileEvent::WorkChecked {
                bead,
                agent: agent.clone(),
                branch: "polecat/b-0007".into(),
                commits: 3,
                head: Some("0123abcd".into()),
            },
        ),
        ("agent_exited", ReconcileEvent::AgentExited { agent }),
    ]
}

fn pure(c: &mut Criterion) {
    let state = town();
    let mut group = c.benchmark_group("reconciler");
    for (name, event) in events() {
        group.bench_function(format!("reconcile/{name}"), |b| {
            b.iter(|| reconcile(black_box(&state), black_box(&event), NOW))
        });
    }
    group.bench_function("sweep/tick", |b| {
        b.iter(|| sweep(black_box(&state), NOW, false))
    });
    group.finish();
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = TownStore::open(&dir.path().join("town.db")).unwrap();
    let state = town();
    for agent in state.agents.values() {
        store.upsert_agent(agent).unwrap();
        store.register(&agent.id, agent.role).unwrap();
    }
    for bead in state.beads.values() {
        store.insert_bead(bead).unwrap();
    }
    let mut group = c.benchmark_group("store");
    group.bench_function("reconcile_state", |b| {
        b.iter(|| store.reconcile_state().unwrap())
    });
    for (name, event) in events() {
        let actions = reconcile(&state, &event, NOW).actions;
        group.bench_function(format!("apply_reconciled/{name}"), |b| {
            b.iter_batched(
                || store.enqueue(&event).unwrap(),
                |id| store.apply_reconciled(Some(id), &actions).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, pure, store);
criterion_main!(benches);
