//! [`SdkApi`]: the calls gastown makes on an agent's SDK server, as an object-safe trait,
//! and [`SdkConnector`]: how a client for a server is made.
//!
//! [`SdkClient`] (HTTP, via [`HttpConnector`]) is the real implementation; a simulated
//! runtime pairs with its own connector so benches and tests can run the same actor code in
//! virtual time.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::client::{SdkClient, SdkClientOptions};
use super::event::SdkEvent;
use super::message::{SessionMessage, SessionStatus};
use super::types::{Health, SessionInfo};
use crate::config::ModelRef;
use crate::error::Result;
use crate::secret::Secret;

/// The SDK server calls gastown makes. See [`SdkClient`] for the HTTP semantics (per-call
/// timeouts, basic auth, errors as [`Error::Sdk`](crate::Error::Sdk)).
#[async_trait]
pub trait SdkApi: Send + Sync + fmt::Debug {
    /// The server's base URL.
    fn base_url(&self) -> &str;
    /// `GET /global/health`.
    async fn health(&self) -> Result<Health>;
    /// `GET /session`.
    async fn list_sessions(&self) -> Result<Vec<SessionInfo>>;
    /// `POST /session`.
    async fn create_session(&self, title: &str) -> Result<SessionInfo>;
    /// `POST /session/{id}/message` with `noReply: true`; returns the message id.
    async fn send_no_reply(&self, session_id: &str, model: &ModelRef, text: &str)
        -> Result<String>;
    /// Polls health every `poll` until healthy, for at most `within`.
    async fn wait_healthy(&self, within: Duration, poll: Duration) -> Result<Health>;
    /// `POST /session/{id}/prompt_async`: starts a real turn; returns once it is accepted.
    async fn prompt_async(&self, session_id: &str, model: &ModelRef, text: &str) -> Result<()>;
    /// `POST /session/{id}/abort`: stops the session's running turn.
    async fn abort(&self, session_id: &str) -> Result<bool>;
    /// `GET /session/status`: the sessions that are not idle, by id.
    async fn session_status(&self) -> Result<BTreeMap<String, SessionStatus>>;
    /// `GET /session/{id}/message`: the session's messages, oldest first.
    async fn messages(&self, session_id: &str) -> Result<Vec<SessionMessage>>;
    /// `GET /event`: the server's event stream (one connection; no reconnection).
    async fn events(&self) -> Result<BoxStream<'static, Result<SdkEvent>>>;
}

#[async_trait]
impl SdkApi for SdkClient {
    fn base_url(&self) -> &str {
        SdkClient::base_url(self)
    }
    async fn health(&self) -> Result<Health> {
        SdkClient::health(self).await
    }
    async fn list_sessions(&self) -> Result<Vec<SessionInfo>> {
        SdkClient::list_sessions(self).await
    }
    async fn create_session(&self, title: &str) -> Result<SessionInfo> {
        SdkClient::create_session(self, title).await
    }
    async fn send_no_reply(
        &self,
        session_id: &str,
        model: &ModelRef,
        text: &str,
    ) -> Result<String> {
        SdkClient::send_no_reply(self, session_id, model, text).await
    }
    async fn wait_healthy(&self, within: Duration, poll: Duration) -> Result<Health> {
        SdkClient::wait_healthy(self, within, poll).await
    }
    async fn prompt_async(&self, session_id: &str, model: &ModelRef, text: &str) -> Result<()> {
        SdkClient::prompt_async(self, session_id, model, text).await
    }
    async fn abort(&self, session_id: &str) -> Result<bool> {
        SdkClient::abort(self, session_id).await
    }
    async fn session_status(&self) -> Result<BTreeMap<String, SessionStatus>> {
        SdkClient::session_status(self).await
    }
    async fn messages(&self, session_id: &str) -> Result<Vec<SessionMessage>> {
        SdkClient::messages(self, session_id).await
    }
    async fn events(&self) -> Result<BoxStream<'static, Result<SdkEvent>>> {
        SdkClient::events(self).await
    }
}

/// Makes the client of an SDK server at an endpoint.
pub trait SdkConnector: Send + Sync + fmt::Debug {
    /// A client of the server at `base_url`, authenticating as `username` with `password`.
    ///
    /// # Errors
    /// [`Error::Sdk`](crate::Error::Sdk) for an unusable URL or options.
    fn connect(
        &self,
        base_url: String,
        username: String,
        password: Secret,
        options: SdkClientOptions,
    ) -> Result<Arc<dyn SdkApi>>;
}

/// The real connector: an HTTP [`SdkClient`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpConnector;

impl SdkConnector for HttpConnector {
    fn connect(
        &self,
        base_url: String,
        username: String,
        password: Secret,
        options: SdkClientOptions,
    ) -> Result<Arc<dyn SdkApi>> {
        Ok(Arc::new(SdkClient::new(
            base_url, username, password, options,
        )?))
    }
}
