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

pub(super) async fn run(ctx: &AgentContext, mut progress: StartProgress) -> Result<StartProgress> {
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
        let spawned = rt.spawn(town, &cmd).await.map_err(|e| match e {
            Error::ProgramNotFound { program, .. } => Error::ProgramNotFound {
                program,
                hint: "; install kilo with `scripts/install-kilo.sh` (or set GASTOWN_KILO_BIN) \
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
