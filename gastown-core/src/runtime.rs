//! [`ContainerRuntime`]: where a town's processes run.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::command::CommandSpec;
use crate::error::{Error, Result};
use crate::ids::TownId;
use crate::path::ContainerPath;
use crate::status::{ContainerStatus, ProcessStatus};

/// How a town's container is started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerOptions {
    /// Host directories the town declares (rigs cloned from host paths). Nothing else from
    /// the host is mounted.
    pub mounts: Vec<Mount>,
    /// Memory limit in bytes (backends that enforce limits; `None` = backend default).
    pub memory_bytes: Option<u64>,
    /// Process-count limit (backends that enforce limits; `None` = backend default).
    pub pids_limit: Option<i64>,
}

impl ContainerOptions {
    /// Adds a read-only mount of a host directory.
    pub fn with_read_only_mount(mut self, host: PathBuf, container: ContainerPath) -> Self {
        self.mounts.push(Mount {
            host,
            container,
            read_only: true,
        });
        self
    }
}

/// A host directory made visible inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The host directory (absolute).
    pub host: PathBuf,
    /// Where it appears inside the container.
    pub container: ContainerPath,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What [`ContainerRuntime::start`] found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The backend's id for the container (a directory name, a Docker container id).
    pub id: String,
    /// False when a running container for the town was adopted rather than created.
    pub created: bool,
}

/// The outcome of a command run to completion.
#[derive(Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code (`-1` when the process was killed by a signal).
    pub exit_code: i32,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// stdout as (lossy) UTF-8.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The last `max` bytes of stderr as (lossy) UTF-8, for error messages.
    pub fn stderr_tail(&self, max: usize) -> String {
        let start = self.stderr.len().saturating_sub(max);
        String::from_utf8_lossy(&self.stderr[start..])
            .trim()
            .to_owned()
    }
}

impl fmt::Debug for ExecOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecOutput")
            .field("exit_code", &self.exit_code)
            .field("stdout_bytes", &self.stdout.len())
            .field("stderr_bytes", &self.stderr.len())
            .finish()
    }
}

/// What kind of thing a path in a container names, as [`ContainerRuntime::stat`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Something else: a device, a socket, a FIFO.
    Other,
}

/// What [`ContainerRuntime::stat`] found at a path (symlinks followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathStat {
    /// File, directory or other.
    pub kind: PathKind,
    /// The size in bytes as the filesystem reports it (a file's length; for a directory,
    /// whatever the backend's filesystem says, often 4096).
    pub size_bytes: u64,
}

impl PathStat {
    /// A stat result (for backends outside this crate).
    pub fn new(kind: PathKind, size_bytes: u64) -> Self {
        Self { kind, size_bytes }
    }

    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.kind == PathKind::File
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == PathKind::Dir
    }
}

/// Which stream a line of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line a long-running process wrote (without its line ending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// The stream.
    pub stream: Stream,
    /// The text (lossy UTF-8).
    pub line: String,
}

/// A long-running process started by [`ContainerRuntime::spawn`].
#[derive(Debug)]
pub struct SpawnedProcess {
    /// Controls the process; cheap to clone and share.
    pub handle: Arc<dyn ProcessHandle>,
    /// Its stdout and stderr, line by line; closed when the process ends. Lines that arrive
    /// while nobody reads are buffered (bounded; the oldest are dropped past the bound).
    pub output: mpsc::Receiver<OutputLine>,
}

