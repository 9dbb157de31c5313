//! `PgVectorStore`: LightRAG's `PGVectorStorage` rows in the per-model `lightrag_vdb_*` tables.
//!
//! Raw embeddings go into `content_vector` (as LightRAG stores them: not normalised); queries
//! use pgvector's cosine distance `<=>`. Meta fields map to LightRAG's columns and come back in
//! the JSON store's shape: entities' and relations' `source_id` (chunk ids joined by `<SEP>`)
//! ↔ `chunk_ids varchar[]`; relations' `src_id`/`tgt_id` ↔ `source_id`/`target_id`, sorted.

use async_trait::async_trait;
use pgvector::Vector;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{AssertSqlSafe, Row as _};

use super::kv::{Kind, decode, dedup, encode};
use super::{WRITE_BATCH, db_err, next_cursor, sql_limit};
use crate::storage::{
    Cursor, Page, Record, StorageError, StorageResult, VectorItem, VectorMatch, VectorNamespace,
    VectorStore,
};

const SEP: &str = "<SEP>";

pub struct PgVectorStore {
    pool: PgPool,
    workspace: String,
    ns: VectorNamespace,
    table: String,
    dim: usize,
}

/// (meta key, SQL expression read as text, kind) per namespace, in `meta_fields` order.
fn meta_select(ns: VectorNamespace) -> &'static [(&'static str, &'static str, Kind)] {
    match ns {
        VectorNamespace::Chunks => &[
            ("full_doc_id", "full_doc_id::text", Kind::Text),
            ("content", "content", Kind::Text),
            ("file_path", "file_path", Kind::Text),
        ],
        VectorNamespace::Entities => &[
            ("entity_name", "entity_name::text", Kind::Text),
            (
                "source_id",
                "array_to_string(chunk_ids, '<SEP>')",
                Kind::Text,
            ),
            ("content", "content", Kind::Text),
            ("file_path", "file_path", Kind::Text),
        ],
        VectorNamespace::Relationships => &[
            ("src_id", "source_id::text", Kind::Text),
            ("tgt_id", "target_id::text", Kind::Text),
            (
                "source_id",
                "array_to_string(chunk_ids, '<SEP>')",
                Kind::Text,
            ),
            ("content", "content", Kind::Text),
            ("file_path", "file_path", Kind::Text),
        ],
    }
}

