//! The runtime conformance suite (`gastown_core::conformance`) against [`LocalRuntime`]:
//! real host processes under a temporary root. One test per check, so every failure shows,
//! plus `run_all` on one runtime (as a backend's CI would run it).

use std::sync::Arc;

use gastown_core::conformance::{self, Capabilities, Fixture, HttpServerCommand};
use gastown_core::TownId;
use gastown_runtime_local::LocalRuntime;

/// busybox's httpd where busybox is installed, else Python's http.server.
fn http_server() -> HttpServerCommand {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    };
    if on_path("busybox") {
        conformance::busybox_httpd
    } else {
        conformance::python_http_server
    }
}

/// A runtime on a fresh temporary root (removed after the runtime, by the fixture's
/// guard), with every capability: the host has a shell and can serve HTTP.
async fn fixture(check: &'static str) -> Option<Fixture> {
    let root = tempfile::tempdir().expect("tempdir");
    let rt = LocalRuntime::new(root.path().to_owned());
    let town = TownId::new(format!("conf-{check}")).expect("town id");
    Some(
        Fixture::new(
            Arc::new(rt),
            town,
            Capabilities::full(http_server()).with_records(true),
        )
        .with_guard(root),
    )
}

gastown_core::conformance_tests!(fixture = fixture);
