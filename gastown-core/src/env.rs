//! The agent environment builder: the one pure function that both a start and a prewarm
//! call, so a prewarmed SDK server has byte-for-byte the configuration a real start would
//! give it (DESIGN.md §5 rule 3).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::command::Word;
use crate::config::SdkLauncher;
use crate::ids::{AgentId, TownId};
use crate::layout::AgentLayout;
use crate::role::Role;
use crate::secret::Secret;

/// The `PATH` every agent process gets.
pub const AGENT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The variable carrying the container token. It rotates on refresh, so it is left out of
/// the config hash.
pub const TOKEN_VAR: &str = "GASTOWN_CONTAINER_TOKEN";

/// Whether `name` can be an environment variable name: non-empty, `[A-Za-z0-9_]`, not
/// starting with a digit.
pub fn is_var_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// Everything that goes into one agent's environment.
#[derive(Debug, Clone)]
pub struct AgentEnvInput<'a> {
    /// The town.
    pub town: &'a TownId,
    /// The agent.
    pub agent: &'a AgentId,
    /// Its role.
    pub role: Role,
    /// How its SDK server is launched (variable names).
    pub launcher: &'a SdkLauncher,
    /// Its model, `provider/model`.
    pub model: &'a str,
    /// Its small model, `provider/model`.
    pub small_model: &'a str,
    /// Its SDK server's password (one per agent).
    pub password: &'a Secret,
    /// Its container token.
    pub token: &'a Secret,
    /// Credentials for this agent only (`GIT_TOKEN`, …), by variable name.
    pub credentials: &'a BTreeMap<String, Secret>,
}

/// An agent's whole environment and the hash of its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEnv {
    /// Every variable the SDK server process gets; nothing else is inherited.
    pub vars: BTreeMap<String, Word>,
    /// Hex SHA-256 over every variable but the rotating token: equal hashes mean a running
    /// SDK server can be reused as is.
    pub config_hash: String,
}

/// Builds an agent's environment. Pure: same input, same output.
pub fn build_agent_env(input: &AgentEnvInput<'_>) -> AgentEnv {
    let layout = AgentLayout::new(input.agent.clone());
    let mut vars: BTreeMap<String, Word> = BTreeMap::new();
    let mut set = |k: &str, v: Word| {
        vars.insert(k.to_owned(), v);
    };
    set("PATH", AGENT_PATH.into());
    set("HOME", layout.home().into());
    set("KILO_TEST_HOME", layout.home().into());
    set("XDG_DATA_HOME", layout.data().into());
    set("XDG_CONFIG_HOME", layout.xdg("config").into());
    set("XDG_CACHE_HOME", layout.xdg("cache").into());
    set("XDG_STATE_HOME", layout.xdg("state").into());
    set("GASTOWN_TOWN_ID", input.town.as_str().into());
    set("GASTOWN_AGENT_ID", input.agent.as_str().into());
    set("GASTOWN_AGENT_ROLE", input.role.as_str().into());
    set(TOKEN_VAR, input.token.clone().into());
    set(&input.launcher.password_var, input.password.clone().into());
    set(
        &input.launcher.username_var,
        input.launcher.username.as_str().into(),
    );
    let config = serde_json::json!({
        "model": input.model,
        "small_model": input.small_model,
    });
    set(&input.launcher.config_var, config.to_string().into());
    for (k, v) in input.credentials {
        set(k, v.clone().into());
    }
    let config_hash = config_hash(&vars, input.launcher);
    AgentEnv { vars, config_hash }
}

