//! `host_restart`: mayor-ready after the host process is killed with SIGKILL while its
//! container (and the mayor's SDK server in it) lives on, as a restarted host sees it.
//!
//! Per sample: a child host — this program run again with `GASTOWN_HOST_RESTART_*` in its
//! environment ([`Child::from_env`]) — starts a town on a fresh state directory, makes its
//! mayor ready, says so on stdout and waits; it is killed with SIGKILL (nothing drains,
//! nothing stops a server: `TownHandle::detach` would stop them, so it cannot stand in
//! for a crash). Then this process starts a `TownHandle` on the same state directory and
//! times `ensure_mayor`, which must adopt the running server (`short_circuit_warm`). The
//! row's floor is the `cold` rows' floor of the same run: the restart against what a cold
//! redispatch costs.
//!
//! Not a library API: example code only.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use gastown::actors::{TownHandle, TownOptions};
use gastown::core::{ContainerRuntime, EnsureDecision, TownConfig, TownId};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use super::{median, ms, town_id};

/// The environment variable naming the child's runtime (`local` or `docker`).
const RUNTIME_VAR: &str = "GASTOWN_HOST_RESTART_RUNTIME";
/// The local runtime's root (the child must share the parent's).
const ROOT_VAR: &str = "GASTOWN_HOST_RESTART_ROOT";
/// The town's state directory.
const STATE_VAR: &str = "GASTOWN_HOST_RESTART_STATE";
/// The town id.
const TOWN_VAR: &str = "GASTOWN_HOST_RESTART_TOWN";
/// The child's line once its mayor is ready.
const READY_LINE: &str = "HOST_RESTART ready";
/// A bound on the child's cold start: a hang guard only.
const CHILD_GUARD: Duration = Duration::from_secs(180);

/// What a child host is told through its environment.
#[derive(Debug, Clone)]
pub struct Child {
    /// `local` or `docker`.
    pub runtime: String,
    /// The local runtime's root (empty for Docker).
    pub root: PathBuf,
    state: PathBuf,
    town: String,
}

impl Child {
    /// The child's orders when this process was started as one, else `None`.
    pub fn from_env() -> Option<Child> {
        Some(Child {
            runtime: std::env::var(RUNTIME_VAR).ok()?,
            root: std::env::var_os(ROOT_VAR)
                .map(PathBuf::from)
                .unwrap_or_default(),
            state: std::env::var_os(STATE_VAR)?.into(),
            town: std::env::var(TOWN_VAR).ok()?,
        })
    }

    /// Starts the town on `rt`, makes the mayor ready, prints [`READY_LINE`] and waits to
    /// be killed.
    pub async fn run(self, rt: Arc<dyn ContainerRuntime>) -> anyhow::Result<()> {
        let town = TownId::new(self.town)?;
        let handle =
            TownHandle::start(TownOptions::new(TownConfig::new(town), &self.state, rt)).await?;
        handle.ensure_mayor().await?;
        println!("{READY_LINE}");
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// The median of `runs` restarts' `ensure_mayor`, in ms (see the module docs). `root` is
/// the local runtime's root (`None` for Docker); `rt` is the runtime the restarted host
/// uses (it never saw the town before, as a new process would not have).
///
/// # Panics
/// When the child host fails, or the restart does not adopt the running server: a bench
/// that measured something else would mislead.
pub async fn real_host_restart(
    rt: &Arc<dyn ContainerRuntime>,
    runtime: &str,
    root: Option<&Path>,
    runs: usize,
) -> f64 {
    let mut samples = Vec::new();
    for n in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let town = town_id("restart", n);
        let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
        cmd.env(RUNTIME_VAR, runtime)
            .env(STATE_VAR, &state)
            .env(TOWN_VAR, town.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(root) = root {
            cmd.env(ROOT_VAR, root);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(CHILD_GUARD, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line == READY_LINE {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "the child host made its mayor ready");
        // The crash: SIGKILL, nothing drains or stops.
        child.start_kill().unwrap();
        child.wait().await.unwrap();

        let handle = TownHandle::start(TownOptions::new(
            TownConfig::new(town.clone()),
            &state,
            rt.clone(),
        ))
        .await
        .unwrap();
        let t0 = Instant::now();
        let ready = handle.ensure_mayor().await.unwrap();
        samples.push(ms(t0.elapsed()));
        assert_eq!(
            ready.report.decision,
            EnsureDecision::ShortCircuitWarm,
            "the restarted host adopted the running mayor"
        );
        handle.shutdown().await.unwrap();
    }
    median(samples)
}
