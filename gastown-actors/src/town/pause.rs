//! The paused tier between running and stopped: an idle town's container is frozen
//! (every agent snapshotted first; no CPU, memory kept) instead of stopped, and the next
//! request wakes it in tens of milliseconds — a resume and a health probe, the same
//! server and session (`resume_paused`) — instead of a cold start. After
//! `stop_paused_after` paused (30 min by default) the alarm stops it as before. A wake
//! that finds the container gone (removed or killed while frozen) falls back to a cold
//! start from the snapshots (`ARCHITECTURE.md`, *Lifecycle timings*).

use ractor::ActorRef;
use tokio::time::Instant;

use super::{TownMsg, TownState};
use crate::container::ContainerMsg;
use crate::error::{Error, Result};
use crate::events::{StopReason, TownEvent};
use crate::telemetry;

impl TownState {
    /// Whether an idle town pauses rather than stops: the option is on, the runtime can
    /// pause, and no failed stop is waiting for its retry.
    pub(super) fn pauses_when_idle(&self) -> bool {
        self.parts.pause_when_idle && self.parts.runtime.can_pause() && !self.stop_retry
    }

    /// Pauses the idle container in a spawned task that reports [`TownMsg::PauseDone`].
    /// False when there is no container.
    pub(super) fn begin_pause(&mut self, myself: &ActorRef<TownMsg>, quiet_ms: u64) -> bool {
        let Some(container) = self.container.clone() else {
            return false;
        };
        self.pausing_or_waking = true;
        tracing::info!(town = %self.parts.town, quiet_ms, "idle pause");
        let me = myself.clone();
        let town = self.parts.town.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result =
                Error::from_call(container.call(ContainerMsg::Pause, None).await, "container");
            if let Ok(true) = result {
                telemetry::timing(
                    telemetry::CONTAINER_PAUSE_MS,
                    telemetry::Subject::town(&town),
                    started.elapsed().as_millis() as u64,
                );
            }
            let _ = me.cast(TownMsg::PauseDone(result));
        });
        true
    }

    pub(super) fn on_pause_done(&mut self, myself: &ActorRef<TownMsg>, result: Result<bool>) {
        self.pausing_or_waking = false;
        let next = match result {
            Ok(true) => {
                self.paused_since = Some(self.parts.clock.now_ms());
                self.parts.events.publish(None, TownEvent::ContainerPaused);
                if let Some((budget, bytes)) = &self.parts.paused_budget {
                    let me = myself.clone();
                    let evict = Box::new(move || {
                        let _ = me.cast(TownMsg::StopPaused);
                    });
                    budget.admit(self.parts.town.clone(), *bytes, evict);
                }
                // Never the whole paused window: after a wake the alarm must tick on its
                // usual cadence (re-pause, token refresh, work) — the paused branch of a
                // tick only waits out what is left.
                self.parts
                    .stop_paused_after
                    .min(gastown_core::policy::alarm_interval(false))
                    .min(self.parts.idle_stop_after)
            }
            Ok(false) => {
                tracing::debug!(town = %self.parts.town, "an agent is busy: not pausing");
                gastown_core::policy::alarm_interval(false).min(self.parts.idle_stop_after)
            }
            Err(e) => {
                tracing::warn!(town = %self.parts.town, error = %e, "idle pause failed");
                gastown_core::policy::alarm_interval(false)
            }
        };
        self.schedule_tick(myself, next);
        self.replay_parked(myself);
    }

    /// Resumes the paused container for the parked requests (concurrent wakes share it).
    pub(super) fn begin_wake(&mut self, myself: &ActorRef<TownMsg>) {
        if self.pausing_or_waking {
            return;
        }
        let Some(container) = self.container.clone() else {
            self.paused_since = None;
            self.replay_parked(myself);
            return;
        };
        self.pausing_or_waking = true;
        let me = myself.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let resumed = Error::from_call(
                container.call(ContainerMsg::Resume, None).await,
                "container",
            );
            let result = match resumed {
                Ok(()) => Ok(started.elapsed().as_millis() as u64),
                Err(e) => {
                    // Lost while frozen: its actor goes (stopping what it can) before the
                    // parked requests start a new container.
                    let _ = container.stop_and_wait(None, None).await;
                    Err(e)
                }
            };
            let _ = me.cast(TownMsg::WakeDone(result));
        });
    }

    pub(super) fn on_wake_done(&mut self, myself: &ActorRef<TownMsg>, result: Result<u64>) {
        self.pausing_or_waking = false;
        self.leave_paused();
        match result {
            Ok(ms) => {
                telemetry::timing(
                    telemetry::CONTAINER_RESUME_MS,
                    telemetry::Subject::town(&self.parts.town),
                    ms,
                );
                self.parts
                    .events
                    .publish(None, TownEvent::ContainerResumed { ms });
                self.wake_report = Some(ms);
                // A token refresh that fell due while frozen catches up now (its persisted
                // throttle decides), off the wake's path.
                let parts = self.parts.clone();
                tokio::spawn(async move {
                    let now = parts.clock.now_ms();
                    crate::alarm::refresh_on_schedule(&parts, true, now).await;
                });
            }
            Err(e) => {
                tracing::warn!(
                    town = %self.parts.town, error = %e,
                    "the paused container is gone; starting cold from the snapshots"
                );
                self.container = None;
                self.parts.events.publish(
                    None,
                    TownEvent::ContainerStopped {
                        reason: StopReason::Lost,
                    },
                );
            }
        }
        self.replay_parked(myself);
        let _ = myself.cast(TownMsg::WakeReplayed);
    }

    /// The town is no longer paused: it leaves the host's paused-memory budget.
    pub(super) fn leave_paused(&mut self) {
        if self.paused_since.take().is_some() {
            if let Some((budget, _)) = &self.parts.paused_budget {
                budget.release(&self.parts.town);
            }
        }
    }

    /// The budget evicted this paused town: stop it now (drained and snapshotted).
    pub(super) async fn on_stop_paused(&mut self, myself: &ActorRef<TownMsg>) {
        if let Some(since) = self.paused_since {
            let quiet_ms = u64::try_from(self.parts.clock.now_ms() - since).unwrap_or(0);
            self.begin_idle_stop(myself, quiet_ms).await;
        }
    }

    /// Sends the parked requests to this actor again, in their order.
    pub(super) fn replay_parked(&mut self, myself: &ActorRef<TownMsg>) {
        for parked in std::mem::take(&mut self.parked) {
            let _ = myself.cast(parked);
        }
    }
}
