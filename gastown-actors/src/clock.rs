//! The town's clock: wall-clock milliseconds (what the town store persists) that advance
//! with tokio's clock, so throttles and cadences follow virtual time under
//! `tokio::time::pause` in tests and benches, and real time otherwise. Anchored once per
//! process, so a town restarted in the same process reads the same timeline.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

static ANCHOR: OnceLock<(i64, Instant)> = OnceLock::new();

/// Milliseconds since the Unix epoch, advancing with tokio's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch_ms_at_anchor: i64,
    anchor: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let (epoch_ms_at_anchor, anchor) = *ANCHOR.get_or_init(|| {
            let epoch_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            (epoch_ms, Instant::now())
        });
        Self {
            epoch_ms_at_anchor,
            anchor,
        }
    }

    /// Now, in ms since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        self.epoch_ms_at_anchor + self.anchor.elapsed().as_millis() as i64
    }
}
