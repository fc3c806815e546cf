//! What an agent's start needs (shared, read-only) and what it accumulates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gastown_core::credentials::CredentialChain;
use gastown_core::env::{build_agent_env_with_providers, AgentEnv, AgentEnvInput};
use gastown_core::sdk::{SdkApi, SdkConnector};
use gastown_core::snapshot::SnapshotStore;
use gastown_core::store::RegistryEntry;
use gastown_core::token::TokenSigner;
use std::path::{Path, PathBuf};

use gastown_core::{
    AgentId, AgentLayout, BeadId, ContainerOptions, ContainerPath, ContainerRuntime, ProcessHandle,
    RigConfig, RigId, Role, SdkLauncher, Secret, TownId, TownStore,
};

use crate::clock::Clock;
use crate::error::Result;
use crate::options::{StartOptions, TownOptions};

/// Which agent to start, with which models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// The agent.
    pub id: AgentId,
    /// Its role.
    pub role: Role,
    /// Its model, `provider/model`.
    pub model: String,
    /// Its small model, `provider/model`.
    pub small_model: String,
    /// For a polecat: the rig it works on. Its own worktree of that rig is made before its
    /// SDK server starts (on its critical path, unlike the mayor's browse worktrees).
    pub rig: Option<RigId>,
    /// For a polecat with a rig: the branch its worktree is on (`gt/<bead>` for a slung
    /// bead; made from the rig's default branch when the worktree is made). `None`: a
    /// detached checkout of the default branch.
    pub branch: Option<String>,
    /// The bead hooked to the agent, if any: after each turn of a hooked polecat the town
    /// inspects its branch for new commits (the reconciler's `WorkChecked` event).
    pub hook: Option<BeadId>,
}

impl AgentSpec {
    /// A worker (polecat or refinery) with the given models and no rig.
    pub fn worker(id: AgentId, role: Role, model: &str, small_model: &str) -> Self {
        Self {
            id,
            role,
            model: model.to_owned(),
            small_model: small_model.to_owned(),
            rig: None,
            branch: None,
            hook: None,
        }
    }

    /// Sets the rig a polecat works on.
    pub fn with_rig(mut self, rig: RigId) -> Self {
        self.rig = Some(rig);
        self
    }

    /// Sets the branch of the polecat's worktree (see [`AgentSpec::branch`]).
    pub fn with_branch(mut self, branch: &str) -> Self {
        self.branch = Some(branch.to_owned());
        self
    }

    /// Hooks `bead` to the agent (see [`AgentSpec::hook`]).
    pub fn with_hook(mut self, bead: BeadId) -> Self {
        self.hook = Some(bead);
        self
    }

    /// The registry row that brings this agent back whole after a container restart: its
    /// role, models, rig, branch and hook.
    pub fn registry_entry(&self) -> RegistryEntry {
        RegistryEntry {
            agent: self.id.clone(),
            role: self.role,
            model: Some(self.model.clone()),
            small_model: Some(self.small_model.clone()),
            rig: self.rig.clone(),
            branch: self.branch.clone(),
            hook: self.hook.clone(),
        }
    }

    /// The spec of a registered worker: what its entry recorded, the `default_model` and
    /// `default_small_model` (the mayor's) where it recorded none (an entry written before
    /// the registry kept models).
    pub fn from_registry(
        entry: &RegistryEntry,
        default_model: &str,
        default_small_model: &str,
    ) -> Self {
        Self {
            id: entry.agent.clone(),
            role: entry.role,
            model: entry
                .model
                .clone()
                .unwrap_or_else(|| default_model.to_owned()),
            small_model: entry
                .small_model
                .clone()
                .unwrap_or_else(|| default_small_model.to_owned()),
            rig: entry.rig.clone(),
            branch: entry.branch.clone(),
            hook: entry.hook.clone(),
        }
    }
}

/// The town store key of an agent's SDK server password, `sdk_password/<agent>`: the
/// password outlives this host, so a server that survives a crash of this program (or one
/// a warm pool booted and this town claimed) can be talked to.
pub(crate) fn sdk_password_key(agent: &gastown_core::AgentId) -> String {
    format!("sdk_password/{agent}")
}

