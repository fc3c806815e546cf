//! Long-running processes: an attached engine exec whose output is streamed line by line,
//! and [`DockerProcess`], its handle (status from the engine, signals by in-container pid).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::Docker;
use futures::StreamExt;
use gastown_core::{
    CommandSpec, Error, ProcessHandle, ProcessStatus, Result, SpawnedProcess, Stream, TownId,
};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::{is_not_found, status_of, Error as DockerError};
use crate::exec::{exit_code, no_cwd, not_found, run_attached};
use crate::lines::{self, LineSink, LineSplitter};
use crate::runtime::DockerRuntime;
use crate::wrapper::{Mode, NOT_FOUND_MARKER, NO_CWD_MARKER, PID_MARKER, RECORD_FAILED_MARKER};

/// How often [`DockerProcess::kill`] re-reads the status while waiting, in ms.
const KILL_POLL_MS: u64 = 50;
/// How long to wait for a process to die after SIGKILL before reporting failure, in ms.
pub(crate) const AFTER_SIGKILL_WAIT_MS: u64 = 10_000;
/// How often the exec's host pid is re-read while the engine has not recorded it, in ms.
const HOST_PID_POLL_MS: u64 = 20;
/// How many times the exec's host pid is read before the handle goes without one
/// (at most about 1 s with [`HOST_PID_POLL_MS`]).
const HOST_PID_POLLS: u32 = 50;

/// What the wrapper said before handing over to the program.
#[derive(Debug)]
enum Start {
    Pid(u32),
    NotFound,
    NoCwd,
    /// A recorded spawn could not write its process record.
    RecordFailed,
    /// The output ended without a marker; the lines seen, for the error.
    Ended(Vec<String>),
}

impl DockerRuntime {
    /// `spawn` of the trait: an attached exec through the wrapper in spawn mode. It
    /// returns once the wrapper printed the program's pid (the program is then running)
    /// or reported why it could not start; the output is pumped in a task of its own.
    pub(crate) async fn spawn_command(
        &self,
        town: &TownId,
        spec: &CommandSpec,
    ) -> Result<SpawnedProcess> {
        let (handle, output) = self.spawn_wrapped(town, spec, Mode::Spawn).await?;
        Ok(SpawnedProcess { handle, output })
    }

    /// `spawn_command` in any spawning `mode` (a [`Mode::Record`] spawn writes its record
    /// first), returning the concrete handle.
    pub(crate) async fn spawn_wrapped(
        &self,
        town: &TownId,
        spec: &CommandSpec,
        mode: Mode,
    ) -> Result<(
        Arc<DockerProcess>,
        tokio::sync::mpsc::Receiver<gastown_core::OutputLine>,
    )> {
        let container = self.container_name(town);
        let id = self.create_wrapped_exec(town, mode, spec).await?;
        let start = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: None,
        };
        let attached = match self.docker.start_exec(&id, Some(start)).await {
            Ok(StartExecResults::Attached { output, input }) => (output, input),
            Ok(StartExecResults::Detached) => return Err(DockerError::Detached.into()),
            Err(e) if is_not_found(&e) || status_of(&e) == Some(409) => {
                return Err(self.refusal(town).await)
            }
            Err(e) => return Err(DockerError::api("starting an exec in", container, e).into()),
        };
        let (sink, rx) = lines::channel();
        let (start_tx, start_rx) = oneshot::channel();
        tokio::spawn(pump(attached.0, attached.1, sink, start_tx));

        let pid = match start_rx.await {
            Ok(Start::Pid(pid)) => pid,
            Ok(Start::NotFound) => return Err(not_found(spec, &container)),
            Ok(Start::NoCwd) => return Err(no_cwd(spec)),
            Ok(Start::RecordFailed) => {
                return Err(DockerError::RecordFailed {
                    program: spec.program.clone(),
                    container,
                }
                .into())
            }
            other => {
                let seen = match other {
                    Ok(Start::Ended(seen)) => seen,
                    _ => Vec::new(),
                };
                let code = exit_code(&self.docker, &id).await.ok();
                if matches!(
                    self.running(town).await,
                    Err(Error::ContainerNotRunning { .. })
                ) {
                    return Err(Error::ContainerNotRunning { town: town.clone() });
                }
                return Err(DockerError::EndedBeforeStart {
                    program: spec.program.clone(),
                    exit_code: code,
                    output: seen.join(" | "),
                }
                .into());
            }
        };
        let (host_pid, container_id) = exec_host_pid(&self.docker, &id).await;
        // The handle names its container by id: a name changes when the container is
        // handed to another town (`rename_container`), its id never does.
        let container = container_id.unwrap_or(container);
        tracing::debug!(%town, program = %spec.program, pid, ?host_pid, "spawned");
        let handle = DockerProcess {
            docker: self.docker.clone(),
            container,
            exec_id: id,
            pid,
            host_pid,
            signalled: Mutex::new(None),
        };
        Ok((Arc::new(handle), rx))
    }
}

