//! Measures the mayor's cold-start critical path and prints a table (or, with `--json`,
//! one object per line):
//!
//! ```text
//! {"scenario":"mayor_first","runtime":"simulated","agents":20,"rigs":5,"mayor_ready_ms":…,"floor_ms":…,"ratio":…}
//! ```
//!
//! Scenarios:
//! - `mayor_first` and `seed_serial` for (agents, rigs) in {(0,0), (20,5)} on the
//!   simulated runtime (a test double; virtual time, exact): the actor path against the
//!   serial schedule of the Gastown cold-start analysis (ARCHITECTURE.md, *Phase path*),
//!   built from the same phase steps. `floor_ms` is the critical-path
//!   sum of the script (container start + hydrate + SDK boot + health + session).
//! - `cold`, `warm_prewarmed`, `warm_model_changed` (floor: one `noReply` round trip) on the local runtime with the real kilo,
//!   and on Docker when an engine answers: medians of `--runs` runs (default 5), the actor
//!   path and a bare sequence without actors (the physical floor: container, the agent's
//!   directories and its workspace's git repository in one exec, kilo, session)
//!   alternating.
//! - `host_restart` on the same runtimes: the median of `--runs` `ensure_mayor` calls of a
//!   host restarted after a SIGKILL while its container and mayor lived on (a child
//!   process is the killed host; `benches/support/host_restart.rs`), against the `cold`
//!   rows' floor of the same run.
//! - `new_town_pooled` on the same runtimes: the median of `--runs` `ensure_mayor` calls of
//!   brand-new towns that claim a warm pool's pre-booted server
//!   (`benches/support/pool.rs`), against the `cold` rows' floor of the same run.
//! - `scale_100_towns`, `scale_1000_towns` on the simulated runtime: that many towns of a
//!   mayor and 10 registered workers at once in this process; `mayor_ready_ms` is the
//!   mayors' virtual p50, with `p99_ms`, `cpu_ms` (process CPU), `rss_mb` (peak RSS) and
//!   `allocator` (`mimalloc`, or `system` when built with `--features system-allocator`).
//! - `boot_storm_scheduled`, `boot_storm_unscheduled` on the local runtime:
//!   `--storm-towns` (10) towns with `--storm-workers` (3) registered workers each,
//!   cold-started at once, on one boot scheduler (cores-sized, mayors first) or none;
//!   `mayor_ready_ms` is the mayors' p95, with `p50_ms` and `failed` (mayors whose start
//!   failed, left out of the percentiles); `floor_ms` one bare cold start;
//!   `server_cpu_ms` that start's SDK server CPU (spawn to session) and `cpu_floor_ms` =
//!   towns × `server_cpu_ms` / cores, before which no schedule readies the last mayor.
//! - `wake_paused` on the same runtimes: the median of `--runs` `ensure_mayor` calls on a
//!   town the library paused itself when its mayor went quiet (each must decide
//!   `resume_paused`; a fresh town per sample), against the `cold` rows' floor of the
//!   same run.
//!
//! Run it: `cargo run --release --example cold_start_report -- [--json] [--runs N]
//! [--runtime all|simulated|local|docker] [--scenario NAME]…` (kilo from
//! `scripts/install-kilo.sh`; Docker from `scripts/ensure-docker.sh`).
//!
//! SIGTERM or ctrl-c stops it after the measurement in flight, whose towns shut down
//! (drain) as every measurement's do; a second signal exits at once.

// The report's global allocator is mimalloc (`--features system-allocator`: glibc
// malloc). At 1,000 towns in one process a fifth of the control plane's CPU was glibc's
// malloc and free, and a sixth of that tokio's 128-byte-aligned task cells
// (`posix_memalign`); a service holding many towns picks its own allocator
// (ARCHITECTURE.md, *Scale*), and the scale rows say which one ran (`allocator`).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator the process runs on, for the scale rows' `allocator` field.
const ALLOCATOR: &str = if cfg!(feature = "system-allocator") {
    "system"
} else {
    "mimalloc"
};

