//! [`SimulatedRuntime`]: a [`ContainerRuntime`] test double whose operations take scripted
//! virtual time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;

use super::db::{self, SimMessage};
use super::exec::{self, program_name};
use super::log::{SdkOp, SimEvent, SimEventKind};
use super::process;
use super::script::{SimScript, TOKEN_REFRESH_PATH};
use super::sdk::SimulatedSdkConnector;
use super::shell;
use super::state::{State, Town};
use crate::command::CommandSpec;
use crate::error::{Error, Result};
use crate::ids::TownId;
use crate::path::ContainerPath;
use crate::runtime::{
    AdoptedProcess, ContainerInfo, ContainerOptions, ContainerRuntime, ExecOutput, PathKind,
    PathStat, SpawnedProcess,
};
use crate::sdk::{SdkConnector, SessionInfo};
use crate::status::{ContainerStatus, ProcessStatus};

/// The runtime's name in errors and reports.
pub(super) const RUNTIME: &str = "simulated";

/// What the simulated runtime shares with its process handles, SDK connector and boot tasks.
pub(super) struct Inner {
    script: RwLock<SimScript>,
    /// Virtual time zero: every [`SimEvent`] offset counts from here.
    origin: Instant,
    pub(super) state: Mutex<State>,
    log: Mutex<Vec<SimEvent>>,
    /// Per-town lifecycle locks: start, stop and remove of one town are serialised (so
    /// concurrent starts make one container); different towns never wait for each other.
    lifecycle: Mutex<HashMap<TownId, Arc<tokio::sync::Mutex<()>>>>,
    /// Woken whenever a paused container may have stopped being paused (resume, stop,
    /// remove, kill): SDK calls and boots waiting on a frozen server re-check.
    pub(super) thawed: tokio::sync::Notify,
    /// Serialises read-modify-write cycles of simulated `kilo.db` files. Lock order:
    /// `db_lock` before `state`.
    pub(super) db_lock: Mutex<()>,
}

impl Inner {
    /// Reads the script.
    pub(super) fn script<T>(&self, f: impl FnOnce(&SimScript) -> T) -> T {
        f(&self.script.read())
    }

    /// Virtual time since the runtime was created.
    pub(super) fn offset(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    /// Lets `duration` of (virtual) time pass.
    pub(super) async fn charge(duration: Duration) {
        if !duration.is_zero() {
            tokio::time::sleep(duration).await;
        }
    }

    /// Appends an event that started at `start` and ends now.
    pub(super) fn record(&self, start: Duration, town: &TownId, kind: SimEventKind, ok: bool) {
        let event = SimEvent {
            start,
            end: self.offset(),
            town: town.clone(),
            kind,
            ok,
        };
        tracing::trace!(?event, "simulated");
        self.log.lock().push(event);
    }

    pub(super) fn lifecycle_lock(&self, town: &TownId) -> Arc<tokio::sync::Mutex<()>> {
        self.lifecycle
            .lock()
            .entry(town.clone())
            .or_default()
            .clone()
    }

    /// Fails fast, before any time is charged, when the container is not running.
    fn require_running(&self, town: &TownId) -> Result<()> {
        self.state.lock().running(town).map(|_| ())
    }
}

/// A [`ContainerRuntime`] **test double**: nothing runs, every operation sleeps its
/// [`SimScript`] duration with `tokio::time::sleep` and changes in-memory state. Under
/// `tokio::time::pause` (`#[tokio::test(start_paused = true)]`) virtual time is exact and
/// deterministic, so tests and benches can assert the schedule of the real actor code.
///
/// - Containers: one per town, `Absent`/`Running`/`Paused`/`Exited`; `start` creates or adopts
///   (charged [`container_create`](SimScript::container_create) or
///   [`container_adopt`](SimScript::container_adopt)); concurrent starts of one town make
///   one container. `pause` and `resume` take
///   [`container_pause`](SimScript::container_pause) and
///   [`container_resume`](SimScript::container_resume); while paused, `exec`, `spawn`,
///   files and `endpoint` fail with [`Error::ContainerPaused`], an SDK call to a server of
///   the town gets no answer until the resume (bounded by the client's timeout, then it
///   fails as timed out, as a call to a frozen real server does), and a server booting
///   when the container was paused prints its listening line only after the resume.
/// - Files: a map from path to bytes per container; directories are implicit (`stat` of
///   a path with a file under it is a directory). `stop` keeps them, `remove` deletes them.
/// - `exec`: `mkdir` (directories are implicit: it changes nothing), `rm`, `true` and
///   `git` are interpreted, and exit 0 with no output; so are `sh -c` scripts of them in
///   the small subset of `sh` gastown's own scripts use (each command charged as its own
///   exec would be; logged as one `sh` exec). git leaves the marker files the
///   actors look for: `git init` → `<dir or cwd>/.git/HEAD`; `git clone [--bare] SRC DEST`
///   → `DEST/.git/HEAD` (`DEST/HEAD` when bare); `git worktree add … PATH …` →
///   `PATH/.git`. `commit`, `fetch`, `checkout`, `switch` and `worktree` exit 128 outside
///   a repository, as git does; [`SimScript::fail_git`] makes a subcommand exit 128. Other
///   programs are [`Error::ProgramNotFound`] (or [`SimulatedError::CannotRun`](super::SimulatedError::CannotRun) for
///   installed ones such as `sleep`, or `sh` without `-c`, which can only be spawned).
/// - `spawn`: a program in [`SimScript::sdk_programs`] becomes a simulated SDK server that
///   prints `<program> server listening on http://<host>:<port>` after
///   [`sdk_boot`](SimScript::sdk_boot) (a unique port per server), keeps its sessions in a
///   real SQLite `$XDG_DATA_HOME/kilo/kilo.db` in the container, and checks the password
///   from `<PROGRAM>_SERVER_PASSWORD`. Reach it with the client from
///   [`SimulatedRuntime::sdk_connector`]. Other installed programs run until killed.
/// - No lock is held across a sleep: operations of different agents overlap.
///
/// Observe it with [`log`](Self::log) and the counters; break it with
/// [`kill_process`](Self::kill_process), [`kill_container`](Self::kill_container) and the
/// script's failure sets.
pub struct SimulatedRuntime {
    inner: Arc<Inner>,
}

impl fmt::Debug for SimulatedRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.lock();
        f.debug_struct("SimulatedRuntime")
            .field("towns", &state.towns.len())
            .field("processes", &state.procs.len())
            .field("events", &self.inner.log.lock().len())
            .finish_non_exhaustive()
    }
}

