//! A timed-out SDK attempt never overlaps the next one: its whole process group is gone —
//! SIGTERM, SIGKILL after the stop grace, waited for — before the retry starts and before
//! the start's error returns. Checked with a test double of kilo: a script that ignores
//! SIGTERM and never prints its listening line, and that notes at each start whether an
//! earlier instance is still alive. Needs only a POSIX shell and git (the worktrees phase).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use gastown_actors::{Error, StartOptions, TownHandle, TownOptions};
use gastown_core::policy::RetryPolicy;
use gastown_core::StartupPhase;

use common::{alive, local_runtime, town_config};

#[tokio::test]
async fn a_hung_sdk_attempt_is_killed_and_waited_for_before_the_retry_and_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let overlaps = dir.path().join("overlaps");
    let fake = dir.path().join("hung-kilo");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n\
             trap '' TERM\n\
             PATH=/usr/bin:/bin\n\
             if [ -f {pids} ]; then for p in $(cat {pids}); do \
               if kill -0 \"$p\" 2>/dev/null; then echo \"$p\" >> {overlaps}; fi; done; fi\n\
             echo $$ >> {pids}\n\
             while :; do sleep 1; done\n",
            pids = pids.display(),
            overlaps = overlaps.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let rt = local_runtime(&dir.path().join("c"), &fake);
    let mut start = StartOptions::default()
        .with_timeout(StartupPhase::Sdk, Duration::from_millis(800))
        .with_retry(RetryPolicy {
            max_restarts: 2,
            within: Duration::from_secs(600),
            backoff: Duration::from_millis(10),
            max_attempts: 3,
        });
    start.stop_grace = Duration::from_millis(300);
    let town = TownHandle::start(
        TownOptions::new(town_config("overlap"), dir.path().join("state"), rt)
            .with_start_options(start),
    )
    .await
    .unwrap();

    let err = town
        .ensure_mayor()
        .await
        .expect_err("the server never listens");
    match &err {
        Error::Start(e) => {
            assert_eq!(e.phase, StartupPhase::Sdk, "{e}");
            assert_eq!(e.attempts, 3, "{e}");
        }
        other => panic!("not a start error: {other}"),
    }
    // When the error returns, every attempt's server is gone (each ignored SIGTERM).
    let started: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(started.len(), 3, "one server per attempt: {started:?}");
    for pid in &started {
        assert!(!alive(*pid), "attempt server {pid} outlived the error");
    }
    // And no attempt started while an earlier one still ran.
    let overlapped = std::fs::read_to_string(&overlaps).unwrap_or_default();
    assert!(overlapped.is_empty(), "overlapping servers: {overlapped}");
    town.shutdown().await.unwrap();
}
