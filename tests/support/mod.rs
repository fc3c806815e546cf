//! Helpers of `tests/live_snapshot.rs`.

pub mod flaky;
pub mod local_kilo;
