//! Vector indexes built in the background. A vector table that already holds rows when the
//! database opens (a migration copies into tables without their ANN index, because maintaining
//! HNSW row by row would dominate the copy) gets its index from `CREATE INDEX CONCURRENTLY` on a
//! dedicated session, so ingestion and queries go on meanwhile — queries scan sequentially until
//! the index is valid.
//!
//! One task per backend builds its pending indexes one after another: concurrent builds would
//! only compete for the same cores. Each build holds `pg_try_advisory_lock(hashtext('hrag:index:'
//! || table))` on its session, so two daemons (or workspaces) sharing a table never build it
//! twice at once; the one without the lock reports "building elsewhere" and waits for the index
//! to become valid (or for the lock, if the other builder died). Progress is read from
//! `pg_stat_progress_create_index` once a second. A failed build is retried with backoff.
//! Dropping the [`BuildGuard`] (with the backend) cancels the build on the server; the INVALID
//! index a cancelled or crashed build leaves is dropped before the next attempt.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

use super::schema::VectorIndexDdl;
use crate::storage::{IndexBuildReport, IndexBuildState, IndexBuilds};

/// How often the build's progress is read.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How often a build running elsewhere is checked on.
const ELSEWHERE_POLL: Duration = Duration::from_secs(2);
/// Backoff after a failed build: doubled per failure up to the maximum.
const RETRY_MIN: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Bound on the best-effort `pg_cancel_backend` when the backend is dropped mid-build.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
/// Ceiling of the build session's `maintenance_work_mem`. An HNSW build whose graph outgrows it
/// goes on disk-bound and runs several times slower (50k × 1024 dims on two busy cores: ~16 min
/// at the 64 MB default, 5.5 min with 470 MB); the session asks for about 1.5 × the table's
/// size, never more than this.
const BUILD_MEMORY_MAX: i64 = 1 << 30;
/// Added to the table's size: the graph's neighbour lists outweigh narrow vectors.
const BUILD_MEMORY_SLACK: i64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
}

fn failed(context: &str) -> impl FnOnce(sqlx::Error) -> BuildError + '_ {
    move |e| BuildError::Failed(format!("{context}: {e}"))
}

/// The last build of each table, shared between the build task and `status`.
#[derive(Default)]
pub struct BuildTracker {
    builds: Mutex<BTreeMap<String, Entry>>,
}

struct Entry {
    index: String,
    phase: String,
    percent: Option<f64>,
    started: Instant,
    /// Set once the attempt ended (done or failed): elapsed time stops there.
    took: Option<Duration>,
    state: IndexBuildState,
}

impl BuildTracker {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // A poisoned map only means a panic elsewhere mid-update; the figures are still usable.
        self.builds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new attempt on `ddl`'s table replaces the previous one.
    fn begin(&self, ddl: &VectorIndexDdl, phase: &str) {
        self.lock().insert(
            ddl.table.clone(),
            Entry {
                index: ddl.name.clone(),
                phase: phase.to_owned(),
                percent: None,
                started: Instant::now(),
                took: None,
                state: IndexBuildState::Building,
            },
        );
    }

    fn progress(&self, table: &str, phase: String, percent: Option<f64>) {
        if let Some(e) = self.lock().get_mut(table) {
            e.phase = phase;
            e.percent = percent;
        }
    }

    fn finish(&self, table: &str, state: IndexBuildState, phase: String) {
        if let Some(e) = self.lock().get_mut(table) {
            e.state = state;
            e.phase = phase;
            e.percent = (state == IndexBuildState::Done).then_some(100.0);
            e.took = Some(e.started.elapsed());
        }
    }
}

impl IndexBuilds for BuildTracker {
    fn index_builds(&self) -> Vec<IndexBuildReport> {
        self.lock()
            .iter()
            .map(|(table, e)| IndexBuildReport {
                table: table.clone(),
                index: e.index.clone(),
                phase: e.phase.clone(),
                percent: e.percent,
                elapsed_secs: e.took.unwrap_or_else(|| e.started.elapsed()).as_secs_f64(),
                state: e.state,
            })
            .collect()
    }
}

