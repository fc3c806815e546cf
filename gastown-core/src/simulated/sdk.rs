//! The client side of the simulated SDK servers: an [`SdkConnector`] whose clients call the
//! server behind a URL's port directly, in scripted virtual time, instead of over HTTP.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use tokio::time::Instant;

use super::db::{self, SimMessage};
use super::log::{SdkOp, SimEventKind};
use super::runtime::{kilo_db, Inner};
use crate::config::ModelRef;
use crate::error::{Error, Result};
use crate::ids::TownId;
use crate::kilo::KILO_VERSION;
use crate::path::ContainerPath;
use crate::sdk::{
    validate_session_id, Health, SdkApi, SdkClientOptions, SdkConnector, SdkEvent, SessionInfo,
    SessionMessage, SessionStatus,
};
use crate::secret::Secret;

/// Makes clients of the simulated SDK servers of one
/// [`SimulatedRuntime`](super::SimulatedRuntime) (a **test double** of
/// [`HttpConnector`](crate::sdk::HttpConnector)); get it from
/// [`SimulatedRuntime::sdk_connector`](super::SimulatedRuntime::sdk_connector).
pub(super) struct SimulatedSdkConnector {
    inner: Arc<Inner>,
}

impl SimulatedSdkConnector {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        Self { inner }
    }
}

impl fmt::Debug for SimulatedSdkConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimulatedSdkConnector")
    }
}

fn sdk_error(
    operation: &'static str,
    message: String,
    timed_out: bool,
    status: Option<u16>,
) -> Error {
    Error::Sdk {
        operation,
        message,
        timed_out,
        status,
    }
}

impl SdkConnector for SimulatedSdkConnector {
    /// Checks the arguments as the HTTP client does (an `http://` URL with an explicit port
    /// and no credentials, query or fragment; a username without `:`; a non-zero timeout).
    /// The server behind the port is looked up on every call, not here.
    ///
    /// # Errors
    /// [`Error::Sdk`] (operation `new`) for anything the HTTP client would reject.
    fn connect(
        &self,
        base_url: String,
        username: String,
        password: Secret,
        options: SdkClientOptions,
    ) -> Result<Arc<dyn SdkApi>> {
        let invalid = |message: String| sdk_error("new", message, false, None);
        let url = reqwest::Url::parse(&base_url)
            .map_err(|e| invalid(format!("base URL {base_url:?} is not a URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(invalid(format!("base URL {base_url:?} must use http://")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "base URL must not carry credentials; pass the username and password".into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(format!(
                "base URL {base_url:?} must not have a query or fragment"
            )));
        }
        let port = url
            .port()
            .ok_or_else(|| invalid(format!("base URL {base_url:?} has no port")))?;
        if username.is_empty() || username.chars().any(|c| c == ':' || c.is_control()) {
            return Err(invalid(format!(
                "username {username:?} must be non-empty without ':' or control characters"
            )));
        }
        if options.timeout.is_zero() {
            return Err(invalid("the per-call timeout must be non-zero".into()));
        }
        Ok(Arc::new(SimulatedSdkClient {
            inner: self.inner.clone(),
            base_url: url.as_str().trim_end_matches('/').to_owned(),
            port,
            username,
            password,
            timeout: options.timeout,
        }))
    }
}

/// A client of one simulated SDK server (a **test double** of
/// [`SdkClient`](crate::sdk::SdkClient)).
struct SimulatedSdkClient {
    inner: Arc<Inner>,
    base_url: String,
    port: u16,
    username: String,
    password: Secret,
    timeout: Duration,
}

impl fmt::Debug for SimulatedSdkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedSdkClient")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

/// A failed call, and whether waiting may help (as the HTTP client decides for
/// `wait_healthy`: transport failures, timeouts and 5xx yes; 4xx no).
struct Failure {
    error: Error,
    retryable: bool,
}

/// The server behind a port, as a call sees it.
struct Target {
    town: TownId,
    data_dir: ContainerPath,
    listening: bool,
    username: String,
    password: Option<Secret>,
}