#[path = "support/stop.rs"]
mod stop;
#[path = "../benches/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use gastown::core::{kilo, ContainerRuntime, TownConfig, TownId};
use gastown::TownOptions;
use support::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    All,
    Simulated,
    Local,
    Docker,
}

/// Measure the mayor's cold start: actor path against the physical floor.
#[derive(Debug, Parser)]
struct Args {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Runs per real-runtime scenario (each run measures both paths).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Which runtimes to measure (`all`: docker only when an engine answers).
    #[arg(long, value_enum, default_value = "all")]
    runtime: Which,
    /// Only these scenarios (repeatable, e.g. `--scenario cold`); all when absent.
    #[arg(long = "scenario")]
    scenarios: Vec<String>,
    /// Towns of the `boot_storm_*` scenarios (local runtime).
    #[arg(long, default_value_t = 10)]
    storm_towns: usize,
    /// Registered workers per town in the `boot_storm_*` scenarios.
    #[arg(long, default_value_t = 3)]
    storm_workers: usize,
}

impl Args {
    /// Whether `scenario` was asked for.
    fn wants(&self, scenario: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.iter().any(|s| s == scenario)
    }
}

fn main() -> anyhow::Result<()> {
    if let Some(child) = support::host_restart::Child::from_env() {
        // The `host_restart` scenario's child host: run until killed.
        return tokio::runtime::Runtime::new()?.block_on(async {
            let rt = match child.runtime.as_str() {
                "docker" => docker_runtime().await?,
                _ => local_runtime(&child.root)?,
            };
            child.run(rt).await
        });
    }
    let args = Args::parse();
    let stop = stop::Stop::install("finishing the measurement in flight (its towns drain)")?;
    let mut rows = Vec::new();
    let mut emit = |row: Row| {
        if args.json {
            println!("{}", row.json());
        } else {
            if rows.is_empty() {
                println!(
                    "{:<20} {:<10} {:>6} {:>5} {:>15} {:>10} {:>7}",
                    "scenario", "runtime", "agents", "rigs", "mayor_ready_ms", "floor_ms", "ratio"
                );
            }
            println!(
                "{:<20} {:<10} {:>6} {:>5} {:>15.1} {:>10.1} {:>7.3}",
                row.scenario,
                row.runtime,
                row.agents,
                row.rigs,
                row.mayor_ready_ms,
                row.floor_ms,
                row.ratio()
            );
        }
        rows.push(row);
    };

    if matches!(args.runtime, Which::All | Which::Simulated) {
        let floor = support::ms(support::sim_floor(&support::sim_script()));
        for (agents, rigs) in [(0, 0), (20, 5)] {
            for (scenario, f) in [
                (
                    "mayor_first",
                    support::sim_mayor_first as fn(usize, usize) -> _,
                ),
                ("seed_serial", support::sim_seed_serial),
            ] {
                if !args.wants(scenario) {
                    continue;
                }
                emit(Row {
                    scenario,
                    runtime: "simulated",
                    agents,
                    rigs,
                    mayor_ready_ms: support::ms(f(agents, rigs)),
                    floor_ms: floor,
                });
            }
        }
    }

    if matches!(args.runtime, Which::All | Which::Simulated) {
        scale_rows(&args);
    }

    let real = tokio::runtime::Runtime::new()?;
    if matches!(args.runtime, Which::All | Which::Local) {
        let root = std::env::temp_dir().join(format!("gastown-report-{}", std::process::id()));
        let rt = local_runtime(&root)?;
        real.block_on(real_rows(
            &rt,
            "local",
            Some(&root),
            &args,
            &stop,
            &mut emit,
        ));
    }
    if matches!(args.runtime, Which::All | Which::Docker) && stop.signalled().is_none() {
        match real.block_on(docker_runtime()) {
            Ok(rt) => real.block_on(real_rows(&rt, "docker", None, &args, &stop, &mut emit)),
            Err(e) if args.runtime == Which::All => {
                eprintln!("docker rows skipped: {e}");
            }
            Err(e) => return Err(e),
        }
    }
    match stop.signalled() {
        Some(signal) => anyhow::bail!("stopped by {signal}; the towns were drained"),
        None => Ok(()),
    }
}

