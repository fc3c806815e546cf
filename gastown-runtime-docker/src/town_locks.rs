//! [`TownLocks`]: one async lock per town, so a runtime's starts of one town run one at a
//! time.
//!
//! Why: the engine cannot tell two racing starts apart. `POST /containers/{id}/start` on
//! a container that is already running answers 304, and bollard (0.21) returns `Ok(())`
//! for a 304 exactly as for a 204, so two starts of one freshly created container would
//! both report `created: true` (seen under load in the conformance suite's
//! `check_concurrent_start`). Serialising the starts of a town inside this runtime makes
//! the second one find the first's running container and adopt it (`created: false`).

use std::collections::HashMap;
use std::sync::Arc;

use gastown_core::TownId;
use parking_lot::Mutex;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// One async lock per town, made on first use and dropped by the last guard when nobody
/// else holds or waits on it (a waiter that gives up can leave its town's entry behind:
/// at most one small entry per town).
#[derive(Debug, Default)]
pub(crate) struct TownLocks {
    locks: Mutex<HashMap<TownId, Arc<AsyncMutex<()>>>>,
}

/// A held town lock; dropping it lets the town's next start in.
pub(crate) struct TownGuard<'a> {
    /// The lock itself, released before the map entry is tidied.
    guard: Option<OwnedMutexGuard<()>>,
    owner: &'a TownLocks,
    town: TownId,
}

impl TownLocks {
    /// Waits for `town`'s lock.
    pub(crate) async fn lock(&self, town: &TownId) -> TownGuard<'_> {
        let lock = self.locks.lock().entry(town.clone()).or_default().clone();
        TownGuard {
            guard: Some(lock.lock_owned().await),
            owner: self,
            town: town.clone(),
        }
    }

    /// Towns with a lock held or waited on (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.lock().len()
    }
}

impl Drop for TownGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.owner.locks.lock();
        // Only the map's own reference left: nobody holds or waits on this town's lock.
        if locks
            .get(&self.town)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(&self.town);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn one_town_waits_another_does_not_and_nothing_is_kept() {
        let locks = TownLocks::default();
        let a = TownId::new("a").unwrap();
        let b = TownId::new("b").unwrap();
        let held = locks.lock(&a).await;
        // A free lock is had on the first poll; a held one is not.
        let other = locks.lock(&b).now_or_never();
        assert!(other.is_some(), "another town is not held up");
        drop(other);
        assert!(
            locks.lock(&a).now_or_never().is_none(),
            "a second lock of one town must wait"
        );
        drop(held);
        drop(locks.lock(&a).now_or_never().expect("free again"));
        assert_eq!(locks.len(), 0, "no entry outlives its last holder");
    }
}
