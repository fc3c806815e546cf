//! Tests of the simulated day: the claims the table makes, on shorter days.
use super::*;

/// A 4 h day: bursts 14–35 min apart, so the 5 min quiet window still ends between
/// them, and (with the bursts' messages) the default 30 min paused window does not.
const SHORT_DAY: Duration = Duration::from_secs(4 * 3600);

#[test]
fn the_library_stops_between_bursts_and_the_seed_never_does() {
    let gastown = simulate_day(Policy::GastownNoPause, SHORT_DAY, None).unwrap();
    let seed = simulate_day(Policy::SeedBeforeIdleFix, SHORT_DAY, None).unwrap();

    // One container per burst, the same session throughout; every wake is cold.
    assert_eq!(gastown.containers, BURSTS.len(), "{gastown:?}");
    assert_eq!(gastown.sessions.len(), 1, "{gastown:?}");
    assert_eq!(gastown.wakes_of(Wake::Cold), BURSTS.len(), "{gastown:?}");
    assert_eq!(gastown.paused, Duration::ZERO, "{gastown:?}");
    assert_eq!(gastown.idle_health_probes, 0, "{gastown:?}");
    assert_eq!(
        gastown.idle_requests,
        gastown.idle_file_reads + gastown.idle_token_refreshes,
        "only drain snapshots and token refreshes while idle: {gastown:?}"
    );
    // Each burst: at most its messages (≤ 5 min) plus the 5 min window and a tick.
    assert!(gastown.container_up < BURSTS.len() as u32 * 11 * MIN);

    // The seed: one container, up from the first burst to the end of the day, a
    // health probe every 5 s in between, never paused.
    assert_eq!(seed.containers, 1, "{seed:?}");
    assert_eq!(seed.sessions.len(), 1, "{seed:?}");
    assert_eq!(seed.paused, Duration::ZERO, "{seed:?}");
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
fn the_default_pauses_between_bursts_and_wakes_in_tens_of_ms() {
    let gastown = simulate_day(Policy::Gastown, SHORT_DAY, None).unwrap();
    let no_pause = simulate_day(Policy::GastownNoPause, SHORT_DAY, None).unwrap();

    // One container all day, the same session; the first burst starts cold, every
    // later one finds the container paused (resumed in place) or, right after a wake,
    // still running.
    assert_eq!(gastown.containers, 1, "{gastown:?}");
    assert_eq!(gastown.sessions.len(), 1, "{gastown:?}");
    assert_eq!(gastown.wakes_of(Wake::Cold), 1, "{gastown:?}");
    assert_eq!(
        gastown.wakes_of(Wake::Paused) + gastown.wakes_of(Wake::Warm),
        BURSTS.len() - 1,
        "{gastown:?}"
    );
    assert!(
        gastown.wakes_of(Wake::Paused) >= (BURSTS.len() - 1) / 2,
        "{gastown:?}"
    );
    // No probe or refresh into the frozen container: only the snapshots before each
    // pause, and token refreshes while it runs.
    assert_eq!(gastown.idle_health_probes, 0, "{gastown:?}");
    assert_eq!(
        gastown.idle_requests,
        gastown.idle_file_reads + gastown.idle_token_refreshes,
        "{gastown:?}"
    );
    // The trade: the paused tier keeps the container up (mostly frozen) where the
    // no-pause policy stops it, and the median wake is tens of ms against a cold start.
    assert!(gastown.paused > Duration::ZERO, "{gastown:?}");
    assert!(gastown.paused < gastown.container_up, "{gastown:?}");
    assert!(gastown.container_up > no_pause.container_up, "{gastown:?}");
    assert!(
        gastown.container_up.saturating_sub(gastown.paused) < BURSTS.len() as u32 * 11 * MIN,
        "running: at most each burst, its quiet window and a tick: {gastown:?}"
    );
    assert!(gastown.wake_p50_ms() < 100, "{gastown:?}");
    assert!(
        no_pause.wake_p50_ms() > 20 * gastown.wake_p50_ms(),
        "{no_pause:?}"
    );
}

#[test]
fn the_paused_window_stops_the_container_when_bursts_are_far_apart() {
    // The whole 24 h day: the bursts are 85+ min apart, so each paused container is
    // stopped after 30 min and every burst starts cold, as without the paused tier.
    let gastown = simulate_day(Policy::Gastown, DAY, None).unwrap();
    assert_eq!(gastown.containers, BURSTS.len(), "{gastown:?}");
    assert_eq!(gastown.wakes_of(Wake::Cold), BURSTS.len(), "{gastown:?}");
    assert!(
        gastown.paused >= BURSTS.len() as u32 * 30 * MIN
            && gastown.paused < BURSTS.len() as u32 * 31 * MIN,
        "{gastown:?}"
    );
}

#[test]
fn the_wake_p50_is_the_nearest_rank_median() {
    let mut report = report(Policy::Gastown);
    let ms = Duration::from_millis;
    report.wakes = [3500, 40, 45, 3400, 42, 41, 44, 43]
        .into_iter()
        .map(|n| (ms(n), Wake::Paused))
        .collect();
    // Sorted: 40 41 42 43 44 45 3400 3500; the 4th is 43.
    assert_eq!(report.wake_p50_ms(), 43);
    report.wakes.truncate(1);
    assert_eq!(report.wake_p50_ms(), 3500);
    report.wakes.clear();
    assert_eq!(report.wake_p50_ms(), 0);
}

fn report(policy: Policy) -> DayReport {
    DayReport {
        policy,
        bursts: 8,
        container_up: Duration::from_secs(5400),
        paused: Duration::from_secs(1800),
        wakes: vec![(Duration::from_millis(3512), Wake::Cold)],
        idle_requests: 42,
        idle_token_refreshes: 1,
        idle_health_probes: 40,
        idle_file_reads: 0,
        containers: 1,
        sessions: BTreeSet::new(),
    }
}

#[test]
fn the_json_line_has_the_names_other_tools_read() {
    let report = report(Policy::SeedBeforeIdleFix);
    assert_eq!(
        report.json(),
        r#"{"policy":"seed_before_idle_fix","bursts":8,"container_up_h":1.5,"idle_requests":42,"paused_h":0.5,"wake_p50_ms":3512}"#
    );
    let v: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
    assert_eq!(v["container_up_h"], 1.5);
    assert_eq!(v["paused_h"], 0.5);
    assert_eq!(v["wake_p50_ms"], 3512);
    assert_eq!(report.running_h(), 1.0);
}

#[test]
fn a_stop_signal_ends_the_day_early_after_draining_the_town() {
    let stop = Stop::requested_by(stop::StopSignal::Terminate);
    let err = simulate_day(Policy::Gastown, SHORT_DAY, Some(&stop)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stopped by SIGTERM; the town was drained",
        "the town's shutdown succeeded"
    );
}
