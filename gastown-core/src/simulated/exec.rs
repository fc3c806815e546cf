//! What `exec` of a command does in the simulated container: which scripted duration it
//! costs and which marker files it leaves for the actors to find later.
//!
//! Only what gastown runs is interpreted: `mkdir` (directories are implicit, so it changes
//! nothing), `rm` (removes files under its path arguments), `true`, and `git`:
//!
//! | command | leaves |
//! |---|---|
//! | `git init [--bare] [DIR]` (DIR defaults to the cwd) | `DIR/.git/HEAD` (`DIR/HEAD` bare) |
//! | `git clone [--bare] SRC DEST` | `DEST/.git/HEAD` (`DEST/HEAD` bare) |
//! | `git worktree add … PATH …` | `PATH/.git` (a worktree's `.git` is a file) |
//! | `git worktree remove … PATH` | removes the files under `PATH` |
//! | `git bundle create FILE …` | `FILE` (a bundle header) |
//!
//! `git commit`, `fetch`, `checkout`, `switch` and `worktree` need a repository at (or
//! above) the cwd, as real git does; without one they exit 128. Other subcommands succeed
//! and print nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::SimulatedError;
use super::script::SimScript;
use crate::command::{CommandSpec, Word};
use crate::error::{Error, Result};
use crate::path::ContainerPath;
use crate::runtime::ExecOutput;

/// A command's file name: `/usr/bin/git` → `git`.
pub(super) fn program_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// Checks that `program` exists in the simulated container and is not made to fail.
///
/// # Errors
/// [`Error::ProgramNotFound`] otherwise.
pub(super) fn check_program(script: &SimScript, program: &str) -> Result<()> {
    let name = program_name(program);
    if script.fail_programs.contains(name) || script.fail_programs.contains(program) {
        return Err(Error::ProgramNotFound {
            program: program.to_owned(),
            hint: "; made to fail by the simulated runtime's script (SimScript::fail_programs)"
                .to_owned(),
        });
    }
    if script.installed_programs.contains(name) || script.sdk_programs.contains(name) {
        Ok(())
    } else {
        Err(Error::ProgramNotFound {
            program: program.to_owned(),
            hint: String::new(),
        })
    }
}

/// What an `exec` will do, decided before its duration is charged.
#[derive(Debug)]
pub(super) struct Plan {
    /// The program's file name.
    pub(super) program: String,
    /// git's subcommand.
    pub(super) sub: Option<String>,
    /// The effective cwd (git's `-C` applied).
    pub(super) cwd: Option<ContainerPath>,
    /// The scripted duration.
    pub(super) charge: Duration,
    action: Action,
}

#[derive(Debug)]
enum Action {
    Nothing,
    Remove(Vec<ContainerPath>),
    Git(Git),
}

#[derive(Debug)]
struct Git {
    sub: String,
    /// Positional arguments after the subcommand, resolved against the cwd (`None` for one
    /// that is not a path, e.g. a URL or a branch name).
    positional: Vec<(String, Option<ContainerPath>)>,
    bare: bool,
    fail: bool,
    /// The scripted stdout ([`SimScript::git_stdout`]).
    stdout: Option<String>,
}

fn text(word: &Word) -> Option<&str> {
    match word {
        Word::Text(t) => Some(t),
        Word::Path(p) => Some(p.as_str()),
        Word::Secret(_) => None,
    }
}

fn resolve(word: &Word, cwd: &Option<ContainerPath>) -> Option<ContainerPath> {
    match word {
        Word::Path(p) => Some(p.clone()),
        Word::Text(t) if t.starts_with('/') => ContainerPath::new(t.as_str()).ok(),
        // A URL (`https://…`, `git@host:…`) is not a path.
        Word::Text(t) if t.contains(':') => None,
        Word::Text(t) => cwd.clone().unwrap_or_else(ContainerPath::root).join(t).ok(),
        Word::Secret(_) => None,
    }
}

/// Decides what `command` does.
///
/// # Errors
/// [`Error::ProgramNotFound`] for a program the container lacks (see [`check_program`]);
/// [`SimulatedError::CannotRun`] for an installed program the simulator cannot run to completion
/// (`sh`, `sleep`: they can only be spawned).
pub(super) fn plan(script: &SimScript, command: &CommandSpec) -> Result<Plan> {
    check_program(script, &command.program)?;
    let program = program_name(&command.program).to_owned();
    let mut cwd = command.cwd.clone();
    let (charge, sub, action) = match program.as_str() {
        "mkdir" | "true" => (script.mkdir, None, Action::Nothing),
        "rm" => {
            let targets = command
                .args
                .iter()
                .filter(|w| !text(w).is_some_and(|t| t.starts_with('-')))
                .filter_map(|w| resolve(w, &cwd))
                .collect();
            (script.mkdir, None, Action::Remove(targets))
        }
        "git" => {
            let git = parse_git(script, &command.args, &mut cwd);
            let charge = script.git(&git.sub);
            (charge, Some(git.sub.clone()), Action::Git(git))
        }
        _ => return Err(SimulatedError::CannotRun { program }.into()),
    };
    Ok(Plan {
        program,
        sub,
        cwd,
        charge,
        action,
    })
}

