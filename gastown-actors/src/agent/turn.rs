//! The agent's session: a user message recorded without a turn (`noReply`), and real
//! turns: a prompt sent to the agent's session (`POST /session/{id}/prompt_async`),
//! the statuses it moves through (`working` during the turn; `waiting` for a mayor and
//! `idle` for a worker after it), and the town's limits on a turn that fails upstream:
//! kilo 7.7.9 retries a provider's 5xx and 429 answers without end, so after
//! [`TurnOptions::max_retries`](crate::TurnOptions::max_retries) retries, or past
//! [`TurnOptions::timeout`](crate::TurnOptions::timeout), the town aborts the turn and
//! reports a session error.

use std::sync::atomic::Ordering;

use gastown_core::AgentStatus;
use ractor::{ActorRef, RpcReplyPort};
use tokio::time::Instant;

use super::watch::TurnSignal;
use super::{AgentMsg, AgentState, SessionRequest};
use crate::error::{Error, Result};
use crate::events::TownEvent;
use crate::turn::MayorTurn;

/// How long a failed turn may take to go idle before the town ends it anyway.
const ABORT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The turn in flight.
#[derive(Debug)]
pub(super) struct Turn {
    /// Tells a late timeout of an earlier turn apart.
    id: u64,
    /// The stream showed the turn working: a later idle ends it (an earlier one, a
    /// trailing idle of the previous turn, does not).
    seen_busy: bool,
    /// A failure was reported (error, retry limit, timeout): the next idle ends it.
    failed: bool,
    /// When the prompt was accepted.
    started: Instant,
}

impl AgentState {
    /// A request for the session: a recorded user message or a real turn.
    pub(super) fn on_session(&mut self, myself: &ActorRef<AgentMsg>, request: SessionRequest) {
        match request {
            SessionRequest::NoReply { text, reply } => self.on_send(text, reply),
            SessionRequest::Prompt { text, reply } => self.on_prompt(myself, text, reply),
        }
    }

