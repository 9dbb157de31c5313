//! KV namespaces and doc status: `{id: record}` files, one page of the database at a time.

use std::path::Path;

use hrag_proto::StoreReport;

use super::PAGE;
use super::error::ExportError;
use super::out::ObjectWriter;
use super::progress::Progress;
use crate::storage::json::jsonio;
use crate::storage::{
    Cursor, DOC_STATUS_FIELDS, DocStatusStore, KvStore, Page, Record, StorageResult,
};

/// A store whose records are `(id, JSON object)`.
pub enum Source<'a> {
    /// Records carry `_id`, `create_time`, `update_time` as the KV stores return them.
    Kv(&'a dyn KvStore),
    /// Records keep only LightRAG's doc-status fields: any other key breaks its reader.
    DocStatus(&'a dyn DocStatusStore),
}

impl Source<'_> {
    async fn count(&self) -> StorageResult<u64> {
        match self {
            Source::Kv(s) => s.count().await,
            Source::DocStatus(s) => s.count().await,
        }
    }

    async fn page(&self, cursor: Option<Cursor>) -> StorageResult<Page<(String, Record)>> {
        match self {
            Source::Kv(s) => s.page(cursor, PAGE).await,
            Source::DocStatus(s) => s.page(cursor, PAGE).await,
        }
    }

    fn shape(&self, mut rec: Record) -> Record {
        if let Source::DocStatus(_) = self {
            rec.retain(|k, _| DOC_STATUS_FIELDS.contains(&k.as_str()));
        }
        rec
    }
}

/// Writes every record of `src` to `path` (named `store` in reports and errors).
pub async fn write(
    src: Source<'_>,
    path: &Path,
    store: &str,
    progress: &Progress,
) -> Result<StoreReport, ExportError> {
    let total = src.count().await.map_err(|e| ExportError::read(store, e))?;
    let mut file = ObjectWriter::create(path)?;
    let mut done = 0u64;
    let mut cursor = None;
    loop {
        let page = src
            .page(cursor)
            .await
            .map_err(|e| ExportError::read(store, e))?;
        for (id, rec) in page.items {
            let raw =
                jsonio::raw_from_record(&src.shape(rec)).map_err(|e| ExportError::Record {
                    store: store.to_owned(),
                    id: id.clone(),
                    reason: e.to_string(),
                })?;
            file.member(&id, &raw)?;
            done += 1;
        }
        progress.report(store, done, total, file.bytes());
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let bytes = file.finish()?;
    Ok(StoreReport {
        store: store.to_owned(),
        records: done,
        bytes,
        verified: None,
    })
}
