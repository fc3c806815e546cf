//! Finding the kilo binary (`kilo serve` is the SDK server every agent runs;
//! ARCHITECTURE.md, *SDK server*).
//!
//! The binary comes from the npm package `@kilocode/cli-linux-x64`, pinned to
//! [`KILO_VERSION`]; `scripts/install-kilo.sh` installs it into the project-local,
//! git-ignored `.tools/kilo/` and links it as `.tools/kilo/bin/kilo` ([`TOOLS_BIN`]).
//! [`locate`] finds it there, or wherever [`KILO_BIN_ENV`] points.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The kilo version gastown is checked against (the facts in ARCHITECTURE.md, *SDK server*,
/// verified on it); `scripts/install-kilo.sh` installs exactly this version.
pub const KILO_VERSION: &str = "7.7.9";

/// The environment variable that names the kilo binary explicitly.
pub const KILO_BIN_ENV: &str = "GASTOWN_KILO_BIN";

/// Where `scripts/install-kilo.sh` links the binary, relative to the repository root.
pub const TOOLS_BIN: &str = ".tools/kilo/bin/kilo";

/// The environment variable that turns a missing kilo into a test failure (see
/// [`test_binary`]); set it to `1` in CI.
pub const REQUIRE_KILO_ENV: &str = "GASTOWN_REQUIRE_KILO";

/// This workspace's own tools dir, so tests and examples find the binary whatever their
/// working directory is.
const WORKSPACE_TOOLS_BIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/kilo/bin/kilo");

/// Finds the kilo binary. Searched in order:
///
/// 1. `explicit`, when given — it must exist; no fallback;
/// 2. the path in [`KILO_BIN_ENV`] (`GASTOWN_KILO_BIN`), when set and non-empty — it must
///    exist too, so a typo is reported rather than silently replaced by another binary;
/// 3. [`TOOLS_BIN`] (`.tools/kilo/bin/kilo`) under the current directory and under each of
///    its ancestors;
/// 4. the `.tools/kilo/bin/kilo` of the workspace this crate was built in.
///
/// A candidate counts when it is a regular file (symlinks followed) with an execute bit.
/// Relative paths from 1 and 2 are made absolute against the current directory, so the
/// result can be handed to a process with another working directory.
///
/// # Errors
/// [`Error::KiloNotFound`] listing every place searched; its message says how to install
/// kilo (`scripts/install-kilo.sh`) or point at it (`GASTOWN_KILO_BIN`).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    search(
        explicit,
        std::env::var_os(KILO_BIN_ENV),
        std::env::current_dir().ok(),
        Path::new(WORKSPACE_TOOLS_BIN),
    )
}

/// For tests that need a real kilo: `Some(path)` when [`locate`]`(None)` finds it.
///
/// When it does not: if [`REQUIRE_KILO_ENV`] (`GASTOWN_REQUIRE_KILO`) is `1`, panics with
/// the [`Error::KiloNotFound`] message (CI must not skip silently); otherwise prints
/// `skipping: kilo not installed (…)` to stderr and returns `None`, and the caller returns
/// early.
///
/// # Panics
/// As above, only when kilo is missing and `GASTOWN_REQUIRE_KILO=1`.
pub fn test_binary() -> Option<PathBuf> {
    match locate(None) {
        Ok(path) => Some(path),
        Err(err) => {
            if std::env::var_os(REQUIRE_KILO_ENV).is_some_and(|v| v == "1") {
                panic!("{REQUIRE_KILO_ENV}=1 but {err}");
            }
            eprintln!("skipping: kilo not installed ({err})");
            None
        }
    }
}

