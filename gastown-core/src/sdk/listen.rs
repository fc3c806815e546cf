//! Parsing the SDK server's "ready" line.

/// What both kilo and opencode print before the URL once they accept connections.
const MARKER: &str = "listening on http://";

/// Finds `listening on http://HOST:PORT` in a line of the SDK server's stdout, e.g. kilo's
/// `kilo server listening on http://127.0.0.1:4096` or opencode's
/// `opencode server listening on http://127.0.0.1:4096`, and returns `(HOST, PORT)`.
///
/// The host is returned as written in the URL (an IPv6 host keeps its brackets), so
/// `format!("http://{host}:{port}")` rebuilds the base URL. Returns `None` when the marker
/// is absent, the host is empty, or the port is missing, not a number, or outside 1..=65535
/// (with `--port 0` the server prints the port it chose, never 0).
pub fn parse_listening_line(line: &str) -> Option<(String, u16)> {
    let start = line.find(MARKER)? + MARKER.len();
    let rest = &line[start..];
    let authority_end = rest
        .find(|c: char| c == '/' || c.is_whitespace() || c.is_control())
        .unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    // The port follows the last ':'; for `[::1]:4096` that is the one after the bracket.
    let (host, port) = authority.rsplit_once(':')?;
    if host.is_empty() || host.ends_with(':') || (host.contains(':') && !host.ends_with(']')) {
        return None;
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kilo_line() {
        assert_eq!(
            parse_listening_line("kilo server listening on http://127.0.0.1:4096"),
            Some(("127.0.0.1".to_owned(), 4096))
        );
    }

    #[test]
    fn ipv6_keeps_brackets() {
        assert_eq!(
            parse_listening_line("listening on http://[::1]:8080/\r"),
            Some(("[::1]".to_owned(), 8080))
        );
        assert_eq!(parse_listening_line("listening on http://::1"), None);
    }
}
