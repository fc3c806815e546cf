//! The SDK event watcher: one subscription to a running SDK server's `GET /event` stream
//! per server, for as long as the server runs (the AgentActor aborts it when the server
//! goes). It publishes the session's streamed text and completed messages on the town's
//! bus, stamps the agent's activity, and reports turn boundaries (busy, retry, idle,
//! error) to its AgentActor, which owns the statuses.
//!
//! Kilo's SSE has regressed in upstream releases (`ARCHITECTURE.md`, *SDK server*), so the
//! watcher reconnects with backoff, and when the stream is silent for longer than twice
//! the server's heartbeat (kilo 7.7.9 sends `server.heartbeat` about every 10 s) while a
//! turn is in flight, it polls `GET /session/status` instead of waiting on a dead stream.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use gastown_core::policy::heartbeat::HEARTBEAT_INTERVAL;
use gastown_core::sdk::{SdkEvent, SessionStatus, TurnError};
use ractor::ActorRef;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{AgentMsg, AgentState};
use crate::context::{AgentContext, LiveSdk};
use crate::events::TownEvent;

/// Kilo's heartbeat period (kilo 7.7.9, measured): a silent stream is suspect after twice
/// this.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// First reconnect delay, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Activity is stamped in the town store at most this often (a streamed reply is many
/// events a second; the idle rules read minutes).
const ACTIVITY_EVERY: Duration = Duration::from_secs(1);

/// The recorded type of a synthetic part (text kilo wrote itself, e.g. its snapshot
/// progress part): never streamed, never in the reply.
const SYNTHETIC: &str = "synthetic";
/// The recorded type of a part kilo removed (`message.part.removed`): its text and any
/// late delta are dropped.
const REMOVED: &str = "removed";

/// Watchers alive in this process (a leak shows here; tests read it).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many SDK event watchers run in this process.
pub(crate) fn live_watchers() -> usize {
    LIVE.load(Ordering::SeqCst)
}

/// What the watcher saw of the agent's session, for its AgentActor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TurnSignal {
    /// The session is working on a turn.
    Busy,
    /// The provider failed; the SDK server will retry (`attempt` from 1).
    Retry {
        /// The retry's number.
        attempt: u64,
        /// The provider's message.
        message: String,
    },
    /// The session is idle: a turn in flight ended. `polled` when it was learned from a
    /// status poll (the stream missed the turn's events), so it ends a turn even when its
    /// start was never seen.
    Idle {
        /// Learned from `GET /session/status` rather than the stream.
        polled: bool,
    },
    /// The turn failed upstream.
    Error(TurnError),
}

impl AgentState {
    /// Makes `live` the running server (of `session_id`) and starts its event watcher.
    /// `heartbeat_stamped`: the store got the agent's heartbeat just now (a finished start
    /// writes it), so the watcher's first stamp waits a full [`HEARTBEAT_INTERVAL`].
    pub(super) fn set_live(
        &mut self,
        myself: &ActorRef<AgentMsg>,
        live: LiveSdk,
        session_id: &str,
        heartbeat_stamped: bool,
    ) {
        self.take_live();
        self.watch = Some(spawn(Watcher {
            ctx: self.ctx.clone(),
            live: live.clone(),
            session_id: session_id.to_owned(),
            me: myself.clone(),
            turn_pending: self.turn_pending.clone(),
            parts: BTreeMap::new(),
            roles: BTreeMap::new(),
            part_types: BTreeMap::new(),
            pending: Vec::new(),
            last_stamp: None,
            last_heartbeat: heartbeat_stamped.then(Instant::now),
        }));
        self.live = Some(live);
    }

    /// Takes the running server away, stopping its event watcher with it.
    pub(super) fn take_live(&mut self) -> Option<LiveSdk> {
        if let Some(watch) = self.watch.take() {
            watch.abort();
        }
        self.live.take()
    }
}

/// Spawns `watcher`, the watcher of one server's events.
fn spawn(mut watcher: Watcher) -> AbortHandle {
    tokio::spawn(async move {
        LIVE.fetch_add(1, Ordering::SeqCst);
        let _alive = Alive;
        watcher.run().await
    })
    .abort_handle()
}

