//! `session`: resume the agent's session — the one the town store remembers if the SDK
//! server still lists it, else the newest — or create one.

use std::sync::Arc;

use gastown_core::sdk::{newest_session, SdkApi, SdkClientOptions};
use gastown_core::Result;

use crate::context::{AgentContext, LiveSdk, StartProgress};

pub(crate) async fn run(ctx: &AgentContext, mut progress: StartProgress) -> Result<StartProgress> {
    let live = progress
        .sdk
        .as_ref()
        .expect("the sdk phase runs before the session phase");
    if let (Some(id), true) = (progress.known_session.clone(), progress.push_model) {
        // A model change on a kept server: its session is the one the agent holds; only
        // the new model goes onto it (one `noReply` round trip).
        push_model(ctx, live, &id).await?;
        progress.push_model = false;
        progress.session_id = Some(id);
        return Ok(progress);
    }
    let client = setup_client(ctx, live)?;
    let sessions = client.list_sessions().await?;
    let remembered = ctx
        .parts
        .store
        .agent(&ctx.spec.id)?
        .and_then(|r| r.session_id);
    let resumed = remembered
        .and_then(|id| sessions.iter().find(|s| s.id == id))
        .or_else(|| newest_session(&sessions))
        .map(|s| s.id.clone());
    let id = match resumed {
        Some(id) => id,
        None => client.create_session(ctx.spec.id.as_str()).await?.id,
    };
    if progress.push_model {
        push_model(ctx, live, &id).await?;
        progress.push_model = false;
    }
    progress.session_id = Some(id);
    Ok(progress)
}

/// A resumed session keeps the model it was created with: record the new one on it with
/// a `noReply` message.
async fn push_model(ctx: &AgentContext, live: &LiveSdk, session_id: &str) -> Result<()> {
    let model = gastown_core::ModelRef::parse(&ctx.spec.model)?;
    let text = format!("[gastown] model changed to {}", ctx.spec.model);
    live.client.send_no_reply(session_id, &model, &text).await?;
    Ok(())
}

/// A client of the agent's server whose calls may take the whole phase: the first request
/// naming the workspace is where kilo sets up the project (about 0.6–1 CPU-s alone, kilo
/// 7.7.9; measured here at over 5 s, the per-call timeout, with ten servers booting on two
/// cores), so the per-call timeout would fail a server that is healthy but busy. A server
/// that hangs still fails the phase, at its timeout.
fn setup_client(ctx: &AgentContext, live: &LiveSdk) -> Result<Arc<dyn SdkApi>> {
    ctx.parts.sdk.connect(
        live.endpoint.clone(),
        ctx.parts.launcher.username.clone(),
        ctx.password.clone(),
        SdkClientOptions {
            timeout: ctx.parts.options.session_timeout,
        },
    )
}
