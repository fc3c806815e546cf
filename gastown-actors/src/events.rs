//! What embedders see of a living town: typed [`TownEvent`]s, broadcast to every
//! subscriber of [`TownHandle::events`](crate::TownHandle::events) and kept, the last
//! [`EVENTS_KEPT_PER_AGENT`] per agent, for [`TownHandle::events_since`](crate::TownHandle::events_since).
//!
//! A slow subscriber never blocks the town: the broadcast channel drops what it has not
//! read and hands it a [`TownEvent::Lagged`] notice instead; it can catch up from the
//! buffer with `events_since` and the cursor of the last record it saw.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use gastown_core::{AgentId, AgentStatus};
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::clock::Clock;

/// Events kept per agent (and for the town itself) for `events_since`: 2,000, the size of
/// Kilo Gastown's container event buffer (`ARCHITECTURE.md`, *Lifecycle timings*).
pub const EVENTS_KEPT_PER_AGENT: usize = 2_000;

/// How many events the live channel holds for its slowest subscriber before that one gets
/// a [`TownEvent::Lagged`] notice.
const CHANNEL_CAPACITY: usize = 1_024;

/// Why a container stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// No active work and a quiet mayor for the idle window (`ARCHITECTURE.md`,
    /// *Lifecycle timings*).
    Idle,
    /// [`TownHandle::shutdown`](crate::TownHandle::shutdown).
    Shutdown,
    /// Removed or killed from outside while paused; found out on the wake, which then
    /// starts a new container from the snapshots.
    Lost,
}

/// Something that happened in a town.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TownEvent {
    /// An agent's worker-side status changed (`working` during a turn or a start,
    /// `waiting` for a mayor between turns, `idle` for a worker, `dead` after a failed
    /// start).
    AgentStatusChanged {
        /// The new status.
        status: AgentStatus,
    },
    /// Streamed assistant text: the next piece of a message part.
    TextDelta {
        /// The session.
        session_id: String,
        /// The assistant message.
        message_id: String,
        /// The text added.
        delta: String,
    },
    /// An assistant message finished; `text` is its whole text.
    MessageCompleted {
        /// The session.
        session_id: String,
        /// The message.
        message_id: String,
        /// Its text parts, joined.
        text: String,
    },
    /// A turn failed upstream (the provider answered an error, or none at all).
    SessionError {
        /// The session, when the SDK server named one.
        session_id: Option<String>,
        /// What the SDK server (or the town, for a retry limit or a turn timeout) said.
        message: String,
        /// The provider's HTTP status, when the failure came from one.
        status: Option<u16>,
    },
    /// The town's container was started (`created`) or adopted while running.
    ContainerStarted {
        /// True when this start created it (a cold start).
        created: bool,
    },
    /// The town's container stopped (drained: every agent snapshotted first).
    ContainerStopped {
        /// Why.
        reason: StopReason,
    },
    /// The idle town's container was paused (every agent snapshotted first): frozen, no
    /// CPU, memory kept.
    ContainerPaused,
    /// A request woke the paused container; the resume took `ms` milliseconds.
    ContainerResumed {
        /// The resume's duration, in ms.
        ms: u64,
    },
    /// The alarm decided to stop an idle town: its drain begins.
    IdleStop {
        /// How long the mayor had been quiet, in ms.
        quiet_ms: u64,
    },
    /// The agent's latest `kilo.db` snapshot was bad (kept aside as `kilo.db.bad-<ms>`);
    /// its previous verified snapshot was restored instead.
    SnapshotFallback {
        /// Why the latest was refused.
        reason: String,
    },
    /// An agent's `kilo.db` was snapshotted into the state directory.
    SnapshotTaken {
        /// The snapshot's size in bytes.
        bytes: u64,
        /// How long taking it took, in ms.
        ms: u64,
    },
    /// This subscriber fell behind and missed `missed` events (they are still in the
    /// buffer for `events_since`, up to its limit).
    Lagged {
        /// How many were dropped for this subscriber.
        missed: u64,
    },
}

/// One event with where it comes from and its place in the town's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TownEventRecord {
    /// Increases by one per event of the town, from 1; pass the last one seen to
    /// `events_since` to get what followed.
    pub cursor: u64,
    /// When it happened, ms since the Unix epoch.
    pub at_ms: i64,
    /// The agent it is about; `None` for town-wide events (containers, idle stop).
    pub agent: Option<AgentId>,
    /// What happened.
    pub event: TownEvent,
}