/// Cancels the background builds when dropped.
pub struct BuildGuard {
    _cancel: DropGuard,
}

/// Starts building `pending` in the background, reporting into `tracker`.
pub fn spawn(
    opts: PgConnectOptions,
    pool: PgPool,
    pending: Vec<VectorIndexDdl>,
    tracker: Arc<BuildTracker>,
) -> BuildGuard {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        for ddl in &pending {
            if !build_with_retries(&opts, &pool, ddl, &tracker, &token).await {
                debug!(table = %ddl.table, "vector index builds cancelled with the backend");
                return;
            }
        }
    });
    BuildGuard {
        _cancel: cancel.drop_guard(),
    }
}

/// Builds `ddl` concurrently and waits for it (for callers that need the index now, e.g. after
/// a bulk load); the same locking and leftover cleanup as the background builds.
pub async fn build_now(
    opts: &PgConnectOptions,
    pool: &PgPool,
    ddl: &VectorIndexDdl,
) -> Result<(), String> {
    let tracker = BuildTracker::default();
    match build(opts, pool, ddl, &tracker, &CancellationToken::new()).await {
        Ok(()) => Ok(()),
        Err(e) => Err(format!(
            "building vector index {} on {}: {e}",
            ddl.name, ddl.table
        )),
    }
}

