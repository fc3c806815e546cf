//! `token`: mint the container token locally and build the agent's environment with it.
//! A fresh start never makes a live refresh round trip (DESIGN.md §5 rule 1).

use std::time::SystemTime;

use gastown_core::token::TOKEN_TTL;
use gastown_core::Result;

use crate::context::{AgentContext, StartProgress};

pub(super) async fn run(ctx: &AgentContext, mut progress: StartProgress) -> Result<StartProgress> {
    let started = tokio::time::Instant::now();
    let token =
        ctx.parts
            .signer
            .mint(&ctx.parts.town, &ctx.spec.id, SystemTime::now(), TOKEN_TTL)?;
    progress.env = Some(ctx.env(&token));
    progress.token = Some(token);
    tracing::debug!(
        town = %ctx.parts.town,
        agent = %ctx.spec.id,
        token_mint_ms = started.elapsed().as_millis() as u64,
        "token_mint_ms"
    );
    Ok(progress)
}