/// The town's event bus: a broadcast channel plus a bounded buffer per agent.
#[derive(Debug)]
pub(crate) struct EventBus {
    /// The live channel, made by the first subscriber: its buffer is
    /// [`CHANNEL_CAPACITY`] slots (32 KiB) allocated up front, and most towns of a
    /// many-town process are never watched. Until then a publish has nobody to reach,
    /// as a send to a channel without receivers reaches nobody.
    tx: Mutex<Option<broadcast::Sender<Arc<TownEventRecord>>>>,
    /// The last [`EVENTS_KEPT_PER_AGENT`] records per agent (`None`: town-wide).
    kept: Mutex<HashMap<Option<AgentId>, VecDeque<Arc<TownEventRecord>>>>,
    next: AtomicU64,
    clock: Clock,
}

impl EventBus {
    pub(crate) fn new(clock: Clock) -> Self {
        Self {
            tx: Mutex::new(None),
            kept: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            clock,
        }
    }

    /// Publishes `event` about `agent` (`None`: the town). Never blocks.
    pub(crate) fn publish(&self, agent: Option<&AgentId>, event: TownEvent) {
        let mut kept = self.kept.lock();
        // The cursor is taken under the lock so buffers stay in cursor order.
        let record = Arc::new(TownEventRecord {
            cursor: self.next.fetch_add(1, Ordering::Relaxed),
            at_ms: self.clock.now_ms(),
            agent: agent.cloned(),
            event,
        });
        let buffer = kept.entry(record.agent.clone()).or_default();
        if buffer.len() == EVENTS_KEPT_PER_AGENT {
            buffer.pop_front();
        }
        buffer.push_back(record.clone());
        drop(kept);
        // No subscriber is not an error.
        if let Some(tx) = &*self.tx.lock() {
            let _ = tx.send(record);
        }
    }

    /// Every kept record with a cursor above `cursor`, in order.
    pub(crate) fn since(&self, cursor: u64) -> Vec<TownEventRecord> {
        let kept = self.kept.lock();
        let mut out: Vec<TownEventRecord> = kept
            .values()
            .flat_map(|b| {
                b.iter()
                    .filter(|r| r.cursor > cursor)
                    .map(|r| (**r).clone())
            })
            .collect();
        out.sort_by_key(|r| r.cursor);
        out
    }

    /// A stream of every record published from now on; a lagging subscriber gets one
    /// [`TownEvent::Lagged`] record (cursor 0) per gap.
    pub(crate) fn subscribe(&self) -> BoxStream<'static, TownEventRecord> {
        let rx = self
            .tx
            .lock()
            .get_or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        let clock = self.clock;
        stream::unfold(rx, move |mut rx| async move {
            match rx.recv().await {
                Ok(record) => Some(((*record).clone(), rx)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let notice = TownEventRecord {
                        cursor: 0,
                        at_ms: clock.now_ms(),
                        agent: None,
                        event: TownEvent::Lagged { missed },
                    };
                    Some((notice, rx))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(n: &str) -> AgentId {
        AgentId::new(n).unwrap()
    }

    #[test]
    fn since_merges_agents_in_cursor_order_and_keeps_the_last_2000_per_agent() {
        let bus = EventBus::new(Clock::new());
        for i in 0..(EVENTS_KEPT_PER_AGENT + 10) {
            let who = if i % 2 == 0 {
                agent("mayor")
            } else {
                agent("p1")
            };
            bus.publish(Some(&who), TownEvent::IdleStop { quiet_ms: i as u64 });
        }
        bus.publish(None, TownEvent::ContainerStarted { created: true });
        let all = bus.since(0);
        assert_eq!(all.len(), EVENTS_KEPT_PER_AGENT + 10 + 1);
        assert!(all.windows(2).all(|w| w[0].cursor < w[1].cursor));
        let later = bus.since(all[all.len() - 2].cursor);
        assert_eq!(later.len(), 1);
        assert_eq!(
            later[0].event,
            TownEvent::ContainerStarted { created: true }
        );

        for _ in 0..EVENTS_KEPT_PER_AGENT {
            bus.publish(Some(&agent("mayor")), TownEvent::IdleStop { quiet_ms: 0 });
        }
        let mayor = bus
            .since(0)
            .into_iter()
            .filter(|r| r.agent == Some(agent("mayor")))
            .count();
        assert_eq!(mayor, EVENTS_KEPT_PER_AGENT);
    }

    #[tokio::test]
    async fn a_slow_subscriber_gets_a_lag_notice_and_never_blocks_publishing() {
        let bus = EventBus::new(Clock::new());
        let mut slow = bus.subscribe();
        // Publishing far past the channel's capacity returns at once.
        for i in 0..(CHANNEL_CAPACITY as u64 + 50) {
            bus.publish(None, TownEvent::IdleStop { quiet_ms: i });
        }
        let first = slow.next().await.unwrap();
        assert_eq!(first.event, TownEvent::Lagged { missed: 50 });
        let next = slow.next().await.unwrap();
        assert_eq!(next.event, TownEvent::IdleStop { quiet_ms: 50 });
    }
}
