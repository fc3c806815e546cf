//! Tar archives for the engine's archive endpoints: one file (`put_file`, `get_file`), or
//! several files with their parent directories (`put_files`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use crate::image::assemble::AGENT_UID;

/// A tar holding one regular file `name` (mode 0644, owned by the agents' uid so they can
/// rewrite it — the engine applies the archive's ownership).
pub(crate) fn single_file(name: &str, contents: &[u8]) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::with_capacity(contents.len() + 2048));
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    owned(&mut header);
    header.set_size(contents.len() as u64);
    tar.append_data(&mut header, name, contents)?;
    tar.into_inner()
}

/// Mode of the files [`tree`] writes: the agents' user alone reads them (they hold an
/// agent's secrets).
pub(crate) const TREE_FILE_MODE: u32 = 0o600;
/// Mode of a directory [`tree`] writes that holds one of its files.
pub(crate) const TREE_PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of the other directories [`tree`] writes: what `mkdir -p` as the agents' user
/// makes (umask 022), so an existing directory made that way keeps its mode.
pub(crate) const TREE_DIR_MODE: u32 = 0o755;

/// Owner, group and modification time (now) of every entry: the agents' uid and gid, so
/// they own what the runtime writes (the engine applies the archive's ownership, also to
/// a directory that exists).
fn owned(header: &mut tar::Header) {
    header.set_uid(AGENT_UID.into());
    header.set_gid(AGENT_UID.into());
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
}

/// A tar of `files`, each named by its components relative to the directory the archive is
/// unpacked in, preceded by an entry for every directory between that one and the files
/// (parents first): the engine's extraction creates a missing parent that has no entry as
/// root, so each has one, owned by the agents' user. Files are [`TREE_FILE_MODE`], the
/// directories holding them [`TREE_PRIVATE_DIR_MODE`], the others [`TREE_DIR_MODE`].
///
/// `None` when the files cannot share one archive: a file with no name, the same file
/// twice, or a file where another file needs a directory.
pub(crate) fn tree(files: &[(Vec<&str>, &[u8])]) -> io::Result<Option<Vec<u8>>> {
    // Directory → whether it directly holds a file.
    let mut dirs: BTreeMap<Vec<&str>, bool> = BTreeMap::new();
    let mut names: BTreeSet<&[&str]> = BTreeSet::new();
    for (components, _) in files {
        let Some((_, parents)) = components.split_last() else {
            return Ok(None);
        };
        if !names.insert(components.as_slice()) {
            return Ok(None);
        }
        for depth in 1..=parents.len() {
            let holds = depth == parents.len();
            *dirs.entry(parents[..depth].to_vec()).or_default() |= holds;
        }
    }
    if names.iter().any(|n| dirs.contains_key(*n)) {
        return Ok(None);
    }
    let size: usize = files.iter().map(|(_, c)| c.len() + 1024).sum();
    let mut tar = tar::Builder::new(Vec::with_capacity(size + 1024 * (dirs.len() + 2)));
    for (dir, holds_files) in &dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if *holds_files {
            TREE_PRIVATE_DIR_MODE
        } else {
            TREE_DIR_MODE
        });
        owned(&mut header);
        header.set_size(0);
        tar.append_data(&mut header, format!("{}/", dir.join("/")), io::empty())?;
    }
    for (components, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(TREE_FILE_MODE);
        owned(&mut header);
        header.set_size(contents.len() as u64);
        tar.append_data(&mut header, components.join("/"), *contents)?;
    }
    tar.into_inner().map(Some)
}

/// What the engine's archive of a path held.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Extracted {
    /// A regular file's bytes.
    File(Vec<u8>),
    /// A symlink (the engine does not follow the last component), with its target.
    Symlink(String),
    /// Something else (a directory, a symlink, a device): not a file.
    NotAFile,
}

/// Reads the first entry of the archive the engine returns for one path.
///
/// # Errors
/// The archive is malformed or empty.
pub(crate) fn first_file(archive: &[u8]) -> io::Result<Extracted> {
    let mut ar = tar::Archive::new(archive);
    let mut entries = ar.entries()?;
    let Some(entry) = entries.next() else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "empty archive"));
    };
    let mut entry = entry?;
    match entry.header().entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => {}
        tar::EntryType::Symlink => {
            let target = entry
                .link_name()?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok(Extracted::Symlink(target));
        }
        _ => return Ok(Extracted::NotAFile),
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut bytes)?;
    Ok(Extracted::File(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_binary_bytes() {
        let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let tar = single_file("blob.bin", &data).unwrap();
        assert_eq!(first_file(&tar).unwrap(), Extracted::File(data));
    }

    #[test]
    fn a_tree_holds_each_parent_once_before_its_files() {
        let tar = tree(&[
            (vec!["mayor", "secrets", "A"], b"a".as_slice()),
            (vec!["mayor", "secrets", "B"], b"b".as_slice()),
            (vec!["mayor", "deep", "er", "C"], b"c".as_slice()),
        ])
        .unwrap()
        .expect("one archive");
        let mut ar = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32, u64, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                )
            })
            .collect();
        let uid = u64::from(AGENT_UID);
        assert_eq!(
            entries,
            vec![
                ("mayor/".to_owned(), 0o755, uid, uid),
                ("mayor/deep/".to_owned(), 0o755, uid, uid),
                ("mayor/deep/er/".to_owned(), 0o700, uid, uid),
                ("mayor/secrets/".to_owned(), 0o700, uid, uid),
                ("mayor/secrets/A".to_owned(), 0o600, uid, uid),
                ("mayor/secrets/B".to_owned(), 0o600, uid, uid),
                ("mayor/deep/er/C".to_owned(), 0o600, uid, uid),
            ]
        );
    }

    #[test]
    fn files_that_cannot_share_an_archive_are_refused() {
        let dup = [
            (vec!["a", "f"], b"1".as_slice()),
            (vec!["a", "f"], b"2".as_slice()),
        ];
        assert!(tree(&dup).unwrap().is_none());
        let file_as_dir = [
            (vec!["a"], b"1".as_slice()),
            (vec!["a", "f"], b"2".as_slice()),
        ];
        assert!(tree(&file_as_dir).unwrap().is_none());
        assert!(tree(&[(Vec::new(), b"x".as_slice())]).unwrap().is_none());
    }

    #[test]
    fn empty_and_garbage_archives_are_errors() {
        assert!(first_file(&[]).is_err());
        assert!(first_file(b"not a tar archive at all").is_err());
    }
}
