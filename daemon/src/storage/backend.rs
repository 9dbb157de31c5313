//! The [`Backend`] bundle: the four roles of one database, opened from its registry entry.

use std::path::PathBuf;
use std::sync::Arc;

use crate::registry::{BackendType, DbEntry};
use crate::storage::postgres::{PgSettings, PgStores};

use super::{
    DocStatusStore, GraphStore, IndexBuilds, KvNamespace, KvStore, Probe, StorageError,
    StorageResult, VectorNamespace, VectorStore,
};

/// The record counts `backend status` shows (PRODUCT §9).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Doc-status records.
    pub doc_count: u64,
    /// Chunk vectors.
    pub chunk_count: u64,
    /// Graph nodes.
    pub entity_count: u64,
    /// Graph edges.
    pub relation_count: u64,
}

/// Everything that holds a database's data, behind the storage traits.
pub struct Backend {
    kv: Vec<Arc<dyn KvStore>>,
    vectors: Vec<Arc<dyn VectorStore>>,
    pub graph: Arc<dyn GraphStore>,
    pub doc_status: Arc<dyn DocStatusStore>,
    /// Where the data lives, for messages (a directory, or a redacted DSN and workspace).
    pub location: String,
    /// Reachability of the server, for backends that have one.
    probe: Option<Arc<dyn Probe>>,
    /// Indexes being built in the background, for backends that build them.
    index_builds: Option<Arc<dyn IndexBuilds>>,
    /// Keeps the single-writer lock for as long as the backend is open.
    _guard: Box<dyn Send + Sync>,
}

impl Backend {
    /// Assembles a backend from its stores; `kv` in [`KvNamespace::ALL`] order, `vectors` in
    /// [`VectorNamespace::ALL`] order.
    pub fn new(
        kv: Vec<Arc<dyn KvStore>>,
        vectors: Vec<Arc<dyn VectorStore>>,
        graph: Arc<dyn GraphStore>,
        doc_status: Arc<dyn DocStatusStore>,
        location: String,
        guard: Box<dyn Send + Sync>,
    ) -> StorageResult<Backend> {
        let kv_ok = kv.len() == KvNamespace::ALL.len()
            && kv
                .iter()
                .zip(KvNamespace::ALL)
                .all(|(s, ns)| s.namespace() == ns);
        let vec_ok = vectors.len() == VectorNamespace::ALL.len()
            && vectors
                .iter()
                .zip(VectorNamespace::ALL)
                .all(|(s, ns)| s.namespace() == ns);
        if !kv_ok || !vec_ok {
            return Err(StorageError::Invalid(
                "a backend must have one store per namespace, in order".into(),
            ));
        }
        Ok(Backend {
            kv,
            vectors,
            graph,
            doc_status,
            location,
            probe: None,
            index_builds: None,
            _guard: guard,
        })
    }

    /// Attaches the server probe of a remote backend.
    pub fn with_probe(mut self, probe: Arc<dyn Probe>) -> Backend {
        self.probe = Some(probe);
        self
    }

    /// Attaches the background index builds of a backend that has them.
    pub fn with_index_builds(mut self, builds: Arc<dyn IndexBuilds>) -> Backend {
        self.index_builds = Some(builds);
        self
    }

    /// The background index builds; `None` for file backends.
    pub fn index_builds(&self) -> Option<&Arc<dyn IndexBuilds>> {
        self.index_builds.as_ref()
    }

    /// The server probe; `None` for file backends, which are always reachable.
    pub fn probe(&self) -> Option<&Arc<dyn Probe>> {
        self.probe.as_ref()
    }

    /// Opens the JSON backend of a registry entry. Blocking (it loads every file): call it
    /// from `spawn_blocking`. Postgres entries open with [`Backend::open_postgres`].
    pub fn open(entry: &DbEntry) -> StorageResult<Backend> {
        match entry.backend_type {
            BackendType::Json => {
                let dim = entry
                    .model_config
                    .embedding_dim
                    .and_then(|d| usize::try_from(d).ok());
                super::json::open(&entry.path, entry.workspace.as_deref(), dim)
            }
            BackendType::Postgres => Err(StorageError::Invalid(format!(
                "database '{}' is on postgres: open it with Backend::open_postgres",
                entry.name
            ))),
        }
    }

    /// Connects to Postgres, takes the workspace's single-writer lock and creates LightRAG's
    /// schema where missing.
    pub async fn open_postgres(settings: PgSettings) -> StorageResult<Backend> {
        PgStores::connect(settings).await?.into_backend().await
    }

    pub fn kv(&self, ns: KvNamespace) -> &Arc<dyn KvStore> {
        let i = KvNamespace::ALL.iter().position(|n| *n == ns).unwrap_or(0);
        &self.kv[i]
    }

    pub fn vectors(&self, ns: VectorNamespace) -> &Arc<dyn VectorStore> {
        let i = VectorNamespace::ALL
            .iter()
            .position(|n| *n == ns)
            .unwrap_or(0);
        &self.vectors[i]
    }

    pub fn kv_stores(&self) -> &[Arc<dyn KvStore>] {
        &self.kv
    }

    pub fn vector_stores(&self) -> &[Arc<dyn VectorStore>] {
        &self.vectors
    }

    /// Persists every store with pending changes; returns how many wrote something.
    pub async fn flush(&self) -> StorageResult<usize> {
        let mut written = 0;
        for s in &self.kv {
            written += usize::from(s.flush().await?);
        }
        for s in &self.vectors {
            written += usize::from(s.flush().await?);
        }
        written += usize::from(self.graph.flush().await?);
        written += usize::from(self.doc_status.flush().await?);
        Ok(written)
    }

    pub async fn counts(&self) -> StorageResult<Counts> {
        Ok(Counts {
            doc_count: self.doc_status.count().await?,
            chunk_count: self.vectors(VectorNamespace::Chunks).count().await?,
            entity_count: self.graph.node_count().await?,
            relation_count: self.graph.edge_count().await?,
        })
    }
}

/// The directory of a JSON store: the working dir, or its workspace subfolder.
pub fn json_store_dir(path: &std::path::Path, workspace: Option<&str>) -> PathBuf {
    match workspace.filter(|w| !w.is_empty()) {
        Some(ws) => path.join(ws),
        None => path.to_path_buf(),
    }
}
