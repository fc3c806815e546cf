//! `scale_<N>_towns`: the control plane with many towns in one process, on the simulated
//! runtime (a test double: SDK servers and containers cost virtual time only), so what is
//! measured is the actors, the stores and the test double's bookkeeping: `N` towns, each a
//! mayor plus `workers` registered polecats (boot hydration resumes them after the mayor),
//! all started at once on one runtime; every mayor ready, then every worker.
//!
//! Figures: the mayors' virtual ready times (p50, p99, from the `ensure_mayor` calls), the
//! process's CPU time over the run (from town start to every agent up, state setup
//! excluded) and its peak RSS over the run (`VmHWM`, reset first through
//! `/proc/self/clear_refs`, proc(5)).

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::time::Duration;

use gastown::actors::{TownHandle, TownOptions};
use gastown::core::simulated::{SdkOp, SimulatedRuntime};
use gastown::core::{AgentId, Role, TownConfig, TownId, TownStore};
use tokio::time::Instant;

/// What one scale run measured.
#[derive(Debug, Clone)]
pub struct ScaleFigures {
    /// Towns started.
    pub towns: usize,
    /// Agents up at the end (mayors and workers).
    pub agents_up: usize,
    /// Median virtual mayor-ready time, ms.
    pub p50_ms: f64,
    /// 99th percentile virtual mayor-ready time, ms.
    pub p99_ms: f64,
    /// CPU time of the whole process over the run (user + system), ms.
    pub cpu_ms: f64,
    /// Peak resident set size over the run, MB (2^20 bytes).
    pub rss_mb: f64,
}

/// How long (virtual) the run waits for every worker after the mayors are ready.
const WORKERS_WAIT: Duration = Duration::from_secs(600);

/// Threads of the run's blocking pool.
const BLOCKING_THREADS: usize = 8;

/// Runs `towns` towns of one mayor and `workers` registered polecats each.
pub fn sim_scale(towns: usize, workers: usize) -> ScaleFigures {
    let dir = tempfile::tempdir().unwrap();
    // The registry a previous container left: setup, outside the measurement.
    let states: Vec<_> = (0..towns)
        .map(|i| {
            let state = dir.path().join(format!("town-{i}"));
            registry(&state, workers);
            state
        })
        .collect();
    reset_peak_rss();
    let cpu0 = cpu_ms();
    // Blocking work (the snapshot lookups of the hydrate phase) takes no virtual time; a
    // few threads serve it, where tokio's default would start hundreds at once.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .start_paused(true)
        .build()
        .unwrap();
    let (ready, agents_up, handles) = runtime.block_on(async {
        let rt = SimulatedRuntime::new(super::sim_script());
        let mut handles = Vec::with_capacity(towns);
        for (i, state) in states.iter().enumerate() {
            let id = TownId::new(format!("scale-{i}")).unwrap();
            let options = TownOptions::new(TownConfig::new(id), state, rt.clone())
                .with_sdk_connector(rt.sdk_connector());
            handles.push(TownHandle::start(options).await.unwrap());
        }
        let t0 = Instant::now();
        let calls = handles.iter().map(|h| async move {
            h.ensure_mayor().await.unwrap();
            super::ms(t0.elapsed())
        });
        let ready: Vec<f64> = futures::future::join_all(calls).await;
        // Every agent's session phase creates its session (nothing to resume): count them.
        let wanted = towns * (workers + 1);
        let deadline = Instant::now() + WORKERS_WAIT;
        let mut up = rt.sdk_calls(SdkOp::CreateSession);
        while up < wanted && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
            up = rt.sdk_calls(SdkOp::CreateSession);
        }
        (ready, up, handles)
    });
    let cpu_ms = cpu_ms() - cpu0;
    let rss_mb = peak_rss_mb();
    // Not measured: stop the actors without draining (no snapshots of 11 000 databases).
    runtime.block_on(async {
        for h in handles {
            h.detach().await;
        }
    });
    let mut sorted = ready;
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    ScaleFigures {
        towns,
        agents_up,
        p50_ms: percentile(&sorted, 0.50),
        p99_ms: percentile(&sorted, 0.99),
        cpu_ms,
        rss_mb,
    }
}

/// The nearest-rank percentile `q` (0..=1) of ascending `sorted`.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn registry(state: &Path, workers: usize) {
    std::fs::create_dir_all(state).unwrap();
    let store = TownStore::open(&state.join("town.db")).unwrap();
    for i in 0..workers {
        let agent = AgentId::new(format!("polecat-{i}")).unwrap();
        store.register(&agent, Role::Polecat).unwrap();
    }
}

/// User + system CPU time of this process so far, ms.
pub fn cpu_ms() -> f64 {
    stat_cpu_ms("/proc/self/stat")
}

/// User + system CPU time of process `pid` so far (all its threads, not its children), ms.
pub fn process_cpu_ms(pid: u32) -> f64 {
    stat_cpu_ms(&format!("/proc/{pid}/stat"))
}

/// User + system CPU time in a `/proc/<pid>/stat` file, ms: fields 14 and 15, in clock
/// ticks of USER_HZ (100 per second on Linux; proc(5)).
fn stat_cpu_ms(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok());
    match (ticks(14), ticks(15)) {
        (Some(u), Some(s)) => (u + s) * 10.0,
        _ => f64::NAN,
    }
}

/// Resets the peak RSS to the current RSS (`echo 5 > /proc/self/clear_refs`, Linux 4.0+).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak RSS since the last reset, MB: `VmHWM` of `/proc/self/status`.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
