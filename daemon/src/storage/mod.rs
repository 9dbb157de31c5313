//! Storage: LightRAG's four roles as async traits, and the [`Backend`] bundle that opens them for
//! a registry entry (the counterpart of LightRAG's `get_storage_classes()` factory).
//!
//! Roles: [`KvStore`] (one per [`KvNamespace`]), [`VectorStore`] (one per [`VectorNamespace`]),
//! [`GraphStore`] (entities and undirected relations) and [`DocStatusStore`].
//!
//! Invariants: nothing above this module knows which backend it talks to; records cross these
//! traits as JSON objects ([`Record`]) with LightRAG's field names; a backend never panics on
//! what it reads, and reports corrupt input as [`StorageError::Corrupt`] naming the file and the
//! byte offset or record.

pub mod json;
pub mod postgres;

mod backend;
mod types;

pub use backend::{Backend, Counts, json_store_dir};
pub use types::*;

use std::collections::BTreeMap;

use async_trait::async_trait;

/// Key/value store of one namespace (LightRAG's `BaseKVStorage`).
#[async_trait]
pub trait KvStore: Send + Sync {
    fn namespace(&self) -> KvNamespace;
    async fn get(&self, id: &str) -> StorageResult<Option<Record>>;
    async fn get_many(&self, ids: &[String]) -> StorageResult<Vec<Option<Record>>>;
    /// The ids of `ids` that are not stored (LightRAG's `filter_keys`).
    async fn missing(&self, ids: &[String]) -> StorageResult<Vec<String>>;
    /// Inserts or replaces whole records; the store adds `_id`, `create_time`, `update_time`.
    async fn upsert(&self, records: Vec<(String, Record)>) -> StorageResult<()>;
    async fn delete(&self, ids: &[String]) -> StorageResult<()>;
    async fn count(&self) -> StorageResult<u64>;
    /// Records in a stable order, `limit` at a time; pass the returned cursor to continue.
    async fn page(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, Record)>>;
    /// Persists pending changes; `Ok(true)` when something was written.
    async fn flush(&self) -> StorageResult<bool>;
}

/// Vector store of one namespace (LightRAG's `BaseVectorStorage`).
#[async_trait]
pub trait VectorStore: Send + Sync {
    fn namespace(&self) -> VectorNamespace;
    /// Embedding dimension of every row.
    fn dim(&self) -> usize;
    /// Inserts or replaces rows. `vector` is the raw embedding; `meta` holds the namespace's
    /// meta fields (others are dropped, as LightRAG does).
    async fn upsert(&self, items: Vec<VectorItem>) -> StorageResult<()>;
    async fn delete(&self, ids: &[String]) -> StorageResult<()>;
    /// Rows by id, with the stored vector (JSON: the L2-normalised matrix row, bit-exact).
    async fn get(&self, ids: &[String]) -> StorageResult<Vec<Option<VectorItem>>>;
    /// The `top_k` rows most similar to `query` by cosine, keeping those with similarity
    /// `>= threshold`, best first.
    async fn query(
        &self,
        query: &[f32],
        top_k: usize,
        threshold: f32,
    ) -> StorageResult<Vec<VectorMatch>>;
    async fn count(&self) -> StorageResult<u64>;
    async fn page(&self, cursor: Option<Cursor>, limit: usize) -> StorageResult<Page<VectorItem>>;
    async fn flush(&self) -> StorageResult<bool>;
}

/// The entity/relation graph (LightRAG's `BaseGraphStorage`): nodes keyed by entity name,
/// undirected edges, properties as JSON objects (`created_at` an integer, `weight` a float).
#[async_trait]
pub trait GraphStore: Send + Sync {
    /// Inserts nodes or merges properties into existing ones.
    async fn upsert_nodes(&self, nodes: Vec<(String, Record)>) -> StorageResult<()>;
    /// Inserts edges or updates their properties; missing endpoints are created.
    async fn upsert_edges(&self, edges: Vec<(String, String, Record)>) -> StorageResult<()>;
    async fn get_node(&self, id: &str) -> StorageResult<Option<Record>>;
    /// The edge between `a` and `b` in either direction.
    async fn get_edge(&self, a: &str, b: &str) -> StorageResult<Option<Record>>;
    /// Deletes nodes and every edge touching them.
    async fn delete_nodes(&self, ids: &[String]) -> StorageResult<()>;
    async fn delete_edges(&self, pairs: &[(String, String)]) -> StorageResult<()>;
    /// The names of the nodes adjacent to `id`.
    async fn neighbours(&self, id: &str) -> StorageResult<Vec<String>>;
    async fn degree(&self, id: &str) -> StorageResult<u64>;
    async fn node_count(&self) -> StorageResult<u64>;
    async fn edge_count(&self) -> StorageResult<u64>;
    async fn page_nodes(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, Record)>>;
    async fn page_edges(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, String, Record)>>;
    async fn flush(&self) -> StorageResult<bool>;
}