/// Town-wide parts every agent of a container shares.
#[derive(Debug)]
pub(crate) struct TownParts {
    pub(crate) town: TownId,
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
    pub(crate) store: TownStore,
    pub(crate) snapshots: Arc<SnapshotStore>,
    pub(crate) signer: TokenSigner,
    pub(crate) launcher: SdkLauncher,
    pub(crate) sdk: Arc<dyn SdkConnector>,
    /// Where agents' git credentials come from, and the variable they are passed in.
    pub(crate) credentials: Option<(Arc<CredentialChain>, String)>,
    pub(crate) rigs: Vec<RigConfig>,
    pub(crate) options: StartOptions,
    /// The mayor's quiet window before an idle stop.
    pub(crate) idle_stop_after: std::time::Duration,
    /// Limits on real turns (retries, timeout).
    pub(crate) turns: crate::options::TurnOptions,
    /// An idle town pauses before it stops (where the runtime can pause).
    pub(crate) pause_when_idle: bool,
    /// How long a town stays paused before it is stopped.
    pub(crate) stop_paused_after: std::time::Duration,
    /// The host's paused-memory budget this town counts against, and its weight in bytes.
    pub(crate) paused_budget: Option<(Arc<crate::PausedBudget>, u64)>,
    /// LLM providers added to every agent's SDK server config (keys as secrets).
    pub(crate) providers: BTreeMap<String, gastown_core::ProviderConfig>,
    pub(crate) clock: Clock,
    /// The town's event bus: what embedders see through `TownHandle::events`.
    pub(crate) events: Arc<crate::events::EventBus>,
    /// The workers' idle-exit windows.
    pub(crate) idle_exit: crate::options::IdleExit,
    /// Where polecats' branches are kept out of the container (`<state_dir>/branches`, one
    /// git bundle per branch with new commits), so a container removed with its clones
    /// loses no commit: a polecat's worktree is made from its bundle when one exists.
    pub(crate) branches_dir: PathBuf,
    /// One lock per rig: every agent of the container shares the rig's bare clone, and two
    /// clones or a fetch during a `worktree add` must not interleave.
    pub(crate) rig_locks: parking_lot::Mutex<HashMap<RigId, Arc<tokio::sync::Mutex<()>>>>,
    /// The runtime's boot scheduler (`None`: boots are not scheduled).
    pub(crate) boot_scheduler: Option<Arc<crate::BootScheduler>>,
    /// The warm pool a brand-new town claims its mayor's server from (`None`: cold starts).
    pub(crate) warm_pool: Option<crate::WarmPool>,
    /// Set when this town's container was claimed from the warm pool, taken by the
    /// mayor's adoption of the pooled server (so its report says `pooled`).
    pub(crate) pool_claimed: std::sync::atomic::AtomicBool,
}

impl TownParts {
    /// The lock of `rig`'s shared clone.
    pub(crate) fn rig_lock(&self, rig: &RigId) -> Arc<tokio::sync::Mutex<()>> {
        self.rig_locks
            .lock()
            .entry(rig.clone())
            .or_default()
            .clone()
    }
}

/// Everything one agent's phases read. Cloned into each phase step.
#[derive(Debug, Clone)]
pub(crate) struct AgentContext {
    pub(crate) parts: Arc<TownParts>,
    pub(crate) spec: AgentSpec,
    pub(crate) layout: AgentLayout,
    /// The SDK server's password: one per agent for the life of its actor, so a prewarm and
    /// a later start build identical environments.
    pub(crate) password: Secret,
    /// The SDK server the sdk phase spawned and does not own yet (still booting): a drain or
    /// stop reaches it here, even while the phase runs.
    pub(crate) booting: Arc<parking_lot::Mutex<Option<Arc<dyn ProcessHandle>>>>,
    /// One snapshot of this agent at a time (a turn boundary and a drain may meet); holds
    /// the content hash of its last snapshot, so an unchanged `kilo.db` is not copied again.
    pub(crate) snapshot_lock: Arc<tokio::sync::Mutex<Option<gastown_core::snapshot::ContentHash>>>,
}

impl AgentContext {
    /// Publishes `event` about this agent on the town's bus.
    pub(crate) fn publish(&self, event: crate::events::TownEvent) {
        self.parts.events.publish(Some(&self.spec.id), event);
    }

    /// The SDK server's working directory, where its tools run: a polecat's own worktree
    /// of its rig, the agent's workspace otherwise.
    pub(crate) fn work_dir(&self) -> ContainerPath {
        match (&self.spec.role, &self.spec.rig) {
            (Role::Polecat, Some(rig)) => self
                .layout
                .workspace()
                .join(rig.as_str())
                .expect("rig ids are path-safe"),
            _ => self.layout.workspace(),
        }
    }

    /// Who this agent's telemetry events are about.
    pub(crate) fn subject(&self) -> crate::telemetry::Subject<'_> {
        crate::telemetry::Subject::agent(&self.parts.town, &self.spec.id, self.spec.role)
    }

    /// The agent's environment for `token` (the one env builder, so a prewarm and a real start build the same environment and config hash).
    pub(crate) fn env(&self, token: &Secret, credentials: &BTreeMap<String, Secret>) -> AgentEnv {
        build_agent_env_with_providers(
            &AgentEnvInput {
                town: &self.parts.town,
                agent: &self.spec.id,
                role: self.spec.role,
                launcher: &self.parts.launcher,
                model: &self.spec.model,
                small_model: &self.spec.small_model,
                password: &self.password,
                token,
                credentials,
            },
            &self.parts.providers,
        )
    }
}

