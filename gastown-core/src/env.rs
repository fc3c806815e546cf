//! The agent environment builder: the one pure function that both a start and a prewarm
//! call, so a prewarmed SDK server has byte-for-byte the configuration a real start would
//! give it (`ARCHITECTURE.md`, *Phase path*).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::command::Word;
use crate::config::{ProviderConfig, SdkLauncher};
use crate::ids::{AgentId, TownId};
use crate::layout::AgentLayout;
use crate::path::ContainerPath;
use crate::role::Role;
use crate::secret::Secret;

/// The `PATH` every agent process gets.
pub const AGENT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The name of the container token minted at the agent's start: a file of that name in the
/// agent's [secrets directory](SECRETS_DIR_VAR), never a variable of the server's boot
/// environment (a pooled server is booted before any town claims it). Reserved as a
/// variable name too, so a credential cannot shadow it.
pub const TOKEN_VAR: &str = "GASTOWN_CONTAINER_TOKEN";
/// The name of the town id file in the agent's [secrets directory](SECRETS_DIR_VAR): the
/// town is identity that a pooled server gets only when a town claims it.
pub const TOWN_ID_FILE: &str = "GASTOWN_TOWN_ID";
/// The variable naming the agent's secrets directory (`/agents/<agent>/secrets`,
/// [`AgentLayout::secrets`]): one file per value, named like the variable it would have
/// been — [`TOWN_ID_FILE`], [`TOKEN_VAR`] and every credential (`GIT_TOKEN`, …). The start's
/// sdk phase writes them ([`AgentEnv::files`]) before the server gets any prompt, so a
/// tool reads `"$GASTOWN_SECRETS_DIR/GIT_TOKEN"`. Secrets and the town's identity live in
/// files rather than in the boot environment so that a server booted ahead of time for a
/// warm pool, which knows no town, has byte-for-byte the environment a fresh start gives
/// (`ARCHITECTURE.md`, *Warm pool*).
pub const SECRETS_DIR_VAR: &str = "GASTOWN_SECRETS_DIR";
/// The variable naming the file that holds the town's *current* container token
/// ([`CONTAINER_TOKEN_PATH`](crate::token::CONTAINER_TOKEN_PATH)): the alarm's hourly live
/// refresh rewrites it, so a long-lived tool reads the file when it exists and falls back
/// to [`TOKEN_VAR`] (the token minted at its agent's start) when it does not yet.
pub const TOKEN_FILE_VAR: &str = "GASTOWN_CONTAINER_TOKEN_FILE";

/// The `permission` rules an unattended worker's SDK server gets (the `permission` key of
/// `KILO_CONFIG_CONTENT`: tool permission name → `allow` | `deny`), checked against kilo
/// 7.7.9. Nobody answers a worker's prompts, and kilo holds a turn `busy` while a
/// permission is asked (event `permission.asked`, listed by `GET /permission`) until
/// someone replies, so every permission kilo 7.7.9's default agent (`code`) *asks* about
/// is allowed here, and every tool that waits for a person's answer is denied (a denied
/// tool is not offered to the model at all):
///
/// | permission | kilo 7.7.9 default | here | why |
/// |---|---|---|---|
/// | `bash` | ask, but for a read-only allowlist (`ls`, `cat`, `grep`, …) | allow | a worker builds, tests and runs `git add`/`git commit` |
/// | `edit` | allow (covers `write`, `edit`, `patch`) | allow | named so a changed default cannot make a worker ask |
/// | `read` | ask for `*.env`, `*.env.*` | allow | the worker's `bash` reads them anyway |
/// | `external_directory` | ask outside the project (and kilo's own dirs) | allow | the container is the boundary |
/// | `doom_loop` | ask (same tool call 3 times in a row) | allow | as Kilo Gastown's container does |
/// | `webfetch` | allow | allow | as Kilo Gastown's container does |
/// | `recall`, `kilo_memory_recall`, `kilo_memory_save` | ask | allow | kilo's session-recall and memory tools; nobody answers |
/// | `question`, `suggest`, `plan_enter` | allow for the `code` agent | deny | they wait for a person's answer or choice |
/// | `schedule_wakeup`, `cron_create`, `goal` | offered | deny | they start turns of their own later: a worker's turn ends when its work does, and the town reads its branch then |
///
/// `bash`, `edit`, `webfetch`, `doom_loop` and `external_directory` allowed is what Kilo
/// Gastown's container gives its agents (`HEADLESS_PERMISSIONS`, Kilo Gastown code); the
/// other rows were found in kilo 7.7.9's default rules (`GET /agent`) and checked by this
/// project's `kilo_tools` test, which asserts that no `ask` rule of the `code` agent
/// survives them. The user's `permission` rules come last in each agent's rule list and
/// the last matching rule wins, so these override kilo's defaults.
pub const UNATTENDED_PERMISSIONS: [(&str, &str); 15] = [
    ("bash", "allow"),
    ("cron_create", "deny"),
    ("doom_loop", "allow"),
    ("edit", "allow"),
    ("external_directory", "allow"),
    ("goal", "deny"),
    ("kilo_memory_recall", "allow"),
    ("kilo_memory_save", "allow"),
    ("plan_enter", "deny"),
    ("question", "deny"),
    ("read", "allow"),
    ("recall", "allow"),
    ("schedule_wakeup", "deny"),
    ("suggest", "deny"),
    ("webfetch", "allow"),
];

