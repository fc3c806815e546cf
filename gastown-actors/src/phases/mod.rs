//! The five startup phases, `token → hydrate → worktrees → sdk → session`, as plain async
//! functions. The [`PhaseStep`](crate::step::PhaseStep) actor runs one of them under a
//! timeout and reports back to its AgentActor.

mod hydrate;
mod sdk;
mod session;
mod token;
mod worktrees;

pub(crate) use sdk::stop_sdk;
// run_phase is also used by bench_support.
pub(crate) use worktrees::{refresh_browse_worktrees, rig_mount_point, BrowseOutcome};

use gastown_core::{Result, StartupPhase};

use crate::context::{AgentContext, StartProgress};

/// Runs one phase on `progress` and returns the updated progress.
pub(crate) async fn run_phase(
    phase: StartupPhase,
    ctx: &AgentContext,
    progress: StartProgress,
) -> Result<StartProgress> {
    match phase {
        StartupPhase::Token => token::run(ctx, progress).await,
        StartupPhase::Hydrate => hydrate::run(ctx, progress).await,
        StartupPhase::Worktrees => worktrees::run(ctx, progress).await,
        StartupPhase::Sdk => sdk::run(ctx, progress).await,
        StartupPhase::Session => session::run(ctx, progress).await,
    }
}
