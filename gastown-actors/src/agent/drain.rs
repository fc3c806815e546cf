//! Draining an agent: every server it holds stops, then its `kilo.db` (with its WAL) is
//! snapshotted out of the container into the town's state directory, so nothing the agent
//! wrote is lost when the container goes away (`ARCHITECTURE.md`, *Persistence*).

use std::sync::Arc;

use gastown_core::{AgentStatus, ProcessHandle};
use ractor::RpcReplyPort;

use super::AgentState;
use crate::context::AgentContext;
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

/// Snapshots `kilo.db` (with its WAL) out of the container into the state directory,
/// one snapshot of an agent at a time. An agent with no `kilo.db` yet has nothing to
/// lose: `Ok(false)`.
async fn snapshot(ctx: &AgentContext) -> Result<bool> {
    let _one_at_a_time = ctx.snapshot_lock.lock().await;
    let rt = &ctx.parts.runtime;
    let town = &ctx.parts.town;
    let db_path = ctx.layout.kilo_db();
    let db = match rt.get_file(town, &db_path).await {
        Ok(db) => db,
        Err(gastown_core::Error::FileNotFound { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let wal_path = db_path
        .parent()
        .expect("kilo.db has a parent")
        .join("kilo.db-wal")?;
    let wal = match rt.get_file(town, &wal_path).await {
        Ok(wal) => Some(wal),
        Err(gastown_core::Error::FileNotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let started = tokio::time::Instant::now();
    let snapshots = ctx.parts.snapshots.clone();
    let agent = ctx.spec.id.clone();
    let info =
        tokio::task::spawn_blocking(move || snapshots.take_from_bytes(&agent, &db, wal.as_deref()))
            .await
            .map_err(|source| Error::Task {
                context: "taking a kilo.db snapshot",
                source,
            })??;
    tracing::info!(
        town = %town, agent = %ctx.spec.id, bytes = info.bytes, "kilo.db snapshot taken"
    );
    ctx.publish(TownEvent::SnapshotTaken {
        bytes: info.bytes,
        ms: started.elapsed().as_millis() as u64,
    });
    Ok(true)
}
