//! Graceful stop of an example's host process: the first SIGTERM or ctrl-c (SIGINT) asks
//! the example to stop and drain its towns (`TownHandle::shutdown`: every SDK server
//! stopped, its database snapshotted, the container removed); a second signal exits at
//! once, without draining (exit status 128 + the signal's number, as a shell reports a
//! process killed by it).
//!
//! The signals are watched on a thread of their own with its own tokio runtime, so a
//! [`Stop`] works from any runtime the example builds, paused virtual-time ones included,
//! and a second signal is handled even while the example's runtime is busy draining.

// Shared by several examples (`#[path]`), each using the part it needs.
#![allow(dead_code)]

use std::fmt;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// The signal that asked the example to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopSignal {
    /// SIGINT (ctrl-c), number 2.
    Interrupt,
    /// SIGTERM, number 15.
    Terminate,
}

impl StopSignal {
    /// The process's exit status after a second signal: 128 + the signal's number.
    fn exit_status(self) -> i32 {
        match self {
            StopSignal::Interrupt => 128 + 2,
            StopSignal::Terminate => 128 + 15,
        }
    }
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        })
    }
}

/// The next SIGINT or SIGTERM.
async fn next(int: &mut Signal, term: &mut Signal) -> StopSignal {
    tokio::select! {
        _ = int.recv() => StopSignal::Interrupt,
        _ = term.recv() => StopSignal::Terminate,
    }
}

/// A stop request, cheap to clone: [`Stop::requested`] resolves at the first SIGINT or
/// SIGTERM.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    first: watch::Receiver<Option<StopSignal>>,
}

impl Stop {
    /// Starts watching SIGINT and SIGTERM. From now on they no longer kill the process:
    /// the first one is reported through [`Stop::requested`] (and `draining`, what the
    /// example does about it, is printed to stderr); a second one exits the process at once.
    ///
    /// # Errors
    /// The OS error when a signal handler or the watcher's runtime cannot be set up.
    pub(crate) fn install(draining: &'static str) -> std::io::Result<Stop> {
        let (tx, first) = watch::channel(None);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("stop-signals".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let handlers = signal(SignalKind::interrupt())
                        .and_then(|int| Ok((int, signal(SignalKind::terminate())?)));
                    let (mut int, mut term) = match handlers {
                        Ok(pair) => pair,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let first = next(&mut int, &mut term).await;
                    eprintln!("{first}: {draining} (send it again to exit at once)");
                    tx.send_replace(Some(first));
                    let second = next(&mut int, &mut term).await;
                    eprintln!("{second} again: exiting without draining");
                    std::process::exit(second.exit_status());
                });
            })?;
        ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("the signal watcher thread ended"))??;
        Ok(Stop { first })
    }

    /// A stop already requested by `signal`, watching no signal (a test double of a
    /// signalled host, for the examples' tests).
    pub(crate) fn requested_by(signal: StopSignal) -> Stop {
        let (_, first) = watch::channel(Some(signal));
        Stop { first }
    }

    /// The first signal, once it came (at once if it already did).
    pub(crate) async fn requested(&self) -> StopSignal {
        let mut first = self.first.clone();
        loop {
            if let Some(signal) = *first.borrow_and_update() {
                return signal;
            }
            if first.changed().await.is_err() {
                // The watcher thread never ends (it exits the process instead); should it,
                // no signal will come.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The first signal, if one came.
    pub(crate) fn signalled(&self) -> Option<StopSignal> {
        *self.first.borrow()
    }
}
