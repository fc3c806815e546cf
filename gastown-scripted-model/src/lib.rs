//! A **scripted model server**: a test double of an OpenAI-compatible LLM provider, so an
//! SDK server (`kilo serve`) can run real turns — reply text, tool calls, provider errors —
//! with no network and no API key.
//!
//! It answers `GET /v1/models` and `POST /v1/chat/completions` (with `"stream": true`:
//! `text/event-stream` of `chat.completion.chunk` events, then `data: [DONE]`; without it,
//! one `chat.completion` JSON). Each completion request takes the next [`Reply`] from a
//! queue; when the queue is empty the default reply answers
//! (`"Hello from the scripted model."` in 3 chunks unless changed). Every completion request
//! is recorded ([`RecordedRequest`]).
//!
//! Point kilo at it with [`ScriptedModelServer::provider_entry`] (the `provider.scripted`
//! entry of `KILO_CONFIG_CONTENT`) or [`ScriptedModelServer::config_content`] (the whole
//! JSON), checked against kilo 7.7.9 with `@ai-sdk/openai-compatible`.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use gastown_scripted_model::{Reply, ScriptedModelServer};
//! let server = ScriptedModelServer::start_local().await?;
//! server.push(Reply::text("first answer").with_chunks(2));
//! server.push(Reply::status(400, "bad request"));
//! // A tool-using turn: a call of kilo's bash tool, then the answer to its result.
//! server.push(Reply::bash("git status"));
//! server.push(Reply::text("The tree is clean."));
//! let config = server.config_content(); // KILO_CONFIG_CONTENT for a kilo serve
//! # let _ = config;
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `reply`: [`Reply`], the script of one answer.
//! - `openai`: the wire format (chunks, completions, error bodies).
//! - `record`: [`RecordedRequest`] and the [`ToolResult`]s it carries.
//!
//! # Listening
//! It listens on exactly the address given: `127.0.0.1:0` by default, or, for an SDK server
//! inside a Docker container, the bridge's gateway address (e.g. `172.17.0.1:0`). An
//! unspecified address (`0.0.0.0`, `::`) is refused: nothing listens wider than a test needs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod openai;
mod record;
mod reply;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use openai::TOOL_CALL_ID;
pub use record::{RecordedRequest, ToolResult};
pub use reply::{Reply, BASH_DESCRIPTION, BASH_TOOL, DEFAULT_TEXT};

/// The provider id of the scripted server in an SDK server's config: `scripted`.
pub const PROVIDER_ID: &str = "scripted";
/// The model id the scripted server lists: `scripted-1`.
pub const MODEL_ID: &str = "scripted-1";
/// `provider/model` of the scripted model: `scripted/scripted-1`.
pub const MODEL: &str = "scripted/scripted-1";
/// The placeholder API key in the provider entry (the server accepts any key).
pub const API_KEY: &str = "x";

/// State shared by the handlers and the [`ScriptedModelServer`] handle.
#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<Reply>>,
    default_reply: Mutex<Reply>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Woken on every recorded request, for [`ScriptedModelServer::wait_for_requests`].
    recorded: Notify,
    /// Flipped to `true` once, when the server shuts down: hanging and delayed replies
    /// watch it so a graceful shutdown never waits on them.
    shutdown: watch::Sender<bool>,
}

impl Shared {
    /// Sleeps `d`, or less when the server shuts down first; false when it did.
    async fn sleep(&self, d: Duration) -> bool {
        if d.is_zero() {
            return true;
        }
        let mut rx = self.shutdown.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = rx.wait_for(|down| *down) => false,
        }
    }
}

/// A running scripted model server (a **test double**). Dropping it stops it: the shutdown
/// signal ends hanging replies at once and the server task exits after the open
/// responses end; [`ScriptedModelServer::shutdown`] also waits for that.
pub struct ScriptedModelServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for ScriptedModelServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedModelServer")
            .field("addr", &self.addr)
            .field("queued", &self.shared.queue.lock().len())
            .field("requests", &self.shared.requests.lock().len())
            .finish_non_exhaustive()
    }
}

