//! Process records: who each spawned process is, kept in the town's directory so that a
//! later host (this program restarted after a crash) can adopt a live SDK server or reap
//! what it does not want (`ContainerRuntime::spawn_labelled`, `ContainerRuntime::adopt`).
//!
//! One JSON file per process group, `<town>/run/gastown/processes/<pid>.json`, written
//! (temp file, fsync, rename) before `spawn` returns and deleted once the group is gone. A
//! record names the leader's pid, its start time in clock ticks since boot (field 22 of
//! `/proc/<pid>/stat`, proc(5)) and the kernel's boot id
//! (`/proc/sys/kernel/random/boot_id`): a pid the kernel handed to another process since,
//! or a record from before a reboot, never matches, so nothing unrelated is ever
//! signalled.

use std::io::Write;
use std::path::{Path, PathBuf};

use gastown_core::{ContainerPath, ProcessLabel};
use serde::{Deserialize, Serialize};

/// Where a town's records live, relative to its directory (the container's `/`).
pub(crate) const RECORDS_DIR: &str = "run/gastown/processes";

/// One spawned process group, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessRecord {
    /// The leader's pid, which is also the process group id.
    pub(crate) pid: u32,
    /// The leader's start time, clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub(crate) start_ticks: u64,
    /// The kernel boot the pid belongs to.
    pub(crate) boot_id: String,
    /// The program asked for (its name, no arguments: those may hold secrets).
    pub(crate) program: String,
    /// Who the process is, for an adopter; `None` for an unlabelled `spawn`.
    pub(crate) label: Option<RecordedLabel>,
}

/// [`ProcessLabel`] as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordedLabel {
    pub(crate) agent: String,
    pub(crate) config_hash: String,
    pub(crate) port: u16,
    pub(crate) lock: Option<String>,
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
    /// Back to the core type; a lock path that no longer parses is dropped (it only
    /// matters to the spawn that took it).
    pub(crate) fn to_label(&self) -> ProcessLabel {
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

/// The kernel's boot id, or an empty string where `/proc` does not say (then records
/// match on pid and start time alone).
pub(crate) fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// What `/proc/<pid>/stat` says about a live process: its start time and state letter.
/// `None` when there is no such process.
pub(crate) fn stat(pid: u32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may hold spaces or ')': split after the last.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 3 (state) is index 0 here, so field 22 (starttime) is index 19.
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

impl ProcessRecord {
    /// A record of the process `pid` just spawned (reads its start time now; `None` when
    /// it already ended).
    pub(crate) fn of(pid: u32, program: &str, label: Option<&ProcessLabel>) -> Option<Self> {
        let (start_ticks, _) = stat(pid)?;
        Some(Self {
            pid,
            start_ticks,
            boot_id: boot_id(),
            program: program.to_owned(),
            label: label.map(RecordedLabel::from),
        })
    }

    /// Whether the recorded process still runs: same boot, a process with this pid and
    /// this start time, not a zombie. A reused pid (another start time) is not it.
    pub(crate) fn is_live(&self, boot_id: &str) -> bool {
        self.boot_id == boot_id
            && stat(self.pid).is_some_and(|(start, state)| {
                start == self.start_ticks && !matches!(state, 'Z' | 'X' | 'x')
            })
    }

    /// The record's file in `dir`.
    pub(crate) fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.json", self.pid))
    }

    /// Writes the record into `dir` (created if needed): temp file, fsync, rename, so a
    /// reader never sees half a record.
    pub(crate) fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let target = self.path_in(dir);
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        tmp.write_all(&json)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&target).map_err(|e| e.error)?;
        Ok(target)
    }
}

/// Every record in `dir` with its file. A file that does not parse (a write cut short
/// by a crash cannot happen with the rename, but a foreign file can) is skipped and
/// left alone.
pub(crate) fn read_all(dir: &Path) -> Vec<(PathBuf, ProcessRecord)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut records: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            let bytes = std::fs::read(&p).ok()?;
            match serde_json::from_slice::<ProcessRecord>(&bytes) {
                Ok(r) => Some((p, r)),
                Err(e) => {
                    tracing::debug!(path = %p.display(), error = %e, "not a process record");
                    None
                }
            }
        })
        .collect();
    records.sort_by_key(|(_, r)| r.pid);
    records
}

/// Deletes a record file; one already gone is fine.
pub(crate) fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "removing a process record"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_live_and_a_wrong_start_time_is_not() {
        let me = ProcessRecord::of(std::process::id(), "test", None).unwrap();
        let boot = boot_id();
        assert!(me.is_live(&boot));
        let reused = ProcessRecord {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(
            !reused.is_live(&boot),
            "another start time is another process"
        );
        let other_boot = ProcessRecord {
            boot_id: "another-boot".into(),
            ..me
        };
        assert!(!other_boot.is_live(&boot));
    }

    #[test]
    fn records_round_trip_through_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let label = ProcessLabel {
            agent: "mayor".into(),
            config_hash: "abc".into(),
            port: 4100,
            lock: Some(ContainerPath::new("/agents/mayor/server.lock").unwrap()),
        };
        let rec = ProcessRecord::of(std::process::id(), "kilo", Some(&label)).unwrap();
        let path = rec.write(dir.path()).unwrap();
        std::fs::write(dir.path().join("junk.json"), b"{").unwrap();
        let all = read_all(dir.path());
        assert_eq!(all, vec![(path.clone(), rec.clone())]);
        assert_eq!(all[0].1.label.as_ref().unwrap().to_label(), label);
        remove(&path);
        remove(&path);
        assert!(read_all(dir.path()).is_empty());
    }
}
