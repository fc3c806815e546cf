//! [`LocalRuntime`]: the [`ContainerRuntime`] on host processes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gastown_core::runtime::{PathKind, PathStat};
use gastown_core::{
    AdoptedProcess, CommandSpec, ContainerInfo, ContainerOptions, ContainerPath, ContainerRuntime,
    ContainerStatus, Error, ExecOutput, ProcessLabel, ProcessStatus, Result, SpawnedProcess,
    TownId,
};
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::error::LocalError;
use crate::paths::{host_path, word_value};
use crate::process::{KillOnDrop, LocalProcess, Started};
use crate::programs::Programs;
use crate::{mounts, output};

/// The grace [`ContainerRuntime::remove`] gives processes between SIGTERM and SIGKILL: 2 s
/// (the trait's `remove` takes none; removal is for towns being thrown away).
pub const REMOVE_GRACE: Duration = Duration::from_secs(2);

/// Files written with [`ContainerRuntime::put_file`] get mode `0644`, as a plain `write`
/// under the usual umask would give (the temp file they start as is `0600`).
const PUT_FILE_MODE: u32 = 0o644;

/// The local backend: a town's container is the directory `<root>/<town>/` plus the process
/// groups spawned for it (see the crate docs).
///
/// Whether a town runs is kept in memory: a directory left by an earlier run of the program
/// is `Exited` until started again. Every `spawn` is recorded in the town's directory
/// (`run/gastown/processes/<pid>.json`: pid, start time, boot id, label) before it returns,
/// so a runtime that starts a town an earlier host (crashed, or killed with SIGKILL) left
/// behind takes its processes over: a labelled SDK server waits for its agent to
/// [`adopt`](ContainerRuntime::adopt) it (the start then reports `created == false`),
/// anything else is killed, and `stop`/`remove` end every recorded process. Dropping the
/// runtime kills every process group it holds (SIGKILL, best effort).
#[derive(Debug)]
pub struct LocalRuntime {
    root: PathBuf,
    programs: Programs,
    pub(crate) towns: Mutex<HashMap<TownId, TownState>>,
}

#[derive(Debug, Default)]
pub(crate) struct TownState {
    pub(crate) running: bool,
    /// Every process group got SIGSTOP (`pause`); cleared by `resume`, `stop`, `remove`.
    pub(crate) paused: bool,
    /// Process groups started for the town (and recorded ones an earlier host left, found
    /// when the town started), dropped once their last member has ended (checked on each
    /// start): a leader that exited may have left children behind.
    pub(crate) processes: Vec<Arc<LocalProcess>>,
}

/// Builds a [`LocalRuntime`]: the root directory and the program map.
#[derive(Debug, Clone)]
pub struct LocalRuntimeBuilder {
    root: PathBuf,
    programs: BTreeMap<String, PathBuf>,
}

impl LocalRuntimeBuilder {
    /// Maps the bare program name `name` (e.g. `kilo`) to the host binary `host_path`. Mapped
    /// names win over the host's `PATH`. A name holding `/` is never looked up here.
    pub fn with_program(mut self, name: impl Into<String>, host_path: impl Into<PathBuf>) -> Self {
        self.programs.insert(name.into(), host_path.into());
        self
    }

    /// The runtime. Reads this process's `PATH` now, once, for resolving bare names that
    /// are not mapped; a relative root is made absolute against the current directory.
    pub fn build(self) -> LocalRuntime {
        let root = std::path::absolute(&self.root).unwrap_or(self.root);
        LocalRuntime {
            root,
            programs: Programs::new(self.programs),
            towns: Mutex::new(HashMap::new()),
        }
    }
}

impl LocalRuntime {
    /// A runtime keeping towns under `root`, with no program map (bare names come from the
    /// host's `PATH`). Nothing is created until a town starts.
    pub fn new(root: PathBuf) -> Self {
        Self::builder(root).build()
    }

    /// A builder for a runtime keeping towns under `root`.
    pub fn builder(root: PathBuf) -> LocalRuntimeBuilder {
        LocalRuntimeBuilder {
            root,
            programs: BTreeMap::new(),
        }
    }

    /// The directory holding every town's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The town's container directory, `<root>/<town>` (the container's `/`).
    pub fn town_dir(&self, town: &TownId) -> PathBuf {
        self.root.join(town.as_str())
    }

