//! A day (24 h) of one town with 8 bursts of user activity, in virtual time on the
//! simulated runtime (a test double whose every operation takes its scripted duration,
//! [`SimScript::default`], pause and resume included; the tokio clock is paused, so the
//! whole day runs in well under a second). It shows what the idle tiers trade: container-up
//! hours (split into running and paused: a paused container keeps its memory but uses no
//! CPU), the requests the container receives while nobody uses it, and the wake latency
//! users see when a burst begins, for three policies side by side:
//!
//! - `gastown`: this library with its defaults. The alarm ticks every 300 s without active
//!   work (a `waiting` mayor is not active work) and probes health only with active work;
//!   once the mayor has been quiet for `TownOptions::idle_stop_after` (default 5 min) the
//!   container is paused (agents snapshotted, then frozen), and the next burst's
//!   `ensure_mayor` resumes it in place (`resume_paused`: tens of ms, the same server and
//!   session). After `TownOptions::stop_paused_after` (default 30 min) paused, it is
//!   drained and stopped, and the next burst's `ensure_mayor` wakes it cold (a new
//!   container, the same session).
//! - `gastown_no_pause`: the same with `TownOptions::with_pause(false, ..)`: no paused
//!   tier; the container is drained and stopped once the quiet window ends, and every
//!   burst after the first wakes it cold.
//! - `seed_before_idle_fix`: Kilo Gastown before its idle fix (PR #3113; the P0 "town
//!   containers never go idle" bug, Kilo Gastown #1450): the mayor counted as `working`
//!   forever, so the town always had active work. Emulated without changing the library:
//!   right after the first `ensure_mayor` (when Kilo Gastown set the mayor `working`), an
//!   unassigned open `issue` bead is inserted through a second `TownStore` connection to
//!   the town's `town.db` and left there all day. The town's active-work rule is then true
//!   all day, exactly as with an always-working mayor: 5 s cadence, a health probe every
//!   tick, never an idle pause or stop.
//!
//! Each burst: `ensure_mayor`, then 2–5 `send_mayor_message`s a minute apart, at fixed
//! times of day ([`BURSTS`]; 85 min or more apart, so on this day a 30 min paused window
//! ends before the next burst). Measured from the runtime's event log and the virtual
//! clock:
//!
//! - `container_up_h`: the sum of the intervals from each container create to its stop
//!   (or removal), or to the end of the day; running plus paused;
//! - `paused_h`: the part of `container_up_h` the container spent frozen: from the end of
//!   each pause to the end of the next resume (or stop, removal, kill), or to the end of
//!   the day; `running_h` (table only) is the rest;
//! - `idle_requests`: requests the container received outside the bursts (a burst lasts
//!   from its `ensure_mayor` call to the return of its last message): SDK calls, execs,
//!   spawns, file reads and writes, including the snapshots before an idle pause or stop
//!   and the hourly live token refreshes (a file write each; the table lists how many);
//! - `wake_p50_ms`: the median (nearest rank: the 4th of 8) of the wall time, in virtual
//!   ms, of each burst's first `ensure_mayor`: what the user waited for the mayor when
//!   coming back (the first burst always starts cold; the table lists how many wakes were
//!   cold, from paused, or warm).
//!
//! Run it: `cargo run --release --example idle_day [-- --json]`. With `--json`, one object
//! per policy and line:
//!
//! ```text
//! {"policy":"gastown","bursts":8,"container_up_h":…,"idle_requests":…,"paused_h":…,"wake_p50_ms":…}
//! {"policy":"gastown_no_pause","bursts":8,"container_up_h":…,"idle_requests":…,"paused_h":…,"wake_p50_ms":…}
//! {"policy":"seed_before_idle_fix","bursts":8,"container_up_h":…,"idle_requests":…,"paused_h":…,"wake_p50_ms":…}
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use gastown::core::simulated::{SdkOp, SimEvent, SimEventKind, SimScript, SimulatedRuntime};
use gastown::core::store::BeadRecord;
use gastown::core::{TownConfig, TownId, TownStore};
use gastown::{TownHandle, TownOptions};
use tokio::time::Instant;

#[path = "../support/stop.rs"]
mod stop;
use stop::Stop;

const MIN: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The day's bursts on a 24 h clock: (hour, minute, messages). Scaled to shorter days.
const BURSTS: [(u64, u64, u64); 8] = [
    (7, 40, 3),
    (9, 5, 4),
    (10, 30, 2),
    (12, 10, 5),
    (13, 45, 3),
    (15, 20, 4),
    (17, 0, 2),
    (20, 30, 3),
];

