//! `exec` of `sh -c SCRIPT NAME ARGS…` in the simulated container: the small subset of
//! `sh` that gastown's own scripts use (the workspace script of the `worktrees` phase),
//! each command interpreted as a lone `exec` of it would be.
//!
//! A script is lines; a line is simple commands joined by `||` or `&&` (evaluated left to
//! right, as `sh` does); `set -e` stops at the first line whose last run command fails.
//! A word is a literal (bare or in double quotes), `"$N"`/`$N` (the Nth argument, with its
//! type kept: a path stays a path) or `"$@"` (every argument from `$1`, one word each).
//! Redirections to `/dev/null` are dropped. Anything else — pipes, `;`, `if`, variables,
//! words that mix text and `$` — is [`SimulatedError::UnsupportedScript`].

use super::error::SimulatedError;
use super::exec;
use super::runtime::Inner;
use crate::command::{CommandSpec, Word};
use crate::error::{Error, Result};
use crate::ids::TownId;
use crate::runtime::ExecOutput;

/// How two commands of a line are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Join {
    /// `||`: run the next when the last status was non-zero.
    Or,
    /// `&&`: run the next when the last status was zero.
    And,
}

/// One line: its first command, then the joined ones.
#[derive(Debug)]
pub(super) struct Line {
    pub(super) first: CommandSpec,
    pub(super) rest: Vec<(Join, CommandSpec)>,
}

/// A parsed script.
#[derive(Debug)]
pub(super) struct Script {
    /// `set -e` was given.
    pub(super) errexit: bool,
    pub(super) lines: Vec<Line>,
}

fn unsupported(reason: impl Into<String>) -> crate::error::Error {
    SimulatedError::UnsupportedScript {
        reason: reason.into(),
    }
    .into()
}

/// The script of `command` when it is `sh -c SCRIPT [NAME ARGS…]`, parsed; `None` for any
/// other command. Each command inherits `command`'s environment and cwd.
///
/// # Errors
/// [`SimulatedError::UnsupportedScript`] for a construct outside the subset above.
pub(super) fn parse(command: &CommandSpec) -> Result<Option<Script>> {
    if exec::program_name(&command.program) != "sh" {
        return Ok(None);
    }
    let (Some(Word::Text(flag)), Some(Word::Text(text))) =
        (command.args.first(), command.args.get(1))
    else {
        return Ok(None);
    };
    if flag != "-c" {
        return Ok(None);
    }
    // `$0` is args[2]; `$1…` follow.
    let params: &[Word] = command.args.get(3..).unwrap_or(&[]);
    let mut script = Script {
        errexit: false,
        lines: Vec::new(),
    };
    for raw in text.lines() {
        let words = words(raw, params)?;
        if words.is_empty() {
            continue;
        }
        if words
            == [
                Token::Word(Word::from("set")),
                Token::Word(Word::from("-e")),
            ]
        {
            script.errexit = true;
            continue;
        }
        script.lines.push(line(words, command)?);
    }
    Ok(Some(script))
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(Word),
    Join(Join),
}

/// Splits a line into words and operators, expanding parameters.
fn words(raw: &str, params: &[Word]) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    for piece in split(raw)? {
        match piece.as_str() {
            "||" => tokens.push(Token::Join(Join::Or)),
            "&&" => tokens.push(Token::Join(Join::And)),
            p if p.ends_with(">/dev/null") && !p.starts_with('"') => {}
            "\"$@\"" | "$@" => tokens.extend(params.iter().cloned().map(Token::Word)),
            p => {
                let unquoted = p
                    .strip_prefix('"')
                    .and_then(|q| q.strip_suffix('"'))
                    .unwrap_or(p);
                if let Some(n) = unquoted.strip_prefix('$') {
                    let n: usize = n
                        .parse()
                        .map_err(|_| unsupported(format!("parameter {unquoted}")))?;
                    let word = n
                        .checked_sub(1)
                        .and_then(|i| params.get(i))
                        .cloned()
                        .ok_or_else(|| unsupported(format!("{unquoted} is not set")))?;
                    tokens.push(Token::Word(word));
                } else if unquoted.contains(['$', '|', ';', '&', '<', '>', '`']) {
                    return Err(unsupported(format!("word {p}")));
                } else {
                    tokens.push(Token::Word(Word::from(unquoted)));
                }
            }
        }
    }
    Ok(tokens)
}

/// Whitespace-separated pieces; a double-quoted piece (quotes kept) may hold spaces.
fn split(raw: &str) -> Result<Vec<String>> {
    let mut pieces = Vec::new();
    let mut chars = raw.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut piece = String::new();
        if c == '"' {
            piece.push(chars.next().unwrap_or('"'));
            loop {
                match chars.next() {
                    Some('"') => break piece.push('"'),
                    Some(ch) => piece.push(ch),
                    None => return Err(unsupported("an unclosed double quote")),
                }
            }
            if chars.peek().is_some_and(|ch| !ch.is_whitespace()) {
                return Err(unsupported(format!("text after the quoted word {piece}")));
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                if ch == '"' || ch == '\'' {
                    return Err(unsupported(format!("a quote inside a word in {raw:?}")));
                }
                piece.push(ch);
                chars.next();
            }
        }
        pieces.push(piece);
    }
    Ok(pieces)
}

