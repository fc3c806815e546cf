//! The telemetry vocabulary, checked on a real run of the actor tree: a cold start of the
//! mayor on the simulated runtime (a test double; virtual time) with its tracing output
//! captured. Every phase timing and the ensure decision must be there under their names,
//! with the `town`, `agent` and `role` fields.

use std::io::Write;
use std::sync::Arc;

use gastown_actors::telemetry::{self, phase_name};
use gastown_actors::{TownHandle, TownOptions};
use gastown_core::simulated::{SimScript, SimulatedRuntime};
use gastown_core::{RigConfig, RigId, StartupPhase, TownConfig, TownId};
use parking_lot::Mutex;

/// A `MakeWriter` that appends every formatted event to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The captured events that carry `event=<name>`.
fn events_named<'a>(lines: &'a [&'a str], name: &str) -> Vec<&'a str> {
    let field = format!("event=\"{name}\"");
    lines
        .iter()
        .copied()
        .filter(|l| l.contains(&field))
        .collect()
}

// Current-thread runtime: the subscriber set for this thread sees every actor and task.
#[tokio::test(start_paused = true)]
async fn a_cold_start_emits_every_phase_timing_and_the_decision_with_town_agent_role() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let rt = SimulatedRuntime::new(SimScript::zero());
    let config = TownConfig::new(TownId::new("telemetry").unwrap()).with_rig(RigConfig::new(
        RigId::new("api").unwrap(),
        "https://example.invalid/api.git",
    ));
    let options = TownOptions::new(config, dir.path().join("state"), rt.clone())
        .with_sdk_connector(rt.sdk_connector());
    let town = TownHandle::start(options).await.unwrap();
    let ready = town.ensure_mayor().await.unwrap();
    // A second ensure is a short circuit: its decision is emitted too.
    town.ensure_mayor().await.unwrap();
    town.shutdown().await.unwrap();

    let text = String::from_utf8(captured.0.lock().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for phase in StartupPhase::ALL {
        let name = phase_name(phase);
        let found = events_named(&lines, name);
        assert!(!found.is_empty(), "no {name} event in:\n{text}");
        for line in found {
            for field in ["town=telemetry", "agent=\"mayor\"", "role=\"mayor\"", "ms="] {
                assert!(line.contains(field), "{name} lacks {field}: {line}");
            }
        }
        assert!(
            ready.report.timings.contains_key(name),
            "the report lacks {name}: {:?}",
            ready.report.timings
        );
    }
    let decisions = events_named(&lines, telemetry::MAYOR_ENSURE_DECISION);
    let outcomes: Vec<_> = decisions
        .iter()
        .map(|l| {
            l.contains("outcome=\"fresh_dispatch\"") || l.contains("outcome=\"short_circuit_warm\"")
        })
        .collect();
    assert_eq!(
        outcomes,
        [true, true],
        "one decision per ensure: {decisions:?}"
    );
    assert!(decisions[0].contains("fresh_dispatch") && decisions[1].contains("short_circuit_warm"));
    // Both ensures answered a caller; the cold one joined boot hydration's prewarm.
    assert_eq!(events_named(&lines, telemetry::MAYOR_READY).len(), 2);
    assert_eq!(
        events_named(&lines, telemetry::MAYOR_PREWARM_COMPLETE).len(),
        1
    );
    for name in [
        telemetry::REGISTRY_FETCH_MS,
        telemetry::MAYOR_PREWARM_MS,
        telemetry::BROWSE_WORKTREE_SETUP_MS,
        telemetry::WRITE_AGENTS_MD_MS,
    ] {
        assert!(
            !events_named(&lines, name).is_empty(),
            "no {name} event in:\n{text}"
        );
    }
}
