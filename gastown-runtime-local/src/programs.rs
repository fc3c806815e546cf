//! Resolving a [`CommandSpec`](gastown_core::CommandSpec)'s program to a host binary.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gastown_core::{Error, Result};

/// Where bare program names come from: an explicit map first (e.g. `kilo` → the installed
/// binary), then the host's `PATH` as it was when the runtime was built. The child's own
/// `PATH` (from its `CommandSpec`) is not used here: it is the container's, and only the
/// program itself needs resolving on the host.
#[derive(Debug, Clone)]
pub(crate) struct Programs {
    /// Bare program name → host binary, from `LocalRuntimeBuilder::with_program`.
    map: BTreeMap<String, PathBuf>,
    /// The absolute directories of this process's `PATH` when the runtime was built, in
    /// order (relative entries are dropped: they would depend on the current directory).
    search: Vec<PathBuf>,
}

impl Programs {
    /// A resolver with `map` and the directories of this process's `PATH` (read once, here).
    pub(crate) fn new(map: BTreeMap<String, PathBuf>) -> Self {
        let search = std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .filter(|d| d.is_absolute())
                    .collect()
            })
            .unwrap_or_default();
        Self { map, search }
    }

    /// The host binary for `program`: a name holding `/` is an absolute host path used as
    /// is; a bare name is looked up in the map, then on the search path.
    ///
    /// # Errors
    /// [`Error::ProgramNotFound`] when there is no executable file to run, with a hint.
    pub(crate) fn resolve(&self, program: &str) -> Result<PathBuf> {
        let not_found = |hint: String| Error::ProgramNotFound {
            program: program.to_owned(),
            hint,
        };
        if program.is_empty() {
            return Err(not_found("; the program name is empty".to_owned()));
        }
        if program.contains('/') {
            let path = Path::new(program);
            if !path.is_absolute() {
                return Err(not_found("; a program path must be absolute".to_owned()));
            }
            return if is_executable(path) {
                Ok(path.to_owned())
            } else {
                Err(not_found(
                    "; no executable file at that host path".to_owned(),
                ))
            };
        }
        if let Some(mapped) = self.map.get(program) {
            return if is_executable(mapped) {
                Ok(mapped.clone())
            } else {
                Err(not_found(format!(
                    "; it is mapped to {}, which is not an executable file",
                    mapped.display()
                )))
            };
        }
        self.search
            .iter()
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable(candidate))
            .ok_or_else(|| {
                not_found(
                    "; it is not mapped with LocalRuntimeBuilder::with_program and not on the \
                     host PATH the runtime was built with"
                        .to_owned(),
                )
            })
    }
}

/// A regular file (after symlinks) with an execute bit for anyone (`mode & 0o111`); the
/// spawn itself reports a binary this user still cannot run.
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(map: &[(&str, &str)]) -> Programs {
        Programs {
            map: map
                .iter()
                .map(|(k, v)| ((*k).to_owned(), PathBuf::from(v)))
                .collect(),
            search: vec![PathBuf::from("/bin"), PathBuf::from("/usr/bin")],
        }
    }

    #[test]
    fn bare_names_use_the_map_then_the_search_path() {
        let p = programs(&[("my-sh", "/bin/sh")]);
        assert_eq!(p.resolve("my-sh").unwrap(), PathBuf::from("/bin/sh"));
        assert!(p.resolve("sh").unwrap().ends_with("sh"));
    }

    #[test]
    fn absolute_paths_are_used_as_is() {
        let p = programs(&[]);
        assert_eq!(p.resolve("/bin/sh").unwrap(), PathBuf::from("/bin/sh"));
    }

    #[test]
    fn missing_programs_are_typed_errors_with_a_hint() {
        let p = programs(&[("ghost", "/nonexistent/ghost")]);
        for (program, hint) in [
            ("gastown-no-such-program", "with_program"),
            ("ghost", "/nonexistent/ghost"),
            ("/nonexistent/x", "host path"),
            ("bin/sh", "absolute"),
            ("", "empty"),
            // A directory is not a program.
            ("/bin", "host path"),
        ] {
            match p.resolve(program) {
                Err(Error::ProgramNotFound {
                    program: got,
                    hint: h,
                }) => {
                    assert_eq!(got, program);
                    assert!(h.contains(hint), "{program:?}: {h}");
                }
                other => panic!("{program:?}: expected ProgramNotFound, got {other:?}"),
            }
        }
    }
}
