//! `PgGraphStore`: LightRAG's `PGTableGraphStorage` (`lightrag_graph_nodes` /
//! `lightrag_graph_edges`, namespace `chunk_entity_relation`, JSONB properties).
//!
//! Node properties carry `entity_id` = the node id; an upsert merges properties
//! (`properties || new`). Edges are undirected and stored once, with `src_id` the smaller name
//! by code-point order (Python's string order, not SQL `LEAST`); a missing endpoint is created
//! as `{"entity_id": id}`.

use async_trait::async_trait;
use indexmap::IndexMap;
use serde_json::Value;
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Row as _};

use super::schema::GRAPH_NAMESPACE;
use super::{WRITE_BATCH, db_err, next_cursor, parse_json, sql_limit};
use crate::storage::{Cursor, GraphStore, Page, Record, StorageError, StorageResult};

pub struct PgGraphStore {
    pool: PgPool,
    workspace: String,
}

/// `(min, max)` by code-point order (Rust's `str` order on UTF-8 is code-point order).
fn canonical<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if b < a { (b, a) } else { (a, b) }
}

fn as_record(v: Value, what: &str) -> StorageResult<Record> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(StorageError::Backend(format!(
            "{what}: properties are not a JSON object: {other}"
        ))),
    }
}

fn encode_cursor(a: &str, b: &str) -> Cursor {
    Cursor(Value::Array(vec![Value::from(a), Value::from(b)]).to_string())
}

fn decode_cursor(c: &Cursor) -> StorageResult<(String, String)> {
    match serde_json::from_str::<(String, String)>(&c.0) {
        Ok(pair) => Ok(pair),
        Err(_) => Err(StorageError::Invalid(format!("bad edge cursor {:?}", c.0))),
    }
}

impl PgGraphStore {
    pub(crate) fn new(pool: PgPool, workspace: String) -> PgGraphStore {
        PgGraphStore { pool, workspace }
    }