    /// Where the container path `path` of `town` is on the host:
    /// `/agents/mayor/data` → `<root>/<town>/agents/mayor/data`.
    pub fn host_path(&self, town: &TownId, path: &ContainerPath) -> PathBuf {
        host_path(&self.town_dir(town), path)
    }

    /// `Ok` when the town runs and is not paused.
    pub(crate) fn ensure_running(&self, town: &TownId) -> Result<()> {
        let towns = self.towns.lock();
        check_running(town, towns.get(town)).map(|_| ())
    }

    /// SIGSTOP (`freeze`) or SIGCONT to every live process group of the running town, and
    /// the paused flag set to `freeze`. Under the town lock, so a concurrent `spawn`
    /// either comes before (and is frozen) or sees the flag.
    fn freeze(&self, town: &TownId, freeze: bool) -> Result<()> {
        let mut towns = self.towns.lock();
        let state = towns
            .get_mut(town)
            .filter(|s| s.running)
            .ok_or_else(|| Error::ContainerNotRunning { town: town.clone() })?;
        if state.paused == freeze {
            return Ok(());
        }
        state.processes.retain(|p| p.group_alive());
        let results: Vec<Result<()>> = state.processes.iter().map(|p| p.freeze(freeze)).collect();
        state.paused = freeze;
        tracing::debug!(town = %town, freeze, groups = results.len(), "local container frozen/continued");
        results
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), Err)
    }

    /// A tokio `Command` for `spec`: resolved program, mapped args/env/cwd, empty env base.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an env name that is empty or holds `=` or NUL (the
    /// value is never echoed: it may be a secret); [`Error::ProgramNotFound`]; [`Error::Io`]
    /// when the cwd is not a directory.
    fn command(&self, town: &TownId, spec: &CommandSpec) -> Result<Command> {
        if let Some(key) = spec
            .env
            .keys()
            .find(|k| k.is_empty() || k.contains(['=', '\0']))
        {
            return Err(Error::InvalidConfig {
                message: format!(
                    "environment variable name {key:?} of {} must be non-empty without '=' or NUL",
                    spec.program
                ),
            });
        }
        let program = self.programs.resolve(&spec.program)?;
        let dir = self.town_dir(town);
        let cwd = match &spec.cwd {
            Some(c) => host_path(&dir, c),
            None => dir.clone(),
        };
        let shown_cwd = spec.cwd.clone().unwrap_or_else(ContainerPath::root);
        let ctx = || format!("working directory {shown_cwd} of {}", spec.program);
        match std::fs::metadata(&cwd) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                let e = std::io::Error::from(std::io::ErrorKind::NotADirectory);
                return Err(Error::io(ctx(), e));
            }
            Err(e) => return Err(Error::io(ctx(), e)),
        }
        let mut cmd = Command::new(&program);
        // argv[0] is the name asked for, as in a container: busybox applets mapped to the
        // busybox binary dispatch on it.
        cmd.arg0(&spec.program)
            .env_clear()
            .args(spec.args.iter().map(|w| word_value(&dir, w)))
            .envs(spec.env.iter().map(|(k, w)| (k, word_value(&dir, w))))
            .current_dir(cwd);
        Ok(cmd)
    }

    /// Starts `spec` and registers it with the running town, atomically with the check that
    /// the town runs (a concurrent `stop` either sees it or prevents it).
    ///
    /// `record`: write the process's record (with this label, if any) before returning;
    /// `stdin`: what the child reads (a held lock file, else nothing).
    pub(crate) fn start_process(
        &self,
        town: &TownId,
        spec: &CommandSpec,
        record: Option<Option<&ProcessLabel>>,
        stdin: std::process::Stdio,
    ) -> Result<Started> {
        self.ensure_running(town)?;
        let cmd = self.command(town, spec)?;
        let records_dir = self.records_dir(town);
        let record = record.map(|label| (records_dir.as_path(), label));
        let mut towns = self.towns.lock();
        let state = check_running(town, towns.get_mut(town))?;
        let started =
            LocalProcess::start(&spec.program, cmd, stdin, record).map_err(|e| match e.kind() {
                // The program was resolved, so this is its interpreter (`#!`) or loader.
                std::io::ErrorKind::NotFound => Error::ProgramNotFound {
                    program: spec.program.clone(),
                    hint: "; the file exists but could not be executed (missing interpreter?)"
                        .to_owned(),
                },
                _ => Error::io(format!("starting {}", spec.program), e),
            })?;
        state.processes.retain(|p| p.group_alive());
        state.processes.push(started.process.clone());
        Ok(started)
    }

    /// Takes the town's processes and marks it not running.
    pub(crate) fn take_processes(&self, town: &TownId) -> Vec<Arc<LocalProcess>> {
        let mut towns = self.towns.lock();
        match towns.get_mut(town) {
            Some(state) => {
                state.running = false;
                // `terminate` sends SIGCONT after SIGTERM, so frozen groups see it.
                state.paused = false;
                std::mem::take(&mut state.processes)
            }
            None => Vec::new(),
        }
    }
}

