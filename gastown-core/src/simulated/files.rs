//! `put_files` of the simulated runtime: several files in one scripted write, as the
//! Docker runtime's one archive upload (an agent's secrets directory on every start).

use super::log::SimEventKind;
use super::runtime::Inner;
use crate::error::Result;
use crate::ids::TownId;
use crate::path::ContainerPath;

/// Writes `files` for one [`file_write`](super::SimScript::file_write) of virtual time,
/// logging a `FileWrite` event per file.
///
/// # Errors
/// `ContainerNotRunning` / `ContainerPaused` when the container does not run.
pub(super) async fn put_files(
    inner: &Inner,
    town: &TownId,
    files: &[(ContainerPath, Vec<u8>)],
) -> Result<()> {
    inner.state.lock().running(town)?;
    let start = inner.offset();
    Inner::charge(inner.script(|s| s.file_write)).await;
    {
        let mut state = inner.state.lock();
        let t = state.running(town)?;
        for (path, contents) in files {
            t.files.insert(path.clone(), contents.clone());
        }
    }
    for (path, _) in files {
        let kind = SimEventKind::FileWrite { path: path.clone() };
        inner.record(start, town, kind, true);
    }
    Ok(())
}