impl SimulatedSdkClient {
    fn target(&self) -> Option<Target> {
        let state = self.inner.state.lock();
        let pid = state.ports.get(&self.port)?;
        let p = state.procs.get(pid)?;
        let server = p.server.as_ref()?;
        Some(Target {
            town: p.town.clone(),
            data_dir: server.data_dir.clone(),
            listening: server.listening && p.status.is_alive(),
            username: server.username.clone(),
            password: server.password.clone(),
        })
    }

    fn fail(&self, op: SdkOp, message: &str, timed_out: bool, status: Option<u16>) -> Failure {
        Failure {
            error: sdk_error(
                op.name(),
                format!("{}: {message}", op.request()),
                timed_out,
                status,
            ),
            retryable: status.is_none_or(|s| s >= 500),
        }
    }

    /// One call: refused at once when nothing listens; otherwise charged `cost` (bounded by
    /// the per-call timeout), then authenticated, then `body` runs on the server's data dir.
    async fn call<T>(
        &self,
        op: SdkOp,
        cost: impl FnOnce(&super::SimScript) -> Duration,
        body: impl FnOnce(&Inner, &TownId, &ContainerPath) -> std::result::Result<T, (u16, String)>,
    ) -> std::result::Result<T, Failure> {
        let inner = &self.inner;
        let start = inner.offset();
        let refused = |t: Option<&Target>| {
            if let Some(t) = t {
                let kind = SimEventKind::SdkCall {
                    op,
                    port: self.port,
                    data_dir: t.data_dir.clone(),
                };
                inner.record(start, &t.town, kind, false);
            }
            self.fail(
                op,
                "connection refused (the simulated server is not listening)",
                false,
                None,
            )
        };
        let target = match self.target() {
            Some(t) if t.listening => t,
            other => return Err(refused(other.as_ref())),
        };
        let kind = SimEventKind::SdkCall {
            op,
            port: self.port,
            data_dir: target.data_dir.clone(),
        };
        let cost = inner.script(cost);
        // A frozen server reads nothing until its container is resumed.
        let answered = async {
            inner.wait_thawed(&target.town).await;
            Inner::charge(cost).await;
        };
        if tokio::time::timeout(self.timeout, answered).await.is_err() {
            inner.record(start, &target.town, kind, false);
            let message = format!("no complete answer within {} ms", self.timeout.as_millis());
            return Err(self.fail(op, &message, true, None));
        }
        if !self.target().is_some_and(|t| t.listening) {
            inner.record(start, &target.town, kind, false);
            return Err(self.fail(
                op,
                "connection reset (the simulated server stopped)",
                false,
                None,
            ));
        }
        if let Some(expected) = &target.password {
            // Compared whole, as basic auth is; nothing of either value goes into the error.
            if self.username != target.username || self.password.expose() != expected.expose() {
                inner.record(start, &target.town, kind, false);
                return Err(self.fail(op, "401 Unauthorized", false, Some(401)));
            }
        }
        let result = body(inner, &target.town, &target.data_dir);
        inner.record(start, &target.town, kind, result.is_ok());
        result.map_err(|(status, message)| {
            self.fail(op, &format!("{status} {message}"), false, Some(status))
        })
    }
}

/// Reads, changes and rewrites the `kilo.db` under `data_dir` in one step.
fn with_db<T>(
    inner: &Inner,
    town: &TownId,
    data_dir: &ContainerPath,
    change: impl FnOnce(
        &mut db::DbContents,
        &mut super::state::State,
        i64,
    ) -> std::result::Result<(T, bool), (u16, String)>,
) -> std::result::Result<T, (u16, String)> {
    let internal = |e: Error| (500, e.to_string());
    let path = kilo_db(data_dir).map_err(internal)?;
    let _db = inner.db_lock.lock();
    let existing = {
        let mut state = inner.state.lock();
        let t = state.running(town).map_err(internal)?;
        t.files.get(&path).cloned()
    };
    let mut contents = match existing {
        Some(bytes) => db::decode(&bytes).map_err(internal)?,
        None => db::DbContents::default(),
    };
    let now_ms = i64::try_from(inner.offset().as_millis()).unwrap_or(i64::MAX / 2);
    let (value, changed) = change(&mut contents, &mut inner.state.lock(), now_ms)?;
    if changed {
        // Built outside the state lock (SQLite takes a few ms); `db_lock` keeps the
        // read-modify-write whole.
        let bytes = db::encode(&contents).map_err(internal)?;
        let mut state = inner.state.lock();
        let t = state.running(town).map_err(internal)?;
        t.files.insert(path, bytes);
    }
    Ok(value)
}

