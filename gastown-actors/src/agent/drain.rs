//! Draining an agent: every server it holds stops, then its SDK database (the launcher's
//! `database`, e.g. kilo's `kilo.db`, with its WAL) is snapshotted out of the container into
//! the town's state directory, so nothing the agent wrote is lost when the container goes
//! away (`ARCHITECTURE.md`, *Persistence*). An agent holding a session that is neither in a
//! database where the launcher says nor in a snapshot fails the drain: the container is
//! then kept, not removed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use gastown_core::{AgentStatus, ProcessHandle};
use ractor::{ActorRef, RpcReplyPort};

use super::{AgentMsg, AgentState, Mode};
use crate::context::{AgentContext, StartProgress};
use gastown_core::snapshot::{take_live, LiveSnapshot, LiveSnapshotError};

use crate::error::{Error, Result};
use crate::events::TownEvent;
use crate::phases::{stop_server, AttemptDone};

/// An SDK server process to stop: a running one, or one its sdk phase is still booting.
type Server = Arc<dyn ProcessHandle>;

impl AgentState {
    /// Answers every waiter with [`Error::Stopped`], aborts the attempt in flight and
    /// takes every server this agent holds — running, held by a start in flight, or still
    /// booting — for the caller to stop. The agent is `Draining` afterwards.
    pub(super) fn abandon_all(&mut self) -> Vec<Server> {
        let mut servers = Vec::new();
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Err(Error::Stopped));
        }
        for b in self.boot_waiters.drain(..) {
            let _ = b.send(false);
        }
        if let Mode::Starting(run) = std::mem::replace(&mut self.mode, Mode::Draining) {
            servers.extend(run.abandon());
        }
        servers.extend(self.take_live().map(|l| l.process));
        self.turn = None;
        self.turn_pending.store(false, Ordering::SeqCst);
        servers.extend(self.ctx.booting.lock().take());
        servers
    }

    /// The actor is stopping: abandons everything ([`AgentState::abandon_all`]) and stops
    /// every server, each within the stop grace, so whoever stops the actor tree knows
    /// every SDK server is stopped when it returns.
    pub(super) async fn on_stop(&mut self, _myself: &ActorRef<AgentMsg>) {
        let grace = self.ctx.parts.options.stop_grace;
        for server in self.abandon_all() {
            stop_server(server.as_ref(), grace).await;
        }
    }

    /// A late attempt result (its run was abandoned by a drain, or replaced): frees the
    /// server it started, outside the mailbox.
    pub(super) fn free_late(&self, done: AttemptDone) {
        if let Ok(StartProgress {
            sdk: Some(live), ..
        }) = done.result
        {
            let grace = self.ctx.parts.options.stop_grace;
            tokio::spawn(async move { stop_server(live.process.as_ref(), grace).await });
        }
    }

    /// Refuses further requests, takes every server and drains in a spawned task that
    /// answers `reply` when the snapshot is safe.
    pub(super) fn on_drain(&mut self, reply: RpcReplyPort<Result<()>>) {
        let mut servers = self.abandon_all();
        // An agent that never looked for the server an earlier host left running (a drain
        // right after a restart) takes it now: it is stopped before the snapshot, never
        // copied while it writes.
        let adopt = !std::mem::replace(&mut self.adoption_tried, true);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            if adopt {
                match ctx
                    .parts
                    .runtime
                    .adopt(&ctx.parts.town, ctx.spec.id.as_str())
                    .await
                {
                    Ok(Some(found)) => servers.push(found.handle),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(agent = %ctx.spec.id, error = %e, "drain: looking for a server to adopt")
                    }
                }
            }
            let _ = reply.send(drain(&ctx, servers).await);
        });
    }
}