    async fn ensure_nodes(
        &self,
        conn: &mut sqlx::PgConnection,
        names: Vec<String>,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO lightrag_graph_nodes (workspace, namespace, id, properties) \
             SELECT DISTINCT $1, $2, n, jsonb_build_object('entity_id', n) \
             FROM UNNEST($3::text[]) AS n \
             ON CONFLICT (workspace, namespace, id) DO NOTHING",
        )
        .bind(&self.workspace)
        .bind(GRAPH_NAMESPACE)
        .bind(names)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_err("create edge endpoints", e))?;
        Ok(())
    }

    async fn count(&self, table: &str) -> StorageResult<u64> {
        let sql = format!("SELECT count(*) FROM {table} WHERE workspace = $1 AND namespace = $2");
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(&self.workspace)
            .bind(GRAPH_NAMESPACE)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_err(&format!("count {table}"), e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[async_trait]
impl GraphStore for PgGraphStore {
    async fn upsert_nodes(&self, nodes: Vec<(String, Record)>) -> StorageResult<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        // A node given twice in one batch: merge in order (one statement may not touch a row
        // twice).
        let mut merged: IndexMap<String, Record> = IndexMap::with_capacity(nodes.len());
        for (id, rec) in nodes {
            let entry = merged.entry(id).or_default();
            entry.extend(rec);
        }
        let mut tx = self.pool.begin().await.map_err(|e| db_err("begin", e))?;
        let merged: Vec<(String, Record)> = merged.into_iter().collect();
        for batch in merged.chunks(WRITE_BATCH) {
            let ids: Vec<&str> = batch.iter().map(|(k, _)| k.as_str()).collect();
            let props: Vec<String> = batch
                .iter()
                .map(|(_, r)| Value::Object(r.clone()).to_string())
                .collect();
            sqlx::query(
                "INSERT INTO lightrag_graph_nodes (workspace, namespace, id, properties) \
                 SELECT $1, $2, u.id, u.p::jsonb || jsonb_build_object('entity_id', u.id) \
                 FROM UNNEST($3::text[], $4::text[]) AS u(id, p) \
                 ON CONFLICT (workspace, namespace, id) DO UPDATE \
                 SET properties = lightrag_graph_nodes.properties || EXCLUDED.properties, \
                 updated_at = now()",
            )
            .bind(&self.workspace)
            .bind(GRAPH_NAMESPACE)
            .bind(ids)
            .bind(props)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("upsert graph nodes", e))?;
        }
        tx.commit().await.map_err(|e| db_err("commit", e))
    }

    async fn upsert_edges(&self, edges: Vec<(String, String, Record)>) -> StorageResult<()> {
        if edges.is_empty() {
            return Ok(());
        }
        let mut merged: IndexMap<(String, String), Record> = IndexMap::with_capacity(edges.len());
        for (a, b, rec) in edges {
            let (s, t) = canonical(&a, &b);
            let entry = merged.entry((s.to_owned(), t.to_owned())).or_default();
            entry.extend(rec);
        }
        let merged: Vec<((String, String), Record)> = merged.into_iter().collect();
        let mut tx = self.pool.begin().await.map_err(|e| db_err("begin", e))?;
        for batch in merged.chunks(WRITE_BATCH) {
            let mut names: Vec<String> = Vec::with_capacity(batch.len() * 2);
            let mut src = Vec::with_capacity(batch.len());
            let mut tgt = Vec::with_capacity(batch.len());
            let mut props = Vec::with_capacity(batch.len());
            for ((s, t), r) in batch {
                names.push(s.clone());
                names.push(t.clone());
                src.push(s.as_str());
                tgt.push(t.as_str());
                props.push(Value::Object(r.clone()).to_string());
            }
            self.ensure_nodes(&mut tx, names).await?;
            sqlx::query(
                "INSERT INTO lightrag_graph_edges (workspace, namespace, src_id, tgt_id, properties) \
                 SELECT $1, $2, u.s, u.t, u.p::jsonb \
                 FROM UNNEST($3::text[], $4::text[], $5::text[]) AS u(s, t, p) \
                 ON CONFLICT (workspace, namespace, src_id, tgt_id) DO UPDATE \
                 SET properties = lightrag_graph_edges.properties || EXCLUDED.properties, \
                 updated_at = now()",
            )
            .bind(&self.workspace)
            .bind(GRAPH_NAMESPACE)
            .bind(src)
            .bind(tgt)
            .bind(props)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("upsert graph edges", e))?;
        }
        tx.commit().await.map_err(|e| db_err("commit", e))
    }

    async fn get_node(&self, id: &str) -> StorageResult<Option<Record>> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT properties::text FROM lightrag_graph_nodes \
             WHERE workspace = $1 AND namespace = $2 AND id = $3",
        )
        .bind(&self.workspace)
        .bind(GRAPH_NAMESPACE)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_err("read graph node", e))?;
        let what = format!("graph node {id:?}");
        text.map(|t| parse_json(&t, &what).and_then(|v| as_record(v, &what)))
            .transpose()
    }

    async fn get_edge(&self, a: &str, b: &str) -> StorageResult<Option<Record>> {
        let (s, t) = canonical(a, b);
        let text: Option<String> = sqlx::query_scalar(
            "SELECT properties::text FROM lightrag_graph_edges \
             WHERE workspace = $1 AND namespace = $2 AND src_id = $3 AND tgt_id = $4",
        )
        .bind(&self.workspace)
        .bind(GRAPH_NAMESPACE)
        .bind(s)
        .bind(t)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_err("read graph edge", e))?;
        let what = format!("graph edge {s:?} – {t:?}");
        text.map(|t| parse_json(&t, &what).and_then(|v| as_record(v, &what)))
            .transpose()
    }

    async fn delete_nodes(&self, ids: &[String]) -> StorageResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(|e| db_err("begin", e))?;
        // Explicit (the foreign keys cascade too, but a table created without them must not
        // keep dangling edges).
        sqlx::query(
            "DELETE FROM lightrag_graph_edges WHERE workspace = $1 AND namespace = $2 \
             AND (src_id = ANY($3) OR tgt_id = ANY($3))",
        )
        .bind(&self.workspace)
        .bind(GRAPH_NAMESPACE)
        .bind(ids)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("delete graph edges", e))?;
        sqlx::query(
            "DELETE FROM lightrag_graph_nodes WHERE workspace = $1 AND namespace = $2 \
             AND id = ANY($3)",
        )
        .bind(&self.workspace)
        .bind(GRAPH_NAMESPACE)
        .bind(ids)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("delete graph nodes", e))?;
        tx.commit().await.map_err(|e| db_err("commit", e))
    }

    async fn delete_edges(&self, pairs: &[(String, String)]) -> StorageResult<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let (src, tgt): (Vec<&str>, Vec<&str>) = pairs.iter().map(|(a, b)| canonical(a, b)).unzip();
        sqlx::query(
            "DELETE FROM lightrag_graph_edges e USING UNNEST($3::text[], $4::text[]) AS u(s, t) \
             WHERE e.workspace = $1 AND e.namespace = $2 AND e.src_id = u.s AND e.tgt_id = u.t",
        )
        .bind(&self.workspace)
        .bind(GRAPH_NAMESPACE)
        .bind(src)
        .bind(tgt)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err("delete graph edges", e))?;
        Ok(())
    }

    async fn neighbours(&self, id: &str) -> StorageResult<Vec<String>> {
        let mut names: Vec<String> = sqlx::query_scalar(
            "SELECT tgt_id FROM lightrag_graph_edges \
             WHERE workspace = $1 AND namespace = $2 AND src_id = $3 \
             UNION SELECT src_id FROM lightrag_graph_edges \
             WHERE workspace = $1 AND namespace = $2 AND tgt_id = $3",
        )
        .bind(&self.workspace)
        .bind(GRAPH_NAMESPACE)
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("read neighbours", e))?;
        names.sort();
        Ok(names)
    }

    async fn degree(&self, id: &str) -> StorageResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM lightrag_graph_edges \
             WHERE workspace = $1 AND namespace = $2 AND (src_id = $3 OR tgt_id = $3)",
        )
        .bind(&self.workspace)
        .bind(GRAPH_NAMESPACE)
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_err("read degree", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn node_count(&self) -> StorageResult<u64> {
        self.count("lightrag_graph_nodes").await
    }

    async fn edge_count(&self) -> StorageResult<u64> {
        self.count("lightrag_graph_edges").await
    }

    async fn page_nodes(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, Record)>> {
        let rows = sqlx::query(
            "SELECT id, properties::text FROM lightrag_graph_nodes \
             WHERE workspace = $1 AND namespace = $2 AND ($3::text IS NULL OR id > $3) \
             ORDER BY id LIMIT $4",
        )
        .bind(&self.workspace)
        .bind(GRAPH_NAMESPACE)
        .bind(cursor.map(|c| c.0))
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("page graph nodes", e))?;
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get(0).map_err(|e| db_err("read row", e))?;
            let text: String = r.try_get(1).map_err(|e| db_err("read row", e))?;
            let what = format!("graph node {id:?}");
            let rec = as_record(parse_json(&text, &what)?, &what)?;
            items.push((id, rec));
        }
        let next = next_cursor(items.len(), limit, items.last().map(|(k, _)| k.clone()));
        Ok(Page { items, next })
    }

    async fn page_edges(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, String, Record)>> {
        let after = cursor.as_ref().map(decode_cursor).transpose()?;
        let (a, b) = match after {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT src_id, tgt_id, properties::text FROM lightrag_graph_edges \
             WHERE workspace = $1 AND namespace = $2 \
             AND ($3::text IS NULL OR (src_id, tgt_id) > ($3::text, $4::text)) \
             ORDER BY src_id, tgt_id LIMIT $5",
        )
        .bind(&self.workspace)
        .bind(GRAPH_NAMESPACE)
        .bind(a)
        .bind(b)
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("page graph edges", e))?;
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            let s: String = r.try_get(0).map_err(|e| db_err("read row", e))?;
            let t: String = r.try_get(1).map_err(|e| db_err("read row", e))?;
            let text: String = r.try_get(2).map_err(|e| db_err("read row", e))?;
            let what = format!("graph edge {s:?} – {t:?}");
            let rec = as_record(parse_json(&text, &what)?, &what)?;
            items.push((s, t, rec));
        }
        let next = if items.len() < limit {
            None
        } else {
            items.last().map(|(s, t, _)| encode_cursor(s, t))
        };
        Ok(Page { items, next })
    }

    async fn flush(&self) -> StorageResult<bool> {
        Ok(false)
    }
}
