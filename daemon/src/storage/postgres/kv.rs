//! `PgKvStore`: LightRAG's `PGKVStorage` tables, one per KV namespace.
//!
//! Record fields map to columns as LightRAG maps them (`full_docs.file_path` ↔ `doc_name`, the
//! LLM cache's `return` ↔ `return_value`, JSONB lists/objects, `create_time`/`update_time` ↔
//! timestamps read back as epoch seconds); other fields have no column and are dropped, as in
//! LightRAG. Records come back with `_id`, `create_time` and `update_time`, like the JSON store.

use async_trait::async_trait;
use indexmap::IndexMap;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{AssertSqlSafe, Row as _};

use super::{WRITE_BATCH, db_err, next_cursor, parse_json, sql_limit};
use crate::storage::{Cursor, KvNamespace, KvStore, Page, Record, StorageError, StorageResult};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Int,
    Json,
}

/// One record field and its column.
pub(crate) struct Col {
    pub key: &'static str,
    pub col: &'static str,
    pub kind: Kind,
    /// SQL used when the record has no value (LightRAG's column default).
    pub default: Option<&'static str>,
}

const fn c(key: &'static str, col: &'static str, kind: Kind) -> Col {
    Col {
        key,
        col,
        kind,
        default: None,
    }
}

const fn d(key: &'static str, kind: Kind, default: &'static str) -> Col {
    Col {
        key,
        col: key,
        kind,
        default: Some(default),
    }
}

pub(crate) struct Spec {
    pub table: &'static str,
    pub cols: &'static [Col],
}

const FULL_DOCS: &[Col] = &[
    c("content", "content", Kind::Text),
    c("file_path", "doc_name", Kind::Text),
    c("sidecar_location", "sidecar_location", Kind::Text),
    c("parse_format", "parse_format", Kind::Text),
    c("content_hash", "content_hash", Kind::Text),
    c("process_options", "process_options", Kind::Text),
    c("chunk_options", "chunk_options", Kind::Json),
    c("parse_engine", "parse_engine", Kind::Text),
];
const TEXT_CHUNKS: &[Col] = &[
    c("tokens", "tokens", Kind::Int),
    c("content", "content", Kind::Text),
    c("chunk_order_index", "chunk_order_index", Kind::Int),
    c("full_doc_id", "full_doc_id", Kind::Text),
    c("file_path", "file_path", Kind::Text),
    d("llm_cache_list", Kind::Json, "'[]'::jsonb"),
    c("heading", "heading", Kind::Json),
    c("sidecar", "sidecar", Kind::Json),
];
const LLM_CACHE: &[Col] = &[
    c("return", "return_value", Kind::Text),
    c("cache_type", "cache_type", Kind::Text),
    c("chunk_id", "chunk_id", Kind::Text),
    c("original_prompt", "original_prompt", Kind::Text),
    c("queryparam", "queryparam", Kind::Json),
];
const FULL_ENTITIES: &[Col] = &[
    c("entity_names", "entity_names", Kind::Json),
    c("count", "count", Kind::Int),
];
const FULL_RELATIONS: &[Col] = &[
    c("relation_pairs", "relation_pairs", Kind::Json),
    c("count", "count", Kind::Int),
];
const CHUNK_IDS: &[Col] = &[
    c("chunk_ids", "chunk_ids", Kind::Json),
    c("count", "count", Kind::Int),
];

pub(crate) fn spec(ns: KvNamespace) -> Spec {
    let (table, cols) = match ns {
        KvNamespace::FullDocs => ("lightrag_doc_full", FULL_DOCS),
        KvNamespace::TextChunks => ("lightrag_doc_chunks", TEXT_CHUNKS),
        KvNamespace::FullEntities => ("lightrag_full_entities", FULL_ENTITIES),
        KvNamespace::FullRelations => ("lightrag_full_relations", FULL_RELATIONS),
        KvNamespace::EntityChunks => ("lightrag_entity_chunks", CHUNK_IDS),
        KvNamespace::RelationChunks => ("lightrag_relation_chunks", CHUNK_IDS),
        KvNamespace::LlmResponseCache => ("lightrag_llm_cache", LLM_CACHE),
    };
    Spec { table, cols }
}