#[async_trait]
impl SdkApi for SimulatedSdkClient {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn health(&self) -> Result<Health> {
        self.health_attempt().await.map_err(|f| f.error)
    }

    async fn list_sessions(&self) -> Result<Vec<SessionInfo>> {
        self.call(
            SdkOp::ListSessions,
            |s| s.sdk_list_sessions,
            |inner, town, dir| {
                with_db(inner, town, dir, |db, _, _| {
                    let mut sessions = db.sessions.clone();
                    // Newest first, as kilo lists them.
                    sessions.sort_by(|a, b| (b.updated_ms, &b.id).cmp(&(a.updated_ms, &a.id)));
                    Ok((sessions, false))
                })
            },
        )
        .await
        .map_err(|f| f.error)
    }

    async fn create_session(&self, title: &str) -> Result<SessionInfo> {
        self.call(
            SdkOp::CreateSession,
            |s| s.sdk_create_session,
            |inner, town, dir| {
                with_db(inner, town, dir, |db, state, now_ms| {
                    let ms = state.timestamp(now_ms);
                    let session = SessionInfo {
                        id: state.session_id(),
                        title: title.to_owned(),
                        created_ms: ms,
                        updated_ms: ms,
                    };
                    db.sessions.push(session.clone());
                    Ok((session, true))
                })
            },
        )
        .await
        .map_err(|f| f.error)
    }

    async fn send_no_reply(
        &self,
        session_id: &str,
        model: &ModelRef,
        text: &str,
    ) -> Result<String> {
        const OPERATION: &str = "send_no_reply";
        if let Err(Error::Sdk { message, .. }) = validate_session_id(session_id) {
            return Err(sdk_error(OPERATION, message, false, None));
        }
        self.call(
            SdkOp::SendNoReply,
            |s| s.sdk_send_message,
            |inner, town, dir| {
                with_db(inner, town, dir, |db, state, now_ms| {
                    let Some(session) = db.sessions.iter_mut().find(|s| s.id == session_id) else {
                        return Err((404, format!("Not Found: no session {session_id}")));
                    };
                    let ms = state.timestamp(now_ms);
                    session.updated_ms = ms;
                    let id = state.message_id();
                    db.messages.push(SimMessage {
                        id: id.clone(),
                        session_id: session_id.to_owned(),
                        provider_id: model.provider_id.clone(),
                        model_id: model.model_id.clone(),
                        text: text.to_owned(),
                        created_ms: ms,
                    });
                    Ok((id, true))
                })
            },
        )
        .await
        .map_err(|f| f.error)
    }

    async fn prompt_async(&self, session_id: &str, model: &ModelRef, text: &str) -> Result<()> {
        self.sim_prompt_async(session_id, model, text).await
    }

    /// No turn ever runs in the simulated server: `true` for a listening server.
    async fn abort(&self, session_id: &str) -> Result<bool> {
        if let Err(Error::Sdk { message, .. }) = validate_session_id(session_id) {
            return Err(sdk_error("abort", message, false, None));
        }
        self.sim_session_status().map(|_| true)
    }

    async fn session_status(&self) -> Result<BTreeMap<String, SessionStatus>> {
        self.sim_session_status()
    }

    async fn messages(&self, session_id: &str) -> Result<Vec<SessionMessage>> {
        self.sim_messages(session_id)
    }

    async fn events(&self) -> Result<BoxStream<'static, Result<SdkEvent>>> {
        self.sim_events()
    }

    /// As the HTTP client's: polls every `poll` (at least 1 ms) for at most `within`;
    /// refusals, timeouts and 5xx are retried, a 4xx (a wrong password) returns at once.
    async fn wait_healthy(&self, within: Duration, poll: Duration) -> Result<Health> {
        let poll = poll.max(Duration::from_millis(1));
        let deadline = Instant::now() + within;
        let mut last = String::from("no attempt finished");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, self.health_attempt()).await {
                Ok(Ok(health)) => return Ok(health),
                Ok(Err(failure)) if failure.retryable => last = failure.error.to_string(),
                Ok(Err(failure)) => return Err(failure.error),
                Err(_) => break,
            }
            if Instant::now() + poll >= deadline {
                break;
            }
            tokio::time::sleep(poll).await;
        }
        Err(sdk_error(
            "wait_healthy",
            format!(
                "not healthy within {} ms; last failure: {last}",
                within.as_millis()
            ),
            true,
            None,
        ))
    }
}

