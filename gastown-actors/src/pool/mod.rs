//! [`WarmPool`]: spare mayor SDK servers, booted ahead of time, that brand-new towns claim.
//!
//! A kilo boot is about 2.5 s of pure CPU, and it is most of a cold mayor start
//! (`ARCHITECTURE.md`, *SDK server*). A pool keeps [`WarmPoolOptions::size`] servers booted,
//! each in a container of its own (local: a directory under the runtime's root; Docker: a
//! container with its server running), each with its own random password and *no* town's
//! identity, token or credential: those are files of the agent's secrets directory, which
//! every start writes (`GASTOWN_SECRETS_DIR`), never variables of a server's boot
//! environment. So a pooled server's environment is byte-for-byte what a fresh start of the
//! same configuration gives, and its tools read the claiming town's secrets the moment the
//! town's start has written them.
//!
//! # Claim
//! A town whose container does not exist and that has no snapshot of its mayor claims a
//! server when its first start asks for the container:
//! 1. the pool hands over its oldest live server whose config hash equals the one the
//!    town's mayor would have with that server's password (same launcher, models and
//!    providers); otherwise the town starts cold and its report says `pooled: false`;
//! 2. the runtime hands the server's container to the town
//!    ([`ContainerRuntime::rename_container`]); a runtime that cannot (the default, or
//!    Docker with rig mounts) leaves the server in the pool and the town starts cold;
//! 3. the town keeps the server's password as its mayor's, its container is adopted
//!    (`created == false`), and its mayor's start adopts the server: the token, hydrate and
//!    worktrees phases run as always (writing the secrets directory), the sdk phase keeps
//!    the server, the session phase creates the session. The report says
//!    `prewarmed: true, pooled: true`.
//!
//! A claimed server never returns to the pool: no server serves two towns. Every claim
//! starts a refill in the background, at [`BootPriority::Pool`] on the pool's boot
//! scheduler (after every waiting mayor and worker boot). This is this project's design.
//!
//! [`ContainerRuntime::rename_container`]: gastown_core::ContainerRuntime::rename_container

mod slot;

pub(crate) use slot::town_mayor_env;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gastown_core::sdk::{HttpConnector, SdkConnector};
use gastown_core::{
    ContainerOptions, ContainerRuntime, Error as CoreError, Secret, TownConfig, TownId,
};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::boot_scheduler::{BootPriority, BootScheduler};
use crate::options::StartOptions;
use slot::Slot;

/// How long a refill waits after a failed boot before the next one, doubled per failure
/// up to [`REFILL_BACKOFF_MAX`]: a broken launcher must not spin the host's CPU.
const REFILL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between failed refill boots.
const REFILL_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// The longest a refill waits for the claiming town's mayor to be ready (a guard: the
/// mayor's start ends in a status change either way).
const REFILL_SETTLE_MAX: Duration = Duration::from_secs(30);

/// How a [`WarmPool`] is kept.
#[derive(Debug, Clone)]
pub struct WarmPoolOptions {
    /// How many spare servers to keep booted (default 1). Each holds an SDK server's
    /// memory (about 520 MB RSS for kilo 7.7.9, measured here) while it waits.
    pub size: usize,
    /// Timeouts and stop grace of the pool's boots (the sdk timeout bounds each boot).
    pub start: StartOptions,
    /// The runtime's boot scheduler: refills wait at [`BootPriority::Pool`], behind every
    /// mayor and worker boot (`None`: unscheduled).
    pub boot_scheduler: Option<Arc<BootScheduler>>,
    /// How the pool talks to its servers' HTTP API (health checks) — the towns' connector
    /// (default: the real HTTP client).
    pub sdk_connector: Arc<dyn SdkConnector>,
}

impl Default for WarmPoolOptions {
    fn default() -> Self {
        Self {
            size: 1,
            start: StartOptions::default(),
            boot_scheduler: None,
            sdk_connector: Arc::new(HttpConnector),
        }
    }
}

/// Why a brand-new town did not get a pooled server (it starts cold instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PoolMiss {
    /// No server was booted and ready.
    Empty,
    /// The ready servers were booted for another configuration (launcher, models or
    /// providers).
    Incompatible,
    /// The runtime cannot hand a container to a town (or not with this town's mounts).
    Unsupported,
    /// The hand-over failed; the server was discarded.
    Failed(String),
}

