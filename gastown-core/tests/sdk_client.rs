//! `SdkClient` against a scripted HTTP server — a TEST DOUBLE (see [`ScriptedServer`]),
//! used for what a real kilo will not do on demand: garbage bodies, hangs, 500s, counting
//! connections. The same client against the real `kilo serve` is in `kilo_server.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gastown_core::sdk::{
    newest_session, parse_listening_line, validate_session_id, SdkClient, SdkClientOptions,
    SessionInfo,
};
use gastown_core::{Error, ModelRef, Secret};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const PASSWORD: &str = "s3cr3t-pw";
/// `base64("kilo:s3cr3t-pw")`, computed once with `echo -n kilo:s3cr3t-pw | base64`.
const EXPECTED_AUTH: &str = "Basic a2lsbzpzM2NyM3QtcHc=";
const HEALTHY: &str = r#"{"healthy":true,"version":"7.7.9"}"#;

// ---------------------------------------------------------------------------------------
// The test double.
// ---------------------------------------------------------------------------------------

/// What the scripted server does with one connection.
#[derive(Clone)]
enum Reply {
    /// Reads the request, writes these raw bytes, closes.
    Raw(String),
    /// Reads the request, then holds the connection open without a byte of answer.
    Hang,
    /// Reads the request, writes these raw bytes, then holds the connection open.
    RawThenHang(String),
}

/// A request as the double received it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    /// Header names lower-cased.
    headers: BTreeMap<String, String>,
    body: String,
}

