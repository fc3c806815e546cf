//! The shell wrapper every command runs through, so a process gets exactly the environment
//! and cwd of its [`CommandSpec`].
//!
//! Docker merges an exec's `Env` into the container's own (image `ENV`, `PATH`,
//! `HOSTNAME`) and adds `HOME`; a shell adds `SHLVL`, `PWD`, `OLDPWD`. The wrapper `cd`s
//! to the cwd, resolves the program against the command's `PATH`, unsets every variable
//! that is not the command's, re-sets the shell-owned ones the command does define, and
//! `exec`s the program (so it keeps the wrapper's pid). The command's variables travel in
//! the exec's `Env` only — never in argv, where `docker inspect` would show a secret.
//!
//! Failures before the `exec` are reported on stderr with fixed markers, exit 127 for a
//! missing program and 126 for a missing cwd. A spawned command first prints
//! `gastown-exec: pid <pid>` on stderr (its in-container pid, for signals). A recorded
//! spawn ([`Mode::Record`], `ContainerRuntime::spawn_labelled`) first writes its process
//! record (`records.rs`: pid, start time from `/proc/$$/stat`, the label) into
//! [`RECORDS_DIR`](crate::records::RECORDS_DIR) — before the pid line, so a record exists
//! once `spawn` returns — or fails with its own marker and exit 125.

use std::collections::BTreeSet;

use gastown_core::{CommandSpec, Error, Result, Word};

/// Marker line of a missing program (then exit 127).
pub(crate) const NOT_FOUND_MARKER: &str = "gastown-exec: program not found: ";
/// Marker line of a missing working directory (then exit 126).
pub(crate) const NO_CWD_MARKER: &str = "gastown-exec: no such working directory: ";
/// Marker line carrying a spawned process's in-container pid.
pub(crate) const PID_MARKER: &str = "gastown-exec: pid ";
/// Marker line of a process record that could not be written (then exit 125).
pub(crate) const RECORD_FAILED_MARKER: &str = "gastown-exec: cannot record the process";

/// Variables a Docker exec or the wrapper shell adds on its own, always considered for
/// unsetting (the image's `ENV` names are added per runtime).
pub(crate) const INJECTED_VARS: [&str; 6] = ["PATH", "HOSTNAME", "HOME", "SHLVL", "PWD", "OLDPWD"];

/// Variables the wrapper shell itself changes; when the command defines them they are
/// re-set after the shell ran (their values pass through argv, unlike the rest).
const SHELL_OWNED_VARS: [&str; 3] = ["SHLVL", "PWD", "OLDPWD"];