/// How the town decides it has active work and what it does when idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// The library with its defaults: pause when idle, stop after 30 min paused.
    Gastown,
    /// The library without the paused tier: stop when idle, wake cold.
    GastownNoPause,
    /// The mayor counts as working all day (an open unassigned bead, see the module doc).
    SeedBeforeIdleFix,
}

impl Policy {
    const ALL: [Policy; 3] = [
        Policy::Gastown,
        Policy::GastownNoPause,
        Policy::SeedBeforeIdleFix,
    ];

    fn name(self) -> &'static str {
        match self {
            Policy::Gastown => "gastown",
            Policy::GastownNoPause => "gastown_no_pause",
            Policy::SeedBeforeIdleFix => "seed_before_idle_fix",
        }
    }
}

/// How a burst's first `ensure_mayor` found the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// No container: a new one was created (a cold start from the snapshots).
    Cold,
    /// Paused: resumed in place.
    Paused,
    /// Running: nothing to start.
    Warm,
}

/// What one simulated day measured.
#[derive(Debug, Clone, PartialEq)]
struct DayReport {
    policy: Policy,
    bursts: usize,
    /// Sum of the container's up intervals within the day (running and paused).
    container_up: Duration,
    /// Of which paused (frozen).
    paused: Duration,
    /// Each burst's first `ensure_mayor`: its wall time (virtual) and what it found.
    wakes: Vec<(Duration, Wake)>,
    /// Requests to the container outside the bursts.
    idle_requests: usize,
    /// Of which live token refreshes.
    idle_token_refreshes: usize,
    /// Of which health probes.
    idle_health_probes: usize,
    /// Of which file reads (the drain's snapshot of `kilo.db` before an idle stop).
    idle_file_reads: usize,
    /// Containers created during the day.
    containers: usize,
    /// Distinct mayor session ids the bursts got.
    sessions: BTreeSet<String>,
}

impl DayReport {
    fn container_up_h(&self) -> f64 {
        hours(self.container_up)
    }

    fn paused_h(&self) -> f64 {
        hours(self.paused)
    }

    fn running_h(&self) -> f64 {
        hours(self.container_up.saturating_sub(self.paused))
    }

    /// The median wake (nearest rank: the 4th of 8) in virtual ms; 0 with no bursts.
    fn wake_p50_ms(&self) -> u128 {
        let mut ms: Vec<u128> = self.wakes.iter().map(|(d, _)| d.as_millis()).collect();
        ms.sort_unstable();
        ms.len()
            .div_ceil(2)
            .checked_sub(1)
            .map_or(0, |rank| ms[rank])
    }

    fn wakes_of(&self, kind: Wake) -> usize {
        self.wakes.iter().filter(|(_, k)| *k == kind).count()
    }

    /// The `--json` line; the field names are read by other tools (new fields go last).
    fn json(&self) -> String {
        format!(
            r#"{{"policy":"{}","bursts":{},"container_up_h":{},"idle_requests":{},"paused_h":{},"wake_p50_ms":{}}}"#,
            self.policy.name(),
            self.bursts,
            self.container_up_h(),
            self.idle_requests,
            self.paused_h(),
            self.wake_p50_ms()
        )
    }
}

