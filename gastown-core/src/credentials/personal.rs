//! A token configured by the user (a personal access token): first in the default chain.

use async_trait::async_trait;

use super::CredentialSource;
use crate::error::Result;
use crate::secret::Secret;

/// A configured token. An empty value resolves to `None`, so an unset variable read as
/// `""` does not shadow the sources after it.
#[derive(Debug, Clone)]
pub struct PersonalToken {
    token: Secret,
}

impl PersonalToken {
    /// The name this source reports: `personal`.
    pub const NAME: &'static str = "personal";

    /// A source that resolves to `token`.
    pub fn new(token: Secret) -> Self {
        Self { token }
    }
}

#[async_trait]
impl CredentialSource for PersonalToken {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn resolve(&self) -> Result<Option<Secret>> {
        Ok((!self.token.expose().is_empty()).then(|| self.token.clone()))
    }
}