/// Retries until built; `false` when cancelled.
async fn build_with_retries(
    opts: &PgConnectOptions,
    pool: &PgPool,
    ddl: &VectorIndexDdl,
    tracker: &BuildTracker,
    cancel: &CancellationToken,
) -> bool {
    let mut backoff = RETRY_MIN;
    loop {
        match build(opts, pool, ddl, tracker, cancel).await {
            Ok(()) => return true,
            Err(BuildError::Cancelled) => return false,
            Err(BuildError::Failed(error)) => {
                warn!(event = "vector_index_build_failed", table = %ddl.table, index = %ddl.name,
                      error = %error, retry_secs = backoff.as_secs(),
                      "building the vector index failed; vector queries on {} use a sequential \
                       scan until a retry succeeds", ddl.table);
                tracker.finish(
                    &ddl.table,
                    IndexBuildState::Failed,
                    format!("failed (retry in {} s): {error}", backoff.as_secs()),
                );
                tokio::select! {
                    _ = cancel.cancelled() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

/// One attempt, on its own session (its advisory lock ends with it).
async fn build(
    opts: &PgConnectOptions,
    pool: &PgPool,
    ddl: &VectorIndexDdl,
    tracker: &BuildTracker,
    cancel: &CancellationToken,
) -> Result<(), BuildError> {
    // No statement timeout: a build over many rows runs for minutes by design.
    let opts = opts
        .clone()
        .application_name("hragd-index")
        .options([("statement_timeout", "0")]);
    let mut conn = tokio::select! {
        _ = cancel.cancelled() => return Err(BuildError::Cancelled),
        c = opts.connect() => c.map_err(failed("connect"))?,
    };
    // PostgreSQL 14+: notice a vanished client (daemon killed) and stop building for it. Older
    // servers do not know the setting and build on, which is harmless.
    let _ = sqlx::query("SET client_connection_check_interval = 1000")
        .execute(&mut conn)
        .await;
    let result = build_on(&mut conn, pool, ddl, tracker, cancel).await;
    if !matches!(result, Err(BuildError::Cancelled)) {
        // Best effort: dropping the connection ends the session too.
        let _ = conn.close().await;
    }
    result
}

async fn build_on(
    conn: &mut PgConnection,
    pool: &PgPool,
    ddl: &VectorIndexDdl,
    tracker: &BuildTracker,
    cancel: &CancellationToken,
) -> Result<(), BuildError> {
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .map_err(failed("pg_backend_pid"))?;
    let memory_mb = raise_build_memory(conn, &ddl.table).await;
    let elsewhere = wait_for_lock(conn, pool, ddl, tracker, cancel).await?;
    if elsewhere == Some(true) {
        return Ok(());
    }
    match index_valid(&mut *conn, &ddl.name).await? {
        Some(true) => {
            if elsewhere.is_some() {
                tracker.finish(&ddl.table, IndexBuildState::Done, "built elsewhere".into());
            }
            return Ok(());
        }
        Some(false) => {
            // We hold the table's build lock, so no hrag build is in progress: this is what a
            // cancelled or crashed concurrent build left, and `IF NOT EXISTS` would keep it.
            info!(event = "vector_index_invalid_dropped", table = %ddl.table, index = %ddl.name,
                  "dropping the INVALID leftover of an interrupted build before rebuilding it");
            tracker.begin(ddl, "dropping invalid leftover");
            run_watched(conn, pool, pid, &ddl.drop_concurrently(), None, cancel).await?;
        }
        None => {}
    }
    info!(event = "vector_index_build_started", table = %ddl.table, index = %ddl.name,
          maintenance_work_mem_mb = memory_mb,
          "building the vector index in the background; vector queries on {} use a sequential \
           scan until it is done", ddl.table);
    tracker.begin(ddl, "starting");
    let started = Instant::now();
    let progress = Some((tracker, ddl.table.as_str()));
    run_watched(
        conn,
        pool,
        pid,
        &ddl.create_concurrently(),
        progress,
        cancel,
    )
    .await?;
    if index_valid(&mut *conn, &ddl.name).await? != Some(true) {
        return Err(BuildError::Failed(format!(
            "{} is not valid after CREATE INDEX CONCURRENTLY",
            ddl.name
        )));
    }
    let seconds = started.elapsed().as_secs_f64();
    info!(event = "vector_index_build_done", table = %ddl.table, index = %ddl.name, seconds,
          "vector index built in {seconds:.1} s");
    tracker.finish(&ddl.table, IndexBuildState::Done, "done".into());
    Ok(())
}

/// Raises the session's `maintenance_work_mem` towards the table's size (never lowers it, never
/// above [`BUILD_MEMORY_MAX`]) so the index is built in memory; returns the setting in MiB.
/// Best effort: a server that refuses keeps its own setting.
async fn raise_build_memory(conn: &mut PgConnection, table: &str) -> i64 {
    let sizes: Result<(Option<i64>, i64), sqlx::Error> = sqlx::query_as(
        "SELECT pg_table_size(to_regclass($1)), \
         (SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'maintenance_work_mem')",
    )
    .bind(table)
    .fetch_one(&mut *conn)
    .await;
    let (table_bytes, current) = match sizes {
        Ok((t, c)) => (t.unwrap_or(0), c),
        Err(e) => {
            debug!(table, error = %e, "cannot size the index build's memory");
            return 0;
        }
    };
    let want = build_memory(table_bytes, current);
    if want > current {
        let set = format!("SET maintenance_work_mem = '{}kB'", want / 1024);
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(set))
            .execute(&mut *conn)
            .await
        {
            debug!(table, error = %e, "cannot raise maintenance_work_mem");
            return current >> 20;
        }
    }
    want.max(current) >> 20
}

/// The build memory to ask for: 1.5 × the table's size plus slack, capped, never below
/// `current`.
fn build_memory(table_bytes: i64, current: i64) -> i64 {
    (table_bytes / 2 * 3)
        .saturating_add(BUILD_MEMORY_SLACK)
        .min(BUILD_MEMORY_MAX)
        .max(current)
}

/// Takes the table's build lock, waiting while another session holds it. `None`: taken at
/// once; `Some(false)`: taken after waiting on another builder; `Some(true)`: the other builder
/// finished (the index is valid), no lock taken.
async fn wait_for_lock(
    conn: &mut PgConnection,
    pool: &PgPool,
    ddl: &VectorIndexDdl,
    tracker: &BuildTracker,
    cancel: &CancellationToken,
) -> Result<Option<bool>, BuildError> {
    let mut waited = false;
    loop {
        let got: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('hrag:index:' || $1))")
                .bind(&ddl.table)
                .fetch_one(&mut *conn)
                .await
                .map_err(failed("build lock"))?;
        if got {
            return Ok(waited.then_some(false));
        }
        if !waited {
            info!(event = "vector_index_build_elsewhere", table = %ddl.table, index = %ddl.name,
                  "another session builds this vector index; waiting for it");
            tracker.begin(ddl, "building elsewhere");
            waited = true;
        }
        if index_valid(pool, &ddl.name).await? == Some(true) {
            tracker.finish(&ddl.table, IndexBuildState::Done, "built elsewhere".into());
            return Ok(Some(true));
        }
        if let Ok(Some(p)) = progress_of_table(pool, &ddl.table).await {
            tracker.progress(
                &ddl.table,
                format!("building elsewhere: {}", p.phase),
                p.percent,
            );
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(BuildError::Cancelled),
            _ = tokio::time::sleep(ELSEWHERE_POLL) => {}
        }
    }
}

/// Runs one long statement on `conn`, reading its progress every second into `progress`'s
/// tracker entry; cancelled on the server when `cancel` fires.
async fn run_watched(
    conn: &mut PgConnection,
    pool: &PgPool,
    pid: i32,
    sql: &str,
    progress: Option<(&BuildTracker, &str)>,
    cancel: &CancellationToken,
) -> Result<(), BuildError> {
    let run = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut *conn);
    tokio::pin!(run);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = &mut run => return r.map(|_| ()).map_err(failed("statement")),
            _ = cancel.cancelled() => {
                cancel_backend(pool, pid).await;
                return Err(BuildError::Cancelled);
            }
            _ = tick.tick() => {
                let Some((tracker, table)) = progress else { continue };
                match progress_of_pid(pool, pid).await {
                    Ok(Some(p)) => tracker.progress(table, p.phase, p.percent),
                    Ok(None) => {}
                    // Progress is cosmetic: the build goes on without it.
                    Err(e) => debug!(table, error = %e, "cannot read index build progress"),
                }
            }
        }
    }
}

