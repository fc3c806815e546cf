//! Beads through the handle: create, read, update and delete a town's beads, and sling one
//! to a rig (`ARCHITECTURE.md`, *Workers and the reconciler*).
//!
//! Reads and writes of bead rows go straight to the town store (one short SQLite statement
//! each, guarded by the store's mutex), so listing beads never queues behind a start. A
//! sling goes through the TownActor, which picks the polecat, hooks the bead and
//! dispatches it (`town/work.rs`).

use gastown_core::store::BeadRecord;
use gastown_core::{BeadId, BeadStatus, RigId};

use super::{TownHandle, TownMsg};
use crate::error::{Error, Result};

/// A bead slung to a rig: who works on it, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slung {
    /// The bead (now `in_progress`).
    pub bead: BeadId,
    /// The rig whose worktree the polecat works in.
    pub rig: RigId,
    /// The polecat the bead is hooked to (`polecat-<n>`, a new one per dispatch).
    pub polecat: gastown_core::AgentId,
    /// The polecat's branch, `gt/<polecat>/<bead>`, made from the rig's default branch.
    pub branch: String,
}

impl TownHandle {
    /// Creates an open issue bead with a generated id (`bead-` and 8 hex digits).
    ///
    /// # Errors
    /// [`Error::Core`] (`Store`) when the write fails; nothing is written then.
    pub fn create_bead(&self, title: &str, body: &str) -> Result<BeadRecord> {
        let random = gastown_core::Secret::random();
        let id = BeadId::new(format!("bead-{}", &random.expose()[..8]))?;
        self.create_bead_with_id(id, title, body)
    }

    /// Creates an open issue bead with id `id`.
    ///
    /// # Errors
    /// [`Error::Core`] (`Store`) when a bead with this id exists (it is left as it was) or
    /// the write fails.
    pub fn create_bead_with_id(&self, id: BeadId, title: &str, body: &str) -> Result<BeadRecord> {
        let bead = BeadRecord::issue(id, title, body, now_ms());
        self.store.insert_bead(&bead)?;
        Ok(bead)
    }

    /// The bead with id `id`, or `None`.
    ///
    /// # Errors
    /// [`Error::Core`] (`Store`) when the read fails.
    pub fn bead(&self, id: &BeadId) -> Result<Option<BeadRecord>> {
        Ok(self.store.bead(id)?)
    }

    /// Every bead of the town, ordered by id.
    ///
    /// # Errors
    /// [`Error::Core`] (`Store`) when the read fails.
    pub fn beads(&self) -> Result<Vec<BeadRecord>> {
        Ok(self.store.beads()?)
    }

    /// Sets a bead's status (e.g. `closed` once its merge request is merged) and returns
    /// the updated bead.
    ///
    /// # Errors
    /// [`Error::BeadNotFound`] for an unknown bead; [`Error::Core`] (`Store`) when the
    /// write fails (the bead is left as it was).
    pub fn update_bead_status(&self, id: &BeadId, status: BeadStatus) -> Result<BeadRecord> {
        let mut bead = self
            .store
            .bead(id)?
            .ok_or_else(|| Error::BeadNotFound { bead: id.clone() })?;
        bead.status = status;
        bead.updated_ms = now_ms();
        if !self.store.update_bead(&bead)? {
            return Err(Error::BeadNotFound { bead: id.clone() });
        }
        Ok(bead)
    }

    /// Deletes a bead and, in the same transaction, every queued reconciler event about it
    /// (an event about a deleted bead would otherwise be retried forever — Kilo Gastown
    /// PR #3047). Deleting an unknown bead is not an error.
    ///
    /// # Errors
    /// [`Error::Core`] (`Store`) when the write fails (nothing is deleted then).
    pub fn delete_bead(&self, id: &BeadId) -> Result<()> {
        Ok(self.store.delete_bead(id)?)
    }

    /// Slings an open issue bead to `rig`: the town starts a new polecat (`polecat-<n>`)
    /// with its own worktree of the rig on the branch `gt/<polecat>/<bead>`, hooks the bead
    /// to it (`in_progress`), registers it, and sends it the bead as a real prompt. Returns
    /// once the bead is hooked; the start and the prompt run in the background. A dispatch
    /// that fails is retried by the reconciler (30 s apart, at most 5 attempts — Kilo
    /// Gastown; `ARCHITECTURE.md`, *Lifecycle timings*), then the bead is `failed` with the
    /// last error; when the polecat's turn ends, its branch decides: new commits put the
    /// bead `in_review` with a merge request bead for the rig's refinery.
    ///
    /// # Errors
    /// [`Error::UnknownRig`], [`Error::BeadNotFound`], [`Error::BeadNotSlingable`] (not an
    /// open issue); [`Error::Core`] (`Store`); [`Error::Stopped`]. Nothing changes on an
    /// error.
    pub async fn sling(&self, bead: &BeadId, rig: &RigId) -> Result<Slung> {
        let bead = bead.clone();
        let rig = rig.clone();
        self.call(|reply| TownMsg::Sling { bead, rig, reply })
            .await?
    }
}

/// The town clock's ms since the Unix epoch (bead timestamps; virtual time in tests).
fn now_ms() -> i64 {
    crate::clock::Clock::new().now_ms()
}
