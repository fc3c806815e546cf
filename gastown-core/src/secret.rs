//! A string that never shows itself in `Debug` or `Display` output.

use std::fmt;

use rand::RngCore;

/// A secret value (password, token). `Debug` prints `Secret(***)`; there is no `Display`.
/// Read it with [`Secret::expose`] only where it is handed to its one consumer.
///
/// Used for every SDK server password (one [`Secret::random`] per agent), container token,
/// git credential and the town's token signing key. Equality compares the values, in
/// ordinary (not constant) time.
///
/// ```
/// use gastown_core::Secret;
///
/// let password = Secret::random();
/// assert_eq!(password.expose().len(), 64);
/// assert_eq!(format!("{password:?}"), "Secret(***)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A fresh random secret: 32 bytes from the OS-seeded thread RNG, hex-encoded (64 chars).
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    /// The value. Call it only where the secret is handed over (an env var, an auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn random_secrets_differ() {
        let (a, b) = (Secret::random(), Secret::random());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
    }
}
