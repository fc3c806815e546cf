//! A platform integration's token (e.g. a GitHub App installation token, 1 h lifetime per
//! Kilo Gastown PR #3151): fetched over the network in the background, served from a
//! cache.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::CredentialSource;
use crate::error::Result;
use crate::secret::Secret;

/// Fetches a fresh token from wherever the integration lives. May be slow (network).
#[async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A fresh token, `None` when the integration has none for this town (not installed,
    /// revoked).
    ///
    /// # Errors
    /// Whatever the fetch fails with (transport, auth); never carries a token.
    async fn fetch(&self) -> Result<Option<Secret>>;
}

/// The integration source: [`CredentialSource::refresh`] calls the provider's
/// [`TokenProvider::fetch`] and caches the answer; [`CredentialSource::resolve`] only
/// reads the cache and never calls the provider, so dispatch never waits on the network.
///
/// A fetch that answers `None` clears the cache (the integration is gone); a fetch that
/// fails keeps the cached token (it may still be valid) and returns the error.
pub struct IntegrationTokenProvider {
    provider: Arc<dyn TokenProvider>,
    cache: RwLock<Option<Secret>>,
}

impl IntegrationTokenProvider {
    /// The name this source reports: `integration`.
    pub const NAME: &'static str = "integration";

    /// A source over `provider`, with an empty cache (it resolves to `None` until the
    /// first successful refresh).
    pub fn new(provider: Arc<dyn TokenProvider>) -> Self {
        Self {
            provider,
            cache: RwLock::new(None),
        }
    }

    /// True when the cache holds a token.
    pub fn is_cached(&self) -> bool {
        self.cache.read().is_some()
    }
}

impl fmt::Debug for IntegrationTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntegrationTokenProvider")
            .field("provider", &self.provider)
            .field("cached", &self.is_cached())
            .finish()
    }
}

#[async_trait]
impl CredentialSource for IntegrationTokenProvider {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn resolve(&self) -> Result<Option<Secret>> {
        Ok(self.cache.read().clone())
    }

    async fn refresh(&self) -> Result<()> {
        let fresh = self.provider.fetch().await?;
        *self.cache.write() = fresh;
        Ok(())
    }
}
