//! The PostgreSQL backend: LightRAG 1.5.7's own tables (`LIGHTRAG_*`, the per-model
//! `lightrag_vdb_*` tables and `PGTableGraphStorage`'s `lightrag_graph_*`), every statement
//! scoped by `workspace`.
//!
//! Memory stays bounded: a bounded pool, a statement timeout, batched multi-row writes in
//! transactions, and keyset-paginated reads (the [`Cursor`] is the last key) — nothing loads a
//! whole table. Writes go straight to the server, so `flush()` is a no-op.
//!
//! Single writer: [`PgStores::into_backend`] holds `pg_try_advisory_lock(hashtext('hrag:' ||
//! workspace))` on a dedicated connection for the backend's lifetime.
//!
//! Vector indexes: created with their table when it is empty; a table that already holds rows
//! gets its index built in the background ([`index_build`]) while the backend is open.

mod doc_status;
mod graph;
mod index_build;
mod kv;
mod nodelay;
mod probe;
pub mod schema;
mod settings;
mod vector;

pub use doc_status::PgDocStatusStore;
pub use graph::PgGraphStore;
pub use kv::PgKvStore;
pub(crate) use kv::{Kind as KvKind, spec as kv_spec};
pub use probe::PgProbe;
pub use probe::{TargetError, check_target};
pub use schema::VectorIndexDdl;
pub use settings::VectorIndexType;
pub use vector::PgVectorStore;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};

use super::{
    Backend, Cursor, DocStatusStore, GraphStore, IndexBuilds, KvNamespace, KvStore, StorageError,
    StorageResult, VectorNamespace, VectorStore,
};

/// Rows per multi-row statement in batched writes.
pub(crate) const WRITE_BATCH: usize = 500;

/// How to reach the database and what to keep in it.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://user[:password]@host:port/database[?…]` (may carry a password; never shown).
    pub url: String,
    /// Overrides the URL's password when set.
    pub password: Option<String>,
    /// LightRAG's workspace (every row's `workspace` column).
    pub workspace: String,
    /// The embedding model name (table suffix); `None` for LightRAG's bare vector tables.
    pub embedding_model: Option<String>,
    pub embedding_dim: usize,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Server-side `statement_timeout` for pool connections.
    pub statement_timeout: Duration,
    /// HNSW `m` and `ef_construction` (LightRAG's defaults: 16 and 64).
    pub hnsw_m: u32,
    pub hnsw_ef: u32,
    /// libpq's `sslmode` (`disable` … `verify-full`); overrides one in the URL.
    pub ssl_mode: Option<String>,
    pub index_type: VectorIndexType,
}

impl PgSettings {
    /// Settings with LightRAG's defaults for everything but the connection and the data.
    pub fn new(
        url: impl Into<String>,
        workspace: impl Into<String>,
        embedding_model: Option<String>,
        embedding_dim: usize,
    ) -> PgSettings {
        PgSettings {
            url: url.into(),
            password: None,
            workspace: workspace.into(),
            embedding_model,
            embedding_dim,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(60),
            hnsw_m: 16,
            hnsw_ef: 64,
            ssl_mode: None,
            index_type: VectorIndexType::Hnsw,
        }
    }

    /// The URL with any password replaced, plus the workspace: safe to show.
    pub fn location(&self) -> String {
        format!(
            "{} (workspace {:?})",
            crate::registry::secret::redact_dsn(&self.url),
            self.workspace
        )
    }

