//! The main job, end to end on real parts: a town's mayor cold-starts on the real
//! `kilo serve` and answers a real prompt (a streamed LLM turn), a message is recorded in
//! its session, the town shuts down (snapshotting the mayor's `kilo.db` and removing its
//! container), then the town starts again from the same state directory, the mayor resumes
//! **the same session** from the snapshot and answers a second prompt in it.
//!
//! By default the model is the scripted model server (`gastown-scripted-model`, a test
//! double of an OpenAI-compatible provider: no network, no API key), started here on
//! `127.0.0.1`, or for `--runtime docker` on the Docker bridge's gateway address so the
//! container reaches it. With it the example also checks that the second turn's request
//! carried the first turn (the resumed history). `--model provider/model` (a model of
//! kilo's bundled list, e.g. `anthropic/claude-sonnet-4-6`) uses a real provider instead;
//! its key comes from `--provider-key` or the provider's usual variable
//! (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`, … `<PROVIDER>_API_KEY`), is passed to kilo as a
//! secret and is never printed. A turn that fails upstream (no network, bad key) ends with
//! an error and a non-zero exit, at the latest at `--turn-timeout` (default 60 s).
//!
//! Each `ensure_mayor` prints a phase waterfall (phase, start offset, duration in ms) and
//! each prompt the mayor's reply as it streams in; with `--json`, one object per line:
//!
//! ```text
//! {"event":"mayor_ready","runtime":"local","decision":"fresh_dispatch","session_id":"ses_…",
//!  "prewarmed":false,"total_ms":…,"phases":{"token":…,"hydrate":…,"worktrees":…,"sdk":…,"session":…}}
//! {"event":"mayor_reply","runtime":"local","model":"scripted/scripted-1","session_id":"ses_…",
//!  "message_id":"msg_…","text":"…","turn_ms":…}
//! ```
//!
//! (`mayor_ready`, `mayor_reply`, then again after the restart.) Run it (installs kilo into
//! `.tools/` first if needed):
//!
//! ```text
//! scripts/run-example.sh                 # = cargo run --example town
//! scripts/run-example.sh --json
//! scripts/run-example.sh --runtime docker --json
//! scripts/run-example.sh --prompt "Which rigs do you see?" --rig /path/to/repo --rig https://host/repo.git
//! ANTHROPIC_API_KEY=… scripts/run-example.sh --model anthropic/claude-sonnet-4-6
//! scripts/run-example.sh --model anthropic/claude-haiku-4-5 --provider-key "$KEY"
//! scripts/run-example.sh --bead "add a file" --json   # a polecat commits it (beads.rs)
//! ```
//!
//! Rigs default to this project's own git repository. Exits non-zero on any failure,
//! including a failed turn and a resumed session id that differs from the first.
//!
//! SIGTERM or ctrl-c stops it gracefully: the running town is drained (its SDK servers
//! stopped, the mayor's session snapshotted, the container removed) and the example exits
//! non-zero; a second signal exits at once without draining.

mod beads;
mod model;
#[path = "../support/stop.rs"]
mod stop;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use gastown::actors::{MayorReply, TurnOptions};
use gastown::core::{kilo, ContainerRuntime, RigConfig, RigId, TownConfig, TownId};
use gastown::{MayorReady, TownHandle, TownOptions};
use gastown_scripted_model::Reply;

use model::{Model, SCRIPTED_FIRST, SCRIPTED_SECOND, SECOND_PROMPT};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    Local,
    Docker,
}

