//! Checkpoints: how far each store got, committed in the same transaction as the batch they
//! describe, in two tables of the target (`hrag_migration_job`, `hrag_migration_progress`),
//! mirrored to `<state>/migrations/<db>.json` for people and tools.
//!
//! Invariant: a store's row says `next_ordinal = n` exactly when source records `0..n` are in
//! the target, so a resumed copy starts at `n` and never writes a record twice. The job row
//! ties the checkpoint to the source fingerprint and the target (host, database, workspace;
//! never credentials); `--resume` refuses when either changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::digest::Digest;
use super::source::Fingerprint;
use crate::storage::postgres::db_err;
use crate::storage::{StorageError, StorageResult};

pub const DDL: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS hrag_migration_job (workspace text PRIMARY KEY, \
     fingerprint jsonb NOT NULL, target text NOT NULL, now_us bigint NOT NULL, \
     embedding_model text, embedding_dim integer NOT NULL, state text NOT NULL, \
     started_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS hrag_migration_progress (workspace text NOT NULL, \
     store text NOT NULL, next_ordinal bigint NOT NULL, records bigint NOT NULL, \
     bytes bigint NOT NULL, digest bytea NOT NULL, \
     updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (workspace, store))",
];

/// The job row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub fingerprint: Fingerprint,
    /// `host:port/database workspace`, no credentials.
    pub target: String,
    /// Stands in for missing source timestamps (see `RowMapper`).
    pub now_us: i64,
    pub embedding_model: Option<String>,
    pub embedding_dim: usize,
    /// `copying`, `copied`, `verified`, `switched`.
    pub state: String,
}

/// One store's progress.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoreProgress {
    pub next_ordinal: u64,
    pub bytes: u64,
    pub digest: Digest,
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub async fn ensure_tables(conn: &mut PgConnection) -> StorageResult<()> {
    for ddl in DDL {
        sqlx::query(ddl)
            .execute(&mut *conn)
            .await
            .map_err(|e| db_err("create checkpoint tables", e))?;
    }
    Ok(())
}

pub async fn load_job(
    conn: &mut PgConnection,
    workspace: &str,
) -> StorageResult<Option<JobRecord>> {
    let row: Option<(serde_json::Value, String, i64, Option<String>, i32, String)> =
        sqlx::query_as(
            "SELECT fingerprint, target, now_us, embedding_model, embedding_dim, state \
             FROM hrag_migration_job WHERE workspace = $1",
        )
        .bind(workspace)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| db_err("read the migration checkpoint", e))?;
    let Some((fp, target, now_us, embedding_model, dim, state)) = row else {
        return Ok(None);
    };
    let fingerprint = serde_json::from_value(fp).map_err(|e| {
        StorageError::Backend(format!(
            "the migration checkpoint's fingerprint is unreadable: {e}"
        ))
    })?;
    Ok(Some(JobRecord {
        fingerprint,
        target,
        now_us,
        embedding_model,
        embedding_dim: usize::try_from(dim).unwrap_or(0),
        state,
    }))
}

pub async fn save_job(
    conn: &mut PgConnection,
    workspace: &str,
    job: &JobRecord,
) -> StorageResult<()> {
    let fp = serde_json::to_value(&job.fingerprint)
        .map_err(|e| StorageError::Backend(format!("cannot encode the fingerprint: {e}")))?;
    sqlx::query(
        "INSERT INTO hrag_migration_job (workspace, fingerprint, target, now_us, \
         embedding_model, embedding_dim, state) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (workspace) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
         target = EXCLUDED.target, now_us = EXCLUDED.now_us, \
         embedding_model = EXCLUDED.embedding_model, embedding_dim = EXCLUDED.embedding_dim, \
         state = EXCLUDED.state, updated_at = now()",
    )
    .bind(workspace)
    .bind(fp)
    .bind(&job.target)
    .bind(job.now_us)
    .bind(&job.embedding_model)
    .bind(i32::try_from(job.embedding_dim).unwrap_or(i32::MAX))
    .bind(&job.state)
    .execute(&mut *conn)
    .await
    .map_err(|e| db_err("write the migration checkpoint", e))?;
    Ok(())
}

