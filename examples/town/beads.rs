//! `--bead "TEXT"`: after the mayor's first reply, each bead is slung to the town's first
//! rig. A polecat starts in its own worktree on the branch `gt/<polecat>/<bead>` and gets
//! the bead as a real prompt; with the scripted model (a test double) its turn is one
//! scripted call of kilo's `bash` tool that writes `BEAD-<id>.md` and commits it, then a
//! short text. When the turn ends the town counts the branch's new commits: the bead goes
//! `in_review` with a merge request bead. Printed per bead (with `--json`, one line):
//!
//! ```text
//! {"event":"bead_done","bead":"bead-…","polecat":"polecat-1","branch":"gt/polecat-1/bead-…",
//!  "commit":"<sha>","status":"in_review"}
//! ```

use std::time::Duration;

use anyhow::{bail, Context};
use gastown::core::{BeadStatus, RigId};
use gastown::TownHandle;
use gastown_scripted_model::Reply;

use crate::model::Model;
use crate::Args;

/// Slings each `--bead` to `rig` in turn and reports how each ended. Fails when a bead
/// does not reach review with a commit.
pub(crate) async fn run(
    args: &Args,
    town: &TownHandle,
    model: &Model,
    rig: &RigId,
) -> anyhow::Result<()> {
    for text in &args.beads {
        let bead = town.create_bead(text, text)?;
        if let Some(server) = &model.scripted {
            // The polecat's turn: one tool call that commits, then a closing text.
            server.push(Reply::bash(commit_command(bead.id.as_str(), text)));
            server.push(Reply::text("Committed the bead's file on my branch."));
        }
        let slung = town
            .sling(&bead.id, rig)
            .await
            .with_context(|| format!("slinging bead {} to rig {rig}", bead.id))?;
        if !args.json {
            println!(
                "\nbead {} slung to {} on branch {} (rig {rig})",
                bead.id, slung.polecat, slung.branch
            );
        }
        // The turn is bounded by --turn-timeout; the rest is the polecat's boot and the
        // reconciler's next tick (5 s while the polecat works).
        let within = Duration::from_secs(args.turn_timeout + 60);
        let done = wait_until_done(town, &bead.id, within).await?;
        let commit = done.head.clone().unwrap_or_default();
        if args.json {
            let line = serde_json::json!({
                "event": "bead_done",
                "bead": bead.id.as_str(),
                "polecat": slung.polecat.as_str(),
                "branch": slung.branch,
                "commit": commit,
                "status": done.status.as_str(),
            });
            println!("{line}");
        } else {
            println!(
                "bead {} is {}: {} committed {} on {}",
                bead.id,
                done.status.as_str(),
                slung.polecat,
                if commit.is_empty() {
                    "nothing"
                } else {
                    &commit
                },
                slung.branch
            );
        }
        if done.status != BeadStatus::InReview || commit.is_empty() {
            bail!(
                "bead {} ended {} without a commit in review (last error: {})",
                bead.id,
                done.status.as_str(),
                done.last_error.as_deref().unwrap_or("none")
            );
        }
    }
    Ok(())
}

/// Polls the bead until it leaves `open`/`in_progress` for good: in review, closed, or
/// failed (a retried dispatch passes through `open` again; that is not the end).
async fn wait_until_done(
    town: &TownHandle,
    id: &gastown::core::BeadId,
    within: Duration,
) -> anyhow::Result<gastown::core::store::BeadRecord> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let bead = town
            .bead(id)?
            .with_context(|| format!("bead {id} disappeared"))?;
        if matches!(
            bead.status,
            BeadStatus::InReview | BeadStatus::Closed | BeadStatus::Failed
        ) {
            return Ok(bead);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "bead {id} still {} after {} s",
                bead.status.as_str(),
                within.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The scripted polecat's shell command: writes the bead's text to `BEAD-<id>.md` and
/// commits it (the agent's git identity comes from its `~/.gitconfig`).
fn commit_command(id: &str, text: &str) -> String {
    let file = format!("BEAD-{id}.md");
    format!(
        "printf '%s\\n' {text} > {file} && git add {file} && git commit -q -m {message}",
        text = shell_quote(text),
        message = shell_quote(&format!("{id}: {text}")),
    )
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