/// What the pool's tasks share.
pub(crate) struct PoolShared {
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
    pub(crate) sdk: Arc<dyn SdkConnector>,
    /// The configuration servers are booted for (its town id is not used).
    pub(crate) template: TownConfig,
    pub(crate) start: StartOptions,
    size: usize,
    scheduler: Option<Arc<BootScheduler>>,
    /// Booted, unclaimed servers, oldest first.
    ready: Mutex<VecDeque<Slot>>,
    /// Boots under way.
    booting: AtomicUsize,
    /// Consecutive failed boots (for the backoff).
    failures: AtomicUsize,
    /// Set by `shutdown`: no more boots, nothing more to claim.
    closed: AtomicBool,
    /// Woken whenever a server becomes ready.
    changed: Notify,
}

/// A pool of spare mayor SDK servers for brand-new towns (see the module docs). Cheap to
/// clone (one shared pool); give it to every town of the runtime with
/// [`TownOptions::with_warm_pool`](crate::TownOptions::with_warm_pool). Call
/// [`shutdown`](Self::shutdown) when done: it stops the unclaimed servers and removes their
/// containers.
#[derive(Clone)]
pub struct WarmPool {
    shared: Arc<PoolShared>,
}

impl fmt::Debug for WarmPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarmPool")
            .field("size", &self.shared.size)
            .field("ready", &self.ready())
            .field("booting", &self.shared.booting.load(Ordering::SeqCst))
            .finish()
    }
}

impl WarmPool {
    /// A pool of servers for mayors of `template`'s configuration (its launcher, mayor
    /// models and providers; its town id is ignored) on `runtime`. Starts booting at once,
    /// in the background; must be called inside a tokio runtime.
    pub fn start(
        runtime: Arc<dyn ContainerRuntime>,
        template: TownConfig,
        options: WarmPoolOptions,
    ) -> WarmPool {
        let pool = WarmPool {
            shared: Arc::new(PoolShared {
                runtime,
                sdk: options.sdk_connector,
                template,
                start: options.start,
                size: options.size,
                scheduler: options.boot_scheduler,
                ready: Mutex::new(VecDeque::new()),
                booting: AtomicUsize::new(0),
                failures: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
                changed: Notify::new(),
            }),
        };
        pool.refill();
        pool
    }

    /// Servers booted and waiting for a town.
    pub fn ready(&self) -> usize {
        self.shared.ready.lock().len()
    }

    /// Waits until at least `n` servers are ready (never returns if boots keep failing:
    /// bound it with a timeout).
    pub async fn wait_ready(&self, n: usize) {
        loop {
            let changed = self.shared.changed.notified();
            if self.ready() >= n.min(self.shared.size) {
                return;
            }
            changed.await;
        }
    }

    /// Hands the oldest compatible server to `town` (see *Claim* in the module docs):
    /// `env_hash(password)` is the config hash the town's mayor would have with that
    /// password. On success the runtime's container of the server is `town`'s and the
    /// server's password is returned for the town to keep; the caller starts the refill
    /// with [`refill_after`](Self::refill_after) once the town's mayor is ready.
    ///
    /// # Errors
    /// A [`PoolMiss`] saying why the town starts cold. Nothing of the town changes then.
    pub(crate) async fn claim(
        &self,
        town: &TownId,
        options: &ContainerOptions,
        env_hash: impl Fn(&Secret) -> String,
    ) -> Result<Secret, PoolMiss> {
        let shared = &self.shared;
        let slot = {
            let mut ready = shared.ready.lock();
            if ready.is_empty() {
                return Err(PoolMiss::Empty);
            }
            let Some(i) = ready
                .iter()
                .position(|s| env_hash(&s.password) == s.config_hash)
            else {
                return Err(PoolMiss::Incompatible);
            };
            ready.remove(i).expect("found above")
        };
        if !slot.process.status().await.is_alive() {
            tracing::warn!(container = %slot.id, "a pooled server died while waiting; discarding it");
            self.discard(slot);
            self.refill();
            return Err(PoolMiss::Failed("the pooled server had exited".to_owned()));
        }
        match shared
            .runtime
            .rename_container(&slot.id, town, options)
            .await
        {
            Ok(()) => {
                tracing::info!(%town, container = %slot.id, pid = ?slot.process.pid(), "pooled SDK server claimed");
                Ok(slot.password.clone())
            }
            Err(CoreError::Unsupported { .. }) => {
                shared.ready.lock().push_front(slot);
                Err(PoolMiss::Unsupported)
            }
            Err(e) => {
                tracing::warn!(%town, container = %slot.id, error = %e, "handing a pooled container over failed");
                self.discard(slot);
                self.refill();
                Err(PoolMiss::Failed(e.to_string()))
            }
        }
    }

