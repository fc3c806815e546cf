//! Turning bollard's errors into gastown's [`Error`].

use gastown_core::Error;

/// The runtime's name in errors and reports.
pub(crate) const RUNTIME: &str = "docker";

/// The HTTP status of an engine reply, when the error is one.
pub(crate) fn status_of(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// True when the engine answered 404 (no such container, exec, image or path).
pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    status_of(err) == Some(404)
}

/// An [`Error::Runtime`] saying what was being done and what the engine said.
pub(crate) fn runtime(context: impl std::fmt::Display, err: bollard::errors::Error) -> Error {
    Error::Runtime {
        runtime: RUNTIME,
        message: format!("{context}: {err}"),
    }
}

/// An [`Error::Runtime`] with a plain message.
pub(crate) fn runtime_msg(message: impl Into<String>) -> Error {
    Error::Runtime {
        runtime: RUNTIME,
        message: message.into(),
    }
}
