//! The TownActor's alarm and idle stop: each tick runs in a task of its own and reports a
//! [`TickPlan`]; an idle stop drains the container in a spawned task while requests wait,
//! and the next request wakes the town with a new container and the same sessions
//! (`ARCHITECTURE.md`, *Lifecycle timings*).

use std::time::Duration;

use gastown_core::policy::alarm_interval;
use ractor::rpc::CallResult;
use ractor::ActorRef;

use super::{TownMsg, TownState};
use crate::alarm::{self, TickPlan};
use crate::container::ContainerMsg;
use crate::error::{Error, Result};
use crate::events::{StopReason, TownEvent};

/// How soon the alarm ticks after new work (a sling, a worker's exit): soon enough that
/// the reconciler sees it within a second, not at the end of a 300 s idle cadence.
const HURRY: Duration = Duration::from_secs(1);

/// The alarm's one pending timer: ractor's `send_after` cannot be cancelled, so each
/// timer carries a generation and only the newest one's tick runs.
#[derive(Debug, Default)]
pub(crate) struct AlarmTimer {
    /// The generation of the newest timer.
    pub(super) generation: u64,
    /// When it fires; `None` while a tick runs (its `TickDone` schedules the next).
    pub(super) due: Option<tokio::time::Instant>,
    /// Work arrived while a tick ran: the next one comes after [`HURRY`].
    hurry: bool,
}

impl TownState {
    /// Arms the alarm to tick after `after`, replacing the pending timer.
    pub(super) fn schedule_tick(&mut self, myself: &ActorRef<TownMsg>, after: Duration) {
        let after = if std::mem::take(&mut self.alarm.hurry) {
            after.min(HURRY)
        } else {
            after
        };
        self.alarm.generation += 1;
        self.alarm.due = Some(tokio::time::Instant::now() + after);
        let generation = self.alarm.generation;
        myself.send_after(after, move || TownMsg::Tick(generation));
    }

    /// Brings the next tick forward to within [`HURRY`] (new work for the reconciler).
    pub(super) fn hurry_tick(&mut self, myself: &ActorRef<TownMsg>) {
        match self.alarm.due {
            Some(due) if due > tokio::time::Instant::now() + HURRY => {
                self.schedule_tick(myself, HURRY)
            }
            Some(_) => {}
            None => self.alarm.hurry = true,
        }
    }

    pub(super) fn on_tick(&mut self, myself: &ActorRef<TownMsg>) {
        if self.shutting_down || self.idle_stopping {
            // Shutdown ends the alarm; an idle stop restarts it when done.
            return;
        }
        if self.pausing_or_waking {
            // Never probe or refresh into a container being frozen or thawed.
            self.schedule_tick(myself, Duration::from_secs(1));
            return;
        }
        if let Some(since) = self.paused_since {
            // Paused: no probe, no refresh (it would fail or wake it); only the stop
            // when the paused window ends. The refresh catches up on the first tick after
            // a wake.
            let now = self.parts.clock.now_ms();
            let due = since + self.parts.stop_paused_after.as_millis() as i64;
            if now >= due {
                let _ = myself.cast(TownMsg::TickDone(TickPlan {
                    active: false,
                    next_in: alarm_interval(false),
                    stop_idle: Some(u64::try_from(now - since).unwrap_or(0)),
                    effects: Vec::new(),
                }));
            } else {
                let wait = Duration::from_millis((due - now) as u64).min(alarm_interval(false));
                self.schedule_tick(myself, wait);
            }
            return;
        }
        let parts = self.parts.clone();
        let container = self.container.clone();
        let retry_stop = self.stop_retry;
        let me = myself.clone();
        tokio::spawn(async move {
            // In a task of its own: a tick that panics costs one tick, not the alarm.
            let plan =
                tokio::spawn(async move { alarm::tick(&parts, container, retry_stop).await });
            let plan = plan.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "alarm tick failed; keeping the alarm");
                TickPlan::fallback()
            });
            let _ = me.cast(TownMsg::TickDone(plan));
        });
    }

    pub(super) async fn on_tick_done(&mut self, myself: &ActorRef<TownMsg>, mut plan: TickPlan) {
        if self.shutting_down {
            return;
        }
        self.on_effects(myself, std::mem::take(&mut plan.effects));
        match plan.stop_idle {
            Some(quiet_ms)
                if self.paused_since.is_none()
                    && self.pauses_when_idle()
                    && self.begin_pause(myself, quiet_ms) => {}
            Some(quiet_ms) if self.begin_idle_stop(myself, quiet_ms).await => {}
            _ => {
                self.schedule_tick(myself, plan.next_in);
            }
        }
    }

    /// Drains and stops the idle town's container in a spawned task that reports
    /// [`TownMsg::IdleStopDone`]. False when there is no container to stop.
    pub(super) async fn begin_idle_stop(
        &mut self,
        myself: &ActorRef<TownMsg>,
        quiet_ms: u64,
    ) -> bool {
        if self.container.is_none() && self.stop_retry {
            // A retry: a fresh ContainerActor drains what the failed stop left (its drain
            // covers every registered agent) without starting anything.
            if let Err(e) = self.container(myself).await {
                tracing::warn!(town = %self.parts.town, error = %e, "idle stop retry");
            }
        }
        let Some(container) = self.container.take() else {
            return false;
        };
        // A paused container is thawed first: the drain stops its servers and reads files.
        let resume_first = self.paused_since.is_some();
        self.leave_paused();
        self.idle_stopping = true;
        tracing::info!(town = %self.parts.town, quiet_ms, "idle stop");
        self.parts
            .events
            .publish(None, TownEvent::IdleStop { quiet_ms });
        let me = myself.clone();
        tokio::spawn(async move {
            if resume_first {
                if let Ok(CallResult::Success(Err(e))) =
                    container.call(ContainerMsg::Resume, None).await
                {
                    tracing::warn!(error = %e, "resuming the paused container to stop it");
                }
            }
            let drained = container
                .call(
                    |reply| ContainerMsg::Drain {
                        reason: StopReason::Idle,
                        reply,
                    },
                    None,
                )
                .await;
            let result = Error::from_call(drained, "container");
            let _ = container.stop_and_wait(None, None).await;
            let _ = me.cast(TownMsg::IdleStopDone(result));
        });
        true
    }

    pub(super) fn on_idle_stop_done(&mut self, myself: &ActorRef<TownMsg>, result: Result<()>) {
        self.idle_stopping = false;
        self.stop_retry = result.is_err();
        if let Err(e) = result {
            // Nothing is lost (the container is stopped but kept); the persisted attempt
            // time throttles the retry to a later tick.
            tracing::warn!(town = %self.parts.town, error = %e, "idle stop failed");
        }
        self.replay_parked(myself);
        self.schedule_tick(myself, alarm_interval(false));
    }
}
