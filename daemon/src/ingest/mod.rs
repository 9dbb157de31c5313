//! Ingestion: keeping a database in step with its source folder, producing the records
//! LightRAG 1.5.7 would (same ids, chunk boundaries and record shapes).
//!
//! `watcher` turns the folder into coalesced file events, `queue` holds the pending work,
//! `pipeline` runs one document through LightRAG's insert path on the storage traits (with
//! `text` and `chunking` reproducing LightRAG's ids and chunk boundaries, and `merge` its merge
//! rules), and the database's supervisor drives them one document at a time.

pub mod chunker_cache;
pub mod chunking;
pub mod doc_index;
pub mod merge;
pub mod pipeline;
pub mod queue;
pub mod text;
pub mod watcher;
