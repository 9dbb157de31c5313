//! Migration of a knowledge base from LightRAG JSON files into LightRAG's PostgreSQL schema
//! (issue #6, PRODUCT §7).
//!
//! Data flows `source` (streaming readers of the JSON files) → `feed` (rows of [`cell::Cell`]s
//! in batches, on a blocking thread, with a digest of what was read) → `writer` (one
//! transaction per batch: binary COPY + checkpoint) → `verify` (the target streamed back and
//! hashed the same way). `job` runs the steps; the daemon adds the pause and the switch.
//!
//! Invariants: nothing holds a whole store in memory; the source is never written; a
//! checkpoint commits with its batch, so a resumed copy neither loses nor repeats a record.

pub mod cell;
pub mod checkpoint;
pub mod copy_binary;
pub mod digest;
pub mod error;
pub mod feed;
pub mod job;
pub mod recheck;
pub mod source;
pub mod table;
pub mod verify;
pub mod writer;

pub use error::MigrateError;
pub use job::{Emit, Job, JobSpec, Outcome};