    fn connect_options(&self) -> StorageResult<PgConnectOptions> {
        let mut opts = PgConnectOptions::from_str(&self.url).map_err(|e| {
            StorageError::Invalid(format!(
                "invalid postgres connection string {}: {e}",
                crate::registry::secret::redact_dsn(&self.url)
            ))
        })?;
        if let Some(pw) = &self.password {
            opts = opts.password(pw);
        }
        if let Some(mode) = &self.ssl_mode {
            let mode = PgSslMode::from_str(mode).map_err(|e| {
                StorageError::Invalid(format!("invalid postgres_ssl_mode '{mode}': {e}"))
            })?;
            opts = opts.ssl_mode(mode);
        }
        Ok(opts.application_name("hragd").disable_statement_logging())
    }
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("location", &self.location())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("embedding_model", &self.embedding_model)
            .field("embedding_dim", &self.embedding_dim)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// An open connection pool for one workspace, and the factory of its stores.
pub struct PgStores {
    pool: PgPool,
    settings: PgSettings,
}

impl PgStores {
    /// Connects a bounded pool (checked with one round trip).
    pub async fn connect(settings: PgSettings) -> StorageResult<PgStores> {
        if settings.embedding_dim == 0 {
            return Err(StorageError::Invalid(
                "the postgres backend needs an embedding dimension".into(),
            ));
        }
        let timeout_ms = settings.statement_timeout.as_millis().to_string();
        let opts = settings.connect_options()?.options([
            ("statement_timeout", timeout_ms.as_str()),
            ("timezone", "UTC"),
        ]);
        // Over TCP, each new connection gets TCP_NODELAY as libpq would set it (see `nodelay`).
        let tcp_port = opts.get_socket().is_none().then(|| opts.get_port());
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            .after_connect(move |_conn, _meta| {
                Box::pin(async move {
                    if let Some(port) = tcp_port {
                        nodelay::set_on_sockets_to(port);
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| unreachable(&settings, &e))?;
        Ok(PgStores { pool, settings })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    pub fn workspace(&self) -> &str {
        &self.settings.workspace
    }

    /// The vector table of a namespace for this model and dimension.
    pub fn vector_table(&self, ns: VectorNamespace) -> StorageResult<String> {
        schema::vector_table(
            ns,
            self.settings.embedding_model.as_deref(),
            self.settings.embedding_dim,
        )
    }

    /// Creates the pgvector extension and every missing LightRAG table and index, as LightRAG
    /// 1.5.7 creates them; idempotent and safe against concurrent callers. Everything is in
    /// place when it returns: a vector index missing on a table that holds rows is built with
    /// `CREATE INDEX CONCURRENTLY` (writers go on) and awaited.
    pub async fn ensure_schema(&self) -> StorageResult<()> {
        let opts = self.connect_options_unlimited()?;
        for ddl in self.prepare_schema(true).await? {
            index_build::build_now(&opts, &self.pool, &ddl)
                .await
                .map_err(StorageError::Backend)?;
        }
        Ok(())
    }

    /// Like [`Self::ensure_schema`], but a vector index missing (or left INVALID by an
    /// interrupted concurrent build) on a table that already holds rows is not built: it is
    /// returned, for [`Self::into_backend`] to build in the background. Indexing an empty table
    /// is cheap and happens here.
    pub async fn ensure_schema_deferring_indexes(&self) -> StorageResult<Vec<VectorIndexDdl>> {
        self.prepare_schema(true).await
    }

    /// Every table and btree index, but no vector index: for a bulk copy, where maintaining
    /// HNSW row by row would dominate; the indexes are built when the database next opens.
    pub async fn ensure_tables(&self) -> StorageResult<()> {
        self.prepare_schema(false).await.map(|_| ())
    }

    /// Creates what is missing; returns the vector indexes still to build concurrently.
    /// Another workspace's concurrent index build on a shared table can deadlock with this
    /// transaction's DDL; the server then aborts one side, and this side simply tries again.
    async fn prepare_schema(&self, vector_indexes: bool) -> StorageResult<Vec<VectorIndexDdl>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.prepare_schema_once(vector_indexes).await {
                Err(StorageError::Backend(m)) if m.contains("deadlock detected") && attempt < 5 => {
                    tracing::info!(
                        event = "pg_schema_retry",
                        attempt,
                        "schema creation deadlocked with a concurrent index build; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn prepare_schema_once(
        &self,
        vector_indexes: bool,
    ) -> StorageResult<Vec<VectorIndexDdl>> {
        let mut tx = self.pool.begin().await.map_err(|e| db_err("begin", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hrag:schema'))")
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("schema lock", e))?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                StorageError::Backend(format!(
                    "pgvector is missing: CREATE EXTENSION vector failed on {}: {e}",
                    self.settings.location()
                ))
            })?;
        let mut stmts = schema::base_ddl();
        let mut indexes = Vec::new();
        let dim = self.settings.embedding_dim;
        for ns in VectorNamespace::ALL {
            let table = self.vector_table(ns)?;
            stmts.extend(schema::vector_ddl(ns, &table, dim));
            if !vector_indexes {
                continue;
            }
            let s = &self.settings;
            match schema::vector_index(&table, dim, s.index_type, s.hnsw_m, s.hnsw_ef) {
                Ok(ddl) => {
                    if schema::uses_halfvec(dim) {
                        tracing::info!(event = "pg_vector_index_halfvec", table = %table, dim,
                            "{table}: {dim} dimensions exceed pgvector's {} limit for vector \
                             indexes; it is indexed and searched as halfvec({dim})",
                            schema::MAX_INDEXED_DIM);
                    }
                    indexes.push(ddl);
                }
                Err(why) => tracing::warn!(
                    event = "pg_vector_index_skipped",
                    table = %table,
                    dim,
                    "no vector index on {table}: {why}; vector queries use a sequential scan"
                ),
            }
        }
        schema::run_script(&mut tx, &stmts)
            .await
            .map_err(|e| db_err("create schema", e))?;
        let mut deferred = Vec::new();
        for ddl in indexes {
            let state = index_build::index_state(&mut *tx, &ddl)
                .await
                .map_err(|e| StorageError::Backend(format!("postgres index state: {e}")))?;
            match state {
                Some(true) => {}
                // An INVALID index is a concurrent build in progress or the leftover of one:
                // only the background build, under the table's build lock, may drop it.
                Some(false) => deferred.push(ddl),
                None => {
                    let has_rows: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT EXISTS (SELECT 1 FROM {} LIMIT 1)",
                        ddl.table
                    )))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| db_err("vector table rows", e))?;
                    if has_rows {
                        deferred.push(ddl);
                    } else {
                        sqlx::query(sqlx::AssertSqlSafe(ddl.create()))
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| db_err("create vector index", e))?;
                    }
                }
            }
        }
        tx.commit().await.map_err(|e| db_err("commit schema", e))?;
        Ok(deferred)
    }

    /// Connect options for the index builder's own sessions (no pool, no statement timeout).
    fn connect_options_unlimited(&self) -> StorageResult<PgConnectOptions> {
        Ok(self
            .settings
            .connect_options()?
            .options([("timezone", "UTC")]))
    }

    pub fn kv(&self, ns: KvNamespace) -> PgKvStore {
        PgKvStore::new(self.pool.clone(), self.settings.workspace.clone(), ns)
    }

    pub fn vectors(&self, ns: VectorNamespace) -> StorageResult<PgVectorStore> {
        Ok(PgVectorStore::new(
            self.pool.clone(),
            self.settings.workspace.clone(),
            ns,
            self.vector_table(ns)?,
            self.settings.embedding_dim,
        ))
    }

    pub fn graph(&self) -> PgGraphStore {
        PgGraphStore::new(self.pool.clone(), self.settings.workspace.clone())
    }

    pub fn doc_status(&self) -> PgDocStatusStore {
        PgDocStatusStore::new(self.pool.clone(), self.settings.workspace.clone())
    }

    /// Takes the workspace's single-writer lock on a dedicated connection.
    pub async fn lock(&self) -> StorageResult<PgWriterLock> {
        let opts = self.settings.connect_options()?;
        let mut conn = opts
            .connect()
            .await
            .map_err(|e| unreachable(&self.settings, &e))?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('hrag:' || $1))")
            .bind(&self.settings.workspace)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| db_err("advisory lock", e))?;
        if !got {
            // Best effort: the connection closes anyway when dropped.
            let _ = conn.close().await;
            return Err(StorageError::Locked(format!(
                "postgres workspace {} is in use by another hragd (its advisory lock \
                 hrag:{} is held); stop that daemon or use another workspace",
                self.settings.location(),
                self.settings.workspace
            )));
        }
        Ok(PgWriterLock {
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
        })
    }