async fn real_rows(
    rt: &Arc<dyn ContainerRuntime>,
    runtime: &'static str,
    root: Option<&Path>,
    args: &Args,
    stop: &stop::Stop,
    emit: &mut impl FnMut(Row),
) {
    let runs = args.runs;
    let make = |state: &Path, town: &TownId| {
        TownOptions::new(TownConfig::new(town.clone()), state, rt.clone())
    };
    type Scenario = for<'a> fn(
        &'a Arc<dyn ContainerRuntime>,
        &'a support::MakeOptions<'a>,
        usize,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = (f64, f64)> + 'a>,
    >;
    let scenarios: [(&'static str, Scenario); 3] = [
        ("cold", |rt, o, n| Box::pin(support::real_cold(rt, o, n))),
        ("warm_prewarmed", |rt, o, n| {
            Box::pin(support::real_warm_prewarmed(rt, o, n))
        }),
        ("warm_model_changed", |rt, o, n| {
            Box::pin(support::real_warm_model_changed(rt, o, n))
        }),
    ];
    let mut cold_floor_ms = f64::NAN;
    for (scenario, run) in scenarios {
        if stop.signalled().is_some() {
            return;
        }
        if !args.wants(scenario) {
            continue;
        }
        let (mayor_ready_ms, floor_ms) = run(rt, &make, runs).await;
        if scenario == "cold" {
            cold_floor_ms = floor_ms;
        }
        emit(Row {
            scenario,
            runtime,
            agents: 0,
            rigs: 0,
            mayor_ready_ms,
            floor_ms,
        });
    }
    if stop.signalled().is_some() {
        return;
    }
    if args.wants("host_restart") {
        emit(Row {
            scenario: "host_restart",
            runtime,
            agents: 0,
            rigs: 0,
            mayor_ready_ms: support::host_restart::real_host_restart(rt, runtime, root, runs).await,
            floor_ms: cold_floor_ms,
        });
    }
    if args.wants("new_town_pooled") && stop.signalled().is_none() {
        emit(Row {
            scenario: "new_town_pooled",
            runtime,
            agents: 0,
            rigs: 0,
            mayor_ready_ms: support::pool::real_new_town_pooled(rt, runs).await,
            floor_ms: cold_floor_ms,
        });
    }
    if runtime == "local" && stop.signalled().is_none() {
        storm_rows(rt, &make, args).await;
    }
    if stop.signalled().is_some() || !args.wants("wake_paused") {
        return;
    }
    emit(Row {
        scenario: "wake_paused",
        runtime,
        agents: 0,
        rigs: 0,
        mayor_ready_ms: support::real_wake_paused(&make, runs).await,
        floor_ms: cold_floor_ms,
    });
}

/// The local runtime on `root`, with the installed kilo.
fn local_runtime(root: &Path) -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    let kilo_bin = kilo::locate(None)?;
    Ok(Arc::new(
        gastown::local::LocalRuntime::builder(root.to_path_buf())
            .with_program("kilo", kilo_bin)
            .build(),
    ))
}

#[cfg(feature = "docker")]
async fn docker_runtime() -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    use gastown::docker::{DockerOptions, DockerRuntime};
    let options = DockerOptions::default().with_name_prefix("gastown-report");
    Ok(Arc::new(DockerRuntime::connect(options).await?))
}

#[cfg(not(feature = "docker"))]
async fn docker_runtime() -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    anyhow::bail!("built without the `docker` feature")
}

