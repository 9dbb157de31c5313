//! One migration of a JSON working directory into a Postgres workspace: plan, copy with
//! checkpoints, verify. The daemon wraps it with the pause and the registry switch.
//!
//! Invariants: the source is only read; the target's vector tables get no vector index here;
//! every committed batch carries its checkpoint; a lost connection is retried from the
//! checkpoint, and after too many retries the job ends `interrupted` with the checkpoint saved.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hrag_proto::{JobPhase, MigrationReport, ProgressEvent, StoreReport};
use sqlx::postgres::PgConnectOptions;
use std::sync::Mutex;

use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, PgConnection, Postgres};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::checkpoint::{self, JobRecord, Mirror, MirrorStore, StoreProgress};
use super::digest::Digest;
use super::error::MigrateError;
use super::feed::{Limits, SourceCtx, spawn};
use super::source::SourceDir;
use super::source::vdb::VdbSource;
use super::table::{RowMapper, Store, TableSpec};
use super::verify;
use super::writer::Writer;
use crate::storage::postgres::{PgSettings, PgStores, PgWriterLock, check_target, db_err, schema};
use crate::storage::{KvNamespace, StorageError, VectorNamespace};

/// How long the target may stay unreachable during the copy before the job gives up.
const RETRY_FOR: Duration = Duration::from_secs(120);
const MAX_BATCH_BYTES: usize = 4 << 20;
const DEFAULT_BATCH_ROWS: usize = 5000;

/// What to migrate, and how.
#[derive(Clone)]
pub struct JobSpec {
    pub db: String,
    /// The LightRAG working directory and its workspace subfolder, if any.
    pub source_path: PathBuf,
    pub source_workspace: Option<String>,
    /// The target; its `embedding_dim` is taken from the source.
    pub target: PgSettings,
    /// Used when the source has no vector file to tell the dimension.
    pub fallback_dim: Option<usize>,
    pub batch_rows: Option<usize>,
    pub resume: bool,
    pub verify: bool,
    pub dry_run: bool,
    pub force: bool,
    pub state_dir: PathBuf,
    /// The database's open JSON store, for the verification's query sample.
    pub sample: Option<Arc<crate::storage::Backend>>,
}

/// Progress events go here (the client's stream, and `migrate status`).
pub type Emit = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// What a finished job learnt, for the switch.
pub struct Outcome {
    pub report: MigrationReport,
    pub embedding_dim: usize,
    /// What the verification's query sample found.
    pub query_check: Option<String>,
}

struct Plan {
    ctx: Arc<SourceCtx>,
    stores: Vec<Store>,
    dim: usize,
    total_bytes: u64,
    sizes: HashMap<String, u64>,
    vdb_rows: HashMap<String, u64>,
    target_id: String,
    notes: Vec<String>,
}

fn event(db: &str, phase: JobPhase, message: Option<String>) -> ProgressEvent {
    ProgressEvent {
        db: db.to_owned(),
        phase,
        store: None,
        records_done: 0,
        records_total: None,
        bytes_done: 0,
        bytes_total: None,
        message,
    }
}

fn tgt(context: &str, e: sqlx::Error) -> MigrateError {
    MigrateError::target(db_err(context, e))
}

/// Host, port, database and workspace of the target: no user, no password.
pub fn target_identity(s: &PgSettings) -> String {
    match PgConnectOptions::from_str(&s.url) {
        Ok(o) => format!(
            "{}:{}/{} workspace {}",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or(""),
            s.workspace
        ),
        Err(_) => format!("{} workspace {}", s.location(), s.workspace),
    }
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
        // timestamp(0) columns keep whole seconds; a default must survive them unchanged.
        / 1_000_000
        * 1_000_000
}

pub struct Job {
    spec: JobSpec,
    query_check: Mutex<Option<String>>,
    emit: Emit,
    cancel: CancellationToken,
    started: Instant,
}

impl Job {
    pub fn new(spec: JobSpec, emit: Emit, cancel: CancellationToken) -> Job {
        Job {
            spec,
            query_check: Mutex::new(None),
            emit,
            cancel,
            started: Instant::now(),
        }
    }

    /// A step inside a phase, for the log (with the time since the job started).
    fn step(&self, what: &str) {
        info!(event = "migration_step", db = %self.spec.db, step = what,
              secs = self.started.elapsed().as_secs_f64(), "migration: {what}");
    }