/// The real-turn calls, minimal: the simulated server runs no model, so a turn records the
/// user message and ends at once with no reply; these calls are not logged as SDK calls
/// (so alarm tests counting health probes and status polls are not disturbed by them,
/// except `prompt_async`, which is charged and logged as a message send).
impl SimulatedSdkClient {
    fn refused(&self, operation: &'static str) -> Error {
        sdk_error(
            operation,
            "connection refused (the simulated server is not listening)".into(),
            false,
            None,
        )
    }

    /// `prompt_async`: stores `text` as a user message (charged as `send_no_reply`); no
    /// assistant reply follows.
    async fn sim_prompt_async(&self, session_id: &str, model: &ModelRef, text: &str) -> Result<()> {
        const OPERATION: &str = "prompt_async";
        if let Err(Error::Sdk { message, .. }) = validate_session_id(session_id) {
            return Err(sdk_error(OPERATION, message, false, None));
        }
        SdkApi::send_no_reply(self, session_id, model, text)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                Error::Sdk {
                    message,
                    timed_out,
                    status,
                    ..
                } => sdk_error(OPERATION, message, timed_out, status),
                other => other,
            })
    }

    /// `session_status`: every session is idle (`{}`), as kilo answers between turns.
    fn sim_session_status(&self) -> Result<BTreeMap<String, SessionStatus>> {
        match self.target() {
            Some(t) if t.listening => Ok(BTreeMap::new()),
            _ => Err(self.refused("session_status")),
        }
    }

    /// `messages`: the session's stored (user) messages, oldest first.
    fn sim_messages(&self, session_id: &str) -> Result<Vec<SessionMessage>> {
        const OPERATION: &str = "messages";
        if let Err(Error::Sdk { message, .. }) = validate_session_id(session_id) {
            return Err(sdk_error(OPERATION, message, false, None));
        }
        let target = match self.target() {
            Some(t) if t.listening => t,
            _ => return Err(self.refused(OPERATION)),
        };
        with_db(&self.inner, &target.town, &target.data_dir, |db, _, _| {
            if !db.sessions.iter().any(|s| s.id == session_id) {
                return Err((404, format!("Not Found: no session {session_id}")));
            }
            let mut list: Vec<&SimMessage> = db
                .messages
                .iter()
                .filter(|m| m.session_id == session_id)
                .collect();
            list.sort_by_key(|m| m.created_ms);
            let messages = list
                .into_iter()
                .map(|m| SessionMessage {
                    id: m.id.clone(),
                    role: "user".to_owned(),
                    created_ms: m.created_ms,
                    completed_ms: None,
                    finish: None,
                    error: None,
                    text: m.text.clone(),
                })
                .collect();
            Ok((messages, false))
        })
        .map_err(|(status, message)| sdk_error(OPERATION, message, false, Some(status)))
    }

    /// `events`: `server.connected`, then nothing (no turn ever runs).
    fn sim_events(&self) -> Result<BoxStream<'static, Result<SdkEvent>>> {
        match self.target() {
            Some(t) if t.listening => {
                Ok(
                    futures::stream::once(async { Ok(SdkEvent::ServerConnected) })
                        .chain(futures::stream::pending())
                        .boxed(),
                )
            }
            _ => Err(self.refused("events")),
        }
    }
}

impl SimulatedSdkClient {
    async fn health_attempt(&self) -> std::result::Result<Health, Failure> {
        self.call(
            SdkOp::Health,
            |s| s.sdk_health,
            |_, _, _| {
                Ok(Health {
                    healthy: true,
                    version: format!("{KILO_VERSION}-simulated"),
                })
            },
        )
        .await
    }
}
