//! Live snapshots: an agent's `kilo.db` snapshotted while its SDK server runs
//! (ARCHITECTURE.md, *Persistence*: turn-boundary snapshots).
//!
//! [`take_live`] reads `kilo.db` and `kilo.db-wal` out of the container with
//! [`ContainerRuntime::get_file`], checks that the pair it read is consistent, hashes it,
//! and either skips (the hash is the last one taken) or hands it to
//! [`SnapshotStore::take_from_bytes`], which replays the WAL, verifies the result with
//! `PRAGMA integrity_check` and installs it atomically (keeping `kilo.db.prev`). It never
//! locks the database, never writes into the container, and never gives up because the
//! WAL is busy: a read that raced a checkpoint or a WAL restart is retried.
//!
//! # Why the read cannot tear
//!
//! The runtime has no atomic multi-file read, so each attempt reads, in order,
//! `W0 = kilo.db-wal`, `D1 = kilo.db`, `W1 = kilo.db-wal`, `W2 = kilo.db-wal` (and, when
//! needed, `D2 = kilo.db`), and keeps `(D1, W1)` when either
//!
//! - **rule 1**: `W0`, `W1` and `W2` start with the same 32-byte WAL header; or
//! - **rule 2**: `W1` and `W2` start with the same header (or neither has one) and
//!   `D1 == D2` byte for byte.
//!
//! Facts used, from the SQLite WAL file format (sqlite.org/fileformat2.html, *The
//! Write-Ahead Log*) and the WAL documentation (sqlite.org/wal.html,
//! sqlite.org/walformat.html):
//!
//! 1. Between two restarts of the WAL, frames are only appended (only frames of the
//!    transaction in progress, past the last commit, are ever rewritten). A reader uses a
//!    frame only if its salts equal the header's and its cumulative checksum (which covers
//!    every earlier frame) matches, and it uses the frames up to the last valid commit
//!    frame. A read racing an append thus yields a valid prefix ending at a commit: the torn
//!    tail fails its checksum and is ignored, as after a crash.
//! 2. A restart rewrites the header with salt-1 incremented and a new random salt-2, after
//!    a checkpoint that copied the whole WAL into the database; a `TRUNCATE` checkpoint
//!    empties the file, and the next write starts a new header the same way. salt-1 only
//!    grows, so an unchanged header means no restart and no truncation in between.
//! 3. In WAL mode the database file is written only by checkpoints, which copy into it the
//!    newest version of pages from committed frames that were in the WAL when the
//!    checkpoint began.
//!
//! **Rule 1.** The same header in `W0` and `W2` means one WAL generation lasted from
//! before `D1` was read until after `W1` was. Then `W1` is untorn by a restart (so, by 1,
//! it holds every frame committed before its read began, up to a valid commit `c`), and
//! whatever a checkpoint wrote into `D1`, even in the middle of reading it, came from
//! frames of this generation committed before `D1` was read, hence at or before `c` (the
//! previous generation was copied in whole before the restart that began this one).
//! Replaying `W1` up to `c` over `D1` yields the database exactly as of commit `c`: every
//! page a checkpoint may have torn is overwritten by its newest frame at or before `c`, and
//! every other page in `D1` was last changed before this generation. A torn `D1` is
//! harmless, so a database that is checkpointed all the time is still snapshotted.
//!
//! **Rule 2** covers a restart between `W0` and `W1` (and the case of no WAL at all).
//! `D1 == D2` means no checkpoint changed the database from the start of `D1` to the end
//! of `D2`, a window around all of `W1`, so `D1` is one untorn state holding everything
//! checkpointed before it; the same header in `W1` and `W2` means `W1` is a valid prefix
//! of one generation, which was begun (by 2) only after everything before it was in the
//! database. Checking only `D1 == D2` is not enough: when a checkpoint finished before
//! `D1` and the WAL restarts (or is truncated) while `W1` is read, `W1` can be the old
//! header followed by a short prefix of the old generation, and replaying that over `D1`,
//! which already holds the whole old generation, rolls some pages back and not others.
//! `W2`'s header rules that out. With no header anywhere, a WAL may have come and gone
//! between the reads, which `D1 == D2` detects.
//!
//! An attempt that satisfies neither rule is retried after a pause that grows with the
//! attempt, up to [`LIVE_READ_ATTEMPTS`] attempts, then [`LiveSnapshotError::Unstable`].
//! That needs the WAL to restart during every attempt, i.e. checkpoints completing faster
//! than a few reads of the two files; kilo keeps SQLite's default policy (a checkpoint per
//! 1,000 WAL pages, about 4 MB of writes). The one change not detected is a checkpoint that
//! rewrites bytes of `kilo.db` during `D1` and restores the very same bytes before `D2`
//! (rule 2 only), which needs a page to be checkpointed twice, with different and then
//! identical contents, within one read.
//!
//! # Deduplication
//!
//! The [`ContentHash`] is SHA-256 over the raw pair (lengths included, so the split
//! between the two files is part of it). Equal hashes mean equal bytes and so an equal
//! database; a hash can change without a logical change (a checkpoint moves pages from the
//! WAL into the database, an uncommitted frame is appended), which costs a redundant
//! snapshot, never a missed one.

