//! The simulated runtime's in-memory state: containers, their files, processes and SDK
//! servers. Guarded by one `parking_lot` mutex that is only ever held for short,
//! synchronous sections — never across a sleep — so operations of different agents overlap
//! in virtual time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::error::SimulatedError;
use crate::error::{Error, Result};
use crate::ids::TownId;
use crate::path::ContainerPath;
use crate::runtime::OutputLine;
use crate::secret::Secret;
use crate::status::{ContainerStatus, ProcessStatus};

/// The first simulated pid; real-looking, and far from anything a test would confuse it with.
const FIRST_PID: u32 = 10_000;
/// The first simulated port (ports are never reused within a runtime).
const FIRST_PORT: u16 = 41_000;
/// Session and message times count from here (2026-01-01T00:00:00Z, in ms since the Unix
/// epoch) plus the virtual time elapsed, so they are deterministic.
pub(super) const EPOCH_BASE_MS: i64 = 1_767_225_600_000;

/// One town's container.
#[derive(Debug)]
pub(super) struct Town {
    pub(super) status: ContainerStatus,
    pub(super) id: String,
    /// Every file by path; directories are implicit.
    pub(super) files: BTreeMap<ContainerPath, Vec<u8>>,
}

/// A simulated SDK server (the part of a process that answers HTTP).
#[derive(Debug)]
pub(super) struct Server {
    pub(super) port: u16,
    pub(super) data_dir: ContainerPath,
    pub(super) username: String,
    /// `None`: started without a password, so open to every caller (as kilo is).
    pub(super) password: Option<Secret>,
    /// True from the listening line until the process stops.
    pub(super) listening: bool,
}

/// A simulated process.
#[derive(Debug)]
pub(super) struct Proc {
    pub(super) town: TownId,
    pub(super) program: String,
    pub(super) status: ProcessStatus,
    /// Dropped when the process ends, which closes its output.
    pub(super) output: Option<mpsc::Sender<OutputLine>>,
    /// The boot task of an SDK server, aborted if the process ends first.
    pub(super) boot: Option<AbortHandle>,
    pub(super) server: Option<Server>,
    /// Who it is, for a labelled spawn (`spawn_labelled`).
    pub(super) label: Option<crate::runtime::ProcessLabel>,
}

impl Proc {
    /// Ends the process now with `status` (no time passes); false if it had already ended.
    pub(super) fn end(&mut self, status: ProcessStatus) -> bool {
        let was_alive = self.status.is_alive();
        if was_alive {
            self.status = status;
        }
        self.output = None;
        if let Some(boot) = self.boot.take() {
            boot.abort();
        }
        if let Some(server) = &mut self.server {
            server.listening = false;
        }
        was_alive
    }
}

/// Everything the simulated runtime knows.
#[derive(Debug)]
pub(super) struct State {
    pub(super) towns: HashMap<TownId, Town>,
    pub(super) procs: HashMap<u32, Proc>,
    /// Port → pid of every SDK server ever started (ports are never reused, so a stale
    /// client reaches nothing rather than another server).
    pub(super) ports: HashMap<u16, u32>,
    /// The pids of labelled processes handed to another town with their container
    /// (`rename_container`) and not adopted there yet: what `adopt` looks through, so an
    /// adoption costs nothing in a runtime of thousands of processes when none is offered.
    pub(super) offered: BTreeSet<u32>,
    next_pid: u32,
    next_port: u16,
    next_container: u64,
    next_session: u64,
    next_message: u64,
    last_ms: i64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            towns: HashMap::new(),
            procs: HashMap::new(),
            ports: HashMap::new(),
            offered: BTreeSet::new(),
            next_pid: FIRST_PID,
            next_port: FIRST_PORT,
            next_container: 1,
            next_session: 1,
            next_message: 1,
            last_ms: 0,
        }
    }
}

impl State {
    /// The town's container if it is running.
    ///
    /// # Errors
    /// [`Error::ContainerNotRunning`] when it is absent or stopped;
    /// [`Error::ContainerPaused`] when it is paused.
    pub(super) fn running(&mut self, town: &TownId) -> Result<&mut Town> {
        match self.towns.get_mut(town) {
            Some(t) if t.status == ContainerStatus::Running => Ok(t),
            Some(t) if t.status == ContainerStatus::Paused => {
                Err(Error::ContainerPaused { town: town.clone() })
            }
            _ => Err(Error::ContainerNotRunning { town: town.clone() }),
        }
    }

    pub(super) fn container_id(&mut self, town: &TownId) -> String {
        let n = self.next_container;
        self.next_container += 1;
        format!("sim-{town}-{n}")
    }

    pub(super) fn pid(&mut self) -> u32 {
        let pid = self.next_pid;
        self.next_pid += 1;
        pid
    }

    /// A port never handed out before.
    ///
    /// # Errors
    /// [`SimulatedError::PortsExhausted`] once every port above the first was used (24 535 servers).
    /// The next port no server ever had (one asked for with `--port` may lie ahead).
    pub(super) fn port(&mut self) -> Result<u16> {
        loop {
            let port = self.next_port;
            self.next_port = port.checked_add(1).ok_or(SimulatedError::PortsExhausted)?;
            if !self.ports.contains_key(&port) {
                return Ok(port);
            }
        }
    }

    pub(super) fn session_id(&mut self) -> String {
        let n = self.next_session;
        self.next_session += 1;
        format!("ses_sim_{n}")
    }

    pub(super) fn message_id(&mut self) -> String {
        let n = self.next_message;
        self.next_message += 1;
        format!("msg_sim_{n}")
    }

    /// A timestamp for `virtual_ms` of virtual time, strictly greater than every one before.
    pub(super) fn timestamp(&mut self, virtual_ms: i64) -> i64 {
        let ms = (EPOCH_BASE_MS + virtual_ms).max(self.last_ms + 1);
        self.last_ms = ms;
        ms
    }

    /// Ends every process of `town` (killed by a signal); returns how many were alive.
    pub(super) fn end_town_processes(&mut self, town: &TownId) -> usize {
        self.procs
            .values_mut()
            .filter(|p| &p.town == town)
            .map(|p| p.end(ProcessStatus::Exited(None)))
            .filter(|was_alive| *was_alive)
            .count()
    }
}
