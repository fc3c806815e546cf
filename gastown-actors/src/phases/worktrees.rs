//! `worktrees`: the agent's workspace (a git repository with one empty commit); for a
//! polecat, its own worktree of its rig; for the mayor, `AGENTS.md`.
//!
//! The mayor's read-only browse worktrees (one bare clone per rig per container, fetched
//! on later starts) are *not* made here: the mayor starts with whatever checkouts exist and
//! [`refresh_browse_worktrees`] sets them up in the background, then rewrites `AGENTS.md`
//! (the deferred browse worktree setup of Kilo Gastown's cold-start fixes; `ARCHITECTURE.md`,
//! *Phase path*).

use std::collections::BTreeMap;

use gastown_core::{
    AgentLayout, CommandSpec, ContainerPath, ContainerRuntimeExt, Result, RigConfig, Role, Word,
};

use crate::context::{rig_mount_point, AgentContext, StartProgress};
use crate::ready::BrowseState;
use crate::telemetry;

/// The rig's clone source as seen from inside the container: the mount point for a rig in a
/// host directory, the URL otherwise.
fn rig_source(rig: &RigConfig) -> Word {
    if rig.url.starts_with('/') {
        Word::Path(rig_mount_point(rig))
    } else {
        Word::Text(rig.url.clone())
    }
}

/// A git command of the agent, run in `cwd`.
pub(crate) fn git(ctx: &AgentContext, cwd: &ContainerPath) -> CommandSpec {
    CommandSpec::new("git")
        .envs(git_env(&ctx.layout))
        .cwd(cwd.clone())
}

