//! Opening a database's store: the JSON backend off the runtime (it loads every file), the
//! Postgres backend with the vector tables of the embedder the database ingests with.

use crate::providers::config::{self, EmbeddingPlan};
use crate::providers::{HASH_EMBEDDER_MODEL, ProviderSettings};
use crate::registry::{BackendType, DbEntry};
use crate::storage::postgres::PgSettings;
use crate::storage::{Backend, StorageError, StorageResult};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub async fn open(entry: &DbEntry) -> StorageResult<Backend> {
    match entry.backend_type {
        BackendType::Json => {
            let entry = entry.clone();
            tokio::task::spawn_blocking(move || Backend::open(&entry))
                .await
                .map_err(|e| StorageError::Backend(format!("opening the store failed: {e}")))?
        }
        BackendType::Postgres => Backend::open_postgres(pg_settings(entry)?).await,
    }
}

/// The Postgres settings of an entry, with the embedder's model name and dimension (LightRAG
/// names its vector tables after them).
pub fn pg_settings(entry: &DbEntry) -> StorageResult<PgSettings> {
    let (model, dim) = embedding_identity(entry)?;
    let model = match entry.backend_config.embedding_model_name.as_deref() {
        Some("") => None,
        Some(name) => Some(name.to_owned()),
        None => Some(model),
    };
    PgSettings::from_entry(entry, model, dim, &env)
}

/// The Postgres settings of a candidate entry for a migration: the vector tables are named
/// after `model` (`None`: LightRAG's bare tables); the dimension comes from the source later.
pub fn pg_target_settings(entry: &DbEntry, model: Option<String>) -> StorageResult<PgSettings> {
    PgSettings::from_entry(entry, model, 1, &env)
}

/// The dimension the database's embedder produces (for an empty store that cannot tell).
pub fn embedder_dim(entry: &DbEntry) -> Option<usize> {
    embedding_identity(entry).ok().map(|(_, d)| d)
}

fn embedding_identity(entry: &DbEntry) -> StorageResult<(String, usize)> {
    let settings = ProviderSettings::from_entry(entry);
    let plan = config::resolve(&settings, &env).map_err(|e| {
        StorageError::Invalid(format!(
            "database '{}': cannot tell the embedding model, which names the vector tables: {e}",
            entry.name
        ))
    })?;
    Ok(match plan.embedding {
        EmbeddingPlan::Builtin { dim } => (HASH_EMBEDDER_MODEL.to_owned(), dim),
        EmbeddingPlan::Http { name, dim, .. } => (name, dim),
    })
}