/// TEST DOUBLE of an SDK server: a tokio `TcpListener` on 127.0.0.1:0 answering each
/// connection with the next canned HTTP/1.1 [`Reply`] (the last one repeats), recording
/// every request and counting connections. Dropping it stops it and every connection.
struct ScriptedServer {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedServer {
    async fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, replies)
    }

    fn serve(listener: TcpListener, replies: Vec<Reply>) -> Self {
        assert!(!replies.is_empty());
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (rec, conns) = (received.clone(), connections.clone());
        let task = tokio::spawn(async move {
            // Owned here so aborting this task drops (and aborts) every connection task.
            let mut handlers = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let n = conns.fetch_add(1, Ordering::SeqCst);
                let reply = replies[n.min(replies.len() - 1)].clone();
                handlers.spawn(handle(stream, reply, rec.clone()));
            }
        });
        Self {
            addr,
            received,
            connections,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(mut stream: TcpStream, reply: Reply, received: Arc<Mutex<Vec<Received>>>) {
    if let Some(request) = read_request(&mut stream).await {
        received.lock().push(request);
    }
    match reply {
        Reply::Raw(bytes) => {
            let _ = stream.write_all(bytes.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Reply::Hang => {
            // Keep the socket open until the server is dropped.
            std::future::pending::<()>().await;
        }
        Reply::RawThenHang(bytes) => {
            let _ = stream.write_all(bytes.as_bytes()).await;
            std::future::pending::<()>().await;
        }
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}

/// A complete HTTP/1.1 response with a JSON content type.
fn http(status: u16, reason: &str, body: &str) -> Reply {
    Reply::Raw(format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

fn ok(body: &str) -> Reply {
    http(200, "OK", body)
}

// ---------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------

fn client_with(url: &str, timeout: Duration) -> SdkClient {
    SdkClient::new(
        url,
        "kilo",
        Secret::new(PASSWORD),
        SdkClientOptions { timeout },
    )
    .unwrap()
}

fn client(server: &ScriptedServer) -> SdkClient {
    client_with(&server.url(), Duration::from_secs(10))
}

/// The fields of an `Error::Sdk`, panicking on any other variant.
fn sdk_parts(err: &Error) -> (&'static str, &str, bool, Option<u16>) {
    match err {
        Error::Sdk {
            operation,
            message,
            timed_out,
            status,
        } => (operation, message, *timed_out, *status),
        other => panic!("expected Error::Sdk, got {other:?}"),
    }
}

fn assert_no_password(err: &Error, client: &SdkClient) {
    for shown in [format!("{err:?}"), err.to_string(), format!("{client:?}")] {
        assert!(!shown.contains(PASSWORD), "password leaked: {shown}");
        assert!(!shown.contains("a2lsbzpz"), "auth header leaked: {shown}");
    }
}

/// A port nothing listens on (bound, then released).
async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

const SESSION: &str = r#"{"id":"ses_a","slug":"x","title":"mayor","version":"7.7.9",
    "time":{"created":1000,"updated":2000}}"#;

// ---------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn health_sends_basic_auth_and_parses_the_answer() {
    let server = ScriptedServer::start(vec![ok(HEALTHY)]).await;
    let c = client(&server);
    let h = c.health().await.unwrap();
    assert!(h.healthy);
    assert_eq!(h.version, "7.7.9");
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("GET", "/global/health")
    );
    assert_eq!(got[0].headers["authorization"], EXPECTED_AUTH);
}

#[tokio::test]
async fn garbage_body_is_a_malformed_error_and_the_client_still_works() {
    let server = ScriptedServer::start(vec![
        ok("<html>definitely not json"),
        ok(r#"{"healthy":"yes"}"#),
        ok(HEALTHY),
    ])
    .await;
    let c = client(&server);
    for _ in 0..2 {
        let err = c.health().await.unwrap_err();
        let (op, msg, timed_out, status) = sdk_parts(&err);
        assert_eq!(op, "health");
        assert!(msg.contains("malformed response"), "{msg}");
        assert!(!timed_out);
        assert_eq!(status, None);
        assert_no_password(&err, &c);
    }
    // Nothing was lost: the same client answers the next call.
    assert!(c.health().await.unwrap().healthy);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = ScriptedServer::start(vec![Reply::Hang]).await;
    let c = client_with(&server.url(), Duration::from_millis(200));
    let err = c.list_sessions().await.unwrap_err();
    let (op, msg, timed_out, status) = sdk_parts(&err);
    assert_eq!(op, "list_sessions");
    assert!(timed_out, "{msg}");
    assert_eq!(status, None);
    assert_no_password(&err, &c);
}

#[tokio::test]
async fn a_body_that_stops_halfway_times_out() {
    let partial =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n[{";
    let server = ScriptedServer::start(vec![Reply::RawThenHang(partial.to_owned())]).await;
    let c = client_with(&server.url(), Duration::from_millis(200));
    let err = c.list_sessions().await.unwrap_err();
    let (op, msg, timed_out, status) = sdk_parts(&err);
    assert_eq!(op, "list_sessions");
    assert!(timed_out, "the per-call timeout covers the body too: {msg}");
    assert_eq!(status, None);
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_not_a_panic() {
    let partial =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n[{";
    let server = ScriptedServer::start(vec![Reply::Raw(partial.to_owned()), ok("[]")]).await;
    let c = client(&server);
    let err = c.list_sessions().await.unwrap_err();
    let (op, _, timed_out, _) = sdk_parts(&err);
    assert_eq!(op, "list_sessions");
    assert!(!timed_out);
    assert!(c.list_sessions().await.unwrap().is_empty());
}

#[tokio::test]
async fn unauthorized_carries_status_401() {
    let server = ScriptedServer::start(vec![Reply::Raw(
        "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Basic realm=\"Secure Area\"\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
            .to_owned(),
    )])
    .await;
    let c = client(&server);
    let err = c.health().await.unwrap_err();
    let (op, msg, timed_out, status) = sdk_parts(&err);
    assert_eq!((op, timed_out, status), ("health", false, Some(401)));
    assert!(msg.contains("401"), "{msg}");
    assert_no_password(&err, &c);
}

#[tokio::test]
async fn a_long_error_body_is_truncated() {
    let body = format!("{{\"error\":\"{}\"}}", "x".repeat(5000));
    let server = ScriptedServer::start(vec![http(500, "Internal Server Error", &body)]).await;
    let c = client(&server);
    let err = c.create_session("mayor").await.unwrap_err();
    eprintln!("500: {err}");
    let (op, msg, _, status) = sdk_parts(&err);
    assert_eq!((op, status), ("create_session", Some(500)));
    assert!(msg.contains("xxxx") && msg.ends_with('…'), "{msg}");
    assert!(msg.chars().count() < 400, "{} chars", msg.chars().count());
    assert_no_password(&err, &c);
}

#[tokio::test]
async fn a_connection_refused_error_names_no_secret() {
    let port = free_port().await;
    let c = client_with(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5));
    let err = c.health().await.unwrap_err();
    eprintln!("refused: {err}");
    let (_, _, timed_out, status) = sdk_parts(&err);
    assert!(!timed_out);
    assert_eq!(status, None);
    assert_no_password(&err, &c);
}

#[tokio::test]
async fn invalid_session_ids_are_rejected_before_any_request() {
    let server = ScriptedServer::start(vec![ok("{}")]).await;
    let c = client(&server);
    let model = ModelRef::parse("anthropic/claude-sonnet-4.6").unwrap();
    for bad in [
        "",
        "../../global/health",
        "ses a",
        "ses/x",
        "ses?x=1",
        &"a".repeat(129),
    ] {
        let err = c.send_no_reply(bad, &model, "hi").await.unwrap_err();
        let (op, msg, timed_out, status) = sdk_parts(&err);
        assert_eq!((op, timed_out, status), ("send_no_reply", false, None));
        assert!(msg.contains("invalid session id"), "{msg}");
        assert!(validate_session_id(bad).is_err());
    }
    assert_eq!(server.connections(), 0, "no request may be sent");
}

#[tokio::test]
async fn send_no_reply_posts_the_documented_body_and_returns_the_message_id() {
    let answer = r#"{"info":{"id":"msg_1","role":"user","sessionID":"ses_a"},"parts":[]}"#;
    let server = ScriptedServer::start(vec![ok(answer)]).await;
    let c = client(&server);
    let model = ModelRef::parse("anthropic/claude-sonnet-4.6").unwrap();
    let id = c.send_no_reply("ses_a", &model, "hello").await.unwrap();
    assert_eq!(id, "msg_1");
    let got = server.received();
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/session/ses_a/message")
    );
    assert_eq!(got[0].headers["authorization"], EXPECTED_AUTH);
    let body: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "noReply": true,
            "model": {"providerID": "anthropic", "modelID": "claude-sonnet-4.6"},
            "parts": [{"type": "text", "text": "hello"}],
        })
    );
}

#[tokio::test]
async fn sessions_are_listed_created_and_the_newest_is_picked() {
    let list = r#"[
        {"id":"ses_old","title":"a","time":{"created":1,"updated":50}},
        {"id":"ses_new","title":"b","time":{"created":2,"updated":900}},
        {"id":"ses_mid","time":{"created":3,"updated":300}}
    ]"#;
    let server = ScriptedServer::start(vec![ok(list), ok(SESSION)]).await;
    let c = client(&server);
    let sessions = c.list_sessions().await.unwrap();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions[2].title, "", "a missing title is empty");
    assert_eq!(newest_session(&sessions).unwrap().id, "ses_new");

    let created = c.create_session("mayor").await.unwrap();
    assert_eq!(
        created,
        SessionInfo {
            id: "ses_a".into(),
            title: "mayor".into(),
            created_ms: 1000,
            updated_ms: 2000,
        }
    );
    let got = server.received();
    assert_eq!(
        (got[1].method.as_str(), got[1].path.as_str()),
        ("POST", "/session")
    );
    let body: serde_json::Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(body, serde_json::json!({"title": "mayor"}));
}

#[tokio::test]
async fn wait_healthy_retries_5xx_and_unhealthy_answers() {
    let server = ScriptedServer::start(vec![
        http(503, "Service Unavailable", ""),
        ok(r#"{"healthy":false,"version":"7.7.9"}"#),
        ok(HEALTHY),
    ])
    .await;
    let c = client(&server);
    let h = c
        .wait_healthy(Duration::from_secs(30), Duration::from_millis(10))
        .await
        .unwrap();
    assert!(h.healthy);
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn wait_healthy_retries_while_the_port_refuses_connections() {
    let port = free_port().await;
    let c = client_with(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5));
    let waiter = tokio::spawn(async move {
        c.wait_healthy(Duration::from_secs(60), Duration::from_millis(20))
            .await
    });
    // Let a few attempts be refused, then "finish booting".
    tokio::time::sleep(Duration::from_millis(150)).await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let server = ScriptedServer::serve(listener, vec![ok(HEALTHY)]);
    let h = waiter.await.unwrap().unwrap();
    assert!(h.healthy);
    assert!(server.connections() >= 1);
}

#[tokio::test]
async fn wait_healthy_gives_up_with_timed_out() {
    let port = free_port().await;
    let c = client_with(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5));
    let err = c
        .wait_healthy(Duration::from_millis(300), Duration::from_millis(20))
        .await
        .unwrap_err();
    eprintln!("gave up: {err}");
    let (op, msg, timed_out, status) = sdk_parts(&err);
    assert_eq!((op, timed_out, status), ("wait_healthy", true, None));
    assert!(msg.contains("last:"), "{msg}");
    assert_no_password(&err, &c);
}

#[tokio::test]
async fn wait_healthy_does_not_retry_a_refused_password() {
    let server = ScriptedServer::start(vec![http(401, "Unauthorized", "")]).await;
    let c = client(&server);
    // A generous window: a retrying implementation would sit here and then report
    // timed_out, which the assertion below rejects.
    let err = c
        .wait_healthy(Duration::from_secs(30), Duration::from_millis(10))
        .await
        .unwrap_err();
    let (_, _, timed_out, status) = sdk_parts(&err);
    assert_eq!((timed_out, status), (false, Some(401)));
    assert_eq!(server.connections(), 1);
}

#[test]
fn new_rejects_bad_configuration_without_echoing_credentials() {
    let opts = SdkClientOptions::default;
    let pw = || Secret::new(PASSWORD);
    for url in [
        "not a url",
        "ftp://127.0.0.1:1",
        "https://127.0.0.1:1",
        "http://h/?q=1",
    ] {
        let err = SdkClient::new(url, "kilo", pw(), opts()).unwrap_err();
        assert_eq!(sdk_parts(&err).0, "new", "{url}");
    }
    let err = SdkClient::new("http://kilo:hunter2@127.0.0.1:1", "kilo", pw(), opts()).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(SdkClient::new("http://127.0.0.1:1", "ki:lo", pw(), opts()).is_err());
    assert!(SdkClient::new("http://127.0.0.1:1", "", pw(), opts()).is_err());
    let zero = SdkClientOptions {
        timeout: Duration::ZERO,
    };
    assert!(SdkClient::new("http://127.0.0.1:1", "kilo", pw(), zero).is_err());

    let c = SdkClient::new("http://127.0.0.1:4096/", "kilo", pw(), opts()).unwrap();
    assert_eq!(c.base_url(), "http://127.0.0.1:4096");
    let shown = format!("{c:?}");
    assert!(
        !shown.contains(PASSWORD) && shown.contains("127.0.0.1:4096"),
        "{shown}"
    );
}

#[test]
fn default_timeout_is_five_seconds() {
    assert_eq!(SdkClientOptions::default().timeout, Duration::from_secs(5));
}

#[test]
fn parse_listening_line_cases() {
    let some = |h: &str, p: u16| Some((h.to_owned(), p));
    assert_eq!(
        parse_listening_line("kilo server listening on http://127.0.0.1:4096"),
        some("127.0.0.1", 4096)
    );
    assert_eq!(
        parse_listening_line("opencode server listening on http://127.0.0.1:46167\n"),
        some("127.0.0.1", 46167)
    );
    assert_eq!(
        parse_listening_line("INFO listening on http://localhost:8080/ (ready)"),
        some("localhost", 8080)
    );
    assert_eq!(
        parse_listening_line("listening on http://[::1]:9000"),
        some("[::1]", 9000)
    );
    for none in [
        "",
        "kilo server starting",
        "listening on https://127.0.0.1:4096",
        "listening on http://127.0.0.1",
        "listening on http://127.0.0.1:",
        "listening on http://127.0.0.1:0",
        "listening on http://127.0.0.1:65536",
        "listening on http://127.0.0.1:40x6",
        "listening on http://:4096",
    ] {
        assert_eq!(parse_listening_line(none), None, "{none:?}");
    }
}