/// The text sent for a field (`None` for SQL NULL).
pub(crate) fn encode(v: Option<&Value>, kind: Kind, what: &str) -> StorageResult<Option<String>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    Ok(Some(match kind {
        Kind::Text => match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        Kind::Int => match v.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => i.to_string(),
            _ => {
                return Err(StorageError::Invalid(format!(
                    "{what}: expected a 32-bit integer, got {v}"
                )));
            }
        },
        Kind::Json => v.to_string(),
    }))
}

/// The value read back from a column's text.
pub(crate) fn decode(text: &str, kind: Kind, what: &str) -> StorageResult<Value> {
    match kind {
        Kind::Text => Ok(Value::String(text.to_owned())),
        Kind::Int => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|e| StorageError::Backend(format!("{what}: bad integer {text:?}: {e}"))),
        Kind::Json => parse_json(text, what),
    }
}

/// `col::text` for a select list.
pub(crate) fn select_text(col: &str) -> String {
    format!("{col}::text")
}

/// The SQL cast applied to an UNNESTed text value.
pub(crate) fn cast(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "",
        Kind::Int => "::integer",
        Kind::Json => "::jsonb",
    }
}

/// Last wins for a key given twice in one batch (one statement may not touch a row twice).
pub(crate) fn dedup<T>(items: Vec<(String, T)>) -> Vec<(String, T)> {
    let mut m: IndexMap<String, T> = IndexMap::with_capacity(items.len());
    for (k, v) in items {
        m.insert(k, v);
    }
    m.into_iter().collect()
}

pub struct PgKvStore {
    pool: PgPool,
    workspace: String,
    ns: KvNamespace,
    spec: Spec,
    select: String,
}

impl PgKvStore {
    pub(crate) fn new(pool: PgPool, workspace: String, ns: KvNamespace) -> PgKvStore {
        let spec = spec(ns);
        let mut cols: Vec<String> = vec!["id".into()];
        cols.extend(spec.cols.iter().map(|c| select_text(c.col)));
        cols.push("EXTRACT(EPOCH FROM create_time)::bigint::text".into());
        cols.push("EXTRACT(EPOCH FROM update_time)::bigint::text".into());
        let select = format!("SELECT {} FROM {}", cols.join(", "), spec.table);
        PgKvStore {
            pool,
            workspace,
            ns,
            spec,
            select,
        }
    }

    fn record(&self, row: &PgRow) -> StorageResult<(String, Record)> {
        let get = |i: usize| -> StorageResult<Option<String>> {
            row.try_get::<Option<String>, _>(i)
                .map_err(|e| db_err("read row", e))
        };
        let id: String = row.try_get(0).map_err(|e| db_err("read row", e))?;
        let mut rec = Record::new();
        let n = self.spec.cols.len();
        for (i, col) in self.spec.cols.iter().enumerate() {
            if let Some(text) = get(i + 1)? {
                let what = format!("{}.{} of {id:?}", self.spec.table, col.col);
                rec.insert(col.key.into(), decode(&text, col.kind, &what)?);
            }
        }
        for (i, key) in [(n + 1, "create_time"), (n + 2, "update_time")] {
            if let Some(text) = get(i)? {
                let what = format!("{}.{key} of {id:?}", self.spec.table);
                rec.insert(key.into(), decode(&text, Kind::Int, &what)?);
            }
        }
        rec.insert("_id".into(), Value::String(id.clone()));
        Ok((id, rec))
    }

