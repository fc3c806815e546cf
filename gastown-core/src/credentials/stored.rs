//! A token kept in the town store (e.g. written when a rig was created): last in the
//! default chain, since nothing keeps it fresh.

use async_trait::async_trait;

use super::CredentialSource;
use crate::error::Result;
use crate::secret::Secret;
use crate::store::TownStore;

/// A secret read from the [`TownStore`] by key at every resolve (one short local SQLite
/// read). Refresh does nothing: whoever writes the key keeps it current.
#[derive(Debug, Clone)]
pub struct StoredToken {
    store: TownStore,
    key: String,
}

impl StoredToken {
    /// The name this source reports: `stored`.
    pub const NAME: &'static str = "stored";

    /// A source reading the secret under `key` in `store`.
    pub fn new(store: TownStore, key: impl Into<String>) -> Self {
        Self {
            store,
            key: key.into(),
        }
    }

    /// The store key it reads.
    pub fn key(&self) -> &str {
        &self.key
    }
}

#[async_trait]
impl CredentialSource for StoredToken {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the read fails.
    async fn resolve(&self) -> Result<Option<Secret>> {
        Ok(self
            .store
            .secret_get(&self.key)?
            .filter(|s| !s.expose().is_empty()))
    }
}
