//! A brand-new town's container: claimed from the warm pool when the town has one, else
//! started cold (`crate::pool` has the claim's steps; `ARCHITECTURE.md`, *Warm pool*).

use std::sync::atomic::Ordering;

use futures::StreamExt;
use gastown_core::{
    AgentId, AgentStatus, ContainerInfo, ContainerOptions, ContainerStatus, Result,
};

use crate::events::TownEvent;

use crate::context::{AgentSpec, TownParts};
use crate::pool::town_mayor_env;

/// The runtime's start of the town's container, after a claim from the warm pool when
/// `brand_new` (no agent actor, no container known to this actor) and the town really is
/// new: the runtime has no container for it and the mayor has no snapshot. A claimed
/// server's password becomes the mayor's (store key `sdk_password/mayor`), so the mayor's
/// first request adopts it; any miss is logged and the start is cold.
///
/// # Errors
/// What the runtime's `start` returns.
pub(super) async fn start_or_claim(
    parts: &TownParts,
    options: &ContainerOptions,
    mayor: &AgentSpec,
    brand_new: bool,
) -> Result<ContainerInfo> {
    let rt = &parts.runtime;
    let town = &parts.town;
    if let (Some(pool), true) = (&parts.warm_pool, brand_new) {
        let mayor_id = AgentId::mayor();
        let absent = matches!(rt.status(town).await, Ok(ContainerStatus::Absent));
        let no_snapshot = !parts.snapshots.path(&mayor_id).exists();
        if absent && no_snapshot {
            // Subscribed before the claim, so the mayor's first status is not missed.
            let mut events = parts.events.subscribe();
            let claimed = pool
                .claim(town, options, |password| {
                    town_mayor_env(parts, mayor, password).config_hash
                })
                .await;
            match claimed {
                Ok(password) => {
                    // The refill waits for the mayor's start to end (a status other than
                    // `working`: `waiting` when ready, `dead` when it failed).
                    let mayor = mayor_id.clone();
                    pool.refill_after(async move {
                        while let Some(record) = events.next().await {
                            let settled = matches!(
                                &record.event,
                                TownEvent::AgentStatusChanged { status }
                                    if *status != AgentStatus::Working
                            );
                            if settled && record.agent.as_ref() == Some(&mayor) {
                                return;
                            }
                        }
                    });
                    let key = crate::context::sdk_password_key(&mayor_id);
                    match parts.store.secret_set(&key, &password) {
                        Ok(()) => parts.pool_claimed.store(true, Ordering::SeqCst),
                        // The mayor cannot talk to the server: its adoption fails the
                        // health check, stops it, and the start goes on cold.
                        Err(e) => {
                            tracing::warn!(%town, error = %e, "keeping the pooled server's password")
                        }
                    }
                }
                Err(miss) => {
                    tracing::info!(%town, ?miss, "no pooled SDK server for this town; starting cold")
                }
            }
        }
    }
    rt.start(town, options).await
}
