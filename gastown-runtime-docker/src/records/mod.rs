//! Crash safety of the Docker runtime: process records inside the container, labelled
//! spawns (one process per agent), adoption of what an earlier host left running, and
//! [`RecordedProcess`], the handle of an adopted process.
//!
//! A host killed with SIGKILL drops its attached execs, but the processes they started go
//! on running in the container (the engine keeps draining their output; checked here with
//! Docker 20.10). A labelled spawn runs through the exec wrapper in record mode
//! (`wrapper.rs`), which writes `/run/gastown/processes/<pid>.json` — the in-container pid,
//! its start time in clock ticks after boot (field 22 of `/proc/<pid>/stat`, proc(5)) and
//! the label — before it announces the pid, so the record exists once `spawn_labelled`
//! returns. The records live in the container's own filesystem, not in the `/agents`
//! volume: they go with the container, whose `stop` and `remove` end every process
//! anyway, and a stopped container is always replaced by a fresh one (`container.rs`), so
//! no record outlives its pid namespace. A record matches its process only while a
//! process with that pid and that start time runs (not a zombie): a pid the kernel handed
//! to another process since is never signalled.
//!
//! The agent image's busybox has no `flock`, so the label's lock file is not taken here;
//! one server per agent holds because every labelled spawn of an agent first ends each
//! live recorded process of that agent (waited for), and spawns of one agent are
//! serialised within this runtime.
//!
//! Reading the records is an exec, an engine round trip (about 90 ms, `ARCHITECTURE.md`,
//! *Phase path*), and a cold start would make two: `adopt`, then the sdk phase's labelled
//! spawn. Neither is needed in a container this runtime started itself (a new pid
//! namespace in which nothing ran before) for an agent it has not spawned there yet: the
//! records of that container are the ones this runtime's labelled spawns wrote, so the
//! agent has none. A runtime that finds the container already running — a host restarted
//! after a crash, with the earlier host's records in it — gets `created == false` from
//! `start` and reads them as before. (A second runtime making labelled spawns in a
//! container another live runtime started is outside this: one host drives a town.)

mod known;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::ExecConfig;
use bollard::Docker;
use gastown_core::{
    AdoptedProcess, CommandSpec, ContainerPath, ProcessHandle, ProcessLabel, ProcessStatus, Result,
    SpawnedProcess, TownId,
};
use serde::{Deserialize, Serialize};

use crate::error::{is_not_found, status_of, Error as DockerError};
use crate::exec::run_attached;
use crate::process::{signal_pid, wait_dead, AFTER_SIGKILL_WAIT_MS};
use crate::runtime::DockerRuntime;
use crate::wrapper::Mode;

pub(crate) use known::Known;

/// Where the records live inside the container (the wrapper script names it too).
pub(crate) const RECORDS_DIR: &str = "/run/gastown/processes";

/// Grace of the kill of an older duplicate that `adopt` finds (SIGTERM to SIGKILL), in ms.
const DUPLICATE_GRACE_MS: u64 = 2_000;

/// Prints one line per record: the record's JSON, a tab, and the `/proc/<pid>/stat` line
/// of its pid (`-` when there is no such process).
const LIST_SCRIPT: &str = r#"for f in /run/gastown/processes/*.json; do
  [ -f "$f" ] || continue
  r=; read -r r < "$f" || [ -n "$r" ] || continue
  p=${f##*/}; p=${p%.json}
  s=-; read -r s < "/proc/$p/stat" 2>/dev/null || s=-
  printf '%s\t%s\n' "$r" "$s"
done"#;

/// Prints the `/proc/$1/stat` line of one pid (nothing when there is no such process).
const STAT_SCRIPT: &str = r#"read -r s < "/proc/$1/stat" 2>/dev/null && printf '%s\n' "$s""#;

/// [`ProcessLabel`] as the wrapper writes it (no secrets: it travels in argv).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RecordedLabel {
    agent: String,
    config_hash: String,
    port: u16,
    lock: Option<String>,
}

impl From<&ProcessLabel> for RecordedLabel {
    fn from(l: &ProcessLabel) -> Self {
        Self {
            agent: l.agent.clone(),
            config_hash: l.config_hash.clone(),
            port: l.port,
            lock: l.lock.as_ref().map(ToString::to_string),
        }
    }
}