/// Positional parameters: `$1` mode (`exec`, `spawn`, `record`), in `record` mode `$2` the
/// label's JSON (then shifted away), then program, cwd (may be empty), names to unset
/// (space-separated, validated identifiers), count of `NAME=value` re-sets, the re-sets,
/// and the program's arguments. Script variables are `_gx_`-prefixed and never exported.
/// The record's start time is field 22 of `/proc/$$/stat` (proc(5)), the shell's own,
/// which `exec` keeps: `_gx_f` shifts past fields 3..21 of what follows the command name.
const SCRIPT: &str = r#"_gx_m=$1; shift; _gx_j=; if [ "$_gx_m" = record ]; then _gx_j=$1; shift; fi
_gx_p=$1 _gx_d=$2 _gx_u=$3 _gx_n=$4; shift 4
if [ -n "$_gx_d" ]; then cd "$_gx_d" 2>/dev/null || { echo "gastown-exec: no such working directory: $_gx_d" >&2; exit 126; }; fi
case $_gx_p in
*/*) _gx_r=$_gx_p ;;
*) _gx_r=; set -f; _gx_o=$IFS; IFS=:
   for _gx_x in $PATH; do if [ -n "$_gx_x" ] && [ -f "$_gx_x/$_gx_p" ] && [ -x "$_gx_x/$_gx_p" ]; then _gx_r=$_gx_x/$_gx_p; break; fi; done
   IFS=$_gx_o; set +f ;;
esac
if [ -z "$_gx_r" ] || [ ! -f "$_gx_r" ] || [ ! -x "$_gx_r" ]; then echo "gastown-exec: program not found: $_gx_p" >&2; exit 127; fi
if [ "$_gx_m" = record ]; then
  _gx_f() { shift 19; _gx_t=$1; }
  _gx_t=; read -r _gx_s < /proc/$$/stat; _gx_s=${_gx_s##*) }; set -f; _gx_f $_gx_s; set +f
  _gx_rd=/run/gastown/processes
  { [ -n "$_gx_t" ] && mkdir -p "$_gx_rd" && printf '{"pid":%s,"start_ticks":%s,"label":%s}\n' $$ "$_gx_t" "$_gx_j" > "$_gx_rd/.$$.tmp" && mv -f "$_gx_rd/.$$.tmp" "$_gx_rd/$$.json"; } 2>/dev/null || { echo "gastown-exec: cannot record the process" >&2; exit 125; }
fi
while [ "$_gx_n" -gt 0 ]; do export "$1"; shift; _gx_n=$((_gx_n - 1)); done
unset $_gx_u
if [ "$_gx_m" != exec ]; then echo "gastown-exec: pid $$" >&2; fi
exec "$_gx_r" "$@""#;

/// Whether the wrapper announces the pid, and records the process first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Run to completion.
    Exec,
    /// Long-running: print the pid marker first.
    Spawn,
    /// Long-running and recorded: write the process record whose label is this JSON
    /// object (no secrets: it is an argument), then print the pid marker.
    Record(String),
}

/// The `Cmd` and `Env` of a Docker exec running `spec` through the wrapper.
#[derive(Clone)]
pub(crate) struct Wrapped {
    pub(crate) cmd: Vec<String>,
    pub(crate) env: Vec<String>,
}

impl std::fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Env values may be secrets.
        f.debug_struct("Wrapped")
            .field("cmd", &self.cmd)
            .field("env_vars", &self.env.len())
            .finish()
    }
}

fn render(word: &Word) -> &str {
    match word {
        Word::Text(t) => t,
        Word::Path(p) => p.as_str(),
        Word::Secret(s) => s.expose(),
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Wraps `spec`. `image_env_names` are the variable names the image's `ENV` defines.
///
/// # Errors
/// [`Error::InvalidConfig`] for a variable name that is not a shell identifier, or a value
/// or argument holding a NUL byte (neither can reach a process intact).
pub(crate) fn wrap(mode: Mode, spec: &CommandSpec, image_env_names: &[String]) -> Result<Wrapped> {
    let invalid = |message: String| Err(Error::InvalidConfig { message });
    if spec.program.is_empty() || spec.program.contains('\0') {
        return invalid(format!("invalid program name {:?}", spec.program));
    }
    let mut env = Vec::with_capacity(spec.env.len());
    for (k, v) in &spec.env {
        if !is_identifier(k) {
            return invalid(format!("invalid environment variable name {k:?}"));
        }
        let v = render(v);
        if v.contains('\0') {
            return invalid(format!("environment variable {k} holds a NUL byte"));
        }
        env.push(format!("{k}={v}"));
    }
    let unset: BTreeSet<&str> = INJECTED_VARS
        .iter()
        .copied()
        .chain(image_env_names.iter().map(String::as_str))
        .filter(|n| is_identifier(n) && !spec.env.contains_key(*n))
        .collect();
    let resets: Vec<String> = SHELL_OWNED_VARS
        .iter()
        .filter_map(|n| spec.env.get(*n).map(|v| format!("{n}={}", render(v))))
        .collect();

    let mut cmd = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        SCRIPT.to_owned(),
        "gastown-exec".to_owned(),
        match &mode {
            Mode::Exec => "exec",
            Mode::Spawn => "spawn",
            Mode::Record(_) => "record",
        }
        .to_owned(),
    ];
    if let Mode::Record(label) = mode {
        if label.contains('\0') {
            return invalid("a process label holds a NUL byte".to_owned());
        }
        cmd.push(label);
    }
    cmd.extend([
        spec.program.clone(),
        spec.cwd
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        unset.into_iter().collect::<Vec<_>>().join(" "),
        resets.len().to_string(),
    ]);
    cmd.extend(resets);
    for arg in &spec.args {
        let a = render(arg);
        if a.contains('\0') {
            return invalid("an argument holds a NUL byte".to_owned());
        }
        cmd.push(a.to_owned());
    }
    Ok(Wrapped { cmd, env })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gastown_core::{ContainerPath, Secret};

    #[test]
    fn secrets_stay_out_of_argv_and_debug() {
        let spec = CommandSpec::new("kilo")
            .arg("serve")
            .env("KILO_SERVER_PASSWORD", Secret::new("pw-123"))
            .env("PATH", "/usr/bin");
        let w = wrap(Mode::Spawn, &spec, &[]).unwrap();
        assert!(w.cmd.iter().all(|a| !a.contains("pw-123")));
        assert!(w.env.contains(&"KILO_SERVER_PASSWORD=pw-123".to_owned()));
        assert!(!format!("{w:?}").contains("pw-123"));
        // PATH is the command's: not unset; the others are.
        assert_eq!(w.cmd[7], "HOME HOSTNAME OLDPWD PWD SHLVL");
        assert_eq!(w.cmd.last().unwrap(), "serve");
    }

    #[test]
    fn shell_owned_vars_are_reset_and_image_env_unset() {
        let spec = CommandSpec::new("env")
            .env("SHLVL", "5")
            .cwd(ContainerPath::new("/tmp").unwrap());
        let w = wrap(
            Mode::Exec,
            &spec,
            &["LANG".to_owned(), "bad name".to_owned()],
        )
        .unwrap();
        assert_eq!(w.cmd[6], "/tmp");
        assert_eq!(w.cmd[7], "HOME HOSTNAME LANG OLDPWD PATH PWD");
        assert_eq!(w.cmd[8], "1");
        assert_eq!(w.cmd[9], "SHLVL=5");
    }

    #[test]
    fn bad_names_and_nul_bytes_are_rejected() {
        for spec in [
            CommandSpec::new("x").env("A=B", "1"),
            CommandSpec::new("x").env("", "1"),
            CommandSpec::new("x").env("A", "a\0b"),
            CommandSpec::new("x").arg("a\0b"),
            CommandSpec::new(""),
        ] {
            assert!(matches!(
                wrap(Mode::Exec, &spec, &[]),
                Err(Error::InvalidConfig { .. })
            ));
        }
    }
}
