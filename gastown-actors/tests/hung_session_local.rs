//! An SDK server that listens and says it is healthy but never answers a session call:
//! on the local runtime, with a real process, the start fails after the retry budget's
//! attempts (not never), names the session phase, records no session, and leaves no
//! server behind once the town shuts down. The server is a test double of kilo: a
//! Python script (`python3`) that prints kilo's listening line, answers
//! `GET /global/health` and holds every other request open.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use gastown_actors::{Error, StartOptions, TownHandle, TownOptions};
use gastown_core::policy::RetryPolicy;
use gastown_core::{AgentId, StartupPhase, TownStore};

use common::{alive, local_runtime, town_config};

/// The double: `serve --port N --hostname H …` as kilo takes it; its pid goes to the file
/// `PIDS` (set by the test on the script's second line).
const HUNG_KILO: &str = r#"#!/usr/bin/env python3
import http.server, os, sys, time
PIDS = "@PIDS@"
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
host = args[args.index("--hostname") + 1] if "--hostname" in args else "127.0.0.1"
with open(PIDS, "a") as f:
    f.write(f"{os.getpid()}\n")

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/global/health"):
            body = b'{"healthy":true,"version":"7.7.9"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            time.sleep(3600)
    do_POST = do_GET
    def log_message(self, *a):
        pass

server = http.server.ThreadingHTTPServer((host, port), Handler)
server.daemon_threads = True
print(f"kilo server listening on http://{host}:{port}", flush=True)
server.serve_forever()
"#;

#[tokio::test]
async fn a_server_that_never_answers_the_session_call_fails_the_start_and_is_stopped() {
    assert!(
        std::process::Command::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test's kilo double needs python3"
    );
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("hung-kilo");
    let pids = dir.path().join("pids");
    std::fs::write(
        &fake,
        HUNG_KILO.replace("@PIDS@", &pids.display().to_string()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let rt = local_runtime(&dir.path().join("c"), &fake);
    // The default bounds' shape, scaled down: session attempts of 2 s against a 1 s window
    // (30 s against 60 s by default) never make two restarts within it, so only the
    // attempt cap ends the run.
    let start = StartOptions::default()
        .with_timeout(StartupPhase::Session, Duration::from_secs(2))
        .with_retry(RetryPolicy {
            within: Duration::from_secs(1),
            ..RetryPolicy::default()
        });
    let attempts = start.retry.max_attempts;
    let config = town_config("hungsession");
    let state = dir.path().join("state");
    let town = TownHandle::start(TownOptions::new(config, &state, rt).with_start_options(start))
        .await
        .unwrap();

    let err = tokio::time::timeout(Duration::from_secs(120), town.ensure_mayor())
        .await
        .expect("ensure_mayor answers")
        .expect_err("a server that never answers is no ready mayor");
    let Error::Start(e) = &err else {
        panic!("not a start error: {err}")
    };
    assert_eq!(e.phase, StartupPhase::Session, "{err}");
    assert_eq!(e.attempts, attempts, "{err}");
    town.shutdown().await.unwrap();

    // No session was recorded, and no server outlived the town.
    let store = TownStore::open(&state.join("town.db")).unwrap();
    let mayor = store.agent(&AgentId::new("mayor").unwrap()).unwrap();
    assert_eq!(mayor.and_then(|m| m.session_id), None);
    let started: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(!started.is_empty());
    for pid in &started {
        assert!(!alive(*pid), "server {pid} outlived the town");
    }
}