    /// Ensures the schema, takes the single-writer lock and assembles the [`Backend`], whose
    /// probe runs over the lock's session.
    pub async fn into_backend(self) -> StorageResult<Backend> {
        let guard = self.lock().await?;
        let probe = PgProbe::new(guard.conn.clone(), self.settings.acquire_timeout);
        let pending = self.ensure_schema_deferring_indexes().await?;
        let tracker = Arc::new(index_build::BuildTracker::default());
        // Nothing to build: no task, no extra session.
        let builder = if pending.is_empty() {
            None
        } else {
            Some(index_build::spawn(
                self.connect_options_unlimited()?,
                self.pool.clone(),
                pending,
                tracker.clone(),
            ))
        };
        let kv: Vec<Arc<dyn KvStore>> = KvNamespace::ALL
            .iter()
            .map(|ns| Arc::new(self.kv(*ns)) as Arc<dyn KvStore>)
            .collect();
        let mut vectors: Vec<Arc<dyn VectorStore>> = Vec::new();
        for ns in VectorNamespace::ALL {
            vectors.push(Arc::new(self.vectors(ns)?));
        }
        let graph: Arc<dyn GraphStore> = Arc::new(self.graph());
        let doc_status: Arc<dyn DocStatusStore> = Arc::new(self.doc_status());
        Backend::new(
            kv,
            vectors,
            graph,
            doc_status,
            self.settings.location(),
            // The builds end with the backend, as the writer lock does.
            Box::new((guard, builder)),
        )
        .map(|b| {
            b.with_probe(Arc::new(probe))
                .with_index_builds(tracker as Arc<dyn IndexBuilds>)
        })
    }
}

