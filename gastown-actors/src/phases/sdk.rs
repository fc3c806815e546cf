//! `sdk`: start the agent's SDK server (`kilo serve`) — or reuse the running one when its
//! config hash is unchanged — and wait until it answers its health check.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use gastown_core::sdk::{parse_listening_line, SdkClientOptions};
use gastown_core::{CommandSpec, ContainerPath, Error, ProcessHandle, ProcessLabel, Result};

use crate::context::{AgentContext, LiveSdk, StartProgress};

/// How often the health endpoint is polled while the server boots.
const HEALTH_POLL: Duration = Duration::from_millis(25);
/// Output lines kept to explain a server that exits before it listens.
const KEPT_LINES: usize = 20;
/// Ports tried when the picked one turns out taken (another process got it first).
const PORT_TRIES: u32 = 3;

/// A port free on this host right now (bound to 127.0.0.1:0, then released). Inside a
/// container's own network namespace it is as good as any; locally another process may
/// still take it before the server binds it, which [`port_taken`] recognises.
fn pick_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Whether a server's last output says its port was taken (kilo 7.7.9: `ServeError`).
fn port_taken(output: &str) -> bool {
    [
        "ServeError",
        "EADDRINUSE",
        "address already in use",
        "in use",
    ]
    .iter()
    .any(|needle| output.contains(needle))
}

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
            progress.sdk = Some(LiveSdk {
                config_hash: env.config_hash.clone(),
                ..live
            });
            return Ok(progress);
        }
        // Same agent, new configuration (or a dead process): replace the server.
        stop_sdk(&live, ctx.parts.options.stop_grace).await;
    }
    progress.prewarmed = false;

    let rt = &ctx.parts.runtime;
    let town = &ctx.parts.town;
    let launcher = &ctx.parts.launcher;
    // A port picked here, passed explicitly, and another one if the server finds it taken
    // (kilo exits with `ServeError`): `--port 0` would make kilo try 4096 first and rebuild
    // its HTTP stack when another server holds it. No request goes to the port before the
    // listening line (a connection that early holds kilo's boot until the client gives up).
    let mut attempt = 0;
    let (guard, mut output, port) = loop {
        attempt += 1;
        let port = pick_port();
        let mut cmd = CommandSpec::new(launcher.program.clone())
            .args(launcher.args.iter().map(String::as_str))
            .arg("--port")
            .arg(port.to_string())
            .args(["--hostname", rt.sdk_bind_host()])
            .envs(env.vars.clone())
            .cwd(ctx.work_dir());
        if let Some(pid) = rt.sdk_parent_pid() {
            // Outside the config hash: a restarted host must not look like a new config.
            cmd = cmd.env("KILO_PARENT_PID", pid.to_string());
        }
        // Recorded with the container, so a host restarted after a crash can adopt this
        // server (or reap it); the runtime ends any earlier server of the agent first and
        // the server holds the agent's lock for its life.
        let label = ProcessLabel {
            agent: ctx.spec.id.to_string(),
            config_hash: env.config_hash.clone(),
            port,
            lock: Some(server_lock(ctx)),
        };
        let grace = ctx.parts.options.stop_grace;
        let spawned = rt
            .spawn_labelled(town, &cmd, &label, grace)
            .await
            .map_err(|e| match e {
                Error::ProgramNotFound { program, .. } => Error::ProgramNotFound {
                    program,
                    hint:
                        "; install kilo with `scripts/install-kilo.sh` (or set GASTOWN_KILO_BIN) \
                       and give the runtime its path"
                            .to_owned(),
                },
                other => other,
            })?;
        // Until the server is healthy, dropping this guard (an error, or the phase timing
        // out) kills the process, so a failed attempt never leaves a stray server behind.
        let guard = KillOnDrop::new(spawned.handle.clone(), ctx.parts.options.stop_grace);
        *ctx.booting.lock() = Some(spawned.handle.clone());
        let mut output = spawned.output;
        let mut recent = VecDeque::with_capacity(KEPT_LINES);
        let listening = loop {
            match output.recv().await {
                Some(line) => {
                    if let Some((_, port)) = parse_listening_line(&line.line) {
                        break Some(port);
                    }
                    if recent.len() == KEPT_LINES {
                        recent.pop_front();
                    }
                    recent.push_back(line.line);
                }
                None => break None,
            }
        };
        match listening {
            Some(port) => break (guard, output, port),
            None => {
                let last_output = Vec::from(recent).join(" | ");
                if attempt < PORT_TRIES && port_taken(&last_output) {
                    tracing::debug!(port, "SDK server port taken; trying another");
                    continue;
                }
                return Err(Error::ServerExited {
                    program: launcher.program.clone(),
                    last_output,
                });
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
        restart_hash: env.restart_hash,
    });
    Ok(progress)
}

/// The file an agent's SDK server holds locked while it runs, next to its data directory
/// (`/agents/<agent>/server.lock`): two servers never open one `kilo.db`.
fn server_lock(ctx: &AgentContext) -> ContainerPath {
    ctx.layout
        .root()
        .join("server.lock")
        .expect("a plain file name under the agent's directory")
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
        config_hash: env.config_hash,
        restart_hash: env.restart_hash,
    }))
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

/// Kills a booting SDK server when dropped before [`disarm`](Self::disarm): the phase
/// erred or timed out (its future dropped). The kill runs in a task of its own, since a
/// drop cannot wait; `reap_booting` is what waits for it before the attempt reports.
struct KillOnDrop {
    /// The server, until the phase hands it over.
    handle: Option<Arc<dyn ProcessHandle>>,
    /// SIGTERM to SIGKILL, the town's stop grace.
    grace: Duration,
}

impl KillOnDrop {
    /// Armed: dropping it kills `handle` with `grace`.
    fn new(handle: Arc<dyn ProcessHandle>, grace: Duration) -> Self {
        Self {
            handle: Some(handle),
            grace,
        }
    }

    /// The server is healthy and owned by the caller now: nothing is killed.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_recognised_in_the_servers_last_words() {
        assert!(port_taken(
            "Error: ServeError: Failed to start server. Is port 4096 in use?"
        ));
        assert!(port_taken(
            "listen EADDRINUSE: address already in use 127.0.0.1:5000"
        ));
        assert!(!port_taken("SyntaxError: kilo.db is not a database"));
        assert_ne!(pick_port(), 0, "a free port on the loopback");
    }
}