use std::fmt;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{SnapshotInfo, SnapshotStore};
use crate::error::Error;
use crate::ids::{AgentId, TownId};
use crate::path::ContainerPath;
use crate::runtime::ContainerRuntime;

/// How many times [`take_live`] reads the pair before it reports
/// [`LiveSnapshotError::Unstable`].
pub const LIVE_READ_ATTEMPTS: u32 = 8;

/// The pause after failed attempt `n` is `n ×` this, in ms (25, 50, … 175: 700 ms in all
/// across [`LIVE_READ_ATTEMPTS`]).
const RETRY_PAUSE_MS: u64 = 25;

/// The WAL header's size in bytes (magic, format, page size, checkpoint sequence, salt-1,
/// salt-2 and the header checksum: SQLite WAL file format).
const WAL_HEADER_BYTES: usize = 32;

/// Domain separation of the [`ContentHash`], versioned with its input layout.
const HASH_DOMAIN: &[u8] = b"gastown kilo.db live pair v1\0";

/// SHA-256 of a raw `kilo.db` + `kilo.db-wal` pair, as [`take_live`] read it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// The hash of `db` with `wal` (`None`: no WAL file). The input is a domain tag, then
    /// for each file its length in bytes (u64, little-endian) and its bytes; an absent WAL
    /// is distinguished from an empty one.
    pub fn of_pair(db: &[u8], wal: Option<&[u8]>) -> ContentHash {
        let mut hasher = Sha256::new();
        hasher.update(HASH_DOMAIN);
        hasher.update((db.len() as u64).to_le_bytes());
        hasher.update(db);
        match wal {
            None => hasher.update([0u8]),
            Some(wal) => {
                hasher.update([1u8]);
                hasher.update((wal.len() as u64).to_le_bytes());
                hasher.update(wal);
            }
        }
        ContentHash(hasher.finalize().into())
    }

    /// A hash from its 32 bytes (e.g. as persisted by the caller).
    pub fn from_bytes(bytes: [u8; 32]) -> ContentHash {
        ContentHash(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

/// What [`take_live`] read out of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRead {
    /// `kilo.db`'s size, in bytes.
    pub db_bytes: u64,
    /// `kilo.db-wal`'s size in bytes, `None` when there was no WAL file.
    pub wal_bytes: Option<u64>,
    /// Read attempts made, 1 when the first was consistent (each reads the WAL three times
    /// and the database once, or twice when rule 1 does not hold).
    pub attempts: u32,
    /// Time spent reading, pauses between attempts included, in ms.
    pub read_ms: u64,
}

/// The outcome of a [`take_live`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveSnapshot {
    /// The pair's hash equals the `last` one given: the store was not touched.
    Skipped {
        /// The (unchanged) content hash.
        hash: ContentHash,
        /// What was read.
        source: SourceRead,
        /// Wall time of the whole call (reads and hash), in ms.
        ms: u64,
    },
    /// A new snapshot was verified and installed; the one it replaced is `kilo.db.prev`.
    Taken {
        /// The content hash of the pair it was taken from; pass it as `last` next time.
        hash: ContentHash,
        /// The snapshot written (its path and size in bytes).
        info: SnapshotInfo,
        /// What was read.
        source: SourceRead,
        /// Wall time of the whole call (reads, hash, backup, verify, fsync, rename), in ms.
        ms: u64,
    },
}

impl LiveSnapshot {
    /// The pair's content hash (skipped or taken).
    pub fn hash(&self) -> &ContentHash {
        match self {
            LiveSnapshot::Skipped { hash, .. } | LiveSnapshot::Taken { hash, .. } => hash,
        }
    }

    /// Whether the take was skipped as a duplicate.
    pub fn is_skipped(&self) -> bool {
        matches!(self, LiveSnapshot::Skipped { .. })
    }

    /// What was read.
    pub fn source(&self) -> &SourceRead {
        match self {
            LiveSnapshot::Skipped { source, .. } | LiveSnapshot::Taken { source, .. } => source,
        }
    }

