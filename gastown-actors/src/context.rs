//! What an agent's start needs (shared, read-only) and what it accumulates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gastown_core::credentials::CredentialChain;
use gastown_core::env::{build_agent_env, AgentEnv, AgentEnvInput};
use gastown_core::sdk::{SdkApi, SdkConnector};
use gastown_core::snapshot::SnapshotStore;
use gastown_core::token::TokenSigner;
use gastown_core::{
    AgentId, AgentLayout, ContainerRuntime, ProcessHandle, RigConfig, RigId, Role, SdkLauncher,
    Secret, TownId, TownStore,
};

use crate::clock::Clock;
use crate::options::StartOptions;

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
        }
    }

    /// Sets the rig a polecat works on.
    pub fn with_rig(mut self, rig: RigId) -> Self {
        self.rig = Some(rig);
        self
    }
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
    pub(crate) clock: Clock,
    /// One lock per rig: every agent of the container shares the rig's bare clone, and two
    /// clones or a fetch during a `worktree add` must not interleave.
    pub(crate) rig_locks: parking_lot::Mutex<HashMap<RigId, Arc<tokio::sync::Mutex<()>>>>,
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
}

impl AgentContext {
    /// The agent's environment for `token` (the one env builder; DESIGN.md §5 rule 3).
    pub(crate) fn env(&self, token: &Secret, credentials: &BTreeMap<String, Secret>) -> AgentEnv {
        build_agent_env(&AgentEnvInput {
            town: &self.parts.town,
            agent: &self.spec.id,
            role: self.spec.role,
            launcher: &self.parts.launcher,
            model: &self.spec.model,
            small_model: &self.spec.small_model,
            password: &self.password,
            token,
            credentials,
        })
    }
}

/// A running SDK server of one agent.
#[derive(Debug, Clone)]
pub(crate) struct LiveSdk {
    pub(crate) process: Arc<dyn ProcessHandle>,
    pub(crate) client: Arc<dyn SdkApi>,
    pub(crate) endpoint: String,
    pub(crate) config_hash: String,
}

/// What the phases of one start have produced so far. Kept by the AgentActor and cloned
/// into each phase step, so a retried phase starts from the last good state.
#[derive(Debug, Clone, Default)]
pub(crate) struct StartProgress {
    pub(crate) token: Option<Secret>,
    pub(crate) env: Option<AgentEnv>,
    pub(crate) sdk: Option<LiveSdk>,
    pub(crate) session_id: Option<String>,
    /// The sdk phase reused a running server with the same config hash.
    pub(crate) prewarmed: bool,
    /// Credentials resolved at dispatch for this agent only, by variable name.
    pub(crate) credentials: BTreeMap<String, Secret>,
    /// The run was caused by a configuration change: the session phase pushes the new
    /// model onto the resumed session with a `noReply` message.
    pub(crate) push_model: bool,
    /// Named timings of the run (the seeds' names, ms), for the startup report.
    pub(crate) timings: BTreeMap<String, u64>,
}