impl RecordedLabel {
    fn to_label(&self) -> ProcessLabel {
        ProcessLabel {
            agent: self.agent.clone(),
            config_hash: self.config_hash.clone(),
            port: self.port,
            lock: self
                .lock
                .as_deref()
                .and_then(|p| ContainerPath::new(p).ok()),
        }
    }
}

/// One record as the wrapper wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct ProcessRecord {
    pid: u32,
    start_ticks: u64,
    label: RecordedLabel,
}

/// A record and whether its process still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    record: ProcessRecord,
    live: bool,
}

/// The start time (field 22) and state letter (field 3) of a `/proc/<pid>/stat` line;
/// `None` for anything else (`-`, nothing).
fn parse_stat(line: &str) -> Option<(u64, char)> {
    // The command name is parenthesised and may hold spaces or ')': split after the last.
    let (_, rest) = line.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// Whether a stat line says the recorded process (same start time) runs: a reused pid or
/// a zombie is not it.
fn matches(stat: Option<(u64, char)>, start_ticks: u64) -> bool {
    stat.is_some_and(|(start, state)| start == start_ticks && !matches!(state, 'Z' | 'X' | 'x'))
}

/// The list script's output as entries; lines that do not parse (a foreign file) are
/// skipped.
fn parse_list(stdout: &str) -> Vec<Entry> {
    stdout
        .lines()
        .filter_map(|line| {
            let (json, stat) = line.split_once('\t')?;
            let record: ProcessRecord = match serde_json::from_str(json) {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "not a process record");
                    return None;
                }
            };
            let live = matches(parse_stat(stat), record.start_ticks);
            Some(Entry { record, live })
        })
        .collect()
}

impl DockerRuntime {
    /// Every record in the town's container, with whether its process runs.
    ///
    /// # Errors
    /// What `exec` returns (`ContainerNotRunning`, `ContainerPaused`, engine errors).
    async fn read_records(&self, town: &TownId) -> Result<Vec<Entry>> {
        let out = self.exec_command(town, &shell(LIST_SCRIPT)).await?;
        Ok(parse_list(&out.stdout_str()))
    }

    /// Deletes the records of `pids` (their processes are gone); a failure is logged: a
    /// stale record never matches a live process anyway.
    async fn drop_records(&self, town: &TownId, pids: &[u32]) {
        if pids.is_empty() {
            return;
        }
        let mut cmd = CommandSpec::new("rm").env("PATH", gastown_core::env::AGENT_PATH);
        cmd = cmd.arg("-f");
        for pid in pids {
            cmd = cmd.arg(format!("{RECORDS_DIR}/{pid}.json"));
        }
        if let Err(e) = self.exec_command(town, &cmd).await {
            tracing::debug!(%town, error = %e, "dropping stale process records");
        }
    }

    /// A handle on a recorded process: this runtime's own exec handle when it spawned it,
    /// else one that reads `/proc` and signals by pid.
    fn handle_of(&self, town: &TownId, record: &ProcessRecord) -> Arc<dyn ProcessHandle> {
        match self.known.own_handle(town, record.pid) {
            Some(p) => p,
            None => Arc::new(RecordedProcess {
                docker: self.docker.clone(),
                container: self.container_name(town),
                pid: record.pid,
                start_ticks: record.start_ticks,
            }),
        }
    }

