//! The messages: one handshake, one request enum, one response enum, progress events.
//!
//! Every request is answered by zero or more [`ServerMessage::Progress`] frames followed by
//! exactly one [`ServerMessage::Response`]. Serde attributes here must stay bincode-compatible:
//! no `skip_serializing_if`, `flatten`, `untagged` or internally tagged enums.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ErrorBody;

#[cfg(test)]
use proptest_derive::Arbitrary;

/// First frame a client sends. Its layout never changes, so that any two versions of hrag can at
/// least tell each other that they do not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Hello {
    pub protocol_min: u32,
    pub protocol_max: u32,
    /// Name and version of the client, for the daemon's log.
    pub client: String,
}

/// The daemon's answer to [`Hello`]; as stable as `Hello` itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum HelloReply {
    Accepted {
        protocol: u32,
        server: String,
    },
    /// `exit_code` is what the client should exit with ([`crate::exit`]).
    Rejected {
        exit_code: i32,
        message: String,
    },
}

/// A database named by the user, or all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum DbTarget {
    One(String),
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    Json,
    Postgres,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Json => "json",
            BackendKind::Postgres => "postgres",
        }
    }
}

/// `hragctl db add`: register (or adopt) a knowledge base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct DbAddSpec {
    pub name: String,
    /// LightRAG working directory, absolute (the client resolves relative paths).
    pub path: String,
    pub source_folder: Option<String>,
    pub workspace: Option<String>,
    pub backend: BackendKind,
    pub pg: PgTargetSpec,
}

/// Where a Postgres database lives, as `db add` / `db set-backend` name it. Unset fields fall
/// back to the `POSTGRES_*` environment variables of the daemon, then HybridRAG's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct PgTargetSpec {
    /// May carry a password; the daemon moves it to a 0600 file and never stores it in the YAML.
    pub connection_string: Option<String>,
    pub password_file: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub database: Option<String>,
    pub ssl_mode: Option<String>,
    pub max_connections: Option<u32>,
    /// Register without connecting first (the database is degraded until reachable).
    pub no_check: bool,
}

/// `hragctl db set-backend`: point an entry at another backend without moving data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct SetBackendSpec {
    pub name: String,
    pub backend: BackendKind,
    pub pg: PgTargetSpec,
}

/// `hragctl migrate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct MigrateSpec {
    pub db: String,
    pub to: BackendKind,
    pub connection_string: Option<String>,
    pub embedding_model: Option<String>,
    pub batch_size: Option<u32>,
    pub resume: bool,
    pub verify: bool,
    pub dry_run: bool,
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum QueryMode {
    Naive,
    Local,
    Global,
    Hybrid,
    Mix,
}

impl QueryMode {
    /// LightRAG's name of the mode (also its LLM-cache key prefix).
    pub fn as_str(self) -> &'static str {
        match self {
            QueryMode::Naive => "naive",
            QueryMode::Local => "local",
            QueryMode::Global => "global",
            QueryMode::Hybrid => "hybrid",
            QueryMode::Mix => "mix",
        }
    }
}

/// `hragctl query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct QuerySpec {
    pub db: String,
    pub text: String,
    pub mode: QueryMode,
    pub top_k: Option<u32>,
    pub answer: bool,
}

/// Everything a client can ask; one variant per `hragctl` command that needs the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Daemon and per-database state → [`Response::Status`].
    Status,
    /// Uptime, memory, fds, per-database health → [`Response::Health`].
    Health,
    /// Pause ingestion; answered only after each database acknowledged → [`Response::Paused`].
    Pause { target: DbTarget },
    /// Resume ingestion → [`Response::Resumed`].
    Resume { target: DbTarget },
    /// → [`Response::DbList`].
    DbList,
    /// One registry entry, passwords redacted → [`Response::DbShow`].
    DbShow { name: String },
    /// → [`Response::DbAdded`].
    DbAdd(DbAddSpec),
    /// Unregisters a database; its data stays on disk → [`Response::DbRemoved`].
    DbRemove { name: String },
    /// → [`Response::BackendSet`].
    DbSetBackend(SetBackendSpec),
    /// PRODUCT §9's backend status, for one database or all → [`Response::BackendStatus`].
    BackendStatus { db: Option<String>, verbose: bool },
    /// Starts (or dry-runs) a migration; streams progress → [`Response::Migration`].
    Migrate(MigrateSpec),
    /// Reattaches to running or last migrations → [`Response::MigrationStatus`].
    MigrateStatus { db: Option<String> },
    /// Compares a database's stores record by record → [`Response::Verified`].
    Verify { db: String },
    /// Writes a database out as a LightRAG JSON directory → [`Response::Exported`].
    Export { db: String, dir: String },
    /// Enqueues files or folders for ingestion now → [`Response::Enqueued`].
    Ingest { db: String, paths: Vec<String> },
    /// → [`Response::Query`].
    Query(QuerySpec),
    /// Prometheus text format → [`Response::Metrics`].
    Metrics,
    /// Re-reads the registry (as SIGHUP does) → [`Response::Reloaded`].
    Reload,
}