fn config_hash(vars: &BTreeMap<String, Word>, launcher: &SdkLauncher) -> String {
    let mut h = Sha256::new();
    let mut feed = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    feed(&launcher.program);
    for a in &launcher.args {
        feed(a);
    }
    for (k, v) in vars {
        if k == TOKEN_VAR {
            continue;
        }
        feed(k);
        match v {
            Word::Text(t) => feed(t),
            Word::Path(p) => feed(p.as_str()),
            Word::Secret(s) => feed(s.expose()),
        }
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        town: TownId,
        agent: AgentId,
        launcher: SdkLauncher,
        password: Secret,
        token: Secret,
        creds: BTreeMap<String, Secret>,
    }

    fn fixture(agent: &str, cred: &str) -> Fixture {
        Fixture {
            town: TownId::new("town-a").unwrap(),
            agent: AgentId::new(agent).unwrap(),
            launcher: SdkLauncher::kilo(),
            password: Secret::random(),
            token: Secret::random(),
            creds: BTreeMap::from([("GIT_TOKEN".to_owned(), Secret::new(cred))]),
        }
    }

    fn build(f: &Fixture, model: &str) -> AgentEnv {
        build_agent_env(&AgentEnvInput {
            town: &f.town,
            agent: &f.agent,
            role: Role::Mayor,
            launcher: &f.launcher,
            model,
            small_model: "anthropic/claude-haiku-4.5",
            password: &f.password,
            token: &f.token,
            credentials: &f.creds,
        })
    }

    fn text(env: &AgentEnv, key: &str) -> String {
        match &env.vars[key] {
            Word::Text(t) => t.clone(),
            Word::Path(p) => p.as_str().to_owned(),
            Word::Secret(s) => s.expose().to_owned(),
        }
    }

    #[test]
    fn carries_role_id_town_and_isolated_dirs() {
        let f = fixture("mayor", "ghp_a");
        let env = build(&f, "anthropic/claude-sonnet-4.6");
        assert_eq!(text(&env, "GASTOWN_TOWN_ID"), "town-a");
        assert_eq!(text(&env, "GASTOWN_AGENT_ID"), "mayor");
        assert_eq!(text(&env, "GASTOWN_AGENT_ROLE"), "mayor");
        assert_eq!(text(&env, "XDG_DATA_HOME"), "/agents/mayor/data");
        assert_eq!(text(&env, "KILO_SERVER_USERNAME"), "kilo");
        assert_eq!(text(&env, "KILO_SERVER_PASSWORD"), f.password.expose());
        assert!(text(&env, "KILO_CONFIG_CONTENT").contains("claude-sonnet-4.6"));
    }

    #[test]
    fn second_agent_carries_none_of_the_first_agents_secrets() {
        let a = fixture("mayor", "ghp_first_agent_secret");
        let b = fixture("polecat-1", "ghp_second");
        let env_a = build(&a, "anthropic/claude-sonnet-4.6");
        let env_b = build(&b, "anthropic/claude-sonnet-4.6");
        let secrets_a = [
            a.password.expose(),
            a.token.expose(),
            "ghp_first_agent_secret",
        ];
        for key in env_b.vars.keys() {
            let v = text(&env_b, key);
            for s in secrets_a {
                assert!(
                    !v.contains(s),
                    "{key} of agent b carries a secret of agent a"
                );
            }
        }
        assert_ne!(text(&env_a, "XDG_DATA_HOME"), text(&env_b, "XDG_DATA_HOME"));
    }

    #[test]
    fn hash_is_stable_ignores_token_and_tracks_model() {
        let mut f = fixture("mayor", "x");
        let h1 = build(&f, "anthropic/claude-sonnet-4.6").config_hash;
        assert_eq!(h1, build(&f, "anthropic/claude-sonnet-4.6").config_hash);
        f.token = Secret::random();
        assert_eq!(h1, build(&f, "anthropic/claude-sonnet-4.6").config_hash);
        assert_ne!(h1, build(&f, "anthropic/claude-opus-4.1").config_hash);
        f.password = Secret::random();
        assert_ne!(h1, build(&f, "anthropic/claude-sonnet-4.6").config_hash);
    }

    #[test]
    fn debug_shows_no_secret() {
        let f = fixture("mayor", "ghp_visible?");
        let env = build(&f, "anthropic/claude-sonnet-4.6");
        let shown = format!("{env:?}");
        assert!(!shown.contains(f.password.expose()));
        assert!(!shown.contains("ghp_visible?"));
    }
}
