//! SQLite persistence (WAL). Objects of every API are JSON documents keyed by
//! (api, kind, id); issued secrets live only as hashes in `credentials`.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("creating the database {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored document {kind}/{id} is not valid: {source}")]
    Document {
        kind: String,
        id: String,
        source: serde_json::Error,
    },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    api TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
    parent TEXT NOT NULL DEFAULT '', doc TEXT NOT NULL,
    PRIMARY KEY (api, kind, id));
CREATE INDEX IF NOT EXISTS objects_by_parent ON objects (api, kind, parent);
CREATE TABLE IF NOT EXISTS credentials (
    hash BLOB PRIMARY KEY, api TEXT NOT NULL, owner TEXT NOT NULL,
    not_after_ms INTEGER);
CREATE INDEX IF NOT EXISTS credentials_by_owner ON credentials (api, owner);
CREATE TABLE IF NOT EXISTS idempotency (
    lookup BLOB PRIMARY KEY, fingerprint BLOB NOT NULL, status INTEGER NOT NULL,
    sealed_response TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, seen_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS nonces_by_time ON nonces (seen_ms);
CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

pub struct Db {
    conn: Mutex<Connection>,
}

impl Db {
    /// Opens (creating owner-only, if new) the database at `path`; SQLite gives
    /// its WAL and shared-memory files the same permissions.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| DbError::Create {
                path: path.to_owned(),
                source,
            })?;
        let conn = Connection::open(path)?;
        // NORMAL synchronous in WAL mode loses nothing on a process crash (kill -9), only on power loss.
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` in one transaction; the store is small and every operation is a
    /// handful of indexed statements, so one serialised connection is enough.
    pub fn write<T, E: From<DbError>>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let out = f(&Tx(&tx))?;
        tx.commit().map_err(DbError::from)?;
        Ok(out)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the transaction rolls back).
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct Tx<'a>(&'a rusqlite::Transaction<'a>);

impl Tx<'_> {
    pub fn get<T: DeserializeOwned>(&self, api: &str, kind: &str, id: &str) -> Result<Option<T>, DbError> {
        let doc: Option<String> = self
            .0
            .prepare_cached("SELECT doc FROM objects WHERE api = ?1 AND kind = ?2 AND id = ?3")?
            .query_row(params![api, kind, id], |row| row.get(0))
            .optional()?;
        doc.map(|doc| decode(kind, id, &doc)).transpose()
    }

    pub fn put<T: Serialize>(
        &self,
        api: &str,
        kind: &str,
        id: &str,
        parent: &str,
        value: &T,
    ) -> Result<(), DbError> {
        let doc = serde_json::to_string(value).map_err(|source| DbError::Document {
            kind: kind.to_owned(),
            id: id.to_owned(),
            source,
        })?;
        self.0
            .prepare_cached(
                "INSERT INTO objects (api, kind, id, parent, doc) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (api, kind, id) DO UPDATE SET parent = excluded.parent, doc = excluded.doc",
            )?
            .execute(params![api, kind, id, parent, doc])?;
        Ok(())
    }

    /// Documents of one kind in creation order, optionally only those under `parent`.
    pub fn list<T: DeserializeOwned>(
        &self,
        api: &str,
        kind: &str,
        parent: Option<&str>,
    ) -> Result<Vec<T>, DbError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, doc FROM objects WHERE api = ?1 AND kind = ?2 AND (?3 IS NULL OR parent = ?3) ORDER BY rowid",
        )?;
        let rows = stmt.query_map(params![api, kind, parent], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (id, doc) = row?;
            decode(kind, &id, &doc)
        })
        .collect()
    }

    pub fn delete(&self, api: &str, kind: &str, id: &str) -> Result<bool, DbError> {
        let n = self
            .0
            .prepare_cached("DELETE FROM objects WHERE api = ?1 AND kind = ?2 AND id = ?3")?
            .execute(params![api, kind, id])?;
        Ok(n > 0)
    }

    /// The next value of a named counter, starting at 1.
    pub fn next_sequence(&self, name: &str) -> Result<i64, DbError> {
        Ok(self
            .0
            .prepare_cached(
                "INSERT INTO sequences (name, value) VALUES (?1, 1)
                 ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
            )?
            .query_row(params![name], |row| row.get(0))?)
    }

    pub fn add_credential(
        &self,
        hash: &[u8; 32],
        api: &str,
        owner: &str,
        not_after_ms: Option<i64>,
    ) -> Result<(), DbError> {
        self.0
            .prepare_cached(
                "INSERT OR REPLACE INTO credentials (hash, api, owner, not_after_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![hash.as_slice(), api, owner, not_after_ms])?;
        Ok(())
    }

    /// The owner of a secret hash that is still within its validity, if any.
    pub fn credential_owner(
        &self,
        hash: &[u8; 32],
        api: &str,
        now_ms: i64,
    ) -> Result<Option<String>, DbError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT owner FROM credentials WHERE hash = ?1 AND api = ?2 AND (not_after_ms IS NULL OR not_after_ms > ?3)",
            )?
            .query_row(params![hash.as_slice(), api, now_ms], |row| row.get(0))
            .optional()?)
    }

    /// Retires `owner`'s current secret: it stays valid until `retain_until_ms`,
    /// while secrets retired earlier end now.
    pub fn retire_credentials(
        &self,
        api: &str,
        owner: &str,
        now_ms: i64,
        retain_until_ms: i64,
    ) -> Result<(), DbError> {
        self.0
            .prepare_cached("UPDATE credentials SET not_after_ms = ?3 WHERE api = ?1 AND owner = ?2 AND not_after_ms > ?3")?
            .execute(params![api, owner, now_ms])?;
        self.0
            .prepare_cached("UPDATE credentials SET not_after_ms = ?3 WHERE api = ?1 AND owner = ?2 AND not_after_ms IS NULL")?
            .execute(params![api, owner, retain_until_ms])?;
        Ok(())
    }

    pub fn delete_credentials(&self, api: &str, owner: &str) -> Result<(), DbError> {
        self.0
            .prepare_cached("DELETE FROM credentials WHERE api = ?1 AND owner = ?2")?
            .execute(params![api, owner])?;
        Ok(())
    }

    pub fn idempotent_response(&self, lookup: &[u8; 32]) -> Result<Option<(Vec<u8>, u16, String)>, DbError> {
        Ok(self
            .0
            .prepare_cached("SELECT fingerprint, status, sealed_response FROM idempotency WHERE lookup = ?1")?
            .query_row(params![lookup.as_slice()], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?)
    }

    pub fn record_idempotent_response(
        &self,
        lookup: &[u8; 32],
        fingerprint: &[u8; 32],
        status: u16,
        sealed_response: &str,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.0
            .prepare_cached(
                "INSERT OR REPLACE INTO idempotency (lookup, fingerprint, status, sealed_response, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![lookup.as_slice(), fingerprint.as_slice(), status, sealed_response, now_ms])?;
        Ok(())
    }

    /// Records a nonce; false when it was already seen (a replay).
    pub fn remember_nonce(&self, nonce: &str, now_ms: i64, forget_before_ms: i64) -> Result<bool, DbError> {
        self.0
            .prepare_cached("DELETE FROM nonces WHERE seen_ms < ?1")?
            .execute(params![forget_before_ms])?;
        let n = self
            .0
            .prepare_cached("INSERT OR IGNORE INTO nonces (nonce, seen_ms) VALUES (?1, ?2)")?
            .execute(params![nonce, now_ms])?;
        Ok(n == 1)
    }
}

fn decode<T: DeserializeOwned>(kind: &str, id: &str, doc: &str) -> Result<T, DbError> {
    serde_json::from_str(doc).map_err(|source| DbError::Document {
        kind: kind.to_owned(),
        id: id.to_owned(),
        source,
    })
}