/// The environment of every git command of an agent.
fn git_env(layout: &AgentLayout) -> BTreeMap<String, Word> {
    [
        ("PATH", Word::from(gastown_core::env::AGENT_PATH)),
        ("HOME", Word::from(layout.home())),
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        ("GIT_TERMINAL_PROMPT", "0".into()),
        ("GIT_AUTHOR_NAME", "gastown".into()),
        ("GIT_AUTHOR_EMAIL", "gastown@localhost".into()),
        ("GIT_COMMITTER_NAME", "gastown".into()),
        ("GIT_COMMITTER_EMAIL", "gastown@localhost".into()),
        // Fixed dates make the workspace's root commit the same in every container: the SDK
        // server keys its project (and so the sessions it lists) by that commit.
        ("GIT_AUTHOR_DATE", "2000-01-01T00:00:00Z".into()),
        ("GIT_COMMITTER_DATE", "2000-01-01T00:00:00Z".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The start of the message of a worktree refused because its branch already exists in
/// the rig (a sling whose branch is someone else's work: not retried).
pub(crate) const BRANCH_EXISTS: &str = "the bead's branch already exists";

/// The agent's global git config. Mounted rigs belong to another uid inside a container and
/// git refuses them as "dubious"; the `git-upload-pack` of a local clone honours
/// `safe.directory` only from global or system config, not from `-c` or the environment.
const GITCONFIG: &str =
    "[safe]\n\tdirectory = *\n[user]\n\tname = gastown\n\temail = gastown@localhost\n";

pub(crate) async fn run(ctx: &AgentContext, progress: StartProgress) -> Result<StartProgress> {
    if progress.sdk.is_some() {
        // A running server carried into this run (a model change) was started in this
        // workspace: it exists, with the polecat's worktree.
        return Ok(progress);
    }
    ensure_workspace(ctx, &progress.agent_dirs).await?;
    // The mayor's AGENTS.md and browse worktrees are background work (see
    // refresh_browse_worktrees); only a polecat's own worktree is on its critical path.
    if ctx.spec.role == Role::Polecat {
        if let Some(rig_id) = &ctx.spec.rig {
            let rig = ctx
                .parts
                .rigs
                .iter()
                .find(|r| &r.id == rig_id)
                .ok_or_else(|| gastown_core::Error::InvalidConfig {
                    message: format!("polecat {} names unknown rig {rig_id}", ctx.spec.id),
                })?;
            let path = ctx.work_dir();
            worktree(ctx, rig, &path, ctx.spec.branch.as_deref()).await?;
        }
    }
    Ok(progress)
}

/// The workspace in one command, `sh -c WORKSPACE_SCRIPT sh WORKSPACE [DIR…]`: create the
/// workspace and the directories the hydrate phase left (`$@`), make the workspace a git
/// repository, and give it its empty commit unless it has one (an existing repository is
/// left as it is; one whose commit is missing — an attempt cut off before it — gets it).
/// Paths travel as arguments, never inside the script.
const WORKSPACE_SCRIPT: &str = "set -e
mkdir -p \"$@\"
git init -q \"$1\"
git -C \"$1\" rev-parse -q --verify HEAD >/dev/null || git -C \"$1\" commit -q --allow-empty -m \"gastown workspace\"
";

/// Makes the workspace a git repository with one empty commit, together with the agent's
/// `dirs`, in one exec: every exec is an engine round trip on Docker (about 90 ms), and
/// directory creation, `git init` and the commit used to be three.
async fn ensure_workspace(ctx: &AgentContext, dirs: &[ContainerPath]) -> Result<()> {
    let cmd = workspace_command(&ctx.layout, dirs);
    ctx.parts.runtime.exec_ok(&ctx.parts.town, &cmd).await?;
    Ok(())
}

/// The one exec of [`ensure_workspace`] for `layout`'s agent: also what a warm pool runs
/// before it boots a spare mayor server, so the server finds the workspace a fresh start
/// would give it (the same root commit: fixed dates).
pub(crate) fn workspace_command(layout: &AgentLayout, dirs: &[ContainerPath]) -> CommandSpec {
    let mut cmd = CommandSpec::new("sh")
        .arg("-c")
        .arg(WORKSPACE_SCRIPT)
        .arg("sh")
        .arg(layout.workspace())
        .envs(git_env(layout))
        .cwd(ContainerPath::root());
    for dir in dirs {
        cmd = cmd.arg(dir);
    }
    cmd
}

/// What happened to one rig's browse worktree.
#[derive(Debug, Clone)]
pub(crate) struct BrowseOutcome {
    pub(crate) rig: RigConfig,
    pub(crate) path: ContainerPath,
    pub(crate) state: BrowseState,
}

/// Sets up or refreshes every rig's browse worktree, one rig after another, then rewrites
/// `AGENTS.md`. Runs in the background, never on the mayor's critical path. A broken rig
/// is reported (in the outcome and `AGENTS.md`), not fatal.
pub(crate) async fn refresh_browse_worktrees(ctx: &AgentContext) -> Vec<BrowseOutcome> {
    let started = tokio::time::Instant::now();
    let warming: Vec<BrowseOutcome> = ctx
        .parts
        .rigs
        .iter()
        .map(|rig| BrowseOutcome {
            rig: rig.clone(),
            path: ctx.layout.browse_worktree(&rig.id),
            state: BrowseState::Warming,
        })
        .collect();
    if let Err(e) = write_agents_md(ctx, &warming).await {
        tracing::warn!(town = %ctx.parts.town, error = %e, "writing AGENTS.md");
    }
    let mut outcomes = Vec::new();
    for rig in &ctx.parts.rigs {
        let path = ctx.layout.browse_worktree(&rig.id);
        let state = match worktree(ctx, rig, &path, None).await {
            Ok(()) => BrowseState::Ready,
            Err(e) => {
                tracing::warn!(town = %ctx.parts.town, rig = %rig.id, error = %e, "browse worktree");
                BrowseState::Failed(e.to_string())
            }
        };
        outcomes.push(BrowseOutcome {
            rig: rig.clone(),
            path,
            state,
        });
    }
    let ms = started.elapsed().as_millis() as u64;
    telemetry::timing(telemetry::BROWSE_WORKTREE_SETUP_MS, ctx.subject(), ms);
    if let Err(e) = write_agents_md(ctx, &outcomes).await {
        tracing::warn!(town = %ctx.parts.town, error = %e, "rewriting AGENTS.md");
    }
    outcomes
}

/// Makes (or refreshes) a worktree of `rig` at `path` from the container's bare clone of it
/// (cloned on first use, fetched afterwards): detached at the default branch, or on
/// `branch` — a polecat's bead branch, made from the default branch with the worktree.
///
/// A polecat's existing worktree is left on its branch as it is (a resumed polecat keeps
/// its uncommitted work). A new worktree whose branch already exists in the rig is refused
/// ([`BRANCH_EXISTS`] in an `InvalidConfig` error): the branch is someone else's work.
async fn worktree(
    ctx: &AgentContext,
    rig: &RigConfig,
    path: &ContainerPath,
    branch: Option<&str>,
) -> Result<()> {
    let lock = ctx.parts.rig_lock(&rig.id);
    let _clone_in_use = lock.lock().await;
    let rt = &ctx.parts.runtime;
    let town = &ctx.parts.town;
    rt.put_file(
        town,
        &ctx.layout.home().join(".gitconfig")?,
        GITCONFIG.as_bytes(),
    )
    .await?;
    let clone = AgentLayout::rig_clone(&rig.id);
    if rt.file_exists(town, &clone.join("HEAD")?).await? {
        rt.exec_ok(
            town,
            &git(ctx, &clone).args(["fetch", "-q", "origin", "+refs/heads/*:refs/heads/*"]),
        )
        .await?;
    } else {
        let rigs = clone.parent().expect("clone has a parent");
        rt.create_dir_all(town, &rigs).await?;
        rt.exec_ok(
            town,
            &git(ctx, &rigs)
                .args(["clone", "-q", "--bare"])
                .arg(rig_source(rig))
                .arg(&clone),
        )
        .await?;
    }
    let exists = rt.file_exists(town, &path.join(".git")?).await?;
    if let Some(branch) = branch {
        if exists {
            return Ok(());
        }
        if super::branch_store::restore(ctx, &clone, branch).await? {
            // The branch's commits, saved from an earlier container: check it out as is.
            rt.exec_ok(
                town,
                &git(ctx, &clone)
                    .args(["worktree", "add", "-q"])
                    .arg(path)
                    .arg(branch),
            )
            .await?;
            return Ok(());
        }
        // One exec: git refuses `-b` for a branch that exists ("a branch named … already
        // exists"), which is the refusal this function documents.
        let add = git(ctx, &clone)
            .args(["worktree", "add", "-q", "-b", branch])
            .arg(path)
            .arg(rig.default_branch.as_str());
        let out = rt.exec(town, &add).await?;
        if !out.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("already exists") && stderr.contains(branch) {
                return Err(gastown_core::Error::InvalidConfig {
                    message: format!("{BRANCH_EXISTS}: {branch} in rig {}", rig.id),
                });
            }
            return Err(gastown_core::Error::CommandFailed {
                program: add.program.clone(),
                exit_code: out.exit_code,
                stderr_tail: out.stderr_tail(2000),
            });
        }
    } else if exists {
        rt.exec_ok(
            town,
            &git(ctx, path).args(["checkout", "-q", "--detach", rig.default_branch.as_str()]),
        )
        .await?;
    } else {
        rt.exec_ok(
            town,
            &git(ctx, &clone)
                .args(["worktree", "add", "-q", "--detach"])
                .arg(path)
                .arg(rig.default_branch.as_str()),
        )
        .await?;
    }
    Ok(())
}

/// Writes the mayor's `AGENTS.md`: where each rig's browse worktree is and whether it is
/// ready. Returns the time it took, in ms.
async fn write_agents_md(ctx: &AgentContext, outcomes: &[BrowseOutcome]) -> Result<u64> {
    let started = tokio::time::Instant::now();
    let mut md = String::from("# Town\n\nYou are the mayor of this town.\n\n## Rigs\n\n");
    if outcomes.is_empty() {
        md.push_str("No rigs are configured.\n");
    }
    for o in outcomes {
        match &o.state {
            BrowseState::Ready => md.push_str(&format!(
                "- `{}` (branch `{}`): read-only checkout at `{}`\n",
                o.rig.id, o.rig.default_branch, o.path
            )),
            BrowseState::Warming => md.push_str(&format!(
                "- `{}` (branch `{}`): code browsing is still warming up; the checkout at `{}` \
                 may be missing or stale until this file is rewritten\n",
                o.rig.id, o.rig.default_branch, o.path
            )),
            BrowseState::Failed(e) => md.push_str(&format!(
                "- `{}`: checkout unavailable ({})\n",
                o.rig.id,
                e.lines().next().unwrap_or("error")
            )),
        }
    }
    let path = ctx.layout.workspace().join("AGENTS.md")?;
    ctx.parts
        .runtime
        .put_file(&ctx.parts.town, &path, md.as_bytes())
        .await?;
    let ms = started.elapsed().as_millis() as u64;
    telemetry::timing(telemetry::WRITE_AGENTS_MD_MS, ctx.subject(), ms);
    Ok(ms)
}
