//! The writing half of the copy: each batch is one transaction holding a binary `COPY` into
//! the store's table and the store's new checkpoint, so a crash leaves either both or neither.
//!
//! Tables are created as LightRAG creates them but without vector indexes: those are built
//! after the switch, never maintained row by row during the copy.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use sqlx::{Acquire as _, AssertSqlSafe, PgConnection};

use super::cell::Cell;
use super::checkpoint::{StoreProgress, save_progress};
use super::copy_binary::encode_rows;
use super::error::MigrateError;
use super::feed::Batch;
use super::table::{Store, TableSpec};
use crate::storage::VectorNamespace;
use crate::storage::postgres::db_err;

pub struct Writer {
    pub workspace: String,
    pub specs: HashMap<Store, TableSpec>,
    /// The committed checkpoint of every store, by store name.
    pub progress: Arc<Mutex<BTreeMap<String, StoreProgress>>>,
}

fn tgt(context: &str, e: sqlx::Error) -> MigrateError {
    MigrateError::target(db_err(context, e))
}

impl Writer {
    pub fn copy_sql(spec: &TableSpec) -> String {
        let cols: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
        format!(
            "COPY {} (workspace, {}) FROM STDIN (FORMAT binary)",
            spec.table,
            cols.join(", ")
        )
    }

    /// Commits one batch and its checkpoint.
    pub async fn write(
        &mut self,
        conn: &mut PgConnection,
        mut batch: Batch,
    ) -> Result<(), MigrateError> {
        let spec = self
            .specs
            .get(&batch.store)
            .ok_or_else(|| MigrateError::Invalid(format!("no table for {:?}", batch.store)))?;
        let name = batch.store.name();
        let mut tx = conn.begin().await.map_err(|e| tgt("begin", e))?;
        if batch.store == Store::Vector(VectorNamespace::Chunks) {
            fill_chunk_fields(&mut tx, &self.workspace, &mut batch).await?;
        }
        let payload = encode_rows(&self.workspace, &batch.rows, batch.size);
        let mut copy = tx
            .copy_in_raw(&Self::copy_sql(spec))
            .await
            .map_err(|e| tgt(&format!("copy into {}", spec.table), e))?;
        if let Err(e) = copy.send(payload).await {
            let _ = copy.abort("send failed").await;
            return Err(tgt(&format!("copy into {}", spec.table), e));
        }
        copy.finish()
            .await
            .map_err(|e| copy_error(spec, &batch, e))?;
        let mut next = self.committed(&name);
        next.next_ordinal = batch.next_ordinal;
        next.bytes = next.bytes.max(batch.bytes);
        next.digest.merge(&batch.digest);
        save_progress(&mut tx, &self.workspace, &name, &next)
            .await
            .map_err(MigrateError::target)?;
        tx.commit().await.map_err(|e| tgt("commit", e))?;
        self.lock().insert(name, next);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StoreProgress>> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn committed(&self, store: &str) -> StoreProgress {
        self.lock().get(store).cloned().unwrap_or_default()
    }
}

/// A failed COPY: a duplicate key or a value the column refuses is the source's fault.
fn copy_error(spec: &TableSpec, batch: &Batch, e: sqlx::Error) -> MigrateError {
    let first = batch.rows.first().map(|r| r.key.as_str()).unwrap_or("");
    let last = batch.rows.last().map(|r| r.key.as_str()).unwrap_or("");
    if let sqlx::Error::Database(d) = &e {
        let code = d.code().map(|c| c.to_string()).unwrap_or_default();
        // Class 22 (data exception) and 23 (integrity constraint).
        if code.starts_with("22") || code.starts_with("23") {
            return MigrateError::Source(format!(
                "{}: a record between {first:?} and {last:?} cannot be stored in {}: {}",
                batch.store.name(),
                spec.table,
                d.message()
            ));
        }
    }
    tgt(&format!("copy into {}", spec.table), e)
}

/// LightRAG writes a chunk vector row's `tokens` and `chunk_order_index` from the chunk; the
/// nano-vectordb row does not keep them, so they come from the chunk's text_chunks row,
/// copied before.
async fn fill_chunk_fields(
    conn: &mut PgConnection,
    workspace: &str,
    batch: &mut Batch,
) -> Result<(), MigrateError> {
    let missing: Vec<String> = batch
        .rows
        .iter()
        .filter(|r| r.cells.get(1) == Some(&Cell::Null))
        .map(|r| r.key.clone())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let found: Vec<(String, Option<i32>, Option<i32>)> = sqlx::query_as(AssertSqlSafe(
        "SELECT id, tokens, chunk_order_index FROM lightrag_doc_chunks \
         WHERE workspace = $1 AND id = ANY($2)"
            .to_owned(),
    ))
    .bind(workspace)
    .bind(&missing)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| tgt("read chunk token counts", e))?;
    let by_id: HashMap<String, (Option<i32>, Option<i32>)> =
        found.into_iter().map(|(id, t, o)| (id, (t, o))).collect();
    for row in &mut batch.rows {
        if row.cells.get(1) != Some(&Cell::Null) {
            continue;
        }
        if let Some((t, o)) = by_id.get(&row.key) {
            row.cells[1] = t.map(Cell::Int).unwrap_or(Cell::Null);
            if row.cells[2] == Cell::Null {
                row.cells[2] = o.map(Cell::Int).unwrap_or(Cell::Null);
            }
        }
    }
    Ok(())
}