/// Who a long-running process is, as the runtime records it with the container when it
/// spawns it ([`ContainerRuntime::spawn_labelled`]), so that a later host — this program
/// restarted after a crash — can adopt the process or reap it
/// ([`ContainerRuntime::adopt`]). Holds no secret: records are plain files (local) or
/// container state (Docker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessLabel {
    /// The agent the process serves (an SDK server's agent id). The runtime keeps at most
    /// one labelled process per agent alive: spawning a new one kills the earlier ones.
    pub agent: String,
    /// The configuration hash the process was started with (the env builder's
    /// `config_hash`), so an adopter can tell a server of the current configuration.
    pub config_hash: String,
    /// The port it listens on inside the container; [`ContainerRuntime::endpoint`] turns
    /// it into a URL again after a restart.
    pub port: u16,
    /// A file the process holds an exclusive lock on for its whole life (the agent's data
    /// directory lock): a second labelled process with the same lock cannot start while
    /// any member of the first one's process group lives. `None` takes no lock.
    pub lock: Option<ContainerPath>,
}

/// A labelled process found alive in the container, left by an earlier host (see
/// [`ContainerRuntime::adopt`]).
#[derive(Debug, Clone)]
pub struct AdoptedProcess {
    /// Controls it like a process this host spawned (status, kill with grace).
    pub handle: Arc<dyn ProcessHandle>,
    /// What was recorded when it was spawned.
    pub label: ProcessLabel,
}

/// Control of one long-running process inside a container.
#[async_trait]
pub trait ProcessHandle: Send + Sync + fmt::Debug {
    /// The process id as seen from the host (`None` where the backend cannot tell).
    fn pid(&self) -> Option<u32>;

    /// The process's current status, from the real process (not remembered state).
    async fn status(&self) -> ProcessStatus;

    /// Asks the process to stop (SIGTERM), waits up to `grace`, then kills it (SIGKILL).
    /// Returns the final status. Killing a process that already ended is not an error.
    ///
    /// # Errors
    /// [`Error::Generic`] (the backend's own error) when the backend cannot signal the
    /// process.
    async fn kill(&self, grace: Duration) -> Result<ProcessStatus>;
}

