//! Town configuration: rigs, the mayor's models, LLM providers, and how to launch the SDK
//! server.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{RigId, TownId};
use crate::secret::Secret;

pub use crate::launcher::SdkLauncher;

/// The mayor's model when none is configured. Spelled as kilo 7.7.9's bundled model list
/// spells it (`GET /provider`: provider `anthropic`, model `claude-sonnet-4-6`).
pub const DEFAULT_MODEL: &str = "anthropic/claude-sonnet-4-6";
/// The mayor's small model when none is configured (kilo 7.7.9 `GET /provider`:
/// `anthropic` / `claude-haiku-4-5`).
pub const DEFAULT_SMALL_MODEL: &str = "anthropic/claude-haiku-4-5";
/// The prefix of the variable that carries a provider's API key into the SDK server's
/// environment: `GASTOWN_PROVIDER_KEY_<ID>` (see [`ProviderConfig::key_var`]).
pub const PROVIDER_KEY_VAR_PREFIX: &str = "GASTOWN_PROVIDER_KEY_";

/// A git repository the town works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RigConfig {
    /// The rig's id (used as a directory name inside the container).
    pub id: RigId,
    /// Where to clone from: a URL or, for the local runtime, a path on the host.
    pub url: String,
    /// The branch browse worktrees check out (`main` unless set).
    #[serde(default = "default_branch")]
    pub default_branch: String,
}

fn default_branch() -> String {
    "main".to_owned()
}

impl RigConfig {
    /// A rig at `url` checking out `main`.
    pub fn new(id: RigId, url: impl Into<String>) -> Self {
        Self {
            id,
            url: url.into(),
            default_branch: default_branch(),
        }
    }

    /// Sets the branch browse worktrees check out.
    pub fn with_default_branch(mut self, branch: impl Into<String>) -> Self {
        self.default_branch = branch.into();
        self
    }
}

/// A model reference `provider/model`, e.g. `anthropic/claude-sonnet-4-6`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelRef {
    /// The provider id (`anthropic`).
    pub provider_id: String,
    /// The model id within the provider (`claude-sonnet-4-6`).
    pub model_id: String,
}

impl ModelRef {
    /// Parses `provider/model`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when either side of the first `/` is empty or holds
    /// whitespace or control characters.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::InvalidConfig {
            message: format!("model {s:?} is not of the form provider/model"),
        };
        let (provider, model) = s.split_once('/').ok_or_else(bad)?;
        let ok = |p: &str| !p.is_empty() && !p.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok(provider) || !ok(model) {
            return Err(bad());
        }
        Ok(Self {
            provider_id: provider.to_owned(),
            model_id: model.to_owned(),
        })
    }

    /// `provider/model`.
    pub fn as_string(&self) -> String {
        format!("{}/{}", self.provider_id, self.model_id)
    }
}

/// One LLM provider of the SDK server's config: the JSON entry that goes under
/// `provider.<id>` of `KILO_CONFIG_CONTENT` (kilo 7.7.9 and opencode read the same shape),
/// and optionally its API key as a [`Secret`].
///
/// An OpenAI-compatible server, e.g. the scripted model server of the tests:
/// `{"npm":"@ai-sdk/openai-compatible","name":"Scripted","options":{"baseURL":"http://127.0.0.1:PORT/v1","apiKey":"x"},"models":{"scripted-1":{"name":"Scripted 1"}}}`.
///
/// # The key
/// A real key never goes into the entry (the entry is plain JSON: it shows in `Debug`, in
/// the SDK server's `GET /config`, in a serialized [`TownConfig`]). Put it in
/// [`ProviderConfig::api_key`] instead: the env builder passes it in its own variable
/// [`ProviderConfig::key_var`] (a secret [`Word`](crate::command::Word)) and sets the
/// entry's `options.apiKey` to `{env:GASTOWN_PROVIDER_KEY_<ID>}`, which kilo 7.7.9
/// substitutes when it reads `KILO_CONFIG_CONTENT` (checked: the provider received
/// `Authorization: Bearer <key>`). The key is never serialized: supply it at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// The entry, a JSON object, as the SDK server reads it under `provider.<id>`.
    pub entry: serde_json::Value,
    /// The provider's API key (`Debug` shows `Secret(***)`; never serialized).
    #[serde(skip)]
    pub api_key: Option<Secret>,
}

