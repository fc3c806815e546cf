//! The scripted model server over real HTTP (reqwest): stream format, tool calls, errors,
//! garbage, hangs, recording, and shutdown.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use gastown_scripted_model::{
    Reply, ScriptedModelServer, ToolResult, BASH_DESCRIPTION, BASH_TOOL, DEFAULT_TEXT, MODEL,
    MODEL_ID, TOOL_CALL_ID,
};
use serde_json::{json, Value};

/// A failure bound for every request (the server answers in milliseconds).
const GUARD: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(GUARD)
        .build()
        .unwrap()
}

fn body(stream: bool, text: &str) -> Value {
    json!({
        "model": MODEL_ID,
        "stream": stream,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": text}]},
        ],
        "tools": [{"type": "function", "function": {"name": "bash", "parameters": {}}}],
    })
}

async fn post(server: &ScriptedModelServer, stream: bool, text: &str) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth("key-123")
        .json(&body(stream, text))
        .send()
        .await
        .unwrap()
}

/// The `data:` payloads of an SSE body, in order.
fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .expect("every event is one data line")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn streams_the_default_text_as_chunks_then_done() {
    let server = ScriptedModelServer::start_local().await.unwrap();
    assert!(server.addr().ip().is_loopback());
    let response = post(&server, true, "hi").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    // role chunk + 3 content chunks + finish chunk
    assert_eq!(chunks.len(), 5, "{chunks:?}");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], MODEL_ID);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, DEFAULT_TEXT);
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert!(chunks[4]["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let recorded = server.requests();
    assert_eq!(server.request_count(), 1);
    assert!(recorded[0].stream);
    assert_eq!(recorded[0].model.as_deref(), Some(MODEL_ID));
    assert_eq!(recorded[0].last_user_text().as_deref(), Some("hi"));
    assert_eq!(recorded[0].tool_names, vec!["bash"]);
    assert_eq!(recorded[0].bearer_token(), Some("key-123"));
    assert!(
        !format!("{recorded:?}").contains("key-123"),
        "Debug hides the key"
    );
    assert_eq!(server.last_messages().len(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn replies_follow_the_queue_then_the_default() {
    let server = ScriptedModelServer::start_local().await.unwrap();
    server.push(Reply::text("one").with_chunks(1));
    server.push(Reply::text("two"));
    server.set_default(Reply::text("fallback"));
    let mut texts = Vec::new();
    for _ in 0..3 {
        let v: Value = post(&server, false, "x").await.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        texts.push(
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(texts, ["one", "two", "fallback"]);
    assert_eq!(server.queued(), 0);
    let models: Value = client()
        .get(format!("{}/models", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], MODEL_ID);
}

#[tokio::test]
async fn tool_call_streams_name_and_arguments_with_finish_reason_tool_calls() {
    let server = ScriptedModelServer::start_local().await.unwrap();
    let args = json!({"command": "ls -la", "description": "list"});
    server.push(Reply::tool_call("bash", args.clone()).with_text("Let me look."));
    server.push(Reply::tool_call("bash", args.clone()));
    let data = sse_data(&post(&server, true, "x").await.text().await.unwrap());
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let mut name = None;
    let mut arguments = String::new();
    let mut text = String::new();
    for c in &chunks {
        let delta = &c["choices"][0]["delta"];
        text.push_str(delta["content"].as_str().unwrap_or(""));
        if let Some(calls) = delta["tool_calls"].as_array() {
            let f = &calls[0]["function"];
            if let Some(n) = f["name"].as_str() {
                name = Some(n.to_owned());
                assert_eq!(calls[0]["id"], "call_scripted_1");
            }
            arguments.push_str(f["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(text, "Let me look.");
    assert_eq!(name.as_deref(), Some("bash"));
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), args);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    let v: Value = post(&server, false, "x").await.json().await.unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "bash");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        args
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

/// The two requests of a tool-using turn as kilo makes them: the prompt, answered with a
/// bash call; then the call's result sent back as a `tool` message, answered with text.
#[tokio::test]
async fn a_bash_turn_is_a_tool_call_then_the_reply_to_its_result() {
    let server = ScriptedModelServer::start_local().await.unwrap();
    server.push(Reply::bash("git commit -q -m x"));
    server.push(Reply::text("Committed."));

    let v: Value = post(&server, false, "commit it")
        .await
        .json()
        .await
        .unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], TOOL_CALL_ID);
    assert_eq!(call["function"]["name"], BASH_TOOL);
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        arguments,
        json!({"command": "git commit -q -m x", "description": BASH_DESCRIPTION})
    );

    let mut second = body(false, "commit it");
    let messages = second["messages"].as_array_mut().unwrap();
    messages.push(v["choices"][0]["message"].clone());
    messages.push(json!({"role": "tool", "tool_call_id": TOOL_CALL_ID, "content": "(no output)"}));
    let v: Value = client()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&second)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Committed.");

    let recorded = server.requests();
    assert_eq!(recorded.len(), 2);
    assert!(recorded[0].tool_results().is_empty());
    assert_eq!(
        recorded[1].tool_results(),
        vec![ToolResult {
            call_id: TOOL_CALL_ID.to_owned(),
            content: "(no output)".to_owned(),
        }]
    );
}

#[tokio::test]
async fn error_status_and_garbage_bodies() {
    let server = ScriptedModelServer::start_local().await.unwrap();
    server.push(Reply::status(500, "scripted failure"));
    server.push(Reply::garbage());
    server.push(Reply::garbage());
    let r = post(&server, true, "x").await;
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "scripted failure");

    let r = post(&server, false, "x").await;
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());

    let r = post(&server, true, "x").await;
    let data = sse_data(&r.text().await.unwrap());
    assert!(serde_json::from_str::<Value>(&data[0]).is_err());
    assert_eq!(server.request_count(), 3);
}

#[tokio::test]
async fn a_hang_times_the_client_out_and_shutdown_still_finishes() {
    let server = ScriptedModelServer::start_local().await.unwrap();
    server.push(Reply::hang());
    let short = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = format!("{}/chat/completions", server.base_url());
    let started = std::time::Instant::now();
    let err = short
        .post(&url)
        .json(&body(true, "x"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < GUARD);
    assert!(server.wait_for_requests(1, GUARD).await);

    // A second hang still in flight when the server shuts down: shutdown ends it.
    server.push(Reply::hang());
    let pending = tokio::spawn({
        let url = url.clone();
        async move { client().post(&url).json(&body(true, "x")).send().await }
    });
    assert!(server.wait_for_requests(2, GUARD).await);
    tokio::time::timeout(GUARD, server.shutdown())
        .await
        .expect("shutdown does not wait on a hanging reply");
    let answer = tokio::time::timeout(GUARD, pending).await.unwrap().unwrap();
    assert!(answer.is_err() || answer.unwrap().status() == 503);
}

#[tokio::test]
async fn delays_are_applied() {
    let server = ScriptedModelServer::start_local().await.unwrap();
    server.push(
        Reply::text("slow")
            .with_delay(Duration::from_millis(200))
            .with_chunk_delay(Duration::from_millis(50)),
    );
    let started = std::time::Instant::now();
    let text = post(&server, true, "x").await.text().await.unwrap();
    // 200 ms before the head + 5 events after the first × 50 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn drop_stops_listening_and_unspecified_addresses_are_refused() {
    let server = ScriptedModelServer::start_local().await.unwrap();
    let addr = server.addr();
    drop(server);
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "{addr} still accepts connections after drop");

    let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let err = ScriptedModelServer::start(any).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn config_content_is_the_kilo_provider_config() {
    let server = ScriptedModelServer::start_local().await.unwrap();
    let config: Value = serde_json::from_str(&server.config_content()).unwrap();
    let port = server.addr().port();
    assert_eq!(
        config,
        json!({
            "model": MODEL, "small_model": MODEL,
            "provider": {"scripted": {
                "npm": "@ai-sdk/openai-compatible", "name": "Scripted",
                "options": {"baseURL": format!("http://127.0.0.1:{port}/v1"), "apiKey": "x"},
                "models": {"scripted-1": {"name": "Scripted 1"}},
            }},
        })
    );
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_keep_alive_connections() {
    let server = ScriptedModelServer::start_local().await.unwrap();
    let keep_alive = client();
    let url = format!("{}/chat/completions", server.base_url());
    let r = keep_alive
        .post(&url)
        .json(&body(true, "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();
    // `keep_alive` still holds its pooled connection open here.
    tokio::time::timeout(Duration::from_secs(2), server.shutdown())
        .await
        .expect("shutdown waited on an idle keep-alive connection");
    drop(keep_alive);
}
