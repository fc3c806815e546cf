//! Measures what pausing a town's container costs and how fast it wakes, with a real
//! `kilo serve` in it, on the local runtime and on Docker side by side, and prints a table
//! (or, with `--json`, one object per runtime):
//!
//! ```text
//! {"event":"pause_cost","runtime":"local","pause_ms":…,"resume_healthy_ms":…,"resume_message_ms":…}
//! ```
//!
//! Per runtime: one container with one kilo server (the bare start of
//! `cold_start_report`: the agent env builder, health, a session), then `--runs` rounds
//! (default 5) of two pause cycles each, every pause held `--paused-ms` (default 3000 ms):
//!
//! - `pause_ms`: [`ContainerRuntime::pause`] until it returns (local: SIGSTOP to every
//!   process group; Docker: the engine's pause API);
//! - `resume_healthy_ms`: [`ContainerRuntime::resume`] until the first healthy
//!   `GET /global/health` (polled every 5 ms);
//! - `resume_message_ms`: [`ContainerRuntime::resume`] until a `noReply` message to the
//!   session is accepted (its own cycle, sent right after the resume).
//!
//! Each figure is the median of `--runs`. One kilo runs at a time (local first, then
//! Docker). Docker is measured when an engine answers (`--runtime docker` makes it
//! mandatory).
//!
//! Run it: `cargo run --release --example pause_cost -- [--json] [--runs N]
//! [--paused-ms MS] [--runtime all|local|docker]` (kilo from `scripts/install-kilo.sh`;
//! Docker from `scripts/ensure-docker.sh`).

#[path = "../benches/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use gastown::core::{kilo, ContainerRuntime, ModelRef};
use tokio::time::Instant;

/// The model the session is configured with (no turn runs: `noReply` only).
const MODEL: &str = "anthropic/claude-sonnet-4.6";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    All,
    Local,
    Docker,
}

/// Measure pause, resume → healthy and resume → message accepted with a real kilo.
#[derive(Debug, Parser)]
struct Args {
    /// One JSON object per runtime instead of a table.
    #[arg(long)]
    json: bool,
    /// Rounds per runtime (each: one health cycle and one message cycle).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// How long each pause is held, in ms.
    #[arg(long, default_value_t = 3000)]
    paused_ms: u64,
    /// Which runtimes to measure (`all`: Docker only when an engine answers).
    #[arg(long, value_enum, default_value = "all")]
    runtime: Which,
}

/// Medians of one runtime, in ms, and every sample (for the table's ranges).
struct Cost {
    runtime: &'static str,
    pause_ms: f64,
    resume_healthy_ms: f64,
    resume_message_ms: f64,
    samples: [Vec<f64>; 3],
}

/// `min–max` of samples, in ms.
fn range(xs: &[f64]) -> String {
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.2}–{max:.2}")
}

impl Cost {
    fn json(&self) -> String {
        let r = |x: f64| (x * 100.0).round() / 100.0;
        serde_json::json!({
            "event": "pause_cost",
            "runtime": self.runtime,
            "pause_ms": r(self.pause_ms),
            "resume_healthy_ms": r(self.resume_healthy_ms),
            "resume_message_ms": r(self.resume_message_ms),
        })
        .to_string()
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let real = tokio::runtime::Runtime::new()?;
    let mut costs = Vec::new();
    if matches!(args.runtime, Which::All | Which::Local) {
        let root = std::env::temp_dir().join(format!("gastown-pause-{}", std::process::id()));
        let rt: Arc<dyn ContainerRuntime> = Arc::new(
            gastown::local::LocalRuntime::builder(root.clone())
                .with_program("kilo", kilo::locate(None)?)
                .build(),
        );
        costs.push(real.block_on(measure(&rt, "local", &args))?);
        let _ = std::fs::remove_dir_all(root);
    }
    if matches!(args.runtime, Which::All | Which::Docker) {
        match real.block_on(docker_runtime()) {
            Ok(rt) => costs.push(real.block_on(measure(&rt, "docker", &args))?),
            Err(e) if args.runtime == Which::All => eprintln!("docker skipped: {e}"),
            Err(e) => return Err(e),
        }
    }
    if args.json {
        for c in &costs {
            println!("{}", c.json());
        }
    } else {
        println!(
            "{:<8} {:>10} {:>19} {:>19}",
            "runtime", "pause_ms", "resume_healthy_ms", "resume_message_ms"
        );
        for c in &costs {
            println!(
                "{:<8} {:>10.2} {:>19.2} {:>19.2}",
                c.runtime, c.pause_ms, c.resume_healthy_ms, c.resume_message_ms
            );
            let [p, h, m] = &c.samples;
            println!(
                "{:<8} {:>10} {:>19} {:>19}",
                "  range",
                range(p),
                range(h),
                range(m)
            );
        }
        println!(
            "medians of {} rounds, each pause held {} ms",
            args.runs, args.paused_ms
        );
    }
    Ok(())
}

async fn measure(
    rt: &Arc<dyn ContainerRuntime>,
    runtime: &'static str,
    args: &Args,
) -> anyhow::Result<Cost> {
    anyhow::ensure!(rt.can_pause(), "the {runtime} runtime cannot pause");
    let town = support::town_id("pause-cost", 0);
    let bare = support::bare_start(rt, &town, MODEL, true).await;
    let model = ModelRef::parse(MODEL)?;
    let held = Duration::from_millis(args.paused_ms);
    let (mut pause, mut healthy, mut message) = (Vec::new(), Vec::new(), Vec::new());
    let result = async {
        for n in 0..args.runs {
            // Health cycle (its pause is the one timed).
            let t0 = Instant::now();
            rt.pause(&town).await?;
            pause.push(support::ms(t0.elapsed()));
            tokio::time::sleep(held).await;
            let t0 = Instant::now();
            rt.resume(&town).await?;
            bare.client
                .wait_healthy(Duration::from_secs(60), Duration::from_millis(5))
                .await?;
            healthy.push(support::ms(t0.elapsed()));

            // Message cycle.
            rt.pause(&town).await?;
            tokio::time::sleep(held).await;
            let t0 = Instant::now();
            rt.resume(&town).await?;
            let text = format!("[gastown] pause_cost round {n}");
            bare.client
                .send_no_reply(&bare.session_id, &model, &text)
                .await?;
            message.push(support::ms(t0.elapsed()));
        }
        anyhow::Ok(())
    }
    .await;
    // Never leave a frozen kilo behind, whatever failed.
    let _ = rt.resume(&town).await;
    support::bare_stop(bare).await;
    rt.remove(&town).await?;
    result?;
    Ok(Cost {
        runtime,
        pause_ms: support::median(pause.clone()),
        resume_healthy_ms: support::median(healthy.clone()),
        resume_message_ms: support::median(message.clone()),
        samples: [pause, healthy, message],
    })
}

#[cfg(feature = "docker")]
async fn docker_runtime() -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    use gastown::docker::{DockerOptions, DockerRuntime};
    let options = DockerOptions::default().with_name_prefix("gastown-pause-cost");
    Ok(Arc::new(DockerRuntime::connect(options).await?))
}

#[cfg(not(feature = "docker"))]
async fn docker_runtime() -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    anyhow::bail!("built without the `docker` feature")
}
