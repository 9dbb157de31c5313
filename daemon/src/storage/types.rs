//! Types shared by the storage traits and their backends.

use std::path::{Path, PathBuf};

/// A record as LightRAG sees it: a JSON object with insertion-ordered keys.
pub type Record = serde_json::Map<String, serde_json::Value>;

pub type StorageResult<T> = Result<T, StorageError>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Input that cannot be read as what it claims to be. `message` names the byte offset or
    /// the record.
    #[error("{}: {message}", file.display())]
    Corrupt { file: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process writes this store.
    #[error("{0}")]
    Locked(String),
    /// A caller passed something the store cannot hold (wrong dimension, a foreign key…).
    #[error("{0}")]
    Invalid(String),
    /// The backend (a database server) cannot be reached.
    #[error("{0}")]
    Unreachable(String),
    /// Any other backend failure.
    #[error("{0}")]
    Backend(String),
}

impl StorageError {
    pub fn corrupt(file: &Path, message: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            file: file.to_path_buf(),
            message: message.into(),
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where a page stopped; opaque to callers (an ordinal for JSON, the last key for Postgres).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub String);

/// One page of a scan.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `None` when the scan is complete.
    pub next: Option<Cursor>,
}

/// LightRAG's KV namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KvNamespace {
    FullDocs,
    TextChunks,
    FullEntities,
    FullRelations,
    EntityChunks,
    RelationChunks,
    LlmResponseCache,
}

impl KvNamespace {
    pub const ALL: [KvNamespace; 7] = [
        KvNamespace::FullDocs,
        KvNamespace::TextChunks,
        KvNamespace::FullEntities,
        KvNamespace::FullRelations,
        KvNamespace::EntityChunks,
        KvNamespace::RelationChunks,
        KvNamespace::LlmResponseCache,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KvNamespace::FullDocs => "full_docs",
            KvNamespace::TextChunks => "text_chunks",
            KvNamespace::FullEntities => "full_entities",
            KvNamespace::FullRelations => "full_relations",
            KvNamespace::EntityChunks => "entity_chunks",
            KvNamespace::RelationChunks => "relation_chunks",
            KvNamespace::LlmResponseCache => "llm_response_cache",
        }
    }

    /// `kv_store_<namespace>.json`.
    pub fn file_name(self) -> String {
        format!("kv_store_{}.json", self.as_str())
    }
}

/// LightRAG's vector namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VectorNamespace {
    Chunks,
    Entities,
    Relationships,
}

impl VectorNamespace {
    pub const ALL: [VectorNamespace; 3] = [
        VectorNamespace::Entities,
        VectorNamespace::Relationships,
        VectorNamespace::Chunks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VectorNamespace::Chunks => "chunks",
            VectorNamespace::Entities => "entities",
            VectorNamespace::Relationships => "relationships",
        }
    }

    /// `vdb_<namespace>.json`.
    pub fn file_name(self) -> String {
        format!("vdb_{}.json", self.as_str())
    }

    /// The payload fields LightRAG keeps in a row (others are dropped on upsert).
    pub fn meta_fields(self) -> &'static [&'static str] {
        match self {
            VectorNamespace::Chunks => &["full_doc_id", "content", "file_path"],
            VectorNamespace::Entities => &["entity_name", "source_id", "content", "file_path"],
            VectorNamespace::Relationships => {
                &["src_id", "tgt_id", "source_id", "content", "file_path"]
            }
        }
    }
}

pub const DOC_STATUS_FILE: &str = "kv_store_doc_status.json";
pub const GRAPH_FILE: &str = "graph_chunk_entity_relation.graphml";

/// The fields LightRAG's `DocProcessingStatus` accepts; any other key breaks its reader.
pub const DOC_STATUS_FIELDS: &[&str] = &[
    "status",
    "content_summary",
    "content_length",
    "created_at",
    "updated_at",
    "file_path",
    "track_id",
    "chunks_count",
    "chunks_list",
    "metadata",
    "error_msg",
    "content_hash",
    "multimodal_processed",
];

/// One vector row: id, meta fields, and the vector.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorItem {
    pub id: String,
    pub meta: Record,
    pub vector: Vec<f32>,
}

/// A query hit: cosine similarity and the row's meta fields.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorMatch {
    pub id: String,
    pub score: f32,
    pub meta: Record,
}

/// What a reachability probe of a database server found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    /// One round trip, in milliseconds.
    pub latency_ms: f64,
    pub server_version: String,
    /// `None` when the extension is not installed in the database.
    pub pgvector_version: Option<String>,
}
