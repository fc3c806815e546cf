//! Mapping container paths and [`Word`]s to the host.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use gastown_core::{ContainerPath, Word};

/// `path` under `town_dir`: `/agents/mayor` → `<town_dir>/agents/mayor`, `/` → `town_dir`.
/// Cannot escape `town_dir` by `..`: [`ContainerPath`] has no such component.
pub(crate) fn host_path(town_dir: &Path, path: &ContainerPath) -> PathBuf {
    let mut host = town_dir.to_owned();
    host.extend(path.components());
    host
}

/// The value a process gets for `word`: text as is, a container path mapped to its host
/// path, a secret exposed (this is the one place it is handed to its consumer, the child).
pub(crate) fn word_value(town_dir: &Path, word: &Word) -> OsString {
    match word {
        Word::Text(text) => text.into(),
        Word::Path(path) => host_path(town_dir, path).into_os_string(),
        Word::Secret(secret) => secret.expose().into(),
    }
}

#[cfg(test)]
mod tests {
    use gastown_core::Secret;

    use super::*;

    #[test]
    fn maps_under_the_town_dir() {
        let dir = Path::new("/r/town");
        let p = ContainerPath::new("/agents/mayor/data").unwrap();
        assert_eq!(
            host_path(dir, &p),
            PathBuf::from("/r/town/agents/mayor/data")
        );
        assert_eq!(
            host_path(dir, &ContainerPath::root()),
            PathBuf::from("/r/town")
        );
    }

    #[test]
    fn words() {
        let dir = Path::new("/r/t");
        let p = ContainerPath::new("/x").unwrap();
        assert_eq!(word_value(dir, &Word::Path(p)), OsString::from("/r/t/x"));
        assert_eq!(word_value(dir, &"/x".into()), OsString::from("/x"));
        assert_eq!(
            word_value(dir, &Word::Secret(Secret::new("pw"))),
            OsString::from("pw")
        );
    }
}
