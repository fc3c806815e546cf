//! Single-file tar archives for the engine's archive endpoints (`put_file`, `get_file`).

use std::io::{self, Read};

use crate::image::assemble::AGENT_UID;

/// A tar holding one regular file `name` (mode 0644, owned by the agents' uid so they can
/// rewrite it — the engine applies the archive's ownership).
pub(crate) fn single_file(name: &str, contents: &[u8]) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::with_capacity(contents.len() + 2048));
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(AGENT_UID.into());
    header.set_gid(AGENT_UID.into());
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    header.set_size(contents.len() as u64);
    tar.append_data(&mut header, name, contents)?;
    tar.into_inner()
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
    fn empty_and_garbage_archives_are_errors() {
        assert!(first_file(&[]).is_err());
        assert!(first_file(b"not a tar archive at all").is_err());
    }
}
