//! The hrag daemon as a library; `hragd` (src/bin/hragd.rs) only wires it to the command line.
//!
//! See ARCHITECTURE.md at the repository root for the map of modules and their invariants.

pub mod control;
pub mod daemon;
pub mod error;
pub mod export;
pub mod fsutil;
pub mod health;
pub mod ingest;
pub mod lifecycle;
pub mod logging;
pub mod migrate;
pub mod monitor;
pub mod notify;
pub mod paths;
pub mod providers;
pub mod query;
pub mod registry;
pub mod storage;
pub mod supervisor;
