//! Draining an agent: every server it holds stops, then its `kilo.db` (with its WAL) is
//! snapshotted out of the container into the town's state directory, so nothing the agent
//! wrote is lost when the container goes away (`ARCHITECTURE.md`, *Persistence*).

use std::sync::Arc;

use gastown_core::{AgentStatus, ProcessHandle};
use ractor::RpcReplyPort;

use super::AgentState;
use crate::context::AgentContext;
use gastown_core::snapshot::{take_live, LiveSnapshot, LiveSnapshotError};

use crate::error::{Error, Result};
use crate::events::TownEvent;
use crate::phases::stop_server;

impl AgentState {
    /// Refuses further requests, takes every server and drains in a spawned task that
    /// answers `reply` when the snapshot is safe.
    pub(super) fn on_drain(&mut self, reply: RpcReplyPort<Result<()>>) {
        let servers = self.abandon_all();
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let _ = reply.send(drain(&ctx, servers).await);
        });
    }
}

/// Stops the servers, then snapshots `kilo.db` (with its WAL) out of the container.
async fn drain(ctx: &AgentContext, servers: Vec<Arc<dyn ProcessHandle>>) -> Result<()> {
    let grace = ctx.parts.options.stop_grace;
    for server in &servers {
        stop_server(server.as_ref(), grace).await;
    }
    if !snapshot(ctx).await? {
        // Never ran far enough to have a database: its status stays what the start left.
        return Ok(());
    }
    if let Err(e) = ctx
        .parts
        .store
        .set_agent_status(&ctx.spec.id, AgentStatus::Idle)
    {
        tracing::warn!(agent = %ctx.spec.id, error = %e, "recording drained agent");
    }
    ctx.publish(TownEvent::AgentStatusChanged {
        status: AgentStatus::Idle,
    });
    Ok(())
}

impl AgentState {
    /// Before the town pauses: busy (a turn, a start or a probe in flight) answers
    /// `false`; otherwise the `kilo.db` is snapshotted first, so a paused town loses
    /// nothing if the host dies, and the answer is whether that worked.
    pub(super) fn on_prepare_for_pause(&self, reply: RpcReplyPort<bool>) {
        if self.turn.is_some() || !matches!(self.mode, super::Mode::Idle) {
            let _ = reply.send(false);
            return;
        }
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let ok = match snapshot(&ctx).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(agent = %ctx.spec.id, error = %e, "snapshot before pause");
                    false
                }
            };
            let _ = reply.send(ok);
        });
    }

    /// Snapshots the agent's `kilo.db` after a turn, off the request path, so a host crash
    /// followed by the loss of the container loses at most the turn in flight.
    pub(super) fn snapshot_at_turn_boundary(&self) {
        spawn_snapshot(self.ctx.clone());
    }
}

/// Snapshots the agent's `kilo.db` in a spawned task (a turn boundary, an accepted user
/// message); a failure is logged and the next boundary tries again.
pub(super) fn spawn_snapshot(ctx: AgentContext) {
    tokio::spawn(async move {
        if let Err(e) = snapshot(&ctx).await {
            tracing::warn!(agent = %ctx.spec.id, error = %e, "turn-boundary snapshot");
        }
    });
}

/// Snapshots `kilo.db` (with its WAL) out of the container into the state directory —
/// consistently while kilo runs, and not at all when nothing changed since this agent's
/// last snapshot (`take_live`: same content hash) — one snapshot of an agent at a time.
/// An agent with no `kilo.db` yet has nothing to lose: `Ok(false)`.
async fn snapshot(ctx: &AgentContext) -> Result<bool> {
    let mut last = ctx.snapshot_lock.lock().await;
    let taken = take_live(
        ctx.parts.runtime.as_ref(),
        &ctx.parts.town,
        &ctx.spec.id,
        &ctx.layout.kilo_db(),
        &ctx.parts.snapshots,
        last.as_ref(),
    )
    .await;
    let taken = match taken {
        Ok(taken) => taken,
        Err(LiveSnapshotError::DatabaseMissing { .. }) => return Ok(false),
        // The last hash stays: the next boundary compares against what is stored.
        Err(source) => {
            return Err(Error::Snapshot {
                agent: ctx.spec.id.clone(),
                source: Box::new(source),
            })
        }
    };
    *last = Some(*taken.hash());
    if let LiveSnapshot::Taken { info, ms, .. } = &taken {
        tracing::info!(
            town = %ctx.parts.town, agent = %ctx.spec.id, bytes = info.bytes, ms, "kilo.db snapshot taken"
        );
        ctx.publish(TownEvent::SnapshotTaken {
            bytes: info.bytes,
            ms: *ms,
        });
    }
    Ok(true)
}
