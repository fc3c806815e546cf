//! The town's periodic alarm (`ARCHITECTURE.md`, *Lifecycle timings*): every 5 s with active work, every 300 s
//! without. Each tick looks at the town store and, when the container is known warm and the
//! persisted hourly throttle allows it, sends a live container-token refresh — never on a
//! cold start, which mints and passes the token instead. Credentials are refreshed in the
//! background on the same hourly rhythm, never on the `ensure_mayor` path.

use std::sync::Arc;
use std::time::SystemTime;

use gastown_core::policy::{has_active_work, should_refresh_token, TokenRefreshInput};
use gastown_core::store::town_view;
use gastown_core::token::{
    CONTAINER_TOKEN_PATH, TOKEN_EXPIRES_KEY, TOKEN_REFRESHED_KEY, TOKEN_TTL,
};
use gastown_core::{AgentId, ContainerPath, Result};
use ractor::rpc::CallResult;
use ractor::ActorRef;
use tokio::time::Instant;

use crate::container::ContainerMsg;
use crate::context::TownParts;
use crate::telemetry;

/// The id a container-wide token names as its agent.
const CONTAINER_AGENT: &str = "container";

/// One alarm tick. Returns whether the town has active work (which sets the next cadence).
pub(crate) async fn tick(parts: &TownParts, container: Option<ActorRef<ContainerMsg>>) -> bool {
    let now = parts.clock.now_ms();
    let active = match (parts.store.agents(), parts.store.beads()) {
        (Ok(agents), Ok(beads)) => has_active_work(&town_view(&agents, &beads), now),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(town = %parts.town, error = %e, "alarm: reading the town store");
            false
        }
    };
    let warm = match &container {
        Some(c) => matches!(
            c.call(ContainerMsg::IsWarm, None).await,
            Ok(CallResult::Success(true))
        ),
        None => false,
    };
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
    active
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