    /// Records `text` as a user message without an LLM turn (`noReply`), replying with its
    /// id; the SDK round trip runs in a spawned task. An accepted message is activity and a
    /// turn boundary (the agent's database is snapshotted).
    fn on_send(&self, text: String, reply: RpcReplyPort<Result<String>>) {
        let (Some(live), Some(session_id)) = (&self.live, &self.session_id) else {
            let _ = reply.send(Err(Error::NotRunning {
                agent: self.ctx.spec.id.clone(),
            }));
            return;
        };
        let client = live.client.clone();
        let session_id = session_id.clone();
        let model = gastown_core::ModelRef::parse(&self.ctx.spec.model);
        let store = self.ctx.parts.store.clone();
        let id = self.ctx.spec.id.clone();
        let clock = self.ctx.parts.clock;
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let result = async {
                let model = model?;
                let message_id = client.send_no_reply(&session_id, &model, &text).await?;
                // A user message is mayor activity (the idle-stop rule reads it).
                store.touch_activity(&id, clock.now_ms())?;
                Ok::<_, gastown_core::Error>(message_id)
            }
            .await;
            if result.is_ok() {
                // An accepted user message is a turn boundary too.
                super::drain::spawn_snapshot(ctx);
            }
            let _ = reply.send(result.map_err(Error::Core));
        });
    }

    /// Sends `text` as a real turn, replying with the [`MayorTurn`] once the SDK server
    /// accepted it; the send runs in a spawned task.
    pub(super) fn on_prompt(
        &mut self,
        myself: &ActorRef<AgentMsg>,
        text: String,
        reply: RpcReplyPort<Result<MayorTurn>>,
    ) {
        let (Some(client), Some(session_id)) = (
            self.live.as_ref().map(|l| l.client.clone()),
            self.session_id.clone(),
        ) else {
            let _ = reply.send(Err(Error::NotRunning {
                agent: self.ctx.spec.id.clone(),
            }));
            return;
        };
        if self.turn.is_some() {
            let _ = reply.send(Err(Error::TurnInFlight {
                agent: self.ctx.spec.id.clone(),
            }));
            return;
        }
        let model = match gastown_core::ModelRef::parse(&self.ctx.spec.model) {
            Ok(model) => model,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        // Subscribed before the prompt leaves, so the turn sees every piece of it.
        let turn = MayorTurn::new(
            self.ctx.spec.id.clone(),
            session_id.clone(),
            self.ctx.parts.events.subscribe(),
            client.clone(),
        );
        let id = self.next_id();
        self.turn = Some(Turn {
            id,
            seen_busy: false,
            failed: false,
            started: Instant::now(),
        });
        self.turn_pending.store(true, Ordering::SeqCst);
        self.set_status(AgentStatus::Working);
        self.touch_activity();
        let timeout = self.ctx.parts.turns.timeout;
        myself.send_after(timeout, move || AgentMsg::TurnTimeout { turn_id: id });
        let me = myself.clone();
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            match client.prompt_async(&session_id, &model, &text).await {
                Ok(()) => {
                    // The accepted user message is kept even if the turn is lost.
                    super::drain::spawn_snapshot(ctx);
                    let _ = reply.send(Ok(turn));
                }
                Err(e) => {
                    // Never accepted: no turn runs.
                    let _ = me.cast(AgentMsg::TurnRefused { turn_id: id });
                    let _ = reply.send(Err(e.into()));
                }
            }
        });
    }

    /// What the SDK event watcher saw.
    pub(super) fn on_turn_signal(&mut self, myself: &ActorRef<AgentMsg>, signal: TurnSignal) {
        let Some(turn) = &mut self.turn else {
            return;
        };
        match signal {
            TurnSignal::Busy => turn.seen_busy = true,
            TurnSignal::Retry { attempt, message } => {
                turn.seen_busy = true;
                let limit = self.ctx.parts.turns.max_retries;
                if attempt > u64::from(limit) && !turn.failed {
                    let message = format!(
                        "the provider failed {attempt} times (limit {limit}); last: {message}"
                    );
                    self.fail_turn(myself, message, None);
                }
            }
            TurnSignal::Error(error) => {
                if !turn.failed {
                    turn.failed = true;
                    let turn_id = turn.id;
                    myself.send_after(ABORT_GRACE, move || AgentMsg::TurnTimeout { turn_id });
                    let message = if error.message.is_empty() {
                        error.name
                    } else {
                        error.message
                    };
                    self.publish_turn_error(message, error.status);
                }
            }
            TurnSignal::Idle { polled } => {
                if turn.seen_busy || turn.failed || polled {
                    self.end_turn();
                }
            }
        }
    }

    /// The turn ran past the town's timeout: abort it. A turn that already failed and
    /// still did not end (the SDK server never went idle after the abort) ends now.
    pub(super) fn on_turn_timeout(&mut self, myself: &ActorRef<AgentMsg>, turn_id: u64) {
        let Some(turn) = &self.turn else {
            return;
        };
        if turn.id != turn_id {
            return;
        }
        if turn.failed {
            self.end_turn();
        } else {
            let after = self.ctx.parts.turns.timeout.as_millis();
            self.fail_turn(
                myself,
                format!("the turn ran past its timeout ({after} ms)"),
                None,
            );
        }
    }

    /// The prompt was never accepted: back to the status before it.
    pub(super) fn on_turn_refused(&mut self, turn_id: u64) {
        if self.turn.as_ref().is_some_and(|t| t.id == turn_id) {
            self.turn = None;
            self.turn_pending.store(false, Ordering::SeqCst);
            self.set_status(self.resting_status());
        }
    }

    /// Reports the failure and aborts the turn; the idle that follows the abort ends it,
    /// or, should none come, the end of [`ABORT_GRACE`].
    fn fail_turn(&mut self, myself: &ActorRef<AgentMsg>, message: String, status: Option<u16>) {
        if let Some(turn) = &mut self.turn {
            turn.failed = true;
            let turn_id = turn.id;
            myself.send_after(ABORT_GRACE, move || AgentMsg::TurnTimeout { turn_id });
        }
        self.publish_turn_error(message, status);
        if let (Some(live), Some(session_id)) = (&self.live, &self.session_id) {
            let client = live.client.clone();
            let session_id = session_id.clone();
            tokio::spawn(async move {
                if let Err(e) = client.abort(&session_id).await {
                    tracing::warn!(session = %session_id, error = %e, "aborting a failed turn");
                }
            });
        }
    }

    fn publish_turn_error(&self, message: String, status: Option<u16>) {
        tracing::warn!(agent = %self.ctx.spec.id, %message, "turn failed");
        self.ctx.publish(TownEvent::SessionError {
            session_id: self.session_id.clone(),
            message,
            status,
        });
    }

    /// The turn is over: the agent rests, its activity is stamped, and its `kilo.db` is
    /// snapshotted at the turn boundary.
    fn end_turn(&mut self) {
        let Some(turn) = self.turn.take() else {
            return;
        };
        self.turn_pending.store(false, Ordering::SeqCst);
        tracing::debug!(
            agent = %self.ctx.spec.id, turn_ms = turn.started.elapsed().as_millis() as u64,
            failed = turn.failed, "turn ended"
        );
        self.touch_activity();
        self.set_status(self.resting_status());
        self.snapshot_at_turn_boundary();
        super::work::spawn_work_check(&self.ctx);
    }
}
