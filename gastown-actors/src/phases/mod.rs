//! The five startup phases, `token → hydrate → worktrees → sdk → session`: one file each,
//! each a plain async function `run(&AgentContext, StartProgress) -> Result<StartProgress>`
//! on the `ContainerRuntime` trait, which the AgentActor calls by name (`agent/mod.rs`,
//! `run_phase`). [`spawn_attempt`] (`attempt.rs`) runs one attempt of one of them as a
//! supervised step: a timeout, a caught panic, an abort, an outcome reported through a
//! callback. The rest is what other steps share with the phases: the sdk phase's server
//! stop and adoption, the server boot a warm pool shares with it (`server.rs`), the
//! worktree phase's git command and the mayor's browse worktrees, and a polecat's branch
//! store.

mod attempt;
mod branch_store;
pub(crate) mod hydrate;
pub(crate) mod sdk;
mod server;
pub(crate) mod session;
pub(crate) mod token;
pub(crate) mod worktrees;

pub(crate) use attempt::{spawn_attempt, AttemptDone};
pub(crate) use branch_store::save as save_branch;
pub(crate) use sdk::{adopt, stop_sdk, stop_server};
pub(crate) use server::{server_lock, ServerBoot};
pub(crate) use worktrees::{
    git, refresh_browse_worktrees, workspace_command, BrowseOutcome, BRANCH_EXISTS,
};
