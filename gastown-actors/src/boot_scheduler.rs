//! [`BootScheduler`]: at most N SDK server boots at once on a runtime, mayors first.
//!
//! A kilo boot is about 2.5 s of pure CPU (ARCHITECTURE.md, *SDK server*): when many
//! towns cold-start together, unbounded parallel boots share the host's cores and every
//! boot — the mayors' too — ends late. The scheduler hands out boot slots, as many as the
//! host has cores by default, and when slots are short it serves the waiting boots by
//! [`BootPriority`] — every mayor before any worker, workers before pool refills — and in
//! arrival order within a priority. Mayor-first boot scheduling is the Gastown cold-start
//! analysis's recommendation 2 carried from one town to the whole host (this project).
//!
//! A slot covers a server's whole CPU-bound start: the sdk phase's boot and the session
//! phase after it, since kilo sets up the project (about 0.6–1 CPU-s, kilo 7.7.9) on the
//! first request naming it, the session's creation. A failed sdk attempt gives its slot
//! back at once; the run gives it back when it ends, ready or failed.
//!
//! Give every town of a runtime the same scheduler
//! ([`TownOptions::with_boot_scheduler`](crate::TownOptions::with_boot_scheduler)): one
//! scheduler per runtime. A town without one boots unscheduled.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use gastown_core::Role;
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Which boots go first when slots are short: lower is sooner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BootPriority {
    /// A mayor: the user waits on it.
    Mayor,
    /// A worker (polecat, refinery): a start or a boot hydration resume.
    Worker,
    /// Refilling a pool of spare servers: only when nothing else waits (no pool exists yet).
    Pool,
}

impl BootPriority {
    /// The priority of starting an agent of `role`: [`BootPriority::Mayor`] for the mayor,
    /// [`BootPriority::Worker`] for every other role.
    pub fn of(role: Role) -> Self {
        match role {
            Role::Mayor => BootPriority::Mayor,
            _ => BootPriority::Worker,
        }
    }
}

/// What the scheduler keeps under its lock.
struct State {
    /// Slots handed out and not yet returned.
    running: usize,
    /// Waiting boots by (priority, arrival); each is woken with its slot.
    waiting: BTreeMap<(BootPriority, u64), oneshot::Sender<BootSlot>>,
    /// The next arrival number.
    next: u64,
}

/// Hands out SDK boot slots: at most [`capacity`](Self::capacity) at once, the waiting
/// boots served by priority, then arrival. Cheap to share (`Arc`); a slot returns itself
/// when dropped, and a waiter that gives up (its future dropped) is skipped.
pub struct BootScheduler {
    capacity: usize,
    state: Mutex<State>,
}

impl fmt::Debug for BootScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("BootScheduler")
            .field("capacity", &self.capacity)
            .field("running", &state.running)
            .field("waiting", &state.waiting.len())
            .finish()
    }
}

impl BootScheduler {
    /// A scheduler allowing `capacity` boots at once (at least 1).
    pub fn new(capacity: usize) -> Arc<BootScheduler> {
        Arc::new(BootScheduler {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                running: 0,
                waiting: BTreeMap::new(),
                next: 0,
            }),
        })
    }

    /// A scheduler allowing as many boots at once as this host has cores
    /// (`std::thread::available_parallelism`, 1 when unknown): each boot is CPU-bound.
    pub fn per_host() -> Arc<BootScheduler> {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// How many boots may run at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots handed out now.
    pub fn running(&self) -> usize {
        self.state.lock().running
    }

    /// Boots waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.state.lock().waiting.len()
    }

    /// Waits for a boot slot at `priority`; the boot runs while the returned slot lives.
    /// A free slot is taken at once only when nobody waits (so a late worker cannot jump
    /// a queue of mayors).
    pub async fn acquire(self: &Arc<Self>, priority: BootPriority) -> BootSlot {
        let rx = {
            let mut state = self.state.lock();
            if state.running < self.capacity && state.waiting.is_empty() {
                state.running += 1;
                return BootSlot {
                    scheduler: self.clone(),
                };
            }
            let (tx, rx) = oneshot::channel();
            let arrival = state.next;
            state.next += 1;
            state.waiting.insert((priority, arrival), tx);
            rx
        };
        match rx.await {
            Ok(slot) => slot,
            // The sender is dropped only with the scheduler, which this call holds; were
            // it dropped anyway, the boot goes ahead on a slot counted now.
            Err(_) => {
                self.state.lock().running += 1;
                BootSlot {
                    scheduler: self.clone(),
                }
            }
        }
    }

    /// A slot came back: hand it to the first waiter still waiting, else free it.
    fn release(self: &Arc<Self>) {
        let mut state = self.state.lock();
        while let Some((_, tx)) = state.waiting.pop_first() {
            let slot = BootSlot {
                scheduler: self.clone(),
            };
            match tx.send(slot) {
                Ok(()) => return,
                // That waiter gave up: its slot was never counted; try the next one
                // without running this one's drop (which would release again).
                Err(unclaimed) => std::mem::forget(unclaimed),
            }
        }
        state.running = state.running.saturating_sub(1);
    }
}

/// One boot's slot of a [`BootScheduler`]; dropping it lets the next boot start.
pub struct BootSlot {
    scheduler: Arc<BootScheduler>,
}

impl fmt::Debug for BootSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootSlot").finish_non_exhaustive()
    }
}

impl Drop for BootSlot {
    fn drop(&mut self) {
        self.scheduler.release();
    }
}