/// `scale_100_towns`, `scale_1000_towns`: many towns of a mayor and 10 workers on one
/// simulated runtime; `mayor_ready_ms` is the mayors' virtual p50 against one mayor's
/// floor, plus `p99_ms`, `cpu_ms` and `rss_mb` (see `benches/support/scale.rs`).
fn scale_rows(args: &Args) {
    const WORKERS: usize = 10;
    let floor = support::ms(support::sim_floor(&support::sim_script()));
    for (scenario, towns) in [("scale_100_towns", 100), ("scale_1000_towns", 1000)] {
        if !args.wants(scenario) {
            continue;
        }
        let f = support::scale::sim_scale(towns, WORKERS);
        if f.agents_up != towns * (WORKERS + 1) {
            eprintln!(
                "{scenario}: only {} of {} agents came up",
                f.agents_up,
                towns * (WORKERS + 1)
            );
        }
        let row = Row {
            scenario,
            runtime: "simulated",
            agents: WORKERS,
            rigs: 0,
            mayor_ready_ms: f.p50_ms,
            floor_ms: floor,
        };
        let extra = [
            ("p99_ms", f.p99_ms),
            ("cpu_ms", f.cpu_ms),
            ("rss_mb", f.rss_mb),
        ];
        if args.json {
            let line = support::fields::json_with(&row, &extra);
            println!(
                "{}",
                support::fields::with_text(&line, "allocator", ALLOCATOR)
            );
        } else {
            let line = support::fields::table_with(&row, &extra);
            println!("{line}  allocator={ALLOCATOR}");
        }
    }
}

/// `boot_storm_scheduled` then `boot_storm_unscheduled`: `--storm-towns` towns with
/// `--storm-workers` registered workers each, cold-started at once, with one
/// [`BootScheduler::per_host`](gastown::actors::BootScheduler::per_host) for all of them or
/// with none. `mayor_ready_ms` is the mayors' p95, with `p50_ms`; `floor_ms` is one bare
/// cold start (container, kilo, session) alone, measured first; `server_cpu_ms` is that
/// start's SDK server CPU time (user + system, all threads) from spawn to session, and
/// `cpu_floor_ms` = towns × `server_cpu_ms` / cores: the earliest the last mayor can be
/// ready under any schedule.
async fn storm_rows(rt: &Arc<dyn ContainerRuntime>, make: &support::MakeOptions<'_>, args: &Args) {
    let wanted = ["boot_storm_scheduled", "boot_storm_unscheduled"];
    if !wanted.iter().any(|s| args.wants(s)) {
        return;
    }
    let floor_town = support::town_id("storm-floor", 0);
    let t0 = tokio::time::Instant::now();
    let bare = support::bare_start(rt, &floor_town, "anthropic/claude-sonnet-4.6", true).await;
    let floor = support::ms(t0.elapsed());
    // The SDK server's own CPU from spawn to its session: every mayor of a storm needs
    // that much before it is ready, so no schedule readies the last one sooner than the
    // towns' sum of it spread over the host's cores.
    let server_cpu = bare
        .process
        .handle
        .pid()
        .map_or(f64::NAN, support::scale::process_cpu_ms);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cpu_floor = server_cpu * args.storm_towns as f64 / cores;
    support::bare_stop(bare).await;
    rt.remove(&floor_town).await.unwrap();
    for scenario in wanted {
        if !args.wants(scenario) {
            continue;
        }
        let scheduler =
            (scenario == "boot_storm_scheduled").then(gastown::actors::BootScheduler::per_host);
        let label = if scheduler.is_some() { "s" } else { "u" };
        let storm = support::storm::real_boot_storm(
            make,
            label,
            args.storm_towns,
            args.storm_workers,
            scheduler,
        )
        .await;
        let row = Row {
            scenario,
            runtime: "local",
            agents: args.storm_workers,
            rigs: 0,
            mayor_ready_ms: support::scale::percentile(&storm.ready_ms, 0.95),
            floor_ms: floor,
        };
        let extra = [
            ("p50_ms", support::scale::percentile(&storm.ready_ms, 0.50)),
            ("failed", storm.failed as f64),
            ("server_cpu_ms", server_cpu),
            ("cpu_floor_ms", cpu_floor),
        ];
        if args.json {
            println!("{}", support::fields::json_with(&row, &extra));
        } else {
            println!("{}", support::fields::table_with(&row, &extra));
        }
    }
}
