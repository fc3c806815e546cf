//! Values by key: strings, millisecond timestamps (the hourly token-refresh throttle, the
//! idle-stop throttle) and secrets (the town's token signing key). Each kind has its own
//! table, so a secret can never be read back through [`TownStore::kv_get`].

use rusqlite::{OptionalExtension, TransactionBehavior};

use super::{store_err, TownStore};
use crate::error::Result;
use crate::secret::Secret;

impl TownStore {
    /// The string stored under `key`, or `None`.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the read fails.
    pub fn kv_get(&self, key: &str) -> Result<Option<String>> {
        self.with_conn(|conn| {
            conn.query_row("SELECT value FROM kv WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(store_err(format!("read key {key:?}")))
        })
    }

    /// Stores `value` under `key`, replacing any previous value.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails.
    pub fn kv_set(&self, key: &str, value: &str) -> Result<()> {
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map_err(store_err(format!("write key {key:?}")))?;
            Ok(())
        })
    }

    /// The timestamp stored under `key` (ms since the Unix epoch), or `None`.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the read fails.
    pub fn time_get(&self, key: &str) -> Result<Option<i64>> {
        self.with_conn(|conn| {
            conn.prepare_cached("SELECT ms FROM times WHERE key = ?1")
                .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
                .map_err(store_err(format!("read time {key:?}")))
        })
    }

    /// Stores the timestamp `ms` (ms since the Unix epoch) under `key`, replacing any
    /// previous one.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails.
    pub fn time_set(&self, key: &str, ms: i64) -> Result<()> {
        self.with_conn(|conn| {
            set_time(conn, key, ms).map_err(store_err(format!("write time {key:?}")))
        })
    }

    /// Stores every `(key, ms)` of `times` in one transaction (one commit: a start stamps
    /// its token's mint and expiry together).
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when a write fails (nothing is written then).
    pub fn times_set(&self, times: &[(&str, i64)]) -> Result<()> {
        self.with_conn(|conn| {
            let write = |conn: &mut rusqlite::Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                for (key, ms) in times {
                    set_time(&tx, key, *ms)?;
                }
                tx.commit()
            };
            write(conn).map_err(store_err("write times"))
        })
    }

    /// The secret stored under `key`; on first use, a fresh [`Secret::random`] is stored
    /// and returned. Create-or-read is one write transaction, so concurrent callers (even
    /// in other processes) all get the same secret, and it survives reopening the store.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the transaction fails (the message never
    /// holds the secret).
    pub fn secret_get_or_create(&self, key: &str) -> Result<Secret> {
        self.with_conn(|conn| {
            // The common case, a secret made earlier (an agent's SDK password on every
            // start), is one cached read and no write transaction; the insert below runs
            // only for a key with no secret yet.
            if let Some(value) = read_secret(conn, key)
                .map_err(store_err(format!("get or create secret {key:?}")))?
            {
                return Ok(Secret::new(value));
            }
            let fresh = Secret::random();
            let get_or_create = |conn: &mut rusqlite::Connection| -> rusqlite::Result<String> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute(
                    "INSERT INTO secrets (key, value) VALUES (?1, ?2) \
                     ON CONFLICT (key) DO NOTHING",
                    [key, fresh.expose()],
                )?;
                let value =
                    tx.query_row("SELECT value FROM secrets WHERE key = ?1", [key], |row| {
                        row.get(0)
                    })?;
                tx.commit()?;
                Ok(value)
            };
            get_or_create(conn)
                .map(Secret::new)
                .map_err(store_err(format!("get or create secret {key:?}")))
        })
    }

    /// The secret stored under `key`, or `None`. Never creates one (unlike
    /// [`TownStore::secret_get_or_create`]).
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the read fails (the message never holds
    /// the secret).
    pub fn secret_get(&self, key: &str) -> Result<Option<Secret>> {
        self.with_conn(|conn| {
            read_secret(conn, key)
                .map(|value| value.map(Secret::new))
                .map_err(store_err(format!("read secret {key:?}")))
        })
    }

    /// Stores `secret` under `key`, replacing any previous secret.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) when the write fails (the message never holds
    /// the secret; the previous secret is left as it was).
    pub fn secret_set(&self, key: &str, secret: &Secret) -> Result<()> {
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO secrets (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, secret.expose()],
            )
            .map_err(store_err(format!("write secret {key:?}")))?;
            Ok(())
        })
    }
}

/// Stores `ms` at `key` on `conn` (a connection or a transaction).
fn set_time(conn: &rusqlite::Connection, key: &str, ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO times (key, ms) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET ms = excluded.ms",
    )?
    .execute(rusqlite::params![key, ms])
    .map(|_| ())
}

/// The secret at `key`, if any.
fn read_secret(conn: &rusqlite::Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM secrets WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()
}
