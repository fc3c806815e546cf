//! [`LocalProcess`]: one child process and its process group.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use gastown_core::{ProcessHandle, ProcessStatus, Result};
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{ChildStderr, ChildStdout, Command};
use tokio::sync::watch;

use crate::error::LocalError;

/// How long [`LocalProcess::terminate`] waits for the kernel to end a process after
/// SIGKILL: 10 s. Only a process stuck in uninterruptible I/O (or one that left our process
/// group) outlives it; the bound turns that into an error instead of a hang.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A process the local runtime started, leader of its own process group (so a signal
/// reaches everything it started too: `sh -c` children, a server's workers).
///
/// Its status comes from the real child: a task waits on it and publishes the exit status
/// the moment the process is reaped.
pub struct LocalProcess {
    pid: u32,
    program: String,
    exit: watch::Receiver<Option<ProcessStatus>>,
    stopping: AtomicBool,
}

/// A freshly started process and its output pipes.
pub(crate) struct Started {
    pub(crate) process: std::sync::Arc<LocalProcess>,
    pub(crate) stdout: ChildStdout,
    pub(crate) stderr: ChildStderr,
}

impl LocalProcess {
    /// Spawns `cmd` (already holding program, args, env and cwd) in a new process group with
    /// stdin null and stdout/stderr piped. `program` names it in logs and errors.
    /// Must be called inside a tokio runtime (a task waits on the child).
    pub(crate) fn start(program: &str, mut cmd: Command) -> std::io::Result<Started> {
        // Its own process group, so one killpg reaches everything it started.
        cmd.process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("child exited at once"))?;
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(o), Some(e)) => (o, e),
            _ => return Err(std::io::Error::other("child pipes missing")),
        };
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => ProcessStatus::Exited(s.code()),
                Err(e) => {
                    tracing::warn!(pid, error = %e, "waiting for a child failed");
                    ProcessStatus::Failed
                }
            };
            tx.send_replace(Some(status));
        });
        tracing::debug!(pid, program, "process started");
        Ok(Started {
            process: std::sync::Arc::new(Self {
                pid,
                program: program.to_owned(),
                exit: rx,
                stopping: AtomicBool::new(false),
            }),
            stdout,
            stderr,
        })
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
