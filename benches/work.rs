//! Criterion bench of a bead's dispatch on the simulated runtime (a test double whose
//! every operation takes a scripted duration; `tokio::time::pause` makes the clock exact):
//! `dispatch_to_working` is the virtual time from `TownHandle::sling` to the polecat's
//! `working` status (its SDK server booted in its own worktree and the bead's prompt
//! accepted), in a warm town (the mayor ready), with 1 and with 20 beads slung at once
//! (the last polecat's time). Each iteration reports its virtual time through
//! `iter_custom`, so the numbers are the scripted critical paths — the same on any machine.
//! The reconciler's own costs (per event, per tick) are `gastown-core`'s `reconciler`
//! bench.
//!
//! Run: `cargo bench --bench work`.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::collections::BTreeSet;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use futures::StreamExt;
use gastown::actors::TownEvent;
use gastown::core::simulated::{SimScript, SimulatedRuntime};
use gastown::core::{AgentStatus, RigConfig, RigId, TownConfig, TownId};
use gastown::{TownHandle, TownOptions};
use tokio::time::Instant;

/// Virtual time from slinging `beads` beads (over 5 rigs) to the last polecat `working`.
fn dispatch_to_working(beads: usize) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = TownConfig::new(TownId::new("bench").unwrap());
        for i in 0..5 {
            config = config.with_rig(RigConfig::new(
                RigId::new(format!("rig-{i}")).unwrap(),
                format!("https://example.invalid/rig-{i}.git"),
            ));
        }
        let sim = SimulatedRuntime::new(SimScript::default());
        let options = TownOptions::new(config, dir.path().join("state"), sim.clone())
            .with_sdk_connector(sim.sdk_connector());
        let town = TownHandle::start(options).await.unwrap();
        town.ensure_mayor().await.unwrap();
        // The mayor's background work (browse worktrees) done: a warm town.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut events = town.events();
        let t0 = Instant::now();
        let mut waiting = BTreeSet::new();
        for i in 0..beads {
            let bead = town.create_bead(&format!("task {i}"), "work").unwrap();
            let rig = RigId::new(format!("rig-{}", i % 5)).unwrap();
            waiting.insert(town.sling(&bead.id, &rig).await.unwrap().polecat);
        }
        // A polecat is `working` while it boots, `idle` once started, then `working` again
        // when its bead's prompt is accepted: that last one is the end.
        let mut started = BTreeSet::new();
        while !waiting.is_empty() {
            let record = events.next().await.expect("the town's events");
            let (Some(agent), TownEvent::AgentStatusChanged { status }) =
                (&record.agent, &record.event)
            else {
                continue;
            };
            match status {
                AgentStatus::Idle => {
                    started.insert(agent.clone());
                }
                AgentStatus::Working if started.contains(agent) => {
                    waiting.remove(agent);
                }
                _ => {}
            }
        }
        let took = t0.elapsed();
        town.shutdown().await.unwrap();
        took
    })
}

fn simulated(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulated");
    group.sample_size(10);
    for beads in [1, 20] {
        group.bench_function(BenchmarkId::new("dispatch_to_working", beads), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| dispatch_to_working(beads)).sum())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Virtual times repeat exactly; criterion's plots cannot draw a zero-width sample.
    config = Criterion::default().without_plots();
    targets = simulated
}
criterion_main!(benches);