/// [`locate`] with the process inputs passed in, so the search order is testable without
/// touching the process environment.
fn search(
    explicit: Option<&Path>,
    env_value: Option<OsString>,
    cwd: Option<PathBuf>,
    workspace_bin: &Path,
) -> Result<PathBuf> {
    let absolute = |p: &Path| match &cwd {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    };
    let not_found = |searched: &[PathBuf]| Error::KiloNotFound {
        searched: searched
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };

    if let Some(path) = explicit {
        let path = absolute(path);
        return if is_executable_file(&path) {
            Ok(path)
        } else {
            Err(not_found(&[path]))
        };
    }
    if let Some(value) = env_value.filter(|v| !v.is_empty()) {
        let path = absolute(Path::new(&value));
        return if is_executable_file(&path) {
            Ok(path)
        } else {
            Err(Error::KiloNotFound {
                searched: format!("{KILO_BIN_ENV}={}", path.display()),
            })
        };
    }

    let mut searched = Vec::new();
    let ancestors = cwd.iter().flat_map(|dir| dir.ancestors());
    let candidates = ancestors
        .map(|dir| dir.join(TOOLS_BIN))
        .chain(std::iter::once(workspace_bin.to_path_buf()));
    for candidate in candidates {
        if is_executable_file(&candidate) {
            return Ok(candidate);
        }
        searched.push(candidate);
    }
    Err(not_found(&searched))
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes an executable stand-in file (not a real kilo: only its presence is tested).
    fn fake_binary(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn nowhere(dir: &Path) -> PathBuf {
        dir.join("no-workspace/kilo")
    }

    #[test]
    fn explicit_path_wins_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("x/kilo");
        fake_binary(&bin);
        let got = search(Some(&bin), None, None, &nowhere(dir.path())).unwrap();
        assert_eq!(got, bin);

        // Missing explicit path: an error even though the env var would point somewhere.
        let missing = dir.path().join("missing/kilo");
        let err = search(
            Some(&missing),
            Some(bin.clone().into_os_string()),
            None,
            &nowhere(dir.path()),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::KiloNotFound { .. }));
        assert!(msg.contains("missing/kilo") && msg.contains("install-kilo.sh"));
        assert!(bin.exists(), "the search touched nothing");
    }

    #[test]
    fn relative_explicit_path_is_made_absolute() {
        let dir = tempfile::tempdir().unwrap();
        fake_binary(&dir.path().join("bin/kilo"));
        let got = search(
            Some(Path::new("bin/kilo")),
            None,
            Some(dir.path().to_path_buf()),
            &nowhere(dir.path()),
        )
        .unwrap();
        assert_eq!(got, dir.path().join("bin/kilo"));
    }

    #[test]
    fn env_var_comes_before_tools_dirs_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let env_bin = dir.path().join("env/kilo");
        fake_binary(&env_bin);
        fake_binary(&dir.path().join(TOOLS_BIN));
        let cwd = Some(dir.path().to_path_buf());
        let got = search(
            None,
            Some(env_bin.clone().into_os_string()),
            cwd.clone(),
            &nowhere(dir.path()),
        )
        .unwrap();
        assert_eq!(got, env_bin);

        let err = search(
            None,
            Some("/definitely/not/here/kilo".into()),
            cwd.clone(),
            &nowhere(dir.path()),
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .contains("GASTOWN_KILO_BIN=/definitely/not/here/kilo"));

        // An empty variable counts as unset.
        let got = search(None, Some("".into()), cwd, &nowhere(dir.path())).unwrap();
        assert_eq!(got, dir.path().join(TOOLS_BIN));
    }

    #[test]
    fn tools_dir_is_found_in_an_ancestor_of_cwd() {
        let dir = tempfile::tempdir().unwrap();
        fake_binary(&dir.path().join(TOOLS_BIN));
        let deep = dir.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        let got = search(None, None, Some(deep), &nowhere(dir.path())).unwrap();
        assert_eq!(got, dir.path().join(TOOLS_BIN));
    }

    #[test]
    fn workspace_tools_dir_is_the_last_resort() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws/kilo");
        fake_binary(&ws);
        let cwd = dir.path().join("elsewhere");
        std::fs::create_dir_all(&cwd).unwrap();
        assert_eq!(search(None, None, Some(cwd), &ws).unwrap(), ws);
    }

    #[test]
    fn non_executable_files_do_not_count_and_everything_searched_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let tools = dir.path().join(TOOLS_BIN);
        std::fs::create_dir_all(tools.parent().unwrap()).unwrap();
        std::fs::write(&tools, "not executable").unwrap();
        let err = search(
            None,
            None,
            Some(dir.path().to_path_buf()),
            &nowhere(dir.path()),
        )
        .unwrap_err();
        let Error::KiloNotFound { searched } = &err else {
            panic!("unexpected {err:?}");
        };
        assert!(searched.contains(&tools.display().to_string()));
        assert!(searched.contains("no-workspace/kilo"));
        assert!(err.to_string().contains("GASTOWN_KILO_BIN"));
        assert_eq!(std::fs::read_to_string(&tools).unwrap(), "not executable");
    }
}
