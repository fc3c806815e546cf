//! The HTTP client of an agent's SDK server (`kilo serve`, or `opencode serve`, which speaks
//! the same API; `ARCHITECTURE.md`, *SDK server*).
//!
//! - [`SdkApi`] and [`SdkConnector`]: the calls as an object-safe trait, and how a client
//!   is made ([`HttpConnector`] for real servers).
//! - [`SdkClient`]: health, session list/create, `noReply` messages, real turns
//!   (`prompt_async`), session statuses, a session's messages and the event stream
//!   ([`SdkEvent`]), with basic auth and a per-call timeout on every call.
//! - [`parse_listening_line`]: the server's "ready" line, which carries the port it chose.
//! - [`newest_session`]: the session a mayor resumes.
//! - [`validate_session_id`]: the check a session id passes before it goes into a URL.
//!
//! Every failure is [`Error::Sdk`](crate::Error::Sdk); no message carries the password.

mod api;
mod client;
mod event;
mod failure;
mod listen;
mod message;
mod session_id;
mod types;

pub use api::{HttpConnector, SdkApi, SdkConnector};
pub use client::{SdkClient, SdkClientOptions, DEFAULT_TIMEOUT};
pub use event::{SdkEvent, MALFORMED_KIND};
pub use listen::parse_listening_line;
pub use message::{last_assistant_text, SessionMessage, SessionStatus, TurnError};
pub use session_id::{validate_session_id, MAX_SESSION_ID_LEN};
pub use types::{newest_session, Health, SessionInfo};
