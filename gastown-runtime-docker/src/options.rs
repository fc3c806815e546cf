//! [`DockerOptions`] and [`AgentImage`]: how [`DockerRuntime`](crate::DockerRuntime)
//! reaches the engine and what its containers run.

use std::path::PathBuf;

/// The engine socket used when none is configured: the Docker Engine's standard Unix socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The default memory limit of a town's container, in bytes (2 GiB: a mayor plus a few
/// workers, each `kilo serve` taking a few hundred MB).
pub const DEFAULT_MEMORY_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The default process-count limit of a town's container (a fork bomb stops here; a town's
/// SDK servers, git and shells stay far below it).
pub const DEFAULT_PIDS_LIMIT: i64 = 1024;

/// The default prefix of container names: `<prefix>-<town>`.
pub const DEFAULT_NAME_PREFIX: &str = "gastown";

/// Which image the town containers run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentImage {
    /// Build gastown's agent image locally, `FROM scratch` (nothing is pulled): a static
    /// busybox, this kilo binary and the shared libraries it needs, git and its libraries.
    /// Tagged `gastown-agent:<hash of the inputs>` and reused while the inputs are unchanged.
    Build {
        /// The kilo binary; `None` = [`gastown_core::kilo::locate`]`(None)` at connect time.
        kilo_bin: Option<PathBuf>,
    },
    /// An image already present in the engine (nothing is pulled). An image gastown built
    /// (label `gastown.image=agent`) behaves exactly like [`AgentImage::Build`]. Any other
    /// image must provide `/bin/sh` with `kill`, and whatever the town runs (kilo, git); its
    /// containers run as uid 1000 from the start, so `/` itself is not writable to them
    /// (the built image hands `/` to uid 1000 in a root setup step first). Its `/agents`
    /// must be a directory owned by uid 1000: the town's fresh agents volume copies it,
    /// ownership included, and the agents write their data there.
    Named(String),
}

impl Default for AgentImage {
    fn default() -> Self {
        AgentImage::Build { kilo_bin: None }
    }
}

/// How [`DockerRuntime`](crate::DockerRuntime) connects and what its containers get.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DockerOptions {
    /// The engine's Unix socket ([`DEFAULT_SOCKET`]).
    pub socket: PathBuf,
    /// The image town containers run ([`AgentImage::Build`] with the located kilo).
    pub image: AgentImage,
    /// Memory limit per container in bytes, swap included ([`DEFAULT_MEMORY_BYTES`]);
    /// `ContainerOptions::memory_bytes` overrides it per town.
    pub memory_bytes: u64,
    /// Process-count limit per container ([`DEFAULT_PIDS_LIMIT`]);
    /// `ContainerOptions::pids_limit` overrides it per town.
    pub pids_limit: i64,
    /// Container names are `<name_prefix>-<town>` ([`DEFAULT_NAME_PREFIX`]). Orphan
    /// hygiene only touches containers carrying this prefix, so two deployments (or test
    /// runs) with different prefixes never clean up each other's containers.
    pub name_prefix: String,
}

impl Default for DockerOptions {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            image: AgentImage::default(),
            memory_bytes: DEFAULT_MEMORY_BYTES,
            pids_limit: DEFAULT_PIDS_LIMIT,
            name_prefix: DEFAULT_NAME_PREFIX.to_owned(),
        }
    }
}

impl DockerOptions {
    /// Sets the engine socket.
    pub fn with_socket(mut self, socket: impl Into<PathBuf>) -> Self {
        self.socket = socket.into();
        self
    }

    /// Sets the image.
    pub fn with_image(mut self, image: AgentImage) -> Self {
        self.image = image;
        self
    }

    /// Sets the container name prefix.
    pub fn with_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = prefix.into();
        self
    }
}