impl ProviderConfig {
    /// A provider with this entry and no separate key.
    pub fn new(entry: serde_json::Value) -> Self {
        Self {
            entry,
            api_key: None,
        }
    }

    /// Sets the API key (passed as a secret; see the type's docs).
    pub fn with_api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The variable carrying the key of provider `id`: `GASTOWN_PROVIDER_KEY_` + `id` in
    /// upper case with every character other than `A-Z0-9` replaced by `_`
    /// (`scripted` → `GASTOWN_PROVIDER_KEY_SCRIPTED`, `my-llm` → `…_MY_LLM`).
    pub fn key_var(id: &str) -> String {
        let tail: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{PROVIDER_KEY_VAR_PREFIX}{tail}")
    }

    /// Whether `id` can name a provider: 1 to 64 characters of `A-Za-z0-9`, `-`, `_`, `.`.
    fn valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    }
}

/// Everything a town needs to run: its id, rigs, the mayor's models, extra LLM providers
/// and the SDK launcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TownConfig {
    /// The town's id.
    pub town: TownId,
    /// The repositories the town works on.
    #[serde(default)]
    pub rigs: Vec<RigConfig>,
    /// The mayor's model, `provider/model`.
    #[serde(default = "default_model")]
    pub mayor_model: String,
    /// The mayor's small model, `provider/model`.
    #[serde(default = "default_small_model")]
    pub mayor_small_model: String,
    /// How SDK servers are launched.
    #[serde(default)]
    pub sdk: SdkLauncher,
    /// LLM providers added to every agent's SDK server config, by provider id (the
    /// `provider` object of `KILO_CONFIG_CONTENT`). Empty: only the SDK server's bundled
    /// providers, whose keys it reads from its own environment or auth store.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, ProviderConfig>,
}

fn default_model() -> String {
    DEFAULT_MODEL.to_owned()
}

fn default_small_model() -> String {
    DEFAULT_SMALL_MODEL.to_owned()
}

impl TownConfig {
    /// A town with no rigs, the default models and kilo.
    pub fn new(town: TownId) -> Self {
        Self {
            town,
            rigs: Vec::new(),
            mayor_model: default_model(),
            mayor_small_model: default_small_model(),
            sdk: SdkLauncher::default(),
            providers: BTreeMap::new(),
        }
    }

    /// Adds a rig.
    pub fn with_rig(mut self, rig: RigConfig) -> Self {
        self.rigs.push(rig);
        self
    }

    /// Sets the mayor's model (`provider/model`).
    pub fn with_mayor_model(mut self, model: impl Into<String>) -> Self {
        self.mayor_model = model.into();
        self
    }

    /// Sets the mayor's small model (`provider/model`).
    pub fn with_mayor_small_model(mut self, model: impl Into<String>) -> Self {
        self.mayor_small_model = model.into();
        self
    }

    /// Adds (or replaces) the provider `id`.
    pub fn with_provider(mut self, id: impl Into<String>, provider: ProviderConfig) -> Self {
        self.providers.insert(id.into(), provider);
        self
    }

    /// Sets the SDK launcher.
    pub fn with_sdk(mut self, sdk: SdkLauncher) -> Self {
        self.sdk = sdk;
        self
    }