    /// `spawn_labelled` of the trait: under the agent's lock, ends every live recorded
    /// process of the agent (SIGTERM, SIGKILL after `grace`, waited for), then spawns
    /// `spec` through the wrapper in record mode. The records are not read (no exec) when
    /// the container cannot hold one of the agent (see the module docs): the first server
    /// of a cold start costs one exec, as an unlabelled spawn does.
    ///
    /// # Errors
    /// What `spawn` returns; `RecordFailed` (in `Generic`) when the record cannot be
    /// written; the kill's error when an earlier process cannot be ended.
    pub(crate) async fn spawn_recorded(
        &self,
        town: &TownId,
        spec: &CommandSpec,
        label: &ProcessLabel,
        grace: Duration,
    ) -> Result<SpawnedProcess> {
        let lock = self.known.agent_lock(town, &label.agent);
        let _serial = lock.lock().await;
        let entries = if self.known.may_hold_records(town, &label.agent) {
            self.read_records(town).await?
        } else {
            Vec::new()
        };
        let (live, stale): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|e| e.live);
        let earlier: Vec<ProcessRecord> = live
            .into_iter()
            .map(|e| e.record)
            .filter(|r| r.label.agent == label.agent)
            .collect();
        if !earlier.is_empty() {
            tracing::debug!(%town, agent = %label.agent, count = earlier.len(), "ending the agent's earlier processes");
            let kills = earlier.iter().map(|r| {
                let handle = self.handle_of(town, r);
                async move { handle.kill(grace).await }
            });
            for result in futures::future::join_all(kills).await {
                result?;
            }
        }
        let gone: Vec<u32> = stale
            .iter()
            .map(|e| e.record.pid)
            .chain(earlier.iter().map(|r| r.pid))
            .collect();
        self.drop_records(town, &gone).await;
        self.known.forget_pids(town, &gone);
        let json = serde_json::to_string(&RecordedLabel::from(label))
            .map_err(|e| gastown_core::Error::generic(crate::error::RUNTIME, e))?;
        self.known.spawning(town, &label.agent);
        let (process, output) = self.spawn_wrapped(town, spec, Mode::Record(json)).await?;
        self.known.spawned(town, process.clone(), label.clone());
        Ok(SpawnedProcess {
            handle: process,
            output,
        })
    }

    /// `adopt` of the trait: the newest live recorded process of `agent` that this runtime
    /// neither spawned nor adopted before; older ones of the same agent (never more than
    /// one, unless records were made by hand) are killed. Stale records are deleted. `None`
    /// without reading the records (no exec) when the container cannot hold one of the
    /// agent (see the module docs): a fresh town's cold start.
    ///
    /// A process that a container hand-over offered (`rename_container`: a warm pool's
    /// server, which this runtime spawned) is handed out first, once, without reading the
    /// records: its handle is this runtime's own exec handle, whose status is two engine
    /// inspects rather than an exec (about 90 ms, `ARCHITECTURE.md`, *Phase path*) on the
    /// claiming town's critical path.
    ///
    /// # Errors
    /// What `exec` returns (`ContainerNotRunning`, `ContainerPaused`, engine errors); the
    /// kill's error for an older duplicate.
    pub(crate) async fn adopt_recorded(
        &self,
        town: &TownId,
        agent: &str,
    ) -> Result<Option<AdoptedProcess>> {
        let lock = self.known.agent_lock(town, agent);
        let _serial = lock.lock().await;
        while let Some((process, label)) = self.known.take_offered(town, agent) {
            let pid = process.container_pid();
            if process.status().await.is_alive() {
                self.known.adopted(town, pid);
                tracing::debug!(%town, agent, pid, "handed-over process adopted");
                return Ok(Some(AdoptedProcess {
                    handle: process,
                    label,
                }));
            }
            self.known.forget_pids(town, &[pid]);
        }
        if !self.known.may_hold_records(town, agent) {
            tracing::debug!(%town, agent, "nothing to adopt in a container this runtime started");
            return Ok(None);
        }
        let entries = self.read_records(town).await?;
        let stale: Vec<u32> = entries
            .iter()
            .filter(|e| !e.live)
            .map(|e| e.record.pid)
            .collect();
        self.drop_records(town, &stale).await;
        self.known.forget_pids(town, &stale);
        let mut candidates: Vec<ProcessRecord> = entries
            .into_iter()
            .filter(|e| e.live && e.record.label.agent == agent)
            .map(|e| e.record)
            .filter(|r| self.known.adoptable(town, r.pid))
            .collect();
        candidates.sort_by_key(|r| r.start_ticks);
        let Some(newest) = candidates.pop() else {
            return Ok(None);
        };
        for older in &candidates {
            self.handle_of(town, older)
                .kill(Duration::from_millis(DUPLICATE_GRACE_MS))
                .await?;
        }
        self.known.adopted(town, newest.pid);
        tracing::debug!(%town, agent, pid = newest.pid, "recorded process adopted");
        Ok(Some(AdoptedProcess {
            handle: self.handle_of(town, &newest),
            label: newest.label.to_label(),
        }))
    }
}

/// `sh -c <script>` with the agents' `PATH`.
fn shell(script: &str) -> CommandSpec {
    CommandSpec::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", gastown_core::env::AGENT_PATH)
}

/// A labelled process an earlier host spawned in the container, adopted by this one: its
/// status is read from `/proc/<pid>/stat` inside the container (alive while a process with
/// the recorded pid and start time runs), and it is signalled by pid (its process group),
/// both through execs. Its exit code is unknown (it is not this host's child):
/// an ended process reports `Exited(None)`.
#[derive(Debug)]
pub(crate) struct RecordedProcess {
    docker: Docker,
    container: String,
    /// The in-container pid, which leads the process's group.
    pid: u32,
    /// Its start time, clock ticks after boot: what tells it from a reused pid.
    start_ticks: u64,
}

