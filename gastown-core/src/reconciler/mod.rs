//! The reconciler: drains the town's event queue and repairs agent/bead state
//! (ARCHITECTURE.md, *Vocabulary* and *Lifecycle timings*), as pure functions of data.
//!
//! The actors load a [`ReconcileState`] once per alarm tick
//! (`TownStore::reconcile_state`), then for each pending event
//! (`TownStore::pending_reconcile_events`) call [`reconcile`], write its
//! [`Action`]s together with the event's processed mark in one transaction
//! (`TownStore::apply_reconciled`), mirror them into the loaded state
//! ([`ReconcileState::apply`]) and carry out its [`Effect`]s (the I/O: dispatching a bead,
//! stopping an idle agent). After the queue, [`sweep`] finds what time alone changed:
//! due dispatch retries, idle exits, stale heartbeats.
//!
//! No I/O and no clock reads here: `now_ms` (ms since the Unix epoch) is a parameter, so
//! every rule and boundary is unit-tested without actors or time.
//!
//! Where each rule comes from:
//!
//! - an event about a bead or agent that no longer exists is terminal — handled once,
//!   never retried ([`Reconciled::missing`]; Kilo Gastown PR #3047);
//! - a dispatch whose error came after the request was sent leaves the agent `working`,
//!   and the stale-heartbeat rule cleans up if it never started (Kilo Gastown PR #3151);
//! - a failed dispatch is retried after a 30 s cooldown, at most 5 attempts in all
//!   ([`DispatchRetry::DEFAULT`](crate::policy::DispatchRetry::DEFAULT)); heartbeats are
//!   stale after 90 s; workers idle-exit after 120 s (polecat) or 600 s (refinery), 10 s
//!   while draining (ARCHITECTURE.md, *Lifecycle timings*);
//! - the issue → merge request → refinery flow is Kilo Gastown's review queue (PR #3151).
//!
//! # The dispatch contract
//!
//! The rules assume what the actors do on [`Effect::Dispatch`] (and on a sling): before
//! starting the agent they write the bead `in_progress` with `assignee` = the agent and
//! set the agent's hook to the bead. An event then changes the bead only while it is
//! still so assigned; a bead already released, re-dispatched to another agent or finished
//! is left alone (the event is stale — a duplicate, or overtaken by the sweep).

mod event;
mod rules;
mod sweep;

use std::collections::BTreeMap;

use crate::ids::{AgentId, BeadId};
use crate::status::AgentStatus;
use crate::store::{AgentRecord, BeadRecord};

pub use event::ReconcileEvent;
pub use rules::reconcile;
pub use sweep::sweep;

/// Everything the reconciler reads, loaded once per tick (`TownStore::reconcile_state`)
/// and kept current with [`ReconcileState::apply`] between the events of that tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileState {
    /// Every bead of the town, by id.
    pub beads: BTreeMap<BeadId, BeadRecord>,
    /// Every agent row of the town, by id.
    pub agents: BTreeMap<AgentId, AgentRecord>,
}

impl ReconcileState {
    /// A state holding `beads` and `agents` (a later record with the same id replaces an
    /// earlier one).
    pub fn from_records(
        beads: impl IntoIterator<Item = BeadRecord>,
        agents: impl IntoIterator<Item = AgentRecord>,
    ) -> Self {
        Self {
            beads: beads.into_iter().map(|b| (b.id.clone(), b)).collect(),
            agents: agents.into_iter().map(|a| (a.id.clone(), a)).collect(),
        }
    }

    /// Applies `actions` to this in-memory state as `TownStore::apply_reconciled` does to
    /// the store, so the next event of the tick sees them. An action on an agent the state
    /// does not hold changes nothing ([`Action::Unregister`] never does: the registry is
    /// not part of the state).
    pub fn apply(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::PutBead(bead) => {
                    self.beads.insert(bead.id.clone(), bead.clone());
                }
                Action::SetAgentStatus { agent, status } => {
                    if let Some(a) = self.agents.get_mut(agent) {
                        a.status = *status;
                    }
                }
                Action::SetHook { agent, hook } => {
                    if let Some(a) = self.agents.get_mut(agent) {
                        a.hook = hook.as_ref().map(|h| h.as_str().to_owned());
                    }
                }
                Action::Unregister { .. } => {}
            }
        }
    }
}

/// A store change, applied in one transaction with the event's processed mark
/// (`TownStore::apply_reconciled`).
#[derive(Debug, Clone, PartialEq, Eq)]
// A handful of actions per event: the copy a `Box<BeadRecord>` would save is not worth
// the indirection in every match of the actor layer.
#[allow(clippy::large_enum_variant)]
pub enum Action {
    /// Insert the bead, or replace every column of the existing one with its id.
    PutBead(BeadRecord),
    /// Set the agent's status. Fails the transaction when the store has no such agent.
    SetAgentStatus {
        /// The agent.
        agent: AgentId,
        /// Its new status.
        status: AgentStatus,
    },
    /// Set (`Some`) or clear (`None`) the agent's hook, in its agent row and in its
    /// registry row if it has one. Fails the transaction when the store has no such agent.
    SetHook {
        /// The agent.
        agent: AgentId,
        /// The bead it is bound to from now on, if any.
        hook: Option<BeadId>,
    },
    /// Remove the agent from the registry (it is not resumed at the next boot); not an
    /// error when it is not registered.
    Unregister {
        /// The agent.
        agent: AgentId,
    },
}

/// Work for the actor layer: the I/O a pure function cannot do. An effect is advice about
/// the state the reconciler saw; the actor checks it is still due when it acts (a
/// [`sweep`] repeats an effect on every tick until the state shows it done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Dispatch `bead` (an open, unassigned bead): to `agent`, or with `None` to an agent
    /// the actor picks for the bead's kind (an issue to a polecat, a merge request to a
    /// refinery). See the module's *dispatch contract*.
    Dispatch {
        /// The bead to dispatch.
        bead: BeadId,
        /// The agent to dispatch it to, when the reconciler knows.
        agent: Option<AgentId>,
    },
    /// Stop `agent` (its SDK server), then queue [`ReconcileEvent::AgentExited`]. The
    /// actor ignores it for an agent whose server is not running (an exited agent's row
    /// stays `idle`, so the sweep names it again).
    IdleExit {
        /// The agent.
        agent: AgentId,
    },
}

/// What [`reconcile`] or [`sweep`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Store changes, in order (apply all or none).
    pub actions: Vec<Action>,
    /// I/O for the actors, in order, after the actions are written.
    pub effects: Vec<Effect>,
    /// `Some(reason)` when the event is terminal because its bead or agent no longer
    /// exists (Kilo Gastown PR #3047): no actions, and the event is marked processed.
    pub missing: Option<String>,
}

impl Reconciled {
    /// True when there is nothing to write or do (a stale or duplicate event, a quiet
    /// sweep).
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.effects.is_empty()
    }
}
