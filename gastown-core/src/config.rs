//! Town configuration: rigs, the mayor's models, and how to launch the SDK server.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{RigId, TownId};

/// The mayor's model when none is configured.
pub const DEFAULT_MODEL: &str = "anthropic/claude-sonnet-4.6";
/// The mayor's small model when none is configured.
pub const DEFAULT_SMALL_MODEL: &str = "anthropic/claude-haiku-4.5";

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

/// A model reference `provider/model`, e.g. `anthropic/claude-sonnet-4.6`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelRef {
    /// The provider id (`anthropic`).
    pub provider_id: String,
    /// The model id within the provider (`claude-sonnet-4.6`).
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

/// How to launch an agent's SDK server: `<program> <args…> --port 0 --hostname <host>`.
///
/// The defaults are kilo's ([`SdkLauncher::kilo`]); [`SdkLauncher::opencode`] configures an
/// `opencode serve`, which speaks the same HTTP API (DESIGN.md §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdkLauncher {
    /// The program. A bare name is resolved by the runtime (the local runtime maps `kilo`
    /// to the installed binary, see `gastown_core::kilo`); a path is used as is.
    pub program: String,
    /// Arguments before the port and hostname flags (`["serve"]`).
    pub args: Vec<String>,
    /// The variable that turns on HTTP basic auth (`KILO_SERVER_PASSWORD`).
    pub password_var: String,
    /// The variable naming the basic-auth user (`KILO_SERVER_USERNAME`).
    pub username_var: String,
    /// The basic-auth user (`kilo`).
    pub username: String,
    /// The variable that carries the JSON config (`KILO_CONFIG_CONTENT`).
    pub config_var: String,
}

impl SdkLauncher {
    /// `kilo serve`, with kilo's variable names (checked against kilo 7.7.9).
    pub fn kilo() -> Self {
        Self {
            program: "kilo".to_owned(),
            args: vec!["serve".to_owned()],
            password_var: "KILO_SERVER_PASSWORD".to_owned(),
            username_var: "KILO_SERVER_USERNAME".to_owned(),
            username: "kilo".to_owned(),
            config_var: "KILO_CONFIG_CONTENT".to_owned(),
        }
    }

    /// `opencode serve`, with opencode's variable names (checked against opencode 1.18.33).
    pub fn opencode() -> Self {
        Self {
            program: "opencode".to_owned(),
            args: vec!["serve".to_owned()],
            password_var: "OPENCODE_SERVER_PASSWORD".to_owned(),
            username_var: "OPENCODE_SERVER_USERNAME".to_owned(),
            username: "opencode".to_owned(),
            config_var: "OPENCODE_CONFIG_CONTENT".to_owned(),
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::InvalidConfig { message });
        if self.program.trim().is_empty() {
            return bad("sdk launcher program is empty".into());
        }
        for (what, var) in [
            ("password_var", &self.password_var),
            ("username_var", &self.username_var),
            ("config_var", &self.config_var),
        ] {
            if !crate::env::is_var_name(var) {
                return bad(format!(
                    "sdk launcher {what} {var:?} is not an environment variable name"
                ));
            }
        }
        if self.username.is_empty() || self.username.contains(':') {
            return bad("sdk launcher username must be non-empty and hold no ':'".into());
        }
        Ok(())
    }
}

impl Default for SdkLauncher {
    fn default() -> Self {
        Self::kilo()
    }
}

/// Everything a town needs to run: its id, rigs, the mayor's models and the SDK launcher.
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
    /// URLs and branches are non-empty and safe to pass to git, the launcher is usable.
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
        self.sdk.validate()
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
        let m = ModelRef::parse("anthropic/claude-sonnet-4.6").unwrap();
        assert_eq!(m.provider_id, "anthropic");
        assert_eq!(m.model_id, "claude-sonnet-4.6");
    }
}
