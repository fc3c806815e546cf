//! [`LocalProcess`]: one child process and its process group.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use gastown_core::{ProcessHandle, ProcessLabel, ProcessStatus, Result};
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use process_wrap::tokio::{CommandWrap, KillOnDrop as ProcessWrapKillOnDrop, ProcessGroup};
use tokio::process::{ChildStderr, ChildStdout, Command};
use tokio::sync::watch;

use crate::error::LocalError;
use crate::records::{self, ProcessRecord};

/// How often the end of an adopted process (not our child: no exit status arrives) is
/// checked in `/proc`: 50 ms, a cheap file read.
const ADOPTED_POLL: Duration = Duration::from_millis(50);

/// How long [`LocalProcess::terminate`] waits for the kernel to end a process after
/// SIGKILL: 10 s. Only a process stuck in uninterruptible I/O (or one that left our process
/// group) outlives it; the bound turns that into an error instead of a hang.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A process the local runtime started, leader of its own process group (so a signal
/// reaches everything it started too: `sh -c` children, a server's workers) — or one an
/// earlier host started, found by its record and adopted.
///
/// Its status comes from the real process: for a child, a task waits on it and publishes
/// the exit status the moment it is reaped; for an adopted process, a task watches `/proc`.
/// Signals go to the group with `killpg(2)` by its id (for an adopted group there is no
/// child handle to go through).
pub struct LocalProcess {
    pid: u32,
    program: String,
    exit: watch::Receiver<Option<ProcessStatus>>,
    stopping: AtomicBool,
    /// Who it is (a labelled spawn, or the record of an adopted one).
    label: Option<ProcessLabel>,
    /// Left by an earlier host and not adopted yet.
    adoptable: AtomicBool,
}

/// A freshly started process and its output pipes.
pub(crate) struct Started {
    pub(crate) process: std::sync::Arc<LocalProcess>,
    pub(crate) stdout: ChildStdout,
    pub(crate) stderr: ChildStderr,
}

impl LocalProcess {
    /// Spawns `cmd` (already holding program, args, env and cwd) as the leader of a new
    /// process group (process-wrap's `ProcessGroup::leader`, with `KillOnDrop` so a child
    /// whose waiting task is dropped — its tokio runtime shut down — is killed too), stdin
    /// from `stdin` and stdout/stderr piped. When `records` is given, the process's
    /// [`ProcessRecord`] is written into that directory before this returns, and deleted
    /// once the process is reaped. `program` names it in logs and errors.
    /// Must be called inside a tokio runtime (a task waits on the child).
    pub(crate) fn start(
        program: &str,
        mut cmd: Command,
        stdin: std::process::Stdio,
        records: Option<(&Path, Option<&ProcessLabel>)>,
    ) -> std::io::Result<Started> {
        cmd.stdin(stdin)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut wrapped = CommandWrap::from(cmd);
        wrapped
            .wrap(ProcessGroup::leader())
            .wrap(ProcessWrapKillOnDrop);
        let mut child = wrapped.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("child exited at once"))?;
        let (stdout, stderr) = match (child.stdout().take(), child.stderr().take()) {
            (Some(o), Some(e)) => (o, e),
            _ => return Err(std::io::Error::other("child pipes missing")),
        };
        let label = records.and_then(|(_, l)| l.cloned());
        let record_path = match records {
            Some((dir, label)) => {
                let written = ProcessRecord::of(pid, program, label)
                    .ok_or_else(|| std::io::Error::other("child exited at once"))
                    .and_then(|rec| rec.write(dir));
                match written {
                    Ok(path) => Some(path),
                    Err(e) => {
                        // Unrecorded, a crash of this host would orphan it: not started.
                        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let (tx, rx) = watch::channel(None);
        let record = record_path.clone();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => ProcessStatus::Exited(s.code()),
                Err(e) => {
                    tracing::warn!(pid, error = %e, "waiting for a child failed");
                    ProcessStatus::Failed
                }
            };
            if let Some(path) = record {
                records::remove(&path);
            }
            tx.send_replace(Some(status));
        });
        tracing::debug!(pid, program, "process started");
        Ok(Started {
            process: std::sync::Arc::new(Self {
                pid,
                program: program.to_owned(),
                exit: rx,
                stopping: AtomicBool::new(false),
                label,
                adoptable: AtomicBool::new(false),
            }),
            stdout,
            stderr,
        })
    }

    /// A handle on a recorded process an earlier host spawned (found alive by its record).
    /// It is not this process's child, so its end is noticed by polling `/proc` every
    /// [`ADOPTED_POLL`]; the record file at `path` is deleted then.
    pub(crate) fn adopted(record: ProcessRecord, path: PathBuf) -> std::sync::Arc<Self> {
        let (tx, rx) = watch::channel(None);
        let boot = records::boot_id();
        let pid = record.pid;
        let watched = record.clone();
        tokio::spawn(async move {
            while watched.is_live(&boot) {
                tokio::select! {
                    _ = tokio::time::sleep(ADOPTED_POLL) => {}
                    // Nobody holds the handle any more: stop polling (the record stays,
                    // for whoever starts the town next).
                    _ = tx.closed() => return,
                }
            }
            records::remove(&path);
            tx.send_replace(Some(ProcessStatus::Exited(None)));
        });
        tracing::debug!(pid, program = %record.program, "recorded process found");
        std::sync::Arc::new(Self {
            pid,
            program: record.program,
            exit: rx,
            stopping: AtomicBool::new(false),
            label: record.label.map(|l| l.to_label()),
            adoptable: AtomicBool::new(true),
        })
    }

    /// The label it was spawned with, if any.
    pub(crate) fn label(&self) -> Option<&ProcessLabel> {
        self.label.as_ref()
    }