impl Request {
    /// The command's name as users type it, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Health => "health",
            Request::Pause { .. } => "pause",
            Request::Resume { .. } => "resume",
            Request::DbList => "db list",
            Request::DbShow { .. } => "db show",
            Request::DbAdd(_) => "db add",
            Request::DbRemove { .. } => "db remove",
            Request::DbSetBackend(_) => "db set-backend",
            Request::BackendStatus { .. } => "backend status",
            Request::Migrate(_) => "migrate",
            Request::MigrateStatus { .. } => "migrate status",
            Request::Verify { .. } => "verify",
            Request::Export { .. } => "export",
            Request::Ingest { .. } => "ingest",
            Request::Query(_) => "query",
            Request::Metrics => "metrics",
            Request::Reload => "reload",
        }
    }
}

/// A database's supervisor state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum DbState {
    Starting,
    Idle,
    Ingesting,
    Paused,
    Migrating,
    Error,
    /// Running, but its backend server is unreachable: work waits and is retried.
    Degraded,
}

impl DbState {
    pub fn as_str(self) -> &'static str {
        match self {
            DbState::Starting => "starting",
            DbState::Idle => "idle",
            DbState::Ingesting => "ingesting",
            DbState::Paused => "paused",
            DbState::Migrating => "migrating",
            DbState::Error => "error",
            DbState::Degraded => "degraded",
        }
    }
}

/// One database as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct DbStatus {
    pub name: String,
    pub backend: String,
    pub state: DbState,
    /// Ingestion is paused by the user (persisted; survives restarts).
    pub paused: bool,
    pub path: String,
    pub workspace: Option<String>,
    pub source_folder: Option<String>,
    pub auto_watch: bool,
    /// Why the database is in `error`, naming the file and field where there is one.
    pub error: Option<String>,
    /// Vector indexes built in the background (Postgres), the last build of each table.
    pub index_builds: Vec<IndexBuild>,
}

/// Where a background vector-index build stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum IndexBuildState {
    Building,
    Done,
    Failed,
}

impl IndexBuildState {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexBuildState::Building => "building",
            IndexBuildState::Done => "done",
            IndexBuildState::Failed => "failed",
        }
    }
}

/// One vector index built in the background (`CREATE INDEX CONCURRENTLY`); vector queries on
/// its table use a sequential scan until it is `done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct IndexBuild {
    pub table: String,
    pub index: String,
    /// PostgreSQL's phase (`pg_stat_progress_create_index`), "building elsewhere" while
    /// another daemon builds it, or why the last attempt failed.
    pub phase: String,
    /// Progress of the current phase, 0–100, when PostgreSQL reports one.
    pub percent: Option<f64>,
    /// Seconds since the build started (its whole duration once finished).
    pub elapsed_secs: f64,
    pub state: IndexBuildState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct DaemonStatus {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub socket: String,
    pub registry: String,
    pub state_dir: String,
    pub databases: Vec<DbStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct DbHealth {
    pub name: String,
    pub state: DbState,
    pub paused: bool,
    pub queue_depth: u64,
    /// RFC 3339 time of the last finished ingest cycle.
    pub last_ingest: Option<String>,
    pub last_error: Option<String>,
    /// Reachability of the backend's server (Postgres databases).
    pub backend: Option<BackendProbe>,
}

/// The last reachability probe of a database's server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct BackendProbe {
    pub reachable: bool,
    pub latency_ms: Option<f64>,
    pub server_version: Option<String>,
    pub pgvector_version: Option<String>,
    /// Why it is unreachable.
    pub error: Option<String>,
    /// RFC 3339 time of the probe.
    pub checked_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Health {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub open_fds: u64,
    pub databases: Vec<DbHealth>,
}

/// A database's state after a pause or resume was acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct DbAck {
    pub name: String,
    pub state: DbState,
    pub paused: bool,
}

