//! The runtime conformance suite (`gastown_core::conformance`) against [`DockerRuntime`] on
//! a real Docker Engine, with the real agent image. One test per check, so every failure
//! shows, plus `run_all` on one runtime (as CI runs it); skipped (with a line) when no
//! engine answers, unless `GASTOWN_REQUIRE_DOCKER=1`.
//!
//! [`DockerRuntime`]: gastown_runtime_docker::DockerRuntime

use std::sync::Arc;

use gastown_core::conformance::{self, Capabilities, Fixture};
use gastown_runtime_docker::test_support::{prefix, runtime, town, Cleanup};

/// A runtime on the shared agent image. A check's town is cleaned up by town; `run_all`'s
/// towns share a prefix of their own, cleaned up whole.
async fn fixture(check: &'static str) -> Option<Fixture> {
    let (prefix, town) = if check == "run_all" {
        (prefix("all"), town("all"))
    } else {
        (prefix("c"), town(check))
    };
    let rt = runtime(&prefix).await?;
    let cleanup = if check == "run_all" {
        Cleanup::prefix(&prefix)
    } else {
        Cleanup::town(&prefix, &town)
    };
    let caps = Capabilities::full(conformance::busybox_httpd).with_records(true);
    Some(Fixture::new(Arc::new(rt), town, caps).with_guard(cleanup))
}

gastown_core::conformance_tests!(fixture = fixture);
