//! Boot hydration's start of an agent ([`AgentMsg::Prewarm`]): the mayor's prewarm or
//! resume, and the resume of each other registered agent, with nobody waiting
//! (`ARCHITECTURE.md`, *Phase path*: boot hydration, mayor first). It runs the same phases
//! an ensure runs, through the same `begin_run` with `prewarm` set, so an `ensure_mayor`
//! that arrives meanwhile joins it instead of starting a second server.

use ractor::ActorRef;
use tokio::sync::oneshot;

use super::{AgentMsg, AgentState, Mode};

impl AgentState {
    /// Joins what is in flight, answers at once for a running server, else adopts a
    /// server an earlier host left or runs the phases. `done` gets `true` once the agent
    /// is ready, `false` when its start failed or it is draining.
    pub(super) fn on_prewarm(&mut self, myself: &ActorRef<AgentMsg>, done: oneshot::Sender<bool>) {
        match self.mode {
            Mode::Draining => {
                let _ = done.send(false);
            }
            Mode::Starting(_) | Mode::Probing { .. } | Mode::Adopting => {
                self.boot_waiters.push(done)
            }
            Mode::Idle if self.live.is_some() => {
                let _ = done.send(true);
            }
            Mode::Idle if !self.adoption_tried => {
                self.boot_waiters.push(done);
                self.begin_adopt(myself);
            }
            Mode::Idle => {
                self.boot_waiters.push(done);
                let decision = self.decide(None);
                self.begin_run(myself, decision, true);
            }
        }
    }
}
