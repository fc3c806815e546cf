//! The town store's rows as the pure policies see them.
//!
//! [`policy`](crate::policy) decides on plain views ([`TownView`], [`AgentView`],
//! [`BeadView`]) and imports nothing from the store; the conversion from stored records
//! lives here, on the store's side, so a policy can be tested on hand-built views and the
//! store's schema can change without touching a decision.

use super::{AgentRecord, BeadRecord};
use crate::policy::{AgentView, BeadView, TownView};

impl From<&AgentRecord> for AgentView {
    /// The fields [`has_active_work`](crate::policy::has_active_work) reads: role, status,
    /// whether a hook is held (not which bead), and the two times (ms since the Unix epoch).
    fn from(record: &AgentRecord) -> Self {
        Self {
            role: record.role,
            status: record.status,
            has_hook: record.hook.is_some(),
            last_activity_ms: record.last_activity_ms,
            heartbeat_ms: record.heartbeat_ms,
        }
    }
}

impl From<&BeadRecord> for BeadView {
    /// The bead's kind and status, and whether it has an assignee (not who).
    fn from(record: &BeadRecord) -> Self {
        Self {
            kind: record.kind.as_str().to_owned(),
            status: record.status,
            assigned: record.assignee.is_some(),
        }
    }
}

/// The town as [`has_active_work`](crate::policy::has_active_work) sees it: one
/// [`AgentView`] per agent row and one [`BeadView`] per bead row, in the order given.
///
/// Takes rows already read (e.g. [`TownStore::agents`](super::TownStore::agents) and
/// [`TownStore::beads`](super::TownStore::beads)), so it cannot fail and does no I/O.
pub fn town_view(agents: &[AgentRecord], beads: &[BeadRecord]) -> TownView {
    TownView {
        agents: agents.iter().map(AgentView::from).collect(),
        beads: beads.iter().map(BeadView::from).collect(),
    }
}