/// Cold-start a town's mayor, prompt it, shut down, restart, resume the same session and
/// prompt it again.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// A rig to browse: a git repository path or URL (repeatable). Default: this project.
    #[arg(long = "rig")]
    pub(crate) rigs: Vec<String>,
    /// Where agents run.
    #[arg(long, value_enum, default_value = "local")]
    pub(crate) runtime: RuntimeKind,
    /// Print one JSON object per line per `ensure_mayor` and per reply instead of a
    /// waterfall and the streamed text.
    #[arg(long)]
    pub(crate) json: bool,
    /// The town's state directory (default: a fresh temporary directory).
    #[arg(long)]
    pub(crate) state_dir: Option<PathBuf>,
    /// The town id.
    #[arg(long, default_value = "demo")]
    pub(crate) town: String,
    /// The kilo binary (default: GASTOWN_KILO_BIN, then `.tools/kilo/bin/kilo`).
    #[arg(long)]
    pub(crate) kilo: Option<PathBuf>,
    /// The first prompt to the mayor (the second, after the restart, asks about it).
    #[arg(long, default_value = "Hello mayor, what can you do?")]
    pub(crate) prompt: String,
    /// Use a real provider's model (`provider/model`, as kilo's bundled list spells it)
    /// instead of the scripted model server.
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// The real provider's API key (default: the provider's usual variable, e.g.
    /// ANTHROPIC_API_KEY). Implies a real provider (`--model` defaults to the town's
    /// default model). Never printed.
    #[arg(long)]
    pub(crate) provider_key: Option<String>,
    /// The longest one turn may run, in seconds, before the town aborts it.
    #[arg(long, default_value_t = 60)]
    pub(crate) turn_timeout: u64,
    /// A bead to sling to the first rig after the mayor's first reply (repeatable): a
    /// polecat commits it on its own branch (with the scripted model: one `bash` tool
    /// call); prints `bead_done` per bead.
    #[arg(long = "bead")]
    pub(crate) beads: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let stop = match stop::Stop::install("draining the town") {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("error: watching SIGINT and SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(Args::parse(), &stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, stop: &stop::Stop) -> anyhow::Result<()> {
    let temp = tempfile::tempdir().context("creating a temporary state dir")?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let (runtime, gateway) = runtime(&args, &state_dir).await?;
    let runtime_name = runtime.name();
    let model = model::model(&args, gateway).await?;
    let config = town_config(&args, &model)?;

    let result = async {
        let (first, _) = round(
            &args,
            stop,
            &config,
            &model,
            &state_dir,
            runtime.clone(),
            true,
        )
        .await?;
        let (second, reply) = round(
            &args,
            stop,
            &config,
            &model,
            &state_dir,
            runtime.clone(),
            false,
        )
        .await?;
        if first.session_id != second.session_id || reply.session_id != first.session_id {
            bail!(
                "resumed session {} (reply in {}) differs from the first session {}",
                second.session_id,
                reply.session_id,
                first.session_id
            );
        }
        anyhow::Ok(second)
    }
    .await;
    let history = model
        .scripted
        .as_ref()
        .map(|s| model::resumed_history(s, &args));
    if let Some(server) = model.scripted {
        server.shutdown().await;
    }
    let second = result?;
    if let Some(history) = history {
        history?;
    }
    if !args.json {
        println!(
            "\nsame session {} resumed from the snapshot on the {runtime_name} runtime",
            second.session_id
        );
    }
    Ok(())
}

/// One life of the town: start, ensure the mayor, prompt it (first time: also send a
/// noReply message), shut down — at once when a stop signal comes.
async fn round(
    args: &Args,
    stop: &stop::Stop,
    config: &TownConfig,
    model: &Model,
    state_dir: &Path,
    runtime: Arc<dyn ContainerRuntime>,
    first: bool,
) -> anyhow::Result<(MayorReady, MayorReply)> {
    let name = runtime.name();
    let turns = TurnOptions::default().with_timeout(Duration::from_secs(args.turn_timeout));
    let options = TownOptions::new(config.clone(), state_dir, runtime).with_turn_options(turns);
    let town = TownHandle::start(options).await?;
    let work = async {
        let ready = town.ensure_mayor().await?;
        print_report(args, name, first, &ready)?;
        let (prompt, scripted) = if first {
            (args.prompt.as_str(), SCRIPTED_FIRST)
        } else {
            (SECOND_PROMPT, SCRIPTED_SECOND)
        };
        if let Some(server) = &model.scripted {
            server.set_default(
                Reply::text(scripted)
                    .with_chunks(12)
                    .with_chunk_delay(Duration::from_millis(40)),
            );
        }
        let reply = prompt_mayor(args, &town, name, &model.name, prompt).await?;
        if first && !args.beads.is_empty() {
            let rig = &config.rigs.first().context("--bead needs a rig")?.id;
            beads::run(args, &town, model, rig).await?;
        }
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
        anyhow::Ok((ready, reply))
    };
    let result = tokio::select! {
        result = work => result,
        signal = stop.requested() => Err(anyhow::anyhow!("stopped by {signal}")),
    };
    // Shut down even after a failure or a stop signal, so no container or process is left
    // behind and the mayor's session is in its snapshot.
    let shutdown = town.shutdown().await;
    if let Some(signal) = stop.signalled() {
        shutdown.context("draining the town after a stop signal")?;
        bail!("stopped by {signal}; the town was drained");
    }
    let done = result?;
    shutdown.context("shutting the town down")?;
    Ok(done)
}

/// Sends `prompt` as a real turn and prints the reply as it streams in (or, with `--json`,
/// one `mayor_reply` line at the end).
async fn prompt_mayor(
    args: &Args,
    town: &TownHandle,
    runtime: &str,
    model: &str,
    prompt: &str,
) -> anyhow::Result<MayorReply> {
    // The town aborts a turn at `turn_timeout`; this only guards against a turn that
    // never reports its end.
    let guard = Duration::from_secs(args.turn_timeout + 30);
    let mut turn = town.prompt_mayor(prompt).await?;
    if !args.json {
        println!("\nyou>   {prompt}");
        print!("mayor> ");
        std::io::stdout().flush()?;
    }
    let streamed = async {
        let mut out = std::io::stdout();
        while let Some(delta) = turn.next_delta().await {
            if !args.json {
                print!("{delta}");
                out.flush()?;
            }
        }
        turn.reply().await.map_err(anyhow::Error::from)
    };
    let reply = tokio::time::timeout(guard, streamed)
        .await
        .map_err(|_| anyhow::anyhow!("no end of the turn within {} s", guard.as_secs()))
        .and_then(|r| r);
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            if !args.json {
                println!();
            }
            let hint = if model == gastown_scripted_model::MODEL {
                ""
            } else {
                " (a real provider needs network and a valid key; --turn-timeout bounds the turn)"
            };
            return Err(e.context(format!("the mayor's turn on {model} failed{hint}")));
        }
    };
    if args.json {
        let line = serde_json::json!({
            "event": "mayor_reply",
            "runtime": runtime,
            "model": model,
            "session_id": reply.session_id,
            "message_id": reply.message_id,
            "text": reply.text,
            "turn_ms": reply.turn_ms,
        });
        println!("{line}");
    } else {
        println!(
            "\n       ({model}, {} ms, session {})",
            reply.turn_ms, reply.session_id
        );
    }
    Ok(reply)
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