/// Decrements [`LIVE`] however the task ends (return, abort, panic).
struct Alive;

impl Drop for Alive {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Watcher {
    ctx: AgentContext,
    live: LiveSdk,
    session_id: String,
    me: ActorRef<AgentMsg>,
    /// Whether a turn is in flight: only then does a silent stream make the watcher poll.
    turn_pending: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Text of the parts of the assistant message being streamed: (message, part) → text.
    parts: BTreeMap<(String, String), String>,
    /// Each message's role, once `message.updated` said it.
    roles: BTreeMap<String, String>,
    /// Each part's type, once `message.part.updated` said it.
    part_types: BTreeMap<(String, String), String>,
    /// Deltas of parts whose message role or part type is not known yet: kilo also
    /// streams progress text (e.g. "⠋ Initializing snapshot…") that is not the reply.
    pending: Vec<(String, String, String)>,
    /// When the agent's activity was last stamped (at most every [`ACTIVITY_EVERY`]).
    last_stamp: Option<Instant>,
    /// When the agent's heartbeat was last stamped (at most every 30 s).
    last_heartbeat: Option<Instant>,
}

impl Watcher {
    async fn run(&mut self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.live.client.events().await {
                Ok(mut stream) => {
                    backoff = FIRST_BACKOFF;
                    loop {
                        match tokio::time::timeout(2 * HEARTBEAT, stream.next()).await {
                            Ok(Some(Ok(event))) => self.on_event(event),
                            Ok(Some(Err(e))) => {
                                tracing::debug!(agent = %self.ctx.spec.id, error = %e, "event stream error");
                                break;
                            }
                            Ok(None) => break,
                            Err(_silent) => {
                                if self.turn_pending.load(Ordering::SeqCst) {
                                    // The stream may be dead mid-turn: ask, then reconnect.
                                    self.poll_status().await;
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(agent = %self.ctx.spec.id, error = %e, "event stream connect failed");
                }
            }
            // A turn may have ended while the stream was down.
            if self.turn_pending.load(Ordering::SeqCst) {
                self.poll_status().await;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// `GET /session/status` leaves idle sessions out: absent means idle.
    async fn poll_status(&mut self) {
        match self.live.client.session_status().await {
            Ok(statuses) => match statuses.get(&self.session_id) {
                None | Some(SessionStatus::Idle) => {
                    self.signal(TurnSignal::Idle { polled: true });
                }
                Some(SessionStatus::Retry {
                    attempt, message, ..
                }) => {
                    self.signal(TurnSignal::Retry {
                        attempt: *attempt,
                        message: message.clone(),
                    });
                }
                Some(_) => {}
            },
            Err(e) => tracing::debug!(agent = %self.ctx.spec.id, error = %e, "status poll failed"),
        }
    }

    fn signal(&self, signal: TurnSignal) {
        let _ = self.me.cast(AgentMsg::Turn(signal));
    }

    fn on_event(&mut self, event: SdkEvent) {
        self.stamp_heartbeat();
        match event.session_id() {
            Some(s) if s != self.session_id => return,
            // Only the session's own events are activity: the server's heartbeats would
            // otherwise keep an idle town up forever.
            Some(_) => self.stamp_activity(),
            None => {}
        }
        match event {
            SdkEvent::SessionStatus { status, .. } => match status {
                SessionStatus::Busy => self.signal(TurnSignal::Busy),
                SessionStatus::Idle => self.signal(TurnSignal::Idle { polled: false }),
                SessionStatus::Retry {
                    attempt, message, ..
                } => self.signal(TurnSignal::Retry { attempt, message }),
                SessionStatus::Other { .. } => {}
            },
            SdkEvent::SessionIdle { .. } => self.signal(TurnSignal::Idle { polled: false }),
            SdkEvent::SessionError { error, .. } => self.signal(TurnSignal::Error(error)),
            SdkEvent::MessagePartDelta {
                message_id,
                part_id,
                field,
                delta,
                ..
            } if field == "text" => {
                self.pending.push((message_id, part_id, delta));
                self.flush_deltas();
            }
            SdkEvent::MessagePartUpdated {
                message_id,
                part_id,
                part_type,
                text,
                synthetic,
                ..
            } => {
                // kilo's own text (its snapshot progress part) is not the reply.
                let part_type = if synthetic { SYNTHETIC } else { &part_type };
                self.part_types
                    .insert((message_id.clone(), part_id.clone()), part_type.to_owned());
                if let (true, Some(text)) = (part_type == "text", text) {
                    self.parts.insert((message_id, part_id), text);
                }
                self.flush_deltas();
            }
            SdkEvent::MessagePartRemoved {
                message_id,
                part_id,
                ..
            } => {
                let key = (message_id, part_id);
                self.parts.remove(&key);
                self.pending.retain(|(m, p, _)| (m, p) != (&key.0, &key.1));
                self.part_types.insert(key, REMOVED.to_owned());
            }
            SdkEvent::MessageUpdated {
                message_id,
                role,
                completed,
                ..
            } => {
                self.roles.insert(message_id.clone(), role.clone());
                self.flush_deltas();
                if !completed {
                    return;
                }
                if role != "assistant" {
                    self.part_types.retain(|(m, _), _| *m != message_id);
                    self.roles.remove(&message_id);
                    return;
                }
                let text: Vec<String> = self
                    .parts
                    .iter()
                    .filter(|((m, _), _)| *m == message_id)
                    .map(|(_, t)| t.clone())
                    .collect();
                // The message is done: forget what was kept to assemble it.
                self.parts.retain(|(m, _), _| *m != message_id);
                self.part_types.retain(|(m, _), _| *m != message_id);
                self.roles.remove(&message_id);
                self.ctx.publish(TownEvent::MessageCompleted {
                    session_id: self.session_id.clone(),
                    message_id,
                    text: text.concat(),
                });
            }
            _ => {}
        }
    }

    /// Publishes the pending deltas that belong to a text part of an assistant message,
    /// drops those known not to, and keeps the rest until their message and part are
    /// known.
    fn flush_deltas(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for (message_id, part_id, delta) in pending {
            let role = self.roles.get(&message_id).map(String::as_str);
            let kind = self
                .part_types
                .get(&(message_id.clone(), part_id.clone()))
                .map(String::as_str);
            match (role, kind) {
                (Some("assistant"), Some("text")) => {
                    self.parts
                        .entry((message_id.clone(), part_id))
                        .or_default()
                        .push_str(&delta);
                    self.ctx.publish(TownEvent::TextDelta {
                        session_id: self.session_id.clone(),
                        message_id,
                        delta,
                    });
                }
                (Some(_), Some(_)) => {}
                (Some(r), None) if r != "assistant" => {}
                (None, Some(k)) if k != "text" => {}
                _ => self.pending.push((message_id, part_id, delta)),
            }
        }
    }

    /// Any event, the server's own heartbeats included, shows the SDK server alive: the
    /// agent's heartbeat is stamped at most every [`HEARTBEAT_INTERVAL`] (30 s). The
    /// reconciler reads it: a heartbeat older than 90 s marks the agent stale (Kilo
    /// Gastown PR #3151; `ARCHITECTURE.md`, *Lifecycle timings*).
    fn stamp_heartbeat(&mut self) {
        if self
            .last_heartbeat
            .is_some_and(|t| t.elapsed() < HEARTBEAT_INTERVAL)
        {
            return;
        }
        self.last_heartbeat = Some(Instant::now());
        let now = self.ctx.parts.clock.now_ms();
        if let Err(e) = self.ctx.parts.store.touch_heartbeat(&self.ctx.spec.id, now) {
            tracing::debug!(agent = %self.ctx.spec.id, error = %e, "stamping the heartbeat");
        }
    }

    fn stamp_activity(&mut self) {
        if self
            .last_stamp
            .is_some_and(|t| t.elapsed() < ACTIVITY_EVERY)
        {
            return;
        }
        self.last_stamp = Some(Instant::now());
        let now = self.ctx.parts.clock.now_ms();
        if let Err(e) = self.ctx.parts.store.touch_activity(&self.ctx.spec.id, now) {
            tracing::debug!(agent = %self.ctx.spec.id, error = %e, "stamping activity");
        }
    }
}
