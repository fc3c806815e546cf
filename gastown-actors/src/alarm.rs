//! The town's periodic alarm (`ARCHITECTURE.md`, *Lifecycle timings*): every 5 s with
//! active work, every 300 s without. Each tick reads the town store and:
//!
//! - probes the agents' health, only with active work (a waiting mayor is not active
//!   work), so an idle town's container gets no request between ticks but the hourly token
//!   refresh;
//! - sends a live container-token refresh when the container is known warm and the
//!   persisted hourly throttle allows it — never on a cold start, which mints and passes
//!   the token instead; credentials are refreshed on their own persisted schedule;
//! - runs the reconciler (`reconcile.rs`): queued events, due retries, idle exits;
//! - decides the idle stop: no active work and the mayor quiet for the town's window
//!   (5 min by default, Kilo Gastown PR #3113), at most one attempt per 2 min.
//!
//! A tick runs in a task of its own; one that panics or errors is logged and the alarm
//! carries on at the idle cadence.

use std::sync::Arc;
use std::time::SystemTime;

use std::time::Duration;

use gastown_core::policy::idle_stop::IDLE_STOP_THROTTLE;
use gastown_core::policy::{
    alarm_interval, has_active_work, should_probe_health, should_refresh_token,
    should_stop_idle_container_after, IdleStopInput, TokenRefreshInput,
};
use gastown_core::store::town_view;
use gastown_core::token::{
    CONTAINER_TOKEN_PATH, TOKEN_EXPIRES_KEY, TOKEN_REFRESHED_KEY, TOKEN_TTL,
};
use gastown_core::{AgentId, ContainerPath, ContainerStatus, Result, Role};
use ractor::rpc::CallResult;
use ractor::ActorRef;
use tokio::time::Instant;

use crate::container::ContainerMsg;
use crate::context::TownParts;
use crate::telemetry;

/// The id a container-wide token names as its agent.
const CONTAINER_AGENT: &str = "container";

/// Town store time key: when the alarm last attempted an idle stop (ms), persisted before
/// the stop so the throttle survives a restart.
pub(crate) const IDLE_STOP_ATTEMPT_KEY: &str = "idle_stop_attempt_ms";

/// What a tick decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TickPlan {
    /// The town has active work (5 s cadence, health probes).
    pub(crate) active: bool,
    /// When the next tick is due: the cadence, or sooner when the mayor's quiet window
    /// (or the idle-stop throttle) ends first, so an idle stop happens when it is due.
    pub(crate) next_in: Duration,
    /// Stop the idle container now; the mayor has been quiet this long (ms).
    pub(crate) stop_idle: Option<u64>,
    /// What the reconciler asks of the actors (dispatches, workers' exits).
    pub(crate) effects: Vec<gastown_core::reconciler::Effect>,
}

impl TickPlan {
    /// The plan of a tick that failed: nothing to do, the idle cadence.
    pub(crate) fn fallback() -> Self {
        Self {
            active: false,
            next_in: alarm_interval(false),
            stop_idle: None,
            effects: Vec::new(),
        }
    }
}

/// One alarm tick: reads the town store, probes the agents' health only with active work,
/// refreshes the token and credentials on their throttles, and decides the idle stop.
///
/// `retry_stop`: an earlier idle stop failed and no request has woken the town since; the
/// container may still be there (stopped, or running without servers), so it counts as
/// present for the stop decision and the drain is tried again.
pub(crate) async fn tick(
    parts: &TownParts,
    container: Option<ActorRef<ContainerMsg>>,
    retry_stop: bool,
) -> TickPlan {
    let now = parts.clock.now_ms();
    // The reconciler first, so the activity rules below see this tick's outcome.
    let reconciled = crate::reconcile::run(&parts.store, parts.idle_exit, now, false)
        .unwrap_or_else(|e| {
            tracing::warn!(town = %parts.town, error = %e, "alarm: reconciler");
            Default::default()
        });
    let mut effects = reconciled.effects;
    let (agents, beads) = match (parts.store.agents(), parts.store.beads()) {
        (Ok(agents), Ok(beads)) => (agents, beads),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(town = %parts.town, error = %e, "alarm: reading the town store");
            return TickPlan::fallback();
        }
    };
    let active = has_active_work(&town_view(&agents, &beads), now);
    let warm = match &container {
        Some(c) => matches!(
            c.call(ContainerMsg::IsWarm, None).await,
            Ok(CallResult::Success(true))
        ),
        None => false,
    };
    let left_over = retry_stop
        && container.is_none()
        && matches!(parts.runtime.status(&parts.town).await, Ok(s) if s != ContainerStatus::Absent);
    // Each probe resets nothing here, but costs the container a request: only while
    // someone is working (`ARCHITECTURE.md`, *Lifecycle timings*).
    if warm && should_probe_health(active) {
        if let Some(c) = &container {
            let _ = c.cast(ContainerMsg::HealthCheck);
        }
    }
    refresh_on_schedule(parts, warm, now).await;

    let mayor = agents.iter().find(|a| a.role == Role::Mayor);
    let last_stop_attempt_ms = parts.store.time_get(IDLE_STOP_ATTEMPT_KEY).ok().flatten();
    let input = IdleStopInput {
        active_work: active,
        mayor_status: mayor.map(|m| m.status),
        mayor_last_activity_ms: mayor.and_then(|m| m.last_activity_ms),
        container_running_healthy: warm || left_over,
        last_stop_attempt_ms,
    };
    let quiet = parts.idle_stop_after;
    // Never sleep past the quiet window: with a short window (tests, eager embedders) the
    // stop is due well before the idle cadence's next tick.
    let mut next_in = alarm_interval(active).min(quiet.max(Duration::from_secs(1)));
    if let Some(due) = reconciled.next_due {
        next_in = next_in.min(due.max(Duration::from_secs(1)));
    }
    let mut stop_idle = None;
    if should_stop_idle_container_after(input, quiet, now) {
        // Persisted first: a crash mid-stop still throttles the next attempt.
        if let Err(e) = parts.store.time_set(IDLE_STOP_ATTEMPT_KEY, now) {
            tracing::warn!(town = %parts.town, error = %e, "alarm: recording the idle stop");
        }
        let since = input.mayor_last_activity_ms.unwrap_or(now);
        stop_idle = Some(u64::try_from(now - since).unwrap_or(0));
        // The container drains: idle workers exit after 10 s, not their role's window,
        // and leave the registry, so the next wake does not boot them for nothing.
        match crate::reconcile::run(&parts.store, parts.idle_exit, now, true) {
            Ok(draining) => effects.extend(
                draining
                    .effects
                    .into_iter()
                    .filter(|e| matches!(e, gastown_core::reconciler::Effect::IdleExit { .. })),
            ),
            Err(e) => tracing::warn!(town = %parts.town, error = %e, "alarm: draining exits"),
        }
    } else if warm && !active {
        // Wake when the stop falls due rather than up to a whole idle cadence later.
        let due = [
            input
                .mayor_last_activity_ms
                .map(|at| at + quiet.as_millis() as i64 + 1),
            last_stop_attempt_ms.map(|at| at + IDLE_STOP_THROTTLE.as_millis() as i64),
        ];
        if let Some(due) = due.into_iter().flatten().max() {
            if due > now {
                next_in = next_in.min(Duration::from_millis((due - now) as u64));
            }
        }
    }
    TickPlan {
        active,
        next_in,
        stop_idle,
        effects,
    }
}

