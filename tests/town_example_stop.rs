//! Graceful stop of a host: the `town` example (`examples/town/main.rs`, the debug build
//! `cargo test` makes of it) on the real kilo, local runtime. SIGTERM once the mayor is
//! ready drains the town — the container is removed and the mayor's session is in its
//! snapshot — and the example exits 1; SIGINT twice exits at once with status 130, leaving
//! the container as it was.
//!
//! Skipped (with a line) when kilo is not installed or the example binary was not built
//! (`cargo test --workspace` builds it; `cargo build --example town` otherwise), unless
//! `GASTOWN_REQUIRE_KILO=1`. One kilo at a time: the tests take a shared lock.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use gastown::actors::test_support::sqlite_contains;
use gastown::core::{kilo, ContainerRuntime, TownId};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

/// One real kilo at a time across this file's tests.
static ONE_KILO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A bound on waits for the example (a failure guard, not a timing assertion).
const GUARD: Duration = Duration::from_secs(180);

/// The example binary next to this test's (`<target>/<profile>/examples/town`), or `None`
/// (skip) when it is not built and kilo tests are not required.
fn example_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test>");
    let bin = profile_dir.join("examples").join("town");
    if bin.is_file() {
        return Some(bin);
    }
    let why = format!(
        "{} is not built (cargo build --example town)",
        bin.display()
    );
    if std::env::var_os(kilo::REQUIRE_KILO_ENV).is_some_and(|v| v == "1") {
        panic!("{}=1 but {why}", kilo::REQUIRE_KILO_ENV);
    }
    eprintln!("skipping: {why}");
    None
}

/// The running example and its output, line by line.
struct Example {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
}

impl Example {
    /// Starts the example with its state in `state` and waits for the mayor's first
    /// `mayor_ready` line (the town is then up, a turn about to run). Returns the session.
    async fn start_until_ready(bin: &Path, kilo_bin: &Path, state: &Path) -> (Example, String) {
        let mut child = Command::new(bin)
            .arg("--json")
            .arg("--state-dir")
            .arg(state)
            .arg("--kilo")
            .arg(kilo_bin)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the example starts");
        let mut example = Example {
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            stderr: BufReader::new(child.stderr.take().unwrap()).lines(),
            child,
        };
        let ready = example.stdout_line(|l| l.contains("\"mayor_ready\"")).await;
        let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
        let session = ready["session_id"].as_str().unwrap().to_owned();
        (example, session)
    }

    async fn stdout_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        tokio::time::timeout(GUARD, async {
            loop {
                let line = self.stdout.next_line().await.unwrap();
                let line = line.expect("the example ended before the line came");
                if wanted(&line) {
                    return line;
                }
            }
        })
        .await
        .expect("the line did not come")
    }

    /// Waits for a stderr line holding `needle`; returns every stderr line up to it.
    async fn stderr_until(&mut self, needle: &str) -> Vec<String> {
        tokio::time::timeout(GUARD, async {
            let mut seen = Vec::new();
            loop {
                let line = self.stderr.next_line().await.unwrap();
                let line = line.unwrap_or_else(|| panic!("no {needle:?} on stderr: {seen:?}"));
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
        })
        .await
        .expect("the stderr line did not come")
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// Waits for the exit; returns the status code and the rest of stderr.
    async fn exit(mut self) -> (Option<i32>, Vec<String>) {
        let mut rest = Vec::new();
        let status = tokio::time::timeout(GUARD, async {
            while let Some(line) = self.stderr.next_line().await.unwrap() {
                rest.push(line);
            }
            self.child.wait().await.unwrap()
        })
        .await
        .expect("the example did not exit");
        (status.code(), rest)
    }
}

#[tokio::test]
async fn sigterm_drains_the_town_and_exits_non_zero() {
    let Some(kilo_bin) = kilo::test_binary() else {
        return;
    };
    let Some(bin) = example_binary() else { return };
    let _one = ONE_KILO.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (mut example, session) = Example::start_until_ready(&bin, &kilo_bin, &state).await;

    example.signal("TERM");
    example.stderr_until("SIGTERM: draining the town").await;
    let (code, stderr) = example.exit().await;
    assert_eq!(code, Some(1), "{stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("stopped by SIGTERM; the town was drained")),
        "{stderr:?}"
    );
    assert!(
        !state.join("containers").join("demo").exists(),
        "the drained container is removed"
    );
    let snapshot = state.join("snapshots").join("mayor").join("kilo.db");
    assert!(
        sqlite_contains(&snapshot, &session),
        "the snapshot holds the mayor's session {session}"
    );
}

#[tokio::test]
async fn a_second_signal_exits_at_once_without_draining() {
    let Some(kilo_bin) = kilo::test_binary() else {
        return;
    };
    let Some(bin) = example_binary() else { return };
    let _one = ONE_KILO.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (mut example, _) = Example::start_until_ready(&bin, &kilo_bin, &state).await;

    example.signal("INT");
    // The second signal only once the first was taken (two pending signals may merge).
    example.stderr_until("SIGINT: draining the town").await;
    example.signal("INT");
    let (code, stderr) = example.exit().await;
    assert_eq!(code, Some(130), "{stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("exiting without draining")),
        "{stderr:?}"
    );
    assert!(
        state.join("containers").join("demo").exists(),
        "no drain: the container is left as it was"
    );
    // The mayor's server may outlive the example (unless a write to its closed stdout ends
    // it). A next host's runtime on the same root ends the recorded servers an earlier host
    // left, as here, so this test leaks no kilo.
    let rt = gastown::local::LocalRuntime::new(state.join("containers"));
    rt.remove(&TownId::new("demo").unwrap()).await.unwrap();
    assert_eq!(servers_under(&state), Vec::<u32>::new(), "left servers");
}

/// The pids of live processes whose working directory is under `dir` (`/proc/<pid>/cwd`).
fn servers_under(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .filter(|pid| {
            // A zombie is already gone: only its exit status is left.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            })
        })
        .collect()
}