    /// Parses a JSON config and validates it.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for malformed JSON or any failure of [`TownConfig::validate`].
    pub fn from_json(json: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(json).map_err(|e| Error::InvalidConfig {
            message: format!("town config JSON: {e}"),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: models are `provider/model`, rig ids are unique, rig
    /// URLs and branches are non-empty and safe to pass to git, provider ids are usable
    /// (see [`ProviderConfig`]) with JSON-object entries and distinct key variables, the
    /// launcher is usable.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first problem found.
    pub fn validate(&self) -> Result<()> {
        ModelRef::parse(&self.mayor_model)?;
        ModelRef::parse(&self.mayor_small_model)?;
        let mut seen = HashSet::new();
        for rig in &self.rigs {
            if !seen.insert(&rig.id) {
                return Err(Error::InvalidConfig {
                    message: format!("rig {} is listed twice", rig.id),
                });
            }
            // A leading '-' would be read by git as an option.
            let safe = |s: &str| !s.is_empty() && !s.starts_with('-') && !s.contains('\0');
            if !safe(&rig.url) {
                return Err(Error::InvalidConfig {
                    message: format!("rig {} has an empty or unsafe url", rig.id),
                });
            }
            if !safe(&rig.default_branch) || rig.default_branch.contains("..") {
                return Err(Error::InvalidConfig {
                    message: format!("rig {} has an unsafe default branch", rig.id),
                });
            }
        }
        self.validate_providers()?;
        self.sdk.validate()
    }

    fn validate_providers(&self) -> Result<()> {
        let mut key_vars = HashSet::new();
        for (id, provider) in &self.providers {
            let bad = |why: &str| Error::InvalidConfig {
                message: format!("provider {id:?}: {why}"),
            };
            if !ProviderConfig::valid_id(id) {
                return Err(bad(
                    "the id must be 1-64 characters of A-Za-z0-9, '-', '_', '.'",
                ));
            }
            if !provider.entry.is_object() {
                return Err(bad("the entry must be a JSON object"));
            }
            if provider.api_key.is_some() && !key_vars.insert(ProviderConfig::key_var(id)) {
                return Err(bad("its key variable collides with another provider's"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn town() -> TownConfig {
        TownConfig::new(TownId::new("t").unwrap())
    }

    #[test]
    fn defaults_validate() {
        town().validate().unwrap();
    }

    #[test]
    fn rejects_bad_model() {
        for m in ["", "noslash", "/x", "x/", "a b/c"] {
            let err = town().with_mayor_model(m).validate().unwrap_err();
            assert!(matches!(err, Error::InvalidConfig { .. }), "{m:?}");
        }
    }

    #[test]
    fn rejects_duplicate_rigs_and_option_like_urls() {
        let rig = RigConfig::new(RigId::new("r").unwrap(), "/src/r");
        let dup = town().with_rig(rig.clone()).with_rig(rig.clone());
        assert!(dup.validate().is_err());
        let opt = town().with_rig(RigConfig::new(rig.id.clone(), "--upload-pack=x"));
        assert!(opt.validate().is_err());
    }

    #[test]
    fn malformed_json_is_a_clear_error() {
        let err = TownConfig::from_json("{\"town\": \"Bad Town\"}").unwrap_err();
        assert!(err.to_string().contains("town config"), "{err}");
        let ok = TownConfig::from_json("{\"town\": \"t1\"}").unwrap();
        assert_eq!(ok.sdk, SdkLauncher::kilo());
    }

    #[test]
    fn model_ref_parses() {
        let m = ModelRef::parse(DEFAULT_MODEL).unwrap();
        assert_eq!(m.provider_id, "anthropic");
        assert_eq!(m.model_id, "claude-sonnet-4-6");
        assert_eq!(
            ModelRef::parse(DEFAULT_SMALL_MODEL).unwrap().model_id,
            "claude-haiku-4-5"
        );
    }

    fn scripted_entry() -> serde_json::Value {
        serde_json::json!({
            "npm": "@ai-sdk/openai-compatible",
            "options": {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "x"},
            "models": {"scripted-1": {}},
        })
    }

    #[test]
    fn providers_round_trip_without_their_keys() {
        let config = town()
            .with_provider("scripted", ProviderConfig::new(scripted_entry()))
            .with_provider(
                "real",
                ProviderConfig::new(serde_json::json!({}))
                    .with_api_key(Secret::new("sk-live-secret")),
            );
        config.validate().unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("sk-live-secret"), "{shown}");
        let json = serde_json::to_string(&config).unwrap();
        assert!(!json.contains("sk-live-secret"), "{json}");
        let back = TownConfig::from_json(&json).unwrap();
        assert_eq!(back.providers["scripted"], config.providers["scripted"]);
        assert_eq!(back.providers["real"].api_key, None);
        // No providers: the field is left out, so older readers see the same JSON.
        assert!(!serde_json::to_string(&town())
            .unwrap()
            .contains("providers"));
    }

    #[test]
    fn rejects_bad_providers() {
        let bad_id = town().with_provider("a b", ProviderConfig::new(scripted_entry()));
        assert!(bad_id.validate().is_err());
        let not_object = town().with_provider("p", ProviderConfig::new(serde_json::json!("x")));
        assert!(not_object.validate().is_err());
        let key = || ProviderConfig::new(serde_json::json!({})).with_api_key(Secret::new("k"));
        let clash = town()
            .with_provider("my-llm", key())
            .with_provider("my_llm", key());
        assert!(clash.validate().is_err());
        assert_eq!(
            ProviderConfig::key_var("my-llm.v2"),
            "GASTOWN_PROVIDER_KEY_MY_LLM_V2"
        );
    }
}
