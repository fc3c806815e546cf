//! The mayor's cold path pays no container round trip the physical floor does not, on the
//! simulated runtime (a test double that logs every operation; virtual time): before its
//! SDK server is spawned, a first cold start makes one `stat` of `kilo.db` (no copy of it)
//! and one exec (the agent's directories, `git init` and the workspace commit together);
//! the agent's secrets directory is written once (one `put_files`: a single archive upload
//! on Docker), beside the server's boot; a start that restores a snapshot adds only the
//! directory exec and the upload.

use std::sync::Arc;

use gastown_actors::{TownHandle, TownOptions};
use gastown_core::simulated::{SimEventKind, SimScript, SimulatedRuntime};
use gastown_core::{AgentId, AgentLayout, ContainerRuntimeExt, TownConfig, TownId};

fn town_id() -> TownId {
    TownId::new("trips").unwrap()
}

async fn start(rt: &Arc<SimulatedRuntime>, state: &std::path::Path) -> TownHandle {
    let options = TownOptions::new(TownConfig::new(town_id()), state, rt.clone())
        .with_sdk_connector(rt.sdk_connector());
    TownHandle::start(options).await.unwrap()
}

/// Whether `kind` writes a file of the mayor's secrets directory (the sdk phase's one
/// `put_files`).
fn secrets_write(kind: &SimEventKind) -> bool {
    let dir = AgentLayout::new(AgentId::mayor()).secrets();
    matches!(kind, SimEventKind::FileWrite { path } if path.parent().as_ref() == Some(&dir))
}

/// The container operations from `from` up to the mayor's SDK server spawn, but for the
/// secrets directory's writes.
fn before_spawn(rt: &SimulatedRuntime, from: usize) -> Vec<SimEventKind> {
    rt.log()[from..]
        .iter()
        .map(|e| e.kind.clone())
        .take_while(|k| !matches!(k, SimEventKind::Spawn { .. }))
        .filter(|k| !secrets_write(k))
        .filter(|k| {
            matches!(
                k,
                SimEventKind::Exec { .. }
                    | SimEventKind::FileRead { .. }
                    | SimEventKind::FileWrite { .. }
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_first_cold_start_makes_one_stat_and_one_exec_before_the_sdk_server() {
    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(SimScript::default());
    let town = start(&rt, &dir.path().join("state")).await;
    town.ensure_mayor().await.unwrap();

    let secrets = rt.log().iter().filter(|e| secrets_write(&e.kind)).count();
    assert_eq!(secrets, 2, "the town id and the token, in one put_files");
    let ops = before_spawn(&rt, 0);
    let db = AgentLayout::new(AgentId::mayor()).kilo_db();
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert!(
        matches!(&ops[0], SimEventKind::FileRead { path } if path == &db),
        "{ops:?}"
    );
    assert!(
        matches!(&ops[1], SimEventKind::Exec { program, .. } if program == "sh"),
        "{ops:?}"
    );
    // The one exec made the workspace a repository and the server's directories.
    let layout = AgentLayout::new(AgentId::mayor());
    assert!(rt
        .peek_file(&town_id(), &layout.workspace().join(".git/HEAD").unwrap())
        .is_some());
    assert!(rt
        .file_exists(&town_id(), &layout.workspace())
        .await
        .unwrap());
    town.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_start_that_restores_a_snapshot_adds_only_the_directories_and_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = SimulatedRuntime::new(SimScript::default());
    let town = start(&rt, &state).await;
    town.ensure_mayor().await.unwrap();
    town.shutdown().await.unwrap();

    let from = rt.log().len();
    let town = start(&rt, &state).await;
    town.ensure_mayor().await.unwrap();
    let ops = before_spawn(&rt, from);
    let db = AgentLayout::new(AgentId::mayor()).kilo_db();
    let execs: Vec<&str> = ops
        .iter()
        .filter_map(|k| match k {
            SimEventKind::Exec { program, .. } => Some(program.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(execs, ["mkdir", "sh"], "{ops:?}");
    let writes = ops
        .iter()
        .filter(|k| matches!(k, SimEventKind::FileWrite { path } if path == &db))
        .count();
    assert_eq!(writes, 1, "the snapshot uploaded once: {ops:?}");
    town.shutdown().await.unwrap();
}
