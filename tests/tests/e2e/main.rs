//! End-to-end tests: every test here runs the real `hragd` and `hragctl` binaries (and, where
//! needed, a real private PostgreSQL cluster). One test binary keeps link times low on two cores.

mod support;

mod control;
mod crash;
mod export;
mod ingest;
mod json_roundtrip;
mod json_storage;
mod lifecycle;
mod migrate;
mod monitoring;
mod pg_daemon;
mod pg_dedup;
mod pg_index;
mod pg_smoke;
mod pg_storage;
mod provisioning;
mod registry;
