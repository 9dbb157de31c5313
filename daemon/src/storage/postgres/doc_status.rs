//! `PgDocStatusStore`: LightRAG's `lightrag_doc_status` table (`PGDocStatusStorage`).
//!
//! `created_at`/`updated_at` (ISO strings) are stored as naive UTC timestamps and read back as
//! Python's `isoformat()` with `+00:00`; `chunks_count` is stored as -1 when absent and read back
//! as absent; `multimodal_processed` has no column (LightRAG drops it too).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{AssertSqlSafe, Row as _};

use super::kv::{Kind, count_rows, decode, dedup, encode};
use super::{WRITE_BATCH, db_err, next_cursor, sql_limit};
use crate::storage::{
    Cursor, DOC_STATUS_FIELDS, DocStatusStore, Page, Record, StorageError, StorageResult,
};

const TABLE: &str = "lightrag_doc_status";

/// Read columns in LightRAG's `get_by_id` order (after `id`).
const READ: &[(&str, &str, Kind)] = &[
    ("content_length", "content_length::text", Kind::Int),
    ("content_summary", "content_summary::text", Kind::Text),
    ("status", "status::text", Kind::Text),
    ("chunks_count", "chunks_count::text", Kind::Int),
    (
        "created_at",
        "to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')",
        Kind::Text,
    ),
    (
        "updated_at",
        "to_char(updated_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')",
        Kind::Text,
    ),
    ("file_path", "file_path", Kind::Text),
    ("chunks_list", "chunks_list::text", Kind::Json),
    ("metadata", "metadata::text", Kind::Json),
    ("error_msg", "error_msg", Kind::Text),
    ("track_id", "track_id::text", Kind::Text),
    ("content_hash", "content_hash", Kind::Text),
];

/// Written columns (the UNNEST order after `id`).
const WRITE: &[(&str, Kind)] = &[
    ("content_summary", Kind::Text),
    ("content_length", Kind::Int),
    ("chunks_count", Kind::Int),
    ("status", Kind::Text),
    ("file_path", Kind::Text),
    ("chunks_list", Kind::Json),
    ("track_id", Kind::Text),
    ("metadata", Kind::Json),
    ("error_msg", Kind::Text),
    ("content_hash", Kind::Text),
    ("created_at", Kind::Text),
    ("updated_at", Kind::Text),
];

const UPSERT: &str = "INSERT INTO lightrag_doc_status (workspace, id, content_summary, \
     content_length, chunks_count, status, file_path, chunks_list, track_id, metadata, error_msg, \
     content_hash, created_at, updated_at) \
     SELECT $1, u.id, u.summary, u.len::integer, COALESCE(u.cc::integer, -1), u.status, u.fp, \
     COALESCE(u.cl::jsonb, '[]'::jsonb), u.track, COALESCE(u.meta::jsonb, '{}'::jsonb), u.err, \
     u.hash, \
     COALESCE(u.ca::timestamptz AT TIME ZONE 'UTC', CURRENT_TIMESTAMP AT TIME ZONE 'UTC'), \
     COALESCE(u.ua::timestamptz AT TIME ZONE 'UTC', CURRENT_TIMESTAMP AT TIME ZONE 'UTC') \
     FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[]) \
     AS u(id, summary, len, cc, status, fp, cl, track, meta, err, hash, ca, ua) \
     ON CONFLICT (workspace, id) DO UPDATE SET content_summary = EXCLUDED.content_summary, \
     content_length = EXCLUDED.content_length, chunks_count = EXCLUDED.chunks_count, \
     status = EXCLUDED.status, file_path = EXCLUDED.file_path, \
     chunks_list = EXCLUDED.chunks_list, track_id = EXCLUDED.track_id, \
     metadata = EXCLUDED.metadata, error_msg = EXCLUDED.error_msg, \
     content_hash = COALESCE(NULLIF(EXCLUDED.content_hash, ''), lightrag_doc_status.content_hash), \
     created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at";

pub struct PgDocStatusStore {
    pool: PgPool,
    workspace: String,
    select: String,
}