pub async fn set_state(conn: &mut PgConnection, workspace: &str, state: &str) -> StorageResult<()> {
    sqlx::query(
        "UPDATE hrag_migration_job SET state = $2, updated_at = now() WHERE workspace = $1",
    )
    .bind(workspace)
    .bind(state)
    .execute(&mut *conn)
    .await
    .map_err(|e| db_err("write the migration checkpoint", e))?;
    Ok(())
}

pub async fn load_progress(
    conn: &mut PgConnection,
    workspace: &str,
) -> StorageResult<BTreeMap<String, StoreProgress>> {
    let rows: Vec<(String, i64, i64, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT store, next_ordinal, records, bytes, digest FROM hrag_migration_progress \
         WHERE workspace = $1",
    )
    .bind(workspace)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_err("read the migration checkpoint", e))?;
    let mut out = BTreeMap::new();
    for (store, next, records, bytes, digest) in rows {
        let digest =
            Digest::from_bytes(u64::try_from(records).unwrap_or(0), &digest).ok_or_else(|| {
                StorageError::Backend(format!("the checkpoint of {store} has a malformed digest"))
            })?;
        out.insert(
            store,
            StoreProgress {
                next_ordinal: u64::try_from(next).unwrap_or(0),
                bytes: u64::try_from(bytes).unwrap_or(0),
                digest,
            },
        );
    }
    Ok(out)
}

/// Writes one store's progress; call inside the batch's transaction.
pub async fn save_progress(
    conn: &mut PgConnection,
    workspace: &str,
    store: &str,
    p: &StoreProgress,
) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO hrag_migration_progress (workspace, store, next_ordinal, records, bytes, \
         digest) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace, store) DO UPDATE SET \
         next_ordinal = EXCLUDED.next_ordinal, records = EXCLUDED.records, \
         bytes = EXCLUDED.bytes, digest = EXCLUDED.digest, updated_at = now()",
    )
    .bind(workspace)
    .bind(store)
    .bind(i64_of(p.next_ordinal))
    .bind(i64_of(p.digest.records))
    .bind(i64_of(p.bytes))
    .bind(p.digest.to_bytes())
    .execute(&mut *conn)
    .await
    .map_err(|e| db_err("write the migration checkpoint", e))?;
    Ok(())
}

/// Forgets a workspace's checkpoint (a fresh or forced start).
pub async fn clear(conn: &mut PgConnection, workspace: &str) -> StorageResult<()> {
    for t in ["hrag_migration_progress", "hrag_migration_job"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {t} WHERE workspace = $1"
        )))
        .bind(workspace)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_err("clear the migration checkpoint", e))?;
    }
    Ok(())
}

/// The state-dir mirror of a checkpoint (informational: the target's tables are the truth,
/// since only they commit with the data).
#[derive(Debug, Serialize)]
pub struct Mirror<'a> {
    pub db: &'a str,
    pub target: &'a str,
    pub state: &'a str,
    pub fingerprint: &'a Fingerprint,
    pub stores: BTreeMap<String, MirrorStore>,
}

#[derive(Debug, Serialize)]
pub struct MirrorStore {
    pub next_ordinal: u64,
    pub records: u64,
    pub bytes: u64,
}

pub fn mirror_path(state_dir: &Path, db: &str) -> PathBuf {
    state_dir.join("migrations").join(format!("{db}.json"))
}

pub fn write_mirror(state_dir: &Path, m: &Mirror<'_>) -> std::io::Result<()> {
    let path = mirror_path(state_dir, m.db);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_vec_pretty(m).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&path, &text, 0o600)
}
