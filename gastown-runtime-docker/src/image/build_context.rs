//! [`BuildContext`]: a Docker build context held as a list of entries (host files, bytes,
//! directories, symlinks), hashed and written as a tar without copying files into a
//! staging directory first (the kilo binary alone is ~170 MB).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where a file's bytes come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A host file (symlinks followed).
    Host(PathBuf),
    /// Bytes generated here (`/etc/passwd`, the Dockerfile).
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File(Source),
    Symlink(String),
}

#[derive(Debug, Clone)]
struct Entry {
    mode: u32,
    kind: Kind,
}

/// A build context: relative paths (`rootfs/bin/busybox`) to entries. Parent directories
/// are added implicitly (mode 0755).
#[derive(Debug, Clone, Default)]
pub(crate) struct BuildContext {
    entries: BTreeMap<String, Entry>,
}

impl BuildContext {
    /// Adds every missing parent directory of `path`: a tar without them makes the
    /// builder create them root-only.
    fn add_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let dir = &path[..end + i];
            self.entries.entry(dir.to_owned()).or_insert(Entry {
                mode: 0o755,
                kind: Kind::Dir,
            });
            end += i + 1;
        }
    }

    /// Adds an entry (replacing one at the same path) and its parents.
    fn insert(&mut self, path: &str, mode: u32, kind: Kind) {
        let path = path.trim_matches('/');
        self.add_parents(path);
        self.entries.insert(path.to_owned(), Entry { mode, kind });
    }

    /// Adds a directory with the given mode (e.g. `0o1777` for `/tmp`).
    pub(crate) fn dir(&mut self, path: &str, mode: u32) {
        self.insert(path, mode, Kind::Dir);
    }

    /// Adds a file.
    pub(crate) fn file(&mut self, path: &str, mode: u32, source: Source) {
        self.insert(path, mode, Kind::File(source));
    }

    /// Adds a symlink pointing at `target`.
    pub(crate) fn symlink(&mut self, path: &str, target: &str) {
        self.insert(path, 0o777, Kind::Symlink(target.to_owned()));
    }

    /// Whether an entry exists at `path`.
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path.trim_matches('/'))
    }

    /// Hex SHA-256 over every entry's path, kind, mode and bytes, in path order.
    ///
    /// # Errors
    /// A host file cannot be read.
    pub(crate) fn sha256(&self) -> io::Result<String> {
        let mut h = Sha256::new();
        let field = |h: &mut Sha256, bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        for (path, entry) in &self.entries {
            field(&mut h, path.as_bytes());
            field(&mut h, &entry.mode.to_le_bytes());
            match &entry.kind {
                Kind::Dir => field(&mut h, b"dir"),
                Kind::Symlink(t) => {
                    field(&mut h, b"symlink");
                    field(&mut h, t.as_bytes());
                }
                Kind::File(Source::Bytes(b)) => {
                    field(&mut h, b"file");
                    field(&mut h, b);
                }
                Kind::File(Source::Host(p)) => {
                    field(&mut h, b"file");
                    let mut f = open(p)?;
                    h.update(f.metadata()?.len().to_le_bytes());
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = f.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                }
            }
        }
        Ok(hex::encode(h.finalize()))
    }

    /// Writes the context as an uncompressed tar (owner 0:0, mtime 0: the builder's
    /// `COPY --chown` sets ownership where it matters).
    ///
    /// # Errors
    /// A host file cannot be read, or `out` fails.
    pub(crate) fn write_tar<W: Write>(&self, out: W) -> io::Result<W> {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(entry.mode);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match &entry.kind {
                Kind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{path}/"), io::empty())?;
                }
                Kind::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    tar.append_link(&mut header, path, target)?;
                }
                Kind::File(Source::Bytes(b)) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(b.len() as u64);
                    tar.append_data(&mut header, path, b.as_slice())?;
                }
                Kind::File(Source::Host(p)) => {
                    let f = open(p)?;
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(f.metadata()?.len());
                    tar.append_data(&mut header, path, f)?;
                }
            }
        }
        tar.into_inner()
    }
}

/// Opens a host file, naming it in the error (the bare I/O error would not say which of
/// the context's hundreds of files is missing).
fn open(p: &Path) -> io::Result<File> {
    File::open(p).map_err(|source| {
        io::Error::new(
            source.kind(),
            HostFileError {
                path: p.to_owned(),
                source,
            },
        )
    })
}

/// A host file of the build context that cannot be read: its path, with the I/O error
/// kept as the source (and the kind kept on the wrapping `io::Error`).
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
struct HostFileError {
    path: PathBuf,
    source: io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(extra: &[u8]) -> BuildContext {
        let mut c = BuildContext::default();
        c.dir("rootfs/tmp", 0o1777);
        c.file(
            "rootfs/etc/passwd",
            0o644,
            Source::Bytes(b"root:x:0:0".to_vec()),
        );
        c.file("Dockerfile", 0o644, Source::Bytes(extra.to_vec()));
        c.symlink("rootfs/bin/sh", "busybox");
        c
    }

    #[test]
    fn hash_is_stable_and_tracks_content() {
        let a = sample(b"FROM scratch").sha256().unwrap();
        assert_eq!(a, sample(b"FROM scratch").sha256().unwrap());
        assert_ne!(a, sample(b"FROM scratch\n").sha256().unwrap());
    }

    #[test]
    fn tar_holds_parents_modes_and_links() {
        let bytes = sample(b"FROM scratch").write_tar(Vec::new()).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = BTreeMap::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            seen.insert(path, (e.header().mode().unwrap(), e.header().entry_type()));
        }
        assert_eq!(seen["rootfs/"].1, tar::EntryType::Directory);
        assert_eq!(seen["rootfs/etc/"].0, 0o755);
        assert_eq!(seen["rootfs/tmp/"].0, 0o1777);
        assert_eq!(seen["rootfs/bin/sh"].1, tar::EntryType::Symlink);
        assert_eq!(seen["rootfs/etc/passwd"].0, 0o644);
    }

    #[test]
    fn a_missing_host_file_names_its_path() {
        let mut c = BuildContext::default();
        c.file(
            "rootfs/x",
            0o755,
            Source::Host("/definitely/not/here".into()),
        );
        let err = c.sha256().unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here"), "{err}");
    }
}