fn parse_git(script: &SimScript, args: &[Word], cwd: &mut Option<ContainerPath>) -> Git {
    let mut words = args.iter();
    let mut sub = String::new();
    // Global options come before the subcommand; `-C DIR` changes the cwd.
    while let Some(w) = words.next() {
        match text(w) {
            Some("-C") => {
                if let Some(dir) = words.next() {
                    *cwd = resolve(dir, cwd).or(cwd.take());
                }
            }
            Some("-c") => {
                words.next();
            }
            Some(t) if t.starts_with('-') => {}
            Some(t) => {
                sub = t.to_owned();
                break;
            }
            None => {}
        }
    }
    let rest: Vec<&Word> = words.collect();
    let bare = rest.iter().any(|w| text(w) == Some("--bare"));
    let mut positional = Vec::new();
    let mut rest = rest.into_iter();
    while let Some(w) = rest.next() {
        match text(w) {
            // Options that take a value (`worktree add -b BRANCH`): the value is no path.
            Some("-b" | "-B") => {
                rest.next();
            }
            Some(t) if t.starts_with('-') => {}
            Some(t) => positional.push((t.to_owned(), resolve(w, cwd))),
            None => {}
        }
    }
    Git {
        fail: script.fail_git.contains(&sub),
        stdout: script.git_stdout.get(&sub).cloned(),
        sub,
        positional,
        bare,
    }
}

/// Whether `dir` or one of its ancestors is a git repository (a `.git/HEAD`, a worktree's
/// `.git` file, or a bare repository's `HEAD`).
fn in_repository(files: &BTreeMap<ContainerPath, Vec<u8>>, dir: &ContainerPath) -> bool {
    let mut cur = Some(dir.clone());
    while let Some(d) = cur {
        let found = [".git/HEAD", ".git", "HEAD"]
            .iter()
            .filter_map(|m| d.join(m).ok())
            .any(|p| files.contains_key(&p));
        if found {
            return true;
        }
        cur = d.parent();
    }
    false
}

