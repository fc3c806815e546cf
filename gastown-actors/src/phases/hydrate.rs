//! `hydrate`: make the agent's directories and restore its SDK database (the launcher's
//! `database`: kilo's `kilo.db`, opencode's `opencode.db`) from the last snapshot, before its
//! SDK server starts (with nothing to restore, the directories are left to the worktrees
//! phase's one exec). A database already in the container (a warm container) is newer than
//! any snapshot and is kept; asking costs a `stat`, not a copy of the file. A bad latest
//! snapshot falls back to the previous
//! verified one (the bad file kept aside, a `SnapshotFallback` event and the report's
//! `snapshot_fallback` say so); only when both are bad is it a hydrate-phase error.

use gastown_core::{CommandSpec, ContainerRuntimeExt, Result};

use crate::context::{AgentContext, StartProgress};

pub(crate) async fn run(ctx: &AgentContext, mut progress: StartProgress) -> Result<StartProgress> {
    let rt = &ctx.parts.runtime;
    let town = &ctx.parts.town;
    let layout = &ctx.layout;
    let db = layout.sdk_database(&ctx.parts.launcher)?;
    if progress.sdk.is_some() {
        // A running server carried into this run (a model change): its data dir and
        // kilo.db are in the container and in use; nothing to restore, no round trip.
        return Ok(progress);
    }
    if rt.file_exists(town, &db).await? {
        tracing::debug!(town = %town, agent = %ctx.spec.id, "kilo.db already in the container");
        return Ok(progress);
    }
    let snapshots = ctx.parts.snapshots.clone();
    let agent = ctx.spec.id.clone();
    let restored = tokio::task::spawn_blocking(move || snapshots.load_with_fallback(&agent))
        .await
        .map_err(|source| gastown_core::Error::Task {
            context: "snapshot load task".to_owned(),
            source,
        })??;
    // The SDK server's data dir (where it creates a new db when nothing is restored) and the
    // agent's home, in one round trip.
    let dir = db
        .parent()
        .expect("the database is a file under the data dir");
    if restored.is_none() {
        // Nothing to restore: the worktrees phase makes them in its one exec.
        progress.agent_dirs = vec![dir, layout.home()];
        return Ok(progress);
    }
    let mkdir = CommandSpec::new("mkdir")
        .arg("-p")
        .arg(&dir)
        .arg(layout.home())
        .env("PATH", gastown_core::env::AGENT_PATH);
    rt.exec_ok(town, &mkdir).await?;
    if let Some(loaded) = restored {
        if let Some(reason) = loaded.fell_back {
            tracing::warn!(
                town = %town, agent = %ctx.spec.id, %reason,
                "the latest kilo.db snapshot is bad: restored the previous one"
            );
            ctx.publish(crate::events::TownEvent::SnapshotFallback { reason });
            progress.snapshot_fallback = true;
        }
        let bytes = loaded.bytes;
        rt.put_file(town, &db, &bytes).await?;
        tracing::info!(
            town = %town, agent = %ctx.spec.id, bytes = bytes.len(),
            "db_hydrated from snapshot"
        );
    }
    Ok(progress)
}