/// Holds the advisory lock; released when dropped (the server ends the session).
pub struct PgWriterLock {
    conn: Arc<tokio::sync::Mutex<PgConnection>>,
}

fn unreachable(settings: &PgSettings, e: &sqlx::Error) -> StorageError {
    StorageError::Unreachable(format!(
        "cannot connect to postgres at {}: {e}",
        settings.location()
    ))
}

/// Maps a statement error: lost connections and pool timeouts are `Unreachable`.
pub(crate) fn db_err(context: &str, e: sqlx::Error) -> StorageError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => {
            StorageError::Unreachable(format!("postgres unreachable ({context}): {e}"))
        }
        // Class 08 (connection exception) and 57P (the server shutting down or starting up):
        // the server is going away or not there yet, not refusing what was asked.
        sqlx::Error::Database(d)
            if d.code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
        {
            StorageError::Unreachable(format!("postgres unreachable ({context}): {d}"))
        }
        other => StorageError::Backend(format!("postgres {context}: {other}")),
    }
}

/// The cursor after a page of `limit` rows whose last key is `last`.
pub(crate) fn next_cursor(got: usize, limit: usize, last: Option<String>) -> Option<Cursor> {
    if got < limit { None } else { last.map(Cursor) }
}

/// A page limit as SQL `LIMIT`.
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit.max(1)).unwrap_or(i64::MAX)
}

/// Nulls are omitted from records (a JSON store has no key rather than `null`).
pub(crate) fn parse_json(text: &str, what: &str) -> StorageResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| {
        StorageError::Backend(format!("postgres returned invalid JSON in {what}: {e}"))
    })
}