/// Builds a line's commands from its tokens.
fn line(tokens: Vec<Token>, parent: &CommandSpec) -> Result<Line> {
    let mut commands: Vec<(Option<Join>, Vec<Word>)> = vec![(None, Vec::new())];
    for token in tokens {
        match token {
            Token::Word(w) => commands.last_mut().map(|c| c.1.push(w)).unwrap_or(()),
            Token::Join(j) => commands.push((Some(j), Vec::new())),
        }
    }
    let mut built = Vec::new();
    for (join, words) in commands {
        let mut words = words.into_iter();
        let program = match words.next() {
            Some(Word::Text(p)) => p,
            Some(_) => return Err(unsupported("a program named by a parameter")),
            None => return Err(unsupported("an empty command")),
        };
        let mut cmd = CommandSpec::new(program).envs(parent.env.clone());
        cmd.args = words.collect();
        cmd.cwd = parent.cwd.clone();
        built.push((join, cmd));
    }
    let mut built = built.into_iter();
    let (_, first) = built.next().ok_or_else(|| unsupported("an empty line"))?;
    let rest = built.map(|(j, c)| (j.unwrap_or(Join::And), c)).collect();
    Ok(Line { first, rest })
}

/// Runs `script` in `town`'s container: each command is planned and charged as a lone
/// `exec` of it would be (so a script costs the sum of its commands), in order. A
/// missing program exits 127 with `sh`'s message, as `sh` does; stdout and stderr are
/// the commands' concatenated.
///
/// # Errors
/// [`Error::ContainerNotRunning`](crate::Error::ContainerNotRunning) when the container
/// stopped meanwhile; [`SimulatedError::CannotRun`] for a command the simulator cannot
/// run to completion.
pub(super) async fn run(inner: &Inner, town: &TownId, script: &Script) -> Result<ExecOutput> {
    let mut out = ExecOutput {
        exit_code: 0,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    for line in &script.lines {
        let mut status = run_one(inner, town, &line.first, &mut out).await?;
        for (join, cmd) in &line.rest {
            let runs = match join {
                Join::Or => status != 0,
                Join::And => status == 0,
            };
            if runs {
                status = run_one(inner, town, cmd, &mut out).await?;
            }
        }
        out.exit_code = status;
        if script.errexit && status != 0 {
            break;
        }
    }
    Ok(out)
}

async fn run_one(
    inner: &Inner,
    town: &TownId,
    command: &CommandSpec,
    out: &mut ExecOutput,
) -> Result<i32> {
    let plan = match inner.script(|s| exec::plan(s, command)) {
        Ok(plan) => plan,
        Err(Error::ProgramNotFound { program, .. }) => {
            out.stderr
                .extend_from_slice(format!("sh: {program}: not found\n").as_bytes());
            return Ok(127);
        }
        Err(e) => return Err(e),
    };
    Inner::charge(plan.charge).await;
    let result = inner
        .state
        .lock()
        .running(town)
        .map(|t| exec::apply(&plan, &mut t.files))?;
    out.stdout.extend_from_slice(&result.stdout);
    out.stderr.extend_from_slice(&result.stderr);
    Ok(result.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::ContainerPath;

    fn sh(script: &str, args: &[&str]) -> CommandSpec {
        let mut c = CommandSpec::new("sh").arg("-c").arg(script).arg("sh");
        for a in args {
            c = c.arg(ContainerPath::new(*a).unwrap());
        }
        c.cwd(ContainerPath::root())
    }

    #[test]
    fn lines_joins_and_parameters() {
        let s = parse(&sh(
            "set -e\nmkdir -p \"$@\"\ngit -C \"$1\" rev-parse HEAD >/dev/null || git -C $1 commit -m \"a b\"\n",
            &["/w", "/d"],
        ))
        .unwrap()
        .unwrap();
        assert!(s.errexit);
        assert_eq!(s.lines.len(), 2);
        let p = |s: &str| Word::Path(ContainerPath::new(s).unwrap());
        assert_eq!(s.lines[0].first.program, "mkdir");
        assert_eq!(
            s.lines[0].first.args,
            vec![Word::from("-p"), p("/w"), p("/d")]
        );
        let second = &s.lines[1];
        assert_eq!(
            second.first.args,
            vec![
                Word::from("-C"),
                p("/w"),
                Word::from("rev-parse"),
                Word::from("HEAD")
            ]
        );
        assert_eq!(second.rest.len(), 1);
        assert_eq!(second.rest[0].0, Join::Or);
        assert_eq!(second.rest[0].1.args.last(), Some(&Word::from("a b")));
        assert_eq!(second.rest[0].1.cwd, Some(ContainerPath::root()));
    }

    #[test]
    fn other_commands_are_not_scripts_and_unsupported_syntax_is_an_error() {
        assert!(parse(&CommandSpec::new("git").arg("-c")).unwrap().is_none());
        assert!(parse(&CommandSpec::new("sh").arg("x.sh"))
            .unwrap()
            .is_none());
        for bad in ["a | b", "x=$HOME", "echo \"a$1\"", "echo 'q'", "echo $9"] {
            let err = parse(&sh(bad, &[])).unwrap_err();
            assert!(
                matches!(
                    err.backend_error::<SimulatedError>(),
                    Some(SimulatedError::UnsupportedScript { .. })
                ),
                "{bad}: {err:?}"
            );
        }
    }
}
