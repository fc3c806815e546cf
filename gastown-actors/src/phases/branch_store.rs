//! A polecat's branch kept out of the container: after a turn that left new commits, the
//! branch is saved as a git bundle (`<default>..<branch>`) under the town's state
//! directory; a polecat's worktree made later — a new container after a shutdown, an idle
//! stop or a lost container — fetches its branch from that bundle, so the commits survive
//! the container and its rig clones (`ARCHITECTURE.md`, *Persistence*).

use std::path::PathBuf;

use gastown_core::{ContainerPath, ContainerRuntimeExt, Result};

use super::worktrees::git;
use crate::context::AgentContext;

/// The host file of `branch`'s bundle: its name with `/` spelled `--` (branch names hold
/// no `--` segments of their own in gastown: `gt/<polecat>/<bead>`).
pub(crate) fn bundle_file(ctx: &AgentContext, branch: &str) -> PathBuf {
    ctx.parts
        .branches_dir
        .join(format!("{}.bundle", branch.replace('/', "--")))
}

/// Where the bundle is written inside the container (the agent's home).
fn container_bundle(ctx: &AgentContext) -> Result<ContainerPath> {
    ctx.layout.home().join("branch.bundle")
}

/// Saves `branch` (its commits over `default`) from the rig clone `clone` as a bundle in
/// the state directory, replacing the last one (written to a temp file, then renamed).
pub(crate) async fn save(
    ctx: &AgentContext,
    clone: &ContainerPath,
    default: &str,
    branch: &str,
) -> Result<()> {
    let rt = &ctx.parts.runtime;
    let town = &ctx.parts.town;
    let inside = container_bundle(ctx)?;
    rt.exec_ok(
        town,
        &git(ctx, clone)
            .args(["bundle", "create", "-q"])
            .arg(&inside)
            .arg(format!("refs/heads/{default}..refs/heads/{branch}")),
    )
    .await?;
    let bytes = rt.get_file(town, &inside).await?;
    let file = bundle_file(ctx, branch);
    let io = |what: &str, e| gastown_core::Error::io(format!("{what} {}", file.display()), e);
    std::fs::create_dir_all(&ctx.parts.branches_dir).map_err(|e| io("creating the dir of", e))?;
    let tmp = file.with_extension("bundle.tmp");
    std::fs::write(&tmp, &bytes).map_err(|e| io("writing", e))?;
    std::fs::rename(&tmp, &file).map_err(|e| io("renaming", e))?;
    Ok(())
}

/// Brings `branch` back into the rig clone `clone` from its saved bundle. `Ok(false)` when
/// no bundle was saved for it.
pub(crate) async fn restore(
    ctx: &AgentContext,
    clone: &ContainerPath,
    branch: &str,
) -> Result<bool> {
    let file = bundle_file(ctx, branch);
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(gastown_core::Error::io(
                format!("reading {}", file.display()),
                e,
            ))
        }
    };
    let rt = &ctx.parts.runtime;
    let town = &ctx.parts.town;
    let inside = container_bundle(ctx)?;
    rt.put_file(town, &inside, &bytes).await?;
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    rt.exec_ok(
        town,
        &git(ctx, clone)
            .args(["fetch", "-q"])
            .arg(&inside)
            .arg(refspec),
    )
    .await?;
    Ok(true)
}