/// Whether `role`'s SDK server runs its tools with no one to answer its prompts: polecats
/// and refineries do; the mayor, the agent a user talks to, does not. An unattended role's
/// config gets [`UNATTENDED_PERMISSIONS`] and `"snapshot": false`
/// ([`build_agent_env_with_providers`]).
pub fn is_unattended(role: Role) -> bool {
    matches!(role, Role::Polecat | Role::Refinery)
}

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
    /// Its container token (written to its secrets directory, not the environment).
    pub token: &'a Secret,
    /// Credentials for this agent only (`GIT_TOKEN`, …), by variable name (written to its
    /// secrets directory under that name, not the environment).
    pub credentials: &'a BTreeMap<String, Secret>,
}

/// An agent's whole environment and the hash of its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEnv {
    /// Every variable the SDK server process gets; nothing else is inherited. It holds no
    /// town id, token or credential: those are [`files`](Self::files).
    pub vars: BTreeMap<String, Word>,
    /// The files of the agent's secrets directory ([`SECRETS_DIR_VAR`]), by container path:
    /// the town id, the container token and the credentials. Not part of either hash: a
    /// new token or a refreshed credential is a file rewritten, never a server restarted.
    pub files: BTreeMap<ContainerPath, Secret>,
    /// Hex SHA-256 over every variable but the rotating token: equal hashes mean a running
    /// SDK server can be reused as is.
    pub config_hash: String,
    /// The same hash without the config's `model` and `small_model`: equal restart hashes
    /// mean a running server can be kept across a model change — the model is named on
    /// every message and prompt, and pushed onto the session with a `noReply` message —
    /// instead of a 2.6 s stop and a full boot (measured here, kilo 7.7.9).
    pub restart_hash: String,
}

/// Builds an agent's environment with no extra providers. Pure: same input, same output.
/// Same as [`build_agent_env_with_providers`] with an empty map.
pub fn build_agent_env(input: &AgentEnvInput<'_>) -> AgentEnv {
    build_agent_env_with_providers(input, &BTreeMap::new())
}

