//! Container tokens: HS256 JWTs that name a town and an agent, minted locally (no round
//! trip) and valid for 8 hours (Kilo Gastown's container-token lifetime; ARCHITECTURE.md,
//! *Lifecycle timings*).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{AgentId, TownId};
use crate::secret::Secret;

/// Where a live token refresh writes the new container token inside a warm container.
pub const CONTAINER_TOKEN_PATH: &str = "/run/gastown/container-token";
/// Town store time key: when the container token was last minted or refreshed (ms).
pub const TOKEN_REFRESHED_KEY: &str = "container_token_refreshed_ms";
/// Town store time key: when the current container token expires (ms).
pub const TOKEN_EXPIRES_KEY: &str = "container_token_expires_ms";

/// How long a container token is valid: 8 h (a Kilo Gastown code value).
pub const TOKEN_TTL: Duration = Duration::from_secs(8 * 3600);
/// A live refresh goes out at most this often: 1 h (Kilo Gastown #1450; the throttle is
/// persisted under [`TOKEN_REFRESHED_KEY`]).
pub const REFRESH_THROTTLE: Duration = Duration::from_secs(3600);
/// A token this close to expiry is refreshed even inside the throttle: 30 min (a Kilo
/// Gastown code value, where it applied on boot).
pub const REFRESH_NEAR_EXPIRY: Duration = Duration::from_secs(30 * 60);

/// The claims of a container token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The town.
    pub town: String,
    /// The agent.
    pub agent: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
}

/// Mints and verifies container tokens with one HS256 key.
///
/// A token is a compact JWT (`header.claims.signature`, base64url) whose claims are
/// [`TokenClaims`]; it reaches an agent as the file `GASTOWN_CONTAINER_TOKEN`
/// ([`env::TOKEN_VAR`](crate::env::TOKEN_VAR)) of its secrets directory at start, and a
/// warm container in
/// [`CONTAINER_TOKEN_PATH`] on a live refresh. The town keeps the key in its store, so
/// tokens survive a restart of the embedding process. `Debug` hides the key.
#[derive(Clone)]
pub struct TokenSigner {
    key: Secret,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(***)")
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenSigner {
    /// A signer with `key` (use [`Secret::random`] for a new town; the town store keeps it).
    pub fn new(key: Secret) -> Self {
        Self { key }
    }

    /// Mints a token for `agent` of `town`, issued at `now`, valid for `ttl` (whole
    /// seconds: `iat` and `exp` are seconds since the Unix epoch; use [`TOKEN_TTL`]). Local
    /// and cheap — no round trip, which is why a fresh start mints instead of refreshing.
    ///
    /// # Errors
    /// [`Error::Token`] if encoding fails.
    pub fn mint(
        &self,
        town: &TownId,
        agent: &AgentId,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<Secret> {
        let iat = unix_secs(now);
        let claims = TokenClaims {
            town: town.to_string(),
            agent: agent.to_string(),
            iat,
            exp: iat + ttl.as_secs(),
        };
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.key.expose().as_bytes()),
        )
        .map(Secret::new)
        .map_err(|e| Error::Token {
            message: format!("mint: {e}"),
        })
    }

    /// Verifies a token's signature and expiry (no leeway) and that it names `town`.
    ///
    /// # Errors
    /// [`Error::Token`] for a bad signature, an expired token, a malformed token or one
    /// minted for another town.
    pub fn verify(&self, token: &Secret, town: &TownId) -> Result<TokenClaims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let data = decode::<TokenClaims>(
            token.expose(),
            &DecodingKey::from_secret(self.key.expose().as_bytes()),
            &validation,
        )
        .map_err(|e| Error::Token {
            message: format!("verify: {e}"),
        })?;
        if data.claims.town != town.as_str() {
            return Err(Error::Token {
                message: "verify: token names another town".into(),
            });
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (TownId, AgentId) {
        (TownId::new("t1").unwrap(), AgentId::mayor())
    }

    #[test]
    fn round_trip() {
        let (town, agent) = ids();
        let signer = TokenSigner::new(Secret::random());
        let token = signer
            .mint(&town, &agent, SystemTime::now(), TOKEN_TTL)
            .unwrap();
        let claims = signer.verify(&token, &town).unwrap();
        assert_eq!(claims.agent, "mayor");
        assert_eq!(claims.exp - claims.iat, 8 * 3600);
    }

    #[test]
    fn expired_is_rejected() {
        let (town, agent) = ids();
        let signer = TokenSigner::new(Secret::random());
        let nine_hours_ago = SystemTime::now() - Duration::from_secs(9 * 3600);
        let token = signer
            .mint(&town, &agent, nine_hours_ago, TOKEN_TTL)
            .unwrap();
        let err = signer.verify(&token, &town).unwrap_err().to_string();
        assert!(err.contains("xpired"), "{err}");
    }

    #[test]
    fn wrong_key_town_or_garbage_is_rejected() {
        let (town, agent) = ids();
        let signer = TokenSigner::new(Secret::random());
        let token = signer
            .mint(&town, &agent, SystemTime::now(), TOKEN_TTL)
            .unwrap();
        let other = TokenSigner::new(Secret::random());
        assert!(other.verify(&token, &town).is_err());
        assert!(signer.verify(&token, &TownId::new("t2").unwrap()).is_err());
        assert!(signer.verify(&Secret::new("not.a.jwt"), &town).is_err());
    }

    #[test]
    fn errors_and_debug_do_not_show_the_key() {
        let key = Secret::new("super-secret-key");
        let signer = TokenSigner::new(key);
        assert!(!format!("{signer:?}").contains("super-secret-key"));
    }
}
