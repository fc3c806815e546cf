//! The warm pool on the real kilo and the local runtime: a brand-new town claims the pooled
//! server (`pooled: true`, no kilo booted for it), the server's environment is
//! byte-for-byte the one a cold start of the same configuration gives (but for its own
//! password and the container directory), and a real tool call in the claimed server reads
//! the claiming town's identity and token from its secrets directory — the prewarm that
//! lacks its tools' credentials must not come back. The scripted model server is a test
//! double of an OpenAI-compatible provider, so no network is needed.
//!
//! Skips when kilo is missing unless `GASTOWN_REQUIRE_KILO=1`. At most two kilo servers
//! run at once (each boot is ~2.5 s of CPU and ~520 MB).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gastown_actors::{TownHandle, TownOptions, WarmPool, WarmPoolOptions};
use gastown_core::env::{SECRETS_DIR_VAR, TOKEN_VAR, TOWN_ID_FILE};
use gastown_core::{ProviderConfig, TownConfig, TownId};
use gastown_scripted_model::{Reply, ScriptedModelServer, MODEL, PROVIDER_ID};

use common::{environ, kilo, local_runtime};

/// A bound on waits for real processes (a failure guard, not a timing assertion).
const GUARD: Duration = Duration::from_secs(120);

fn config(town: &str, model: &ScriptedModelServer) -> TownConfig {
    TownConfig::new(TownId::new(town).unwrap())
        .with_mayor_model(MODEL)
        .with_mayor_small_model(MODEL)
        .with_provider(PROVIDER_ID, ProviderConfig::new(model.provider_entry()))
}

/// `env` with the container directory written as `<container>` and the password removed:
/// what must be equal between a pooled server and a cold one.
fn comparable(env: &BTreeMap<String, String>, container_dir: &Path) -> BTreeMap<String, String> {
    let dir = container_dir.display().to_string();
    env.iter()
        .filter(|(k, _)| k.as_str() != "KILO_SERVER_PASSWORD")
        .map(|(k, v)| (k.clone(), v.replace(&dir, "<container>")))
        .collect()
}

#[tokio::test]
async fn a_claimed_server_is_a_cold_start_byte_for_byte_and_its_tools_read_the_towns_secrets() {
    let Some(bin) = kilo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start_local().await.unwrap();
    let root = dir.path().join("c");
    let rt = local_runtime(&root, &bin);
    let pool = WarmPool::start(
        rt.clone(),
        config("template", &model),
        WarmPoolOptions {
            size: 1,
            ..Default::default()
        },
    );
    tokio::time::timeout(GUARD, pool.wait_ready(1))
        .await
        .expect("the pool boots a server");

    // A brand-new town claims it.
    let claimed = TownHandle::start(
        TownOptions::new(config("claimed", &model), dir.path().join("s1"), rt.clone())
            .with_warm_pool(pool.clone()),
    )
    .await
    .unwrap();
    let ready = claimed.ensure_mayor().await.unwrap();
    assert!(ready.report.pooled, "{:?}", ready.report);
    assert!(ready.report.prewarmed);
    let pooled_pid = claimed.mayor_info().await.unwrap().unwrap().pid.unwrap();
    // The pooled server's own directory (the town's is a link to it).
    let pool_dir = std::fs::canonicalize(rt.town_dir(&TownId::new("claimed").unwrap())).unwrap();

    // A real tool call in the claimed server reads this town's identity and token.
    model.push(Reply::bash(
        "cat \"$GASTOWN_SECRETS_DIR/GASTOWN_TOWN_ID\"; echo; cat \"$GASTOWN_SECRETS_DIR/GASTOWN_CONTAINER_TOKEN\"",
    ));
    model.push(Reply::text("read them"));
    let turn = claimed.prompt_mayor("read the secrets").await.unwrap();
    tokio::time::timeout(GUARD, turn.reply())
        .await
        .expect("the turn ends")
        .unwrap();
    let output = model
        .requests()
        .iter()
        .flat_map(|r| r.tool_results())
        .map(|t| t.content)
        .find(|c| c.contains("claimed"))
        .expect("the tool's output reached the model");
    let mut lines = output.lines().map(str::trim).filter(|l| !l.is_empty());
    assert_eq!(lines.next(), Some("claimed"));
    let token = lines.next().expect("a token line");
    let claims = claimed.verify_container_token(token).unwrap();
    assert_eq!(claims.town, "claimed");

    // A cold start of the same configuration (the pool's refill is left to finish first,
    // so at most two servers run).
    tokio::time::timeout(GUARD, pool.wait_ready(1))
        .await
        .unwrap();
    pool.shutdown().await;
    let cold = TownHandle::start(TownOptions::new(
        config("cold", &model),
        dir.path().join("s2"),
        rt.clone(),
    ))
    .await
    .unwrap();
    let cold_ready = cold.ensure_mayor().await.unwrap();
    assert!(!cold_ready.report.pooled);
    let cold_pid = cold.mayor_info().await.unwrap().unwrap().pid.unwrap();
    let cold_dir = rt.town_dir(&TownId::new("cold").unwrap());

    let pooled_env: BTreeMap<String, String> = environ(pooled_pid).into_iter().collect();
    let cold_env: BTreeMap<String, String> = environ(cold_pid).into_iter().collect();
    assert_eq!(
        comparable(&pooled_env, &pool_dir),
        comparable(&cold_env, &cold_dir),
        "a pooled server's environment is a cold start's"
    );
    for env in [&pooled_env, &cold_env] {
        assert!(env.contains_key(SECRETS_DIR_VAR));
        for secret in [TOKEN_VAR, TOWN_ID_FILE, "GASTOWN_TOWN_ID"] {
            assert!(
                !env.contains_key(secret),
                "{secret} is a file, not a variable"
            );
        }
    }
    assert_ne!(
        pooled_env["KILO_SERVER_PASSWORD"], cold_env["KILO_SERVER_PASSWORD"],
        "every server has its own password"
    );

    claimed.shutdown().await.unwrap();
    cold.shutdown().await.unwrap();
    assert!(
        !rt.town_dir(&TownId::new("claimed").unwrap()).exists() && !pool_dir.exists(),
        "removing the claimed town removes the pool directory it took over"
    );
}