    fn say(&self, phase: JobPhase, message: impl Into<String>) {
        let m = message.into();
        info!(event = "migration_phase", db = %self.spec.db, phase = ?phase, "{m}");
        (self.emit)(event(&self.spec.db, phase, Some(m)));
    }

    fn report(&self, phase: JobPhase, plan: Option<&Plan>) -> MigrationReport {
        MigrationReport {
            db: self.spec.db.clone(),
            phase,
            dry_run: self.spec.dry_run,
            target: Some(self.spec.target.location()),
            embedding_model: self.spec.target.embedding_model.clone(),
            embedding_dim: plan.map(|p| u32::try_from(p.dim).unwrap_or(u32::MAX)),
            stores: Vec::new(),
            duration_secs: self.started.elapsed().as_secs_f64(),
            bytes_per_sec: 0.0,
            peak_rss_bytes: crate::health::memory().peak_rss_bytes,
            verified: None,
            message: None,
            index_builds: Vec::new(),
        }
    }

    /// Reads what the source holds and checks the target; changes nothing.
    async fn plan(&mut self) -> Result<Plan, MigrateError> {
        self.say(
            JobPhase::Planning,
            "planning: surveying the source and the target",
        );
        let dir = SourceDir::open(
            &self.spec.source_path,
            self.spec.source_workspace.as_deref(),
        )
        .map_err(MigrateError::source)?;
        let mut sizes = HashMap::new();
        for f in dir.files() {
            sizes.insert(f.name.to_owned(), f.size.unwrap_or(0));
        }
        // The dry run counts every store's rows; the real run reads only the headers (the row
        // stream checks each matrix), which saves a pass over the largest files — unless the
        // headers disagree, when only the stores that hold rows must agree.
        let (dim, vdbs) = match survey_vectors(&dir, !self.spec.dry_run).await {
            Err(MigrateError::Source(_)) if !self.spec.dry_run => {
                survey_vectors(&dir, false).await?
            }
            other => other?,
        };
        let vdb_rows: HashMap<String, u64> = VectorNamespace::ALL
            .iter()
            .filter_map(|ns| {
                let rows = vdbs.get(&ns.file_name())?.row_count()?;
                Some((Store::Vector(*ns).name(), rows))
            })
            .collect();
        let dim = dim.or(self.spec.fallback_dim).ok_or_else(|| {
            MigrateError::Source(format!(
                "{}: no vector file tells the embedding dimension; set model_config.embedding_dim",
                dir.dir().display()
            ))
        })?;
        self.spec.target.embedding_dim = dim;
        let mut notes = Vec::new();
        let index_note = match schema::index_ddl("t", dim, self.spec.target.index_type, 16, 64) {
            Ok(_) if schema::uses_halfvec(dim) => format!(
                "{dim} dimensions exceed pgvector's {} for vector indexes: the index will be a \
                 halfvec({dim}) expression index",
                schema::MAX_INDEXED_DIM
            ),
            Ok(_) => format!(
                "vector index: {:?} on vector({dim})",
                self.spec.target.index_type
            ),
            Err(why) => format!("no vector index: {why}; vector queries will scan"),
        };
        notes.push(index_note);
        let model = self.spec.target.embedding_model.clone();
        notes.push(match &model {
            Some(m) => format!("embedding model {m:?}: LightRAG's per-model vector tables"),
            None => "no embedding model given: LightRAG's bare LIGHTRAG_VDB_* tables".to_owned(),
        });
        let stores = Store::all();
        let specs = table_specs(model.as_deref(), dim)?;
        check_target(&self.spec.target, Duration::from_secs(10))
            .await
            .map_err(|e| MigrateError::Target(e.to_string()))?;
        let total_bytes = dir.total_size();
        let target_id = target_identity(&self.spec.target);
        let ctx = Arc::new(SourceCtx {
            dir,
            specs,
            vdbs,
            mapper: RowMapper { now_us: now_us() },
        });
        Ok(Plan {
            ctx,
            stores,
            dim,
            total_bytes,
            sizes,
            vdb_rows,
            target_id,
            notes,
        })
    }

