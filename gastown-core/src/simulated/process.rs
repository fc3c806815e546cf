//! Spawned processes of the simulated runtime: SDK servers that boot in scripted time, and
//! plain processes that run until killed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::db;
use super::exec::{check_program, program_name};
use super::log::SimEventKind;
use super::runtime::{kilo_db, Inner};
use super::state::{Proc, Server};
use crate::command::{CommandSpec, Word};
use crate::error::Result;
use crate::ids::TownId;
use crate::path::ContainerPath;
use crate::runtime::{OutputLine, ProcessHandle, SpawnedProcess, Stream};
use crate::secret::Secret;
use crate::status::ProcessStatus;

/// Output lines buffered per process; a simulated server prints one or two.
const OUTPUT_BUFFER: usize = 64;

/// Where an SDK server keeps its data when the env names no `XDG_DATA_HOME` nor `HOME`
/// (XDG's default under root's home).
const FALLBACK_DATA_DIR: &str = "/root/.local/share";

fn env_text(command: &CommandSpec, key: &str) -> Option<String> {
    match command.env.get(key)? {
        Word::Text(t) => Some(t.clone()),
        Word::Path(p) => Some(p.as_str().to_owned()),
        Word::Secret(s) => Some(s.expose().to_owned()),
    }
}

fn env_path(command: &CommandSpec, key: &str) -> Option<ContainerPath> {
    ContainerPath::new(env_text(command, key)?).ok()
}

/// The value following `flag` in the arguments.
fn flag_value(command: &CommandSpec, flag: &str) -> Option<String> {
    let mut args = command.args.iter();
    while let Some(w) = args.next() {
        if matches!(w, Word::Text(t) if t == flag) {
            return match args.next()? {
                Word::Text(t) => Some(t.clone()),
                Word::Path(p) => Some(p.as_str().to_owned()),
                Word::Secret(_) => None,
            };
        }
    }
    None
}

/// What an SDK server takes from its command line and environment.
struct ServerSetup {
    data_dir: ContainerPath,
    host: String,
    username: String,
    password: Option<Secret>,
    config: Option<String>,
}

fn server_setup(command: &CommandSpec, name: &str) -> ServerSetup {
    // kilo reads KILO_SERVER_PASSWORD, opencode OPENCODE_SERVER_PASSWORD, and so on.
    let prefix = name.to_ascii_uppercase().replace('-', "_");
    let data_dir = env_path(command, "XDG_DATA_HOME")
        .or_else(|| env_path(command, "HOME").and_then(|h| h.join(".local/share").ok()))
        .unwrap_or_else(|| ContainerPath::new(FALLBACK_DATA_DIR).expect("a valid constant"));
    let password = match command.env.get(&format!("{prefix}_SERVER_PASSWORD")) {
        Some(Word::Secret(s)) => Some(s.clone()),
        Some(Word::Text(t)) => Some(Secret::new(t.clone())),
        Some(Word::Path(p)) => Some(Secret::new(p.as_str())),
        None => None,
    };
    ServerSetup {
        data_dir,
        host: flag_value(command, "--hostname").unwrap_or_else(|| "127.0.0.1".to_owned()),
        username: env_text(command, &format!("{prefix}_SERVER_USERNAME"))
            .unwrap_or_else(|| name.to_owned()),
        password,
        config: env_text(command, &format!("{prefix}_CONFIG_CONTENT")),
    }
}

/// `spawn` of the simulated runtime. Instant: an SDK server boots in a task of its own.
pub(super) fn spawn(
    inner: &Arc<Inner>,
    town: &TownId,
    command: &CommandSpec,
) -> Result<SpawnedProcess> {
    let start = inner.offset();
    let (name, is_sdk, boot) = {
        let checked = inner.script(|s| {
            check_program(s, &command.program).map(|()| {
                let name = program_name(&command.program).to_owned();
                let is_sdk = s.sdk_programs.contains(&name);
                (name, is_sdk, s.sdk_boot)
            })
        });
        // The container is checked first: a stopped container runs nothing.
        inner.state.lock().running(town)?;
        checked?
    };
    let setup = is_sdk.then(|| server_setup(command, &name));
    let (tx, rx) = mpsc::channel(OUTPUT_BUFFER);
    let (pid, port) = {
        let mut state = inner.state.lock();
        state.running(town)?;
        // The port asked for with `--port`, as kilo takes it, unless some server ever had
        // it (ports are never reused); otherwise the next free one.
        let asked = flag_value(command, "--port")
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0 && !state.ports.contains_key(p));
        let port = match (is_sdk, asked) {
            (false, _) => None,
            (true, Some(p)) => Some(p),
            (true, None) => Some(state.port()?),
        };
        let pid = state.pid();
        let server = setup.as_ref().zip(port).map(|(s, port)| Server {
            port,
            data_dir: s.data_dir.clone(),
            username: s.username.clone(),
            password: s.password.clone(),
            listening: false,
        });
        if let Some(port) = port {
            state.ports.insert(port, pid);
        }
        state.procs.insert(
            pid,
            Proc {
                town: town.clone(),
                program: name.clone(),
                status: if is_sdk {
                    ProcessStatus::Starting
                } else {
                    ProcessStatus::Running
                },
                output: Some(tx),
                boot: None,
                server,
                label: None,
            },
        );
        (pid, port)
    };
    if let (Some(setup), Some(port)) = (&setup, port) {
        let task = tokio::spawn(boot_server(
            inner.clone(),
            pid,
            start,
            boot,
            format!("{name} server listening on http://{}:{port}", setup.host),
        ));
        let mut state = inner.state.lock();
        match state.procs.get_mut(&pid) {
            Some(p) if p.status.is_alive() => p.boot = Some(task.abort_handle()),
            _ => task.abort(),
        }
    }
    let kind = SimEventKind::Spawn {
        program: name,
        pid,
        data_dir: setup.as_ref().map(|s| s.data_dir.clone()),
        config: setup.and_then(|s| s.config),
    };
    inner.record(start, town, kind, true);
    Ok(SpawnedProcess {
        handle: Arc::new(SimProcessHandle {
            pid,
            inner: inner.clone(),
        }),
        output: rx,
    })
}

