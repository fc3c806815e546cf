//! Credentials for the agents' git hosting (the `GH_TOKEN`/`GIT_TOKEN` an agent's env
//! carries), resolved by a chain of sources (ARCHITECTURE.md, *Lifecycle timings*).
//!
//! Kilo Gastown refreshed git credentials on the mayor's critical path (the Gastown
//! cold-start analysis, recommendation 4), and preferred a stored token over the
//! integration's, so long-lived towns handed out an expired token (Kilo Gastown PR #3151).
//! Here:
//!
//! - [`CredentialSource::resolve`] is cheap (a configured value, a cache, a local store
//!   read): it runs at every dispatch, so a start always gets the freshest token known;
//! - [`CredentialSource::refresh`] may be slow (network) and only ever runs in the
//!   background (the alarm tick), never on the `ensure_mayor` path;
//! - [`CredentialChain`] tries its sources in order and reports which it tried.
//!
//! Sources: [`PersonalToken`] (a configured token), [`IntegrationTokenProvider`] (a cache
//! over a slow [`TokenProvider`]) and [`StoredToken`] (a secret in the town store). The
//! default order, [`CredentialChain::standard`], is personal → integration → stored.
//!
//! No token ever shows in `Debug` output, `Display` output or an error.

mod chain;
mod integration;
mod personal;
mod stored;

use async_trait::async_trait;

use crate::error::Result;
use crate::secret::Secret;

pub use chain::{CredentialChain, CredentialResolution};
pub use integration::{IntegrationTokenProvider, TokenProvider};
pub use personal::PersonalToken;
pub use stored::StoredToken;

/// One place a credential can come from.
#[async_trait]
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    /// The source's name as reported in a [`CredentialResolution`] (`personal`,
    /// `integration`, `stored`, …).
    fn name(&self) -> &'static str;

    /// The source's current token, `None` when it has none. Must be cheap — local or
    /// cached, no network — since it runs at every dispatch.
    ///
    /// # Errors
    /// Whatever the source fails with (a store read, …); the chain records it and goes on
    /// to the next source. Errors never carry the token.
    async fn resolve(&self) -> Result<Option<Secret>>;

    /// Brings the source's token up to date; may be slow (network). Runs only in the
    /// background. The default does nothing.
    ///
    /// # Errors
    /// Whatever the refresh fails with; the previous token is kept.
    async fn refresh(&self) -> Result<()> {
        Ok(())
    }
}
