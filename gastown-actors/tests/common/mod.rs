//! Shared fixtures of the actor tests: a real LocalRuntime with the real kilo, wrapped in a
//! recording decorator (a test double that counts and remembers spawns, then delegates
//! every call to the real runtime).

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gastown_actors::{TownHandle, TownOptions};
use gastown_core::{
    CommandSpec, ContainerInfo, ContainerOptions, ContainerPath, ContainerRuntime, ContainerStatus,
    ExecOutput, SpawnedProcess, TownConfig, TownId,
};
use gastown_runtime_local::LocalRuntime;
use parking_lot::Mutex;

/// Whether `pid` runs (a zombie or a missing pid does not), from `/proc/<pid>/stat`.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

/// The variables of a running process, from `/proc/<pid>/environ`, in its order.
pub fn environ(pid: u32) -> Vec<(String, String)> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The real kilo, or `None` (skip) when it is not installed and not required.
pub fn kilo() -> Option<PathBuf> {
    gastown_core::kilo::test_binary()
}

/// Counts and records the processes spawned through a real runtime.
#[derive(Debug)]
pub struct RecordingRuntime {
    inner: Arc<dyn ContainerRuntime>,
    spawned: Mutex<Vec<(String, Option<u32>)>>,
}

impl RecordingRuntime {
    pub fn new(inner: Arc<dyn ContainerRuntime>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            spawned: Mutex::new(Vec::new()),
        })
    }

    /// How many processes of `program` were spawned.
    pub fn spawns_of(&self, program: &str) -> usize {
        self.spawned
            .lock()
            .iter()
            .filter(|(p, _)| p == program)
            .count()
    }
}

#[async_trait]
impl ContainerRuntime for RecordingRuntime {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn sdk_bind_host(&self) -> &str {
        self.inner.sdk_bind_host()
    }
    fn sdk_parent_pid(&self) -> Option<u32> {
        self.inner.sdk_parent_pid()
    }
    async fn start(
        &self,
        town: &TownId,
        options: &ContainerOptions,
    ) -> gastown_core::Result<ContainerInfo> {
        self.inner.start(town, options).await
    }
    async fn status(&self, town: &TownId) -> gastown_core::Result<ContainerStatus> {
        self.inner.status(town).await
    }
    async fn exec(&self, town: &TownId, cmd: &CommandSpec) -> gastown_core::Result<ExecOutput> {
        self.inner.exec(town, cmd).await
    }
    async fn spawn(
        &self,
        town: &TownId,
        cmd: &CommandSpec,
    ) -> gastown_core::Result<SpawnedProcess> {
        let p = self.inner.spawn(town, cmd).await?;
        self.spawned
            .lock()
            .push((cmd.program.clone(), p.handle.pid()));
        Ok(p)
    }
    async fn spawn_labelled(
        &self,
        town: &TownId,
        cmd: &CommandSpec,
        label: &gastown_core::ProcessLabel,
        grace: Duration,
    ) -> gastown_core::Result<SpawnedProcess> {
        let p = self.inner.spawn_labelled(town, cmd, label, grace).await?;
        self.spawned
            .lock()
            .push((cmd.program.clone(), p.handle.pid()));
        Ok(p)
    }
    async fn adopt(
        &self,
        town: &TownId,
        agent: &str,
    ) -> gastown_core::Result<Option<gastown_core::AdoptedProcess>> {
        self.inner.adopt(town, agent).await
    }
    async fn endpoint(&self, town: &TownId, port: u16) -> gastown_core::Result<String> {
        self.inner.endpoint(town, port).await
    }
    async fn put_file(
        &self,
        town: &TownId,
        path: &ContainerPath,
        contents: &[u8],
    ) -> gastown_core::Result<()> {
        self.inner.put_file(town, path, contents).await
    }
    async fn get_file(&self, town: &TownId, path: &ContainerPath) -> gastown_core::Result<Vec<u8>> {
        self.inner.get_file(town, path).await
    }
    async fn stop(&self, town: &TownId, grace: Duration) -> gastown_core::Result<()> {
        self.inner.stop(town, grace).await
    }
    async fn remove(&self, town: &TownId) -> gastown_core::Result<()> {
        self.inner.remove(town).await
    }
    fn can_pause(&self) -> bool {
        self.inner.can_pause()
    }
    async fn pause(&self, town: &TownId) -> gastown_core::Result<()> {
        self.inner.pause(town).await
    }
    async fn resume(&self, town: &TownId) -> gastown_core::Result<()> {
        self.inner.resume(town).await
    }
}

/// A LocalRuntime under `root` whose `kilo` is `kilo`.
pub fn local_runtime(root: &Path, kilo: &Path) -> Arc<LocalRuntime> {
    Arc::new(
        LocalRuntime::builder(root.to_path_buf())
            .with_program("kilo", kilo.to_path_buf())
            .build(),
    )
}

// Not every test binary that includes this module makes a rig.
#[allow(unused_imports)]
pub use gastown_actors::test_support::git_rig;

/// Starts a town with `config` on `runtime`, state in `state_dir`.
pub async fn start_town(
    config: TownConfig,
    state_dir: &Path,
    runtime: Arc<dyn ContainerRuntime>,
) -> TownHandle {
    TownHandle::start(TownOptions::new(config, state_dir, runtime))
        .await
        .expect("town starts")
}

pub fn town_config(id: &str) -> TownConfig {
    TownConfig::new(TownId::new(id).unwrap())
}