impl PgDocStatusStore {
    pub(crate) fn new(pool: PgPool, workspace: String) -> PgDocStatusStore {
        let cols: Vec<&str> = READ.iter().map(|(_, e, _)| *e).collect();
        let select = format!("SELECT id, {} FROM {TABLE}", cols.join(", "));
        PgDocStatusStore {
            pool,
            workspace,
            select,
        }
    }

    fn record(row: &PgRow) -> StorageResult<(String, Record)> {
        let id: String = row.try_get(0).map_err(|e| db_err("read row", e))?;
        let mut rec = Record::new();
        for (i, (key, _, kind)) in READ.iter().enumerate() {
            let v: Option<String> = row.try_get(i + 1).map_err(|e| db_err("read row", e))?;
            let Some(text) = v else { continue };
            let what = format!("{TABLE}.{key} of {id:?}");
            let value = match *key {
                "created_at" | "updated_at" => Value::String(iso_utc(&text)),
                _ => decode(&text, *kind, &what)?,
            };
            if *key == "chunks_count" && value == -1 {
                continue;
            }
            rec.insert((*key).into(), value);
        }
        Ok((id, rec))
    }

    async fn fetch(&self, sql: String, bind: Binds<'_>) -> StorageResult<Vec<(String, Record)>> {
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(&self.workspace);
        q = match bind {
            Binds::Id(id) => q.bind(id.to_owned()),
            Binds::Ids(ids) => q.bind(ids.to_vec()),
            Binds::Page(after, limit) => q.bind(after).bind(sql_limit(limit)),
            Binds::Status(status, after, limit) => {
                q.bind(status.to_owned()).bind(after).bind(sql_limit(limit))
            }
        };
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err("read doc status", e))?;
        rows.iter().map(Self::record).collect()
    }
}