/// Builds an agent's environment, adding the town's LLM `providers`
/// ([`TownConfig::providers`](crate::TownConfig::providers)) to the SDK server's config.
/// Pure: same input, same output (JSON objects are written with sorted keys).
///
/// The launcher's config variable (`KILO_CONFIG_CONTENT`) is
/// `{"model":MODEL,"small_model":SMALL_MODEL,"provider":{ID:ENTRY,…}}`, `provider` only when
/// `providers` is non-empty. A provider with an [`api_key`](ProviderConfig::api_key) gets
/// `options.apiKey = "{env:VAR}"` in its entry and its own secret variable
/// `VAR` = [`ProviderConfig::key_var`]`(ID)`, so the config text itself never holds a key.
/// The town id, the token and the credentials are [`AgentEnv::files`], never variables.
///
/// An [unattended](is_unattended) role's config (polecat, refinery) also has
/// `"permission"` = [`UNATTENDED_PERMISSIONS`], so its tools run with no prompt, and
/// `"snapshot": false`. kilo's snapshot is a git store of the worktree that kilo updates
/// at every step of a turn so that a person can undo the turn's file changes (its
/// `revert`); nobody undoes a worker's turn — gastown reads its commits — and the
/// snapshot costs a tool-using turn about 2–3 s (kilo 7.7.9, measured here on a loaded
/// 2-core host: a write-and-commit turn after the first took 0.5–1.6 s without it,
/// 1.4–5.5 s with it; its first turn also showed "Initializing snapshot…"). The mayor
/// keeps kilo's defaults: a person talks to it.
pub fn build_agent_env_with_providers(
    input: &AgentEnvInput<'_>,
    providers: &BTreeMap<String, ProviderConfig>,
) -> AgentEnv {
    let layout = AgentLayout::new(input.agent.clone());
    let mut vars: BTreeMap<String, Word> = BTreeMap::new();
    let mut set = |k: &str, v: Word| {
        vars.insert(k.to_owned(), v);
    };
    // The launcher's defaults first: every variable gastown sets below wins over them.
    for (k, v) in &input.launcher.env {
        set(k, v.as_str().into());
    }
    set("PATH", AGENT_PATH.into());
    set("HOME", layout.home().into());
    set("KILO_TEST_HOME", layout.home().into());
    set("XDG_DATA_HOME", layout.data().into());
    set("XDG_CONFIG_HOME", layout.xdg("config").into());
    set("XDG_CACHE_HOME", layout.xdg("cache").into());
    set("XDG_STATE_HOME", layout.xdg("state").into());
    set("GASTOWN_AGENT_ID", input.agent.as_str().into());
    set("GASTOWN_AGENT_ROLE", input.role.as_str().into());
    set(SECRETS_DIR_VAR, layout.secrets().into());
    set(
        TOKEN_FILE_VAR,
        crate::path::ContainerPath::new(crate::token::CONTAINER_TOKEN_PATH)
            .expect("a valid constant path")
            .into(),
    );
    set(&input.launcher.password_var, input.password.clone().into());
    set(
        &input.launcher.username_var,
        input.launcher.username.as_str().into(),
    );
    let mut config = serde_json::json!({
        "model": input.model,
        "small_model": input.small_model,
    });
    if !providers.is_empty() {
        let mut entries = serde_json::Map::new();
        for (id, provider) in providers {
            let mut entry = provider.entry.clone();
            if let Some(key) = &provider.api_key {
                let var = ProviderConfig::key_var(id);
                set_api_key_ref(&mut entry, &var);
                set(&var, key.clone().into());
            }
            entries.insert(id.clone(), entry);
        }
        config["provider"] = serde_json::Value::Object(entries);
    }
    if is_unattended(input.role) {
        let rules: serde_json::Map<String, serde_json::Value> = UNATTENDED_PERMISSIONS
            .iter()
            .map(|(name, action)| ((*name).to_owned(), (*action).into()))
            .collect();
        config["permission"] = serde_json::Value::Object(rules);
        config["snapshot"] = false.into();
    }
    set(&input.launcher.config_var, config.to_string().into());
    let secret_file = |name: &str| {
        layout
            .secrets()
            .join(name)
            .expect("variable names are path-safe")
    };
    let mut files = BTreeMap::new();
    files.insert(secret_file(TOWN_ID_FILE), Secret::new(input.town.as_str()));
    files.insert(secret_file(TOKEN_VAR), input.token.clone());
    for (k, v) in input.credentials {
        if is_var_name(k) {
            files.insert(secret_file(k), v.clone());
        }
    }
    let config_hash_now = config_hash(&vars, input.launcher);
    let mut without_models = config;
    if let Some(obj) = without_models.as_object_mut() {
        obj.remove("model");
        obj.remove("small_model");
    }
    let mut restart_vars = vars.clone();
    restart_vars.insert(
        input.launcher.config_var.clone(),
        without_models.to_string().into(),
    );
    let restart_hash = config_hash(&restart_vars, input.launcher);
    AgentEnv {
        vars,
        files,
        config_hash: config_hash_now,
        restart_hash,
    }
}

