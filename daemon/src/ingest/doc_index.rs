//! How the pipeline recognises documents already in the store: by content hash (processed
//! ones), by file path, and the paths of the documents hrag ingested.
//!
//! A store whose doc status answers these by index lookups (Postgres, on LightRAG's own
//! indexes) is asked each time, so memory does not grow with the workspace; for any other
//! (JSON, whose records are all in memory anyway) one pass at start builds the maps kept here
//! and maintained as documents come and go.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::storage::{DocStatusStore, StorageResult};

/// `track_id` of the documents hrag ingests.
pub const TRACK_ID: &str = "hrag_ingest";

pub enum DocIndex {
    /// Every lookup is a query on the store.
    Store,
    /// Maps built from one pass over the store.
    Memory(Mutex<Known>),
}

/// Documents already in the store, for recognising adopted work without reprocessing.
#[derive(Debug, Default)]
pub struct Known {
    /// content_hash → doc id, for processed documents.
    by_hash: HashMap<String, String>,
    /// file_path → doc id, for every document (to find what a path held before).
    by_path: HashMap<String, String>,
    /// The file paths of documents hrag ingested (LightRAG's own are never removed just because
    /// their file is not in the source folder).
    ours: HashSet<String>,
}

fn field<'a>(rec: &'a crate::storage::Record, k: &str) -> Option<&'a str> {
    rec.get(k).and_then(Value::as_str)
}

impl DocIndex {
    /// The index for `store`: its own lookups when they are indexed, else one pass over it.
    pub async fn open(store: &dyn DocStatusStore) -> StorageResult<DocIndex> {
        if store.indexed_lookups() {
            return Ok(DocIndex::Store);
        }
        let mut known = Known::default();
        let mut cursor = None;
        loop {
            let page = store.page(cursor, 1000).await?;
            for (id, rec) in &page.items {
                if let Some(fp) = field(rec, "file_path") {
                    if field(rec, "track_id") == Some(TRACK_ID) {
                        known.ours.insert(fp.to_owned());
                    }
                    known.by_path.insert(fp.to_owned(), id.clone());
                }
                if field(rec, "status") == Some("processed")
                    && let Some(h) = field(rec, "content_hash")
                {
                    known.by_hash.insert(h.to_owned(), id.clone());
                }
            }
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(DocIndex::Memory(Mutex::new(known)))
    }

    fn known(m: &Mutex<Known>) -> MutexGuard<'_, Known> {
        match m.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A processed document with this content hash.
    pub async fn processed_with_hash(
        &self,
        store: &dyn DocStatusStore,
        hash: &str,
    ) -> StorageResult<Option<String>> {
        match self {
            DocIndex::Store => store.processed_with_hash(hash).await,
            DocIndex::Memory(m) => Ok(Self::known(m).by_hash.get(hash).cloned()),
        }
    }

    /// The document stored for `path`.
    pub async fn doc_of_path(
        &self,
        store: &dyn DocStatusStore,
        path: &str,
    ) -> StorageResult<Option<String>> {
        match self {
            DocIndex::Store => store.id_with_file_path(path).await,
            DocIndex::Memory(m) => Ok(Self::known(m).by_path.get(path).cloned()),
        }
    }

    /// The paths of the documents hrag ingested.
    pub async fn our_paths(&self, store: &dyn DocStatusStore) -> StorageResult<Vec<String>> {
        match self {
            DocIndex::Store => store.file_paths_with_track_id(TRACK_ID).await,
            DocIndex::Memory(m) => Ok(Self::known(m).ours.iter().cloned().collect()),
        }
    }

    /// `doc_id` now holds `path` (its doc status was just written).
    pub fn note_path(&self, path: &str, doc_id: &str) {
        if let DocIndex::Memory(m) = self {
            let mut k = Self::known(m);
            k.by_path.insert(path.to_owned(), doc_id.to_owned());
            k.ours.insert(path.to_owned());
        }
    }

    /// `doc_id` is processed with this content hash.
    pub fn note_processed(&self, hash: &str, doc_id: &str) {
        if let DocIndex::Memory(m) = self {
            Self::known(m)
                .by_hash
                .insert(hash.to_owned(), doc_id.to_owned());
        }
    }

    /// `doc_id` was removed from the store.
    pub fn forget(&self, doc_id: &str) {
        if let DocIndex::Memory(m) = self {
            let mut known = Self::known(m);
            let paths: Vec<String> = known
                .by_path
                .iter()
                .filter(|(_, v)| *v == doc_id)
                .map(|(k, _)| k.clone())
                .collect();
            for p in paths {
                known.by_path.remove(&p);
                known.ours.remove(&p);
            }
            known.by_hash.retain(|_, v| v != doc_id);
        }
    }

    /// Whether lookups go to the store (nothing per document is held here).
    pub fn is_store(&self) -> bool {
        matches!(self, DocIndex::Store)
    }
}