/// The exec's host pid and its container's id, from the engine's exec inspection.
///
/// The engine records an exec's pid only after the process has started, so a process
/// can announce itself (the wrapper's start marker) before the inspection shows its pid
/// (it says 0 then). Under load that window was seen in CI: the inspection is retried
/// every [`HOST_PID_POLL_MS`] ms, [`HOST_PID_POLLS`] times at most, before the handle
/// goes without a host pid (its signals go by in-container pid and never need it).
async fn exec_host_pid(docker: &Docker, id: &str) -> (Option<u32>, Option<String>) {
    let mut container_id = None;
    for _ in 0..HOST_PID_POLLS {
        if let Ok(r) = docker.inspect_exec(id).await {
            container_id = r.container_id.or(container_id);
            let pid = r.pid.and_then(|p| u32::try_from(p).ok()).filter(|p| *p > 0);
            if pid.is_some() {
                return (pid, container_id);
            }
            if r.running == Some(false) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(HOST_PID_POLL_MS)).await;
    }
    (None, container_id)
}

/// Reads the exec's output until it ends: the wrapper's first stderr line is the start
/// marker (answered on `start`, not forwarded); everything else goes to `sink` as lines.
/// Always drains, so a process never blocks on a full pipe when nobody reads.
async fn pump(
    mut output: std::pin::Pin<
        Box<
            dyn futures::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>>
                + Send,
        >,
    >,
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    sink: LineSink,
    start: oneshot::Sender<Start>,
) {
    // Held so the attach connection stays whole for the exec's lifetime.
    let _input = input;
    let mut start = Some(start);
    let mut before_marker: Vec<String> = Vec::new();
    let mut out = LineSplitter::new(Stream::Stdout);
    let mut err = LineSplitter::new(Stream::Stderr);
    let mut handle = |lines: Vec<gastown_core::OutputLine>,
                      start: &mut Option<oneshot::Sender<Start>>| {
        for line in lines {
            if start.is_some() && line.stream == Stream::Stderr {
                let marker = if let Some(pid) = line.line.strip_prefix(PID_MARKER) {
                    pid.trim().parse().ok().map(Start::Pid)
                } else if line.line.starts_with(NOT_FOUND_MARKER) {
                    Some(Start::NotFound)
                } else if line.line.starts_with(NO_CWD_MARKER) {
                    Some(Start::NoCwd)
                } else if line.line.starts_with(RECORD_FAILED_MARKER) {
                    Some(Start::RecordFailed)
                } else {
                    None
                };
                if let Some(m) = marker {
                    if let Some(tx) = start.take() {
                        let _ = tx.send(m);
                    }
                    continue;
                }
            }
            if start.is_some() && before_marker.len() < 20 {
                before_marker.push(line.line.clone());
            }
            sink.send(line);
        }
    };
    while let Some(chunk) = output.next().await {
        match chunk {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                handle(out.push(&message), &mut start)
            }
            Ok(LogOutput::StdErr { message }) => handle(err.push(&message), &mut start),
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) => {
                tracing::debug!(error = %e, "exec output stream ended with an error");
                break;
            }
        }
    }
    let rest: Vec<_> = [out.finish(), err.finish()].into_iter().flatten().collect();
    handle(rest, &mut start);
    if let Some(tx) = start.take() {
        let _ = tx.send(Start::Ended(before_marker));
    }
    sink.close();
}

/// A process started by [`DockerRuntime`]'s `spawn`: an engine exec.
#[derive(Debug)]
pub struct DockerProcess {
    docker: Docker,
    /// The container's id (its name only when the engine did not report the id).
    container: String,
    exec_id: String,
    /// The pid inside the container (what `kill` there takes); the process leads its own
    /// process group, so signals go to the group.
    pid: u32,
    host_pid: Option<u32>,
    /// The last signal number sent, to tell "killed by us" from a plain exit code.
    signalled: Mutex<Option<i32>>,
}

impl DockerProcess {
    /// The engine's exec id.
    pub fn exec_id(&self) -> &str {
        &self.exec_id
    }

    /// The pid inside the container.
    pub fn container_pid(&self) -> u32 {
        self.pid
    }

