//! The OpenAI chat-completions wire format the scripted server speaks, as far as
//! `@ai-sdk/openai-compatible` (the provider package kilo 7.7.9 loads for a custom
//! provider) reads it: `chat.completion` objects, `chat.completion.chunk` SSE events and
//! `data: [DONE]`.

use serde_json::{json, Value};

use crate::reply::split_chunks;

/// The id every completion carries; clients do not interpret it.
const COMPLETION_ID: &str = "chatcmpl-scripted";
/// The id of every scripted tool call (`tool_calls[].id`): `call_scripted_1`. A client
/// answers it with a `tool` message whose `tool_call_id` is this id.
pub const TOOL_CALL_ID: &str = "call_scripted_1";

/// `GET /v1/models`: the one model, `{"object":"list","data":[{"id":…,"object":"model",…}]}`.
pub(crate) fn models(model_id: &str) -> Value {
    json!({
        "object": "list",
        "data": [{ "id": model_id, "object": "model", "created": 0, "owned_by": "scripted" }],
    })
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    })
}

/// The usage object sent with the last chunk and in non-stream answers; token counts are
/// rough (characters / 4) and only there because clients display them.
fn usage(text_len: usize) -> Value {
    let completion = (text_len / 4).max(1);
    json!({ "prompt_tokens": 1, "completion_tokens": completion, "total_tokens": completion + 1 })
}

/// The SSE `data:` payloads of a streamed text answer: a role chunk, `chunks` content
/// chunks, a finish chunk (`stop`) with usage. `[DONE]` is added by the caller.
pub(crate) fn text_stream(model: &str, text: &str, chunks: usize) -> Vec<Value> {
    let mut out = vec![chunk(
        model,
        json!({ "role": "assistant", "content": "" }),
        None,
    )];
    for piece in split_chunks(text, chunks) {
        out.push(chunk(model, json!({ "content": piece }), None));
    }
    let mut last = chunk(model, json!({}), Some("stop"));
    last["usage"] = usage(text.len());
    out.push(last);
    out
}

/// The SSE payloads of a streamed tool call: role, optional text, the call's head (id, name,
/// empty arguments), the arguments as one JSON string, a finish chunk (`tool_calls`).
pub(crate) fn tool_call_stream(
    model: &str,
    text: &str,
    name: &str,
    arguments: &Value,
) -> Vec<Value> {
    let mut out = vec![chunk(
        model,
        json!({ "role": "assistant", "content": "" }),
        None,
    )];
    if !text.is_empty() {
        out.push(chunk(model, json!({ "content": text }), None));
    }
    out.push(chunk(
        model,
        json!({ "tool_calls": [{
            "index": 0, "id": TOOL_CALL_ID, "type": "function",
            "function": { "name": name, "arguments": "" },
        }]}),
        None,
    ));
    out.push(chunk(
        model,
        json!({ "tool_calls": [{ "index": 0, "function": { "arguments": arguments.to_string() } }]}),
        None,
    ));
    let mut last = chunk(model, json!({}), Some("tool_calls"));
    last["usage"] = usage(text.len());
    out.push(last);
    out
}

/// A non-stream `chat.completion` with `message` and `finish_reason`.
fn completion(model: &str, message: Value, finish: &str, text_len: usize) -> Value {
    json!({
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
        "usage": usage(text_len),
    })
}

/// A non-stream text answer.
pub(crate) fn text_completion(model: &str, text: &str) -> Value {
    completion(
        model,
        json!({ "role": "assistant", "content": text }),
        "stop",
        text.len(),
    )
}

/// A non-stream tool-call answer.
pub(crate) fn tool_call_completion(
    model: &str,
    text: &str,
    name: &str,
    arguments: &Value,
) -> Value {
    let content = if text.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    completion(
        model,
        json!({
            "role": "assistant",
            "content": content,
            "tool_calls": [{
                "id": TOOL_CALL_ID, "type": "function",
                "function": { "name": name, "arguments": arguments.to_string() },
            }],
        }),
        "tool_calls",
        text.len(),
    )
}

/// The body of a scripted HTTP error, OpenAI-style.
pub(crate) fn error_body(status: u16, message: &str) -> Value {
    json!({ "error": { "message": message, "type": "scripted_error", "code": status } })
}
