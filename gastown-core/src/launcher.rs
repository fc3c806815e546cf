//! [`SdkLauncher`]: how an agent's SDK server is launched, and where it keeps its sessions
//! (`ARCHITECTURE.md`, *SDK server*).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::path::ContainerPath;

/// kilo's database, relative to its data directory: `$XDG_DATA_HOME/kilo/kilo.db` (kilo
/// 7.7.9, measured here; the release channel `latest` keeps the plain name).
pub const KILO_DATABASE: &str = "kilo/kilo.db";

/// opencode's database, relative to its data directory: `$XDG_DATA_HOME/opencode/opencode.db`
/// (opencode 1.18.34, measured here; [`SdkLauncher::opencode`] sets
/// `OPENCODE_DISABLE_CHANNEL_DB=1` so a build of another release channel keeps this name
/// too instead of `opencode-<channel>.db`).
pub const OPENCODE_DATABASE: &str = "opencode/opencode.db";

/// How to launch an agent's SDK server: `<program> <args…> --port <P> --hostname <host>`,
/// with `P` a port the town picks (not `0`: kilo 7.7.9 then tries 4096 first and, when
/// another server holds it, rebuilds its whole HTTP stack — +0.55 s and +0.9 CPU-s per
/// boot, measured here) — and where that server keeps its sessions ([`Self::database`]),
/// which the `hydrate` phase restores and every snapshot copies.
///
/// The defaults are kilo's ([`SdkLauncher::kilo`]); [`SdkLauncher::opencode`] configures an
/// `opencode serve`, which speaks the same HTTP API (`ARCHITECTURE.md`, *SDK server*).
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
    /// The server's SQLite database (sessions and messages), relative to its data
    /// directory (`XDG_DATA_HOME`, the agent's `AgentLayout::data`): [`KILO_DATABASE`]
    /// for kilo, [`OPENCODE_DATABASE`] for opencode. The `hydrate` phase restores it, the
    /// drain and the turn-boundary snapshots copy it (with its `-wal`); a drain that finds
    /// no database here for an agent holding a session fails and keeps the container, so
    /// a wrong value is an error, never a lost session. Absent in JSON: kilo's.
    #[serde(default = "kilo_database")]
    pub database: String,
    /// Variables every agent's server gets, before gastown's own (which win). kilo's
    /// defaults, measured here on kilo 7.7.9: `KILO_TELEMETRY_LEVEL=off` (SIGTERM to exit
    /// 2.6 s → 0.55 s: no telemetry flush) and `KILO_DISABLE_MODELS_FETCH=1` (the first
    /// `POST /session` 12.3 s → 2.8 s when DNS is dropped: no 10 s models refresh).
    /// Remove or change them here to override.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn kilo_database() -> String {
    KILO_DATABASE.to_owned()
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl SdkLauncher {
    /// `kilo serve`, with kilo's variable names and database (checked against kilo 7.7.9).
    pub fn kilo() -> Self {
        Self {
            program: "kilo".to_owned(),
            args: vec!["serve".to_owned()],
            password_var: "KILO_SERVER_PASSWORD".to_owned(),
            username_var: "KILO_SERVER_USERNAME".to_owned(),
            username: "kilo".to_owned(),
            config_var: "KILO_CONFIG_CONTENT".to_owned(),
            database: kilo_database(),
            env: vars(&[
                ("KILO_TELEMETRY_LEVEL", "off"),
                ("KILO_DISABLE_MODELS_FETCH", "1"),
            ]),
        }
    }

    /// `opencode serve`, with opencode's variable names and database (checked against
    /// opencode 1.18.34: its bundled code reads `OPENCODE_SERVER_PASSWORD`,
    /// `OPENCODE_SERVER_USERNAME`, `OPENCODE_CONFIG_CONTENT`). Its defaults:
    /// `OPENCODE_DISABLE_MODELS_FETCH=1` (kilo's counterpart: no models.dev refresh at
    /// boot) and `OPENCODE_DISABLE_CHANNEL_DB=1` (the database is [`OPENCODE_DATABASE`]
    /// whatever the build's release channel).
    pub fn opencode() -> Self {
        Self {
            program: "opencode".to_owned(),
            args: vec!["serve".to_owned()],
            password_var: "OPENCODE_SERVER_PASSWORD".to_owned(),
            username_var: "OPENCODE_SERVER_USERNAME".to_owned(),
            username: "opencode".to_owned(),
            config_var: "OPENCODE_CONFIG_CONTENT".to_owned(),
            database: OPENCODE_DATABASE.to_owned(),
            env: vars(&[
                ("OPENCODE_DISABLE_CHANNEL_DB", "1"),
                ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
            ]),
        }
    }

    /// The container path of the server's database for an agent whose data directory
    /// (`XDG_DATA_HOME`) is `data_dir`: `data_dir` joined with [`Self::database`], e.g.
    /// `/agents/mayor/data/opencode/opencode.db`.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] when [`Self::database`] is empty, absolute, or holds a `..`,
    /// `.` or empty component ([`TownConfig::validate`](crate::TownConfig::validate)
    /// rejects such a launcher up front).
    pub fn database_path(&self, data_dir: &ContainerPath) -> Result<ContainerPath> {
        let path = data_dir.join(&self.database)?;
        if self.database.is_empty() || path == *data_dir {
            return Err(Error::InvalidPath {
                path: self.database.clone(),
                reason: "the SDK database must name a file under the data directory",
            });
        }
        Ok(path)
    }

    pub(crate) fn validate(&self) -> Result<()> {
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
        if let Some(var) = self.env.keys().find(|k| !crate::env::is_var_name(k)) {
            return bad(format!(
                "sdk launcher env {var:?} is not an environment variable name"
            ));
        }
        if self.username.is_empty() || self.username.contains(':') {
            return bad("sdk launcher username must be non-empty and hold no ':'".into());
        }
        if let Err(e) = self.database_path(&ContainerPath::root()) {
            return bad(format!(
                "sdk launcher database {:?} must be a relative file path: {e}",
                self.database
            ));
        }
        Ok(())
    }
}

