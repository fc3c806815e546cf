//! A day (24 h) of one town with 8 bursts of user activity, in virtual time on the
//! simulated runtime (a test double whose every operation takes its scripted duration,
//! [`SimScript::default`]; the tokio clock is paused, so the whole day runs in well under
//! a second). It shows what the idle stop saves: container-up hours and the requests the
//! container receives while nobody uses it, for two policies side by side:
//!
//! - `gastown`: this library as it is. The alarm ticks every 300 s without active work
//!   (a `waiting` mayor is not active work) and probes health only with active work; once
//!   the mayor has been quiet for `TownOptions::idle_stop_after` (default 5 min) the
//!   container is drained and stopped, and the next burst's `ensure_mayor` wakes it (a new
//!   container, the same session).
//! - `seed_before_idle_fix`: Kilo Gastown before its idle fix (PR #3113; the P0 "town
//!   containers never go idle" bug, `seeds/004_*.txt`): the mayor counted as `working`
//!   forever, so the town always had active work. Emulated without changing the library:
//!   right after the first `ensure_mayor` (when Kilo Gastown set the mayor `working`), an
//!   unassigned open `issue` bead is inserted through a second `TownStore` connection to
//!   the town's `town.db` and left there all day. The town's active-work rule is then true
//!   all day, exactly as with an always-working mayor: 5 s cadence, a health probe every
//!   tick, never an idle stop.
//!
//! Each burst: `ensure_mayor`, then 2–5 `send_mayor_message`s a minute apart, at fixed
//! times of day ([`BURSTS`]). Measured from the runtime's event log:
//!
//! - `container_up_h`: the sum of the intervals from each container create to its stop
//!   (or removal), or to the end of the day;
//! - `idle_requests`: requests the container received outside the bursts (a burst lasts
//!   from its `ensure_mayor` call to the return of its last message): SDK calls, execs,
//!   spawns, file reads and writes, including the drain's reads before an idle stop and
//!   the hourly live token refreshes (a file write each; the table lists how many).
//!
//! Run it: `cargo run --release --example idle_day [-- --json]`. With `--json`, one object
//! per policy and line:
//!
//! ```text
//! {"policy":"gastown","bursts":8,"container_up_h":…,"idle_requests":…}
//! {"policy":"seed_before_idle_fix","bursts":8,"container_up_h":…,"idle_requests":…}
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use gastown::core::simulated::{SdkOp, SimEvent, SimEventKind, SimScript, SimulatedRuntime};
use gastown::core::store::BeadRecord;
use gastown::core::{BeadStatus, TownConfig, TownId, TownStore};
use gastown::{TownHandle, TownOptions};
use tokio::time::Instant;

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

/// How the town decides it has active work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// The library as it is.
    Gastown,
    /// The mayor counts as working all day (an open unassigned bead, see the module doc).
    SeedBeforeIdleFix,
}

impl Policy {
    const ALL: [Policy; 2] = [Policy::Gastown, Policy::SeedBeforeIdleFix];

    fn name(self) -> &'static str {
        match self {
            Policy::Gastown => "gastown",
            Policy::SeedBeforeIdleFix => "seed_before_idle_fix",
        }
    }
}

/// What one simulated day measured.
#[derive(Debug, Clone, PartialEq)]
struct DayReport {
    policy: Policy,
    bursts: usize,
    /// Sum of the container's up intervals within the day.
    container_up: Duration,
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
        round3(self.container_up.as_secs_f64() / 3600.0)
    }

    /// The `--json` line; the field names are read by other tools.
    fn json(&self) -> String {
        format!(
            r#"{{"policy":"{}","bursts":{},"container_up_h":{},"idle_requests":{}}}"#,
            self.policy.name(),
            self.bursts,
            self.container_up_h(),
            self.idle_requests
        )
    }
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

/// Simulates one day of `policy` on a fresh paused tokio runtime.
fn simulate_day(policy: Policy, day: Duration) -> anyhow::Result<DayReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    runtime.block_on(day_of(policy, day))
}