fn hours(d: Duration) -> f64 {
    round3(d.as_secs_f64() / 3600.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The bursts of a day of length `day`: (start since the day began, messages).
fn schedule(day: Duration) -> Vec<(Duration, u64)> {
    BURSTS
        .iter()
        .map(|&(h, m, messages)| {
            let at = Duration::from_secs(h * 3600 + m * 60);
            (at.mul_f64(day.as_secs_f64() / DAY.as_secs_f64()), messages)
        })
        .collect()
}

/// Simulates one day of `policy` on a fresh paused tokio runtime; a `stop` signal ends it
/// early with an error, after draining the town.
fn simulate_day(policy: Policy, day: Duration, stop: Option<&Stop>) -> anyhow::Result<DayReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    runtime.block_on(day_of(policy, day, stop))
}

async fn day_of(policy: Policy, day: Duration, stop: Option<&Stop>) -> anyhow::Result<DayReport> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let town_id = TownId::new("idle-day")?;
    // Virtual time zero of the runtime's log is now.
    let rt = SimulatedRuntime::new(SimScript::default());
    let origin = Instant::now();
    let mut options = TownOptions::new(TownConfig::new(town_id.clone()), &state, rt.clone())
        .with_sdk_connector(rt.sdk_connector());
    if policy == Policy::GastownNoPause {
        let stop_paused_after = options.stop_paused_after;
        options = options.with_pause(false, stop_paused_after);
    }
    let town = TownHandle::start(options).await?;

    let bursts = schedule(day);
    let mut windows = Vec::with_capacity(bursts.len());
    let mut wake_windows = Vec::with_capacity(bursts.len());
    let mut sessions = BTreeSet::new();
    let mut always_working: Option<TownStore> = None;
    let day_done = async {
        for (n, &(at, messages)) in bursts.iter().enumerate() {
            tokio::time::sleep_until(origin + at).await;
            let from = rt.elapsed();
            let asked = Instant::now();
            sessions.insert(town.ensure_mayor().await?.session_id);
            wake_windows.push((from, asked.elapsed()));
            if policy == Policy::SeedBeforeIdleFix && always_working.is_none() {
                always_working = Some(mayor_always_working(&state)?);
            }
            for m in 0..messages {
                tokio::time::sleep_until(origin + at + MIN * m as u32).await;
                town.send_mayor_message(&format!("burst {n}, message {m}"))
                    .await?;
            }
            windows.push((from, rt.elapsed()));
        }
        tokio::time::sleep_until(origin + day).await;
        anyhow::Ok(())
    };
    // SIGTERM or ctrl-c: end the day early, draining the town.
    let stopped = match stop {
        Some(stop) => tokio::select! {
            done = day_done => done.map(|()| None)?,
            signal = stop.requested() => Some(signal),
        },
        None => day_done.await.map(|()| None)?,
    };
    if let Some(signal) = stopped {
        town.shutdown().await?;
        anyhow::bail!("stopped by {signal}; the town was drained");
    }
    let log: Vec<SimEvent> = rt
        .log()
        .into_iter()
        .filter(|e| e.town == town_id && e.start < day)
        .collect();
    town.shutdown().await?;
    drop(always_working);

    let idle: Vec<&SimEventKind> = log
        .iter()
        .filter(|e| is_request(&e.kind))
        .filter(|e| !windows.iter().any(|&(a, b)| e.start >= a && e.start <= b))
        .map(|e| &e.kind)
        .collect();
    let wakes = wake_windows
        .iter()
        .map(|&(from, took)| (took, wake_kind(&log, from, from + took)))
        .collect();
    Ok(DayReport {
        policy,
        bursts: bursts.len(),
        container_up: container_up(&log, day),
        paused: container_paused(&log, day),
        wakes,
        idle_requests: idle.len(),
        idle_token_refreshes: idle.iter().filter(|k| is_token_refresh(k)).count(),
        idle_health_probes: idle
            .iter()
            .filter(|k| {
                matches!(
                    k,
                    SimEventKind::SdkCall {
                        op: SdkOp::Health,
                        ..
                    }
                )
            })
            .count(),
        idle_file_reads: idle
            .iter()
            .filter(|k| matches!(k, SimEventKind::FileRead { .. }))
            .count(),
        containers: log
            .iter()
            .filter(|e| e.kind == SimEventKind::ContainerCreate)
            .count(),
        sessions,
    })
}

/// The seeds before the idle fix: the mayor is `working` from its start on, forever. The
/// same effect on the town's active-work rule without touching the library: an unassigned
/// open `issue` bead, inserted through a second connection to the town store and never
/// closed.
fn mayor_always_working(state: &Path) -> anyhow::Result<TownStore> {
    let store = TownStore::open(&state.join("town.db"))?;
    store.insert_bead(&BeadRecord::issue(
        gastown::core::BeadId::new("seed-mayor-always-working")?,
        "the seeds' always-working mayor",
        "",
        0,
    ))?;
    Ok(store)
}

/// A request the container receives (and which, on a real host, keeps it awake).
fn is_request(kind: &SimEventKind) -> bool {
    matches!(
        kind,
        SimEventKind::SdkCall { .. }
            | SimEventKind::Exec { .. }
            | SimEventKind::Spawn { .. }
            | SimEventKind::FileRead { .. }
            | SimEventKind::FileWrite { .. }
    )
}

fn is_token_refresh(kind: &SimEventKind) -> bool {
    matches!(kind, SimEventKind::FileWrite { path }
        if path.as_str() == gastown::core::simulated::TOKEN_REFRESH_PATH)
}