/// Asks the server to stop the statement of session `pid` (best effort, bounded).
async fn cancel_backend(pool: &PgPool, pid: i32) {
    let ask = sqlx::query("SELECT pg_cancel_backend($1)")
        .bind(pid)
        .execute(pool);
    match tokio::time::timeout(CANCEL_TIMEOUT, ask).await {
        Ok(Ok(_)) => debug!(pid, "index build cancelled on the server"),
        // The session closes with the connection anyway; the INVALID leftover is dropped on
        // the next attempt.
        Ok(Err(e)) => debug!(pid, error = %e, "cannot cancel the index build"),
        Err(_) => debug!(pid, "cancelling the index build timed out"),
    }
}

/// `Some(valid)` when the index exists (`pg_index.indisvalid`), `None` when it does not.
async fn index_valid<'e, E>(ex: E, name: &str) -> Result<Option<bool>, BuildError>
where
    E: sqlx::PgExecutor<'e>,
{
    sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)::oid")
        .bind(name)
        .fetch_optional(ex)
        .await
        .map_err(failed("index state"))
}

/// Whether the index `ddl` describes exists and is valid (`None` when absent).
pub(super) async fn index_state<'e, E>(ex: E, ddl: &VectorIndexDdl) -> Result<Option<bool>, String>
where
    E: sqlx::PgExecutor<'e>,
{
    index_valid(ex, &ddl.name).await.map_err(|e| e.to_string())
}

struct Progress {
    phase: String,
    percent: Option<f64>,
}