impl SimulatedRuntime {
    /// A runtime with no containers, following `script`. Virtual time zero is now
    /// (`tokio::time::Instant::now()`), so create it inside the (paused) tokio runtime.
    pub fn new(script: SimScript) -> Arc<SimulatedRuntime> {
        Arc::new(SimulatedRuntime {
            inner: Arc::new(Inner {
                script: RwLock::new(script),
                origin: Instant::now(),
                state: Mutex::new(State::default()),
                log: Mutex::new(Vec::new()),
                lifecycle: Mutex::new(HashMap::new()),
                thawed: tokio::sync::Notify::new(),
                db_lock: Mutex::new(()),
            }),
        })
    }

    /// The connector whose clients talk to this runtime's simulated SDK servers (in place of
    /// HTTP): give it to the actors wherever they take an [`SdkConnector`].
    pub fn sdk_connector(&self) -> Arc<dyn SdkConnector> {
        Arc::new(SimulatedSdkConnector::new(self.inner.clone()))
    }

    /// A copy of the current script.
    pub fn script(&self) -> SimScript {
        self.inner.script(Clone::clone)
    }

    /// Changes the script; operations that start afterwards follow the new one.
    pub fn update_script(&self, change: impl FnOnce(&mut SimScript)) {
        change(&mut self.inner.script.write());
    }

    /// Virtual time since the runtime was created.
    pub fn elapsed(&self) -> Duration {
        self.inner.offset()
    }

    /// Every event so far, in the order they ended.
    pub fn log(&self) -> Vec<SimEvent> {
        self.inner.log.lock().clone()
    }

    fn count(&self, pred: impl Fn(&SimEvent) -> bool) -> usize {
        self.inner.log.lock().iter().filter(|e| pred(e)).count()
    }

    /// How many processes of `program` (by file name: `kilo`) were spawned, in every town.
    pub fn spawns_of(&self, program: &str) -> usize {
        self.count(|e| matches!(&e.kind, SimEventKind::Spawn { program: p, .. } if p == program))
    }

    /// How many times `program` (by file name) was run with `exec`, in every town — only
    /// those with git subcommand `sub` when it is `Some`. Failed runs count too.
    pub fn execs_of(&self, program: &str, sub: Option<&str>) -> usize {
        self.count(|e| match &e.kind {
            SimEventKind::Exec {
                program: p, sub: s, ..
            } => p == program && (sub.is_none() || s.as_deref() == sub),
            _ => false,
        })
    }

