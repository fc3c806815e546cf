//! What the town store keeps of the agent, and what callers see of it: its status (each
//! change also published as an event), its activity stamp, the rows a finished start
//! writes (session, config hash, registry entry), and the [`AgentInfo`] answer.
//!
//! The statuses are the worker side's (`ARCHITECTURE.md`, *Vocabulary*): an agent
//! mid-start is `working`; a started mayor is `waiting` (alive, awaiting the user: not
//! active work, Kilo Gastown #1450) and a started worker `idle`; a failed start is `dead`.

use gastown_core::store::{AgentRecord, AgentStarted};
use gastown_core::{AgentStatus, Role};

use super::AgentState;
use crate::context::LiveSdk;
use crate::events::TownEvent;
use crate::ready::AgentInfo;

impl AgentState {
    /// Records `status` (creating the agent's row if it has none) and publishes
    /// [`TownEvent::AgentStatusChanged`]. A store error is logged: the event still goes.
    pub(super) fn set_status(&self, status: AgentStatus) {
        let id = &self.ctx.spec.id;
        let result = self
            .ctx
            .parts
            .store
            .record_status(id, self.ctx.spec.role, status);
        if let Err(e) = result {
            tracing::warn!(agent = %id, error = %e, "recording agent status");
        }
        self.ctx.publish(TownEvent::AgentStatusChanged { status });
    }

    /// The agent's row as the store remembers it (`None`: no row, or an unreadable one,
    /// logged).
    pub(super) fn stored_record(&self) -> Option<AgentRecord> {
        match self.ctx.parts.store.agent(&self.ctx.spec.id) {
            Ok(rec) => rec,
            Err(e) => {
                tracing::warn!(agent = %self.ctx.spec.id, error = %e, "reading agent record");
                None
            }
        }
    }

    /// A start finished on `live` with `session_id`: the session, the config hash and the
    /// registry entry are stored, the agent rests, and the start counts as activity — one
    /// store transaction for all of it. A store error is logged: the event still goes.
    pub(super) fn record_started(&self, live: &LiveSdk, session_id: &str) {
        let id = &self.ctx.spec.id;
        let status = self.resting_status();
        let registry = self.ctx.spec.registry_entry();
        let started = AgentStarted {
            role: self.ctx.spec.role,
            session_id,
            config_hash: &live.config_hash,
            registry: &registry,
            status,
            // The mayor's idle-stop quiet window and a worker's idle-exit window start
            // here, not at an unknown (an `ensure_mayor` that only confirms the agent does
            // not count, or a dashboard polling it would keep the container up forever).
            activity_ms: self.ctx.parts.clock.now_ms(),
        };
        if let Err(e) = self.ctx.parts.store.record_started(id, &started) {
            tracing::warn!(agent = %id, error = %e, "recording the started agent");
        }
        self.ctx.publish(TownEvent::AgentStatusChanged { status });
    }

    /// `waiting` for a mayor (alive, awaiting input: not active work), `idle` for a worker.
    pub(super) fn resting_status(&self) -> AgentStatus {
        if self.ctx.spec.role == Role::Mayor {
            AgentStatus::Waiting
        } else {
            AgentStatus::Idle
        }
    }

    /// Stamps the agent's activity now (the idle rules read it); a store error is logged.
    pub(super) fn touch_activity(&self) {
        let now = self.ctx.parts.clock.now_ms();
        if let Err(e) = self.ctx.parts.store.touch_activity(&self.ctx.spec.id, now) {
            tracing::warn!(agent = %self.ctx.spec.id, error = %e, "recording activity");
        }
    }

    /// What runs for the agent: its endpoint, process, session, config hash and browse
    /// worktrees.
    pub(super) fn info(&self) -> AgentInfo {
        AgentInfo {
            agent: self.ctx.spec.id.clone(),
            endpoint: self.live.as_ref().map(|l| l.endpoint.clone()),
            pid: self.live.as_ref().and_then(|l| l.process.pid()),
            session_id: self.session_id.clone(),
            config_hash: self.live.as_ref().map(|l| l.config_hash.clone()),
            browse: self.browse.clone(),
        }
    }
}
