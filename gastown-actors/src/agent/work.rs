//! A hooked polecat's work, seen from its AgentActor: after each of its turns the town
//! looks at the bead's branch in the polecat's worktree and queues what it found for the
//! reconciler (`ReconcileEvent::WorkChecked`): new commits put the bead in review, none
//! count as a failed dispatch (`ARCHITECTURE.md`, *Workers and the reconciler*).

use gastown_core::reconciler::ReconcileEvent;
use gastown_core::{ContainerRuntimeExt, Result, Role};

use crate::context::AgentContext;
use crate::phases::git;

/// After a turn of a hooked polecat on a branch: counts the branch's commits over the
/// rig's default branch in a spawned task and queues a `WorkChecked` event. Nothing for
/// other agents.
pub(super) fn spawn_work_check(ctx: &AgentContext) {
    let (Role::Polecat, Some(bead), Some(branch)) = (
        ctx.spec.role,
        ctx.spec.hook.clone(),
        ctx.spec.branch.clone(),
    ) else {
        return;
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let event = match inspect(&ctx, &branch).await {
            Ok((commits, head)) => ReconcileEvent::WorkChecked {
                bead,
                agent: ctx.spec.id.clone(),
                branch,
                commits,
                head,
            },
            Err(e) => {
                // A worktree that cannot be read has produced nothing the refinery could
                // review: the dispatch failed, and the reconciler retries it.
                tracing::warn!(agent = %ctx.spec.id, error = %e, "inspecting the polecat's branch");
                ReconcileEvent::DispatchFailed {
                    bead,
                    agent: ctx.spec.id.clone(),
                    error: format!("inspecting branch {branch}: {e}"),
                    maybe_accepted: false,
                }
            }
        };
        if let Err(e) = ctx.parts.store.enqueue(&event) {
            tracing::warn!(agent = %ctx.spec.id, error = %e, "queueing the work check");
        }
    });
}

/// The number of commits on `branch` that the rig's default branch does not have, and the
/// branch's tip.
async fn inspect(ctx: &AgentContext, branch: &str) -> Result<(u32, Option<String>)> {
    let rt = &ctx.parts.runtime;
    let town = &ctx.parts.town;
    let default = ctx
        .spec
        .rig
        .as_ref()
        .and_then(|id| ctx.parts.rigs.iter().find(|r| &r.id == id))
        .map(|r| r.default_branch.clone())
        .unwrap_or_else(|| "main".to_owned());
    let dir = ctx.work_dir();
    let range = format!("refs/heads/{default}..refs/heads/{branch}");
    let count = rt
        .exec_ok(town, &git(ctx, &dir).args(["rev-list", "--count", &range]))
        .await?;
    let commits = count.stdout_str().trim().parse::<u32>().unwrap_or(0);
    if commits > 0 {
        // Kept out of the container before the reconciler hears of it: the bead goes to
        // review only with its commits safe.
        let clone =
            gastown_core::AgentLayout::rig_clone(ctx.spec.rig.as_ref().expect("a polecat's rig"));
        crate::phases::save_branch(ctx, &clone, &default, branch).await?;
    }
    let head = rt
        .exec_ok(
            town,
            &git(ctx, &dir).args(["rev-parse", &format!("refs/heads/{branch}")]),
        )
        .await
        .ok()
        .map(|out| out.stdout_str().trim().to_owned())
        .filter(|h| !h.is_empty());
    Ok((commits, head))
}