fn town_config(args: &Args, model: &Model) -> anyhow::Result<TownConfig> {
    let (id, provider) = model.provider.clone();
    let mut config = TownConfig::new(TownId::new(args.town.clone())?)
        .with_mayor_model(&model.name)
        .with_mayor_small_model(&model.name)
        .with_provider(id, provider);
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

/// The runtime, and for Docker the bridge's gateway address (where the agents reach the
/// host, so where the scripted model server listens).
async fn runtime(
    args: &Args,
    state_dir: &Path,
) -> anyhow::Result<(Arc<dyn ContainerRuntime>, Option<IpAddr>)> {
    let kilo_bin = kilo::locate(args.kilo.as_deref())?;
    match args.runtime {
        RuntimeKind::Local => Ok((
            Arc::new(
                gastown::local::LocalRuntime::builder(state_dir.join("containers"))
                    .with_program("kilo", kilo_bin)
                    .build(),
            ),
            None,
        )),
        RuntimeKind::Docker => docker_runtime(kilo_bin).await,
    }
}

#[cfg(feature = "docker")]
async fn docker_runtime(
    kilo_bin: PathBuf,
) -> anyhow::Result<(Arc<dyn ContainerRuntime>, Option<IpAddr>)> {
    use gastown::docker::{AgentImage, DockerOptions, DockerRuntime};
    let options = DockerOptions::default().with_image(AgentImage::Build {
        kilo_bin: Some(kilo_bin),
    });
    let runtime = DockerRuntime::connect(options).await?;
    let gateway = model::bridge_gateway(runtime.docker()).await;
    Ok((Arc::new(runtime), Some(gateway)))
}

#[cfg(not(feature = "docker"))]
async fn docker_runtime(
    _kilo_bin: PathBuf,
) -> anyhow::Result<(Arc<dyn ContainerRuntime>, Option<IpAddr>)> {
    bail!("this build has no Docker runtime: build with the `docker` feature")
}
