//! [`RecordedRequest`]: what the scripted server saw, for assertions.

use std::fmt;

use serde_json::Value;

/// One `POST /v1/chat/completions` the server received.
#[derive(Clone, PartialEq)]
pub struct RecordedRequest {
    /// The request's JSON body, or `Value::Null` when it was not JSON.
    pub body: Value,
    /// `body.model` (the provider's model id, e.g. `scripted-1`).
    pub model: Option<String>,
    /// `body.stream == true`.
    pub stream: bool,
    /// `body.messages`, as sent (OpenAI chat messages: `{"role","content",…}`).
    pub messages: Vec<Value>,
    /// The names of the tools offered (`body.tools[].function.name`).
    pub tool_names: Vec<String>,
    /// The bearer token of the `Authorization` header, if any. Not shown by `Debug`.
    pub(crate) bearer: Option<String>,
}

impl RecordedRequest {
    pub(crate) fn new(body: Value, bearer: Option<String>) -> Self {
        let model = body.get("model").and_then(Value::as_str).map(str::to_owned);
        let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let tool_names = body
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            body,
            model,
            stream,
            messages,
            tool_names,
            bearer,
        }
    }

    /// The API key the client sent (`Authorization: Bearer KEY`), e.g. to check that a
    /// provider key configured as a secret reached the provider.
    pub fn bearer_token(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    /// The text of the last `user` message: its `content` string, or the `text` parts of
    /// a content array joined with `\n`.
    pub fn last_user_text(&self) -> Option<String> {
        let message = self
            .messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
        content_text(message)
    }

    /// The results of earlier tool calls the client sent back, oldest first: every `tool`
    /// message (`{"role":"tool","tool_call_id":ID,"content":…}`). kilo 7.7.9 sends a bash
    /// call's output as the content (`"(no output)"` when the command printed nothing).
    pub fn tool_results(&self) -> Vec<ToolResult> {
        self.messages
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
            .map(|m| ToolResult {
                call_id: m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                content: content_text(m).unwrap_or_default(),
            })
            .collect()
    }
}

/// The result of one tool call, as a client sent it back in a later request
/// ([`RecordedRequest::tool_results`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    /// The `tool_call_id` it answers (the scripted server's calls have
    /// [`TOOL_CALL_ID`](crate::TOOL_CALL_ID)); empty when missing.
    pub call_id: String,
    /// Its content: the string, or the `text` parts of a content array joined with `\n`;
    /// empty when missing.
    pub content: String,
}

/// A message's `content` string, or the `text` parts of its content array joined with
/// `\n`; `None` when it has neither.
fn content_text(message: &Value) -> Option<String> {
    match message.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    }
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedRequest")
            .field("model", &self.model)
            .field("stream", &self.stream)
            .field("messages", &self.messages.len())
            .field("tool_names", &self.tool_names)
            .field("bearer", &self.bearer.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}