    /// Wall time of the whole call, in ms.
    pub fn ms(&self) -> u64 {
        match self {
            LiveSnapshot::Skipped { ms, .. } | LiveSnapshot::Taken { ms, .. } => *ms,
        }
    }
}

/// Why a [`take_live`] failed. In every case the agent's current snapshot and
/// `kilo.db.prev` are left byte-for-byte intact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveSnapshotError {
    /// `kilo.db` does not exist in the container (an agent whose server never started):
    /// there is nothing to snapshot.
    #[error("live snapshot of {agent}: {path} does not exist in the container")]
    DatabaseMissing {
        /// The agent.
        agent: AgentId,
        /// The database's container path.
        path: ContainerPath,
    },
    /// Reading a file out of the container failed (container stopped, backend error).
    #[error("live snapshot of {agent}: reading {path} out of the container")]
    Read {
        /// The agent.
        agent: AgentId,
        /// The file being read.
        path: ContainerPath,
        /// The runtime's error.
        #[source]
        source: Error,
    },
    /// Every attempt raced a WAL restart, and a checkpoint too (module docs: neither rule
    /// held).
    #[error(
        "live snapshot of {agent}: {path} kept changing: no consistent read in {attempts} \
         attempts ({db_changes} saw the database change, {wal_restarts} a WAL restart)"
    )]
    Unstable {
        /// The agent.
        agent: AgentId,
        /// The database's container path.
        path: ContainerPath,
        /// Attempts made.
        attempts: u32,
        /// Attempts in which `kilo.db` changed between its two reads (rule 2 failed).
        db_changes: u32,
        /// Attempts in which the WAL header changed between its three reads.
        wal_restarts: u32,
    },
    /// The pair read was refused by [`SnapshotStore::take_from_bytes`]: not a SQLite
    /// database, damaged, failing `PRAGMA integrity_check`, or the snapshot could not be
    /// written (the source is an [`Error::Snapshot`]).
    #[error("live snapshot of {agent}: the snapshot was not taken")]
    Take {
        /// The agent.
        agent: AgentId,
        /// The store's error.
        #[source]
        source: Error,
    },
    /// The blocking task that takes the snapshot panicked or was cancelled.
    #[error("live snapshot of {agent}: the blocking take ended abnormally")]
    Task {
        /// The agent.
        agent: AgentId,
        /// Tokio's report of how the task ended.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Snapshots `agent`'s SDK database at `db_path` (its `kilo.db`; the WAL is `db_path` +
/// `-wal`) in `town`'s container while the server runs, unless it is unchanged since the
/// take whose hash is `last`. Reads with `rt.get_file` until the pair is consistent (see
/// the module docs), hashes it, and on a new hash takes the snapshot into `snapshots` on a
/// blocking thread. Meant to run off the request path: it costs a few reads of the
/// database and, on a change, one [`SnapshotStore::take_from_bytes`].
///
/// # Errors
/// [`LiveSnapshotError::DatabaseMissing`] when there is no `kilo.db`;
/// [`LiveSnapshotError::Read`] when the runtime cannot read a file;
/// [`LiveSnapshotError::Unstable`] after [`LIVE_READ_ATTEMPTS`] inconsistent reads;
/// [`LiveSnapshotError::Take`] when the pair does not verify or the snapshot cannot be
/// written; [`LiveSnapshotError::Task`] when the blocking take panicked. The current
/// snapshot and `kilo.db.prev` are then intact.
pub async fn take_live(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    agent: &AgentId,
    db_path: &ContainerPath,
    snapshots: &SnapshotStore,
    last: Option<&ContentHash>,
) -> Result<LiveSnapshot, LiveSnapshotError> {
    let started = Instant::now();
    let pair = read_consistent(rt, town, agent, db_path).await?;
    let source = SourceRead {
        db_bytes: pair.db.len() as u64,
        wal_bytes: pair.wal.as_ref().map(|w| w.len() as u64),
        attempts: pair.attempts,
        read_ms: pair.read_ms,
    };
    let hash = ContentHash::of_pair(&pair.db, pair.wal.as_deref());
    if last == Some(&hash) {
        let ms = elapsed_ms(started);
        tracing::debug!(agent = %agent, %hash, ms, "kilo.db unchanged: live snapshot skipped");
        return Ok(LiveSnapshot::Skipped { hash, source, ms });
    }
    let store = snapshots.clone();
    let owner = agent.clone();
    let Pair { db, wal, .. } = pair;
    let info =
        tokio::task::spawn_blocking(move || store.take_from_bytes(&owner, &db, wal.as_deref()))
            .await
            .map_err(|source| LiveSnapshotError::Task {
                agent: agent.clone(),
                source,
            })?
            .map_err(|source| LiveSnapshotError::Take {
                agent: agent.clone(),
                source,
            })?;
    let ms = elapsed_ms(started);
    tracing::info!(
        agent = %agent, %hash, bytes = info.bytes, db_bytes = source.db_bytes,
        wal_bytes = source.wal_bytes.unwrap_or(0), attempts = source.attempts, ms,
        "live kilo.db snapshot taken"
    );
    Ok(LiveSnapshot::Taken {
        hash,
        info,
        source,
        ms,
    })
}

/// A consistent `kilo.db` + `kilo.db-wal` pair.
struct Pair {
    db: Vec<u8>,
    wal: Option<Vec<u8>>,
    attempts: u32,
    read_ms: u64,
}

/// Reads `W0, D1, W1, W2` (and `D2`) until rule 1 or rule 2 of the module docs holds.
async fn read_consistent(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    agent: &AgentId,
    db_path: &ContainerPath,
) -> Result<Pair, LiveSnapshotError> {
    let started = Instant::now();
    let wal_path = ContainerPath::new(format!("{}-wal", db_path.as_str())).map_err(|source| {
        LiveSnapshotError::Read {
            agent: agent.clone(),
            path: db_path.clone(),
            source,
        }
    })?;
    let read_db = || async {
        match rt.get_file(town, db_path).await {
            Ok(bytes) => Ok(bytes),
            Err(Error::FileNotFound { .. }) => Err(LiveSnapshotError::DatabaseMissing {
                agent: agent.clone(),
                path: db_path.clone(),
            }),
            Err(source) => Err(LiveSnapshotError::Read {
                agent: agent.clone(),
                path: db_path.clone(),
                source,
            }),
        }
    };
    let read_wal = || async {
        match rt.get_file(town, &wal_path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(Error::FileNotFound { .. }) => Ok(None),
            Err(source) => Err(LiveSnapshotError::Read {
                agent: agent.clone(),
                path: wal_path.clone(),
                source,
            }),
        }
    };
    let (mut db_changes, mut wal_restarts) = (0, 0);
    for attempt in 1..=LIVE_READ_ATTEMPTS {
        let before = read_wal().await?;
        let db = read_db().await?;
        let wal = read_wal().await?;
        let after = read_wal().await?;
        let (h0, h1, h2) = (
            wal_header(before.as_deref()),
            wal_header(wal.as_deref()),
            wal_header(after.as_deref()),
        );
        let same_generation = h0 == h1 && h1 == h2;
        wal_restarts += u32::from(!same_generation);
        // Rule 1: one WAL generation throughout. Rule 2: one generation while W1 was read
        // and a database unchanged around it.
        let consistent = (same_generation && h1.is_some())
            || (h1 == h2 && {
                let stable = db == read_db().await?;
                db_changes += u32::from(!stable);
                stable
            });
        if consistent {
            return Ok(Pair {
                db,
                wal,
                attempts: attempt,
                read_ms: elapsed_ms(started),
            });
        }
        tracing::debug!(
            agent = %agent, attempt, same_generation,
            "kilo.db changed during a live read; reading again"
        );
        if attempt < LIVE_READ_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS * u64::from(attempt))).await;
        }
    }
    Err(LiveSnapshotError::Unstable {
        agent: agent.clone(),
        path: db_path.clone(),
        attempts: LIVE_READ_ATTEMPTS,
        db_changes,
        wal_restarts,
    })
}

/// The WAL header (its first 32 bytes), `None` for a missing WAL or one too short to hold a
/// header (SQLite then ignores the file).
fn wal_header(wal: Option<&[u8]>) -> Option<&[u8]> {
    wal.and_then(|w| w.get(..WAL_HEADER_BYTES))
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_the_split_and_the_absence_of_a_wal() {
        let a = ContentHash::of_pair(b"ab", Some(b"c"));
        assert_eq!(a, ContentHash::of_pair(b"ab", Some(b"c")));
        assert_ne!(a, ContentHash::of_pair(b"a", Some(b"bc")));
        assert_ne!(
            ContentHash::of_pair(b"ab", None),
            ContentHash::of_pair(b"ab", Some(b""))
        );
        assert_eq!(a.to_hex().len(), 64);
        assert_eq!(ContentHash::from_bytes(*a.as_bytes()), a);
        assert_eq!(format!("{a}"), a.to_hex());
    }

    #[test]
    fn a_wal_header_is_its_first_32_bytes() {
        assert_eq!(wal_header(None), None);
        assert_eq!(wal_header(Some(&[7u8; 31])), None);
        let wal = [9u8; 100];
        assert_eq!(wal_header(Some(&wal)).map(<[u8]>::len), Some(32));
    }
}