/// One registry entry in brief, with any DSN redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct DbSummary {
    pub name: String,
    pub backend: String,
    pub path: String,
    pub workspace: Option<String>,
    pub source_folder: Option<String>,
    pub auto_watch: bool,
    /// Postgres connection with the password replaced by `***`.
    pub connection: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct DbDetail {
    pub summary: DbSummary,
    /// The registry entry as JSON text (unknown keys included, passwords redacted). Text, not a
    /// value, because the wire format cannot carry self-describing values.
    pub entry_json: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum BackendHealth {
    Healthy,
    Degraded,
    Error,
}

/// PRODUCT §9: the original plan's `BackendStatusResponse.metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct BackendMetrics {
    /// Store file name → bytes (JSON backend); table name → bytes (Postgres).
    pub file_sizes: BTreeMap<String, u64>,
    pub total_size_bytes: u64,
    pub entity_count: u64,
    pub relation_count: u64,
    pub chunk_count: u64,
    pub doc_count: u64,
    pub is_connected: bool,
    pub connection_latency_ms: Option<f64>,
    /// The size warning thresholds (`file_size_warning_mb`, `total_size_warning_mb`) in bytes,
    /// for backends whose files are watched.
    pub file_size_warning_bytes: Option<u64>,
    pub total_size_warning_bytes: Option<u64>,
}

/// PRODUCT §9: the original plan's `BackendStatusResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct BackendStatusReport {
    pub database: String,
    pub backend_type: String,
    pub status: BackendHealth,
    pub reason: Option<String>,
    pub metrics: BackendMetrics,
    pub warnings: Vec<String>,
}

/// Per-store figures of a migration or verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct StoreReport {
    pub store: String,
    pub records: u64,
    pub bytes: u64,
    pub verified: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    Planning,
    Pausing,
    Copying,
    Verifying,
    Switching,
    Indexing,
    Done,
    Failed,
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct MigrationReport {
    pub db: String,
    pub phase: JobPhase,
    pub dry_run: bool,
    pub target: Option<String>,
    pub embedding_model: Option<String>,
    pub embedding_dim: Option<u32>,
    pub stores: Vec<StoreReport>,
    pub duration_secs: f64,
    pub bytes_per_sec: f64,
    pub peak_rss_bytes: u64,
    pub verified: Option<bool>,
    pub message: Option<String>,
    /// The vector indexes the switch left to build in the background, as they stand when the
    /// report is made (`migrate status` after the job shows their whole build time).
    pub index_builds: Vec<IndexBuild>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct VerifyReport {
    pub db: String,
    pub ok: bool,
    pub stores: Vec<StoreReport>,
    /// The first records that differ, named by store and id.
    pub mismatches: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct ExportReport {
    pub db: String,
    pub dir: String,
    pub stores: Vec<StoreReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Enqueued {
    pub db: String,
    pub files: u64,
    pub skipped: Vec<String>,
}

/// One retrieved item of a query's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Retrieved {
    /// The record's key: a chunk id, an entity name, or `src<SEP>tgt`.
    pub id: String,
    /// LightRAG's md5 id of the item, the same on every backend: `ent-` + md5(name),
    /// `rel-` + md5(src + tgt), or for a chunk `chunk-` + md5(content) (the id LightRAG ≤ 1.4.9
    /// gave chunks, which 1.5.7 names `{doc_id}-chunk-NNN`).
    pub hash_id: String,
    pub score: f64,
    pub content: String,
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct QueryResult {
    pub db: String,
    pub mode: QueryMode,
    pub chunks: Vec<Retrieved>,
    pub entities: Vec<Retrieved>,
    pub relations: Vec<Retrieved>,
    pub answer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// The one answer to each [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Status(DaemonStatus),
    Health(Health),
    Paused(Vec<DbAck>),
    Resumed(Vec<DbAck>),
    DbList(Vec<DbSummary>),
    DbShow(DbDetail),
    DbAdded(DbSummary),
    DbRemoved { name: String },
    BackendSet(DbSummary),
    BackendStatus(Vec<BackendStatusReport>),
    Migration(MigrationReport),
    MigrationStatus(Vec<MigrationReport>),
    Verified(VerifyReport),
    Exported(ExportReport),
    Enqueued(Enqueued),
    Query(QueryResult),
    Metrics { text: String },
    Reloaded(ReloadReport),
    Error(ErrorBody),
}

/// Progress of a long job (migration, verification, export, bulk ingest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct ProgressEvent {
    pub db: String,
    pub phase: JobPhase,
    pub store: Option<String>,
    pub records_done: u64,
    pub records_total: Option<u64>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    pub message: Option<String>,
}

/// Every frame the daemon sends after the handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum ServerMessage {
    Progress(ProgressEvent),
    Response(Response),
}
