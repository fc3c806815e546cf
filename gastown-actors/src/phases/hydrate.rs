//! `hydrate`: make the agent's directories and restore its `kilo.db` from the last snapshot,
//! before its SDK server starts. A `kilo.db` already in the container (a warm container) is
//! newer than any snapshot and is kept.

use gastown_core::{CommandSpec, ContainerRuntimeExt, Result};

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
        .map_err(|source| gastown_core::Error::Task {
            context: "snapshot load task".to_owned(),
            source,
        })??;
    // The SDK server's data dir (where it creates a new db when nothing is restored) and the
    // agent's home, in one round trip.
    let dir = db.parent().expect("kilo.db has a parent");
    let mkdir = CommandSpec::new("mkdir")
        .arg("-p")
        .arg(&dir)
        .arg(layout.home())
        .env("PATH", gastown_core::env::AGENT_PATH);
    rt.exec_ok(town, &mkdir).await?;
    if let Some(bytes) = restored {
        rt.put_file(town, &db, &bytes).await?;
        tracing::info!(
            town = %town, agent = %ctx.spec.id, bytes = bytes.len(),
            "db_hydrated from snapshot"
        );
    }
    Ok(progress)
}