    /// The pid (also the process group id).
    pub(crate) fn leader(&self) -> u32 {
        self.pid
    }

    /// Takes the "left by an earlier host, not claimed yet" mark: true once, for the
    /// first adopter.
    pub(crate) fn claim(&self) -> bool {
        self.adoptable.swap(false, Ordering::SeqCst)
    }

    /// Puts the "not claimed yet" mark back on a live labelled process, so the next
    /// [`adopt`](gastown_core::ContainerRuntime::adopt) of its agent finds it: a container
    /// handed to another town (`rename_container`) brings its servers to that town's
    /// agents.
    pub(crate) fn offer(&self) {
        if self.label.is_some() {
            self.adoptable.store(true, Ordering::SeqCst);
        }
    }

    /// The status right now: `Exited` once reaped, `Stopping` while a kill is under way.
    pub(crate) fn current(&self) -> ProcessStatus {
        match *self.exit.borrow() {
            Some(status) => status,
            None if self.stopping.load(Ordering::Relaxed) => ProcessStatus::Stopping,
            None => ProcessStatus::Running,
        }
    }

    /// Waits until the process is reaped. `Failed` if the waiting task was lost (its tokio
    /// runtime shut down).
    pub(crate) async fn wait(&self) -> ProcessStatus {
        let mut rx = self.exit.clone();
        let status = match rx.wait_for(Option::is_some).await {
            Ok(status) => status.unwrap_or(ProcessStatus::Failed),
            Err(_) => ProcessStatus::Failed,
        };
        status
    }

    /// Whether any process of the group is still alive (the leader, or something it left
    /// behind, like a `sh -c 'server &'` child). Signal 0 probes without signalling.
    pub(crate) fn group_alive(&self) -> bool {
        i32::try_from(self.pid).is_ok_and(|pgid| killpg(Pid::from_raw(pgid), None).is_ok())
    }

    /// Sends `signal` to the whole group. A group that no longer exists is not an error.
    ///
    /// After the leader is reaped and every member has ended, the kernel may in time hand
    /// the number to a new group; pids cycle through `pid_max` (about 4 million on 64-bit
    /// Linux) before that, so the window is accepted rather than tracked.
    fn signal(&self, signal: Signal) -> Result<()> {
        let pgid =
            i32::try_from(self.pid).map_err(|_| LocalError::PidOutOfRange { pid: self.pid })?;
        match killpg(Pid::from_raw(pgid), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(source) => Err(LocalError::Signal {
                signal,
                pgid,
                program: self.program.clone(),
                source,
            }
            .into()),
        }
    }

    /// SIGSTOP (`freeze`) or SIGCONT to the whole group, for pause and resume. A group
    /// that no longer exists is not an error.
    pub(crate) fn freeze(&self, freeze: bool) -> Result<()> {
        self.signal(if freeze {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        })
    }

    /// SIGTERM (and SIGCONT, so a frozen group sees it) to the group, up to `grace` for the
    /// leader to exit, then SIGKILL to the group
    /// (which also ends members the leader left behind). Returns the leader's final status.
    /// When the leader has already exited, what is left of its group gets SIGKILL at once:
    /// there is no process to be graceful for.
    ///
    /// # Errors
    /// [`LocalError::Signal`] when the group cannot be signalled (not ours), or
    /// [`LocalError::StillAlive`] when the leader is still alive [`KILL_WAIT`] after
    /// SIGKILL (both inside [`gastown_core::Error::Generic`]).
    pub(crate) async fn terminate(&self, grace: Duration) -> Result<ProcessStatus> {
        if self.exit.borrow().is_none() {
            self.stopping.store(true, Ordering::Relaxed);
            self.signal(Signal::SIGTERM)?;
            // A frozen group (a paused container) keeps the SIGTERM pending until it
            // continues; SIGCONT to a running group changes nothing.
            self.signal(Signal::SIGCONT)?;
            // Timing out is the normal path for a process that ignores SIGTERM.
            let _ = tokio::time::timeout(grace, self.wait()).await;
        }
        self.signal(Signal::SIGKILL)?;
        tracing::debug!(pid = self.pid, program = %self.program, "process group killed");
        tokio::time::timeout(KILL_WAIT, self.wait())
            .await
            .map_err(|_| {
                LocalError::StillAlive {
                    program: self.program.clone(),
                    pid: self.pid,
                    waited: KILL_WAIT,
                }
                .into()
            })
    }

    /// SIGKILL to the group, best effort and without waiting (for `Drop`).
    pub(crate) fn kill_now(&self) {
        if let Err(e) = self.signal(Signal::SIGKILL) {
            tracing::warn!(pid = self.pid, error = %e, "killing a process group failed");
        }
    }
}

impl fmt::Debug for LocalProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the args or env: they may hold secrets.
        f.debug_struct("LocalProcess")
            .field("pid", &self.pid)
            .field("program", &self.program)
            .field("status", &self.current())
            .finish()
    }
}

#[async_trait]
impl ProcessHandle for LocalProcess {
    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    async fn status(&self) -> ProcessStatus {
        self.current()
    }

    async fn kill(&self, grace: Duration) -> Result<ProcessStatus> {
        self.terminate(grace).await
    }
}

/// Kills a process's group if dropped before [`disarm`](Self::disarm): an `exec` whose
/// future is cancelled (a caller's timeout) must not leave its command running.
pub(crate) struct KillOnDrop<'a>(Option<&'a LocalProcess>);

impl<'a> KillOnDrop<'a> {
    pub(crate) fn new(process: &'a LocalProcess) -> Self {
        Self(Some(process))
    }

    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            if p.current().is_alive() {
                p.kill_now();
            }
        }
    }
}
