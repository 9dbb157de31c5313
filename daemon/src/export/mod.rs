//! `hragctl export DB --to json DIR`: a database written out as a LightRAG 1.5.7 JSON working
//! directory that LightRAG's own JSON classes open with the same records (the rollback of a
//! migration to Postgres).
//!
//! Every store is read through the storage traits' `page` scans, whatever the backend, and
//! written file by file as it is read: `records` (KV namespaces, doc status), `vectors`
//! (nano-vectordb files, the matrix spilled to a scratch file), `graph` (GraphML through a
//! scratch body). Memory is a page of records plus fixed buffers, whatever the database's
//! size. `staging` makes the directory appear only when complete.

mod error;
mod graph;
mod out;
mod progress;
mod records;
mod staging;
mod vectors;

use std::path::Path;

use hrag_proto::StoreReport;

pub use error::ExportError;
pub use progress::Progress;

use crate::storage::{Backend, DOC_STATUS_FILE, GRAPH_FILE, KvNamespace, VectorNamespace};

/// Records per page read from the database.
const PAGE: usize = 500;

/// Refuses a target that [`run`] would refuse, before anything is paused: `dir` must be
/// absolute and absent or an empty directory.
pub fn check_target(dir: &Path) -> Result<(), ExportError> {
    staging::check(dir).map(|_| ())
}

/// Writes every store of `backend` into the new directory `dir` (absent or empty), atomically.
/// Returns one report per store, in the order written.
pub async fn run(
    backend: &Backend,
    dir: &Path,
    progress: &Progress,
) -> Result<Vec<StoreReport>, ExportError> {
    let staging = staging::Staging::prepare(dir)?;
    let mut reports = Vec::new();
    for (store, ns) in backend.kv_stores().iter().zip(KvNamespace::ALL) {
        let name = ns.file_name();
        let src = records::Source::Kv(store.as_ref());
        reports.push(records::write(src, &staging.file(&name), &name, progress).await?);
    }
    for (store, ns) in backend.vector_stores().iter().zip(VectorNamespace::ALL) {
        let name = ns.file_name();
        let spill = staging.file(&format!(".{name}.matrix"));
        let path = staging.file(&name);
        reports.push(vectors::write(store.as_ref(), &path, &spill, &name, progress).await?);
    }
    let body = staging.file(&format!(".{GRAPH_FILE}.body"));
    let path = staging.file(GRAPH_FILE);
    reports.extend(graph::write(backend.graph.as_ref(), &path, &body, GRAPH_FILE, progress).await?);
    let src = records::Source::DocStatus(backend.doc_status.as_ref());
    let path = staging.file(DOC_STATUS_FILE);
    reports.push(records::write(src, &path, DOC_STATUS_FILE, progress).await?);
    staging.commit()?;
    Ok(reports)
}