/// Reachability of a backend that lives on a server (Postgres); file backends have none.
#[async_trait]
pub trait Probe: Send + Sync {
    /// One bounded round trip; `Unreachable` when the server is gone or the backend's
    /// single-writer session was lost with it (the backend must then be reopened).
    async fn probe(&self) -> StorageResult<ProbeReport>;
}

/// Indexes a backend builds in the background (Postgres vector tables that already held rows
/// when the database opened); queries work meanwhile, without the index.
pub trait IndexBuilds: Send + Sync {
    /// The last build of each table, by table name.
    fn index_builds(&self) -> Vec<IndexBuildReport>;
}

/// One background index build as `status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexBuildReport {
    pub table: String,
    pub index: String,
    /// What the build is doing (the server's phase), or why it failed.
    pub phase: String,
    /// Progress of the current phase, 0–100, when the server reports one.
    pub percent: Option<f64>,
    /// Since the build started; its whole duration once finished.
    pub elapsed_secs: f64,
    pub state: IndexBuildState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexBuildState {
    Building,
    Done,
    /// The last attempt failed; it is retried with backoff.
    Failed,
}

/// Document processing status (LightRAG's `DocStatusStorage`).
#[async_trait]
pub trait DocStatusStore: Send + Sync {
    async fn get(&self, id: &str) -> StorageResult<Option<Record>>;
    async fn get_many(&self, ids: &[String]) -> StorageResult<Vec<Option<Record>>>;
    /// Inserts or replaces records; only LightRAG's fields are accepted (an extra key would
    /// break LightRAG's reader).
    async fn upsert(&self, records: Vec<(String, Record)>) -> StorageResult<()>;
    async fn delete(&self, ids: &[String]) -> StorageResult<()>;
    async fn by_status(
        &self,
        status: &str,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, Record)>>;
    async fn counts_by_status(&self) -> StorageResult<BTreeMap<String, u64>>;
    async fn count(&self) -> StorageResult<u64>;
    async fn page(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, Record)>>;
    async fn flush(&self) -> StorageResult<bool>;

    /// Whether the three lookups below are index lookups in the store. When not, they scan,
    /// and the ingest pipeline keeps its own in-memory index of the documents instead (the
    /// JSON store holds every record in memory anyway); when they are, nothing above the store
    /// holds a per-document index, so memory does not grow with the workspace.
    fn indexed_lookups(&self) -> bool {
        false
    }

    /// The id of a `processed` document whose `content_hash` is `hash` (the largest id when
    /// several are).
    async fn processed_with_hash(&self, hash: &str) -> StorageResult<Option<String>> {
        self.scan_last(&|id, rec| {
            (rec.get("status").and_then(|v| v.as_str()) == Some("processed")
                && rec.get("content_hash").and_then(|v| v.as_str()) == Some(hash))
            .then(|| id.to_owned())
        })
        .await
    }

    /// The id of the document whose `file_path` is `path` (the largest id when several are).
    async fn id_with_file_path(&self, path: &str) -> StorageResult<Option<String>> {
        self.scan_last(&|id, rec| {
            (rec.get("file_path").and_then(|v| v.as_str()) == Some(path)).then(|| id.to_owned())
        })
        .await
    }

    /// The `file_path` of every document whose `track_id` is `track_id`.
    async fn file_paths_with_track_id(&self, track_id: &str) -> StorageResult<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.page(cursor, 1000).await?;
            out.extend(page.items.iter().filter_map(|(_, rec)| {
                (rec.get("track_id").and_then(|v| v.as_str()) == Some(track_id))
                    .then(|| rec.get("file_path").and_then(|v| v.as_str()))
                    .flatten()
                    .map(str::to_owned)
            }));
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// The last match of `f` over every record in id order (the default lookups' scan).
    async fn scan_last(
        &self,
        f: &(dyn for<'r> Fn(&'r str, &'r Record) -> Option<String> + Sync),
    ) -> StorageResult<Option<String>> {
        let mut found = None;
        let mut cursor = None;
        loop {
            let page = self.page(cursor, 1000).await?;
            found = page
                .items
                .iter()
                .filter_map(|(id, r)| f(id, r))
                .last()
                .or(found);
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(found),
            }
        }
    }
}
