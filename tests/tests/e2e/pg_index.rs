//! Vector indexes on tables that already hold rows are built in the background with
//! `CREATE INDEX CONCURRENTLY`: progress in `status`, queries answered meanwhile, INVALID
//! leftovers of interrupted builds replaced, builds cancelled with the backend; empty tables
//! still get their index synchronously.
//!
//! To observe a build without timing, a test holds an old snapshot (a REPEATABLE READ
//! transaction on another session): a concurrent build then does all its work but cannot finish
//! ("waiting for old snapshots") until that transaction ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hrag_daemon::providers::HASH_EMBEDDER_MODEL;
use hrag_daemon::storage::postgres::{PgSettings, PgStores, VectorIndexType, schema};
use hrag_daemon::storage::{Backend, IndexBuildReport, IndexBuildState, VectorNamespace};
use serde_json::Value;
use sqlx::{Connection as _, PgConnection};

use crate::pg_daemon::wait_log;
use crate::support::daemon::{TestDaemon, stdout};
use crate::support::pg::{PgCluster, sql_value};

const DIM: usize = 64;

fn settings(url: &str, workspace: &str, model: &str) -> PgSettings {
    let mut s = PgSettings::new(url, workspace, Some(model.to_owned()), DIM);
    s.max_connections = 4;
    s
}

async fn stores(url: &str, workspace: &str, model: &str) -> PgStores {
    PgStores::connect(settings(url, workspace, model))
        .await
        .unwrap()
}

fn table(ns: VectorNamespace, model: &str) -> String {
    schema::vector_table(ns, Some(model), DIM).unwrap()
}

fn index(ns: VectorNamespace, model: &str) -> schema::VectorIndexDdl {
    schema::vector_index(&table(ns, model), DIM, VectorIndexType::Hnsw, 16, 64).unwrap()
}

/// `rows` chunk vectors of `workspace`, generated server-side.
async fn fill_chunks(st: &PgStores, workspace: &str, rows: usize) {
    let t = st.vector_table(VectorNamespace::Chunks).unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {t} (workspace, id, full_doc_id, chunk_order_index, tokens, content, \
         content_vector, file_path) \
         SELECT '{workspace}', 'chunk-' || md5(i::text), 'doc-' || (i / 5), i % 5, 10, \
         'generated chunk ' || i, \
         (SELECT array_agg(random()::real) FROM generate_series(1, {DIM}) WHERE i >= 0)::vector, \
         'gen' FROM generate_series(0, {rows} - 1) i"
    )))
    .execute(st.pool())
    .await
    .unwrap();
}

/// `pg_index.indisvalid` of an index, `None` when it does not exist.
async fn valid(url: &str, index: &str) -> Option<bool> {
    let mut c = PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)::oid")
        .bind(index)
        .fetch_optional(&mut c)
        .await
        .unwrap()
}

/// A session holding a snapshot older than any build started after it.
async fn old_snapshot(url: &str) -> PgConnection {
    let mut c = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::raw_sql("SELECT count(*) FROM pg_class")
        .execute(&mut c)
        .await
        .unwrap();
    c
}

async fn release(mut c: PgConnection) {
    sqlx::raw_sql("COMMIT").execute(&mut c).await.unwrap();
    c.close().await.unwrap();
}

