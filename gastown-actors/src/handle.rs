//! [`TownHandle`]: the embedder's typed async API to a town.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gastown_core::snapshot::SnapshotStore;
use gastown_core::token::TokenSigner;
use gastown_core::{
    AgentId, ContainerOptions, ContainerRuntime, Role, TownConfig, TownId, TownStore,
};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};

use crate::context::{AgentSpec, TownParts};
use crate::error::{Error, Result};
use crate::options::StartOptions;
use crate::phases::rig_mount_point;
use crate::ready::{AgentInfo, MayorReady};
use crate::town::{TownActor, TownArgs, TownMsg};

/// The store key of the town's token signing key.
const SIGNING_KEY: &str = "container_token_signing_key";

/// How to start a town.
#[derive(Clone)]
#[non_exhaustive]
pub struct TownOptions {
    /// The town's configuration (validated by [`TownHandle::start`]).
    pub config: TownConfig,
    /// Where the town keeps its state across restarts: `town.db` (the town store) and
    /// `snapshots/<agent>/kilo.db`. Created if missing.
    pub state_dir: PathBuf,
    /// Where the town's processes run.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Phase timeouts, retry budgets and grace periods.
    pub start: StartOptions,
}

impl fmt::Debug for TownOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TownOptions")
            .field("town", &self.config.town)
            .field("state_dir", &self.state_dir)
            .field("runtime", &self.runtime.name())
            .finish_non_exhaustive()
    }
}

impl TownOptions {
    /// Options with default [`StartOptions`].
    pub fn new(
        config: TownConfig,
        state_dir: impl Into<PathBuf>,
        runtime: Arc<dyn ContainerRuntime>,
    ) -> Self {
        Self {
            config,
            state_dir: state_dir.into(),
            runtime,
            start: StartOptions::default(),
        }
    }

    /// Sets the phase timeouts, retry budgets and grace periods.
    pub fn with_start_options(mut self, start: StartOptions) -> Self {
        self.start = start;
        self
    }
}

/// A running town. Cheap to clone; every clone talks to the same TownActor.
///
/// Dropping every handle does not stop the town; call [`TownHandle::shutdown`], which
/// snapshots every agent before the container goes away.
#[derive(Clone)]
pub struct TownHandle {
    town: TownId,
    actor: ActorRef<TownMsg>,
}

impl fmt::Debug for TownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TownHandle")
            .field("town", &self.town)
            .finish()
    }
}

impl TownHandle {
    /// Validates the configuration, opens the town's state and starts its actor. Starts no
    /// container and no process: that is [`TownHandle::ensure_mayor`]'s job.
    ///
    /// # Errors
    /// [`Error::Core`] with `InvalidConfig` for a bad configuration, `Io` when the state
    /// directory cannot be created, `Store` when `town.db` cannot be opened (corrupted, or
    /// written by a newer version); [`Error::Actor`] if the actor cannot be spawned.
    pub async fn start(options: TownOptions) -> Result<Self> {
        let TownOptions {
            config,
            state_dir,
            runtime,
            start,
        } = options;
        config.validate()?;
        let (store, snapshots) = open_state(&state_dir)?;
        let signer = TokenSigner::new(store.secret_get_or_create(SIGNING_KEY)?);
        let mut container_options = ContainerOptions::default();
        for rig in config.rigs.iter().filter(|r| r.url.starts_with('/')) {
            container_options = container_options
                .with_read_only_mount(PathBuf::from(&rig.url), rig_mount_point(rig));
        }
        let mayor = AgentSpec {
            id: AgentId::mayor(),
            role: Role::Mayor,
            model: config.mayor_model.clone(),
            small_model: config.mayor_small_model.clone(),
        };
        let parts = Arc::new(TownParts {
            town: config.town.clone(),
            runtime,
            store,
            snapshots: Arc::new(snapshots),
            signer,
            launcher: config.sdk.clone(),
            rigs: config.rigs.clone(),
            options: start,
        });
        let args = TownArgs {
            parts,
            mayor,
            container_options,
        };
        let (actor, _) = Actor::spawn(None, TownActor, args)
            .await
            .map_err(|e| Error::Actor(format!("spawning town actor: {e}")))?;
        Ok(Self {
            town: config.town,
            actor,
        })
    }

    /// The town's id.
    pub fn town(&self) -> &TownId {
        &self.town
    }

    /// Makes the mayor ready — starts the container and the five phases if needed, or
    /// confirms a running mayor with a health probe — and returns its endpoint, session and
    /// startup report. Concurrent calls join one start.
    ///
    /// # Errors
    /// [`Error::Start`] naming the phase that failed (after its retry budget);
    /// [`Error::Container`] when the container cannot be started; [`Error::Stopped`] during
    /// shutdown.
    pub async fn ensure_mayor(&self) -> Result<MayorReady> {
        self.call(TownMsg::EnsureMayor).await?
    }

    /// Ensures the mayor, then records `text` in its session as a user message without an
    /// LLM turn (`noReply`). Returns the message id.
    ///
    /// # Errors
    /// As [`TownHandle::ensure_mayor`]; [`Error::Core`] with `Sdk` when the SDK server
    /// rejects the message.
    pub async fn send_mayor_message(&self, text: &str) -> Result<String> {
        self.ensure_mayor().await?;
        let text = text.to_owned();
        self.call(|reply| TownMsg::SendMayorMessage { text, reply })
            .await?
    }

    /// What runs for the mayor: endpoint, process id, session (`None` before the first
    /// `ensure_mayor`).
    ///
    /// # Errors
    /// [`Error::Stopped`] after shutdown.
    pub async fn mayor_info(&self) -> Result<Option<AgentInfo>> {
        self.call(TownMsg::MayorInfo).await
    }

    /// Stops every agent's SDK server, snapshots its `kilo.db` into the state directory,
    /// removes the container and stops the actors. If a snapshot fails the container is
    /// stopped but kept (nothing is lost) and the error is returned.
    ///
    /// # Errors
    /// The first drain failure (snapshot, runtime).
    pub async fn shutdown(self) -> Result<()> {
        self.call(TownMsg::Shutdown).await?
    }

    async fn call<T: Send + 'static>(
        &self,
        msg: impl FnOnce(ractor::RpcReplyPort<T>) -> TownMsg,
    ) -> Result<T> {
        match self.actor.call(msg, None).await {
            Ok(CallResult::Success(v)) => Ok(v),
            _ => Err(Error::Stopped),
        }
    }
}

fn open_state(state_dir: &Path) -> Result<(TownStore, SnapshotStore)> {
    std::fs::create_dir_all(state_dir).map_err(|e| {
        gastown_core::Error::io(format!("creating state dir {}", state_dir.display()), e)
    })?;
    let store = TownStore::open(&state_dir.join("town.db"))?;
    let snapshots = SnapshotStore::new(state_dir.join("snapshots"));
    Ok((store, snapshots))
}
