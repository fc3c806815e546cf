//! Where an agent's files live inside the container. Both a start and a prewarm use this
//! one layout, so they agree on every path.

use crate::ids::{AgentId, RigId};
use crate::path::ContainerPath;

/// Container paths of one agent.
///
/// ```text
/// /agents/<agent>/home             HOME (and KILO_TEST_HOME)
/// /agents/<agent>/data             XDG_DATA_HOME; the SDK keeps kilo/kilo.db here
/// /agents/<agent>/{config,cache,state}
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

    /// `/agents/<agent>/<name>` for `config`, `cache` and `state`.
    pub fn xdg(&self, name: &str) -> ContainerPath {
        path(format!("/agents/{}/{name}", self.agent))
    }

    /// `/agents/<agent>/data/kilo/kilo.db`: the SDK server's database.
    pub fn kilo_db(&self) -> ContainerPath {
        path(format!("/agents/{}/data/kilo/kilo.db", self.agent))
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
