//! The JSON backend: a LightRAG working directory (or its workspace subfolder) of twelve files,
//! read and written exactly as LightRAG 1.4.9.x/1.5.x do.
//!
//! Invariants: every store is loaded fully at open, and a store that cannot be read fails the
//! open with an error naming its file and byte offset or record, and nothing is ever written
//! over it; writes go through `fsutil::write_atomic_with`, only for stores with changes; a
//! `.hrag.lock` in the store directory keeps a second writer out.

pub mod doc_status;
pub mod graph;
pub mod graphml;
pub mod jsonio;
pub mod kv;
pub mod vdb;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    Backend, DOC_STATUS_FILE, GRAPH_FILE, KvNamespace, KvStore, StorageError, StorageResult,
    VectorNamespace, VectorStore, json_store_dir,
};
use crate::fsutil::{self, FileLock};

/// The twelve files of a LightRAG working directory (or workspace subfolder).
pub const STORE_FILES: [&str; 12] = [
    "kv_store_full_docs.json",
    "kv_store_text_chunks.json",
    "kv_store_full_entities.json",
    "kv_store_full_relations.json",
    "kv_store_entity_chunks.json",
    "kv_store_relation_chunks.json",
    "kv_store_llm_response_cache.json",
    "kv_store_doc_status.json",
    "vdb_entities.json",
    "vdb_relationships.json",
    "vdb_chunks.json",
    "graph_chunk_entity_relation.graphml",
];

/// Opens (loads) the store directory `path[/workspace]`, creating it when missing (a new,
/// empty knowledge base). Blocking: every file is read.
pub fn open(
    path: &Path,
    workspace: Option<&str>,
    embedding_dim: Option<usize>,
) -> StorageResult<Backend> {
    JsonStores::open(path, workspace, embedding_dim)?.into_backend()
}

/// The twelve stores of one JSON directory, with their concrete types (for writing a copy).
pub struct JsonStores {
    pub dir: PathBuf,
    pub kv: Vec<Arc<kv::JsonKvStore>>,
    pub vectors: Vec<Arc<vdb::JsonVectorStore>>,
    pub graph: Arc<graph::JsonGraphStore>,
    pub doc_status: Arc<doc_status::JsonDocStatusStore>,
    lock: FileLock,
}

const LOCK_FILE: &str = ".hrag.lock";

impl JsonStores {
    pub fn open(
        path: &Path,
        workspace: Option<&str>,
        embedding_dim: Option<usize>,
    ) -> StorageResult<JsonStores> {
        let dir = json_store_dir(path, workspace);
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        let lock = lock_dir(&dir)?;
        // Temp files of a writer that died mid-flush; safe to remove now that we hold the lock.
        for stale in fsutil::stale_temp_files(&dir) {
            let _ = std::fs::remove_file(stale);
        }
        let kv = KvNamespace::ALL
            .iter()
            .map(|ns| kv::JsonKvStore::load(dir.join(ns.file_name()), *ns).map(Arc::new))
            .collect::<StorageResult<Vec<_>>>()?;
        let vectors = VectorNamespace::ALL
            .iter()
            .map(|ns| {
                vdb::JsonVectorStore::load(dir.join(ns.file_name()), *ns, embedding_dim)
                    .map(Arc::new)
            })
            .collect::<StorageResult<Vec<_>>>()?;
        let graph = Arc::new(graph::JsonGraphStore::load(dir.join(GRAPH_FILE))?);
        let doc_status = Arc::new(doc_status::JsonDocStatusStore::load(
            dir.join(DOC_STATUS_FILE),
        )?);
        Ok(JsonStores {
            dir,
            kv,
            vectors,
            graph,
            doc_status,
            lock,
        })
    }

    /// Writes every store into `dir` (created if missing) as a complete LightRAG directory.
    pub fn write_to_dir(&self, dir: &Path) -> StorageResult<()> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        for (s, ns) in self.kv.iter().zip(KvNamespace::ALL) {
            s.write_to(&dir.join(ns.file_name()))?;
        }
        for (s, ns) in self.vectors.iter().zip(VectorNamespace::ALL) {
            s.write_to(&dir.join(ns.file_name()))?;
        }
        self.graph.write_to(&dir.join(GRAPH_FILE))?;
        self.doc_status.write_to(&dir.join(DOC_STATUS_FILE))
    }

    pub fn into_backend(self) -> StorageResult<Backend> {
        let location = self.dir.display().to_string();
        Backend::new(
            self.kv.into_iter().map(|s| s as Arc<dyn KvStore>).collect(),
            self.vectors
                .into_iter()
                .map(|s| s as Arc<dyn VectorStore>)
                .collect(),
            self.graph,
            self.doc_status,
            location,
            Box::new(self.lock),
        )
    }
}

/// Takes the directory's single-writer lock, naming the holder when it is taken.
fn lock_dir(dir: &Path) -> StorageResult<FileLock> {
    let path = dir.join(LOCK_FILE);
    match FileLock::try_acquire(&path) {
        Ok(Some(mut lock)) => {
            let _ = lock.set_owner(&format!("hragd pid {}\n", std::process::id()));
            Ok(lock)
        }
        Ok(None) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            Err(StorageError::Locked(format!(
                "{} is locked by another writer{}; one hragd per knowledge base",
                dir.display(),
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" ({holder})")
                }
            )))
        }
        Err(e) => Err(StorageError::io(&path, e)),
    }
}