impl Default for SdkLauncher {
    fn default() -> Self {
        Self::kilo()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> ContainerPath {
        ContainerPath::new("/agents/mayor/data").unwrap()
    }

    #[test]
    fn each_launcher_names_its_own_database() {
        assert_eq!(
            SdkLauncher::kilo().database_path(&data()).unwrap().as_str(),
            "/agents/mayor/data/kilo/kilo.db"
        );
        assert_eq!(
            SdkLauncher::opencode()
                .database_path(&data())
                .unwrap()
                .as_str(),
            "/agents/mayor/data/opencode/opencode.db"
        );
        SdkLauncher::kilo().validate().unwrap();
        SdkLauncher::opencode().validate().unwrap();
    }

    #[test]
    fn a_database_outside_the_data_dir_is_rejected() {
        for bad in ["", "/etc/passwd", "../x.db", "kilo/../../x.db", "a//b", "."] {
            let launcher = SdkLauncher {
                database: bad.to_owned(),
                ..SdkLauncher::opencode()
            };
            assert!(launcher.database_path(&data()).is_err(), "{bad:?}");
            let err = launcher.validate().unwrap_err();
            assert!(matches!(err, Error::InvalidConfig { .. }), "{bad:?}");
        }
    }

    #[test]
    fn a_launcher_without_a_database_in_json_is_kilos() {
        let mut json = serde_json::to_value(SdkLauncher::kilo()).unwrap();
        json.as_object_mut().unwrap().remove("database");
        let launcher: SdkLauncher = serde_json::from_value(json).unwrap();
        assert_eq!(launcher, SdkLauncher::kilo());
        let opencode = SdkLauncher::opencode();
        let back: SdkLauncher =
            serde_json::from_str(&serde_json::to_string(&opencode).unwrap()).unwrap();
        assert_eq!(back.database, OPENCODE_DATABASE);
    }
}
