//! `SdkClient`'s real-turn calls (`prompt_async`, `session_status`, `messages`) and its
//! `GET /event` stream against an axum server — a TEST DOUBLE of the SDK server whose SSE
//! body each test scripts (well-formed, malformed and unknown events, a clean end, a
//! connection cut mid-stream). The same calls against the real `kilo serve` are in
//! `kilo_server.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use gastown_core::sdk::{
    last_assistant_text, SdkClient, SdkClientOptions, SdkEvent, SessionStatus, MALFORMED_KIND,
};
use gastown_core::{Error, ModelRef, Secret};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const PASSWORD: &str = "s3cr3t-pw";
/// `base64("kilo:s3cr3t-pw")` (`echo -n kilo:s3cr3t-pw | base64`).
const EXPECTED_AUTH: &str = "Basic a2lsbzpzM2NyM3QtcHc=";
/// A failure bound for every await (the double answers in milliseconds).
const GUARD: Duration = Duration::from_secs(10);

/// One chunk of the scripted SSE body, or a cut connection.
type Chunk = Result<String, std::io::Error>;

/// TEST DOUBLE state: the SSE body source for the next `GET /event`, and what
/// `prompt_async` received.
#[derive(Default)]
struct Double {
    sse: Mutex<Option<mpsc::UnboundedReceiver<Chunk>>>,
    prompts: Mutex<Vec<(String, Value)>>,
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(EXPECTED_AUTH)
}

async fn event(State(d): State<Arc<Double>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(rx) = d.sse.lock().take() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let body = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((chunk.map(Bytes::from), rx))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn prompt(
    State(d): State<Arc<Double>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED;
    }
    d.prompts.lock().push((id, body));
    StatusCode::NO_CONTENT
}

async fn status() -> Json<Value> {
    // As kilo 7.7.9 answers during a failing turn (idle sessions are left out).
    Json(json!({
        "ses_busy": {"type": "busy"},
        "ses_retry": {"type": "retry", "attempt": 2, "message": "scripted failure", "next": 1796138820407_i64},
    }))
}

async fn messages(Path(id): Path<String>) -> Response {
    if id != "ses_a" {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    }
    Json(json!([
        {"info": {"id": "msg_1", "role": "user", "time": {"created": 1}},
         "parts": [{"type": "text", "text": "hi"}]},
        {"info": {"id": "msg_2", "role": "assistant", "time": {"created": 2, "completed": 3}, "finish": "stop"},
         "parts": [{"type": "step-start"}, {"type": "text", "text": "Hello from the scripted model."}]},
    ]))
    .into_response()
}

struct Server {
    addr: SocketAddr,
    double: Arc<Double>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start() -> Server {
        let double = Arc::new(Double::default());
        let app = Router::new()
            .route("/event", get(event))
            .route("/session/status", get(status))
            .route("/session/{id}/prompt_async", post(prompt))
            .route("/session/{id}/message", get(messages))
            .with_state(double.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server { addr, double, task }
    }

    /// Scripts the next `GET /event` body; send chunks (or an error: a cut connection)
    /// through the returned sender; dropping it ends the body cleanly.
    fn script_sse(&self) -> mpsc::UnboundedSender<Chunk> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.double.sse.lock() = Some(rx);
        tx
    }

    fn client(&self, password: &str) -> SdkClient {
        let options = SdkClientOptions {
            timeout: Duration::from_secs(2),
        };
        SdkClient::new(
            format!("http://{}", self.addr),
            "kilo",
            Secret::new(password),
            options,
        )
        .unwrap()
    }
}

fn data(json: &str) -> Chunk {
    Ok(format!("data: {json}\n\n"))
}

async fn next(
    stream: &mut futures::stream::BoxStream<'static, gastown_core::Result<SdkEvent>>,
) -> Option<gastown_core::Result<SdkEvent>> {
    tokio::time::timeout(GUARD, stream.next())
        .await
        .expect("the event stream stalled")
}

