//! The whole runtime conformance suite (`gastown_core::conformance`) against the simulated
//! runtime (a test double), in virtual time. It has no shell and no network, so its
//! [`Capabilities`] say so and the checks skip those parts (with a line on stderr);
//! everything else — lifecycle, concurrent starts, files, missing programs, spawn, kill,
//! stop — is checked as on the real backends.

use gastown_core::conformance::{Capabilities, Fixture};
use gastown_core::simulated::{SimScript, SimulatedRuntime};
use gastown_core::TownId;

/// A fresh simulated runtime on the default script (so durations are realistic and
/// overlaps matter), without a shell or an HTTP server.
async fn fixture(check: &'static str) -> Option<Fixture> {
    let rt = SimulatedRuntime::new(SimScript::default());
    let town = TownId::new(format!("sim-{check}")).expect("town id");
    Some(Fixture::new(
        rt,
        town,
        Capabilities::default().with_pause(true),
    ))
}

gastown_core::conformance_tests!(
    #[tokio::test(start_paused = true)]
    fixture = fixture
);
