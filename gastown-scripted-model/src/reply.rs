//! [`Reply`]: what the scripted model server answers to one chat-completion request.

use std::time::Duration;

use serde_json::Value;

/// The text the default reply streams: `"Hello from the scripted model."`.
pub const DEFAULT_TEXT: &str = "Hello from the scripted model.";

/// The name of kilo's shell tool, `bash`, as kilo 7.7.9 offers it to the model
/// (`tools[].function.name` of its chat-completion requests; opencode uses the same name).
pub const BASH_TOOL: &str = "bash";

/// The `description` argument [`Reply::bash`] sends with its command: kilo 7.7.9 shows it
/// as the tool call's title (opencode requires the argument; kilo takes it as optional).
pub const BASH_DESCRIPTION: &str = "Run the scripted command";

/// One scripted answer to `POST /v1/chat/completions`.
///
/// Build it with [`Reply::text`], [`Reply::tool_call`] (or [`Reply::bash`] for kilo's
/// shell tool), [`Reply::status`],
/// [`Reply::garbage`] or [`Reply::hang`], then adjust it with the `with_*` setters. Replies
/// are taken from the server's queue in request order; when the queue is empty the
/// server's default reply answers (by default `Reply::text(DEFAULT_TEXT)` in 3 chunks).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub(crate) kind: ReplyKind,
    /// Waited before the response head is sent.
    pub(crate) delay: Duration,
    /// Waited before each streamed chunk after the first.
    pub(crate) chunk_delay: Duration,
}

/// What a [`Reply`] does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReplyKind {
    /// Assistant text, streamed in `chunks` pieces (at least 1).
    Text { text: String, chunks: usize },
    /// Optional text, then one tool call; finish reason `tool_calls`.
    ToolCall {
        text: String,
        name: String,
        arguments: Value,
    },
    /// An HTTP error status with an OpenAI-style error body.
    Status { status: u16, message: String },
    /// HTTP 200 whose body is not JSON nor valid SSE JSON.
    Garbage,
    /// The response head is never sent; the request hangs until the client gives up or
    /// the server shuts down.
    Hang,
}

impl Reply {
    /// Assistant `text`, streamed in 3 chunks (split on character boundaries) when the
    /// request asks for `"stream": true`, else one JSON completion. Finish reason `stop`.
    pub fn text(text: impl Into<String>) -> Self {
        Self::of(ReplyKind::Text {
            text: text.into(),
            chunks: 3,
        })
    }

    /// One tool call of the function `name` with JSON `arguments` (sent as a JSON string,
    /// as OpenAI does), in a `tool_calls` delta; finish reason `tool_calls`.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Self::of(ReplyKind::ToolCall {
            text: String::new(),
            name: name.into(),
            arguments,
        })
    }

    /// One call of kilo's shell tool ([`BASH_TOOL`]) running `command`: the arguments are
    /// `{"command":COMMAND,"description":BASH_DESCRIPTION}`, the parameter names of kilo
    /// 7.7.9's bash tool (`command` — required, the shell command line; `description`;
    /// kilo also takes `timeout` in ms and `workdir`, left out so the command runs in the
    /// session's directory with kilo's default timeout).
    ///
    /// A turn that answers with it is two completion requests: this reply, then — once
    /// kilo ran the command and sends its output back as a `tool` message — the next reply
    /// in the queue (or the default text), which ends the turn. The command runs only when
    /// the SDK server's permissions allow it unattended; otherwise kilo asks
    /// (`permission.asked`) and the turn waits for an answer.
    ///
    /// ```
    /// use gastown_scripted_model::{Reply, BASH_TOOL};
    /// let turn = [Reply::bash("git status"), Reply::text("done")];
    /// # let _ = (turn, BASH_TOOL);
    /// ```
    pub fn bash(command: impl Into<String>) -> Self {
        Self::tool_call(
            BASH_TOOL,
            serde_json::json!({ "command": command.into(), "description": BASH_DESCRIPTION }),
        )
    }

    /// An HTTP error `status` (e.g. 500) with the body
    /// `{"error":{"message":MESSAGE,"type":"scripted_error","code":STATUS}}`.
    ///
    /// Note how kilo 7.7.9 reacts (observed): a 5xx or 429 is retried without end, with a
    /// growing delay (`session.status` `retry`, attempt 1, 2, …); a 4xx ends the turn at
    /// once with `session.error` (`APIError`, `isRetryable: false`) and `idle`.
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        Self::of(ReplyKind::Status {
            status,
            message: message.into(),
        })
    }

    /// HTTP 200 with a body that is not what the API promises: `{"choices": [` … cut off
    /// for a non-stream request, and an SSE event whose data is not JSON for a stream.
    pub fn garbage() -> Self {
        Self::of(ReplyKind::Garbage)
    }

    /// Never answers: the connection stays open with no response head until the client
    /// times out or the server shuts down.
    pub fn hang() -> Self {
        Self::of(ReplyKind::Hang)
    }

    fn of(kind: ReplyKind) -> Self {
        Self {
            kind,
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
        }
    }

    /// Streams the text in `chunks` pieces (at least 1; more pieces than characters give
    /// empty pieces at the end). Only for text replies; ignored otherwise.
    pub fn with_chunks(mut self, chunks: usize) -> Self {
        if let ReplyKind::Text { chunks: c, .. } = &mut self.kind {
            *c = chunks.max(1);
        }
        self
    }

    /// Adds assistant text before a tool call (streamed as one chunk).
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        match &mut self.kind {
            ReplyKind::Text { text: t, .. } | ReplyKind::ToolCall { text: t, .. } => {
                *t = text.into();
            }
            _ => {}
        }
        self
    }

    /// Waits `delay` before sending the response head (the time to first byte).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Waits `delay` before each streamed chunk after the first.
    pub fn with_chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }
}

impl Default for Reply {
    /// `Reply::text(DEFAULT_TEXT)`.
    fn default() -> Self {
        Reply::text(DEFAULT_TEXT)
    }
}

/// Splits `text` into `n` pieces on character boundaries, as evenly as characters allow.
pub(crate) fn split_chunks(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.max(1);
    let per = chars.len().div_ceil(n).max(1);
    let mut out: Vec<String> = chars.chunks(per).map(|c| c.iter().collect()).collect();
    while out.len() < n {
        out.push(String::new());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_rejoin_to_the_text() {
        for n in 1..8 {
            let parts = split_chunks(DEFAULT_TEXT, n);
            assert_eq!(parts.len(), n);
            assert_eq!(parts.concat(), DEFAULT_TEXT);
        }
        assert_eq!(split_chunks("éa", 2), vec!["é", "a"]);
        assert_eq!(split_chunks("", 2), vec!["", ""]);
    }

    #[test]
    fn bash_is_a_call_of_kilos_bash_tool_with_its_argument_names() {
        assert_eq!(
            Reply::bash("git status"),
            Reply::tool_call(
                "bash",
                serde_json::json!({"command": "git status", "description": BASH_DESCRIPTION}),
            )
        );
    }
}
