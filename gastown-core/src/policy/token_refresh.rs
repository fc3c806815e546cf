//! Live container-token refresh (ARCHITECTURE.md, *Lifecycle timings*).
//!
//! Two upstream bugs it fixes: a live `/refresh-token` went to a cold container on the
//! mayor's critical path (the Gastown cold-start analysis, recommendation 1: a fresh start
//! mints the token and passes it in its start request instead), and the hourly throttle
//! lived in memory, so every restart of the town's process refreshed at once (Kilo
//! Gastown #1450). The throttle's timestamp is the caller's to persist (the town store's
//! time kv); this policy only reads it.

use std::time::Duration;

use crate::token;

use super::elapsed;

/// A live refresh goes out at most this often: 1 h ([`token::REFRESH_THROTTLE`],
/// Kilo Gastown #1450).
pub const TOKEN_REFRESH_THROTTLE: Duration = token::REFRESH_THROTTLE;

/// A token this close to expiry is refreshed even inside the throttle: 30 min
/// ([`token::REFRESH_NEAR_EXPIRY`], a Kilo Gastown code value).
pub const TOKEN_REFRESH_NEAR_EXPIRY: Duration = token::REFRESH_NEAR_EXPIRY;

/// What [`should_refresh_token`] looks at. Times are ms since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRefreshInput {
    /// The container is known to be warm (running, with its agents' servers up). A cold
    /// or unknown container is never refreshed.
    pub container_warm: bool,
    /// When the container last received a token — a live refresh, or the minted token of
    /// a fresh start (stamp both, so a fresh start does not trigger a refresh) — as
    /// persisted in the town store; `None` if never.
    pub last_refresh_ms: Option<i64>,
    /// When the container's current token expires, `None` if unknown.
    pub token_expires_ms: Option<i64>,
}

/// True when the alarm should send a live token refresh now (`now_ms`: ms since the Unix
/// epoch):
///
/// - never unless the container is known warm (a cold start mints and passes the token
///   in its start request instead; refreshing a cold container is the bug of the Gastown
///   cold-start analysis);
/// - a token within [`TOKEN_REFRESH_NEAR_EXPIRY`] (30 min) of expiry, or past it, is
///   refreshed even inside the throttle: the throttle exists to spare the container
///   requests, not to let the agents' token lapse;
/// - otherwise at most once per [`TOKEN_REFRESH_THROTTLE`] (1 h); no recorded refresh
///   means one is due.
pub fn should_refresh_token(input: TokenRefreshInput, now_ms: i64) -> bool {
    if !input.container_warm {
        return false;
    }
    let near_expiry = input
        .token_expires_ms
        .is_some_and(|exp| elapsed(now_ms, exp) <= TOKEN_REFRESH_NEAR_EXPIRY);
    let throttle_open = input
        .last_refresh_ms
        .is_none_or(|at| elapsed(at, now_ms) >= TOKEN_REFRESH_THROTTLE);
    near_expiry || throttle_open
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    fn warm(last: Option<i64>, expires: Option<i64>) -> TokenRefreshInput {
        TokenRefreshInput {
            container_warm: true,
            last_refresh_ms: last,
            token_expires_ms: expires,
        }
    }

    #[test]
    fn constants_are_the_token_modules() {
        assert_eq!(TOKEN_REFRESH_THROTTLE, Duration::from_secs(3600));
        assert_eq!(TOKEN_REFRESH_NEAR_EXPIRY, Duration::from_secs(1800));
    }

    #[test]
    fn never_for_a_cold_container() {
        for last in [None, Some(NOW - 10 * HOUR)] {
            for expires in [None, Some(NOW), Some(NOW - HOUR)] {
                let input = TokenRefreshInput {
                    container_warm: false,
                    last_refresh_ms: last,
                    token_expires_ms: expires,
                };
                assert!(!should_refresh_token(input, NOW), "{input:?}");
            }
        }
    }

    #[test]
    fn hourly_throttle() {
        let far = Some(NOW + 7 * HOUR);
        assert!(should_refresh_token(warm(None, far), NOW));
        assert!(!should_refresh_token(warm(Some(NOW - HOUR + 1), far), NOW));
        assert!(should_refresh_token(warm(Some(NOW - HOUR), far), NOW));
        assert!(!should_refresh_token(warm(Some(NOW + MIN), far), NOW));
        assert!(!should_refresh_token(warm(Some(NOW), None), NOW));
    }

    #[test]
    fn near_expiry_overrides_the_throttle() {
        let just_refreshed = Some(NOW - MIN);
        assert!(!should_refresh_token(
            warm(just_refreshed, Some(NOW + 30 * MIN + 1)),
            NOW
        ));
        assert!(should_refresh_token(
            warm(just_refreshed, Some(NOW + 30 * MIN)),
            NOW
        ));
        assert!(should_refresh_token(
            warm(just_refreshed, Some(NOW - HOUR)),
            NOW
        ));
    }
}
