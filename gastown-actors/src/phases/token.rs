//! `token`: resolve the agent's credentials (cheap: cached sources only — refreshing them is
//! background work), mint the container token locally and build the agent's environment
//! with both (town id, token and credentials as the files of its secrets directory, which
//! the sdk phase writes; not variables). A fresh start never makes a live refresh round trip (`ARCHITECTURE.md`, *Phase path*);
//! the mint time is stored so the hourly refresh throttle counts from it (unless a mint
//! less than a minute earlier is stored).

use std::time::SystemTime;

use gastown_core::token::{TOKEN_EXPIRES_KEY, TOKEN_REFRESHED_KEY, TOKEN_TTL};
use gastown_core::Result;

use crate::context::{AgentContext, StartProgress};

/// A mint less than this long after the stored stamp (ms) leaves the stamp as it is: the
/// agents of a town start within seconds of each other, and each rewrite was a commit of
/// its own. The stored expiry is then at most this much early, which can only bring the
/// hourly refresh forward (`ARCHITECTURE.md`, *Scale*).
const MINT_STAMP_SLACK_MS: i64 = 60_000;

pub(crate) async fn run(ctx: &AgentContext, mut progress: StartProgress) -> Result<StartProgress> {
    if let Some((chain, var)) = &ctx.parts.credentials {
        let resolution = chain.resolve().await;
        tracing::debug!(
            town = %ctx.parts.town, agent = %ctx.spec.id, tried = ?resolution.tried,
            source = ?resolution.source, "credentials resolved at dispatch"
        );
        match resolution.token {
            Some(token) => {
                progress.credentials.insert(var.clone(), token);
            }
            None => {
                progress.credentials.remove(var);
            }
        }
    }
    let now = SystemTime::now();
    let token = ctx
        .parts
        .signer
        .mint(&ctx.parts.town, &ctx.spec.id, now, TOKEN_TTL)?;
    let now_ms = ctx.parts.clock.now_ms();
    let stamped = ctx.parts.store.time_get(TOKEN_REFRESHED_KEY)?;
    if stamped.is_none_or(|at| !(0..MINT_STAMP_SLACK_MS).contains(&(now_ms - at))) {
        ctx.parts.store.times_set(&[
            (TOKEN_REFRESHED_KEY, now_ms),
            (TOKEN_EXPIRES_KEY, now_ms + TOKEN_TTL.as_millis() as i64),
        ])?;
    }
    // The town id, the token and the credentials reach the server's tools as files of its
    // secrets directory, never its boot environment (a pooled server is booted before any
    // town claims it): the sdk phase writes them while the server boots.
    progress.env = Some(std::sync::Arc::new(ctx.env(&token, &progress.credentials)));
    progress.token = Some(token);
    Ok(progress)
}
