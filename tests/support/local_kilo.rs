//! A real `kilo serve` inside a [`LocalRuntime`] container, talking to the scripted model
//! server (a test double of an OpenAI-compatible provider), for `tests/live_snapshot.rs`
//! and `examples/snapshot_cost.rs`. Boots exactly one kilo.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gastown::core::sdk::{SdkClient, SdkClientOptions};
use gastown::core::{
    AgentId, AgentLayout, CommandSpec, ContainerOptions, ContainerPath, ContainerRuntime,
    ContainerRuntimeExt, ModelRef, ProcessHandle, Secret, TownId,
};
use gastown::local::LocalRuntime;
use gastown_scripted_model::{ScriptedModelServer, MODEL};

/// A failure bound for kilo's boot and for one turn on a shared, slow machine; not a
/// timing assertion.
pub const GUARD: Duration = Duration::from_secs(120);

/// One kilo in a local container, with its scripted model server.
pub struct LocalKilo {
    pub rt: LocalRuntime,
    pub town: TownId,
    pub agent: AgentId,
    pub layout: AgentLayout,
    pub client: SdkClient,
    pub models: ScriptedModelServer,
    server: Arc<dyn ProcessHandle>,
}

impl LocalKilo {
    /// Starts a container under `root`, then kilo in it as agent `mayor`.
    pub async fn start(kilo: &Path, root: &Path) -> LocalKilo {
        let models = ScriptedModelServer::start_local().await.unwrap();
        let rt = LocalRuntime::builder(root.to_owned())
            .with_program("kilo", kilo)
            .build();
        let town = TownId::new("livesnap").unwrap();
        rt.start(&town, &ContainerOptions::default()).await.unwrap();
        let agent = AgentId::new("mayor").unwrap();
        let layout = AgentLayout::new(agent.clone());
        let home = layout.home();
        let dir = |name: &str| layout.xdg(name);
        let work: ContainerPath = layout.workspace();
        for d in [
            home.clone(),
            dir("data"),
            dir("config"),
            dir("cache"),
            dir("state"),
            work.clone(),
        ] {
            rt.create_dir_all(&town, &d).await.unwrap();
        }
        let password = Secret::random();
        let cmd = CommandSpec::new("kilo")
            .args(["serve", "--port", "0", "--hostname", rt.sdk_bind_host()])
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("KILO_TEST_HOME", &home)
            .env("XDG_DATA_HOME", dir("data"))
            .env("XDG_CONFIG_HOME", dir("config"))
            .env("XDG_CACHE_HOME", dir("cache"))
            .env("XDG_STATE_HOME", dir("state"))
            .env("KILO_CONFIG_CONTENT", models.config_content())
            .env("KILO_DISABLE_MODELS_FETCH", "1")
            .env("KILO_TELEMETRY_LEVEL", "off")
            .env("KILO_SERVER_PASSWORD", password.clone())
            .cwd(work);
        let spawned = rt.spawn(&town, &cmd).await.unwrap();
        let mut output = spawned.output;
        let port = tokio::time::timeout(GUARD, async {
            while let Some(l) = output.recv().await {
                if let Some((_, port)) = gastown::core::sdk::parse_listening_line(&l.line) {
                    return Some(port);
                }
            }
            None
        })
        .await
        .expect("kilo did not listen in time")
        .expect("kilo exited before it listened");
        // Keep draining kilo's output so it never blocks.
        tokio::spawn(async move { while output.recv().await.is_some() {} });
        let url = rt.endpoint(&town, port).await.unwrap();
        let client = SdkClient::new(url, "kilo", password, SdkClientOptions::default()).unwrap();
        client
            .wait_healthy(GUARD, Duration::from_millis(50))
            .await
            .unwrap();
        LocalKilo {
            rt,
            town,
            agent,
            layout,
            client,
            models,
            server: spawned.handle,
        }
    }

    /// The database's host path.
    pub fn host_db(&self) -> std::path::PathBuf {
        self.rt.host_path(&self.town, &self.layout.kilo_db())
    }

    /// Runs one real turn: `prompt_async`, then waits until the session holds `turn`
    /// completed assistant messages and is idle again.
    pub async fn turn(&self, session: &str, text: &str, turn: usize) {
        let model = ModelRef::parse(MODEL).unwrap();
        self.client
            .prompt_async(session, &model, text)
            .await
            .unwrap();
        tokio::time::timeout(GUARD, async {
            loop {
                let messages = self.client.messages(session).await.unwrap();
                let done = messages
                    .iter()
                    .filter(|m| m.role == "assistant" && m.completed_ms.is_some())
                    .count();
                if done >= turn {
                    let statuses = self.client.session_status().await.unwrap();
                    if !statuses.get(session).is_some_and(|s| s.is_working()) {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("turn {turn} did not end within {GUARD:?}"));
    }

    /// Waits until kilo's `kilo.db` and `kilo.db-wal` have not changed (size, mtime) for
    /// 1 s: after a turn kilo may still write (a session title, summaries).
    pub async fn settle(&self) {
        let db = self.host_db();
        let wal = db.with_extension("db-wal");
        let stamp = || {
            [&db, &wal].map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.len(), m.modified().ok()))
            })
        };
        let mut last = stamp();
        let mut quiet = 0;
        tokio::time::timeout(GUARD, async {
            while quiet < 10 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = stamp();
                quiet = if now == last { quiet + 1 } else { 0 };
                last = now;
            }
        })
        .await
        .expect("kilo kept writing its database");
    }

    /// Stops kilo and removes the container.
    pub async fn stop(self) {
        let _ = self.server.kill(Duration::from_secs(10)).await;
        self.rt.remove(&self.town).await.unwrap();
        self.models.shutdown().await;
    }
}
