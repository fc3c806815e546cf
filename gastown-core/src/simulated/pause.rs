//! Pause and resume of the simulated runtime: a container's processes frozen in virtual
//! time.

use std::sync::Arc;

use super::log::SimEventKind;
use super::runtime::{is_up, Inner};
use crate::error::{Error, Result};
use crate::ids::TownId;
use crate::status::ContainerStatus;

/// `pause` (`freeze`) or `resume`, serialised with the town's start, stop and remove.
pub(super) async fn freeze(inner: &Arc<Inner>, town: &TownId, freeze: bool) -> Result<()> {
    let lock = inner.lifecycle_lock(town);
    let _serialised = lock.lock().await;
    freeze_locked(inner, town, freeze).await
}

/// [`freeze`] for a caller that holds the town's lifecycle lock. A container already in
/// the wanted state is left alone (no time, no event); otherwise the scripted
/// [`container_pause`](super::SimScript::container_pause) or
/// [`container_resume`](super::SimScript::container_resume) passes, then the status
/// changes and a [`SimEventKind::ContainerPause`] or [`SimEventKind::ContainerResume`] is
/// logged.
///
/// # Errors
/// [`Error::ContainerNotRunning`] when the container is absent or stopped (also when a test
/// killed it during the charge).
pub(super) async fn freeze_locked(inner: &Arc<Inner>, town: &TownId, freeze: bool) -> Result<()> {
    let wanted = if freeze {
        ContainerStatus::Paused
    } else {
        ContainerStatus::Running
    };
    let not_running = || Error::ContainerNotRunning { town: town.clone() };
    match inner.state.lock().towns.get(town).map(|t| t.status) {
        Some(s) if s == wanted => return Ok(()),
        Some(s) if is_up(s) => {}
        _ => return Err(not_running()),
    }
    let start = inner.offset();
    let cost = inner.script(|s| {
        if freeze {
            s.container_pause
        } else {
            s.container_resume
        }
    });
    Inner::charge(cost).await;
    {
        let mut state = inner.state.lock();
        match state.towns.get_mut(town) {
            Some(t) if is_up(t.status) => t.status = wanted,
            _ => return Err(not_running()),
        }
    }
    if !freeze {
        inner.thawed.notify_waiters();
    }
    let kind = if freeze {
        SimEventKind::ContainerPause
    } else {
        SimEventKind::ContainerResume
    };
    inner.record(start, town, kind, true);
    Ok(())
}

impl Inner {
    /// Whether `town`'s container is paused right now.
    pub(super) fn is_paused(&self, town: &TownId) -> bool {
        self.state
            .lock()
            .towns
            .get(town)
            .is_some_and(|t| t.status == ContainerStatus::Paused)
    }

    /// Returns once `town`'s container is not paused (resumed, stopped, removed or
    /// killed); at once when it is not paused now.
    pub(super) async fn wait_thawed(&self, town: &TownId) {
        loop {
            let notified = self.thawed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_paused(town) {
                return;
            }
            notified.await;
        }
    }
}