enum Binds<'a> {
    Id(&'a str),
    Ids(&'a [String]),
    Page(Option<String>, usize),
    Status(&'a str, Option<String>, usize),
}

/// `2025-01-01T00:00:00.000000` → Python's `isoformat()` of the UTC datetime.
fn iso_utc(text: &str) -> String {
    let base = text.strip_suffix(".000000").unwrap_or(text);
    format!("{base}+00:00")
}

#[async_trait]
impl DocStatusStore for PgDocStatusStore {
    async fn get(&self, id: &str) -> StorageResult<Option<Record>> {
        let sql = format!("{} WHERE workspace = $1 AND id = $2", self.select);
        Ok(self
            .fetch(sql, Binds::Id(id))
            .await?
            .into_iter()
            .next()
            .map(|(_, r)| r))
    }

    async fn get_many(&self, ids: &[String]) -> StorageResult<Vec<Option<Record>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("{} WHERE workspace = $1 AND id = ANY($2)", self.select);
        let found: hashbrown::HashMap<String, Record> = self
            .fetch(sql, Binds::Ids(ids))
            .await?
            .into_iter()
            .collect();
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    async fn upsert(&self, records: Vec<(String, Record)>) -> StorageResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        for (id, rec) in &records {
            if let Some(k) = rec
                .keys()
                .find(|k| !DOC_STATUS_FIELDS.contains(&k.as_str()))
            {
                return Err(StorageError::Invalid(format!(
                    "doc status \"{id}\": \"{k}\" is not a LightRAG doc-status field"
                )));
            }
            if !matches!(rec.get("status"), Some(Value::String(_))) {
                return Err(StorageError::Invalid(format!(
                    "doc status \"{id}\": \"status\" must be a string"
                )));
            }
        }
        let records = dedup(records);
        let mut tx = self.pool.begin().await.map_err(|e| db_err("begin", e))?;
        for batch in records.chunks(WRITE_BATCH) {
            let ids: Vec<&str> = batch.iter().map(|(k, _)| k.as_str()).collect();
            let mut cols: Vec<Vec<Option<String>>> = (0..WRITE.len())
                .map(|_| Vec::with_capacity(batch.len()))
                .collect();
            for (id, rec) in batch {
                for (arr, (key, kind)) in cols.iter_mut().zip(WRITE) {
                    let what = format!("doc status {id:?} field {key:?}");
                    arr.push(encode(rec.get(*key), *kind, &what)?);
                }
            }
            let mut q = sqlx::query(UPSERT).bind(&self.workspace).bind(ids);
            for col in cols {
                q = q.bind(col);
            }
            q.execute(&mut *tx)
                .await
                .map_err(|e| db_err("upsert doc status", e))?;
        }
        tx.commit().await.map_err(|e| db_err("commit", e))
    }

    async fn delete(&self, ids: &[String]) -> StorageResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM lightrag_doc_status WHERE workspace = $1 AND id = ANY($2)")
            .bind(&self.workspace)
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("delete doc status", e))?;
        Ok(())
    }

    async fn by_status(
        &self,
        status: &str,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, Record)>> {
        let sql = format!(
            "{} WHERE workspace = $1 AND status = $2 AND ($3::text IS NULL OR id > $3) \
             ORDER BY id LIMIT $4",
            self.select
        );
        let items = self
            .fetch(sql, Binds::Status(status, cursor.map(|c| c.0), limit))
            .await?;
        let next = next_cursor(items.len(), limit, items.last().map(|(k, _)| k.clone()));
        Ok(Page { items, next })
    }

    async fn counts_by_status(&self) -> StorageResult<BTreeMap<String, u64>> {
        let rows = sqlx::query(
            "SELECT status::text, count(*) FROM lightrag_doc_status \
             WHERE workspace = $1 AND status IS NOT NULL GROUP BY status",
        )
        .bind(&self.workspace)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("count doc status", e))?;
        let mut out = BTreeMap::new();
        for r in &rows {
            let s: String = r.try_get(0).map_err(|e| db_err("read row", e))?;
            let n: i64 = r.try_get(1).map_err(|e| db_err("read row", e))?;
            out.insert(s, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    async fn count(&self) -> StorageResult<u64> {
        count_rows(&self.pool, TABLE, &self.workspace).await
    }

    async fn page(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, Record)>> {
        let sql = format!(
            "{} WHERE workspace = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
            self.select
        );
        let items = self
            .fetch(sql, Binds::Page(cursor.map(|c| c.0), limit))
            .await?;
        let next = next_cursor(items.len(), limit, items.last().map(|(k, _)| k.clone()));
        Ok(Page { items, next })
    }

    async fn flush(&self) -> StorageResult<bool> {
        Ok(false)
    }

    // LightRAG's DDL indexes (workspace, content_hash) — partially, hence the repeated
    // predicate, which lets the planner use that index for a bound parameter — and
    // (workspace, file_path), so each lookup is one index probe whatever the workspace's size.
    fn indexed_lookups(&self) -> bool {
        true
    }

    async fn processed_with_hash(&self, hash: &str) -> StorageResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT id FROM lightrag_doc_status WHERE workspace = $1 AND content_hash = $2 \
             AND content_hash IS NOT NULL AND content_hash <> '' AND status = 'processed' \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(&self.workspace)
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_err("find doc status by content hash", e))
    }

    async fn id_with_file_path(&self, path: &str) -> StorageResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT id FROM lightrag_doc_status WHERE workspace = $1 AND file_path = $2 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(&self.workspace)
        .bind(path)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_err("find doc status by file path", e))
    }

    async fn file_paths_with_track_id(&self, track_id: &str) -> StorageResult<Vec<String>> {
        use futures::TryStreamExt as _;
        // Streamed: only the matching paths are kept, never the workspace's rows.
        sqlx::query_scalar(
            "SELECT file_path FROM lightrag_doc_status WHERE workspace = $1 AND track_id = $2 \
             AND file_path IS NOT NULL",
        )
        .bind(&self.workspace)
        .bind(track_id)
        .fetch(&self.pool)
        .try_collect()
        .await
        .map_err(|e| db_err("list doc status file paths", e))
    }
}

#[cfg(test)]
mod tests {
    use super::iso_utc;

    #[test]
    fn timestamps_read_back_like_python_isoformat() {
        assert_eq!(
            iso_utc("2025-01-01T00:00:00.000000"),
            "2025-01-01T00:00:00+00:00"
        );
        assert_eq!(
            iso_utc("2025-01-01T00:00:00.120000"),
            "2025-01-01T00:00:00.120000+00:00"
        );
    }
}