impl ScriptedModelServer {
    /// Starts a server on `127.0.0.1` with a port chosen by the OS.
    ///
    /// # Errors
    /// The bind failure.
    pub async fn start_local() -> io::Result<Self> {
        Self::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts a server on `addr` (port 0: chosen by the OS; see [`Self::addr`]). Must be
    /// called inside a Tokio runtime; the server runs on a spawned task.
    ///
    /// # Errors
    /// `InvalidInput` for an unspecified address (`0.0.0.0`, `::`); the bind failure.
    pub async fn start(addr: SocketAddr) -> io::Result<Self> {
        if addr.ip().is_unspecified() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to listen on the unspecified address {addr}; name one"),
            ));
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            default_reply: Mutex::new(Reply::default()),
            requests: Mutex::new(Vec::new()),
            recorded: Notify::new(),
            shutdown,
        });
        let app = Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(completions))
            .with_state(shared.clone());
        let mut down = shared.shutdown.subscribe();
        let task = tokio::spawn(async move {
            let signal = async move {
                let _ = down.wait_for(|d| *d).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::warn!(error = %e, "scripted model server stopped with an error");
            }
        });
        Ok(Self {
            addr,
            shared,
            task: Some(task),
        })
    }

    /// The address it listens on (with the port the OS chose).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL, `http://ADDR/v1` (what `options.baseURL` of the provider
    /// entry holds).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues `reply` for the next completion request not yet answered by an earlier one.
    pub fn push(&self, reply: Reply) {
        self.shared.queue.lock().push_back(reply);
    }

    /// Sets the reply given when the queue is empty (initially [`Reply::default`]).
    pub fn set_default(&self, reply: Reply) {
        *self.shared.default_reply.lock() = reply;
    }

    /// How many queued replies are still unused.
    pub fn queued(&self) -> usize {
        self.shared.queue.lock().len()
    }

    /// Every completion request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().clone()
    }

    /// How many completion requests were received.
    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().len()
    }

    /// The `messages` of the last completion request (empty when none came).
    pub fn last_messages(&self) -> Vec<Value> {
        self.shared
            .requests
            .lock()
            .last()
            .map(|r| r.messages.clone())
            .unwrap_or_default()
    }

    /// Waits until at least `n` completion requests were received, for at most `within`;
    /// returns whether they were.
    pub async fn wait_for_requests(&self, n: usize, within: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.shared.recorded.notified();
                if self.request_count() >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    /// The provider entry for an SDK server's config (kilo 7.7.9 / opencode `provider.<id>`):
    /// `{"npm":"@ai-sdk/openai-compatible","name":"Scripted","options":{"baseURL":…,"apiKey":"x"},"models":{"scripted-1":{"name":"Scripted 1"}}}`,
    /// to go under [`PROVIDER_ID`].
    pub fn provider_entry(&self) -> Value {
        provider_entry_for(&self.base_url())
    }

    /// The whole `KILO_CONFIG_CONTENT`: [`MODEL`] as `model` and `small_model`, plus
    /// `provider.scripted` = [`Self::provider_entry`].
    pub fn config_content(&self) -> String {
        json!({
            "model": MODEL,
            "small_model": MODEL,
            "provider": { PROVIDER_ID: self.provider_entry() },
        })
        .to_string()
    }

    /// Stops the server and waits for its task to end: hanging and delayed replies end at
    /// once, streams in progress finish their remaining chunks.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ScriptedModelServer {
    fn drop(&mut self) {
        // The task sees the signal and exits on its own once open responses end; hanging
        // and delayed replies watch the same signal, so none of them outlives it for long.
        self.shared.shutdown.send_replace(true);
    }
}

/// The provider entry for an OpenAI-compatible server at `base_url` (`http://HOST:PORT/v1`);
/// see [`ScriptedModelServer::provider_entry`].
pub fn provider_entry_for(base_url: &str) -> Value {
    json!({
        "npm": "@ai-sdk/openai-compatible",
        "name": "Scripted",
        "options": { "baseURL": base_url, "apiKey": API_KEY },
        "models": { MODEL_ID: { "name": "Scripted 1" } },
    })
}

async fn models() -> Json<Value> {
    Json(openai::models(MODEL_ID))
}

async fn completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let request = RecordedRequest::new(json, bearer);
    let stream = request.stream;
    let model = request.model.clone().unwrap_or_else(|| MODEL_ID.to_owned());
    let reply = {
        let mut queue = shared.queue.lock();
        queue
            .pop_front()
            .unwrap_or_else(|| shared.default_reply.lock().clone())
    };
    shared.requests.lock().push(request);
    shared.recorded.notify_waiters();

    if !shared.sleep(reply.delay).await {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    use reply::ReplyKind as K;
    match reply.kind {
        K::Hang => {
            let mut rx = shared.shutdown.subscribe();
            let _ = rx.wait_for(|down| *down).await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        K::Status { status, message } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, Json(openai::error_body(status.as_u16(), &message))).into_response()
        }
        K::Garbage if stream => sse(
            vec!["{\"choices\": [ not json".to_owned()],
            shared,
            reply.chunk_delay,
        ),
        K::Garbage => (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"choices\": [",
        )
            .into_response(),
        K::Text { text, chunks } if stream => {
            let events = openai::text_stream(&model, &text, chunks);
            sse(to_strings(events), shared, reply.chunk_delay)
        }
        K::Text { text, .. } => Json(openai::text_completion(&model, &text)).into_response(),
        K::ToolCall {
            text,
            name,
            arguments,
        } if stream => {
            let events = openai::tool_call_stream(&model, &text, &name, &arguments);
            sse(to_strings(events), shared, reply.chunk_delay)
        }
        K::ToolCall {
            text,
            name,
            arguments,
        } => Json(openai::tool_call_completion(
            &model, &text, &name, &arguments,
        ))
        .into_response(),
    }
}

fn to_strings(events: Vec<Value>) -> Vec<String> {
    events.into_iter().map(|e| e.to_string()).collect()
}

/// A `text/event-stream` of `data: PAYLOAD` events then `data: [DONE]`, waiting
/// `chunk_delay` before each event after the first (cut short by shutdown).
fn sse(payloads: Vec<String>, shared: Arc<Shared>, chunk_delay: Duration) -> Response {
    let mut events: Vec<String> = payloads
        .into_iter()
        .map(|p| format!("data: {p}\n\n"))
        .collect();
    events.push("data: [DONE]\n\n".to_owned());
    let body = futures::stream::iter(events.into_iter().enumerate()).then(move |(i, e)| {
        let shared = shared.clone();
        async move {
            if i > 0 {
                shared.sleep(chunk_delay).await;
            }
            Ok::<_, Infallible>(e)
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
