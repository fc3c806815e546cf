//! `SdkClient` and `kilo::locate` against the REAL `kilo serve` (installed by
//! `scripts/install-kilo.sh`). Skipped with a line on stderr when kilo is absent, unless
//! `GASTOWN_REQUIRE_KILO=1`. No LLM provider is reachable: nothing here needs a model reply.

mod real_kilo;

use std::path::{Path, PathBuf};
use std::time::Duration;

use gastown_core::env::AGENT_PATH;
use gastown_core::kilo::{self, KILO_VERSION};
use gastown_core::sdk::newest_session;
use gastown_core::{Error, ModelRef, Secret};
use real_kilo::Kilo;

const MODEL: &str = "anthropic/claude-sonnet-4-6";

fn db_path(home: &Path) -> PathBuf {
    home.join("data/kilo/kilo.db")
}

#[tokio::test]
async fn health_reports_the_pinned_version_and_basic_auth_is_enforced() {
    let Some(bin) = kilo::test_binary() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let password = Secret::random();
    let kilo = Kilo::start(&bin, home.path(), &password).await;
    let client = kilo.client(&password);

    let health = client
        .wait_healthy(Duration::from_secs(60), Duration::from_millis(50))
        .await
        .unwrap();
    assert!(health.healthy);
    assert_eq!(health.version, KILO_VERSION);
    assert_eq!(client.health().await.unwrap(), health);

    let url = format!("{}/global/health", kilo.base_url);
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let anonymous = plain.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401, "no password → 401");
    let right = plain
        .get(&url)
        .basic_auth("kilo", Some(password.expose()))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status().as_u16(), 200);

    let wrong = kilo.client(&Secret::new("not-the-password"));
    let err = wrong.health().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sdk {
                status: Some(401),
                timed_out: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains(password.expose()));
    assert!(!err.to_string().contains("not-the-password"));
    // The refused client changed nothing: the right one still gets in.
    assert!(client.health().await.unwrap().healthy);
    kilo.stop().await;
}

#[tokio::test]
async fn sessions_and_no_reply_messages_survive_a_restart() {
    let Some(bin) = kilo::test_binary() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let password = Secret::random();
    let model = ModelRef::parse(MODEL).unwrap();

    let kilo = Kilo::start(&bin, home.path(), &password).await;
    let client = kilo.client(&password);
    client
        .wait_healthy(Duration::from_secs(60), Duration::from_millis(50))
        .await
        .unwrap();
    let session = client.create_session("mayor").await.unwrap();
    assert!(session.id.starts_with("ses_"), "{session:?}");
    assert_eq!(session.title, "mayor");
    let listed = client.list_sessions().await.unwrap();
    assert!(listed.iter().any(|s| s.id == session.id), "{listed:?}");

    // Records a message without an LLM turn: no provider is reachable here.
    let message_id = client
        .send_no_reply(&session.id, &model, "hello")
        .await
        .unwrap();
    assert!(message_id.starts_with("msg_"), "{message_id}");

    // An unknown (but well-formed) session is a clean status error and loses nothing.
    let err = client
        .send_no_reply("ses_doesnotexist", &model, "hello")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sdk {
                status: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    let listed = client.list_sessions().await.unwrap();
    assert_eq!(
        newest_session(&listed).map(|s| s.id.as_str()),
        Some(session.id.as_str())
    );

    kilo.stop().await;
    assert!(
        db_path(home.path()).exists(),
        "kilo.db lives under XDG_DATA_HOME"
    );

    let kilo = Kilo::start(&bin, home.path(), &password).await;
    let client = kilo.client(&password);
    client
        .wait_healthy(Duration::from_secs(60), Duration::from_millis(50))
        .await
        .unwrap();
    let listed = client.list_sessions().await.unwrap();
    let resumed = newest_session(&listed).expect("the session survived the restart");
    assert_eq!(resumed.id, session.id);
    assert_eq!(resumed.title, "mayor");
    kilo.stop().await;
}

#[test]
fn installed_binary_is_the_pinned_version() {
    let Some(bin) = kilo::test_binary() else {
        return;
    };
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .env_clear()
        .env("PATH", AGENT_PATH)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), KILO_VERSION);
}

#[test]
fn locate_rejects_an_explicit_path_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope/kilo");
    let err = kilo::locate(Some(&missing)).unwrap_err();
    assert!(matches!(err, Error::KiloNotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("install-kilo.sh"), "{msg}");
    assert!(msg.contains("GASTOWN_KILO_BIN"), "{msg}");
    assert!(msg.contains("nope/kilo"), "{msg}");
    assert!(!missing.exists(), "locate creates nothing");
}
