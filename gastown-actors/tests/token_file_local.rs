//! The live token refresh reaches a reader: on the real kilo and the local runtime, every
//! agent is told where the town's current container token lives
//! (`GASTOWN_CONTAINER_TOKEN_FILE`), a refresh rewrites that file, a process in the
//! container reads the refreshed token there, and the embedder verifies it with
//! `TownHandle::verify_container_token`. The token minted at the start, the town id and
//! the credentials are files of the agent's secrets directory, not variables. Skips without kilo unless `GASTOWN_REQUIRE_KILO=1`.

mod common;

use gastown_actors::bench_support::SerialTown;
use gastown_actors::{Error, TownHandle, TownOptions};
use gastown_core::env::{SECRETS_DIR_VAR, TOKEN_FILE_VAR, TOKEN_VAR, TOWN_ID_FILE};
use gastown_core::token::CONTAINER_TOKEN_PATH;
use gastown_core::{AgentId, CommandSpec, ContainerPath, ContainerRuntime, TownId};

use common::{environ, kilo, local_runtime, town_config};

/// What a process in the container reads from the token file.
async fn read_token_file(rt: &dyn ContainerRuntime, town: &TownId) -> String {
    let cat = CommandSpec::new("sh")
        .arg("-c")
        .arg("cat \"$GASTOWN_CONTAINER_TOKEN_FILE\"")
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env(
            TOKEN_FILE_VAR,
            ContainerPath::new(CONTAINER_TOKEN_PATH).unwrap(),
        );
    let out = rt.exec(town, &cat).await.unwrap();
    assert!(out.success(), "cat failed: {out:?}");
    out.stdout_str().trim().to_owned()
}

#[tokio::test]
async fn a_refreshed_token_is_what_a_process_in_the_container_reads_and_verifies() {
    let Some(bin) = kilo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = local_runtime(&dir.path().join("c"), &bin);
    let town_id = TownId::new("tokfile").unwrap();
    let town = TownHandle::start(TownOptions::new(town_config("tokfile"), &state, rt.clone()))
        .await
        .unwrap();
    town.ensure_mayor().await.unwrap();

    // The mayor's server was told where the file is, and got a token at its start.
    let pid = town.mayor_info().await.unwrap().unwrap().pid.unwrap();
    let env = environ(pid);
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let file = var(TOKEN_FILE_VAR).expect("the agent knows the token file");
    assert!(file.ends_with(CONTAINER_TOKEN_PATH), "{file}");
    // The token minted at its start is a file of its secrets directory, not a variable.
    assert!(var(TOKEN_VAR).is_none(), "no token in the boot environment");
    let secrets = var(SECRETS_DIR_VAR).expect("the agent knows its secrets directory");
    let at_start = std::fs::read_to_string(std::path::Path::new(&secrets).join(TOKEN_VAR))
        .expect("the agent got a token at its start");
    let town_file =
        std::fs::read_to_string(std::path::Path::new(&secrets).join(TOWN_ID_FILE)).unwrap();
    assert_eq!(town_file, "tokfile");
    let claims = town.verify_container_token(&at_start).unwrap();
    assert_eq!(claims.agent, AgentId::mayor().as_str());

    // The alarm's live refresh (driven here through the bench's serial handle on the same
    // state: same signing key, same container).
    let serial =
        SerialTown::open(TownOptions::new(town_config("tokfile"), &state, rt.clone())).unwrap();
    serial.live_token_refresh().await.unwrap();
    let read = read_token_file(rt.as_ref(), &town_id).await;
    assert_ne!(read, at_start, "the file holds the refreshed token");
    let claims = town.verify_container_token(&read).unwrap();
    assert_eq!(claims.town, "tokfile");

    // A forged or foreign token is refused, and nothing changes.
    let forged = format!("{read}x");
    assert!(matches!(
        town.verify_container_token(&forged),
        Err(Error::Core(gastown_core::Error::Token { .. }))
    ));
    assert_eq!(read_token_file(rt.as_ref(), &town_id).await, read);
    town.shutdown().await.unwrap();
}