    /// The engine reports a process killed by signal `n` as exit code `128 + n`; when the
    /// signal was ours, that is "killed" (`None`), as `ProcessStatus::Exited` documents.
    fn exited(&self, code: Option<i64>) -> ProcessStatus {
        let code = code.and_then(|c| i32::try_from(c).ok());
        match (code, *self.signalled.lock()) {
            (Some(c), Some(sig)) if c == 128 + sig => ProcessStatus::Exited(None),
            (c, _) => ProcessStatus::Exited(c),
        }
    }

    /// Whether the process's container still runs: the engine can keep reporting an exec
    /// as running after its container stopped.
    async fn container_runs(&self) -> bool {
        match self.docker.inspect_container(&self.container, None).await {
            Ok(c) => c.state.and_then(|s| s.running).unwrap_or(false),
            Err(e) if is_not_found(&e) => false,
            // Unknown: do not claim the process died.
            Err(_) => true,
        }
    }

    /// Sends `signal` (`TERM`, `KILL`) to the process group, or the process alone when it
    /// no longer leads one. Not an error when the process or container is gone.
    async fn signal(&self, signal: &str, number: i32) -> Result<()> {
        *self.signalled.lock() = Some(number);
        signal_pid(&self.docker, &self.container, self.pid, signal).await
    }

    /// Polls the status until the process is gone or `within` has passed; the caller
    /// escalates (TERM, then KILL) on what is still alive.
    async fn wait_dead(&self, within: Duration) -> ProcessStatus {
        wait_dead(self, within).await
    }
}

/// Sends `signal` (`TERM`, `KILL`) to the process group led by `pid` in `container`, or
/// the process alone when it no longer leads one, through an exec. Not an error when the
/// process or container is gone.
///
/// # Errors
/// `Api` (in `Generic`) when the engine refuses the exec for another reason.
pub(crate) async fn signal_pid(
    docker: &Docker,
    container: &str,
    pid: u32,
    signal: &str,
) -> Result<()> {
    let failed = |e| -> Error {
        DockerError::api("signalling", format!("pid {pid} in {container}"), e).into()
    };
    {
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            user: Some(crate::container::AGENT_USER.to_owned()),
            cmd: Some(vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                r#"kill -"$1" -"$2" 2>/dev/null || kill -"$1" "$2" 2>/dev/null || true"#.to_owned(),
                "gastown-kill".to_owned(),
                signal.to_owned(),
                pid.to_string(),
            ]),
            ..Default::default()
        };
        let id = match docker.create_exec(container, config).await {
            Ok(r) => r.id,
            Err(e) if is_not_found(&e) || status_of(&e) == Some(409) => return Ok(()),
            Err(e) => return Err(failed(e)),
        };
        match run_attached(docker, &id).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) || status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(failed(e)),
        }
    }
}

/// Polls `process`'s status until it is gone or `within` has passed; the caller
/// escalates (TERM, then KILL) on what is still alive.
pub(crate) async fn wait_dead(process: &dyn ProcessHandle, within: Duration) -> ProcessStatus {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let st = process.status().await;
        let now = tokio::time::Instant::now();
        if !st.is_alive() || now >= deadline {
            return st;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(KILL_POLL_MS))).await;
    }
}

#[async_trait]
impl ProcessHandle for DockerProcess {
    fn pid(&self) -> Option<u32> {
        self.host_pid
    }

    async fn status(&self) -> ProcessStatus {
        match self.docker.inspect_exec(&self.exec_id).await {
            Ok(r) if r.running == Some(true) => {
                // The engine can keep an exec "running" after its container stopped.
                if self.container_runs().await {
                    ProcessStatus::Running
                } else {
                    ProcessStatus::Exited(None)
                }
            }
            Ok(r) => self.exited(r.exit_code),
            // The exec's record went with its container: the process is gone.
            Err(e) if is_not_found(&e) => ProcessStatus::Exited(None),
            Err(e) => {
                tracing::warn!(error = %e, exec = %self.exec_id, "cannot read process status");
                ProcessStatus::Failed
            }
        }
    }

    async fn kill(&self, grace: Duration) -> Result<ProcessStatus> {
        let st = self.status().await;
        if !st.is_alive() {
            return Ok(st);
        }
        self.signal("TERM", 15).await?;
        let st = self.wait_dead(grace).await;
        if !st.is_alive() {
            return Ok(st);
        }
        self.signal("KILL", 9).await?;
        let st = self
            .wait_dead(Duration::from_millis(AFTER_SIGKILL_WAIT_MS))
            .await;
        if st.is_alive() {
            return Err(DockerError::StillAlive {
                pid: self.pid,
                container: self.container.clone(),
            }
            .into());
        }
        Ok(st)
    }
}
