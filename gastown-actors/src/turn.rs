//! A real turn of the mayor: [`MayorTurn`], returned by
//! [`TownHandle::prompt_mayor`](crate::TownHandle::prompt_mayor) once the SDK server
//! accepted the prompt, and [`MayorReply`], what it resolves to.
//!
//! The turn follows the town's event bus (subscribed before the prompt was sent, so no
//! piece of the reply is missed): streamed text arrives as [`TownEvent::TextDelta`], a
//! failure upstream as [`TownEvent::SessionError`], and the mayor going back to `waiting`
//! ends the turn.

use std::fmt;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use gastown_core::sdk::{last_assistant_text, SdkApi};
use gastown_core::{AgentId, AgentStatus};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::events::{TownEvent, TownEventRecord};

/// The mayor's answer to one prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MayorReply {
    /// The session the turn ran in.
    pub session_id: String,
    /// The assistant message's id, when the stream named it.
    pub message_id: Option<String>,
    /// The reply's text.
    pub text: String,
    /// From the prompt's acceptance to the turn's end, in ms.
    pub turn_ms: u64,
}

/// A turn in flight. Await [`MayorTurn::reply`] for the whole answer, or read the streamed
/// text piece by piece with [`MayorTurn::next_delta`] first.
pub struct MayorTurn {
    agent: AgentId,
    session_id: String,
    started: Instant,
    events: BoxStream<'static, TownEventRecord>,
    /// Reads the final text when the stream's pieces were not all seen (a lag).
    client: Arc<dyn SdkApi>,
    text: String,
    message_id: Option<String>,
    /// The turn's outcome once seen: `Ok(())` ended, `Err` failed upstream.
    ended: Option<std::result::Result<(), (String, Option<u16>)>>,
    /// The first failure reported for this turn, returned when it ends.
    failure: Option<(String, Option<u16>)>,
    /// The stream lagged: the collected text may miss pieces.
    lagged: bool,
    /// `working` was seen: a later `waiting`/`idle` ends this turn (an earlier one does
    /// not).
    started_seen: bool,
}

impl fmt::Debug for MayorTurn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MayorTurn")
            .field("agent", &self.agent)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl MayorTurn {
    pub(crate) fn new(
        agent: AgentId,
        session_id: String,
        events: BoxStream<'static, TownEventRecord>,
        client: Arc<dyn SdkApi>,
    ) -> Self {
        Self {
            agent,
            session_id,
            started: Instant::now(),
            events,
            client,
            text: String::new(),
            message_id: None,
            ended: None,
            failure: None,
            lagged: false,
            started_seen: false,
        }
    }

    /// The session the turn runs in.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The next streamed piece of the reply's text, or `None` once the turn has ended
    /// (then [`MayorTurn::reply`] returns at once).
    pub async fn next_delta(&mut self) -> Option<String> {
        while self.ended.is_none() {
            let record = self.events.next().await?;
            if let Some(delta) = self.absorb(record) {
                return Some(delta);
            }
        }
        None
    }

    /// Waits for the turn's end and returns the reply.
    ///
    /// # Errors
    /// [`Error::TurnFailed`] when the turn failed upstream (the provider answered an
    /// error, kept failing past the town's retry limit, or ran past the turn timeout); the
    /// mayor is `waiting` again. [`Error::Stopped`] when the town stopped first.
    /// [`Error::Core`] when the final text could not be read back.
    pub async fn reply(mut self) -> Result<MayorReply> {
        while self.ended.is_none() {
            let Some(record) = self.events.next().await else {
                return Err(Error::Stopped);
            };
            self.absorb(record);
        }
        let turn_ms = self.started.elapsed().as_millis() as u64;
        match self.ended.take() {
            Some(Err((message, status))) => Err(Error::TurnFailed {
                agent: self.agent,
                session_id: self.session_id,
                message,
                status,
            }),
            _ => {
                if self.text.is_empty() || self.lagged {
                    let messages = self.client.messages(&self.session_id).await?;
                    self.text = last_assistant_text(&messages)
                        .unwrap_or_default()
                        .to_owned();
                }
                Ok(MayorReply {
                    session_id: self.session_id,
                    message_id: self.message_id,
                    text: self.text,
                    turn_ms,
                })
            }
        }
    }

    /// Takes one event in; returns a text piece of this turn.
    fn absorb(&mut self, record: TownEventRecord) -> Option<String> {
        if let TownEvent::Lagged { .. } = record.event {
            self.lagged = true;
            return None;
        }
        if record.agent.as_ref() != Some(&self.agent) {
            return None;
        }
        match record.event {
            TownEvent::TextDelta {
                session_id,
                message_id,
                delta,
            } if session_id == self.session_id => {
                self.message_id = Some(message_id);
                self.text.push_str(&delta);
                Some(delta)
            }
            TownEvent::MessageCompleted {
                session_id,
                message_id,
                text,
            } if session_id == self.session_id => {
                self.message_id = Some(message_id);
                if !text.is_empty() {
                    self.text = text;
                }
                None
            }
            TownEvent::SessionError {
                message, status, ..
            } => {
                // The turn is over once the mayor rests again (the town aborts it first).
                self.failure.get_or_insert((message, status));
                None
            }
            TownEvent::AgentStatusChanged { status } => {
                match status {
                    AgentStatus::Working => self.started_seen = true,
                    AgentStatus::Waiting | AgentStatus::Idle | AgentStatus::Dead
                        if self.started_seen && self.ended.is_none() =>
                    {
                        self.ended = Some(match self.failure.take() {
                            Some(failure) => Err(failure),
                            None => Ok(()),
                        });
                    }
                    _ => {}
                }
                None
            }
            _ => None,
        }
    }
}
