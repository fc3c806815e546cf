//! The main job, end to end on real parts: a town's mayor cold-starts on the real
//! `kilo serve`, a message is recorded in its session, the town shuts down (snapshotting
//! the mayor's `kilo.db` and removing its container), then the town starts again from the
//! same state directory and the mayor resumes **the same session** from the snapshot.
//!
//! Each `ensure_mayor` prints a phase waterfall (phase, start offset, duration in ms), or
//! with `--json` one object per line:
//!
//! ```text
//! {"event":"mayor_ready","runtime":"local","decision":"fresh_dispatch","session_id":"ses_…",
//!  "prewarmed":false,"total_ms":…,"phases":{"token":…,"hydrate":…,"worktrees":…,"sdk":…,"session":…}}
//! ```
//!
//! Run it (installs kilo into `.tools/` first if needed):
//!
//! ```text
//! scripts/run-example.sh                 # = cargo run --example town
//! cargo run --example town -- --json --rig /path/to/repo --rig https://host/repo.git
//! cargo run --example town -- --runtime docker --json
//! ```
//!
//! Rigs default to this project's own git repository. Exits non-zero on any failure,
//! including a resumed session id that differs from the first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use gastown::core::{kilo, ContainerRuntime, RigConfig, RigId, TownConfig, TownId};
use gastown::{MayorReady, TownHandle, TownOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    Local,
    Docker,
}

/// Cold-start a town's mayor, shut down, restart and resume the same session.
#[derive(Debug, Parser)]
struct Args {
    /// A rig to browse: a git repository path or URL (repeatable). Default: this project.
    #[arg(long = "rig")]
    rigs: Vec<String>,
    /// Where agents run.
    #[arg(long, value_enum, default_value = "local")]
    runtime: RuntimeKind,
    /// Print one JSON object per line per `ensure_mayor` instead of a waterfall.
    #[arg(long)]
    json: bool,
    /// The town's state directory (default: a fresh temporary directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The town id.
    #[arg(long, default_value = "demo")]
    town: String,
    /// The kilo binary (default: GASTOWN_KILO_BIN, then `.tools/kilo/bin/kilo`).
    #[arg(long)]
    kilo: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let temp = tempfile::tempdir().context("creating a temporary state dir")?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let config = town_config(&args)?;
    let runtime = runtime(&args, &state_dir).await?;
    let runtime_name = runtime.name();

    let first = round(&args, &config, &state_dir, runtime.clone(), true).await?;
    let second = round(&args, &config, &state_dir, runtime.clone(), false).await?;
    if first.session_id != second.session_id {
        bail!(
            "resumed session {} differs from the first session {}",
            second.session_id,
            first.session_id
        );
    }
    if !args.json {
        println!(
            "\nsame session {} resumed from the snapshot on the {runtime_name} runtime",
            second.session_id
        );
    }
    Ok(())
}

/// One life of the town: start, ensure the mayor, (first time: send a message), shut down.
async fn round(
    args: &Args,
    config: &TownConfig,
    state_dir: &Path,
    runtime: Arc<dyn ContainerRuntime>,
    first: bool,
) -> anyhow::Result<MayorReady> {
    let name = runtime.name();
    let town = TownHandle::start(TownOptions::new(config.clone(), state_dir, runtime)).await?;
    let result = async {
        let ready = town.ensure_mayor().await?;
        print_report(args, name, first, &ready)?;
        if first {
            let id = town
                .send_mayor_message("Hello mayor: remember this town.")
                .await?;
            if !args.json {
                println!(
                    "sent message {id} (noReply) to session {}",
                    ready.session_id
                );
            }
        }
        anyhow::Ok(ready)
    }
    .await;
    // Shut down even after a failure, so no container or process is left behind.
    let shutdown = town.shutdown().await;
    let ready = result?;
    shutdown.context("shutting the town down")?;
    Ok(ready)
}