    /// Stops booting, stops every unclaimed server and removes its container. Claimed
    /// servers belong to their towns and are not touched.
    pub async fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let slots: Vec<Slot> = self.shared.ready.lock().drain(..).collect();
        for slot in slots {
            remove(&self.shared, &slot.id).await;
        }
        // A boot that was under way sees `closed` when it ends and removes its own server.
        while self.shared.booting.load(Ordering::SeqCst) > 0 {
            self.shared.changed.notified().await;
        }
    }

    /// Refills the pool once `settled` completes (at most [`REFILL_SETTLE_MAX`] later): a
    /// claimed mayor's own phases run right after the claim, and a refill boot (2.5 s of
    /// CPU for kilo) started at the same moment takes their CPU — measured on Docker with
    /// kilo 7.7.9 on 2 loaded cores, the pooled mayor's median went from 715 ms to 405 ms
    /// when the refill waited.
    pub(crate) fn refill_after(
        &self,
        settled: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let pool = self.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REFILL_SETTLE_MAX, settled).await;
            pool.refill();
        });
    }

    /// Starts boots in the background until ready + booting reaches the pool's size.
    fn refill(&self) {
        let shared = &self.shared;
        loop {
            if shared.closed.load(Ordering::SeqCst) {
                return;
            }
            let ready = shared.ready.lock().len();
            let booting = shared.booting.load(Ordering::SeqCst);
            if ready + booting >= shared.size {
                return;
            }
            if shared
                .booting
                .compare_exchange(booting, booting + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            let shared = self.shared.clone();
            let pool = self.clone();
            tokio::spawn(async move {
                let failures = shared.failures.load(Ordering::SeqCst);
                if failures > 0 {
                    let wait = REFILL_BACKOFF.saturating_mul(1 << failures.min(6) as u32);
                    tokio::time::sleep(wait.min(REFILL_BACKOFF_MAX)).await;
                }
                let booted = {
                    let _slot = match &shared.scheduler {
                        Some(s) => Some(s.acquire(BootPriority::Pool).await),
                        None => None,
                    };
                    slot::boot(&shared).await
                };
                match booted {
                    Ok(slot) if shared.closed.load(Ordering::SeqCst) => {
                        remove(&shared, &slot.id).await;
                    }
                    Ok(slot) => {
                        shared.failures.store(0, Ordering::SeqCst);
                        tracing::debug!(container = %slot.id, "pooled SDK server ready");
                        shared.ready.lock().push_back(slot);
                    }
                    Err(e) => {
                        shared.failures.fetch_add(1, Ordering::SeqCst);
                        tracing::warn!(error = %e, "booting a pooled SDK server failed");
                    }
                }
                shared.booting.fetch_sub(1, Ordering::SeqCst);
                shared.changed.notify_waiters();
                if !shared.closed.load(Ordering::SeqCst) {
                    pool.refill();
                }
            });
        }
    }

    /// Removes a slot that can no longer be claimed, in the background.
    fn discard(&self, slot: Slot) {
        let shared = self.shared.clone();
        tokio::spawn(async move { remove(&shared, &slot.id).await });
    }
}

/// Removes a pool container (its server with it), logging failures.
async fn remove(shared: &PoolShared, id: &TownId) {
    if let Err(e) = shared.runtime.remove(id).await {
        tracing::warn!(container = %id, error = %e, "removing a pool container");
    }
}
