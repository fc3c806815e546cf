//! [`CommandSpec`]: a command to run inside a container, with its own env and cwd.

use std::collections::BTreeMap;
use std::fmt;

use crate::path::ContainerPath;
use crate::secret::Secret;

/// One argument or environment value. Paths are typed so a backend can map them (the local
/// runtime rewrites them under its root); secrets are typed so they never show in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub enum Word {
    /// Plain text, passed as is.
    Text(String),
    /// A path inside the container, mapped by the backend.
    Path(ContainerPath),
    /// A secret, passed as is but never printed.
    Secret(Secret),
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Word::Text(t) => write!(f, "{t:?}"),
            Word::Path(p) => write!(f, "{p:?}"),
            Word::Secret(_) => f.write_str("***"),
        }
    }
}

impl From<&str> for Word {
    fn from(s: &str) -> Self {
        Word::Text(s.to_owned())
    }
}

impl From<String> for Word {
    fn from(s: String) -> Self {
        Word::Text(s)
    }
}

impl From<ContainerPath> for Word {
    fn from(p: ContainerPath) -> Self {
        Word::Path(p)
    }
}

impl From<&ContainerPath> for Word {
    fn from(p: &ContainerPath) -> Self {
        Word::Path(p.clone())
    }
}

impl From<Secret> for Word {
    fn from(s: Secret) -> Self {
        Word::Secret(s)
    }
}

/// A command to run inside a container.
///
/// The environment is exactly `env`: backends start from an empty environment and inherit
/// nothing from the host or from other processes, so one agent's secrets never reach
/// another's process, and SDK servers start in parallel with no process-global lock (Kilo
/// Gastown PR #3151 serialised every start behind one because `createKilo` read
/// `process.cwd()` and `process.env`; ARCHITECTURE.md, *SDK server*).
///
/// `Debug` prints every argument and variable but shows a [`Word::Secret`] as `***`.
///
/// ```
/// use gastown_core::{CommandSpec, ContainerPath, Secret};
///
/// let ws = ContainerPath::new("/workspace/mayor")?;
/// let cmd = CommandSpec::new("git")
///     .args(["status", "--short"])
///     .env("PATH", "/usr/bin:/bin")
///     .env("GIT_TOKEN", Secret::new("ghp_example"))
///     .cwd(ws);
/// assert_eq!(cmd.args.len(), 2);
/// assert!(!format!("{cmd:?}").contains("ghp_example"));
/// # Ok::<(), gastown_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CommandSpec {
    /// The program: a bare name resolved by the backend, or an absolute path.
    pub program: String,
    /// The arguments.
    pub args: Vec<Word>,
    /// The whole environment of the process.
    pub env: BTreeMap<String, Word>,
    /// The working directory; the container's `/` when `None`.
    pub cwd: Option<ContainerPath>,
}

impl CommandSpec {
    /// A command with no arguments, an empty environment and the default cwd.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<Word>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends text arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Word>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<Word>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Replaces the whole environment.
    pub fn envs(mut self, env: BTreeMap<String, Word>) -> Self {
        self.env = env;
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, cwd: ContainerPath) -> Self {
        self.cwd = Some(cwd);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let spec = CommandSpec::new("kilo")
            .arg("serve")
            .env("KILO_SERVER_PASSWORD", Secret::new("pw-123"));
        let shown = format!("{spec:?}");
        assert!(!shown.contains("pw-123"), "{shown}");
        assert!(shown.contains("KILO_SERVER_PASSWORD"));
    }
}
