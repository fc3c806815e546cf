//! [`PausedBudget`]: a bound on the memory that paused towns hold on one host.
//!
//! A paused town trades memory for wake time: its frozen SDK servers stay resident
//! (measured here: about 600 MB per paused kilo server; no swap on these hosts, and cgroup
//! v1 has no `memory.reclaim`). Towns that share a budget register when they pause and
//! leave it when they wake or stop; when the paused total exceeds the budget, the oldest
//! paused towns are told to stop (drained and snapshotted as usual) until it fits
//! (`ARCHITECTURE.md`, *Lifecycle timings*).

use std::fmt;
use std::sync::Arc;

use gastown_core::TownId;
use parking_lot::Mutex;

/// What a paused town is told when the budget evicts it.
pub(crate) type Evict = Box<dyn Fn() + Send + Sync>;

struct Entry {
    town: TownId,
    bytes: u64,
    /// Admission order: the smallest is the oldest paused town.
    seq: u64,
    evict: Evict,
}

/// The memory budget of paused towns on a host, shared (`Arc`) by the towns it bounds.
pub struct PausedBudget {
    limit_bytes: u64,
    inner: Mutex<(u64, Vec<Entry>)>,
}

impl fmt::Debug for PausedBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PausedBudget")
            .field("limit_bytes", &self.limit_bytes)
            .field("paused_bytes", &self.paused_bytes())
            .finish()
    }
}

impl PausedBudget {
    /// A budget of `limit_bytes` bytes for every paused town sharing it.
    pub fn new(limit_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            limit_bytes,
            inner: Mutex::new((0, Vec::new())),
        })
    }

    /// The budget, in bytes.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// The memory the paused towns hold now, in bytes (their estimates).
    pub fn paused_bytes(&self) -> u64 {
        self.inner.lock().1.iter().map(|e| e.bytes).sum()
    }

    /// The towns paused now, oldest first.
    pub fn paused_towns(&self) -> Vec<TownId> {
        let inner = self.inner.lock();
        let mut entries: Vec<_> = inner.1.iter().map(|e| (e.seq, e.town.clone())).collect();
        entries.sort();
        entries.into_iter().map(|(_, t)| t).collect()
    }

    /// Registers `town` as paused, holding `bytes`; evicts the oldest paused towns (the
    /// new one last) while the total is over the budget.
    pub(crate) fn admit(&self, town: TownId, bytes: u64, evict: Evict) {
        let evicted = {
            let mut inner = self.inner.lock();
            inner.0 += 1;
            let seq = inner.0;
            inner.1.retain(|e| e.town != town);
            inner.1.push(Entry {
                town,
                bytes,
                seq,
                evict,
            });
            inner.1.sort_by_key(|e| e.seq);
            let mut evicted = Vec::new();
            while inner.1.iter().map(|e| e.bytes).sum::<u64>() > self.limit_bytes {
                evicted.push(inner.1.remove(0));
            }
            evicted
        };
        // Outside the lock: an eviction only sends the town a message.
        for entry in evicted {
            tracing::info!(town = %entry.town, "paused memory over budget: stopping the oldest paused town");
            (entry.evict)();
        }
    }

    /// `town` is no longer paused (woken or stopped).
    pub(crate) fn release(&self, town: &TownId) {
        self.inner.lock().1.retain(|e| &e.town != town);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn town(n: &str) -> TownId {
        TownId::new(n).unwrap()
    }

    #[test]
    fn the_oldest_paused_towns_are_evicted_until_the_total_fits() {
        let budget = PausedBudget::new(1_000);
        let evicted = Arc::new(AtomicUsize::new(0));
        let counter = |n: usize| {
            let evicted = evicted.clone();
            Box::new(move || {
                evicted.fetch_add(n, Ordering::SeqCst);
            }) as Evict
        };
        budget.admit(town("a"), 400, counter(1));
        budget.admit(town("b"), 400, counter(10));
        assert_eq!(evicted.load(Ordering::SeqCst), 0);
        budget.admit(town("c"), 400, counter(100));
        assert_eq!(evicted.load(Ordering::SeqCst), 1, "the oldest, a, went");
        assert_eq!(budget.paused_towns(), [town("b"), town("c")]);
        budget.release(&town("b"));
        assert_eq!(budget.paused_bytes(), 400);
        budget.admit(town("d"), 900, counter(1_000));
        assert_eq!(evicted.load(Ordering::SeqCst), 101, "c went next");
        assert_eq!(budget.paused_towns(), [town("d")]);
    }
}