/// The town's state when it runs and is not paused: [`Error::ContainerNotRunning`] for an
/// absent or stopped town, [`Error::ContainerPaused`] for a paused one.
pub(crate) fn check_running<S: std::borrow::Borrow<TownState>>(
    town: &TownId,
    state: Option<S>,
) -> Result<S> {
    match state {
        Some(s) if s.borrow().running && !s.borrow().paused => Ok(s),
        Some(s) if s.borrow().running => Err(Error::ContainerPaused { town: town.clone() }),
        _ => Err(Error::ContainerNotRunning { town: town.clone() }),
    }
}

/// SIGTERM, `grace`, SIGKILL for every process at once; the first error (if any) after all
/// were tried.
pub(crate) async fn terminate_all(processes: &[Arc<LocalProcess>], grace: Duration) -> Result<()> {
    let results = futures::future::join_all(processes.iter().map(|p| p.terminate(grace))).await;
    results
        .into_iter()
        .find_map(Result::err)
        .map_or(Ok(()), Err)
}

#[async_trait]
impl ContainerRuntime for LocalRuntime {
    fn name(&self) -> &'static str {
        crate::error::RUNTIME
    }

    fn sdk_bind_host(&self) -> &str {
        "127.0.0.1"
    }

    async fn start(&self, town: &TownId, options: &ContainerOptions) -> Result<ContainerInfo> {
        let dir = self.town_dir(town);
        mounts::validate(&dir, &options.mounts)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        mounts::apply(&dir, &options.mounts)?;
        let was_running = {
            let mut towns = self.towns.lock();
            let state = towns.entry(town.clone()).or_default();
            std::mem::replace(&mut state.running, true)
        };
        // A town this runtime did not run yet may have processes an earlier host left:
        // labelled ones wait for an adopter, the rest are killed.
        let created = !was_running && !self.take_over_records(town);
        // A paused town is adopted running.
        self.freeze(town, false)?;
        tracing::debug!(town = %town, created, "local container started");
        Ok(ContainerInfo {
            id: dir.display().to_string(),
            created,
        })
    }

    async fn status(&self, town: &TownId) -> Result<ContainerStatus> {
        let dir = self.town_dir(town);
        match tokio::fs::metadata(&dir).await {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(ContainerStatus::Absent),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ContainerStatus::Absent)
            }
            Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
        }
        let towns = self.towns.lock();
        Ok(match towns.get(town) {
            Some(s) if s.running && s.paused => ContainerStatus::Paused,
            Some(s) if s.running => ContainerStatus::Running,
            _ => ContainerStatus::Exited,
        })
    }

    async fn exec(&self, town: &TownId, command: &CommandSpec) -> Result<ExecOutput> {
        let Started {
            process,
            mut stdout,
            mut stderr,
        } = self.start_process(town, command, None, std::process::Stdio::null())?;
        let guard = KillOnDrop::new(&process);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (read_out, read_err, status) = tokio::join!(
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err),
            process.wait()
        );
        guard.disarm();
        let ctx = || format!("reading the output of {}", command.program);
        read_out.map_err(|e| Error::io(ctx(), e))?;
        read_err.map_err(|e| Error::io(ctx(), e))?;
        let exit_code = match status {
            ProcessStatus::Exited(code) => code.unwrap_or(-1),
            other => {
                return Err(LocalError::NoExitCode {
                    program: command.program.clone(),
                    status: other,
                }
                .into())
            }
        };
        Ok(ExecOutput {
            exit_code,
            stdout: out,
            stderr: err,
        })
    }

    async fn spawn(&self, town: &TownId, command: &CommandSpec) -> Result<SpawnedProcess> {
        let Started {
            process,
            stdout,
            stderr,
        } = self.start_process(town, command, Some(None), std::process::Stdio::null())?;
        Ok(SpawnedProcess {
            handle: process,
            output: output::pump(stdout, stderr),
        })
    }

    async fn endpoint(&self, town: &TownId, port: u16) -> Result<String> {
        self.ensure_running(town)?;
        Ok(format!("http://127.0.0.1:{port}"))
    }

    async fn put_file(&self, town: &TownId, path: &ContainerPath, contents: &[u8]) -> Result<()> {
        self.ensure_running(town)?;
        let Some(parent) = path.parent() else {
            return Err(Error::InvalidPath {
                path: path.to_string(),
                reason: "is the container's root directory, not a file",
            });
        };
        let (target, dir) = (self.host_path(town, path), self.host_path(town, &parent));
        let (contents, shown) = (contents.to_vec(), path.to_string());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            // Temp file in the same directory, then rename: readers see the old file or the
            // new one, never a half-written one.
            let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
            tmp.write_all(&contents)?;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(PUT_FILE_MODE))?;
            tmp.persist(&target).map_err(|e| e.error)?;
            Ok(())
        })
        .await
        .map_err(|source| Error::Task {
            context: format!("writing {shown}"),
            source,
        })?
        .map_err(|e| Error::io(format!("writing {path}"), e))
    }

    async fn get_file(&self, town: &TownId, path: &ContainerPath) -> Result<Vec<u8>> {
        self.ensure_running(town)?;
        match tokio::fs::read(self.host_path(town, path)).await {
            Ok(bytes) => Ok(bytes),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Err(Error::FileNotFound {
                    path: path.to_string(),
                })
            }
            Err(e) => Err(Error::io(format!("reading {path}"), e)),
        }
    }

    async fn stat(&self, town: &TownId, path: &ContainerPath) -> Result<Option<PathStat>> {
        self.ensure_running(town)?;
        // `metadata` follows symlinks, as `get_file`'s read does.
        match tokio::fs::metadata(self.host_path(town, path)).await {
            Ok(m) => {
                let kind = if m.is_file() {
                    PathKind::File
                } else if m.is_dir() {
                    PathKind::Dir
                } else {
                    PathKind::Other
                };
                Ok(Some(PathStat::new(kind, m.len())))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::io(format!("looking at {path}"), e)),
        }
    }

    async fn stop(&self, town: &TownId, grace: Duration) -> Result<()> {
        let mut processes = self.take_processes(town);
        // What an earlier host left and this runtime never took over ends too.
        processes.extend(self.recorded_strangers(town, &processes));
        tracing::debug!(town = %town, processes = processes.len(), "stopping local container");
        terminate_all(&processes, grace).await
    }

    async fn remove(&self, town: &TownId) -> Result<()> {
        self.stop(town, REMOVE_GRACE).await?;
        self.remove_town_dir(town).await?;
        self.towns.lock().remove(town);
        Ok(())
    }

    fn can_pause(&self) -> bool {
        true
    }

    async fn rename_container(
        &self,
        from: &TownId,
        to: &TownId,
        options: &ContainerOptions,
    ) -> Result<()> {
        self.rename_town(from, to, options)
    }

    async fn spawn_labelled(
        &self,
        town: &TownId,
        command: &CommandSpec,
        label: &ProcessLabel,
        grace: Duration,
    ) -> Result<SpawnedProcess> {
        self.spawn_labelled_process(town, command, label, grace)
            .await
    }

    async fn adopt(&self, town: &TownId, agent: &str) -> Result<Option<AdoptedProcess>> {
        self.adopt_process(town, agent).await
    }

    /// SIGSTOP to every process group the town runs. Measured here with a `kilo serve`
    /// (`examples/pause_cost.rs`, kilo 7.7.9, medians of 5): 0.02 ms.
    async fn pause(&self, town: &TownId) -> Result<()> {
        self.freeze(town, true)
    }

    /// SIGCONT to every process group the town runs.
    async fn resume(&self, town: &TownId) -> Result<()> {
        self.freeze(town, false)
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        for state in self.towns.get_mut().values() {
            for p in state.processes.iter().filter(|p| p.group_alive()) {
                p.kill_now();
            }
        }
    }
}