    /// How many `put_file`s to `path` were attempted, in every town (e.g.
    /// [`TOKEN_REFRESH_PATH`]: live token refreshes).
    pub fn writes_to(&self, path: &str) -> usize {
        self.count(|e| matches!(&e.kind, SimEventKind::FileWrite { path: p } if p.as_str() == path))
    }

    /// How many times `town`'s container was created (restarts of a stopped one included;
    /// adoptions not).
    pub fn container_creates(&self, town: &TownId) -> usize {
        self.count(|e| &e.town == town && e.kind == SimEventKind::ContainerCreate)
    }

    /// How many `op` calls reached an SDK server (refused ones included), in every town.
    pub fn sdk_calls(&self, op: SdkOp) -> usize {
        self.count(|e| matches!(&e.kind, SimEventKind::SdkCall { op: o, .. } if *o == op))
    }

    /// The container's status, without charging time.
    pub fn container_status(&self, town: &TownId) -> ContainerStatus {
        self.inner
            .state
            .lock()
            .towns
            .get(town)
            .map_or(ContainerStatus::Absent, |t| t.status)
    }

    /// A file's bytes, without charging time and whatever the container's status.
    pub fn peek_file(&self, town: &TownId, path: &ContainerPath) -> Option<Vec<u8>> {
        self.inner
            .state
            .lock()
            .towns
            .get(town)
            .and_then(|t| t.files.get(path).cloned())
    }

    /// A process's status (`None` for a pid this runtime never handed out).
    pub fn process_status(&self, pid: u32) -> Option<ProcessStatus> {
        self.inner.state.lock().procs.get(&pid).map(|p| p.status)
    }

    /// The pids of `town`'s live processes, ascending.
    pub fn live_processes(&self, town: &TownId) -> Vec<u32> {
        let state = self.inner.state.lock();
        let mut pids: Vec<u32> = state
            .procs
            .iter()
            .filter(|(_, p)| &p.town == town && p.status.is_alive())
            .map(|(pid, _)| *pid)
            .collect();
        pids.sort_unstable();
        pids
    }

    /// The sessions stored in the simulated `kilo.db` under `data_dir`
    /// (`$XDG_DATA_HOME`), oldest first; empty when there is no `kilo.db`.
    ///
    /// # Errors
    /// [`SimulatedError::Database`](super::SimulatedError::Database) (in [`Error::Generic`]) when the file there is not a
    /// SQLite database.
    pub fn sessions_in(&self, town: &TownId, data_dir: &ContainerPath) -> Result<Vec<SessionInfo>> {
        Ok(self.db_contents(town, data_dir)?.sessions)
    }

    /// The `noReply` messages stored in the simulated `kilo.db` under `data_dir`, oldest
    /// first.
    ///
    /// # Errors
    /// [`SimulatedError::Database`](super::SimulatedError::Database) (in [`Error::Generic`]) when the file there is not a
    /// SQLite database.
    pub fn messages_in(&self, town: &TownId, data_dir: &ContainerPath) -> Result<Vec<SimMessage>> {
        Ok(self.db_contents(town, data_dir)?.messages)
    }

    fn db_contents(&self, town: &TownId, data_dir: &ContainerPath) -> Result<db::DbContents> {
        match self.peek_file(town, &kilo_db(data_dir)?) {
            Some(bytes) => db::decode(&bytes),
            None => Ok(db::DbContents::default()),
        }
    }

    /// Kills a process at once, like `kill -9` from outside: it becomes `Exited(None)`, its
    /// output closes and its SDK server stops answering. No time passes. Returns false
    /// when it had already ended (or never existed).
    pub fn kill_process(&self, pid: u32) -> bool {
        let (town, program) = {
            let mut state = self.inner.state.lock();
            let Some(p) = state.procs.get_mut(&pid) else {
                return false;
            };
            if !p.end(ProcessStatus::Exited(None)) {
                return false;
            }
            (p.town.clone(), p.program.clone())
        };
        let now = self.inner.offset();
        let kind = SimEventKind::ProcessKilled { pid, program };
        self.inner.record(now, &town, kind, true);
        true
    }

    /// Kills a town's container at once, like a crash or `docker kill`: every process
    /// ends (`Exited(None)`), the status becomes `Exited`, the files are kept. No time
    /// passes. Returns false when the container was not running.
    pub fn kill_container(&self, town: &TownId) -> bool {
        {
            let mut state = self.inner.state.lock();
            match state.towns.get_mut(town) {
                Some(t) if is_up(t.status) => t.status = ContainerStatus::Exited,
                _ => return false,
            }
            state.end_town_processes(town);
        }
        self.inner.thawed.notify_waiters();
        let now = self.inner.offset();
        self.inner
            .record(now, town, SimEventKind::ContainerKilled, true);
        true
    }
}