/// Points `entry.options.apiKey` at `var` with kilo's `{env:VAR}` substitution (creating
/// `options` when missing; an entry that is not an object is left alone, validation
/// rejects it).
fn set_api_key_ref(entry: &mut serde_json::Value, var: &str) {
    let Some(obj) = entry.as_object_mut() else {
        return;
    };
    let options = obj
        .entry("options")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !options.is_object() {
        *options = serde_json::Value::Object(serde_json::Map::new());
    }
    if let Some(options) = options.as_object_mut() {
        options.insert("apiKey".to_owned(), format!("{{env:{var}}}").into());
    }
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
        build_role(f, Role::Mayor, model)
    }

    fn build_role(f: &Fixture, role: Role, model: &str) -> AgentEnv {
        build_agent_env(&AgentEnvInput {
            town: &f.town,
            agent: &f.agent,
            role,
            launcher: &f.launcher,
            model,
            small_model: "anthropic/claude-haiku-4-5",
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
        let env = build(&f, "anthropic/claude-sonnet-4-6");
        assert_eq!(text(&env, "GASTOWN_AGENT_ID"), "mayor");
        assert_eq!(text(&env, SECRETS_DIR_VAR), "/agents/mayor/secrets");
        assert_eq!(text(&env, "GASTOWN_AGENT_ROLE"), "mayor");
        assert_eq!(text(&env, "XDG_DATA_HOME"), "/agents/mayor/data");
        assert_eq!(text(&env, "KILO_SERVER_USERNAME"), "kilo");
        assert_eq!(text(&env, "KILO_SERVER_PASSWORD"), f.password.expose());
        assert!(text(&env, "KILO_CONFIG_CONTENT").contains("claude-sonnet-4-6"));
        // Identity and secrets are files of the secrets directory, not variables.
        let file = |name: &str| {
            env.files[&ContainerPath::new(format!("/agents/mayor/secrets/{name}")).unwrap()]
                .expose()
                .to_owned()
        };
        assert_eq!(file(TOWN_ID_FILE), "town-a");
        assert_eq!(file(TOKEN_VAR), f.token.expose());
        assert_eq!(file("GIT_TOKEN"), "ghp_a");
        for key in ["GASTOWN_TOWN_ID", TOKEN_VAR, "GIT_TOKEN"] {
            assert!(!env.vars.contains_key(key), "{key} is not a variable");
        }
    }

    #[test]
    fn second_agent_carries_none_of_the_first_agents_secrets() {
        let a = fixture("mayor", "ghp_first_agent_secret");
        let b = fixture("polecat-1", "ghp_second");
        let env_a = build(&a, "anthropic/claude-sonnet-4-6");
        let env_b = build(&b, "anthropic/claude-sonnet-4-6");
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
        for (path, v) in &env_b.files {
            assert!(path.as_str().starts_with("/agents/polecat-1/secrets/"));
            for s in secrets_a {
                assert!(
                    !v.expose().contains(s),
                    "{path} of agent b holds a secret of agent a"
                );
            }
        }
        assert_ne!(text(&env_a, "XDG_DATA_HOME"), text(&env_b, "XDG_DATA_HOME"));
    }

    #[test]
    fn hash_is_stable_ignores_token_and_tracks_model() {
        let mut f = fixture("mayor", "x");
        let h1 = build(&f, "anthropic/claude-sonnet-4-6").config_hash;
        assert_eq!(h1, build(&f, "anthropic/claude-sonnet-4-6").config_hash);
        f.token = Secret::random();
        assert_eq!(h1, build(&f, "anthropic/claude-sonnet-4-6").config_hash);
        // Neither the town nor a credential is configuration: a pooled server booted
        // before its town was known has the hash a fresh start of that town computes.
        f.town = TownId::new("town-b").unwrap();
        f.creds
            .insert("GIT_TOKEN".to_owned(), Secret::new("ghp_refreshed"));
        assert_eq!(h1, build(&f, "anthropic/claude-sonnet-4-6").config_hash);
        assert_ne!(h1, build(&f, "anthropic/claude-opus-4-5").config_hash);
        f.password = Secret::random();
        assert_ne!(h1, build(&f, "anthropic/claude-sonnet-4-6").config_hash);
    }

    fn build_with(f: &Fixture, providers: &BTreeMap<String, ProviderConfig>) -> AgentEnv {
        build_agent_env_with_providers(
            &AgentEnvInput {
                town: &f.town,
                agent: &f.agent,
                role: Role::Mayor,
                launcher: &f.launcher,
                model: "scripted/scripted-1",
                small_model: "scripted/scripted-1",
                password: &f.password,
                token: &f.token,
                credentials: &f.creds,
            },
            providers,
        )
    }

    #[test]
    fn providers_go_into_the_config_and_keys_into_secret_variables() {
        let f = fixture("mayor", "x");
        let scripted = serde_json::json!({
            "npm": "@ai-sdk/openai-compatible",
            "name": "Scripted",
            "options": {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "x"},
            "models": {"scripted-1": {"name": "Scripted 1"}},
        });
        let providers = BTreeMap::from([
            ("scripted".to_owned(), ProviderConfig::new(scripted.clone())),
            (
                "real".to_owned(),
                ProviderConfig::new(serde_json::json!({"npm": "@ai-sdk/anthropic"}))
                    .with_api_key(Secret::new("sk-real-key")),
            ),
        ]);
        let env = build_with(&f, &providers);
        let config: serde_json::Value =
            serde_json::from_str(&text(&env, "KILO_CONFIG_CONTENT")).unwrap();
        assert_eq!(config["model"], "scripted/scripted-1");
        assert_eq!(config["small_model"], "scripted/scripted-1");
        assert_eq!(config["provider"]["scripted"], scripted);
        assert_eq!(
            config["provider"]["real"]["options"]["apiKey"],
            "{env:GASTOWN_PROVIDER_KEY_REAL}"
        );
        assert!(!text(&env, "KILO_CONFIG_CONTENT").contains("sk-real-key"));
        assert!(matches!(
            &env.vars["GASTOWN_PROVIDER_KEY_REAL"],
            Word::Secret(s) if s.expose() == "sk-real-key"
        ));
        assert!(!format!("{env:?}").contains("sk-real-key"));

        // Deterministic, and the key is part of the configuration.
        assert_eq!(env, build_with(&f, &providers));
        let mut other = providers.clone();
        other.get_mut("real").unwrap().api_key = Some(Secret::new("sk-other"));
        assert_ne!(env.config_hash, build_with(&f, &other).config_hash);
        // No providers: the config is exactly what it was before providers existed.
        let plain = build_with(&f, &BTreeMap::new());
        assert_eq!(
            text(&plain, "KILO_CONFIG_CONTENT"),
            r#"{"model":"scripted/scripted-1","small_model":"scripted/scripted-1"}"#
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let f = fixture("mayor", "ghp_visible?");
        let env = build(&f, "anthropic/claude-sonnet-4-6");
        let shown = format!("{env:?}");
        assert!(!shown.contains(f.password.expose()));
        assert!(!shown.contains("ghp_visible?"));
    }

    #[test]
    fn a_model_change_keeps_the_restart_hash_and_changes_the_config_hash() {
        let f = fixture("mayor", "ghp_x");
        let a = build(&f, "anthropic/claude-sonnet-4-6");
        let b = build(&f, "openai/gpt-5");
        assert_ne!(a.config_hash, b.config_hash);
        assert_eq!(
            a.restart_hash, b.restart_hash,
            "a new model needs no restart"
        );
        assert_ne!(a.config_hash, a.restart_hash);
    }

    fn config(env: &AgentEnv) -> serde_json::Value {
        serde_json::from_str(&text(env, "KILO_CONFIG_CONTENT")).unwrap()
    }

    #[test]
    fn workers_run_their_tools_unattended_and_the_mayor_keeps_kilos_defaults() {
        let f = fixture("polecat-1", "ghp_x");
        for role in [Role::Polecat, Role::Refinery] {
            assert!(is_unattended(role));
            let env = build_role(&f, role, "anthropic/claude-sonnet-4-6");
            let config = config(&env);
            assert_eq!(config["model"], "anthropic/claude-sonnet-4-6");
            assert_eq!(config["snapshot"], false, "{role}");
            let rules = config["permission"]
                .as_object()
                .expect("a permission object");
            assert_eq!(rules.len(), UNATTENDED_PERMISSIONS.len());
            for (name, action) in UNATTENDED_PERMISSIONS {
                assert_eq!(rules[name], action, "{role}: {name}");
            }
            // Pure: the same input gives byte-for-byte the same config, so a prewarmed
            // worker's hash matches its start's.
            assert_eq!(env, build_role(&f, role, "anthropic/claude-sonnet-4-6"));
            // A model change still needs no restart of a worker.
            let other = build_role(&f, role, "openai/gpt-5");
            assert_eq!(env.restart_hash, other.restart_hash);
            assert_ne!(env.config_hash, other.config_hash);
        }

        assert!(!is_unattended(Role::Mayor));
        let mayor = config(&build_role(&f, Role::Mayor, "anthropic/claude-sonnet-4-6"));
        assert_eq!(
            mayor.get("permission"),
            None,
            "the mayor keeps kilo's prompts"
        );
        assert_eq!(
            mayor.get("snapshot"),
            None,
            "the mayor keeps kilo's snapshots"
        );
    }

    #[test]
    fn unattended_permissions_allow_or_deny_and_never_ask() {
        let mut names: Vec<&str> = UNATTENDED_PERMISSIONS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            UNATTENDED_PERMISSIONS.len(),
            "one rule per name"
        );
        for (name, action) in UNATTENDED_PERMISSIONS {
            assert!(matches!(action, "allow" | "deny"), "{name}: {action}");
        }
        let action = |name: &str| {
            UNATTENDED_PERMISSIONS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, a)| *a)
        };
        assert_eq!(action("bash"), Some("allow"));
        assert_eq!(action("edit"), Some("allow"));
        assert_eq!(action("question"), Some("deny"));
    }
}