#[async_trait]
impl ProcessHandle for RecordedProcess {
    fn pid(&self) -> Option<u32> {
        // The host's pid of an adopted process is not known (the engine reports it per
        // exec, and this host did not make the exec).
        None
    }

    async fn status(&self) -> ProcessStatus {
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            user: Some(crate::container::AGENT_USER.to_owned()),
            cmd: Some(vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                STAT_SCRIPT.to_owned(),
                "gastown-stat".to_owned(),
                self.pid.to_string(),
            ]),
            ..Default::default()
        };
        let result = match self.docker.create_exec(&self.container, config).await {
            Ok(r) => run_attached(&self.docker, &r.id).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((stdout, _)) => {
                let line = String::from_utf8_lossy(&stdout);
                if matches(parse_stat(line.trim()), self.start_ticks) {
                    ProcessStatus::Running
                } else {
                    ProcessStatus::Exited(None)
                }
            }
            // 409: stopped or paused; a frozen process is still alive.
            Err(e) if status_of(&e) == Some(409) => {
                match self.docker.inspect_container(&self.container, None).await {
                    Ok(c) if c.state.as_ref().and_then(|s| s.paused) == Some(true) => {
                        ProcessStatus::Running
                    }
                    _ => ProcessStatus::Exited(None),
                }
            }
            Err(e) if is_not_found(&e) => ProcessStatus::Exited(None),
            Err(e) => {
                tracing::warn!(error = %e, pid = self.pid, "cannot read a recorded process's status");
                ProcessStatus::Failed
            }
        }
    }

    async fn kill(&self, grace: Duration) -> Result<ProcessStatus> {
        // Each signal follows a status read that matched the start time: a pid the kernel
        // reused meanwhile is never signalled.
        let st = self.status().await;
        if !st.is_alive() {
            return Ok(st);
        }
        signal_pid(&self.docker, &self.container, self.pid, "TERM").await?;
        let st = wait_dead(self, grace).await;
        if !st.is_alive() {
            return Ok(st);
        }
        signal_pid(&self.docker, &self.container, self.pid, "KILL").await?;
        let st = wait_dead(self, Duration::from_millis(AFTER_SIGKILL_WAIT_MS)).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_writes_where_the_records_are_read() {
        assert!(LIST_SCRIPT.contains(RECORDS_DIR));
        let wrapped =
            crate::wrapper::wrap(Mode::Record("{}".into()), &CommandSpec::new("kilo"), &[])
                .unwrap();
        assert!(wrapped.cmd[2].contains(RECORDS_DIR));
        assert_eq!(wrapped.cmd[4], "record");
        assert_eq!(wrapped.cmd[5], "{}");
        assert_eq!(wrapped.cmd[6], "kilo");
    }

    #[test]
    fn list_lines_parse_into_live_and_stale_entries() {
        let label = r#"{"agent":"mayor","config_hash":"abc","port":4100,"lock":"/agents/mayor/server.lock"}"#;
        // Field 22 is 5000 for pid 7; pid 8 now has another start time; pid 9 is gone;
        // pid 10 is a zombie.
        let stat = |pid: u32, state: char, start: u64| {
            format!("{pid} (kilo serve) {state} 0 {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 1 1")
        };
        let rec = |pid: u32| format!(r#"{{"pid":{pid},"start_ticks":5000,"label":{label}}}"#);
        let out = format!(
            "{}\t{}\n{}\t{}\n{}\t-\n{}\t{}\nnot json\t-\n",
            rec(7),
            stat(7, 'S', 5000),
            rec(8),
            stat(8, 'S', 6000),
            rec(9),
            rec(10),
            stat(10, 'Z', 5000),
        );
        let entries = parse_list(&out);
        let live: Vec<(u32, bool)> = entries.iter().map(|e| (e.record.pid, e.live)).collect();
        assert_eq!(live, vec![(7, true), (8, false), (9, false), (10, false)]);
        let l = entries[0].record.label.to_label();
        assert_eq!(l.agent, "mayor");
        assert_eq!(l.port, 4100);
        assert_eq!(l.lock.unwrap().as_str(), "/agents/mayor/server.lock");
    }
}