/// An SDK server's boot: after `boot`, open (or create) its `kilo.db`, then listen and print
/// `line`. A `kilo.db` that is not a database makes it exit 1 instead, as kilo would.
async fn boot_server(
    inner: Arc<Inner>,
    pid: u32,
    spawned_at: Duration,
    boot: Duration,
    line: String,
) {
    Inner::charge(boot).await;
    // A server in a paused container prints nothing until the resume.
    let town = inner.state.lock().procs.get(&pid).map(|p| p.town.clone());
    if let Some(town) = town {
        inner.wait_thawed(&town).await;
    }
    let Some((town, data_dir)) = ({
        let state = inner.state.lock();
        state.procs.get(&pid).and_then(|p| {
            let server = p.server.as_ref()?;
            p.status
                .is_alive()
                .then(|| (p.town.clone(), server.data_dir.clone()))
        })
    }) else {
        return;
    };
    let opened = open_db(&inner, &town, &data_dir);
    let mut state = inner.state.lock();
    let Some(p) = state.procs.get_mut(&pid) else {
        return;
    };
    if !p.status.is_alive() {
        return;
    }
    let (kind, stream, text) = match opened {
        Ok(()) => {
            p.status = ProcessStatus::Running;
            let port = p.server.as_ref().map_or(0, |s| s.port);
            if let Some(server) = &mut p.server {
                server.listening = true;
            }
            let kind = SimEventKind::SdkReady {
                pid,
                port,
                data_dir,
            };
            (kind, Stream::Stdout, line)
        }
        Err(reason) => {
            let kind = SimEventKind::SdkBootFailed {
                pid,
                data_dir,
                reason: reason.clone(),
            };
            (kind, Stream::Stderr, format!("Error: {reason}"))
        }
    };
    if let Some(tx) = &p.output {
        // Never blocks; a full buffer (nobody reading) drops the line, as the contract allows.
        let _ = tx.try_send(OutputLine { stream, line: text });
    }
    let ok = matches!(kind, SimEventKind::SdkReady { .. });
    if !ok {
        p.boot = None;
        p.end(ProcessStatus::Exited(Some(1)));
    } else {
        p.boot = None;
    }
    drop(state);
    inner.record(spawned_at, &town, kind, ok);
}

/// Opens the server's `kilo.db`, creating an empty one when absent (the server's own write:
/// no time is charged). The error is what the server would print.
fn open_db(inner: &Inner, town: &TownId, data_dir: &ContainerPath) -> Result<(), String> {
    let path = kilo_db(data_dir).map_err(|e| e.to_string())?;
    let _db = inner.db_lock.lock();
    let existing = {
        let mut state = inner.state.lock();
        let t = state.running(town).map_err(|e| e.to_string())?;
        t.files.get(&path).cloned()
    };
    match existing {
        Some(bytes) => db::decode(&bytes).map(|_| ()).map_err(|e| e.to_string()),
        None => {
            let empty = db::empty().map_err(|e| e.to_string())?;
            let mut state = inner.state.lock();
            let t = state.running(town).map_err(|e| e.to_string())?;
            t.files.insert(path, empty.to_vec());
            Ok(())
        }
    }
}

/// The [`ProcessHandle`] of a simulated process.
pub(super) struct SimProcessHandle {
    pub(super) pid: u32,
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for SimProcessHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimProcessHandle")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ProcessHandle for SimProcessHandle {
    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    async fn status(&self) -> ProcessStatus {
        self.inner
            .state
            .lock()
            .procs
            .get(&self.pid)
            .map_or(ProcessStatus::Failed, |p| p.status)
    }

    /// Charged the smaller of [`SimScript::process_kill`](super::SimScript::process_kill)
    /// and `grace`. The server stops answering and the output closes at once (SIGTERM);
    /// the status is `Stopping` until the charge has passed, then `Exited(None)`.
    async fn kill(&self, grace: Duration) -> Result<ProcessStatus> {
        let inner = &self.inner;
        let start = inner.offset();
        let (town, program) = {
            let mut state = inner.state.lock();
            let Some(p) = state.procs.get_mut(&self.pid) else {
                return Ok(ProcessStatus::Failed);
            };
            if !p.end(ProcessStatus::Stopping) {
                return Ok(p.status);
            }
            (p.town.clone(), p.program.clone())
        };
        Inner::charge(inner.script(|s| s.process_kill).min(grace)).await;
        let status = {
            let mut state = inner.state.lock();
            match state.procs.get_mut(&self.pid) {
                Some(p) => {
                    if p.status == ProcessStatus::Stopping {
                        p.status = ProcessStatus::Exited(None);
                    }
                    p.status
                }
                None => ProcessStatus::Exited(None),
            }
        };
        let kind = SimEventKind::ProcessKill {
            pid: self.pid,
            program,
        };
        inner.record(start, &town, kind, true);
        Ok(status)
    }
}
