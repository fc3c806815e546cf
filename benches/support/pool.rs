//! `new_town_pooled`: mayor-ready of a brand-new town that claims a warm pool's server
//! (`ARCHITECTURE.md`, *Warm pool*), against the `cold` rows' floor of the same run, so the
//! ratio shows the gain.
//!
//! A pool of one server is started and left to boot before each sample (a pool's boots
//! happen before towns arrive: that is its point); each sample is a new town on a fresh
//! state directory whose `ensure_mayor` is timed, then shut down, while the pool refills.
//!
//! Not a library API: bench and example code only.

use std::sync::Arc;
use std::time::Duration;

use gastown::actors::{TownHandle, TownOptions, WarmPool, WarmPoolOptions};
use gastown::core::{ContainerRuntime, TownConfig, TownId};
use tokio::time::Instant;

use super::{median, ms, town_id};

/// How long a pool boot may take before the row gives up (a failure guard).
const BOOT_GUARD: Duration = Duration::from_secs(180);

/// The median `ensure_mayor` ms of `runs` brand-new towns claiming a pooled server;
/// `NaN` when the pool never boots. A sample whose town did not get a pooled server is
/// reported on stderr and still counted (the row then shows the fallback's cost).
pub async fn real_new_town_pooled(rt: &Arc<dyn ContainerRuntime>, runs: usize) -> f64 {
    let template = TownConfig::new(TownId::new("pool-template").unwrap());
    let pool = WarmPool::start(
        rt.clone(),
        template,
        WarmPoolOptions {
            size: 1,
            ..Default::default()
        },
    );
    let mut samples = Vec::new();
    for n in 0..runs {
        if tokio::time::timeout(BOOT_GUARD, pool.wait_ready(1))
            .await
            .is_err()
        {
            eprintln!("new_town_pooled: the pool did not boot a server");
            break;
        }
        let dir = tempfile::tempdir().unwrap();
        let town = town_id("pooled", n);
        let options = TownOptions::new(TownConfig::new(town), dir.path(), rt.clone())
            .with_warm_pool(pool.clone());
        let handle = TownHandle::start(options).await.unwrap();
        let t0 = Instant::now();
        let ready = handle.ensure_mayor().await.unwrap();
        samples.push(ms(t0.elapsed()));
        if !ready.report.pooled {
            eprintln!("new_town_pooled: run {n} fell back to a cold start");
        }
        handle.shutdown().await.unwrap();
    }
    pool.shutdown().await;
    if samples.is_empty() {
        f64::NAN
    } else {
        median(samples)
    }
}