/// Waits until the backend reports a build of `table` that satisfies `ok`.
async fn wait_backend_build(
    b: &Backend,
    table: &str,
    what: &str,
    ok: impl Fn(&IndexBuildReport) -> bool,
) -> IndexBuildReport {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let builds = b
            .index_builds()
            .expect("postgres reports builds")
            .index_builds();
        if let Some(r) = builds.iter().find(|r| r.table == table && ok(r)) {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no build of {table} {what}; builds: {builds:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The one session the builder runs: its statement, if it has one in flight.
async fn builder_query(url: &str) -> Option<String> {
    let mut c = PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity WHERE application_name = 'hragd-index' \
         AND state = 'active' LIMIT 1",
    )
    .fetch_optional(&mut c)
    .await
    .unwrap()
}

#[tokio::test]
async fn pg_empty_tables_get_their_vector_index_synchronously() {
    let pg = PgCluster::start();
    let url = pg.url();

    // Fresh tables are empty: every vector index is created with them, nothing is deferred.
    let st = stores(&url, "fresh", "model-a").await;
    let pending = st.ensure_schema_deferring_indexes().await.unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    for ns in VectorNamespace::ALL {
        let i = index(ns, "model-a");
        assert_eq!(valid(&url, &i.name).await, Some(true), "{}", i.name);
    }

    // A bulk load creates the tables without vector indexes and fills one of them.
    let st = stores(&url, "bulk", "model-b").await;
    st.ensure_tables().await.unwrap();
    for ns in VectorNamespace::ALL {
        assert_eq!(valid(&url, &index(ns, "model-b").name).await, None);
    }
    fill_chunks(&st, "bulk", 500).await;
    let pending = st.ensure_schema_deferring_indexes().await.unwrap();
    let chunks = index(VectorNamespace::Chunks, "model-b");
    assert_eq!(pending, vec![chunks.clone()], "only the filled table waits");
    assert_eq!(valid(&url, &chunks.name).await, None);
    for ns in [VectorNamespace::Entities, VectorNamespace::Relationships] {
        assert_eq!(valid(&url, &index(ns, "model-b").name).await, Some(true));
    }

    // `ensure_schema` leaves nothing missing: the filled table is indexed concurrently.
    st.ensure_schema().await.unwrap();
    assert_eq!(valid(&url, &chunks.name).await, Some(true));
    assert!(
        st.ensure_schema_deferring_indexes()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dropped_backend_cancels_its_build_and_the_invalid_leftover_is_replaced() {
    let pg = PgCluster::start();
    let url = pg.url();
    let model = "model-c";
    let t = table(VectorNamespace::Chunks, model);
    let idx = index(VectorNamespace::Chunks, model);
    let st = stores(&url, "ws", model).await;
    st.ensure_tables().await.unwrap();
    fill_chunks(&st, "ws", 3000).await;

    // The build cannot finish while an old snapshot is held; the backend is dropped meanwhile.
    let holder = old_snapshot(&url).await;
    let backend = stores(&url, "ws", model)
        .await
        .into_backend()
        .await
        .unwrap();
    let r = wait_backend_build(&backend, &t, "waiting for old snapshots", |r| {
        r.phase.contains("old snapshots")
    })
    .await;
    assert_eq!(r.state, IndexBuildState::Building);
    assert_eq!(r.index, idx.name);
    drop(backend);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(q) = builder_query(&url).await {
        assert!(
            Instant::now() < deadline,
            "the build still runs after the backend was dropped: {q}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    release(holder).await;
    // The cancelled build left its INVALID index behind.
    assert_eq!(valid(&url, &idx.name).await, Some(false));
    let leftover: i64 = sqlx::query_scalar("SELECT to_regclass($1)::oid::bigint")
        .bind(&idx.name)
        .fetch_one(st.pool())
        .await
        .unwrap();

    // Reopened, the leftover is dropped and the index rebuilt, valid.
    let backend = Arc::new(
        stores(&url, "ws", model)
            .await
            .into_backend()
            .await
            .unwrap(),
    );
    let r = wait_backend_build(&backend, &t, "done", |r| r.state == IndexBuildState::Done).await;
    assert_eq!(r.percent, Some(100.0));
    assert_eq!(valid(&url, &idx.name).await, Some(true));
    let rebuilt: i64 = sqlx::query_scalar("SELECT to_regclass($1)::oid::bigint")
        .bind(&idx.name)
        .fetch_one(st.pool())
        .await
        .unwrap();
    assert_ne!(rebuilt, leftover, "the leftover must be replaced, not kept");
    // Queries use it now and still answer.
    let hits = backend
        .vectors(VectorNamespace::Chunks)
        .query(&[0.5; DIM], 5, 0.0)
        .await
        .unwrap();
    assert_eq!(hits.len(), 5);
}

fn registry(url: &str) -> String {
    format!(
        "version: 1\ndatabases:\n  big:\n    name: big\n    path: {{dir}}/kb\n    \
         source_folder: {{dir}}/src\n    auto_watch: true\n    file_extensions: ['.md']\n    \
         backend_type: postgres\n    backend_config:\n      connection_string: {url}\n    \
         model_config:\n      embedding_dim: {DIM}\n"
    )
}

/// The index builds of `big` in `status --json`, once one satisfies `ok`.
fn wait_status_build(d: &TestDaemon, what: &str, ok: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = d.json(&["status"]);
        let builds = s["databases"][0]["index_builds"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if builds.iter().any(&ok) {
            return builds;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed a build {what}: {s}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn pg_daemon_builds_a_missing_vector_index_in_the_background_with_progress_in_status() {
    let pg = PgCluster::start();
    let url = pg.url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let model = HASH_EMBEDDER_MODEL;
    let t = table(VectorNamespace::Chunks, model);
    let idx = index(VectorNamespace::Chunks, model);
    // What a migration leaves: tables without vector indexes, one of them holding 20k rows.
    rt.block_on(async {
        let st = stores(&url, "big", model).await;
        st.ensure_tables().await.unwrap();
        fill_chunks(&st, "big", 20_000).await;
    });
    let holder = rt.block_on(old_snapshot(&url));

    let mut d = TestDaemon::new(&registry(&url));
    std::fs::create_dir_all(d.path("src")).unwrap();
    d.start();
    wait_log(&d, "vector_index_build_started");
    let builds = wait_status_build(&d, "held at its last phase", |b| {
        b["phase"].as_str().unwrap_or("").contains("old snapshots")
    });
    assert_eq!(
        builds.len(),
        1,
        "only the filled table is built: {builds:?}"
    );
    let b = &builds[0];
    assert_eq!(
        (b["table"].as_str(), b["index"].as_str()),
        (Some(&*t), Some(&*idx.name))
    );
    assert_eq!(b["state"], "building");
    assert!(b["elapsed_secs"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        sql_value::<bool>(
            &url,
            &format!(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = '{}'::regclass",
                idx.name
            )
        ),
        Ok(false)
    );
    // The empty tables were indexed when the database opened.
    for ns in [VectorNamespace::Entities, VectorNamespace::Relationships] {
        let name = index(ns, model).name;
        assert_eq!(rt.block_on(valid(&url, &name)), Some(true), "{name}");
    }

    // Queries are answered during the build (sequential scan).
    let q = d.json(&[
        "query",
        "big",
        "generated chunk",
        "--mode",
        "naive",
        "--top-k",
        "3",
    ]);
    assert!(q.is_object(), "{q}");
    let human = stdout(&d.ctl(&["status"]));
    assert!(
        human.contains(&idx.name) && human.contains("building"),
        "{human}"
    );
    let bs = d.json(&["backend", "status", "big"]);
    let warnings = bs[0]["warnings"].to_string();
    assert!(
        warnings.contains(&idx.name) && warnings.contains("sequential scan"),
        "{bs}"
    );

    // Once the old snapshot is gone the build finishes; status keeps showing it as done.
    rt.block_on(release(holder));
    let builds = wait_status_build(&d, "done", |b| b["state"] == "done");
    assert_eq!(builds[0]["percent"].as_f64(), Some(100.0));
    assert_eq!(rt.block_on(valid(&url, &idx.name)), Some(true));
    wait_log(&d, "vector_index_build_done");
    let human = stdout(&d.ctl(&["status"]));
    assert!(
        human.contains(&idx.name) && human.contains("done"),
        "{human}"
    );
    let bs = d.json(&["backend", "status", "big"]);
    assert!(!bs[0]["warnings"].to_string().contains(&idx.name), "{bs}");
    d.json(&[
        "query",
        "big",
        "generated chunk",
        "--mode",
        "naive",
        "--top-k",
        "3",
    ]);
    d.stop();
}
