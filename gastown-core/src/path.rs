//! [`ContainerPath`]: a validated path inside a container.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An absolute path inside a town's container, e.g. `/agents/mayor/data`.
///
/// Always absolute, `/`-separated, with no `..` or `.` component, no empty component and
/// no NUL byte, so a backend can map it under its own root (the local runtime does) without
/// escaping it. `/` itself is allowed.
///
/// ```
/// use gastown_core::ContainerPath;
///
/// let data = ContainerPath::new("/agents/mayor/data/")?; // the trailing `/` is dropped
/// assert_eq!(data.as_str(), "/agents/mayor/data");
/// assert_eq!(data.join("kilo/kilo.db")?.as_str(), "/agents/mayor/data/kilo/kilo.db");
/// assert_eq!(data.parent().unwrap().as_str(), "/agents/mayor");
/// assert!(ContainerPath::new("/agents/../etc").is_err());
/// assert!(ContainerPath::new("agents").is_err()); // relative
/// # Ok::<(), gastown_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerPath(String);

impl ContainerPath {
    /// Validates `path`. A trailing `/` is dropped.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a relative path, a `..` or `.` component, an empty
    /// component (`//`), or a NUL byte.
    pub fn new(path: impl Into<String>) -> Result<Self> {
        let path = path.into();
        let reject = |reason: &'static str| {
            Err(Error::InvalidPath {
                path: path.chars().take(200).collect(),
                reason,
            })
        };
        if !path.starts_with('/') {
            return reject("must be absolute");
        }
        if path.contains('\0') {
            return reject("must not hold a NUL byte");
        }
        let trimmed = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            &path
        };
        if trimmed.is_empty() {
            return Ok(Self("/".to_owned()));
        }
        for component in trimmed.split('/').skip(1) {
            match component {
                "" if trimmed != "/" => return reject("must not hold an empty component"),
                ".." => return reject("must not hold '..'"),
                "." => return reject("must not hold '.'"),
                _ => {}
            }
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The root, `/`.
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// Appends a relative path (one or more `/`-separated components) and validates the result.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] when `relative` is absolute or the result is invalid.
    pub fn join(&self, relative: &str) -> Result<Self> {
        if relative.starts_with('/') {
            return Err(Error::InvalidPath {
                path: relative.chars().take(200).collect(),
                reason: "joined part must be relative",
            });
        }
        if self.0 == "/" {
            Self::new(format!("/{relative}"))
        } else {
            Self::new(format!("{}/{relative}", self.0))
        }
    }

    /// The parent directory; `None` for `/`.
    pub fn parent(&self) -> Option<Self> {
        if self.0 == "/" {
            return None;
        }
        let idx = self.0.rfind('/').unwrap_or(0);
        Some(if idx == 0 {
            Self::root()
        } else {
            Self(self.0[..idx].to_owned())
        })
    }

    /// The last component; `None` for `/`.
    pub fn file_name(&self) -> Option<&str> {
        (self.0 != "/").then(|| self.0.rsplit('/').next().unwrap_or(""))
    }

    /// The components after the root (`/a/b` → `a`, `b`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContainerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContainerPath({:?})", self.0)
    }
}

impl TryFrom<String> for ContainerPath {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<ContainerPath> for String {
    fn from(p: ContainerPath) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(ContainerPath::new("/a/b/").unwrap().as_str(), "/a/b");
        assert_eq!(ContainerPath::new("/").unwrap().as_str(), "/");
        assert_eq!(ContainerPath::new("/a/.b").unwrap().as_str(), "/a/.b");
    }

    #[test]
    fn rejects_escapes() {
        for bad in [
            "a/b", "", "/a/../b", "/..", "/a/./b", "/a//b", "/a\0b", "../x",
        ] {
            assert!(
                matches!(ContainerPath::new(bad), Err(Error::InvalidPath { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn join_and_parent() {
        let p = ContainerPath::new("/agents").unwrap();
        let q = p.join("mayor/data").unwrap();
        assert_eq!(q.as_str(), "/agents/mayor/data");
        assert_eq!(q.parent().unwrap().as_str(), "/agents/mayor");
        assert_eq!(p.parent().unwrap().as_str(), "/");
        assert_eq!(q.file_name(), Some("data"));
        assert!(p.join("../etc").is_err());
        assert!(p.join("/etc").is_err());
        assert_eq!(ContainerPath::root().join("x").unwrap().as_str(), "/x");
    }
}