/// The live token refresh (warm container, hourly persisted throttle) and the credential
/// refresh (its own persisted schedule, warm container or not).
pub(crate) async fn refresh_on_schedule(parts: &TownParts, warm: bool, now: i64) {
    let input = TokenRefreshInput {
        container_warm: warm,
        last_refresh_ms: parts.store.time_get(TOKEN_REFRESHED_KEY).ok().flatten(),
        token_expires_ms: parts.store.time_get(TOKEN_EXPIRES_KEY).ok().flatten(),
    };
    if should_refresh_token(input, now) {
        if let Err(e) = refresh_token(parts, now).await {
            // Retried on the next tick: the throttle only moves on success.
            tracing::warn!(town = %parts.town, error = %e, "live token refresh failed");
        }
    }
    // Credentials on their own persisted schedule, warm container or not: integration
    // tokens live about an hour, so they are refreshed well inside it.
    let last = parts
        .store
        .time_get(CREDENTIALS_REFRESHED_KEY)
        .ok()
        .flatten();
    if parts.credentials.is_some()
        && last.is_none_or(|t| now - t >= CREDENTIAL_REFRESH_EVERY.as_millis() as i64)
    {
        refresh_credentials(parts).await;
    }
}

/// Town store time key: when credentials were last refreshed (ms).
const CREDENTIALS_REFRESHED_KEY: &str = "credentials_refreshed_ms";
/// How often credentials are refreshed in the background: 45 min, inside the 1 h life of
/// an integration (installation) token.
const CREDENTIAL_REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(45 * 60);

/// The live refresh: a new container token written into the warm container.
pub(crate) async fn refresh_token(parts: &TownParts, now: i64) -> Result<()> {
    let started = Instant::now();
    let agent = AgentId::new(CONTAINER_AGENT)?;
    let token = parts
        .signer
        .mint(&parts.town, &agent, SystemTime::now(), TOKEN_TTL)?;
    let path = ContainerPath::new(CONTAINER_TOKEN_PATH)?;
    parts
        .runtime
        .put_file(&parts.town, &path, token.expose().as_bytes())
        .await?;
    parts.store.time_set(TOKEN_REFRESHED_KEY, now)?;
    parts
        .store
        .time_set(TOKEN_EXPIRES_KEY, now + TOKEN_TTL.as_millis() as i64)?;
    telemetry::timing(
        telemetry::REFRESH_TOKEN_MS,
        telemetry::Subject::town(&parts.town),
        started.elapsed().as_millis() as u64,
    );
    Ok(())
}

/// Refreshes every credential source (slow sources fetch here, never at dispatch).
pub(crate) async fn refresh_credentials(parts: &TownParts) {
    let Some((chain, _)) = &parts.credentials else {
        return;
    };
    let started = Instant::now();
    let results = chain.refresh_all().await;
    if let Err(e) = parts
        .store
        .time_set(CREDENTIALS_REFRESHED_KEY, parts.clock.now_ms())
    {
        tracing::warn!(town = %parts.town, error = %e, "recording the credential refresh");
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(name, _)| *name)
        .collect();
    if !failed.is_empty() {
        tracing::warn!(town = %parts.town, failed = ?failed, "credential sources failed to refresh");
    }
    telemetry::timing(
        telemetry::GIT_CREDENTIAL_REFRESH_MS,
        telemetry::Subject::town(&parts.town),
        started.elapsed().as_millis() as u64,
    );
}

/// Spawns the first background credential refresh of a town.
pub(crate) fn spawn_credential_refresh(parts: Arc<TownParts>) {
    if parts.credentials.is_some() {
        tokio::spawn(async move { refresh_credentials(&parts).await });
    }
}