type ProgressRow = (String, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

const PROGRESS_COLUMNS: &str = "SELECT phase, blocks_total, blocks_done, tuples_total, tuples_done \
     FROM pg_stat_progress_create_index";

async fn progress_of_pid(pool: &PgPool, pid: i32) -> Result<Option<Progress>, sqlx::Error> {
    let row: Option<ProgressRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PROGRESS_COLUMNS} WHERE pid = $1"
    )))
    .bind(pid)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(to_progress))
}

async fn progress_of_table(pool: &PgPool, table: &str) -> Result<Option<Progress>, sqlx::Error> {
    let row: Option<ProgressRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PROGRESS_COLUMNS} WHERE relid = to_regclass($1)::oid LIMIT 1"
    )))
    .bind(table)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(to_progress))
}

fn to_progress((phase, bt, bd, tt, td): ProgressRow) -> Progress {
    Progress {
        phase,
        percent: percent(bt, bd, tt, td),
    }
}

/// The phase's progress: blocks while the table is scanned, else tuples, else unknown.
fn percent(
    blocks_total: Option<i64>,
    blocks_done: Option<i64>,
    tuples_total: Option<i64>,
    tuples_done: Option<i64>,
) -> Option<f64> {
    let ratio = |total: Option<i64>, done: Option<i64>| match (total, done) {
        (Some(t), Some(d)) if t > 0 => Some((d as f64 / t as f64 * 100.0).clamp(0.0, 100.0)),
        _ => None,
    };
    ratio(blocks_total, blocks_done).or_else(|| ratio(tuples_total, tuples_done))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::postgres::VectorIndexType;
    use crate::storage::postgres::schema::vector_index;

    #[test]
    fn percent_prefers_blocks_then_tuples() {
        assert_eq!(percent(Some(200), Some(50), Some(10), Some(10)), Some(25.0));
        assert_eq!(percent(Some(0), Some(0), Some(10), Some(5)), Some(50.0));
        assert_eq!(percent(None, None, Some(0), Some(0)), None);
        assert_eq!(percent(Some(10), Some(20), None, None), Some(100.0));
    }

    #[test]
    fn build_memory_follows_the_table_within_bounds() {
        let mib = 1 << 20;
        assert_eq!(build_memory(200 * mib, 64 * mib), 364 * mib);
        assert_eq!(build_memory(0, 64 * mib), 64 * mib);
        assert_eq!(build_memory(50 << 30, 64 * mib), BUILD_MEMORY_MAX);
        // A server configured higher keeps its setting.
        assert_eq!(build_memory(mib, 4 << 30), 4 << 30);
    }

    #[test]
    fn tracker_keeps_the_last_attempt_per_table_and_freezes_finished_ones() {
        let t = BuildTracker::default();
        let a = vector_index("ta", 8, VectorIndexType::Hnsw, 16, 64).unwrap();
        let b = vector_index("tb", 8, VectorIndexType::Hnsw, 16, 64).unwrap();
        t.begin(&a, "starting");
        t.begin(&b, "starting");
        t.progress("ta", "building index".into(), Some(40.0));
        t.finish("tb", IndexBuildState::Failed, "failed: boom".into());
        let r = t.index_builds();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].table, "ta");
        assert_eq!(r[0].index, "idx_ta_hnsw_cosine");
        assert_eq!(
            (r[0].state, r[0].phase.as_str(), r[0].percent),
            (IndexBuildState::Building, "building index", Some(40.0))
        );
        assert_eq!(r[1].state, IndexBuildState::Failed);
        let frozen = r[1].elapsed_secs;
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(t.index_builds()[1].elapsed_secs, frozen);
        // A retry replaces the failed attempt.
        t.begin(&b, "starting");
        t.finish("tb", IndexBuildState::Done, "done".into());
        let r = t.index_builds();
        assert_eq!(
            (r[1].state, r[1].percent),
            (IndexBuildState::Done, Some(100.0))
        );
    }
}
