//! A real `kilo serve` for the tests that need one (`kilo_server.rs`, `kilo_turns.rs`).

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gastown_core::env::AGENT_PATH;
use gastown_core::sdk::{parse_listening_line, SdkClient, SdkClientOptions};
use gastown_core::Secret;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A guard against a kilo that never gets ready (cold boot is ~4–5 s; the machine is shared
/// and slow). A failure bound, not a timing assertion.
pub const BOOT_GUARD: Duration = Duration::from_secs(120);

/// The config when a test names none: a bundled model, no provider reachable.
const DEFAULT_CONFIG: &str = r#"{"model":"anthropic/claude-sonnet-4-6"}"#;

/// One running `kilo serve`, killed when dropped (`kill_on_drop`).
pub struct Kilo {
    child: Child,
    pub base_url: String,
}

impl Kilo {
    /// Starts kilo with exactly the agent env (nothing inherited) rooted at `home`, in the
    /// working directory `home/work`, and waits for its "listening on" line.
    pub async fn start(bin: &Path, home: &Path, password: &Secret) -> Kilo {
        Self::start_with(bin, home, password, DEFAULT_CONFIG, &[]).await
    }

    /// As [`Kilo::start`] with `config` as `KILO_CONFIG_CONTENT` and `extra` variables.
    pub async fn start_with(
        bin: &Path,
        home: &Path,
        password: &Secret,
        config: &str,
        extra: &[(String, String)],
    ) -> Kilo {
        let work = home.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let mut command = Command::new(bin);
        command
            .args(["serve", "--port", "0", "--hostname", "127.0.0.1"])
            .env_clear()
            .env("PATH", AGENT_PATH)
            .env("HOME", home)
            .env("KILO_TEST_HOME", home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("KILO_CONFIG_CONTENT", config)
            .env("KILO_SERVER_PASSWORD", password.expose());
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command
            .current_dir(&work)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(BOOT_GUARD, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(hp) = parse_listening_line(&line) {
                    return Some(hp);
                }
                eprintln!("kilo stdout: {line}");
            }
            None
        })
        .await;
        let (host, port) = match ready {
            Ok(Some(hp)) => hp,
            Ok(None) => panic!("kilo exited before listening: {:?}", child.wait().await),
            Err(_) => panic!("kilo did not print its listening line within {BOOT_GUARD:?}"),
        };
        // Keep draining stdout so kilo never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Kilo {
            child,
            base_url: format!("http://{host}:{port}"),
        }
    }

    pub fn client(&self, password: &Secret) -> SdkClient {
        SdkClient::new(
            self.base_url.clone(),
            "kilo",
            password.clone(),
            SdkClientOptions::default(),
        )
        .unwrap()
    }

    pub async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}
