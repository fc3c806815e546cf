//! One spare server of a [`WarmPool`](super::WarmPool): a container of its own with a
//! mayor's SDK server booted in it, for no town yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use gastown_core::env::{build_agent_env_with_providers, AgentEnv, AgentEnvInput};
use gastown_core::{
    AgentId, AgentLayout, ContainerOptions, ContainerRuntime, ContainerRuntimeExt, ProcessHandle,
    ProviderConfig, Result, Role, SdkLauncher, Secret, TownId,
};

use crate::context::{AgentSpec, TownParts};
use crate::phases::{server_lock, workspace_command, ServerBoot};

use super::PoolShared;

/// A booted spare server, ready to be claimed.
#[derive(Debug)]
pub(super) struct Slot {
    /// The container it runs in until a town claims it (`pool-<hex>`).
    pub(super) id: TownId,
    /// Its own password, generated for it alone and handed to the claiming town.
    pub(super) password: Secret,
    /// The server process, to see it is alive and to stop it with the pool.
    pub(super) process: Arc<dyn ProcessHandle>,
    /// Its config hash: a town claims it only when the mayor environment it would build
    /// with this password hashes the same.
    pub(super) config_hash: String,
}

/// The environment a mayor of `town` gets with `password` from `launcher`, `providers` and
/// its models — the one env builder every start uses. No town, token or credential reaches
/// its variables (they are files of the secrets directory, written by the claiming town's
/// start), so a pool's server and a fresh start of any town with this configuration build
/// the same variables.
fn mayor_env(
    town: &TownId,
    launcher: &SdkLauncher,
    providers: &BTreeMap<String, ProviderConfig>,
    (model, small_model): (&str, &str),
    password: &Secret,
) -> AgentEnv {
    build_agent_env_with_providers(
        &AgentEnvInput {
            town,
            agent: &AgentId::mayor(),
            role: Role::Mayor,
            launcher,
            model,
            small_model,
            password,
            token: &Secret::new(""),
            credentials: &BTreeMap::new(),
        },
        providers,
    )
}

/// The mayor environment a town's own start would build with `password` (for the claim's
/// compatibility check).
pub(crate) fn town_mayor_env(parts: &TownParts, mayor: &AgentSpec, password: &Secret) -> AgentEnv {
    let models = (mayor.model.as_str(), mayor.small_model.as_str());
    mayor_env(
        &parts.town,
        &parts.launcher,
        &parts.providers,
        models,
        password,
    )
}

/// Boots one spare server: its own container, the mayor's directories, then the server
/// exactly as the `sdk` phase would boot a mayor's.
///
/// # Errors
/// The runtime's start or exec, or the boot's (see `ServerBoot::boot`). The container is
/// removed on failure.
pub(super) async fn boot(shared: &PoolShared) -> Result<Slot> {
    let id = TownId::new(format!("pool-{}", hex_id()))?;
    let rt: &Arc<dyn ContainerRuntime> = &shared.runtime;
    let booted = async {
        rt.start(&id, &ContainerOptions::default()).await?;
        let layout = AgentLayout::new(AgentId::mayor());
        // What a fresh start's hydrate and worktrees phases make before the server boots,
        // with the worktrees phase's own exec: its home and data directories, and its
        // workspace (the server's cwd), a git repository whose one empty commit is the
        // same in every container.
        let dirs = [layout.home(), layout.data(), layout.secrets()];
        rt.exec_ok(&id, &workspace_command(&layout, &dirs)).await?;
        let password = Secret::random();
        let template = &shared.template;
        let models = (
            template.mayor_model.as_str(),
            template.mayor_small_model.as_str(),
        );
        let env = mayor_env(&id, &template.sdk, &template.providers, models, &password);
        let mayor = AgentId::mayor();
        let live = ServerBoot {
            runtime: rt,
            town: &id,
            launcher: &shared.template.sdk,
            env: &env,
            cwd: layout.workspace(),
            agent: &mayor,
            lock: server_lock(&layout),
            password: &password,
            sdk: &shared.sdk,
            options: &shared.start,
        }
        .boot(None)
        .await?;
        // The server sets up its project for the workspace on the first request naming
        // it (kilo 7.7.9: 0.7–1.0 s of a claimed mayor's session phase, measured here,
        // on the session list). The session phase lists sessions first anyway, so the
        // same read here, which writes no session, does that work before any town waits.
        if let Err(e) = live.client.list_sessions().await {
            tracing::debug!(container = %id, error = %e, "warming the pooled server's project");
        }
        Ok(Slot {
            id: id.clone(),
            password,
            process: live.process,
            config_hash: env.config_hash,
        })
    }
    .await;
    if booted.is_err() {
        if let Err(e) = rt.remove(&id).await {
            tracing::warn!(container = %id, error = %e, "removing a failed pool container");
        }
    }
    booted
}

/// Eight random hex digits: a pool container's name (a fresh random value, never used as
/// a secret).
fn hex_id() -> String {
    Secret::random().expose()[..8].to_owned()
}
