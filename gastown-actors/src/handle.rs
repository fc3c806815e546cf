//! [`TownHandle`]: the embedder's typed async API to a town.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gastown_core::credentials::CredentialChain;
use gastown_core::sdk::{HttpConnector, SdkConnector};
use gastown_core::snapshot::SnapshotStore;
use gastown_core::token::TokenSigner;
use gastown_core::{
    AgentId, ContainerOptions, ContainerRuntime, Role, TownConfig, TownId, TownStore,
};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};

use crate::boot::BootReport;
use crate::clock::Clock;
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
    /// How clients of SDK servers are made (HTTP by default; a simulated runtime brings
    /// its own).
    pub sdk_connector: Arc<dyn SdkConnector>,
    /// Where agents' git credentials come from (resolved at each dispatch from cached
    /// sources, refreshed in the background), and the variable that carries them
    /// (e.g. `GIT_TOKEN`). `None`: agents get no credential.
    pub credentials: Option<(Arc<CredentialChain>, String)>,
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
            sdk_connector: Arc::new(HttpConnector),
            credentials: None,
        }
    }

    /// Passes each agent the first credential `chain` resolves, in the variable `var`.
    pub fn with_credentials(mut self, chain: Arc<CredentialChain>, var: impl Into<String>) -> Self {
        self.credentials = Some((chain, var.into()));
        self
    }

    /// Sets how clients of SDK servers are made.
    pub fn with_sdk_connector(mut self, connector: Arc<dyn SdkConnector>) -> Self {
        self.sdk_connector = connector;
        self
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
        let (parts, args) = open_parts(options)?;
        let town = parts.town.clone();
        let (actor, _) = Actor::spawn(None, TownActor, args)
            .await
            .map_err(|e| Error::Actor(format!("spawning town actor: {e}")))?;
        Ok(Self { town, actor })
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

    /// What runs for the mayor: endpoint, process id, session, code browsing state (`None`
    /// before the first `ensure_mayor`).
    ///
    /// # Errors
    /// [`Error::Stopped`] after shutdown.
    pub async fn mayor_info(&self) -> Result<Option<AgentInfo>> {
        self.agent_info(&AgentId::mayor()).await
    }

    /// What runs for an agent (`None` if the town has not started it).
    ///
    /// # Errors
    /// [`Error::Stopped`] after shutdown.
    pub async fn agent_info(&self, agent: &AgentId) -> Result<Option<AgentInfo>> {
        let agent = agent.clone();
        self.call(|reply| TownMsg::AgentInfo { agent, reply }).await
    }

    /// Starts (or confirms) a worker agent — a polecat with its own worktree of its rig, or
    /// a refinery — through the same five phases as the mayor.
    ///
    /// # Errors
    /// As [`TownHandle::ensure_mayor`]; `InvalidConfig` for a spec naming the mayor's role or
    /// an unknown rig.
    pub async fn start_agent(&self, spec: AgentSpec) -> Result<MayorReady> {
        if spec.role == Role::Mayor || spec.id == AgentId::mayor() {
            return Err(gastown_core::Error::InvalidConfig {
                message: "start_agent is for workers; use ensure_mayor for the mayor".into(),
            }
            .into());
        }
        gastown_core::ModelRef::parse(&spec.model)?;
        gastown_core::ModelRef::parse(&spec.small_model)?;
        self.call(|reply| TownMsg::StartAgent { spec, reply })
            .await?
    }

    /// Starts the town's container if needed and runs boot hydration: the mayor is resumed
    /// (if registered) or prewarmed before anyone asks; returns when the hydration gate
    /// opens. Other registered agents keep resuming in the background.
    ///
    /// # Errors
    /// [`Error::Container`] when the container cannot be started; [`Error::Stopped`].
    pub async fn warm_up(&self) -> Result<BootReport> {
        self.call(TownMsg::WarmUp).await?
    }

    /// Changes the mayor's models (`provider/model`). The next [`TownHandle::ensure_mayor`]
    /// restarts its SDK server with the new configuration (a different config hash) and
    /// pushes the new model onto the resumed session with a `noReply` message.
    ///
    /// # Errors
    /// `InvalidConfig` for a malformed model; [`Error::Stopped`].
    pub async fn update_mayor_model(&self, model: &str, small_model: Option<&str>) -> Result<()> {
        let model = model.to_owned();
        let small_model = small_model.map(str::to_owned);
        self.call(|reply| TownMsg::UpdateMayorModel {
            model,
            small_model,
            reply,
        })
        .await?
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

    /// Stops the town's actors without draining: SDK servers are stopped, nothing is
    /// snapshotted, and the container is left as it is, for a later [`TownHandle::start`]
    /// on the same state directory to adopt (e.g. when the embedding process restarts).
    /// What the agents wrote since their last snapshot stays in the container.
    pub async fn detach(self) {
        let _ = self.actor.stop_and_wait(None, None).await;
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
    // town.db holds the token signing key and stored credentials, the snapshots hold the
    // agents' conversations: owner only.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |e| gastown_core::Error::io(format!("restricting {}", state_dir.display()), e),
        )?;
    }
    let store = TownStore::open(&state_dir.join("town.db"))?;
    let snapshots = SnapshotStore::new(state_dir.join("snapshots"));
    Ok((store, snapshots))
}

