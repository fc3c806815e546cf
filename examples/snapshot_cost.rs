//! The cost of one live (turn-boundary) snapshot of a `kilo.db` holding 100 turns.
//!
//! ```sh
//! GASTOWN_KILO_BIN=.tools/kilo/bin/kilo \
//!   cargo run --release --no-default-features --example snapshot_cost -- [--json] [--turns 100] [--runs 10]
//! ```
//!
//! Starts one real `kilo serve` in a local-runtime container, talking to the scripted model
//! server (a test double of an OpenAI-compatible provider; no network), runs `--turns`
//! prompts in one session (each awaited until the session is idle again), then, with kilo
//! still running and idle, times `--runs` calls of `gastown_core::snapshot::take_live`:
//!
//! - **take**: with no `last` hash, so every call does the whole work a changed database
//!   costs (consistent read of `kilo.db` + `kilo.db-wal`, SHA-256, backup of the pair into
//!   a temp file, `PRAGMA integrity_check`, fsync, rename, `.prev` kept);
//! - **skip**: with the previous hash, the cost of a take that finds nothing new (reads and
//!   hash only); a call that found kilo had written after all is counted as
//!   `skips_missed`, not timed.
//!
//! Prints a table of medians (ms) and sizes (bytes); with `--json`, one line
//! `{"event":"snapshot_cost","turns":100,"db_bytes":…,"wal_bytes":…,"snapshot_bytes":…,"ms_p50":…,…}`.

#[path = "../tests/support/local_kilo.rs"]
mod local_kilo;

use std::time::Instant;

use clap::Parser;
use gastown::core::kilo;
use gastown::core::snapshot::{take_live, LiveSnapshot, SnapshotStore};
use local_kilo::LocalKilo;

/// Measures one live snapshot of a kilo.db holding `turns` turns.
#[derive(Debug, Parser)]
struct Args {
    /// Print one JSON line instead of the table.
    #[arg(long)]
    json: bool,
    /// Prompts to run in the session before measuring.
    #[arg(long, default_value_t = 100)]
    turns: usize,
    /// Timed snapshots of each kind (the median is reported).
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.runs > 0 && args.turns > 0,
        "--runs and --turns must be > 0"
    );
    let bin = kilo::locate(None)?;
    let root = tempfile::tempdir()?;
    let kilo = LocalKilo::start(&bin, &root.path().join("containers")).await;
    let session = kilo.client.create_session("snapshot cost").await?;
    let started = Instant::now();
    for turn in 1..=args.turns {
        let text = format!("turn {turn}: please acknowledge this message");
        kilo.turn(&session.id, &text, turn).await;
        if turn % 10 == 0 && !args.json {
            eprintln!("{turn} turns ({} s)", started.elapsed().as_secs());
        }
    }
    let turns_s = started.elapsed().as_secs_f64();

    // kilo may still write after the last turn (a title, a summary): measure a quiet one.
    kilo.settle().await;
    let store = SnapshotStore::new(root.path().join("snapshots"));
    let db = kilo.layout.kilo_db();
    let (mut take_ms, mut read_ms, mut skip_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sizes, mut max_attempts, mut skips_missed) = (None, 0, 0);
    for _ in 0..args.runs {
        let taken = take_live(&kilo.rt, &kilo.town, &kilo.agent, &db, &store, None).await?;
        let LiveSnapshot::Taken {
            info, source, ms, ..
        } = &taken
        else {
            anyhow::bail!("a take without `last` was skipped");
        };
        take_ms.push(*ms);
        read_ms.push(source.read_ms);
        max_attempts = max_attempts.max(source.attempts);
        sizes = Some((source.db_bytes, source.wal_bytes.unwrap_or(0), info.bytes));
        let skipped = take_live(
            &kilo.rt,
            &kilo.town,
            &kilo.agent,
            &db,
            &store,
            Some(taken.hash()),
        )
        .await?;
        if skipped.is_skipped() {
            skip_ms.push(skipped.ms());
        } else {
            // kilo wrote between the two calls after all: not a skip to time.
            skips_missed += 1;
        }
    }
    kilo.stop().await;
    let (db_bytes, wal_bytes, snapshot_bytes) = sizes.expect("runs > 0");
    let (ms_p50, read_p50) = (median(take_ms), median(read_ms));
    anyhow::ensure!(
        !skip_ms.is_empty(),
        "kilo never stayed idle between two calls"
    );
    let skip_p50 = median(skip_ms);
    if args.json {
        // Keys in this order (other tools read the line).
        println!(
            "{{\"event\":\"snapshot_cost\",\"turns\":{},\"db_bytes\":{db_bytes},\
             \"wal_bytes\":{wal_bytes},\"snapshot_bytes\":{snapshot_bytes},\
             \"ms_p50\":{ms_p50},\"read_ms_p50\":{read_p50},\"skip_ms_p50\":{skip_p50},\
             \"runs\":{},\"max_attempts\":{max_attempts},\"skips_missed\":{skips_missed}}}",
            args.turns, args.runs
        );
    } else {
        println!(
            "kilo.db after {} turns ({turns_s:.1} s of turns), live snapshot on the local runtime, \
             median of {} runs",
            args.turns, args.runs
        );
        println!("  {:<34} {:>12}", "kilo.db (bytes)", db_bytes);
        println!("  {:<34} {:>12}", "kilo.db-wal (bytes)", wal_bytes);
        println!("  {:<34} {:>12}", "snapshot (bytes)", snapshot_bytes);
        println!("  {:<34} {:>12}", "take, whole call (ms, p50)", ms_p50);
        println!(
            "  {:<34} {:>12}",
            "  of which consistent read (ms, p50)", read_p50
        );
        println!("  {:<34} {:>12}", "skip, unchanged (ms, p50)", skip_p50);
        println!("  {:<34} {:>12}", "read attempts (max)", max_attempts);
        println!("  {:<34} {:>12}", "skips missed (kilo wrote)", skips_missed);
    }
    Ok(())
}
