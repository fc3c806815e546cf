//! Criterion benches of the mayor's cold-start critical path.
//!
//! - `simulated/*`: the mayor-first actor path and the serial schedule of the Gastown
//!   cold-start analysis (ARCHITECTURE.md, *Phase path*; built from the same phase steps)
//!   on the simulated runtime, a test double. Each iteration reports
//!   its *virtual* mayor-ready time through `iter_custom`, so the numbers are the scripted
//!   critical paths — exact and the same on any machine.
//! - `local/*`: the real kilo on the local runtime, wall-clock: a cold start and a
//!   prewarmed `ensure_mayor`. Skipped (with a message) when kilo is not installed.
//!
//! Run: `cargo bench --bench cold_start` (compare a change with `-- --save-baseline main`
//! then `-- --baseline main`). `examples/cold_start_report.rs` prints the same scenarios
//! as a table with the physical floor beside each.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gastown::core::{kilo, ContainerRuntime, TownConfig};
use gastown::{TownHandle, TownOptions};

fn simulated(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulated");
    group.sample_size(10);
    for (agents, rigs) in [(0, 0), (20, 5)] {
        let id = format!("{agents}_agents_{rigs}_rigs");
        group.bench_function(BenchmarkId::new("mayor_first", &id), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| support::sim_mayor_first(agents, rigs))
                    .sum()
            })
        });
        group.bench_function(BenchmarkId::new("seed_serial", &id), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| support::sim_seed_serial(agents, rigs))
                    .sum()
            })
        });
    }
    group.finish();
}

fn local(c: &mut Criterion) {
    let Ok(kilo_bin) = kilo::locate(None) else {
        eprintln!("local benches skipped: kilo not installed (scripts/install-kilo.sh)");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = tempfile::tempdir().unwrap();
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(
        gastown::local::LocalRuntime::builder(root.path().join("containers"))
            .with_program("kilo", kilo_bin)
            .build(),
    );
    let mut group = c.benchmark_group("local");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    let mut n = 0;
    group.bench_function("cold", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let state = tempfile::tempdir().unwrap();
                    let town = support::town_id("bench-cold", n);
                    let options =
                        TownOptions::new(TownConfig::new(town), state.path(), runtime.clone());
                    let handle = TownHandle::start(options).await.unwrap();
                    let t0 = tokio::time::Instant::now();
                    handle.ensure_mayor().await.unwrap();
                    total += t0.elapsed();
                    handle.shutdown().await.unwrap();
                }
                total
            })
        })
    });
    let state = tempfile::tempdir().unwrap();
    let warm = rt.block_on(async {
        let town = support::town_id("bench-warm", 0);
        let options = TownOptions::new(TownConfig::new(town), state.path(), runtime.clone());
        let handle = TownHandle::start(options).await.unwrap();
        handle.warm_up().await.unwrap();
        handle
    });
    group.bench_function("warm_prewarmed", |b| {
        b.to_async(&rt)
            .iter(|| async { warm.ensure_mayor().await.unwrap() })
    });
    rt.block_on(warm.shutdown()).unwrap();
    group.finish();
}

criterion_group!(benches, simulated, local);
criterion_main!(benches);