fn ok() -> ExecOutput {
    ExecOutput {
        exit_code: 0,
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}

fn fatal(message: String) -> ExecOutput {
    ExecOutput {
        exit_code: 128,
        stdout: Vec::new(),
        stderr: format!("fatal: {message}\n").into_bytes(),
    }
}

/// Removes every file at or under `dir`.
pub(super) fn remove_tree(files: &mut BTreeMap<ContainerPath, Vec<u8>>, dir: &ContainerPath) {
    let prefix = format!("{}/", dir.as_str().trim_end_matches('/'));
    files.retain(|p, _| p != dir && !p.as_str().starts_with(&prefix));
}

/// Carries out `plan` on the container's files (after its duration was charged).
pub(super) fn apply(plan: &Plan, files: &mut BTreeMap<ContainerPath, Vec<u8>>) -> ExecOutput {
    let root = ContainerPath::root();
    let cwd = plan.cwd.as_ref().unwrap_or(&root);
    let git = match &plan.action {
        Action::Nothing => return ok(),
        Action::Remove(targets) => {
            for t in targets {
                remove_tree(files, t);
            }
            return ok();
        }
        Action::Git(git) => git,
    };
    if git.fail {
        return fatal(format!(
            "git {} made to fail by the simulated runtime's script (SimScript::fail_git)",
            git.sub
        ));
    }
    let head = |dir: &ContainerPath, bare: bool| {
        dir.join(if bare { "HEAD" } else { ".git/HEAD" })
            .map_err(|e| e.to_string())
    };
    let needs_repo = matches!(
        git.sub.as_str(),
        "commit" | "fetch" | "checkout" | "switch" | "worktree"
    );
    if needs_repo && !in_repository(files, cwd) {
        return fatal(format!(
            "not a git repository (or any of the parent directories): {cwd}"
        ));
    }
    if git.sub == "init" {
        // Like git: a new repository says "Initialized empty …", an existing one
        // "Reinitialized existing …" (callers tell the two apart by it).
        let dir = git
            .positional
            .first()
            .and_then(|(_, p)| p.clone())
            .unwrap_or_else(|| cwd.clone());
        return match head(&dir, git.bare) {
            Ok(marker) => {
                let existed = files.contains_key(&marker);
                files.insert(marker, b"ref: refs/heads/main\n".to_vec());
                let word = if existed {
                    "Reinitialized existing"
                } else {
                    "Initialized empty"
                };
                let mut out = ok();
                out.stdout = format!("{word} Git repository in {dir}/.git/\n").into_bytes();
                out
            }
            Err(e) => fatal(e),
        };
    }
    let created = match git.sub.as_str() {
        "clone" => {
            let dest = match git.positional.as_slice() {
                [] => return fatal("You must specify a repository to clone.".to_owned()),
                [(source, _)] => {
                    let name = source
                        .trim_end_matches('/')
                        .rsplit(['/', ':'])
                        .next()
                        .unwrap_or(source)
                        .trim_end_matches(".git");
                    cwd.join(&format!("{name}{}", if git.bare { ".git" } else { "" }))
                        .ok()
                }
                [.., (_, dest)] => dest.clone(),
            };
            match dest {
                Some(dest) => {
                    head(&dest, git.bare).map(|p| Some((p, b"ref: refs/heads/main\n".to_vec())))
                }
                None => return fatal("the clone destination is not a path".to_owned()),
            }
        }
        "worktree" => match git.positional.split_first() {
            Some(((action, _), rest)) if action == "add" => {
                match rest.first().and_then(|(_, p)| p.clone()) {
                    Some(path) => path
                        .join(".git")
                        .map(|marker| {
                            let name = path.file_name().unwrap_or("worktree").to_owned();
                            let gitdir = format!("gitdir: {cwd}/worktrees/{name}\n");
                            Some((marker, gitdir.into_bytes()))
                        })
                        .map_err(|e| e.to_string()),
                    None => return fatal("worktree add needs a path".to_owned()),
                }
            }
            Some(((action, _), rest)) if action == "remove" => {
                if let Some(path) = rest.first().and_then(|(_, p)| p.clone()) {
                    remove_tree(files, &path);
                }
                Ok(None)
            }
            _ => Ok(None),
        },
        // `git bundle create FILE REVS…`: the file, with a bundle header.
        "bundle" => match git.positional.as_slice() {
            [(action, _), (_, Some(file)), ..] if action == "create" => {
                Ok(Some((file.clone(), b"# v2 git bundle\n".to_vec())))
            }
            _ => Ok(None),
        },
        _ => Ok(None),
    };
    let scripted = || {
        let mut out = ok();
        out.stdout = git.stdout.clone().unwrap_or_default().into_bytes();
        out
    };
    match created {
        Ok(Some((path, contents))) => {
            files.insert(path, contents);
            scripted()
        }
        Ok(None) => scripted(),
        Err(e) => fatal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ContainerPath {
        ContainerPath::new(s).unwrap()
    }

    fn run(files: &mut BTreeMap<ContainerPath, Vec<u8>>, cmd: CommandSpec) -> ExecOutput {
        let plan = plan(&SimScript::default(), &cmd).unwrap();
        apply(&plan, files)
    }

    #[test]
    fn git_markers_and_missing_repository() {
        let mut files = BTreeMap::new();
        let ws = p("/workspace/mayor");
        let commit = CommandSpec::new("git")
            .args(["commit", "-q", "--allow-empty", "-m", "x"])
            .cwd(ws.clone());
        let out = run(&mut files, commit.clone());
        assert_eq!(out.exit_code, 128, "commit outside a repository");
        assert!(files.is_empty(), "a failed command changes nothing");

        run(
            &mut files,
            CommandSpec::new("git").args(["init", "-q"]).cwd(ws.clone()),
        );
        assert!(files.contains_key(&p("/workspace/mayor/.git/HEAD")));
        assert!(run(&mut files, commit).success());

        let clone = CommandSpec::new("/usr/bin/git")
            .args(["clone", "-q", "--bare"])
            .arg(p("/mnt/rigs/r1"))
            .arg(p("/rigs/r1.git"))
            .cwd(p("/rigs"));
        assert!(run(&mut files, clone).success());
        assert!(files.contains_key(&p("/rigs/r1.git/HEAD")));

        let add = CommandSpec::new("git")
            .args(["worktree", "add", "-q", "--detach"])
            .arg(p("/workspace/mayor/browse/r1"))
            .arg("main")
            .cwd(p("/rigs/r1.git"));
        assert!(run(&mut files, add).success());
        assert!(files.contains_key(&p("/workspace/mayor/browse/r1/.git")));
    }

    #[test]
    fn unknown_and_unrunnable_programs() {
        let s = SimScript::default().with_failing_program("git");
        assert!(matches!(
            plan(&s, &CommandSpec::new("git")),
            Err(Error::ProgramNotFound { .. })
        ));
        assert!(matches!(
            plan(&s, &CommandSpec::new("nope")),
            Err(Error::ProgramNotFound { hint, .. }) if hint.is_empty()
        ));
        let err = plan(&s, &CommandSpec::new("sh")).unwrap_err();
        assert!(
            matches!(
                err.backend_error::<SimulatedError>(),
                Some(SimulatedError::CannotRun { program }) if program == "sh"
            ),
            "{err:?}"
        );
    }
}
