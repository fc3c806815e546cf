//! Turning a process's output chunks into [`OutputLine`]s, and handing them to a reader that
//! may be slow or absent without ever stalling the process.

use std::collections::VecDeque;
use std::sync::Arc;

use gastown_core::{OutputLine, Stream};
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};

/// Lines kept for a reader that is not keeping up; past this the oldest are dropped.
pub(crate) const BUFFERED_LINES: usize = 4096;

/// A line longer than this many bytes is cut into pieces of this size, so one runaway line
/// cannot grow memory without bound.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

/// Splits one stream's chunks into lines (`\n`, with a trailing `\r` dropped).
#[derive(Debug)]
pub(crate) struct LineSplitter {
    stream: Stream,
    partial: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `stream`.
    pub(crate) fn new(stream: Stream) -> Self {
        Self {
            stream,
            partial: Vec::new(),
        }
    }

    /// One line, `\r` dropped (CRLF output), invalid UTF-8 replaced rather than lost.
    fn line(&self, bytes: &[u8]) -> OutputLine {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        OutputLine {
            stream: self.stream,
            line: String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// Feeds a chunk; returns the lines it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<OutputLine> {
        let mut out = Vec::new();
        for &b in chunk {
            if b == b'\n' {
                out.push(self.line(&self.partial));
                self.partial.clear();
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE_BYTES {
                    out.push(self.line(&self.partial));
                    self.partial.clear();
                }
            }
        }
        out
    }

    /// The unterminated rest, at end of stream.
    pub(crate) fn finish(&mut self) -> Option<OutputLine> {
        if self.partial.is_empty() {
            return None;
        }
        let line = self.line(&self.partial);
        self.partial.clear();
        Some(line)
    }
}

#[derive(Debug, Default)]
struct Shared {
    queue: VecDeque<OutputLine>,
    closed: bool,
}

/// The producing end: never blocks; past [`BUFFERED_LINES`] unread lines the oldest go.
#[derive(Debug, Clone)]
pub(crate) struct LineSink {
    shared: Arc<Mutex<Shared>>,
    notify: Arc<Notify>,
}

impl LineSink {
    /// Queues a line.
    pub(crate) fn send(&self, line: OutputLine) {
        {
            let mut s = self.shared.lock();
            if s.queue.len() >= BUFFERED_LINES {
                s.queue.pop_front();
            }
            s.queue.push_back(line);
        }
        self.notify.notify_one();
    }

    /// Marks the end of output; the receiver closes once it has read everything.
    pub(crate) fn close(&self) {
        self.shared.lock().closed = true;
        self.notify.notify_one();
    }
}

/// A sink and the receiver of its lines. A forwarding task moves lines from the sink's
/// queue into the channel as the reader makes room; it ends when the sink is closed and
/// drained, or the receiver is dropped.
pub(crate) fn channel() -> (LineSink, mpsc::Receiver<OutputLine>) {
    let sink = LineSink {
        shared: Arc::new(Mutex::new(Shared::default())),
        notify: Arc::new(Notify::new()),
    };
    let (tx, rx) = mpsc::channel(64);
    let fwd = sink.clone();
    tokio::spawn(async move {
        loop {
            let Ok(permit) = tx.reserve().await else {
                return; // receiver dropped
            };
            let line = loop {
                let notified = fwd.notify.notified();
                {
                    let mut s = fwd.shared.lock();
                    if let Some(line) = s.queue.pop_front() {
                        break Some(line);
                    }
                    if s.closed {
                        break None;
                    }
                }
                notified.await;
            };
            match line {
                Some(line) => permit.send(line),
                None => return,
            }
        }
    });
    (sink, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_chunks_and_strips_cr() {
        let mut s = LineSplitter::new(Stream::Stdout);
        assert!(s.push(b"hel").is_empty());
        let lines = s.push(b"lo\r\nwor");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].line, "hello");
        assert!(s.push(b"ld").is_empty());
        assert_eq!(s.finish().unwrap().line, "world");
        assert!(s.finish().is_none());
    }

    #[test]
    fn long_lines_are_cut() {
        let mut s = LineSplitter::new(Stream::Stderr);
        let lines = s.push(&vec![b'x'; MAX_LINE_BYTES + 10]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].line.len(), MAX_LINE_BYTES);
        assert_eq!(s.finish().unwrap().line.len(), 10);
    }

    fn line(i: usize) -> OutputLine {
        OutputLine {
            stream: Stream::Stdout,
            line: i.to_string(),
        }
    }

    #[tokio::test]
    async fn an_absent_reader_never_blocks_and_the_oldest_lines_go() {
        let (sink, mut rx) = channel();
        let total = BUFFERED_LINES * 2;
        for i in 0..total {
            sink.send(line(i)); // never blocks
        }
        sink.close();
        let mut got = Vec::new();
        while let Some(l) = rx.recv().await {
            got.push(l.line.parse::<usize>().unwrap());
        }
        // Everything that was not dropped arrives in order, ending with the newest line.
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*got.last().unwrap(), total - 1);
        assert!(got.len() <= BUFFERED_LINES + 64 + 1);
        assert!(got.len() >= BUFFERED_LINES);
    }

    #[tokio::test]
    async fn a_dropped_receiver_ends_the_forwarder_and_sends_still_succeed() {
        let (sink, rx) = channel();
        drop(rx);
        for i in 0..10 {
            sink.send(line(i));
        }
        sink.close();
    }
}
