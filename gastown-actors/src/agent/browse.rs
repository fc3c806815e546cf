//! The mayor's browse worktrees, off the critical path (`ARCHITECTURE.md`, *Phase path*;
//! the Gastown cold-start analysis, recommendation 3): after each start of the mayor a
//! background task sets up or fetches every rig's read-only checkout and rewrites
//! `AGENTS.md`; the agent keeps the outcome as a [`BrowseState`] for
//! [`AgentInfo`](crate::ready::AgentInfo).

use ractor::ActorRef;

use super::{AgentMsg, AgentState};
use crate::phases::{refresh_browse_worktrees, BrowseOutcome};
use crate::ready::BrowseState;

impl AgentState {
    /// Sets up or refreshes the mayor's browse worktrees in a spawned task that reports
    /// [`AgentMsg::BrowseDone`]; one at a time (a refresh already running is enough).
    pub(super) fn start_browse_refresh(&mut self, myself: &ActorRef<AgentMsg>) {
        if self.browse_running {
            return;
        }
        self.browse_running = true;
        self.browse = Some(BrowseState::Warming);
        let ctx = self.ctx.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let outcomes = refresh_browse_worktrees(&ctx).await;
            let _ = me.cast(AgentMsg::BrowseDone(outcomes));
        });
    }

    /// The background setup finished: `Ready`, or `Failed` naming each rig that failed.
    pub(super) fn on_browse_done(&mut self, outcomes: Vec<BrowseOutcome>) {
        self.browse_running = false;
        let failed: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match &o.state {
                BrowseState::Failed(e) => Some(format!("{}: {e}", o.rig.id)),
                _ => None,
            })
            .collect();
        self.browse = Some(if failed.is_empty() {
            BrowseState::Ready
        } else {
            BrowseState::Failed(failed.join("; "))
        });
    }
}