#[tokio::test]
async fn events_are_parsed_in_order_leniently_and_a_clean_end_ends_the_stream() {
    let server = Server::start().await;
    let tx = server.script_sse();
    let mut events = server.client(PASSWORD).events().await.unwrap();

    tx.send(data(
        r#"{"id":"evt_0","type":"server.connected","properties":{}}"#,
    ))
    .unwrap();
    assert_eq!(
        next(&mut events).await.unwrap().unwrap(),
        SdkEvent::ServerConnected
    );

    // Several events in one chunk, one split across two chunks, a malformed one, an unknown
    // one and an SSE comment.
    tx.send(Ok(concat!(
        "data: {\"type\":\"session.status\",\"properties\":{\"sessionID\":\"ses_a\",\"status\":{\"type\":\"busy\"}}}\n\n",
        ": a comment line is ignored\n\n",
        "data: {this is not json\n\n",
        "data: {\"type\":\"session.turn.open\",\"properties\":{\"sessionID\":\"ses_a\"}}\n\n",
        "data: {\"type\":\"message.part.delta\",\"properties\":{\"sessionID\":\"ses_a\",",
    ).to_owned()))
    .unwrap();
    tx.send(Ok(
        "\"messageID\":\"msg_b\",\"partID\":\"prt_c\",\"field\":\"text\",\"delta\":\"Hello \"}}\n\n".to_owned(),
    ))
    .unwrap();
    tx.send(data(r#"{"type":"session.error","properties":{"sessionID":"ses_a","error":{"name":"APIError","data":{"message":"scripted failure","statusCode":400}}}}"#)).unwrap();
    tx.send(data(
        r#"{"type":"session.status","properties":{"sessionID":"ses_a","status":{"type":"idle"}}}"#,
    ))
    .unwrap();
    tx.send(data(
        r#"{"type":"session.idle","properties":{"sessionID":"ses_a"}}"#,
    ))
    .unwrap();

    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(next(&mut events).await.unwrap().unwrap());
    }
    assert_eq!(
        got[0],
        SdkEvent::SessionStatus {
            session_id: "ses_a".into(),
            status: SessionStatus::Busy
        }
    );
    assert_eq!(
        got[1],
        SdkEvent::Other {
            kind: MALFORMED_KIND.into()
        }
    );
    assert_eq!(
        got[2],
        SdkEvent::Other {
            kind: "session.turn.open".into()
        }
    );
    assert_eq!(
        got[3],
        SdkEvent::MessagePartDelta {
            session_id: "ses_a".into(),
            message_id: "msg_b".into(),
            part_id: "prt_c".into(),
            field: "text".into(),
            delta: "Hello ".into(),
        }
    );
    match &got[4] {
        SdkEvent::SessionError { session_id, error } => {
            assert_eq!(session_id.as_deref(), Some("ses_a"));
            assert_eq!((error.name.as_str(), error.status), ("APIError", Some(400)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        got[5],
        SdkEvent::SessionStatus {
            session_id: "ses_a".into(),
            status: SessionStatus::Idle
        }
    );
    assert_eq!(
        got[6],
        SdkEvent::SessionIdle {
            session_id: "ses_a".into()
        }
    );

    drop(tx); // the server ends the body cleanly
    assert!(
        next(&mut events).await.is_none(),
        "a clean end ends the stream"
    );
}

#[tokio::test]
async fn a_connection_cut_mid_stream_is_one_error_then_the_end() {
    let server = Server::start().await;
    let tx = server.script_sse();
    let mut events = server.client(PASSWORD).events().await.unwrap();
    tx.send(data(r#"{"type":"server.connected","properties":{}}"#))
        .unwrap();
    assert_eq!(
        next(&mut events).await.unwrap().unwrap(),
        SdkEvent::ServerConnected
    );
    // Half an event, then the server aborts the connection.
    tx.send(Ok("data: {\"type\":\"session.st".to_owned()))
        .unwrap();
    tx.send(Err(std::io::Error::other("cut"))).unwrap();
    let err = next(&mut events)
        .await
        .expect("a cut is reported, not swallowed")
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sdk {
                operation: "events",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains(PASSWORD));
    assert!(
        next(&mut events).await.is_none(),
        "the stream ends after its error"
    );
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let server = Server::start().await;
    let tx = server.script_sse();
    let mut events = server.client(PASSWORD).events().await.unwrap();
    tx.send(data(r#"{"type":"server.connected","properties":{}}"#))
        .unwrap();
    assert_eq!(
        next(&mut events).await.unwrap().unwrap(),
        SdkEvent::ServerConnected
    );
    drop(events);
    // The server notices on its next write and drops the body (and its receiver).
    let closed = async {
        while tx
            .send(data(r#"{"type":"server.heartbeat","properties":{}}"#))
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(GUARD, closed)
        .await
        .expect("the connection stayed open after the stream was dropped");
}

#[tokio::test]
async fn events_with_a_wrong_password_is_401() {
    let server = Server::start().await;
    let _tx = server.script_sse();
    let err = server.client("wrong").events().await.err().unwrap();
    assert!(
        matches!(
            err,
            Error::Sdk {
                operation: "events",
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong"));
}

#[tokio::test]
async fn prompt_async_status_and_messages() {
    let server = Server::start().await;
    let client = server.client(PASSWORD);
    let model = ModelRef::parse("scripted/scripted-1").unwrap();
    client.prompt_async("ses_a", &model, "hi").await.unwrap();
    let prompts = server.double.prompts.lock().clone();
    assert_eq!(
        prompts,
        vec![(
            "ses_a".to_owned(),
            json!({
                "model": {"providerID": "scripted", "modelID": "scripted-1"},
                "parts": [{"type": "text", "text": "hi"}],
            })
        )]
    );
    let err = client.prompt_async("../x", &model, "hi").await.unwrap_err();
    assert!(matches!(
        err,
        Error::Sdk {
            operation: "prompt_async",
            status: None,
            ..
        }
    ));
    assert_eq!(
        server.double.prompts.lock().len(),
        1,
        "nothing sent for a bad id"
    );

    let statuses = client.session_status().await.unwrap();
    assert_eq!(statuses["ses_busy"], SessionStatus::Busy);
    assert!(statuses["ses_retry"].is_working());
    assert!(
        matches!(&statuses["ses_retry"], SessionStatus::Retry { attempt: 2, message, .. } if message == "scripted failure")
    );

    let messages = client.messages("ses_a").await.unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        last_assistant_text(&messages),
        Some("Hello from the scripted model.")
    );
    let err = client.messages("ses_missing").await.unwrap_err();
    assert!(matches!(
        err,
        Error::Sdk {
            operation: "messages",
            status: Some(404),
            ..
        }
    ));
}