impl PgVectorStore {
    pub(crate) fn new(
        pool: PgPool,
        workspace: String,
        ns: VectorNamespace,
        table: String,
        dim: usize,
    ) -> PgVectorStore {
        PgVectorStore {
            pool,
            workspace,
            ns,
            table,
            dim,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn meta_list(&self) -> String {
        meta_select(self.ns)
            .iter()
            .map(|(_, e, _)| *e)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Reads meta from columns `1..` of a row whose column 0 is the id.
    fn meta(&self, row: &PgRow, id: &str) -> StorageResult<Record> {
        let mut meta = Record::new();
        for (i, (key, _, kind)) in meta_select(self.ns).iter().enumerate() {
            let v: Option<String> = row.try_get(i + 1).map_err(|e| db_err("read row", e))?;
            if let Some(text) = v {
                let what = format!("{}.{key} of {id:?}", self.table);
                meta.insert((*key).into(), decode(&text, *kind, &what)?);
            }
        }
        Ok(meta)
    }

    fn item(&self, row: &PgRow) -> StorageResult<VectorItem> {
        let id: String = row.try_get(0).map_err(|e| db_err("read row", e))?;
        let meta = self.meta(row, &id)?;
        let n = meta_select(self.ns).len() + 1;
        let v: Option<Vector> = row.try_get(n).map_err(|e| db_err("read vector", e))?;
        Ok(VectorItem {
            id,
            meta,
            vector: v.map(|v| v.to_vec()).unwrap_or_default(),
        })
    }

    fn select(&self) -> String {
        format!(
            "SELECT id, {}, content_vector FROM {}",
            self.meta_list(),
            self.table
        )
    }

    fn check_dim(&self, id: &str, len: usize) -> StorageResult<()> {
        if len != self.dim {
            return Err(StorageError::Invalid(format!(
                "vector {id:?} for {} has {len} dimensions, the store has {}",
                self.ns.as_str(),
                self.dim
            )));
        }
        Ok(())
    }

    async fn upsert_batch(
        &self,
        conn: &mut sqlx::PgConnection,
        batch: &[(String, VectorItem)],
    ) -> StorageResult<()> {
        let text = |item: &VectorItem, key: &str| -> StorageResult<Option<String>> {
            let what = format!("{} row {:?} field {key:?}", self.ns.as_str(), item.id);
            encode(item.meta.get(key), Kind::Text, &what)
        };
        let int = |item: &VectorItem, key: &str| -> StorageResult<Option<String>> {
            let what = format!("{} row {:?} field {key:?}", self.ns.as_str(), item.id);
            encode(item.meta.get(key), Kind::Int, &what)
        };
        let ids: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
        let vectors: Vec<Vector> = batch
            .iter()
            .map(|(_, it)| Vector::from(it.vector.clone()))
            .collect();
        let (sql, cols): (String, Vec<Vec<Option<String>>>) = match self.ns {
            // LightRAG writes a chunk row's `tokens` and `chunk_order_index` from the chunk
            // itself; callers that pass only the namespace's meta fields get them from the
            // chunk's text_chunks record, written before its vector.
            VectorNamespace::Chunks => {
                let mut c = (0..5)
                    .map(|_| Vec::with_capacity(batch.len()))
                    .collect::<Vec<_>>();
                for (_, it) in batch {
                    c[0].push(int(it, "tokens")?);
                    c[1].push(int(it, "chunk_order_index")?);
                    c[2].push(text(it, "full_doc_id")?);
                    c[3].push(text(it, "content")?);
                    c[4].push(text(it, "file_path")?);
                }
                let sql = format!(
                    "INSERT INTO {t} (workspace, id, tokens, chunk_order_index, full_doc_id, \
                     content, content_vector, file_path, create_time, update_time) \
                     SELECT $1, u.id, COALESCE(u.tokens::integer, c.tokens), \
                     COALESCE(u.coi::integer, c.chunk_order_index), u.fdi, u.content, u.v, \
                     u.fp, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP \
                     FROM UNNEST($2::text[], $3::vector[], $4::text[], $5::text[], $6::text[], \
                     $7::text[], $8::text[]) AS u(id, v, tokens, coi, fdi, content, fp) \
                     LEFT JOIN lightrag_doc_chunks c ON c.workspace = $1 AND c.id = u.id \
                     ON CONFLICT (workspace, id) DO UPDATE SET tokens = EXCLUDED.tokens, \
                     chunk_order_index = EXCLUDED.chunk_order_index, \
                     full_doc_id = EXCLUDED.full_doc_id, content = EXCLUDED.content, \
                     content_vector = EXCLUDED.content_vector, file_path = EXCLUDED.file_path, \
                     update_time = EXCLUDED.update_time",
                    t = self.table
                );
                (sql, c)
            }
            VectorNamespace::Entities => {
                let mut c = (0..4)
                    .map(|_| Vec::with_capacity(batch.len()))
                    .collect::<Vec<_>>();
                for (_, it) in batch {
                    c[0].push(text(it, "entity_name")?);
                    c[1].push(text(it, "content")?);
                    c[2].push(text(it, "source_id")?);
                    c[3].push(text(it, "file_path")?);
                }
                let sql = format!(
                    "INSERT INTO {t} (workspace, id, entity_name, content, content_vector, \
                     chunk_ids, file_path, create_time, update_time) \
                     SELECT $1, u.id, u.name, u.content, u.v, \
                     string_to_array(u.src, '{SEP}')::varchar[], u.fp, \
                     CURRENT_TIMESTAMP, CURRENT_TIMESTAMP \
                     FROM UNNEST($2::text[], $3::vector[], $4::text[], $5::text[], $6::text[], \
                     $7::text[]) AS u(id, v, name, content, src, fp) \
                     ON CONFLICT (workspace, id) DO UPDATE SET entity_name = EXCLUDED.entity_name, \
                     content = EXCLUDED.content, content_vector = EXCLUDED.content_vector, \
                     chunk_ids = EXCLUDED.chunk_ids, file_path = EXCLUDED.file_path, \
                     update_time = EXCLUDED.update_time",
                    t = self.table
                );
                (sql, c)
            }
            VectorNamespace::Relationships => {
                let mut c = (0..5)
                    .map(|_| Vec::with_capacity(batch.len()))
                    .collect::<Vec<_>>();
                for (_, it) in batch {
                    let a = text(it, "src_id")?;
                    let b = text(it, "tgt_id")?;
                    // LightRAG stores the two entity names sorted (Python string order).
                    let (a, b) = match (a, b) {
                        (Some(a), Some(b)) if b < a => (Some(b), Some(a)),
                        other => other,
                    };
                    c[0].push(a);
                    c[1].push(b);
                    c[2].push(text(it, "content")?);
                    c[3].push(text(it, "source_id")?);
                    c[4].push(text(it, "file_path")?);
                }
                let sql = format!(
                    "INSERT INTO {t} (workspace, id, source_id, target_id, content, \
                     content_vector, chunk_ids, file_path, create_time, update_time) \
                     SELECT $1, u.id, u.a, u.b, u.content, u.v, \
                     string_to_array(u.src, '{SEP}')::varchar[], u.fp, \
                     CURRENT_TIMESTAMP, CURRENT_TIMESTAMP \
                     FROM UNNEST($2::text[], $3::vector[], $4::text[], $5::text[], $6::text[], \
                     $7::text[], $8::text[]) AS u(id, v, a, b, content, src, fp) \
                     ON CONFLICT (workspace, id) DO UPDATE SET source_id = EXCLUDED.source_id, \
                     target_id = EXCLUDED.target_id, content = EXCLUDED.content, \
                     content_vector = EXCLUDED.content_vector, chunk_ids = EXCLUDED.chunk_ids, \
                     file_path = EXCLUDED.file_path, update_time = EXCLUDED.update_time",
                    t = self.table
                );
                (sql, c)
            }
        };
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(ids)
            .bind(vectors);
        for col in cols {
            q = q.bind(col);
        }
        q.execute(&mut *conn)
            .await
            .map_err(|e| db_err(&format!("upsert {}", self.table), e))?;
        Ok(())
    }
}

#[async_trait]
impl VectorStore for PgVectorStore {
    fn namespace(&self) -> VectorNamespace {
        self.ns
    }

    fn dim(&self) -> usize {
        self.dim
    }

    async fn upsert(&self, items: Vec<VectorItem>) -> StorageResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        for it in &items {
            self.check_dim(&it.id, it.vector.len())?;
        }
        let items = dedup(items.into_iter().map(|it| (it.id.clone(), it)).collect());
        let mut tx = self.pool.begin().await.map_err(|e| db_err("begin", e))?;
        for batch in items.chunks(WRITE_BATCH) {
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
            self.table
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(|e| db_err(&format!("delete from {}", self.table), e))?;
        Ok(())
    }

    async fn get(&self, ids: &[String]) -> StorageResult<Vec<Option<VectorItem>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("{} WHERE workspace = $1 AND id = ANY($2)", self.select());
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err(&format!("read {}", self.table), e))?;
        let mut found = hashbrown::HashMap::with_capacity(rows.len());
        for r in &rows {
            let it = self.item(r)?;
            found.insert(it.id.clone(), it);
        }
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    async fn query(
        &self,
        query: &[f32],
        top_k: usize,
        threshold: f32,
    ) -> StorageResult<Vec<VectorMatch>> {
        if top_k == 0 {
            return Ok(Vec::new());
        }
        self.check_dim("query", query.len())?;
        let mut tx = self.pool.begin().await.map_err(|e| db_err("begin", e))?;
        // HNSW returns at most ef_search rows; ask for enough, and let pgvector ≥ 0.8 keep
        // scanning past other workspaces' rows.
        let ef = top_k.clamp(40, 1000).to_string();
        sqlx::query(
            "SELECT set_config('hnsw.ef_search', $1, true), \
             set_config('hnsw.iterative_scan', 'relaxed_order', true), \
             set_config('ivfflat.probes', '10', true), \
             set_config('ivfflat.iterative_scan', 'relaxed_order', true)",
        )
        .bind(ef)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("configure vector search", e))?;
        // Above pgvector's `vector` index limit the index is on a halfvec expression: order by
        // it (so the index is used), over-fetch, and rank by the exact distance below.
        let half = super::schema::uses_halfvec(self.dim);
        let order = if half {
            format!(
                "content_vector::halfvec({d}) <=> $2::halfvec({d})",
                d = self.dim
            )
        } else {
            "content_vector <=> $2".to_owned()
        };
        let fetch = if half { top_k.saturating_mul(2) } else { top_k };
        let sql = format!(
            "SELECT id, {meta}, (content_vector <=> $2)::float8 AS dist FROM {t} \
             WHERE workspace = $1 AND content_vector <=> $2 <= $3 \
             ORDER BY {order} LIMIT $4",
            meta = self.meta_list(),
            t = self.table
        );
        let max_dist = 1.0 - f64::from(threshold);
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(Vector::from(query.to_vec()))
            .bind(max_dist)
            .bind(sql_limit(fetch))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db_err(&format!("query {}", self.table), e))?;
        tx.commit().await.map_err(|e| db_err("commit", e))?;
        let n = meta_select(self.ns).len() + 1;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get(0).map_err(|e| db_err("read row", e))?;
            let meta = self.meta(r, &id)?;
            let dist: f64 = r.try_get(n).map_err(|e| db_err("read distance", e))?;
            #[allow(clippy::cast_possible_truncation)]
            let score = (1.0 - dist) as f32;
            out.push(VectorMatch { id, score, meta });
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        out.truncate(top_k);
        Ok(out)
    }

    async fn count(&self) -> StorageResult<u64> {
        super::kv::count_rows(&self.pool, &self.table, &self.workspace).await
    }

    async fn page(&self, cursor: Option<Cursor>, limit: usize) -> StorageResult<Page<VectorItem>> {
        let sql = format!(
            "{} WHERE workspace = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
            self.select()
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(cursor.map(|c| c.0))
            .bind(sql_limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err(&format!("page {}", self.table), e))?;
        let items = rows
            .iter()
            .map(|r| self.item(r))
            .collect::<StorageResult<Vec<_>>>()?;
        let next = next_cursor(items.len(), limit, items.last().map(|it| it.id.clone()));
        Ok(Page { items, next })
    }

    async fn flush(&self) -> StorageResult<bool> {
        Ok(false)
    }
}