    async fn upsert_batch(
        &self,
        tx: &mut sqlx::PgConnection,
        batch: &[(String, Record)],
    ) -> StorageResult<()> {
        let cols = self.spec.cols;
        let mut arrays: Vec<Vec<Option<String>>> =
            vec![Vec::with_capacity(batch.len()); cols.len()];
        let ids: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
        for (id, rec) in batch {
            for (arr, col) in arrays.iter_mut().zip(cols) {
                let what = format!("{} record {id:?} field {:?}", self.ns.as_str(), col.key);
                arr.push(encode(rec.get(col.key), col.kind, &what)?);
            }
        }
        let names: Vec<&str> = cols.iter().map(|c| c.col).collect();
        let params: Vec<String> = (0..cols.len())
            .map(|i| format!("${}::text[]", i + 3))
            .collect();
        let values: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| match c.default {
                Some(def) => format!("COALESCE(u.c{i}{}, {def})", cast(c.kind)),
                None => format!("u.c{i}{}", cast(c.kind)),
            })
            .collect();
        let aliases: Vec<String> = (0..cols.len()).map(|i| format!("c{i}")).collect();
        let sets: Vec<String> = names
            .iter()
            .map(|n| format!("{n} = EXCLUDED.{n}"))
            .collect();
        let sql = format!(
            "INSERT INTO {t} (workspace, id, {names}, create_time, update_time) \
             SELECT $1, u.id, {values}, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP \
             FROM UNNEST($2::text[], {params}) AS u(id, {aliases}) \
             ON CONFLICT (workspace, id) DO UPDATE SET {sets}, update_time = EXCLUDED.update_time",
            t = self.spec.table,
            names = names.join(", "),
            values = values.join(", "),
            params = params.join(", "),
            aliases = aliases.join(", "),
            sets = sets.join(", "),
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(ids);
        for arr in arrays {
            q = q.bind(arr);
        }
        q.execute(&mut *tx)
            .await
            .map_err(|e| db_err(&format!("upsert {}", self.spec.table), e))?;
        Ok(())
    }
}

#[async_trait]
impl KvStore for PgKvStore {
    fn namespace(&self) -> KvNamespace {
        self.ns
    }

    async fn get(&self, id: &str) -> StorageResult<Option<Record>> {
        let sql = format!("{} WHERE workspace = $1 AND id = $2", self.select);
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_err(&format!("read {}", self.spec.table), e))?;
        row.map(|r| self.record(&r).map(|(_, rec)| rec)).transpose()
    }

    async fn get_many(&self, ids: &[String]) -> StorageResult<Vec<Option<Record>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("{} WHERE workspace = $1 AND id = ANY($2)", self.select);
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err(&format!("read {}", self.spec.table), e))?;
        let mut found = hashbrown::HashMap::with_capacity(rows.len());
        for r in &rows {
            let (id, rec) = self.record(r)?;
            found.insert(id, rec);
        }
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    async fn missing(&self, ids: &[String]) -> StorageResult<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT u.id FROM UNNEST($2::text[]) WITH ORDINALITY AS u(id, n) \
             WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE t.workspace = $1 AND t.id = u.id) \
             ORDER BY u.n",
            self.spec.table
        );
        sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err(&format!("filter keys of {}", self.spec.table), e))
    }

    async fn upsert(&self, records: Vec<(String, Record)>) -> StorageResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let records = dedup(records);
        let mut tx = self.pool.begin().await.map_err(|e| db_err("begin", e))?;
        for batch in records.chunks(WRITE_BATCH) {
            self.upsert_batch(&mut tx, batch).await?;
        }
        tx.commit().await.map_err(|e| db_err("commit", e))
    }

    async fn delete(&self, ids: &[String]) -> StorageResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM {} WHERE workspace = $1 AND id = ANY($2)",
            self.spec.table
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(|e| db_err(&format!("delete from {}", self.spec.table), e))?;
        Ok(())
    }

    async fn count(&self) -> StorageResult<u64> {
        count_rows(&self.pool, self.spec.table, &self.workspace).await
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
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(cursor.map(|c| c.0))
            .bind(sql_limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err(&format!("page {}", self.spec.table), e))?;
        let items = rows
            .iter()
            .map(|r| self.record(r))
            .collect::<StorageResult<Vec<_>>>()?;
        let next = next_cursor(items.len(), limit, items.last().map(|(k, _)| k.clone()));
        Ok(Page { items, next })
    }

    async fn flush(&self) -> StorageResult<bool> {
        Ok(false)
    }
}

/// `count(*)` of a workspace's rows.
pub(crate) async fn count_rows(pool: &PgPool, table: &str, workspace: &str) -> StorageResult<u64> {
    let sql = format!("SELECT count(*) FROM {table} WHERE workspace = $1");
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(workspace)
        .fetch_one(pool)
        .await
        .map_err(|e| db_err(&format!("count {table}"), e))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
