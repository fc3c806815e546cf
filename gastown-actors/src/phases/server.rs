//! Booting one SDK server (`kilo serve`) until it answers its health check: what the `sdk`
//! phase does for an agent and what a warm pool does for a spare server, in one place so a
//! pooled server is spawned exactly as an agent's own would be.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use gastown_core::env::AgentEnv;
use gastown_core::sdk::{parse_listening_line, SdkClientOptions, SdkConnector};
use gastown_core::{
    AgentId, AgentLayout, CommandSpec, ContainerPath, ContainerRuntime, Error, ProcessHandle,
    ProcessLabel, Result, SdkLauncher, Secret, TownId,
};
use parking_lot::Mutex;

use crate::context::LiveSdk;
use crate::options::StartOptions;

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

/// The file an agent's SDK server holds locked while it runs, next to its data directory
/// (`/agents/<agent>/server.lock`): two servers never open one `kilo.db`.
pub(crate) fn server_lock(layout: &AgentLayout) -> ContainerPath {
    layout
        .root()
        .join("server.lock")
        .expect("a plain file name under the agent's directory")
}

/// One SDK server to boot: where, as whom, with what.
pub(crate) struct ServerBoot<'a> {
    pub(crate) runtime: &'a Arc<dyn ContainerRuntime>,
    /// The container (a town's, or a pool's own).
    pub(crate) town: &'a TownId,
    pub(crate) launcher: &'a SdkLauncher,
    /// The whole environment (`build_agent_env_with_providers`).
    pub(crate) env: &'a AgentEnv,
    /// Its working directory, where its tools run.
    pub(crate) cwd: ContainerPath,
    /// The agent it serves: its process label, so a later host (or a claiming town) can
    /// adopt it.
    pub(crate) agent: &'a AgentId,
    /// The file it holds locked for its life ([`server_lock`]).
    pub(crate) lock: ContainerPath,
    /// Its password (also in `env`), for the health check's client.
    pub(crate) password: &'a Secret,
    pub(crate) sdk: &'a Arc<dyn SdkConnector>,
    /// The sdk timeout (spawn to healthy), the call timeout, the stop grace.
    pub(crate) options: &'a StartOptions,
}

impl ServerBoot<'_> {
    /// Spawns the server on a port picked here and passed explicitly — another one when
    /// the server finds it taken (kilo exits with `ServeError`): `--port 0` would make
    /// kilo try 4096 first and rebuild its HTTP stack when another server holds it — then
    /// waits for its listening line, and only then polls its health: a connection that
    /// reaches kilo's port before that line holds its boot until the client gives up
    /// (`ARCHITECTURE.md`, *SDK server*). `booting` (the agent's) holds the process until
    /// it is healthy, so a drain reaches a server that is still booting; the caller clears
    /// it.
    ///
    /// # Errors
    /// `ProgramNotFound` (with an install hint), `ServerExited` with its last output lines,
    /// the runtime's spawn errors, or the health wait's timeout. A server that fails is
    /// killed (in a task of its own when the future is dropped).
    pub(crate) async fn boot(
        &self,
        booting: Option<&Mutex<Option<Arc<dyn ProcessHandle>>>>,
    ) -> Result<LiveSdk> {
        let rt = self.runtime;
        let launcher = self.launcher;
        let grace = self.options.stop_grace;
        let mut attempt = 0;
        let (guard, mut output, port) = loop {
            attempt += 1;
            let port = pick_port();
            let mut cmd = CommandSpec::new(launcher.program.clone())
                .args(launcher.args.iter().map(String::as_str))
                .arg("--port")
                .arg(port.to_string())
                .args(["--hostname", rt.sdk_bind_host()])
                .envs(self.env.vars.clone())
                .cwd(self.cwd.clone());
            if let Some(pid) = rt.sdk_parent_pid() {
                // Outside the config hash: a restarted host must not look like a new config.
                cmd = cmd.env("KILO_PARENT_PID", pid.to_string());
            }
            // Recorded with the container, so a host restarted after a crash can adopt this
            // server (or reap it); the runtime ends any earlier server of the agent first
            // and the server holds the agent's lock for its life.
            let label = ProcessLabel {
                agent: self.agent.to_string(),
                config_hash: self.env.config_hash.clone(),
                port,
                lock: Some(self.lock.clone()),
            };
            let spawned = rt
                .spawn_labelled(self.town, &cmd, &label, grace)
                .await
                .map_err(|e| match e {
                    Error::ProgramNotFound { program, .. } => Error::ProgramNotFound {
                        program,
                        hint: "; install kilo with `scripts/install-kilo.sh` (or set \
                               GASTOWN_KILO_BIN) and give the runtime its path"
                            .to_owned(),
                    },
                    other => other,
                })?;
            // Until the server is healthy, dropping this guard (an error, or the phase
            // timing out) kills the process, so a failed attempt never leaves a stray
            // server behind.
            let guard = KillOnDrop::new(spawned.handle.clone(), grace);
            if let Some(booting) = booting {
                *booting.lock() = Some(spawned.handle.clone());
            }
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
        let agent = self.agent.clone();
        tokio::spawn(async move {
            while let Some(line) = output.recv().await {
                tracing::trace!(agent = %agent, line = %line.line, "sdk output");
            }
        });
        let endpoint = rt.endpoint(self.town, port).await?;
        let client = self.sdk.connect(
            endpoint.clone(),
            launcher.username.clone(),
            self.password.clone(),
            SdkClientOptions {
                timeout: self.options.sdk_call_timeout,
            },
        )?;
        client
            .wait_healthy(self.options.sdk_timeout, HEALTH_POLL)
            .await?;
        Ok(LiveSdk {
            process: guard.disarm(),
            client,
            endpoint,
            config_hash: self.env.config_hash.clone(),
            restart_hash: self.env.restart_hash.clone(),
            pooled: false,
        })
    }
}

/// Kills a booting SDK server when dropped before [`disarm`](Self::disarm): the boot
/// erred or timed out (its future dropped). The kill runs in a task of its own, since a
/// drop cannot wait; `reap_booting` is what waits for it before an attempt reports.
struct KillOnDrop {
    /// The server, until the boot hands it over.
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