/// Where a town's processes run: one container per town, identified by the town's id.
///
/// Object safe; use it as `Arc<dyn ContainerRuntime>`. Conveniences built on these
/// methods live in [`ContainerRuntimeExt`].
///
/// # Contract
///
/// Every backend must, and the conformance suite (`gastown_core::conformance`, feature
/// `conformance`) checks that it does:
///
/// - [`start`](Self::start) is idempotent: a second start for a running town adopts its
///   container (`created == false`); concurrent starts end with one container.
/// - Commands get exactly the environment and cwd in their [`CommandSpec`]; nothing from
///   the host or another process leaks in. Paths in args and env are container paths.
/// - [`exec`](Self::exec) reports a non-zero exit as `Ok(ExecOutput)`, not as an error;
///   errors are for commands that could not run at all ([`Error::ProgramNotFound`], …).
/// - A process bound to [`sdk_bind_host`](Self::sdk_bind_host) on port `P` inside the
///   container is reachable from the caller at [`endpoint`](Self::endpoint)`(P)`.
/// - [`put_file`](Self::put_file) creates missing parent directories and replaces the file
///   whole; [`get_file`](Self::get_file) returns the exact bytes, or
///   [`Error::FileNotFound`].
/// - [`stat`](Self::stat) of a file gives its kind and exact size, of a directory
///   [`PathKind::Dir`], of a missing path (or one under a missing directory) `None`; it
///   follows symlinks.
/// - [`stop`](Self::stop) ends every process the container runs (SIGTERM, then SIGKILL
///   after `grace`) and keeps the container's files; after a stop, `start` may create a new
///   container (Docker does), and only files under `/agents` (the agents' data: each
///   agent's `kilo.db` lives in `/agents/<agent>/data`) are guaranteed to carry over.
///   [`remove`](Self::remove) stops the container and deletes all of its files, `/agents`
///   included. Both succeed on a town with no container.
/// - A runtime that records processes ([`spawn_labelled`](Self::spawn_labelled), the
///   local and Docker runtimes) keeps at most one labelled process per agent, and its `stop` and
///   `remove` end every recorded process of the container, also those an earlier host
///   (this program before a crash) spawned.
/// - Methods other than `start`, `status`, `stop`, `remove`, `pause` and `resume` fail
///   with [`Error::ContainerNotRunning`] when the town's container is absent or stopped.
///
/// ## Pause and resume
///
/// A runtime whose [`can_pause`](Self::can_pause) is true (local, Docker, simulated)
/// offers a middle tier between running and stopped; the others keep the defaults, which
/// fail with [`Error::Unsupported`].
///
/// - [`pause`](Self::pause) freezes every process of the container at once: no CPU, memory
///   kept, sockets kept open (a client's connection stays up; its requests get no answer
///   until the resume). [`status`](Self::status) then reports
///   [`ContainerStatus::Paused`]. [`resume`](Self::resume) lets every process continue
///   where it was; the status is `Running` again.
/// - Pausing a paused container and resuming a running one are no-ops (`Ok`); both fail
///   with [`Error::ContainerNotRunning`] on an absent or stopped container.
/// - While paused, `exec`, `spawn`, `put_file`, `get_file`, `stat` and `endpoint` fail with
///   [`Error::ContainerPaused`] on every backend (Docker refuses an exec in a paused
///   container; the others follow so callers see one behaviour). A
///   [`ProcessHandle::status`] of a frozen process still reports it alive;
///   [`ProcessHandle::kill`] of one process while its container is paused is per backend
///   (local: continues and ends it; Docker: cannot run its kill in the frozen container
///   and fails): resume first, or stop the container.
/// - `start` of a paused container resumes and adopts it (`created == false`).
/// - `stop` and `remove` of a paused container work and leave nothing running (a signal
///   to a frozen process stays pending until it continues, so backends continue it first
///   or use a kill the freeze does not block).
///
/// # Backends
///
/// | backend | crate | container is | endpoint |
/// |---|---|---|---|
/// | local | `gastown-runtime-local` | a directory + the process groups it spawned | `127.0.0.1` |
/// | docker | `gastown-runtime-docker` | a Docker container (bollard) | bridge IP |
#[async_trait]
pub trait ContainerRuntime: Send + Sync + fmt::Debug + 'static {
    /// The backend's name as it appears in reports (`local`, `docker`, `simulated`).
    fn name(&self) -> &'static str;

    /// The hostname an in-container server must bind for [`endpoint`](Self::endpoint) to
    /// reach it (`127.0.0.1` locally, `0.0.0.0` in Docker).
    fn sdk_bind_host(&self) -> &str;

    /// The pid an SDK server should watch and exit with (kilo's `KILO_PARENT_PID`), for a
    /// backend whose servers must not outlive this process. `None` (the default, and every
    /// backend here): a server that outlives a crashed host is adopted by the next one
    /// through the runtime's process records ([`adopt`](Self::adopt)), and inside a
    /// container the host's pid means nothing.
    fn sdk_parent_pid(&self) -> Option<u32> {
        None
    }

    /// Starts the town's container, or adopts it if it already runs.
    async fn start(&self, town: &TownId, options: &ContainerOptions) -> Result<ContainerInfo>;

    /// The container's status, read from the backend.
    async fn status(&self, town: &TownId) -> Result<ContainerStatus>;

    /// Runs a command to completion.
    async fn exec(&self, town: &TownId, command: &CommandSpec) -> Result<ExecOutput>;

    /// Starts a long-running process.
    async fn spawn(&self, town: &TownId, command: &CommandSpec) -> Result<SpawnedProcess>;

    /// The base URL (`http://host:port`, no trailing slash) at which the caller reaches
    /// `port` inside the container.
    async fn endpoint(&self, town: &TownId, port: u16) -> Result<String>;

    /// Writes a file, creating parent directories.
    async fn put_file(&self, town: &TownId, path: &ContainerPath, contents: &[u8]) -> Result<()>;

    /// Reads a file.
    async fn get_file(&self, town: &TownId, path: &ContainerPath) -> Result<Vec<u8>>;

    /// Writes several files, creating parent directories, like
    /// [`put_file`](Self::put_file) for each in turn (the default). A backend where each
    /// write is a round trip (Docker: one archive upload) may write them all at once.
    /// Used for an agent's secrets directory on every start, so it is on the critical path.
    ///
    /// # Errors
    /// What [`put_file`](Self::put_file) returns; files before the failing one may be
    /// written.
    async fn put_files(&self, town: &TownId, files: &[(ContainerPath, Vec<u8>)]) -> Result<()> {
        for (path, contents) in files {
            self.put_file(town, path, contents).await?;
        }
        Ok(())
    }

    /// Hands the running container of `from` (with every process and file in it) to
    /// `to`, which has no container, as `to` would be started with `options`: afterwards
    /// `from` has none, `to`'s [`start`](Self::start) adopts it (`created == false`), and
    /// `to`'s [`adopt`](Self::adopt) finds the labelled processes `from` ran (each once).
    /// A warm pool boots a server in a container of its own and a brand-new town claims
    /// it this way (`ARCHITECTURE.md`, *Warm pool*).
    ///
    /// The default does not support it, and a pool then falls back to cold starts. A
    /// backend that cannot give the container what `options` asks for (Docker: bind
    /// mounts are fixed when a container is created) refuses with
    /// [`Error::Unsupported`] and changes nothing.
    ///
    /// # Errors
    /// [`Error::Unsupported`] by default or for such `options`;
    /// [`Error::ContainerNotRunning`] when `from` has no running container;
    /// [`Error::InvalidConfig`] when `to` already has one; the backend's own errors.
    async fn rename_container(
        &self,
        from: &TownId,
        to: &TownId,
        options: &ContainerOptions,
    ) -> Result<()> {
        let _ = (from, to, options);
        Err(Error::Unsupported {
            runtime: self.name(),
            operation: "rename_container",
        })
    }

    /// What `path` is — a file (with its size), a directory, something else — or `None`
    /// when nothing is there, following symlinks the way opening the path would (a
    /// dangling link is `None`). It reads no contents: asking whether an agent's
    /// `kilo.db` exists must not copy the database (on Docker, a `get_file` is a tar of
    /// the whole file; this is the engine's `HEAD /containers/{id}/archive`, which
    /// answers with a stat header and no body).
    ///
    /// The default reads the file with [`get_file`](Self::get_file) (a whole copy) and
    /// can report files only: a directory gives whatever error the backend's `get_file`
    /// gives for one. The local, Docker and simulated backends override it.
    ///
    /// # Errors
    /// [`Error::ContainerNotRunning`] or [`Error::ContainerPaused`], as for `get_file`;
    /// the backend's own error when it cannot look (`Error::Io`, `Error::Generic`).
    async fn stat(&self, town: &TownId, path: &ContainerPath) -> Result<Option<PathStat>> {
        match self.get_file(town, path).await {
            Ok(bytes) => Ok(Some(PathStat::new(PathKind::File, bytes.len() as u64))),
            Err(Error::FileNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stops every process and the container, keeping its files: SIGTERM, then SIGKILL
    /// after `grace`.
    async fn stop(&self, town: &TownId, grace: Duration) -> Result<()>;

    /// Stops and deletes the container and its files.
    async fn remove(&self, town: &TownId) -> Result<()>;

    /// Starts a long-running process like [`spawn`](Self::spawn) and records who it is
    /// (`label`, its pid and start time) with the container before returning, so a later
    /// host can adopt or reap it. Every earlier labelled process of the same
    /// [`ProcessLabel::agent`] (this host's or an earlier one's) is killed — SIGTERM, SIGKILL
    /// after `grace`, waited for — before the new one starts: two servers never run on one
    /// agent's data directory.
    ///
    /// The default (a runtime that records nothing) is a plain [`spawn`](Self::spawn).
    ///
    /// # Errors
    /// Whatever [`spawn`](Self::spawn) returns; the backend's error when an earlier
    /// process cannot be killed or [`ProcessLabel::lock`] is still held.
    async fn spawn_labelled(
        &self,
        town: &TownId,
        command: &CommandSpec,
        label: &ProcessLabel,
        grace: Duration,
    ) -> Result<SpawnedProcess> {
        let _ = (label, grace);
        self.spawn(town, command).await
    }

    /// The labelled process of `agent` that runs in the container but was spawned by an
    /// earlier host (this program before a crash or restart), continued if it was frozen;
    /// `None` when there is none. Records whose process is gone, or whose pid now belongs to
    /// another process (a different start time), are dropped without signalling anything.
    /// The caller adopts the process (it then counts as the container's, like one this host
    /// spawned: `stop` and `remove` end it) or kills it.
    ///
    /// The default (a runtime that records nothing) is `Ok(None)`.
    ///
    /// # Errors
    /// [`Error::ContainerNotRunning`] or [`Error::ContainerPaused`] as for
    /// [`spawn`](Self::spawn); the backend's error when the records cannot be read.
    async fn adopt(&self, town: &TownId, agent: &str) -> Result<Option<AdoptedProcess>> {
        let _ = (town, agent);
        Ok(None)
    }

    /// Whether [`pause`](Self::pause) and [`resume`](Self::resume) work on this runtime.
    /// Default false (a caller then skips the paused tier).
    fn can_pause(&self) -> bool {
        false
    }

    /// Freezes every process of the running container (see *Pause and resume* above); a
    /// no-op on a paused one.
    ///
    /// # Errors
    /// [`Error::Unsupported`] (the default, when [`can_pause`](Self::can_pause) is false);
    /// [`Error::ContainerNotRunning`] when the container is absent or stopped.
    async fn pause(&self, town: &TownId) -> Result<()> {
        let _ = town;
        Err(Error::Unsupported {
            runtime: self.name(),
            operation: "pause",
        })
    }

    /// Lets every process of a paused container continue; a no-op on a running one.
    ///
    /// # Errors
    /// [`Error::Unsupported`] (the default, when [`can_pause`](Self::can_pause) is false);
    /// [`Error::ContainerNotRunning`] when the container is absent or stopped.
    async fn resume(&self, town: &TownId) -> Result<()> {
        let _ = town;
        Err(Error::Unsupported {
            runtime: self.name(),
            operation: "resume",
        })
    }
}

/// Conveniences on every [`ContainerRuntime`].
#[async_trait]
pub trait ContainerRuntimeExt: ContainerRuntime {
    /// Runs a command and fails unless it exits 0.
    ///
    /// # Errors
    /// [`Error::CommandFailed`] with the exit code and the tail of stderr; whatever
    /// [`ContainerRuntime::exec`] returns.
    async fn exec_ok(&self, town: &TownId, command: &CommandSpec) -> Result<ExecOutput> {
        let out = self.exec(town, command).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(Error::CommandFailed {
                program: command.program.clone(),
                exit_code: out.exit_code,
                stderr_tail: out.stderr_tail(2000),
            })
        }
    }

    /// Whether something (a file, a directory, …) exists at `path`, by
    /// [`ContainerRuntime::stat`]: no contents are read.
    ///
    /// # Errors
    /// Whatever [`ContainerRuntime::stat`] returns.
    async fn file_exists(&self, town: &TownId, path: &ContainerPath) -> Result<bool> {
        Ok(self.stat(town, path).await?.is_some())
    }

    /// Creates a directory and its parents (`mkdir -p`).
    async fn create_dir_all(&self, town: &TownId, path: &ContainerPath) -> Result<()> {
        let cmd = CommandSpec::new("mkdir")
            .arg("-p")
            .arg(path)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin");
        self.exec_ok(town, &cmd).await.map(|_| ())
    }
}

impl<T: ContainerRuntime + ?Sized> ContainerRuntimeExt for T {}