fn print_report(args: &Args, runtime: &str, first: bool, ready: &MayorReady) -> anyhow::Result<()> {
    let r = &ready.report;
    if args.json {
        let phases: serde_json::Map<String, serde_json::Value> = r
            .phases
            .iter()
            .map(|t| (t.phase.as_str().to_owned(), t.duration_ms.into()))
            .collect();
        let line = serde_json::json!({
            "event": "mayor_ready",
            "runtime": runtime,
            "decision": r.decision.as_str(),
            "session_id": ready.session_id,
            "prewarmed": r.prewarmed,
            "total_ms": r.total_ms,
            "phases": phases,
        });
        println!("{line}");
        return Ok(());
    }
    let title = if first {
        "cold start"
    } else {
        "restart, resumed from snapshot"
    };
    println!(
        "\nmayor ready ({title}): runtime={runtime} decision={} session={} prewarmed={} total={} ms",
        r.decision, ready.session_id, r.prewarmed, r.total_ms
    );
    println!("  {:<10} {:>9} {:>9}  waterfall", "phase", "start ms", "ms");
    let scale = (r.total_ms.max(1) as f64) / 50.0;
    for t in &r.phases {
        let pad = (t.start_offset_ms as f64 / scale) as usize;
        let bar = ((t.duration_ms as f64 / scale).ceil() as usize).max(1);
        println!(
            "  {:<10} {:>9} {:>9}  {}{}",
            t.phase.as_str(),
            t.start_offset_ms,
            t.duration_ms,
            " ".repeat(pad),
            "#".repeat(bar)
        );
    }
    Ok(())
}

fn town_config(args: &Args) -> anyhow::Result<TownConfig> {
    let mut config = TownConfig::new(TownId::new(args.town.clone())?);
    let rigs = if args.rigs.is_empty() {
        vec![own_repository()?]
    } else {
        args.rigs
            .iter()
            .map(|r| rig(r))
            .collect::<anyhow::Result<_>>()?
    };
    for r in rigs {
        config = config.with_rig(r);
    }
    config.validate()?;
    Ok(config)
}

/// A rig id from the last path segment of a path or URL: lower-cased, other characters
/// mapped to `-`.
fn rig_id(source: &str) -> anyhow::Result<RigId> {
    let last = source
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(source)
        .trim_end_matches(".git");
    let id: String = last
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    Ok(RigId::new(if id.is_empty() {
        "rig".to_owned()
    } else {
        id
    })?)
}

fn rig(source: &str) -> anyhow::Result<RigConfig> {
    let path = Path::new(source);
    if path.exists() {
        let path = path.canonicalize()?;
        let branch = git(&path, &["rev-parse", "--abbrev-ref", "HEAD"])?;
        let url = path.to_string_lossy().into_owned();
        return Ok(RigConfig::new(rig_id(&url)?, url).with_default_branch(branch));
    }
    Ok(RigConfig::new(rig_id(source)?, source))
}

fn own_repository() -> anyhow::Result<RigConfig> {
    let top = git(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &["rev-parse", "--show-toplevel"],
    )
    .context("finding this project's git repository (the default rig)")?;
    rig(&top)
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!(
            "git {} in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn runtime(args: &Args, state_dir: &Path) -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    let kilo_bin = kilo::locate(args.kilo.as_deref())?;
    match args.runtime {
        RuntimeKind::Local => Ok(Arc::new(
            gastown::local::LocalRuntime::builder(state_dir.join("containers"))
                .with_program("kilo", kilo_bin)
                .build(),
        )),
        RuntimeKind::Docker => docker_runtime(kilo_bin).await,
    }
}

#[cfg(feature = "docker")]
async fn docker_runtime(kilo_bin: PathBuf) -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    use gastown::docker::{AgentImage, DockerOptions, DockerRuntime};
    let options = DockerOptions::default().with_image(AgentImage::Build {
        kilo_bin: Some(kilo_bin),
    });
    Ok(Arc::new(DockerRuntime::connect(options).await?))
}

#[cfg(not(feature = "docker"))]
async fn docker_runtime(_kilo_bin: PathBuf) -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    bail!("this build has no Docker runtime: build with the `docker` feature")
}