/// Validates the options and opens the town's state: what a town actor (or the bench's
/// serial schedule) runs on.
pub(crate) fn open_parts(options: TownOptions) -> Result<(Arc<TownParts>, TownArgs)> {
    let TownOptions {
        config,
        state_dir,
        runtime,
        start,
        sdk_connector,
        credentials,
    } = options;
    if let Some((_, var)) = &credentials {
        if !gastown_core::env::is_var_name(var) {
            return Err(gastown_core::Error::InvalidConfig {
                message: format!("credential variable {var:?} is not an environment variable name"),
            }
            .into());
        }
        // It must not replace a variable the env builder sets (the server password, the
        // layout, the token).
        let launcher = &config.sdk;
        let reserved = [
            "PATH",
            "HOME",
            "KILO_TEST_HOME",
            gastown_core::env::TOKEN_VAR,
        ]
        .contains(&var.as_str())
            || var.starts_with("XDG_")
            || var.starts_with("GASTOWN_")
            || [
                &launcher.password_var,
                &launcher.username_var,
                &launcher.config_var,
            ]
            .contains(&var);
        if reserved {
            return Err(gastown_core::Error::InvalidConfig {
                message: format!(
                    "credential variable {var:?} is reserved for the agent's environment"
                ),
            }
            .into());
        }
    }
    config.validate()?;
    let (store, snapshots) = open_state(&state_dir)?;
    let signer = TokenSigner::new(store.secret_get_or_create(SIGNING_KEY)?);
    let mut container_options = ContainerOptions::default();
    for rig in config.rigs.iter().filter(|r| r.url.starts_with('/')) {
        container_options =
            container_options.with_read_only_mount(PathBuf::from(&rig.url), rig_mount_point(rig));
    }
    let mayor = AgentSpec {
        id: AgentId::mayor(),
        role: Role::Mayor,
        model: config.mayor_model.clone(),
        small_model: config.mayor_small_model.clone(),
        rig: None,
    };
    let parts = Arc::new(TownParts {
        town: config.town.clone(),
        runtime,
        store,
        snapshots: Arc::new(snapshots),
        signer,
        launcher: config.sdk.clone(),
        sdk: sdk_connector,
        credentials,
        rigs: config.rigs.clone(),
        options: start,
        clock: Clock::new(),
        rig_locks: Default::default(),
    });
    let args = TownArgs {
        parts: parts.clone(),
        mayor,
        container_options,
    };
    Ok((parts, args))
}