    async fn connect(&self) -> Result<Session, MigrateError> {
        let mut settings = self.spec.target.clone();
        // Verification streams whole tables; no statement may be cut short.
        settings.statement_timeout = Duration::ZERO;
        // During verification: the digest lanes, the index builders beside them, and the
        // query sample's three questions.
        settings.max_connections = 2 * LANES as u32 + 3;
        let stores = PgStores::connect(settings)
            .await
            .map_err(MigrateError::target)?;
        let lock = stores.lock().await.map_err(|e| match e {
            StorageError::Locked(m) => MigrateError::Target(m),
            other => MigrateError::target(other),
        })?;
        Ok(Session {
            stores,
            _lock: lock,
        })
    }

    /// Creates the tables (LightRAG's DDL, without vector indexes) and the checkpoint tables;
    /// returns LightRAG's secondary btree indexes, built once the data is in (a sorted build
    /// is far cheaper than maintaining them row by row).
    async fn ensure_schema(
        &self,
        conn: &mut PgConnection,
        plan: &Plan,
    ) -> Result<Vec<String>, MigrateError> {
        use sqlx::Acquire as _;
        let mut tx = conn.begin().await.map_err(|e| tgt("begin", e))?;
        let mut stmts = vec![
            "SELECT pg_advisory_xact_lock(hashtext('hrag:schema'))".to_owned(),
            "CREATE EXTENSION IF NOT EXISTS vector".to_owned(),
        ];
        stmts.extend(schema::base_ddl());
        for ns in VectorNamespace::ALL {
            let spec = &plan.ctx.specs[&Store::Vector(ns)];
            stmts.extend(schema::vector_ddl(ns, &spec.table, plan.dim));
        }
        stmts.extend(checkpoint::DDL.iter().map(|s| (*s).to_owned()));
        let (indexes, now): (Vec<String>, Vec<String>) = stmts
            .into_iter()
            .partition(|s| s.starts_with("CREATE INDEX"));
        schema::run_script(&mut tx, &now)
            .await
            .map_err(|e| tgt("create the target tables", e))?;
        // A vector index already on a table (another workspace's, or LightRAG's) would be
        // maintained row by row during the copy: it goes, and is rebuilt in the background
        // once the database is switched (LightRAG also recreates a missing one at start).
        for ns in VectorNamespace::ALL {
            let table = &plan.ctx.specs[&Store::Vector(ns)].table;
            let ann: Vec<String> = sqlx::query_scalar(
                "SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
                 JOIN pg_am a ON a.oid = i.relam WHERE x.indrelid = to_regclass($1) \
                 AND a.amname IN ('hnsw', 'ivfflat')",
            )
            .bind(table)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| tgt("look for vector indexes", e))?;
            for index in ann {
                warn!(event = "migration_vector_index_dropped", db = %self.spec.db, table = %table,
                      index = %index, "{table} already has the vector index {index}: it is dropped \
                      for the copy and rebuilt in the background after the switch; until then \
                      vector queries on {table} scan sequentially");
                sqlx::query(AssertSqlSafe(format!(
                    "DROP INDEX IF EXISTS \"{}\"",
                    index.replace('"', "\"\"")
                )))
                .execute(&mut *tx)
                .await
                .map_err(|e| tgt("drop a vector index for the copy", e))?;
            }
        }
        tx.commit().await.map_err(|e| tgt("commit", e))?;
        Ok(indexes)
    }

    /// Builds the deferred secondary indexes, [`LANES`] at a time, and checks what the disabled
    /// foreign keys would have: every edge's endpoints exist. Runs beside verification (both
    /// only read the tables; `CREATE INDEX` and `COPY … TO` do not block each other).
    async fn finish_tables(
        &self,
        session: &Session,
        indexes: &[String],
    ) -> Result<(), MigrateError> {
        let queue = Mutex::new(indexes.iter());
        let workers = (0..LANES).map(|_| async {
            let mut conn = session.conn().await?;
            loop {
                let Some(ddl) = lock(&queue).next().cloned() else {
                    return Ok::<_, MigrateError>(());
                };
                sqlx::query(AssertSqlSafe(ddl))
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| tgt("create the target's btree indexes", e))?;
            }
        });
        futures::future::try_join_all(workers).await?;
        let mut conn = session.conn().await?;
        // Written with ORs so that PostgreSQL answers with two hash anti-joins (a few times
        // faster than probing the nodes' key per edge).
        let dangling: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM lightrag_graph_edges e WHERE e.workspace = $1 \
             AND (NOT EXISTS (SELECT 1 FROM lightrag_graph_nodes n WHERE n.workspace = e.workspace \
               AND n.namespace = e.namespace AND n.id = e.src_id) \
             OR NOT EXISTS (SELECT 1 FROM lightrag_graph_nodes n WHERE n.workspace = e.workspace \
               AND n.namespace = e.namespace AND n.id = e.tgt_id))",
        )
        .bind(&self.spec.target.workspace)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| tgt("check the graph's edges", e))?;
        if dangling > 0 {
            return Err(MigrateError::Source(format!(
                "{}: {dangling} edges name a node the graph does not have",
                crate::storage::GRAPH_FILE
            )));
        }
        Ok(())
    }

    /// Whether the workspace already has rows in any target table.
    async fn target_rows(
        &self,
        conn: &mut PgConnection,
        plan: &Plan,
    ) -> Result<Vec<String>, MigrateError> {
        let mut holding = Vec::new();
        for s in &plan.stores {
            let spec = &plan.ctx.specs[s];
            let sql = format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE {})",
                spec.table,
                spec.scope(&self.spec.target.workspace)
            );
            let any: bool = sqlx::query_scalar(AssertSqlSafe(sql))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| tgt(&format!("look into {}", spec.table), e))?;
            if any && !holding.contains(&spec.table) {
                holding.push(spec.table.clone());
            }
        }
        Ok(holding)
    }

    async fn wipe(&self, conn: &mut PgConnection, plan: &Plan) -> Result<(), MigrateError> {
        use sqlx::Acquire as _;
        let mut tx = conn.begin().await.map_err(|e| tgt("begin", e))?;
        // Edges before nodes (foreign keys); the graph's cascade would do it, more slowly.
        for s in plan.stores.iter().rev() {
            let spec = &plan.ctx.specs[s];
            let sql = format!(
                "DELETE FROM {} WHERE {}",
                spec.table,
                spec.scope(&self.spec.target.workspace)
            );
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(|e| tgt(&format!("empty {}", spec.table), e))?;
        }
        checkpoint::clear(&mut tx, &self.spec.target.workspace)
            .await
            .map_err(MigrateError::target)?;
        tx.commit().await.map_err(|e| tgt("commit", e))
    }

    /// Decides where the copy starts: a new job, or the checkpoint of the same source.
    async fn start_or_resume(
        &self,
        conn: &mut PgConnection,
        plan: &Plan,
    ) -> Result<JobRecord, MigrateError> {
        let ws = &self.spec.target.workspace;
        let fingerprint = plan.ctx.dir.fingerprint().map_err(MigrateError::source)?;
        let existing = checkpoint::load_job(conn, ws)
            .await
            .map_err(MigrateError::target)?;
        let fresh = JobRecord {
            fingerprint: fingerprint.clone(),
            target: plan.target_id.clone(),
            now_us: plan.ctx.mapper.now_us,
            embedding_model: self.spec.target.embedding_model.clone(),
            embedding_dim: plan.dim,
            state: "copying".into(),
        };
        if self.spec.force {
            self.wipe(conn, plan).await?;
            checkpoint::save_job(conn, ws, &fresh)
                .await
                .map_err(MigrateError::target)?;
            return Ok(fresh);
        }
        match existing {
            Some(job) if self.spec.resume => {
                if job.fingerprint != fingerprint {
                    return Err(MigrateError::Source(format!(
                        "cannot resume: the source {} changed since the checkpoint was taken \
                         (files differ in size, time or content); start over with --force",
                        plan.ctx.dir.dir().display()
                    )));
                }
                if job.target != plan.target_id {
                    return Err(MigrateError::Target(format!(
                        "cannot resume: the checkpoint was taken for {}, not {}",
                        job.target, plan.target_id
                    )));
                }
                if job.embedding_model != fresh.embedding_model || job.embedding_dim != plan.dim {
                    return Err(MigrateError::Invalid(format!(
                        "cannot resume: the checkpoint was taken for embedding model {:?} ({} \
                         dims); give the same --embedding-model",
                        job.embedding_model, job.embedding_dim
                    )));
                }
                Ok(job)
            }
            Some(job) => Err(MigrateError::Target(format!(
                "workspace {ws:?} at {} holds an unfinished migration (state {}); continue it \
                 with --resume, or start over with --force",
                plan.target_id, job.state
            ))),
            None => {
                let holding = self.target_rows(conn, plan).await?;
                if !holding.is_empty() {
                    return Err(MigrateError::Target(format!(
                        "workspace {ws:?} at {} is not empty ({}); refusing to mix data — \
                         use --force to replace it",
                        plan.target_id,
                        holding.join(", ")
                    )));
                }
                checkpoint::save_job(conn, ws, &fresh)
                    .await
                    .map_err(MigrateError::target)?;
                Ok(fresh)
            }
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            rows: self.spec.batch_rows.unwrap_or(DEFAULT_BATCH_ROWS).max(1),
            bytes: MAX_BATCH_BYTES,
        }
    }

    /// Copies every store from its checkpoint on, in parallel lanes; returns the committed
    /// progress.
    async fn copy(
        &self,
        session: &Session,
        plan: &Plan,
        job: &JobRecord,
    ) -> Result<BTreeMap<String, StoreProgress>, MigrateError> {
        let ws = self.spec.target.workspace.clone();
        let mut conn = session.conn().await?;
        let progress = checkpoint::load_progress(&mut conn, &ws)
            .await
            .map_err(MigrateError::target)?;
        drop(conn);
        self.mirror(plan, job, "copying", &progress);
        let shared = Arc::new(Mutex::new(progress));
        // Chunk vector rows take `tokens` from their text_chunks rows, which another lane
        // writes: that lane says when they are all in.
        let (chunks_tx, chunks_rx) = tokio::sync::watch::channel(false);
        let chunks_tx = Arc::new(chunks_tx);
        let runs = lanes(&plan.stores, &plan.sizes).into_iter().map(|stores| {
            let lane = Lane {
                shared: shared.clone(),
                chunks_done: chunks_tx.clone(),
                chunks_wait: chunks_rx.clone(),
            };
            async move { self.lane(session, plan, job, stores, lane).await }
        });
        futures::future::try_join_all(runs).await?;
        let progress = lock(&shared).clone();
        self.mirror(plan, job, "copied", &progress);
        Ok(progress)
    }

    /// One lane: its stores, in order, over its own connection.
    async fn lane(
        &self,
        session: &Session,
        plan: &Plan,
        job: &JobRecord,
        stores: Vec<Store>,
        lane: Lane,
    ) -> Result<(), MigrateError> {
        let text_chunks = Store::Kv(KvNamespace::TextChunks);
        let vdb_chunks = Store::Vector(VectorNamespace::Chunks);
        let writes_text_chunks = stores.contains(&text_chunks);
        let mut conn = session.conn().await?;
        let mut writer = Writer {
            workspace: self.spec.target.workspace.clone(),
            specs: plan.ctx.specs.clone(),
            progress: lane.shared.clone(),
        };
        let from = lock(&lane.shared).clone();
        let mut rx = spawn(plan.ctx.clone(), stores, from, self.limits());
        let mut last_mirror = Instant::now();
        let mut waited = writes_text_chunks;
        loop {
            let batch = tokio::select! {
                _ = self.cancel.cancelled() => return Err(interrupted()),
                b = rx.recv() => b,
            };
            let Some(batch) = batch else { break };
            let batch = batch?;
            if writes_text_chunks && batch.store != text_chunks {
                let _ = lane.chunks_done.send(true);
            }
            if batch.store == vdb_chunks && !waited {
                let mut w = lane.chunks_wait.clone();
                tokio::select! {
                    _ = self.cancel.cancelled() => return Err(interrupted()),
                    r = w.wait_for(|done| *done) => {
                        r.map_err(|_| MigrateError::Interrupted("the text_chunks lane stopped".into()))?;
                    }
                }
                waited = true;
            }
            let store = batch.store.name();
            writer.write(&mut conn, batch).await?;
            let (records, bytes) = {
                let p = lock(&lane.shared);
                (
                    p.values().map(|p| p.digest.records).sum::<u64>(),
                    p.values().map(|p| p.bytes).sum::<u64>(),
                )
            };
            (self.emit)(ProgressEvent {
                db: self.spec.db.clone(),
                phase: JobPhase::Copying,
                store: Some(store),
                records_done: records,
                records_total: None,
                bytes_done: bytes.min(plan.total_bytes),
                bytes_total: Some(plan.total_bytes),
                message: None,
            });
            if last_mirror.elapsed() > Duration::from_secs(1) {
                let p = lock(&lane.shared).clone();
                self.mirror(plan, job, "copying", &p);
                last_mirror = Instant::now();
            }
        }
        if writes_text_chunks {
            let _ = lane.chunks_done.send(true);
        }
        Ok(())
    }

    fn mirror(
        &self,
        plan: &Plan,
        job: &JobRecord,
        state: &str,
        p: &BTreeMap<String, StoreProgress>,
    ) {
        let m = Mirror {
            db: &self.spec.db,
            target: &plan.target_id,
            state,
            fingerprint: &job.fingerprint,
            stores: p
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        MirrorStore {
                            next_ordinal: v.next_ordinal,
                            records: v.digest.records,
                            bytes: v.bytes,
                        },
                    )
                })
                .collect(),
        };
        if let Err(e) = checkpoint::write_mirror(&self.spec.state_dir, &m) {
            warn!(db = %self.spec.db, error = %e, "cannot write the migration checkpoint mirror");
        }
    }

    /// Compares each store's source digest (taken while copying) with the target's.
    async fn verify(
        &self,
        session: &Session,
        plan: &Plan,
        progress: &BTreeMap<String, StoreProgress>,
    ) -> Result<Vec<StoreReport>, MigrateError> {
        self.say(
            JobPhase::Verifying,
            "verifying: hashing every record on the target",
        );
        let ws = &self.spec.target.workspace;
        let digests =
            futures::future::try_join_all(lanes(&plan.stores, &plan.sizes).into_iter().map(
                |stores| async move {
                    let mut c = session.conn().await?;
                    let mut out = Vec::with_capacity(stores.len());
                    for s in stores {
                        out.push((s, verify::pg_digest(&mut c, &plan.ctx.specs[&s], ws).await?));
                    }
                    Ok::<_, MigrateError>(out)
                },
            ));
        let sample = async {
            match &self.spec.sample {
                Some(json) => verify::compare_queries(json, &session.stores).await,
                None => Ok(Ok(
                    "query sample skipped: the JSON store is not open".to_owned()
                )),
            }
        };
        let (digests, sample) = tokio::try_join!(digests, sample)?;
        let sample_note = sample.map_err(|differences| {
            MigrateError::Verification(format!(
                "verification failed: queries answer differently on JSON and Postgres:\n  {}",
                differences.join("\n  ")
            ))
        })?;
        *lock(&self.query_check) = Some(sample_note);
        let digests: HashMap<Store, Digest> = digests.into_iter().flatten().collect();
        let mut conn = session.conn().await?;
        let conn = &mut *conn;
        let mut reports = Vec::new();
        let mut named = Vec::new();
        for s in &plan.stores {
            let spec = &plan.ctx.specs[s];
            let source = progress
                .get(&s.name())
                .map(|p| p.digest.clone())
                .unwrap_or_default();
            let target = digests.get(s).cloned().unwrap_or_default();
            let ok = source == target;
            if !ok {
                let buckets = source.differing(&target);
                let mut n = verify::name_differences(
                    conn,
                    plan.ctx.clone(),
                    spec,
                    ws,
                    &buckets,
                    self.limits(),
                )
                .await?;
                if n.is_empty() {
                    n.push(format!(
                        "{}: {} records in the source, {} in the target",
                        s.name(),
                        source.records,
                        target.records
                    ));
                }
                named.extend(n);
            }
            reports.push(StoreReport {
                store: s.name(),
                records: target.records,
                bytes: plan.sizes.get(&file_of(*s)).copied().unwrap_or(0),
                verified: Some(ok),
            });
        }
        if !named.is_empty() {
            return Err(MigrateError::Verification(format!(
                "verification failed; first differing records:\n  {}",
                named.join("\n  ")
            )));
        }
        Ok(reports)
    }

    /// Runs the job to the end of verification (the switch is the caller's).
    pub async fn run(mut self) -> Result<Outcome, MigrateError> {
        let plan = self.plan().await?;
        for n in &plan.notes {
            self.say(JobPhase::Planning, n.clone());
        }
        if self.spec.dry_run {
            let mut r = self.report(JobPhase::Done, Some(&plan));
            r.stores = plan
                .stores
                .iter()
                .map(|s| StoreReport {
                    store: s.name(),
                    records: plan.vdb_rows.get(&s.name()).copied().unwrap_or(0),
                    bytes: plan.sizes.get(&file_of(*s)).copied().unwrap_or(0),
                    verified: None,
                })
                .collect();
            r.message = Some(format!(
                "dry run: {} bytes to copy into {}; {}",
                plan.total_bytes,
                plan.target_id,
                plan.notes.join("; ")
            ));
            return Ok(Outcome {
                report: r,
                embedding_dim: plan.dim,
                query_check: None,
            });
        }
        let mut session = self.connect().await?;
        let mut conn = session.conn().await?;
        let indexes = self.ensure_schema(&mut conn, &plan).await?;
        let job = self.start_or_resume(&mut conn, &plan).await?;
        self.step("tables ready");
        drop(conn);
        self.say(
            JobPhase::Copying,
            format!("copying {} bytes into {}", plan.total_bytes, plan.target_id),
        );
        let mut down_since: Option<Instant> = None;
        let progress = loop {
            match self.copy(&session, &plan, &job).await {
                Ok(p) => break p,
                Err(e) if e.is_retryable() => {
                    let since = *down_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > RETRY_FOR {
                        return Err(MigrateError::Unreachable(format!(
                            "{e}; gave up after {} s — the checkpoint is saved: run the same \
                             command with --resume",
                            RETRY_FOR.as_secs()
                        )));
                    }
                    warn!(event = "migration_target_lost", db = %self.spec.db, error = %e,
                          "the target is unreachable; retrying from the checkpoint");
                    tokio::select! {
                        _ = self.cancel.cancelled() => return Err(MigrateError::Interrupted(
                            "the daemon is shutting down; run the same command with --resume".into())),
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                    match self.connect().await {
                        Ok(s) => session = s,
                        Err(e) if e.is_retryable() => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let ws = self.spec.target.workspace.clone();
        self.step("copied");
        let check = async {
            if self.spec.verify {
                self.verify(&session, &plan, &progress).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let ((), verified) = tokio::try_join!(self.finish_tables(&session, &indexes), check)?;
        self.step("btree indexes built and records verified");
        let mut conn = session.conn().await?;
        let stores = if let Some(r) = verified {
            checkpoint::set_state(&mut conn, &ws, "verified")
                .await
                .map_err(MigrateError::target)?;
            self.mirror(&plan, &job, "verified", &progress);
            r
        } else {
            checkpoint::set_state(&mut conn, &ws, "copied")
                .await
                .map_err(MigrateError::target)?;
            plan.stores
                .iter()
                .map(|s| StoreReport {
                    store: s.name(),
                    records: progress
                        .get(&s.name())
                        .map(|p| p.digest.records)
                        .unwrap_or(0),
                    bytes: plan.sizes.get(&file_of(*s)).copied().unwrap_or(0),
                    verified: None,
                })
                .collect()
        };
        let mut r = self.report(JobPhase::Switching, Some(&plan));
        r.verified = self.spec.verify.then_some(true);
        r.stores = stores;
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        r.bytes_per_sec = plan.total_bytes as f64 / secs;
        let query_check = lock(&self.query_check).take();
        Ok(Outcome {
            report: r,
            embedding_dim: plan.dim,
            query_check,
        })
    }
}

/// Parallel writers: PostgreSQL ingests a COPY on one core per connection.
const LANES: usize = 2;

/// The pool and the single-writer lock of one connected stretch of the job.
struct Session {
    stores: PgStores,
    _lock: PgWriterLock,
}

impl Session {
    /// A connection for bulk writes: TOAST values compressed with lz4 where the server has
    /// it, and foreign-key triggers off where the role may (pg_restore's --disable-triggers;
    /// the edges' endpoints are checked once at the end instead).
    async fn conn(&self) -> Result<PoolConnection<Postgres>, MigrateError> {
        let mut c = self
            .stores
            .pool()
            .acquire()
            .await
            .map_err(|e| tgt("connect", e))?;
        for set in [
            "SET default_toast_compression = 'lz4'",
            "SET session_replication_role = replica",
        ] {
            // Refused by an older server or a role without the right: the copy is slower.
            let _ = sqlx::query(set).execute(&mut *c).await;
        }
        Ok(c)
    }
}

/// One lane's share of the job's state.
struct Lane {
    shared: Arc<Mutex<BTreeMap<String, StoreProgress>>>,
    chunks_done: Arc<tokio::sync::watch::Sender<bool>>,
    chunks_wait: tokio::sync::watch::Receiver<bool>,
}

/// The vector files' common `embedding_dim` (of those holding rows, when counted) and the
/// files as opened, by file name. `header_only` leaves row counts unknown.
async fn survey_vectors(
    dir: &SourceDir,
    header_only: bool,
) -> Result<(Option<usize>, HashMap<String, VdbSource>), MigrateError> {
    let mut dim: Option<usize> = None;
    let mut vdbs = HashMap::new();
    for ns in VectorNamespace::ALL {
        let Some(f) = dir
            .files()
            .iter()
            .find(|f| f.name == ns.file_name() && f.size.is_some())
        else {
            continue;
        };
        let path = f.path.clone();
        let v = tokio::task::spawn_blocking(move || {
            if header_only {
                VdbSource::open_header(&path)
            } else {
                VdbSource::open(&path)
            }
        })
        .await
        .map_err(|e| MigrateError::Source(format!("survey failed: {e}")))?
        .map_err(MigrateError::source)?;
        let (rows, file_dim) = (v.row_count(), v.embedding_dim());
        vdbs.insert(f.name.to_owned(), v);
        if rows == Some(0) {
            continue;
        }
        match dim {
            Some(d) if d != file_dim => {
                return Err(MigrateError::Source(format!(
                    "{}: embedding_dim {file_dim} differs from the other vector files' {d}",
                    f.path.display(),
                )));
            }
            _ => dim = Some(file_dim),
        }
    }
    Ok((dim, vdbs))
}

/// Stores split over [`LANES`] with about the same work each (largest first, to the lightest
/// lane; the graph's two stores stay together, nodes first). In a lane, text_chunks
/// comes first and the chunk vectors last, so that the chunk vectors, which read the chunks'
/// `tokens`, wait as little as possible.
fn lanes(stores: &[Store], sizes: &HashMap<String, u64>) -> Vec<Vec<Store>> {
    // Measured here: a byte of JSON records (parsed, then TOAST-compressed by the server) costs
    // about 2.2 times a byte of nano-vectordb (vectors go over as binary, stored as they are).
    let size = |s: &Store| {
        let bytes = sizes.get(&file_of(*s)).copied().unwrap_or(0);
        match s {
            Store::Vector(_) => bytes * 5,
            _ => bytes * 11,
        }
    };
    let mut units: Vec<Vec<Store>> = Vec::new();
    for s in stores {
        match s {
            Store::GraphEdges => {}
            Store::GraphNodes => units.push(vec![Store::GraphNodes, Store::GraphEdges]),
            other => units.push(vec![*other]),
        }
    }
    units.sort_by_key(|u| std::cmp::Reverse(size(&u[0])));
    let mut lanes: Vec<(u64, Vec<Store>)> = vec![(0, Vec::new()); LANES];
    for u in units {
        if let Some(lane) = lanes.iter_mut().min_by_key(|(bytes, _)| *bytes) {
            lane.0 += size(&u[0]);
            lane.1.extend(u);
        }
    }
    lanes
        .into_iter()
        .map(|(_, mut l)| {
            // Stable: the graph's nodes stay before its edges.
            l.sort_by_key(|s| match s {
                Store::Kv(KvNamespace::TextChunks) => 0,
                Store::Vector(VectorNamespace::Chunks) => 2,
                _ => 1,
            });
            l
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn interrupted() -> MigrateError {
    MigrateError::Interrupted(
        "the daemon is shutting down; the checkpoint is saved: run the same command with \
         --resume"
            .into(),
    )
}

/// The target table of every store for vectors of `model` and `dim`.
pub fn table_specs(
    model: Option<&str>,
    dim: usize,
) -> Result<HashMap<Store, TableSpec>, MigrateError> {
    let mut tables = HashMap::new();
    for ns in VectorNamespace::ALL {
        let t = schema::vector_table(ns, model, dim)
            .map_err(|e| MigrateError::Invalid(e.to_string()))?;
        tables.insert(ns.as_str(), t);
    }
    Ok(Store::all()
        .into_iter()
        .map(|s| {
            let spec = TableSpec::new(s, |ns| tables.get(ns.as_str()).cloned().unwrap_or_default());
            (s, spec)
        })
        .collect())
}

/// The source file a store is read from.
fn file_of(s: Store) -> String {
    match s {
        Store::Kv(ns) => ns.file_name(),
        Store::DocStatus => crate::storage::DOC_STATUS_FILE.to_owned(),
        Store::Vector(ns) => ns.file_name(),
        Store::GraphNodes | Store::GraphEdges => crate::storage::GRAPH_FILE.to_owned(),
    }
}
