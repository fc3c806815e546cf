//! Agent roles.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an agent does in its town (ARCHITECTURE.md, *Vocabulary*). Stored in the town
/// store and passed to the agent's SDK server as `GASTOWN_AGENT_ROLE` (its plugin decides
/// from it which tools to register, per Kilo Gastown PR #3151).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The town's long-lived chat agent; the user talks to it. It never idle-exits.
    Mayor,
    /// A worker that implements a bead in its own worktree.
    Polecat,
    /// A worker that reviews and merges what polecats produced.
    Refinery,
}

impl Role {
    /// The role's name as stored and passed to agents (`mayor`, `polecat`, `refinery`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Mayor => "mayor",
            Role::Polecat => "polecat",
            Role::Refinery => "refinery",
        }
    }

    /// Parses a stored role name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mayor" => Some(Role::Mayor),
            "polecat" => Some(Role::Polecat),
            "refinery" => Some(Role::Refinery),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
