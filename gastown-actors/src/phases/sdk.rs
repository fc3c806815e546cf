//! `sdk`: start the agent's SDK server (`kilo serve`) — or reuse the running one when its
//! config hash is unchanged — and wait until it answers its health check; write the
//! agent's secrets directory (town id, token, credentials: `AgentEnv::files`) meanwhile,
//! so the upload hides behind the boot and is there before the server gets any prompt.

use std::time::Duration;

use gastown_core::sdk::SdkClientOptions;
use gastown_core::{ProcessHandle, Result};

use super::server::{server_lock, ServerBoot};
use crate::context::{AgentContext, LiveSdk, StartProgress};

pub(crate) async fn run(ctx: &AgentContext, mut progress: StartProgress) -> Result<StartProgress> {
    let env = progress
        .env
        .clone()
        .expect("the token phase builds the env before the sdk phase");
    if let Some(live) = progress.sdk.take() {
        // A server whose configuration differs only in the models is kept: the session
        // phase pushes the new model onto the session, and every message names it.
        if live.restart_hash == env.restart_hash && live.process.status().await.is_alive() {
            progress.prewarmed = true;
            progress.sdk_pooled = live.pooled;
            progress.sdk = Some(LiveSdk {
                config_hash: env.config_hash.clone(),
                ..live
            });
            write_secrets(ctx, &env).await?;
            return Ok(progress);
        }
        // Same agent, new configuration (or a dead process): replace the server.
        stop_sdk(&live, ctx.parts.options.stop_grace).await;
    }
    progress.prewarmed = false;
    progress.sdk_pooled = false;

    let server = ServerBoot {
        runtime: &ctx.parts.runtime,
        town: &ctx.parts.town,
        launcher: &ctx.parts.launcher,
        env: &env,
        cwd: ctx.work_dir(),
        agent: &ctx.spec.id,
        lock: server_lock(&ctx.layout),
        password: &ctx.password,
        sdk: &ctx.parts.sdk,
        options: &ctx.parts.options,
    };
    let boot = server.boot(Some(&ctx.booting));
    // Both at once; a failed upload leaves the booted server in `booting`, where the
    // failed attempt's reaping ends it.
    let (booted, written) = tokio::join!(boot, write_secrets(ctx, &env));
    let booted = booted?;
    written?;
    *ctx.booting.lock() = None;
    progress.sdk = Some(booted);
    Ok(progress)
}

/// Ends the server a failed or timed-out sdk attempt was still booting — SIGTERM, SIGKILL
/// after the stop grace — and waits until it is gone, so the next attempt (or the start's
/// error) never overlaps it. A no-op when nothing was booting.
pub(crate) async fn reap_booting(ctx: &AgentContext) {
    let booting = ctx.booting.lock().take();
    if let Some(server) = booting {
        tracing::debug!(agent = %ctx.spec.id, pid = ?server.pid(), "ending the server of a failed sdk attempt");
        stop_server(server.as_ref(), ctx.parts.options.stop_grace).await;
    }
}

/// Adopts the agent's SDK server an earlier host left running in the container: the
/// runtime's recorded process for this agent ([`ContainerRuntime::adopt`]), kept only when
/// its config hash equals the one the agent's environment has now and it answers its
/// health check within the probe timeout; otherwise it is stopped (SIGTERM, SIGKILL after
/// the stop grace, waited for) and `None` returned, so a new server can start.
///
/// The server's password is the agent's persisted one (`TownStore`, key
/// `sdk_password/<agent>`), so this host can talk to it.
///
/// # Errors
/// What the runtime's `adopt`, the token phase (the current environment) or the SDK
/// client's construction return.
///
/// [`ContainerRuntime::adopt`]: gastown_core::ContainerRuntime::adopt
pub(crate) async fn adopt(ctx: &AgentContext) -> Result<Option<LiveSdk>> {
    let rt = &ctx.parts.runtime;
    let town = &ctx.parts.town;
    let Some(found) = rt.adopt(town, ctx.spec.id.as_str()).await? else {
        return Ok(None);
    };
    // A server a warm pool booted, which this town's container claim brought: taken now,
    // so a claimed server that turns out unusable leaves no mark on a later adoption.
    let pooled = ctx.spec.role == gastown_core::Role::Mayor
        && ctx
            .parts
            .pool_claimed
            .swap(false, std::sync::atomic::Ordering::SeqCst);
    let grace = ctx.parts.options.stop_grace;
    let progress = super::token::run(ctx, StartProgress::default()).await?;
    let env = progress
        .env
        .expect("the token phase builds the environment");
    if found.label.config_hash != env.config_hash {
        tracing::info!(agent = %ctx.spec.id, "recorded SDK server has another configuration; replacing it");
        stop_server(found.handle.as_ref(), grace).await;
        return Ok(None);
    }
    let endpoint = rt.endpoint(town, found.label.port).await?;
    let client = ctx.parts.sdk.connect(
        endpoint.clone(),
        ctx.parts.launcher.username.clone(),
        ctx.password.clone(),
        SdkClientOptions {
            timeout: ctx.parts.options.sdk_call_timeout,
        },
    )?;
    let healthy = tokio::time::timeout(ctx.parts.options.probe_timeout, client.health())
        .await
        .is_ok_and(|h| h.is_ok_and(|h| h.healthy));
    if !healthy || !found.handle.status().await.is_alive() {
        tracing::info!(agent = %ctx.spec.id, "recorded SDK server does not answer; replacing it");
        stop_server(found.handle.as_ref(), grace).await;
        return Ok(None);
    }
    tracing::info!(agent = %ctx.spec.id, pid = ?found.handle.pid(), "SDK server adopted");
    Ok(Some(LiveSdk {
        process: found.handle,
        client,
        endpoint,
        config_hash: env.config_hash.clone(),
        restart_hash: env.restart_hash.clone(),
        pooled,
    }))
}

/// Writes the agent's secrets directory ([`AgentEnv::files`]) in one `put_files`.
///
/// [`AgentEnv::files`]: gastown_core::env::AgentEnv::files
async fn write_secrets(ctx: &AgentContext, env: &gastown_core::env::AgentEnv) -> Result<()> {
    let files: Vec<_> = env
        .files
        .iter()
        .map(|(path, secret)| (path.clone(), secret.expose().as_bytes().to_vec()))
        .collect();
    ctx.parts.runtime.put_files(&ctx.parts.town, &files).await
}

/// Stops a running SDK server (see [`stop_server`]).
pub(crate) async fn stop_sdk(live: &LiveSdk, grace: Duration) {
    stop_server(live.process.as_ref(), grace).await
}

/// Stops an SDK server process: SIGTERM, then SIGKILL after `grace`. Errors are logged,
/// not returned: the caller is already replacing or abandoning the server.
pub(crate) async fn stop_server(process: &dyn ProcessHandle, grace: Duration) {
    if let Err(e) = process.kill(grace).await {
        tracing::warn!(pid = ?process.pid(), error = %e, "stopping SDK server");
    }
}
