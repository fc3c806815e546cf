//! [`CredentialChain`]: sources tried in order, first token wins.

use std::fmt;
use std::sync::Arc;

use futures::future::join_all;

use super::{CredentialSource, IntegrationTokenProvider, PersonalToken, StoredToken};
use crate::error::Result;
use crate::secret::Secret;

/// What [`CredentialChain::resolve`] found, and how. `Debug` and `Display` never show the
/// token.
#[derive(Debug, Clone, Default)]
pub struct CredentialResolution {
    /// The first token a source had, `None` when none had one.
    pub token: Option<Secret>,
    /// The name of the source that gave `token`.
    pub source: Option<&'static str>,
    /// The names of the sources consulted, in order (the last one gave the token when
    /// there is one; sources after it were not consulted).
    pub tried: Vec<&'static str>,
    /// The sources that failed, with their error messages (they were skipped).
    pub errors: Vec<(&'static str, String)>,
}

impl fmt::Display for CredentialResolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Some(source) => write!(f, "token from {source}")?,
            None => f.write_str("no token")?,
        }
        write!(f, " (tried: {})", self.tried.join(", "))?;
        for (source, message) in &self.errors {
            write!(f, "; {source} failed: {message}")?;
        }
        Ok(())
    }
}

/// Credential sources tried in order. Cheap to share (`Arc`s inside).
#[derive(Debug, Clone, Default)]
pub struct CredentialChain {
    sources: Vec<Arc<dyn CredentialSource>>,
}

impl CredentialChain {
    /// A chain that tries `sources` in the order given.
    pub fn new(sources: Vec<Arc<dyn CredentialSource>>) -> Self {
        Self { sources }
    }

    /// The default chain: personal → integration → stored, skipping the ones not given.
    /// A user's own token wins; then the integration's, refreshed in the background so it
    /// never lapses; the stored token comes last because nothing refreshes it (Kilo
    /// Gastown PR #3151: preferring it handed out expired tokens).
    pub fn standard(
        personal: Option<PersonalToken>,
        integration: Option<IntegrationTokenProvider>,
        stored: Option<StoredToken>,
    ) -> Self {
        let mut sources: Vec<Arc<dyn CredentialSource>> = Vec::new();
        if let Some(p) = personal {
            sources.push(Arc::new(p));
        }
        if let Some(i) = integration {
            sources.push(Arc::new(i));
        }
        if let Some(s) = stored {
            sources.push(Arc::new(s));
        }
        Self::new(sources)
    }

    /// The sources' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.sources.iter().map(|s| s.name()).collect()
    }

    /// Tries each source's [`CredentialSource::resolve`] in order and stops at the first
    /// token. A failing source is recorded in [`CredentialResolution::errors`] and
    /// skipped. Cheap: no source refreshes here.
    pub async fn resolve(&self) -> CredentialResolution {
        let mut resolution = CredentialResolution::default();
        for source in &self.sources {
            let name = source.name();
            resolution.tried.push(name);
            match source.resolve().await {
                Ok(Some(token)) => {
                    tracing::debug!(source = name, "credential resolved");
                    resolution.token = Some(token);
                    resolution.source = Some(name);
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(source = name, error = %e, "credential source failed");
                    resolution.errors.push((name, e.to_string()));
                }
            }
        }
        if resolution.token.is_none() {
            tracing::debug!(tried = ?resolution.tried, "no credential");
        }
        resolution
    }

    /// Runs every source's [`CredentialSource::refresh`] concurrently; returns each
    /// source's name and outcome, in chain order. For background use only (it may wait
    /// on the network; the actors' alarm calls it every 45 min, inside the 1 h life of an
    /// integration token — ARCHITECTURE.md, *Lifecycle timings*). It never fails as a
    /// whole: a source's error is its entry's `Err` (also logged at `warn`), and that
    /// source keeps its previous token.
    pub async fn refresh_all(&self) -> Vec<(&'static str, Result<()>)> {
        let outcomes = join_all(self.sources.iter().map(|s| s.refresh())).await;
        self.sources
            .iter()
            .map(|s| s.name())
            .zip(outcomes)
            .inspect(|(name, outcome)| {
                if let Err(e) = outcome {
                    tracing::warn!(source = name, error = %e, "credential refresh failed");
                }
            })
            .collect()
    }
}
