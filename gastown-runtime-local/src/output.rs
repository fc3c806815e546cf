//! Turning a child's stdout and stderr into the line channel of a
//! [`SpawnedProcess`](gastown_core::SpawnedProcess).
//!
//! The pipes are always drained, whether or not anyone reads the channel, so a chatty child
//! never blocks on a full pipe. Lines go through a `broadcast` ring of
//! [`OUTPUT_BUFFER_LINES`]: when the reader falls behind, the oldest lines are overwritten
//! (the contract of `SpawnedProcess::output`) rather than the child being held up.

use gastown_core::{OutputLine, Stream};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::{broadcast, mpsc};

/// How many lines are buffered for a reader that falls behind; older ones are dropped.
pub(crate) const OUTPUT_BUFFER_LINES: usize = 1024;

/// The longest line kept whole, in bytes; a longer one arrives as several lines, so a
/// child that never writes `\n` cannot grow our memory without bound.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

/// Starts the tasks that read `stdout` and `stderr` and returns the line channel. It closes
/// once both streams reach end of file (the child and every process holding its pipes ended).
pub(crate) fn pump(
    stdout: impl AsyncRead + Unpin + Send + 'static,
    stderr: impl AsyncRead + Unpin + Send + 'static,
) -> mpsc::Receiver<OutputLine> {
    let (ring_tx, ring_rx) = broadcast::channel(OUTPUT_BUFFER_LINES);
    // Capacity 1: the ring does the buffering, so "oldest dropped" holds across both.
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(read_lines(stdout, Stream::Stdout, ring_tx.clone()));
    tokio::spawn(read_lines(stderr, Stream::Stderr, ring_tx));
    tokio::spawn(forward(ring_rx, tx));
    rx
}

/// Reads `stream` line by line into `ring`, tagging each line with `which`.
///
/// A line ends at `\n`; the `\n` and a `\r` before it are stripped, bytes that are not
/// UTF-8 become U+FFFD, and a line longer than [`MAX_LINE_BYTES`] arrives as several lines
/// of at most that many bytes. Returns at end of file, or on a read error (logged at
/// `debug`: the child's output is best effort, its exit status is what callers check).
async fn read_lines(
    stream: impl AsyncRead + Unpin,
    which: Stream,
    ring: broadcast::Sender<OutputLine>,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) => return,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                let line = String::from_utf8_lossy(&buf).into_owned();
                // No receiver left (the caller dropped `output`): keep draining the pipe.
                let _ = ring.send(OutputLine {
                    stream: which,
                    line,
                });
            }
            Err(e) => {
                tracing::debug!(stream = ?which, error = %e, "reading child output failed");
                return;
            }
        }
    }
}

/// Moves lines from the broadcast ring to the caller's channel until either side closes.
///
/// Lines the ring overwrote before this task read them (the caller fell more than
/// [`OUTPUT_BUFFER_LINES`] behind) are counted and logged at `debug`, not an error.
async fn forward(mut ring: broadcast::Receiver<OutputLine>, tx: mpsc::Sender<OutputLine>) {
    loop {
        match ring.recv().await {
            Ok(line) => {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(dropped)) => {
                tracing::debug!(dropped, "output lines dropped: nobody read them in time");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_lines_and_strips_endings() {
        let mut rx = pump(&b"a\r\nb\nlast"[..], &b"e1\n"[..]);
        let mut got = Vec::new();
        while let Some(l) = rx.recv().await {
            got.push((l.stream, l.line));
        }
        let out: Vec<_> = got
            .iter()
            .filter(|(s, _)| *s == Stream::Stdout)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(out, ["a", "b", "last"]);
        assert!(got.contains(&(Stream::Stderr, "e1".to_owned())));
    }

    #[tokio::test]
    async fn long_lines_are_split_not_buffered_whole() {
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        let mut rx = pump(std::io::Cursor::new(long), &b""[..]);
        let mut lens = Vec::new();
        while let Some(l) = rx.recv().await {
            lens.push(l.line.len());
        }
        assert_eq!(lens, [MAX_LINE_BYTES, MAX_LINE_BYTES, 10]);
    }

    #[tokio::test]
    async fn a_slow_reader_keeps_the_newest_lines_in_order() {
        let text: String = (0..5000).map(|i| format!("{i}\n")).collect();
        let mut rx = pump(std::io::Cursor::new(text.into_bytes()), &b""[..]);
        // Let the pump run ahead of us until the input is consumed.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let mut got = Vec::new();
        while let Some(l) = rx.recv().await {
            got.push(l.line.parse::<u32>().unwrap());
        }
        assert_eq!(got.last(), Some(&4999));
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }
}
