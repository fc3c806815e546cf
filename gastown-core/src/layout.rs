//! Where an agent's files live inside the container. Both a start and a prewarm use this
//! one layout, so they agree on every path.

use crate::error::Result;
use crate::ids::{AgentId, RigId};
use crate::launcher::SdkLauncher;
use crate::path::ContainerPath;

/// Container paths of one agent.
///
/// ```text
/// /agents/<agent>/home             HOME (and KILO_TEST_HOME)
/// /agents/<agent>/data             XDG_DATA_HOME; the SDK server keeps its database here
///                                  (SdkLauncher::database: kilo/kilo.db, opencode/opencode.db)
/// /agents/<agent>/{config,cache,state}
/// /agents/<agent>/secrets          the town id, container token and credentials, one file each
/// /workspace/<agent>               the agent's workspace and the SDK server's cwd
/// /workspace/<agent>/browse/<rig>  the mayor's read-only browse worktree of a rig
/// /rigs/<rig>.git                  the container's one bare clone of each rig
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLayout {
    agent: AgentId,
}

fn path(s: String) -> ContainerPath {
    // Ids are validated to [a-z0-9_-], so these paths are always valid.
    ContainerPath::new(s).expect("ids make valid path components")
}

impl AgentLayout {
    /// The layout of `agent`.
    pub fn new(agent: AgentId) -> Self {
        Self { agent }
    }

    /// The agent.
    pub fn agent(&self) -> &AgentId {
        &self.agent
    }

    /// `/agents/<agent>`.
    pub fn root(&self) -> ContainerPath {
        path(format!("/agents/{}", self.agent))
    }

    /// `/agents/<agent>/home`.
    pub fn home(&self) -> ContainerPath {
        path(format!("/agents/{}/home", self.agent))
    }

    /// `/agents/<agent>/data` (XDG_DATA_HOME).
    pub fn data(&self) -> ContainerPath {
        path(format!("/agents/{}/data", self.agent))
    }

    /// `/agents/<agent>/secrets`: the files of the agent's town id, container token and
    /// credentials (`GASTOWN_SECRETS_DIR`, see `env::SECRETS_DIR_VAR`).
    pub fn secrets(&self) -> ContainerPath {
        path(format!("/agents/{}/secrets", self.agent))
    }

    /// `/agents/<agent>/<name>` for `config`, `cache` and `state`.
    pub fn xdg(&self, name: &str) -> ContainerPath {
        path(format!("/agents/{}/{name}", self.agent))
    }

    /// `/agents/<agent>/data/kilo/kilo.db`: kilo's database ([`SdkLauncher::kilo`]). Code
    /// that serves any launcher uses [`Self::sdk_database`].
    pub fn kilo_db(&self) -> ContainerPath {
        path(format!("/agents/{}/data/kilo/kilo.db", self.agent))
    }

    /// The database of the agent's SDK server as `launcher` runs it:
    /// `/agents/<agent>/data/` + [`SdkLauncher::database`] (kilo
    /// `/agents/<agent>/data/kilo/kilo.db`, opencode `…/data/opencode/opencode.db`).
    ///
    /// # Errors
    /// [`Error::InvalidPath`](crate::Error::InvalidPath) for a launcher whose `database`
    /// is not a relative file path (see [`SdkLauncher::database_path`]).
    pub fn sdk_database(&self, launcher: &SdkLauncher) -> Result<ContainerPath> {
        launcher.database_path(&self.data())
    }

    /// `/workspace/<agent>`.
    pub fn workspace(&self) -> ContainerPath {
        path(format!("/workspace/{}", self.agent))
    }

    /// `/workspace/<agent>/browse/<rig>`.
    pub fn browse_worktree(&self, rig: &RigId) -> ContainerPath {
        path(format!("/workspace/{}/browse/{rig}", self.agent))
    }

    /// `/rigs/<rig>.git`: the bare clone shared by every agent of the container.
    pub fn rig_clone(rig: &RigId) -> ContainerPath {
        path(format!("/rigs/{rig}.git"))
    }
}