async fn day_of(policy: Policy, day: Duration) -> anyhow::Result<DayReport> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let town_id = TownId::new("idle-day")?;
    // Virtual time zero of the runtime's log is now.
    let rt = SimulatedRuntime::new(SimScript::default());
    let origin = Instant::now();
    let options = TownOptions::new(TownConfig::new(town_id.clone()), &state, rt.clone())
        .with_sdk_connector(rt.sdk_connector());
    let town = TownHandle::start(options).await?;

    let bursts = schedule(day);
    let mut windows = Vec::with_capacity(bursts.len());
    let mut sessions = BTreeSet::new();
    let mut always_working: Option<TownStore> = None;
    for (n, &(at, messages)) in bursts.iter().enumerate() {
        tokio::time::sleep_until(origin + at).await;
        let from = rt.elapsed();
        sessions.insert(town.ensure_mayor().await?.session_id);
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
    Ok(DayReport {
        policy,
        bursts: bursts.len(),
        container_up: container_up(&log, day),
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
    store.insert_bead(&BeadRecord {
        id: "seed-mayor-always-working".into(),
        kind: "issue".into(),
        status: BeadStatus::Open,
        assignee: None,
    })?;
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

/// Container-up hours and idle requests over a simulated day, for this library and for
/// Kilo Gastown before its idle fix.
#[derive(Debug, Parser)]
struct Args {
    /// One JSON object per policy and line instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let reports = Policy::ALL
        .into_iter()
        .map(|p| simulate_day(p, DAY))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.json {
        for r in &reports {
            println!("{}", r.json());
        }
        return Ok(());
    }
    println!(
        "{:<22} {:>6} {:>14} {:>13}",
        "policy", "bursts", "container_up_h", "idle_requests"
    );
    for r in &reports {
        println!(
            "{:<22} {:>6} {:>14.3} {:>13}",
            r.policy.name(),
            r.bursts,
            r.container_up_h(),
            r.idle_requests
        );
    }
    let [gastown, seed] = [&reports[0], &reports[1]];
    println!(
        "container-up ratio (seed_before_idle_fix / gastown): {:.1}",
        seed.container_up.as_secs_f64() / gastown.container_up.as_secs_f64()
    );
    for r in &reports {
        println!(
            "{}: {} container(s), {} session(s); idle_requests include {} health probes, {} \
             file reads (drain snapshots) and {} hourly live token refreshes",
            r.policy.name(),
            r.containers,
            r.sessions.len(),
            r.idle_health_probes,
            r.idle_file_reads,
            r.idle_token_refreshes
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4 h day: bursts 14+ min apart, so the 5 min quiet window still ends between them.
    const SHORT_DAY: Duration = Duration::from_secs(4 * 3600);

    #[test]
    fn the_library_stops_between_bursts_and_the_seed_never_does() {
        let gastown = simulate_day(Policy::Gastown, SHORT_DAY).unwrap();
        let seed = simulate_day(Policy::SeedBeforeIdleFix, SHORT_DAY).unwrap();

        // One container per burst, the same session throughout.
        assert_eq!(gastown.containers, BURSTS.len(), "{gastown:?}");
        assert_eq!(gastown.sessions.len(), 1, "{gastown:?}");
        assert_eq!(gastown.idle_health_probes, 0, "{gastown:?}");
        assert_eq!(
            gastown.idle_requests,
            gastown.idle_file_reads + gastown.idle_token_refreshes,
            "only drain snapshots and token refreshes while idle: {gastown:?}"
        );
        // Each burst: at most its messages (≤ 5 min) plus the 5 min window and a tick.
        assert!(gastown.container_up < BURSTS.len() as u32 * 11 * MIN);

        // The seed: one container, up from the first burst to the end of the day, a
        // health probe every 5 s in between.
        assert_eq!(seed.containers, 1, "{seed:?}");
        assert_eq!(seed.sessions.len(), 1, "{seed:?}");
        let first = schedule(SHORT_DAY)[0].0;
        let up = SHORT_DAY - first;
        assert!(
            seed.container_up <= up && seed.container_up + MIN > up,
            "{seed:?}"
        );
        assert!(
            seed.idle_health_probes as u64 > up.as_secs() / 5 / 2,
            "{seed:?}"
        );
        assert!(seed.idle_requests > 10 * gastown.idle_requests.max(1));
    }

    #[test]
    fn the_json_line_has_the_names_other_tools_read() {
        let report = DayReport {
            policy: Policy::SeedBeforeIdleFix,
            bursts: 8,
            container_up: Duration::from_secs(5400),
            idle_requests: 42,
            idle_token_refreshes: 1,
            idle_health_probes: 40,
            idle_file_reads: 0,
            containers: 1,
            sessions: BTreeSet::new(),
        };
        assert_eq!(
            report.json(),
            r#"{"policy":"seed_before_idle_fix","bursts":8,"container_up_h":1.5,"idle_requests":42}"#
        );
        let v: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(v["container_up_h"], 1.5);
    }
}