/// Running or paused: a container whose processes exist.
pub(super) fn is_up(status: ContainerStatus) -> bool {
    matches!(status, ContainerStatus::Running | ContainerStatus::Paused)
}

/// `<data_dir>/kilo/kilo.db`.
pub(super) fn kilo_db(data_dir: &ContainerPath) -> Result<ContainerPath> {
    data_dir.join("kilo/kilo.db")
}

#[async_trait]
impl ContainerRuntime for SimulatedRuntime {
    fn name(&self) -> &'static str {
        RUNTIME
    }

    fn sdk_bind_host(&self) -> &str {
        "127.0.0.1"
    }

    async fn start(&self, town: &TownId, _options: &ContainerOptions) -> Result<ContainerInfo> {
        let inner = &self.inner;
        let lock = inner.lifecycle_lock(town);
        let _serialised = lock.lock().await;
        let start = inner.offset();
        // A paused container is resumed, then adopted.
        super::pause::freeze_locked(inner, town, false).await.ok();
        let running = inner
            .state
            .lock()
            .towns
            .get(town)
            .is_some_and(|t| t.status == ContainerStatus::Running);
        if running {
            Inner::charge(inner.script(|s| s.container_adopt)).await;
            // Checked again: a test may have killed it meanwhile.
            let id = inner.state.lock().running(town).map(|t| t.id.clone());
            if let Ok(id) = id {
                inner.record(start, town, SimEventKind::ContainerAdopt, true);
                return Ok(ContainerInfo { id, created: false });
            }
        }
        Inner::charge(inner.script(|s| s.container_create)).await;
        let id = {
            let mut state = inner.state.lock();
            let fresh_id = state.container_id(town);
            let t = state.towns.entry(town.clone()).or_insert_with(|| Town {
                status: ContainerStatus::Exited,
                id: fresh_id,
                files: Default::default(),
            });
            t.status = ContainerStatus::Running;
            t.id.clone()
        };
        inner.record(start, town, SimEventKind::ContainerCreate, true);
        Ok(ContainerInfo { id, created: true })
    }

    async fn status(&self, town: &TownId) -> Result<ContainerStatus> {
        Ok(self.container_status(town))
    }

    async fn exec(&self, town: &TownId, command: &CommandSpec) -> Result<ExecOutput> {
        let inner = &self.inner;
        inner.require_running(town)?;
        let start = inner.offset();
        if let Some(script) = shell::parse(command)? {
            inner.script(|s| exec::check_program(s, &command.program))?;
            let out = shell::run(inner, town, &script).await;
            let kind = SimEventKind::Exec {
                program: "sh".to_owned(),
                sub: None,
                cwd: command.cwd.clone(),
            };
            inner.record(start, town, kind, out.as_ref().is_ok_and(|o| o.success()));
            return out;
        }
        let plan = match inner.script(|s| exec::plan(s, command)) {
            Ok(plan) => plan,
            Err(e) => {
                let kind = SimEventKind::Exec {
                    program: program_name(&command.program).to_owned(),
                    sub: None,
                    cwd: command.cwd.clone(),
                };
                inner.record(start, town, kind, false);
                return Err(e);
            }
        };
        Inner::charge(plan.charge).await;
        let out = {
            let mut state = inner.state.lock();
            state
                .running(town)
                .map(|t| exec::apply(&plan, &mut t.files))
        };
        let kind = SimEventKind::Exec {
            program: plan.program.clone(),
            sub: plan.sub.clone(),
            cwd: plan.cwd.clone(),
        };
        inner.record(start, town, kind, out.as_ref().is_ok_and(|o| o.success()));
        out
    }

    async fn spawn(&self, town: &TownId, command: &CommandSpec) -> Result<SpawnedProcess> {
        process::spawn(&self.inner, town, command)
    }

    async fn endpoint(&self, town: &TownId, port: u16) -> Result<String> {
        self.inner.require_running(town)?;
        Ok(format!("http://127.0.0.1:{port}"))
    }

    async fn put_file(&self, town: &TownId, path: &ContainerPath, contents: &[u8]) -> Result<()> {
        let inner = &self.inner;
        inner.require_running(town)?;
        let start = inner.offset();
        let cost = inner.script(|s| {
            if path.as_str() == TOKEN_REFRESH_PATH {
                s.token_refresh
            } else {
                s.file_write
            }
        });
        Inner::charge(cost).await;
        let result = inner.state.lock().running(town).map(|t| {
            t.files.insert(path.clone(), contents.to_vec());
        });
        let kind = SimEventKind::FileWrite { path: path.clone() };
        inner.record(start, town, kind, result.is_ok());
        result
    }

    /// One [`file_write`](SimScript::file_write) for all of them, as Docker's one archive
    /// upload (`files.rs`).
    async fn put_files(&self, town: &TownId, files: &[(ContainerPath, Vec<u8>)]) -> Result<()> {
        super::files::put_files(&self.inner, town, files).await
    }

    async fn get_file(&self, town: &TownId, path: &ContainerPath) -> Result<Vec<u8>> {
        let inner = &self.inner;
        inner.require_running(town)?;
        let start = inner.offset();
        Inner::charge(inner.script(|s| s.file_read)).await;
        let result = inner.state.lock().running(town).and_then(|t| {
            t.files
                .get(path)
                .cloned()
                .ok_or_else(|| Error::FileNotFound {
                    path: path.to_string(),
                })
        });
        let kind = SimEventKind::FileRead { path: path.clone() };
        inner.record(start, town, kind, result.is_ok());
        result
    }

    async fn stat(&self, town: &TownId, path: &ContainerPath) -> Result<Option<PathStat>> {
        let inner = &self.inner;
        inner.require_running(town)?;
        let start = inner.offset();
        // Charged and logged as a read: it stands for the same "is it there" round trip.
        Inner::charge(inner.script(|s| s.file_read)).await;
        let result = inner.state.lock().running(town).map(|t| {
            if let Some(bytes) = t.files.get(path) {
                return Some(PathStat::new(PathKind::File, bytes.len() as u64));
            }
            // Directories are implicit: one exists while a file lies under it.
            let prefix = format!("{}/", path.as_str().trim_end_matches('/'));
            t.files
                .keys()
                .any(|p| p.as_str().starts_with(&prefix))
                .then(|| PathStat::new(PathKind::Dir, 0))
        });
        let kind = SimEventKind::FileRead { path: path.clone() };
        inner.record(start, town, kind, matches!(result, Ok(Some(_))));
        result
    }

    async fn stop(&self, town: &TownId, _grace: Duration) -> Result<()> {
        let inner = &self.inner;
        let lock = inner.lifecycle_lock(town);
        let _serialised = lock.lock().await;
        let start = inner.offset();
        {
            let mut state = inner.state.lock();
            match state.towns.get_mut(town) {
                Some(t) if is_up(t.status) => t.status = ContainerStatus::Exited,
                _ => return Ok(()),
            }
            state.end_town_processes(town);
        }
        inner.thawed.notify_waiters();
        Inner::charge(inner.script(|s| s.container_stop)).await;
        inner.record(start, town, SimEventKind::ContainerStop, true);
        Ok(())
    }

    async fn remove(&self, town: &TownId) -> Result<()> {
        let inner = &self.inner;
        let lock = inner.lifecycle_lock(town);
        let _serialised = lock.lock().await;
        let start = inner.offset();
        let was_running = {
            let mut state = inner.state.lock();
            let Some(t) = state.towns.remove(town) else {
                return Ok(());
            };
            state.end_town_processes(town);
            is_up(t.status)
        };
        inner.thawed.notify_waiters();
        if was_running {
            Inner::charge(inner.script(|s| s.container_stop)).await;
        }
        inner.record(start, town, SimEventKind::ContainerRemove, true);
        Ok(())
    }

    async fn spawn_labelled(
        &self,
        town: &TownId,
        command: &CommandSpec,
        label: &crate::runtime::ProcessLabel,
        _grace: Duration,
    ) -> Result<SpawnedProcess> {
        let spawned = super::process::spawn(&self.inner, town, command)?;
        if let Some(pid) = spawned.handle.pid() {
            super::claim::label(&self.inner, pid, label);
        }
        Ok(spawned)
    }

    async fn adopt(&self, town: &TownId, agent: &str) -> Result<Option<AdoptedProcess>> {
        super::claim::adopt(&self.inner, town, agent)
    }

    async fn rename_container(
        &self,
        from: &TownId,
        to: &TownId,
        _options: &ContainerOptions,
    ) -> Result<()> {
        super::claim::rename(&self.inner, from, to)
    }

    fn can_pause(&self) -> bool {
        true
    }

    async fn pause(&self, town: &TownId) -> Result<()> {
        super::pause::freeze(&self.inner, town, true).await
    }

    async fn resume(&self, town: &TownId) -> Result<()> {
        super::pause::freeze(&self.inner, town, false).await
    }
}