/// The sum of the container's up intervals: from each create's start to the end of the
/// next stop, removal or kill, or to the end of the day.
fn container_up(log: &[SimEvent], day: Duration) -> Duration {
    let mut events: Vec<&SimEvent> = log.iter().collect();
    events.sort_by_key(|e| (e.start, e.end));
    let mut up = Duration::ZERO;
    let mut since: Option<Duration> = None;
    for e in events {
        match e.kind {
            SimEventKind::ContainerCreate if since.is_none() => since = Some(e.start),
            SimEventKind::ContainerStop
            | SimEventKind::ContainerRemove
            | SimEventKind::ContainerKilled => {
                if let Some(from) = since.take() {
                    up += e.end.min(day).saturating_sub(from);
                }
            }
            _ => {}
        }
    }
    if let Some(from) = since {
        up += day.saturating_sub(from);
    }
    up
}

/// How the `ensure_mayor` that ran from `from` to `to` found the container: a create in
/// between is a cold start, a resume a wake from paused, neither a warm container.
fn wake_kind(log: &[SimEvent], from: Duration, to: Duration) -> Wake {
    let within = |kind: &SimEventKind| {
        log.iter()
            .any(|e| e.kind == *kind && e.start >= from && e.start <= to)
    };
    if within(&SimEventKind::ContainerCreate) {
        Wake::Cold
    } else if within(&SimEventKind::ContainerResume) {
        Wake::Paused
    } else {
        Wake::Warm
    }
}

/// The sum of the container's paused intervals: from the end of each pause to the end of
/// the next resume, stop, removal or kill, or to the end of the day.
fn container_paused(log: &[SimEvent], day: Duration) -> Duration {
    let mut events: Vec<&SimEvent> = log.iter().collect();
    events.sort_by_key(|e| (e.start, e.end));
    let mut paused = Duration::ZERO;
    let mut since: Option<Duration> = None;
    for e in events {
        match e.kind {
            SimEventKind::ContainerPause if since.is_none() && e.ok => since = Some(e.end),
            SimEventKind::ContainerResume
            | SimEventKind::ContainerStop
            | SimEventKind::ContainerRemove
            | SimEventKind::ContainerKilled => {
                if let Some(from) = since.take() {
                    paused += e.end.min(day).saturating_sub(from);
                }
            }
            _ => {}
        }
    }
    if let Some(from) = since {
        paused += day.saturating_sub(from);
    }
    paused
}

/// Container-up hours (running and paused), idle requests and wake latency over a
/// simulated day, for this library with and without its paused tier and for Kilo Gastown
/// before its idle fix.
#[derive(Debug, Parser)]
struct Args {
    /// One JSON object per policy and line instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stop = Stop::install("draining the town")?;
    let reports = Policy::ALL
        .into_iter()
        .map(|p| simulate_day(p, DAY, Some(&stop)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.json {
        for r in &reports {
            println!("{}", r.json());
        }
        return Ok(());
    }
    println!(
        "{:<22} {:>6} {:>14} {:>9} {:>8} {:>13} {:>11}",
        "policy",
        "bursts",
        "container_up_h",
        "running_h",
        "paused_h",
        "idle_requests",
        "wake_p50_ms"
    );
    for r in &reports {
        println!(
            "{:<22} {:>6} {:>14.3} {:>9.3} {:>8.3} {:>13} {:>11}",
            r.policy.name(),
            r.bursts,
            r.container_up_h(),
            r.running_h(),
            r.paused_h(),
            r.idle_requests,
            r.wake_p50_ms()
        );
    }
    let [gastown, no_pause, seed] = [&reports[0], &reports[1], &reports[2]];
    for base in [gastown, no_pause] {
        println!(
            "container-up ratio (seed_before_idle_fix / {}): {:.1}",
            base.policy.name(),
            seed.container_up.as_secs_f64() / base.container_up.as_secs_f64()
        );
    }
    for r in &reports {
        println!(
            "{}: {} container(s), {} session(s); wakes: {} cold, {} from paused, {} warm; \
             idle_requests include {} health probes, {} file reads (kilo.db \
             snapshots) and {} hourly live token refreshes",
            r.policy.name(),
            r.containers,
            r.sessions.len(),
            r.wakes_of(Wake::Cold),
            r.wakes_of(Wake::Paused),
            r.wakes_of(Wake::Warm),
            r.idle_health_probes,
            r.idle_file_reads,
            r.idle_token_refreshes
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
