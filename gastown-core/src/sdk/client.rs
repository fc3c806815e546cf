//! [`SdkClient`]: the calls gastown makes to an SDK server.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures::stream::BoxStream;
use reqwest::{Method, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::event::{sse_events, SdkEvent};
use super::failure::{Call, Failure};
use super::message::{parse_status_map, SessionMessage, SessionStatus};
use super::session_id;
use super::types::{Health, SessionInfo, WireMessage, WireSession};
use crate::config::ModelRef;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// The per-call timeout when none is configured: 5 s. A local SDK server answers these
/// calls in milliseconds once up; the bound only stops a wedged server from hanging a
/// start.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest successful body read, in bytes (16 MiB): far above any session list, low
/// enough that a runaway server cannot exhaust memory.
const MAX_BODY_BYTES: usize = 16 << 20;
/// The most of an error body read, in bytes; only an excerpt goes into the error anyway.
const MAX_ERROR_BODY_BYTES: usize = 4 << 10;

/// Options of an [`SdkClient`].
#[derive(Debug, Clone)]
pub struct SdkClientOptions {
    /// The time one call may take, from connecting to the last byte of the body
    /// ([`DEFAULT_TIMEOUT`], 5 s, by default). Must be non-zero.
    pub timeout: Duration,
}

impl Default for SdkClientOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// An HTTP client of one SDK server (`kilo serve` / `opencode serve`).
///
/// Every call sends HTTP basic auth and is bounded by [`SdkClientOptions::timeout`];
/// every failure is an [`Error::Sdk`] whose message never carries the password. Proxies
/// from the environment are ignored (the server is local) and redirects are not followed.
/// Cloning is cheap and shares the connection pool.
#[derive(Clone)]
pub struct SdkClient {
    http: reqwest::Client,
    base_url: String,
    username: String,
    password: Secret,
    options: SdkClientOptions,
}

impl fmt::Debug for SdkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkClient")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SdkClient {
    /// A client of the server at `base_url` (`http://127.0.0.1:4096`, optionally with a
    /// path prefix; a trailing `/` is dropped), authenticating as `username` (kilo: `kilo`)
    /// with `password` (the server's `KILO_SERVER_PASSWORD`).
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `new`) when `base_url` is not an `http://` URL (this crate
    /// is built without TLS), carries credentials, a query or a fragment; when `username`
    /// is empty or holds `:` or control characters; when the timeout is zero; or when the
    /// HTTP client cannot be built.
    pub fn new(
        base_url: impl Into<String>,
        username: impl Into<String>,
        password: Secret,
        options: SdkClientOptions,
    ) -> Result<SdkClient> {
        let base_url = base_url.into();
        let username = username.into();
        let invalid = |message: String| Error::Sdk {
            operation: "new",
            message,
            timed_out: false,
            status: None,
        };
        let url = reqwest::Url::parse(&base_url)
            .map_err(|e| invalid(format!("base URL {base_url:?} is not a URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(invalid(format!(
                "base URL {base_url:?} must use http:// (built without TLS)"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Not echoed: it may hold a password.
            return Err(invalid(
                "base URL must not carry credentials; pass the username and password".into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(format!(
                "base URL {base_url:?} must not have a query or fragment"
            )));
        }
        if username.is_empty() || username.chars().any(|c| c == ':' || c.is_control()) {
            return Err(invalid(format!(
                "username {username:?} must be non-empty without ':' or control characters"
            )));
        }
        if options.timeout.is_zero() {
            return Err(invalid("the per-call timeout must be non-zero".into()));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("building the HTTP client: {e}")))?;
        Ok(SdkClient {
            http,
            base_url: url.as_str().trim_end_matches('/').to_owned(),
            username,
            password,
            options,
        })
    }

    /// The server's base URL, normalised, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /global/health`.
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `health`): transport failure, timeout (`timed_out`),
    /// non-2xx (`status`), or a body that is not `{"healthy":bool,"version":string}`.
    pub async fn health(&self) -> Result<Health> {
        Ok(self.health_attempt().await?)
    }

    /// `GET /session`: the server's sessions, in the server's order (see
    /// [`newest_session`](super::newest_session)).
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `list_sessions`), as for [`SdkClient::health`].
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>> {
        let wire: Vec<WireSession> = self
            .call("list_sessions", Method::GET, "/session", None)
            .await?;
        Ok(wire.into_iter().map(SessionInfo::from).collect())
    }

    /// `POST /session {"title": title}`: a new session.
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `create_session`), as for [`SdkClient::health`].
    pub async fn create_session(&self, title: &str) -> Result<SessionInfo> {
        let body = json!({ "title": title });
        let wire: WireSession = self
            .call("create_session", Method::POST, "/session", Some(body))
            .await?;
        Ok(wire.into())
    }

    /// `POST /session/{id}/message` with `noReply: true`: records `text` as a user message
    /// carrying `model` without starting an LLM turn (how a new model is pushed onto a
    /// resumed session). Returns the new message's id (`msg_…`).
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `send_no_reply`): an invalid `session_id` (see
    /// [`validate_session_id`](super::validate_session_id); nothing is sent), or as for
    /// [`SdkClient::health`] (an unknown session is a non-2xx status).
    pub async fn send_no_reply(
        &self,
        session_id: &str,
        model: &ModelRef,
        text: &str,
    ) -> Result<String> {
        const OPERATION: &str = "send_no_reply";
        session_id::check(OPERATION, session_id)?;
        let body = json!({
            "noReply": true,
            "model": { "providerID": model.provider_id, "modelID": model.model_id },
            "parts": [{ "type": "text", "text": text }],
        });
        let path = format!("/session/{session_id}/message");
        let message: WireMessage = self
            .call(OPERATION, Method::POST, &path, Some(body))
            .await?;
        Ok(message.info.id)
    }

    /// `POST /session/{id}/prompt_async {"model":{"providerID","modelID"},"parts":[{"type":"text","text"}]}`:
    /// starts a real LLM turn on `session_id` with `model` and returns once the server
    /// accepted it (kilo 7.7.9 answers `204 No Content` at once). Follow the turn with
    /// [`SdkClient::events`] or [`SdkClient::session_status`]; read the reply with
    /// [`SdkClient::messages`]. A provider failure does not fail this call: it shows as a
    /// `session.error` event (4xx) or a `retry` status (5xx, 429).
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `prompt_async`): an invalid `session_id` (nothing is sent),
    /// or as for [`SdkClient::health`] (an unknown session is a non-2xx status).
    pub async fn prompt_async(&self, session_id: &str, model: &ModelRef, text: &str) -> Result<()> {
        const OPERATION: &str = "prompt_async";
        session_id::check(OPERATION, session_id)?;
        let body = json!({
            "model": { "providerID": model.provider_id, "modelID": model.model_id },
            "parts": [{ "type": "text", "text": text }],
        });
        let path = format!("/session/{session_id}/prompt_async");
        self.call_raw(OPERATION, Method::POST, &path, Some(body))
            .await?;
        Ok(())
    }

    /// `POST /session/{id}/abort`: stops the session's running turn (e.g. one kilo keeps
    /// retrying against a provider answering 5xx). Returns the server's answer (`true`
    /// when kilo 7.7.9 accepted the abort; also `true` with no turn running).
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `abort`): an invalid `session_id` (nothing is sent), or as
    /// for [`SdkClient::health`].
    pub async fn abort(&self, session_id: &str) -> Result<bool> {
        const OPERATION: &str = "abort";
        session_id::check(OPERATION, session_id)?;
        let path = format!("/session/{session_id}/abort");
        Ok(self.call(OPERATION, Method::POST, &path, None).await?)
    }

    /// `GET /session/status`: the status of every session that is not idle, by session id
    /// (kilo 7.7.9 leaves idle sessions out: an idle server answers `{}`).
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `session_status`), as for [`SdkClient::health`]; a body that
    /// is not a JSON object is malformed.
    pub async fn session_status(&self) -> Result<BTreeMap<String, SessionStatus>> {
        const OPERATION: &str = "session_status";
        let v: Value = self
            .call(OPERATION, Method::GET, "/session/status", None)
            .await?;
        parse_status_map(&v).ok_or_else(|| {
            let call = Call {
                operation: OPERATION,
                method: "GET",
                path: "/session/status",
            };
            call.malformed("not a JSON object", v.to_string().as_bytes())
                .error
        })
    }

    /// `GET /session/{id}/message`: the session's messages, oldest first (see
    /// [`last_assistant_text`](super::last_assistant_text) for the reply of the last turn).
    /// Elements without `info.id` are skipped.
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `messages`): an invalid `session_id` (nothing is sent), or
    /// as for [`SdkClient::health`]; a body that is not a JSON array is malformed.
    pub async fn messages(&self, session_id: &str) -> Result<Vec<SessionMessage>> {
        const OPERATION: &str = "messages";
        session_id::check(OPERATION, session_id)?;
        let path = format!("/session/{session_id}/message");
        let v: Value = self.call(OPERATION, Method::GET, &path, None).await?;
        let Some(list) = v.as_array() else {
            let call = Call {
                operation: OPERATION,
                method: "GET",
                path: &path,
            };
            return Err(call
                .malformed("not a JSON array", v.to_string().as_bytes())
                .error);
        };
        Ok(list.iter().filter_map(SessionMessage::from_json).collect())
    }

    /// `GET /event`: subscribes to the server's event stream (SSE, basic auth). Returns once
    /// the response head arrived (bounded by the per-call timeout); the stream itself has
    /// no timeout — kilo 7.7.9 sends `server.heartbeat` every 10 s, so a caller can treat a
    /// longer silence as a dead stream. Each SSE event's data is parsed with
    /// [`SdkEvent::parse`]. The stream ends when the server closes it; a transport or
    /// framing failure is yielded once as an [`Error::Sdk`] (operation `events`) and ends
    /// it. Dropping the stream closes the connection. It does not reconnect.
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `events`): transport failure, timeout before the head,
    /// non-2xx status (401 for a wrong password).
    pub async fn events(&self) -> Result<BoxStream<'static, Result<SdkEvent>>> {
        let call = Call {
            operation: "events",
            method: "GET",
            path: "/event",
        };
        let request = self
            .http
            .get(format!("{}{}", self.base_url, call.path))
            .basic_auth(&self.username, Some(self.password.expose()))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let timeout = self.options.timeout;
        let mut response = tokio::time::timeout(timeout, request.send())
            .await
            .map_err(|_| call.timed_out(timeout.as_millis()).error)?
            .map_err(|e| call.transport(e).error)?;
        let status = response.status();
        if !status.is_success() {
            let body =
                tokio::time::timeout(timeout, read_capped(&mut response, MAX_ERROR_BODY_BYTES))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .map(|(body, _)| body)
                    .unwrap_or_default();
            return Err(call.status(status, &body).error);
        }
        Ok(sse_events(response.bytes_stream()))
    }

    /// Polls `GET /global/health` every `poll` until the server says it is healthy, for at
    /// most `within`. Connection failures, timeouts, 5xx answers and `healthy: false` are
    /// retried (a booting server refuses connections); a 4xx answer (e.g. 401, a wrong
    /// password) or a malformed body is returned at once, since waiting will not fix it.
    /// A `poll` below 1 ms is raised to 1 ms. Each attempt is bounded by both the per-call
    /// timeout and what is left of `within`.
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `wait_healthy`, `timed_out: true`) naming the last
    /// failure when `within` runs out; the attempt's own error when it is not retryable.
    pub async fn wait_healthy(&self, within: Duration, poll: Duration) -> Result<Health> {
        let poll = poll.max(Duration::from_millis(1));
        let deadline = Instant::now() + within;
        let mut last = String::from("no attempt finished");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, self.health_attempt()).await {
                Ok(Ok(health)) if health.healthy => return Ok(health),
                Ok(Ok(health)) => {
                    last = format!("server {} reported healthy=false", health.version)
                }
                Ok(Err(failure)) if failure.retryable => last = failure.error.to_string(),
                Ok(Err(failure)) => return Err(failure.error),
                Err(_) => break,
            }
            let now = Instant::now();
            if now + poll >= deadline {
                break;
            }
            tokio::time::sleep(poll).await;
        }
        Err(Error::Sdk {
            operation: "wait_healthy",
            message: format!(
                "{} not healthy within {} ms; last: {last}",
                self.base_url,
                within.as_millis()
            ),
            timed_out: true,
            status: None,
        })
    }

    async fn health_attempt(&self) -> Result<Health, Failure> {
        self.call("health", Method::GET, "/global/health", None)
            .await
    }

    /// One request whose 2xx body is JSON of type `T`, bounded as a whole by the per-call
    /// timeout.
    async fn call<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, Failure> {
        let raw = self.call_raw(operation, method.clone(), path, body).await?;
        let call = Call {
            operation,
            method: method.as_str(),
            path,
        };
        serde_json::from_slice(&raw).map_err(|e| call.malformed(e, &raw))
    }

    /// One request, bounded as a whole by the per-call timeout; returns the 2xx body.
    async fn call_raw(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Vec<u8>, Failure> {
        let call = Call {
            operation,
            method: method.as_str(),
            path,
        };
        let timeout = self.options.timeout;
        tokio::time::timeout(timeout, self.exchange(&call, method.clone(), body))
            .await
            .unwrap_or_else(|_| Err(call.timed_out(timeout.as_millis())))
    }

    async fn exchange(
        &self,
        call: &Call<'_>,
        method: Method,
        body: Option<Value>,
    ) -> Result<Vec<u8>, Failure> {
        let url = format!("{}{}", self.base_url, call.path);
        let mut request = self
            .http
            .request(method, url)
            .basic_auth(&self.username, Some(self.password.expose()))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let mut response = request.send().await.map_err(|e| call.transport(e))?;
        let status = response.status();
        if !status.is_success() {
            // Best effort: the status is the news; a body that fails to arrive is just empty.
            let body = read_capped(&mut response, MAX_ERROR_BODY_BYTES)
                .await
                .map(|(body, _)| body)
                .unwrap_or_default();
            return Err(call.status(status, &body));
        }
        let (body, cut) = read_capped(&mut response, MAX_BODY_BYTES)
            .await
            .map_err(|e| call.transport(e))?;
        if cut {
            return Err(call.malformed(
                format_args!("body larger than {MAX_BODY_BYTES} bytes"),
                &body,
            ));
        }
        Ok(body)
    }
}

/// Reads at most `cap` bytes of the body; the flag says whether more was left unread.
async fn read_capped(response: &mut Response, cap: usize) -> reqwest::Result<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}
