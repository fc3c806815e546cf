//! Criterion bench of the warm pool's claim on the simulated runtime (a test double whose
//! operations take scripted durations):
//!
//! - `pool/claim_cpu/{pooled,cold}`: the real time this process spends making a brand-new
//!   town's mayor ready (`TownHandle::start` + `ensure_mayor`) when it claims a pooled
//!   server, and when it starts cold, with every scripted duration zero — the control
//!   plane's own cost of a claim (ownership check, hand-over, adoption, phases), side by
//!   side with a cold start's.
//! - `pool/virtual/{pooled,cold}`: the same in virtual time (`tokio::time::pause`) with
//!   `SimScript::default()`'s durations: the scripted critical paths, the same on any
//!   machine. Reported through `iter_custom`.
//!
//! The pool refills between iterations, outside the timed part (a pool boots before
//! towns arrive: that is its point).
//!
//! Run: `cargo bench --bench pool`.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use gastown::actors::{WarmPool, WarmPoolOptions};
use gastown::core::simulated::{SimScript, SimulatedRuntime};
use gastown::core::{TownConfig, TownId};
use gastown::{TownHandle, TownOptions};
use tokio::time::Instant;

/// A tokio runtime, paused (virtual time) or not.
fn runtime(paused: bool) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(paused)
        .build()
        .unwrap()
}

/// The time of `iters` brand-new towns' `ensure_mayor` (with a pool of one when `pooled`).
async fn towns(script: SimScript, pooled: bool, iters: u64) -> Duration {
    let sim = SimulatedRuntime::new(script);
    let pool = pooled.then(|| {
        WarmPool::start(
            sim.clone(),
            TownConfig::new(TownId::new("template").unwrap()),
            WarmPoolOptions {
                size: 1,
                sdk_connector: sim.sdk_connector(),
                ..Default::default()
            },
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let mut total = Duration::ZERO;
    for i in 0..iters {
        if let Some(pool) = &pool {
            pool.wait_ready(1).await;
        }
        let town = TownId::new(format!("town-{i}")).unwrap();
        let mut options = TownOptions::new(
            TownConfig::new(town),
            dir.path().join(i.to_string()),
            sim.clone() as Arc<_>,
        )
        .with_sdk_connector(sim.sdk_connector());
        if let Some(pool) = &pool {
            options = options.with_warm_pool(pool.clone());
        }
        let t0 = Instant::now();
        let handle = TownHandle::start(options).await.unwrap();
        let ready = handle.ensure_mayor().await.unwrap();
        total += t0.elapsed();
        assert_eq!(ready.report.pooled, pooled);
        handle.shutdown().await.unwrap();
    }
    if let Some(pool) = pool {
        pool.shutdown().await;
    }
    total
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool");
    for (name, pooled) in [("pooled", true), ("cold", false)] {
        group.bench_function(format!("claim_cpu/{name}"), |b| {
            b.iter_custom(|iters| runtime(false).block_on(towns(SimScript::zero(), pooled, iters)))
        });
        group.bench_function(format!("virtual/{name}"), |b| {
            b.iter_custom(|iters| {
                runtime(true).block_on(towns(SimScript::default(), pooled, iters))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Virtual times are exact: a sample with no spread cannot be plotted.
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