/// A running SDK server of one agent.
#[derive(Debug, Clone)]
pub(crate) struct LiveSdk {
    pub(crate) process: Arc<dyn ProcessHandle>,
    pub(crate) client: Arc<dyn SdkApi>,
    pub(crate) endpoint: String,
    pub(crate) config_hash: String,
    /// Its config hash without the models: what must match for the server to be kept.
    pub(crate) restart_hash: String,
    /// A warm pool booted it, and this town claimed it (reported as `pooled`).
    pub(crate) pooled: bool,
}

/// What the phases of one start have produced so far. Kept by the AgentActor and cloned
/// into each phase step, so a retried phase starts from the last good state.
#[derive(Debug, Clone, Default)]
pub(crate) struct StartProgress {
    pub(crate) token: Option<Secret>,
    /// Shared: the progress is cloned into every phase attempt, and the environment (a few
    /// dozen variables and files) is built once per run and only read after.
    pub(crate) env: Option<Arc<AgentEnv>>,
    pub(crate) sdk: Option<LiveSdk>,
    pub(crate) session_id: Option<String>,
    /// The session the agent holds, when a running server is carried into the run (a
    /// model change): the session phase then only pushes the model onto it.
    pub(crate) known_session: Option<String>,
    /// The hydrate phase restored the previous snapshot because the latest was bad.
    pub(crate) snapshot_fallback: bool,
    /// Directories the hydrate phase left to the worktrees phase's one exec (the SDK
    /// server's data directory and the agent's home, when nothing was restored): each
    /// exec is an engine round trip on Docker, so they are made with the workspace.
    pub(crate) agent_dirs: Vec<gastown_core::ContainerPath>,
    /// The sdk phase reused a running server with the same config hash.
    pub(crate) prewarmed: bool,
    /// The server the sdk phase reused came from a warm pool.
    pub(crate) sdk_pooled: bool,
    /// Credentials resolved at dispatch for this agent only, by variable name.
    pub(crate) credentials: BTreeMap<String, Secret>,
    /// The run was caused by a configuration change: the session phase pushes the new
    /// model onto the resumed session with a `noReply` message.
    pub(crate) push_model: bool,
    /// The boot slot the sdk phase booted under, held until the run ends: the server's
    /// first session request is the rest of its boot's CPU work (kilo sets up the
    /// project on it), which a next boot should not share the cores with.
    pub(crate) boot_slot: Option<Arc<crate::BootSlot>>,
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

/// Where a rig that lives in a host directory is mounted (read-only) inside the container.
pub(crate) fn rig_mount_point(rig: &RigConfig) -> gastown_core::ContainerPath {
    gastown_core::ContainerPath::new(format!("/mnt/rigs/{}", rig.id))
        .expect("rig ids are path-safe")
}

/// The store key of the town's token signing key.
const SIGNING_KEY: &str = "container_token_signing_key";

/// A town's state, opened and validated: what a town actor (or the bench's serial schedule)
/// runs on.
#[derive(Debug)]
pub(crate) struct OpenedTown {
    /// The parts every agent shares.
    pub(crate) parts: Arc<TownParts>,
    /// The mayor's spec from the configuration.
    pub(crate) mayor: AgentSpec,
    /// The container's options (read-only mounts of rigs in host directories).
    pub(crate) container_options: ContainerOptions,
}

/// Validates the options and opens the town's state.
///
/// # Errors
/// `InvalidConfig` for a bad configuration or credential variable, `Io` when the state
/// directory cannot be created, `Store` when `town.db` cannot be opened.
pub(crate) fn open_parts(options: TownOptions) -> Result<OpenedTown> {
    let TownOptions {
        config,
        state_dir,
        runtime,
        start,
        sdk_connector,
        credentials,
        idle_stop_after,
        turns,
        pause_when_idle,
        stop_paused_after,
        paused_budget,
        paused_bytes,
        idle_exit,
        boot_scheduler,
        warm_pool,
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
        branch: None,
        hook: None,
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
        providers: config.providers.clone(),
        options: start,
        idle_stop_after,
        turns,
        pause_when_idle,
        stop_paused_after,
        paused_budget: paused_budget.map(|b| (b, paused_bytes)),
        clock: Clock::new(),
        events: Arc::new(crate::events::EventBus::new(Clock::new())),
        branches_dir: state_dir.join("branches"),
        idle_exit,
        rig_locks: Default::default(),
        boot_scheduler,
        warm_pool,
        pool_claimed: Default::default(),
    });
    Ok(OpenedTown {
        parts,
        mayor,
        container_options,
    })
}