/// Stops the servers, then snapshots the SDK database (with its WAL) out of the container.
///
/// # Errors
/// [`Error::Snapshot`] when the snapshot fails, and also — with
/// `LiveSnapshotError::DatabaseMissing` — when there is no database but the town store
/// records a session for the agent and no snapshot holds one: that session can only be in
/// the container, somewhere the launcher's `database` does not name, and removing the
/// container would lose it. (With a snapshot, a missing database is an agent that did not
/// get as far as `hydrate` in this container: the snapshot still holds its session.)
async fn drain(ctx: &AgentContext, servers: Vec<Server>) -> Result<()> {
    let grace = ctx.parts.options.stop_grace;
    for server in &servers {
        stop_server(server.as_ref(), grace).await;
    }
    if !snapshot(ctx).await? {
        if let Some(session) = recorded_session(ctx).filter(|_| !has_snapshot(ctx)) {
            let path = ctx.layout.sdk_database(&ctx.parts.launcher)?;
            tracing::error!(
                agent = %ctx.spec.id, %session, %path,
                "drain: the agent holds a session but its SDK database is missing; \
                 keeping the container (does SdkLauncher::database name the server's database?)"
            );
            return Err(Error::Snapshot {
                agent: ctx.spec.id.clone(),
                source: Box::new(LiveSnapshotError::DatabaseMissing {
                    agent: ctx.spec.id.clone(),
                    path,
                }),
            });
        }
        // Never ran far enough to have a database or a session: nothing to lose, and its
        // status stays what the start left.
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
    /// `false`; otherwise the SDK database is snapshotted first, so a paused town loses
    /// nothing if the host dies, and the answer is whether that worked.
    pub(super) fn on_prepare_for_pause(&self, reply: RpcReplyPort<bool>) {
        if self.turn.is_some() || !matches!(self.mode, Mode::Idle) {
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

    /// Snapshots the agent's SDK database after a turn, off the request path, so a host crash
    /// followed by the loss of the container loses at most the turn in flight.
    pub(super) fn snapshot_at_turn_boundary(&self) {
        spawn_snapshot(self.ctx.clone());
    }
}

/// Snapshots the agent's SDK database in a spawned task (a turn boundary, an accepted user
/// message); a failure is logged and the next boundary tries again.
pub(super) fn spawn_snapshot(ctx: AgentContext) {
    tokio::spawn(async move {
        match snapshot(&ctx).await {
            Ok(true) => {}
            // After a turn the server has written its database: if it is not where the
            // launcher says, say so now rather than at the drain.
            Ok(false) => tracing::warn!(
                agent = %ctx.spec.id, database = %ctx.parts.launcher.database,
                "turn-boundary snapshot: no SDK database where the launcher names it"
            ),
            Err(e) => tracing::warn!(agent = %ctx.spec.id, error = %e, "turn-boundary snapshot"),
        }
    });
}

/// Whether the state directory holds a snapshot of the agent (the current one or the
/// previous one, good or bad: `hydrate` restores or reports it).
fn has_snapshot(ctx: &AgentContext) -> bool {
    let snapshots = &ctx.parts.snapshots;
    snapshots.path(&ctx.spec.id).exists() || snapshots.prev_path(&ctx.spec.id).exists()
}

/// The session the town store records for the agent, if any (a store error counts as a
/// session: the drain must not guess that nothing would be lost).
fn recorded_session(ctx: &AgentContext) -> Option<String> {
    match ctx.parts.store.agent(&ctx.spec.id) {
        Ok(record) => record.and_then(|r| r.session_id),
        Err(e) => {
            tracing::warn!(agent = %ctx.spec.id, error = %e, "drain: reading the agent's session");
            Some("(unreadable)".to_owned())
        }
    }
}

/// Snapshots the SDK database (with its WAL) out of the container into the state
/// directory — consistently while the server runs, and not at all when nothing changed
/// since this agent's last snapshot (`take_live`: same content hash) — one snapshot of an
/// agent at a time. No database where the launcher names it: `Ok(false)` (the drain decides
/// whether that loses anything).
async fn snapshot(ctx: &AgentContext) -> Result<bool> {
    let db = ctx.layout.sdk_database(&ctx.parts.launcher)?;
    let mut last = ctx.snapshot_lock.lock().await;
    let taken = take_live(
        ctx.parts.runtime.as_ref(),
        &ctx.parts.town,
        &ctx.spec.id,
        &db,
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
            town = %ctx.parts.town, agent = %ctx.spec.id, bytes = info.bytes, ms, "SDK database snapshot taken"
        );
        ctx.publish(TownEvent::SnapshotTaken {
            bytes: info.bytes,
            ms: *ms,
        });
    }
    Ok(true)
}
