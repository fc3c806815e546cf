//! `sdk`: start the agent's SDK server (`kilo serve`) — or reuse the running one when its
//! config hash is unchanged — and wait until it answers its health check.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use gastown_core::sdk::{parse_listening_line, SdkClientOptions};
use gastown_core::{CommandSpec, Error, ProcessHandle, Result};

use crate::context::{AgentContext, LiveSdk, StartProgress};

/// How often the health endpoint is polled while the server boots.
const HEALTH_POLL: Duration = Duration::from_millis(25);
/// Output lines kept to explain a server that exits before it listens.
const KEPT_LINES: usize = 20;

pub(super) async fn run(ctx: &AgentContext, mut progress: StartProgress) -> Result<StartProgress> {
    let env = progress
        .env
        .clone()
        .expect("the token phase builds the env before the sdk phase");
    if let Some(live) = progress.sdk.take() {
        if live.config_hash == env.config_hash && live.process.status().await.is_alive() {
            progress.prewarmed = true;
            progress.sdk = Some(live);
            return Ok(progress);
        }
        // Same agent, new configuration (or a dead process): replace the server.
        stop_sdk(&live, ctx.parts.options.stop_grace).await;
    }
    progress.prewarmed = false;

    let rt = &ctx.parts.runtime;
    let town = &ctx.parts.town;
    let launcher = &ctx.parts.launcher;
    let cmd = CommandSpec::new(launcher.program.clone())
        .args(launcher.args.iter().map(String::as_str))
        .args(["--port", "0", "--hostname", rt.sdk_bind_host()])
        .envs(env.vars.clone())
        .cwd(ctx.layout.workspace());
    let spawned = rt.spawn(town, &cmd).await.map_err(|e| match e {
        Error::ProgramNotFound { program, .. } => Error::ProgramNotFound {
            program,
            hint: "; install kilo with `scripts/install-kilo.sh` (or set GASTOWN_KILO_BIN) and \
                   give the runtime its path"
                .to_owned(),
        },
        other => other,
    })?;
    // Until the server is healthy, dropping this guard (an error, or the phase timing out)
    // kills the process, so a failed attempt never leaves a stray server behind.
    let guard = KillOnDrop::new(spawned.handle.clone(), ctx.parts.options.stop_grace);
    *ctx.booting.lock() = Some(spawned.handle.clone());
    let mut output = spawned.output;
    let mut recent = VecDeque::with_capacity(KEPT_LINES);
    let port = loop {
        match output.recv().await {
            Some(line) => {
                if let Some((_, port)) = parse_listening_line(&line.line) {
                    break port;
                }
                if recent.len() == KEPT_LINES {
                    recent.pop_front();
                }
                recent.push_back(line.line);
            }
            None => {
                return Err(Error::ServerExited {
                    program: launcher.program.clone(),
                    last_output: Vec::from(recent).join(" | "),
                })
            }
        }
    };
    let agent = ctx.spec.id.clone();
    tokio::spawn(async move {
        while let Some(line) = output.recv().await {
            tracing::trace!(agent = %agent, line = %line.line, "sdk output");
        }
    });
    let endpoint = rt.endpoint(town, port).await?;
    let client = ctx.parts.sdk.connect(
        endpoint.clone(),
        launcher.username.clone(),
        ctx.password.clone(),
        SdkClientOptions {
            timeout: ctx.parts.options.sdk_call_timeout,
        },
    )?;
    client
        .wait_healthy(ctx.parts.options.sdk_timeout, HEALTH_POLL)
        .await?;
    *ctx.booting.lock() = None;
    progress.sdk = Some(LiveSdk {
        process: guard.disarm(),
        client,
        endpoint,
        config_hash: env.config_hash,
    });
    Ok(progress)
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

struct KillOnDrop {
    handle: Option<Arc<dyn ProcessHandle>>,
    grace: Duration,
}

impl KillOnDrop {
    fn new(handle: Arc<dyn ProcessHandle>, grace: Duration) -> Self {
        Self {
            handle: Some(handle),
            grace,
        }
    }

    fn disarm(mut self) -> Arc<dyn ProcessHandle> {
        self.handle.take().expect("armed")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let grace = self.grace;
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = handle.kill(grace).await;
                });
            }
        }
    }
}
