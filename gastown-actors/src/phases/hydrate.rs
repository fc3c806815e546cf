//! `hydrate`: make the agent's directories and restore its `kilo.db` from the last snapshot,
//! before its SDK server starts. A `kilo.db` already in the container (a warm container) is
//! newer than any snapshot and is kept.

use gastown_core::{ContainerRuntimeExt, Result};

use crate::context::{AgentContext, StartProgress};

pub(super) async fn run(ctx: &AgentContext, progress: StartProgress) -> Result<StartProgress> {
    let rt = &ctx.parts.runtime;
    let town = &ctx.parts.town;
    let layout = &ctx.layout;
    let db = layout.kilo_db();
    if rt.file_exists(town, &db).await? {
        tracing::debug!(town = %town, agent = %ctx.spec.id, "kilo.db already in the container");
        return Ok(progress);
    }
    let snapshots = ctx.parts.snapshots.clone();
    let agent = ctx.spec.id.clone();
    let restored = tokio::task::spawn_blocking(move || snapshots.load(&agent))
        .await
        .map_err(|e| gastown_core::Error::Runtime {
            runtime: "actors",
            message: format!("snapshot load task: {e}"),
        })??;
    match restored {
        Some(bytes) => {
            rt.put_file(town, &db, &bytes).await?;
            tracing::info!(
                town = %town, agent = %ctx.spec.id, bytes = bytes.len(),
                "db_hydrated from snapshot"
            );
        }
        None => {
            // Nothing to restore: make the directory so the SDK server creates a new db.
            let dir = db.parent().expect("kilo.db has a parent");
            rt.create_dir_all(town, &dir).await?;
        }
    }
    Ok(progress)
}
