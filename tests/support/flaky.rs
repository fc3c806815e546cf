//! A test double: a runtime that delegates to a [`LocalRuntime`] but returns different
//! bytes for one file on every read, as a database under a checkpoint that never ends (or
//! a WAL restarted on every read) would look.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gastown::core::{
    CommandSpec, ContainerInfo, ContainerOptions, ContainerPath, ContainerRuntime, ContainerStatus,
    ExecOutput, Result, SpawnedProcess, TownId,
};
use gastown::local::LocalRuntime;

/// Delegates everything to `inner`, except reads of the file named `moving`.
#[derive(Debug)]
pub struct Flaky {
    inner: Arc<LocalRuntime>,
    moving: &'static str,
    reads: AtomicU32,
}

impl Flaky {
    /// `moving` is a file name (`kilo.db` or `kilo.db-wal`).
    pub fn new(inner: Arc<LocalRuntime>, moving: &'static str) -> Flaky {
        Flaky {
            inner,
            moving,
            reads: AtomicU32::new(0),
        }
    }
}

#[async_trait]
impl ContainerRuntime for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn sdk_bind_host(&self) -> &str {
        self.inner.sdk_bind_host()
    }
    async fn start(&self, town: &TownId, options: &ContainerOptions) -> Result<ContainerInfo> {
        self.inner.start(town, options).await
    }
    async fn status(&self, town: &TownId) -> Result<ContainerStatus> {
        self.inner.status(town).await
    }
    async fn exec(&self, town: &TownId, command: &CommandSpec) -> Result<ExecOutput> {
        self.inner.exec(town, command).await
    }
    async fn spawn(&self, town: &TownId, command: &CommandSpec) -> Result<SpawnedProcess> {
        self.inner.spawn(town, command).await
    }
    async fn endpoint(&self, town: &TownId, port: u16) -> Result<String> {
        self.inner.endpoint(town, port).await
    }
    async fn put_file(&self, town: &TownId, path: &ContainerPath, contents: &[u8]) -> Result<()> {
        self.inner.put_file(town, path, contents).await
    }
    async fn get_file(&self, town: &TownId, path: &ContainerPath) -> Result<Vec<u8>> {
        if path.file_name() != Some(self.moving) {
            return self.inner.get_file(town, path).await;
        }
        let n = self.reads.fetch_add(1, Ordering::SeqCst);
        if self.moving.ends_with("-wal") {
            // A WAL header whose salt-1 (bytes 16..20) grows on every read: a restart.
            let mut header = vec![0u8; 32];
            header[16..20].copy_from_slice(&n.to_be_bytes());
            Ok(header)
        } else {
            let mut bytes = self.inner.get_file(town, path).await?;
            bytes.extend_from_slice(&n.to_le_bytes());
            Ok(bytes)
        }
    }
    async fn stop(&self, town: &TownId, grace: Duration) -> Result<()> {
        self.inner.stop(town, grace).await
    }
    async fn remove(&self, town: &TownId) -> Result<()> {
        self.inner.remove(town).await
    }
}
