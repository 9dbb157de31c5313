//! Benchmark: hragd's memory and query latency on a Postgres workspace holding ≥ 1M rows
//! (PRODUCT §11: peak RSS independent of data size, ≤ 64 MB idle and ≤ 160 MB while ingesting;
//! issue #5: query latency p50/p99 per mode).
//!
//!     cargo build --release && cargo bench -p hrag-daemon --bench pg_rss
//!     HRAG_BENCH_PG_ROWS=100000 cargo bench -p hrag-daemon --bench pg_rss        # quick run
//!     HRAG_BENCH_PG_ROWS=2000000 HRAG_BENCH_PG_FILES=2000 cargo bench -p hrag-daemon --bench pg_rss
//!
//! Knobs: `HRAG_BENCH_PG_ROWS` (default 1,000,000), `HRAG_BENCH_PG_FILES` notes to ingest
//! (default 1000), `HRAG_BENCH_PG_QUERIES` timed queries per mode (default 200).
//!
//! Starts a private PostgreSQL cluster (initdb as `postgres` when run as root, pgvector from the
//! machine's installation), then:
//!   1. baseline: the real `hragd` (built by cargo next to this bench) on an EMPTY workspace:
//!      its idle VmRSS, and the latency of the same queries as in step 4 — what the 1M rows
//!      cost is the ratio of the later figures to these;
//!   2. the same workspace filled in the server (generate_series, no client memory) with
//!      `HRAG_BENCH_PG_ROWS` rows in LightRAG's proportions: per document a doc-status and a
//!      full-doc row, 5 chunks (KV + vector), 10 entities (graph node + vector), 15 relations
//!      (graph edge + vector); the HNSW indexes are rebuilt after the load;
//!   3. a fresh `hragd` on the filled workspace, idle (target ≤ 64 MiB);
//!   4. queries in every mode (naive, local, global, hybrid, mix) over the control socket, one
//!      connection each as `hragctl query` makes (3 warm-up queries per mode not counted):
//!      p50/p99 per mode, and the peak VmRSS while querying;
//!   5. `HRAG_BENCH_PG_FILES` notes dropped into its watched folder: VmRSS sampled every 50 ms
//!      until all are processed, the peak against the target (≤ 160 MiB);
//!   6. idle again once the tokenizer has been released (its idle period, 30 s by default)
//!      and the allocator has returned its pages (10 s decay):
//!      VmRSS after an ingest (target ≤ 64 MiB).
//!
//! Memory figures are also printed as ratios to the baseline of step 1, latencies as ratios
//! to the empty workspace's.

#[allow(dead_code)] // each bench uses a subset of the shared helpers
mod common;

use common::{Sampler, env_num, proc_status};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hrag_daemon::ingest::chunker_cache::IDLE_RELEASE;
use hrag_daemon::providers::HASH_EMBEDDER_MODEL;
use hrag_daemon::storage::VectorNamespace;
use hrag_daemon::storage::postgres::{PgSettings, PgStores, schema};
use hrag_proto::QueryMode;

const MIB: f64 = 1048576.0;
const DIM: usize = 16;
const WS: &str = "big";
/// Rows one generated document brings: status, full doc, 5 × (chunk KV + chunk vector),
/// 10 × (node + entity vector), 15 × (edge + relation vector).
const ROWS_PER_DOC: u64 = 2 + 5 * 2 + 10 * 2 + 15 * 2;
const IDLE_TARGET: f64 = 64.0;
const INGEST_TARGET: f64 = 160.0;
const MODES: [QueryMode; 5] = [
    QueryMode::Naive,
    QueryMode::Local,
    QueryMode::Global,
    QueryMode::Hybrid,
    QueryMode::Mix,
];
const WARM_UP: usize = 3;
/// Questions cycled through; they name the people and places of the ingested notes and of
/// nothing generated, so both workspaces answer them from the same kind of search.
const QUESTIONS: [&str; 4] = [
    "Who did Ada Varga meet at Nordwind Labs?",
    "Which archive did Chen Ming review in Velmora?",
    "What connects Dalia Osei and Farah Quist?",
    "ledger harbor signal orchard",
];

fn main() -> anyhow::Result<()> {
    let rows = env_num("HRAG_BENCH_PG_ROWS", 1_000_000);
    let files = env_num("HRAG_BENCH_PG_FILES", 1000) as usize;
    let queries = env_num("HRAG_BENCH_PG_QUERIES", 200).max(1) as usize;
    let docs = rows.div_ceil(ROWS_PER_DOC);
    let hragd = PathBuf::from(env!("CARGO_BIN_EXE_hragd"));
    let hragctl = hragd.with_file_name("hragctl");
    anyhow::ensure!(
        hragctl.is_file(),
        "{} is missing: run `cargo build --release` first",
        hragctl.display()
    );
    let root = tempfile::Builder::new()
        .prefix("hrag-pgrss.")
        .tempdir_in("/tmp")?;
    let pg = Cluster::start(root.path())?;
    let url = pg.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stores = rt.block_on(async {
        let mut s = PgSettings::new(url.clone(), WS, Some(HASH_EMBEDDER_MODEL.to_owned()), DIM);
        s.max_connections = 2;
        s.statement_timeout = Duration::from_secs(3600);
        let st = PgStores::connect(s).await?;
        st.ensure_schema().await?;
        anyhow::Ok(st)
    })?;

    std::fs::create_dir_all(root.path().join("src"))?;
    std::fs::write(
        root.path().join("registry.yaml"),
        format!(
            "version: 1\ndatabases:\n  {WS}:\n    name: {WS}\n    path: {kb}\n    \
             source_folder: {src}\n    auto_watch: true\n    file_extensions: ['.md']\n    \
             backend_type: postgres\n    backend_config:\n      connection_string: {url}\n      \
             postgres_workspace: {WS}\n    model_config:\n      embedding_dim: {DIM}\n",
            kb = root.path().join("kb").display(),
            src = root.path().join("src").display()
        ),
    )?;

    println!("1. baseline: hragd on an empty Postgres workspace");
    let d = Daemon::start(&hragd, &hragctl, root.path())?;
    let baseline = d.idle_rss()?;
    println!("   idle VmRSS {:.1} MiB", baseline as f64 / MIB);
    let empty_latency = rt.block_on(latencies(&d, queries, None))?;
    d.stop()?;

    println!(
        "2. filling workspace {WS:?}: {docs} documents, {} rows",
        docs * ROWS_PER_DOC
    );
    let started = Instant::now();
    rt.block_on(fill(&stores, docs))?;
    let total: i64 = rt.block_on(count_rows(&stores))?;
    println!(
        "   {total} rows in {:.1} s (indexes rebuilt after the load)",
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(total as u64 >= rows, "only {total} rows were generated");

    println!("3. hragd idle on the filled workspace");
    let d = Daemon::start(&hragd, &hragctl, root.path())?;
    let idle = d.idle_rss()?;
    let counted = d.doc_count()?;
    println!(
        "   VmRSS {:.1} MiB = {:.2}× baseline (target ≤ {IDLE_TARGET} MiB: {}); backend status \
         counts {counted} documents",
        idle as f64 / MIB,
        idle as f64 / baseline as f64,
        verdict(idle, IDLE_TARGET)
    );

    println!("4. query latency on the filled workspace ({total} rows)");
    let sampler = Sampler::start(d.pid(), Duration::from_millis(20));
    let _ = rt.block_on(latencies(&d, queries, Some(&empty_latency)))?;
    let query_peak = sampler.stop();
    println!(
        "   peak VmRSS while querying {:.1} MiB = {:.2}× baseline (target ≤ {INGEST_TARGET} \
         MiB: {})",
        query_peak as f64 / MIB,
        query_peak as f64 / baseline as f64,
        verdict(query_peak, INGEST_TARGET)
    );

    println!("5. {files} notes dropped into the watched folder");
    let sampler = Sampler::start(d.pid(), Duration::from_millis(50));
    let started = Instant::now();
    write_notes(&root.path().join("src"), files)?;
    let want = docs + files as u64;
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut done = d.doc_count()?;
    while done < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        done = d.doc_count()?;
    }
    let secs = started.elapsed().as_secs_f64();
    let peak = sampler.stop().max(proc_status(d.pid(), "VmHWM:"));
    println!(
        "   {} of {files} processed in {secs:.1} s ({:.1} docs/s){}",
        done.saturating_sub(docs),
        done.saturating_sub(docs) as f64 / secs,
        if done < want { " — NOT finished" } else { "" }
    );
    println!(
        "   peak VmRSS {:.1} MiB = {:.2}× baseline, {:.2}× idle on the filled workspace \
         (target ≤ {INGEST_TARGET} MiB: {})",
        peak as f64 / MIB,
        peak as f64 / baseline as f64,
        peak as f64 / idle as f64,
        verdict(peak, INGEST_TARGET)
    );

    // The release, then jemalloc's 10 s decay before the pages go back to the OS.
    let wait = IDLE_RELEASE + Duration::from_secs(20);
    println!(
        "6. idle after the ingest, {} s later (the tokenizer is released after {} s unused)",
        wait.as_secs(),
        IDLE_RELEASE.as_secs()
    );
    std::thread::sleep(wait);
    let after = proc_status(d.pid(), "VmRSS:");
    println!(
        "   VmRSS {:.1} MiB = {:.2}× baseline (target ≤ {IDLE_TARGET} MiB: {})",
        after as f64 / MIB,
        after as f64 / baseline as f64,
        verdict(after, IDLE_TARGET)
    );
    d.stop()?;
    drop(stores);
    rt.shutdown_timeout(Duration::from_secs(5));
    pg.stop();
    Ok(())
}

/// Per mode (in [`MODES`] order): the sorted latencies of `n` queries after a warm-up. Prints
/// p50/p99 and the hits of the last answer, with ratios to `base` when given.
async fn latencies(
    d: &Daemon,
    n: usize,
    base: Option<&[Vec<Duration>]>,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut all = Vec::new();
    for (m, mode) in MODES.into_iter().enumerate() {
        for i in 0..WARM_UP {
            d.query(mode, QUESTIONS[i % QUESTIONS.len()]).await?;
        }
        let mut times = Vec::with_capacity(n);
        let mut hits = 0;
        for i in 0..n {
            let t = Instant::now();
            hits = d.query(mode, QUESTIONS[i % QUESTIONS.len()]).await?;
            times.push(t.elapsed());
        }
        times.sort();
        let (p50, p99) = (pct(&times, 50), pct(&times, 99));
        let ratio = |p: u32, v: Duration| {
            base.map(|b| {
                format!(
                    " ({:.2}× empty)",
                    v.as_secs_f64() / pct(&b[m], p).as_secs_f64().max(1e-9)
                )
            })
            .unwrap_or_default()
        };
        println!(
            "   {:<6} p50 {:>7.2} ms{}  p99 {:>7.2} ms{}  ({n} queries, {hits} hits)",
            mode.as_str(),
            ms(p50),
            ratio(50, p50),
            ms(p99),
            ratio(99, p99)
        );
        all.push(times);
    }
    Ok(all)
}

/// The `p`th percentile of sorted samples (nearest rank).
fn pct(sorted: &[Duration], p: u32) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p as usize).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(bytes: u64, target_mib: f64) -> &'static str {
    if bytes as f64 / MIB <= target_mib {
        "met"
    } else {
        "MISSED"
    }
}

/// Loads the rows server-side. The ANN indexes are dropped first and rebuilt by
/// `ensure_schema` afterwards: maintaining HNSW row by row would dominate the load.
async fn fill(st: &PgStores, docs: u64) -> anyhow::Result<()> {
    let pool = st.pool();
    let table = |ns| st.vector_table(ns);
    let (chunks, ents, rels) = (
        table(VectorNamespace::Chunks)?,
        table(VectorNamespace::Entities)?,
        table(VectorNamespace::Relationships)?,
    );
    for t in [&chunks, &ents, &rels] {
        let idx = schema::index_name(t, "hnsw_cosine");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS {idx}")))
            .execute(pool)
            .await?;
    }
    let n = docs as i64;
    let vec = format!(
        "(SELECT array_agg(random()::real) FROM generate_series(1, {DIM}) WHERE i >= 0)::vector"
    );
    let doc = "'doc-' || md5('d' || (i / 5))";
    let stmts = [
        format!(
            "INSERT INTO lightrag_doc_status (workspace, id, content_summary, content_length, \
             chunks_count, status, file_path, chunks_list, track_id, metadata, content_hash) \
             SELECT '{WS}', 'doc-' || md5('d' || i), 'generated note ' || i, 2000, 5, \
             'processed', 'gen/note-' || i || '.md', '[]'::jsonb, 'bench', '{{}}'::jsonb, \
             md5('c' || i) FROM generate_series(0, {n} - 1) i"
        ),
        format!(
            "INSERT INTO lightrag_doc_full (workspace, id, content, content_hash) \
             SELECT '{WS}', 'doc-' || md5('d' || i), repeat('generated text ', 130), \
             md5('c' || i) FROM generate_series(0, {n} - 1) i"
        ),
        format!(
            "INSERT INTO lightrag_doc_chunks (workspace, id, full_doc_id, chunk_order_index, \
             tokens, content, file_path) \
             SELECT '{WS}', {doc} || '-chunk-' || lpad((i % 5)::text, 3, '0'), {doc}, i % 5, 400, \
             repeat('chunk text ', 40), 'gen/note-' || (i / 5) || '.md' \
             FROM generate_series(0, {n} * 5 - 1) i"
        ),
        format!(
            "INSERT INTO {chunks} (workspace, id, tokens, chunk_order_index, full_doc_id, content, \
             content_vector, file_path) \
             SELECT '{WS}', {doc} || '-chunk-' || lpad((i % 5)::text, 3, '0'), 400, i % 5, {doc}, \
             repeat('chunk text ', 40), {vec}, 'gen/note-' || (i / 5) || '.md' \
             FROM generate_series(0, {n} * 5 - 1) i"
        ),
        format!(
            "INSERT INTO lightrag_graph_nodes (workspace, id, properties) \
             SELECT '{WS}', 'E' || lpad(i::text, 9, '0'), jsonb_build_object('entity_id', \
             'E' || lpad(i::text, 9, '0'), 'entity_type', 'concept', 'description', \
             'a generated entity', 'source_id', 'x', 'file_path', 'gen', 'created_at', 0) \
             FROM generate_series(0, {n} * 10 - 1) i"
        ),
        format!(
            "INSERT INTO {ents} (workspace, id, entity_name, content, content_vector, chunk_ids, \
             file_path) \
             SELECT '{WS}', 'ent-' || md5('E' || lpad(i::text, 9, '0')), \
             'E' || lpad(i::text, 9, '0'), 'a generated entity', {vec}, ARRAY['x']::varchar[], \
             'gen' FROM generate_series(0, {n} * 10 - 1) i"
        ),
        // Edge i joins node a = i mod N and a + k (k = 1 + i div N), named in sorted order.
        format!(
            "INSERT INTO lightrag_graph_edges (workspace, src_id, tgt_id, properties) \
             SELECT '{WS}', 'E' || lpad(a::text, 9, '0'), 'E' || lpad(b::text, 9, '0'), \
             jsonb_build_object('weight', 1.0, 'description', 'generated', 'keywords', 'k', \
             'source_id', 'x', 'file_path', 'gen', 'created_at', 0) \
             FROM (SELECT i % ({n} * 10) AS a, i % ({n} * 10) + 1 + i / ({n} * 10) AS b \
             FROM generate_series(0, {n} * 15 - 1) i) p WHERE b < {n} * 10 \
             ON CONFLICT DO NOTHING"
        ),
        format!(
            "INSERT INTO {rels} (workspace, id, source_id, target_id, content, content_vector, \
             chunk_ids, file_path) \
             SELECT '{WS}', 'rel-' || md5(i::text), 'E' || lpad((i % 1000)::text, 9, '0'), \
             'E' || lpad((i % 1000 + 1)::text, 9, '0'), 'a generated relation', {vec}, \
             ARRAY['x']::varchar[], 'gen' FROM generate_series(0, {n} * 15 - 1) i"
        ),
    ];
    for s in stmts {
        sqlx::raw_sql(sqlx::AssertSqlSafe(s)).execute(pool).await?;
    }
    st.ensure_schema().await?;
    sqlx::raw_sql("ANALYZE").execute(pool).await?;
    Ok(())
}

async fn count_rows(st: &PgStores) -> anyhow::Result<i64> {
    let mut tables: Vec<String> = [
        "lightrag_doc_status",
        "lightrag_doc_full",
        "lightrag_doc_chunks",
        "lightrag_graph_nodes",
        "lightrag_graph_edges",
    ]
    .iter()
    .map(|t| (*t).to_owned())
    .collect();
    for ns in VectorNamespace::ALL {
        tables.push(st.vector_table(ns)?);
    }
    let mut total = 0;
    for t in tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {t} WHERE workspace = '{WS}'"
        )))
        .fetch_one(st.pool())
        .await?;
        total += n;
    }
    Ok(total)
}

fn write_notes(dir: &Path, n: usize) -> anyhow::Result<()> {
    const NAMES: [&str; 8] = [
        "Ada Varga",
        "Bruno Castell",
        "Chen Ming",
        "Dalia Osei",
        "Emil Navarro",
        "Farah Quist",
        "Goran Ilic",
        "Hana Sato",
    ];
    for k in 0..n {
        let (p, q) = (NAMES[k % 8], NAMES[(k * 3 + 1) % 8]);
        let filler = "ledger harbor signal orchard archive meadow ".repeat(20 + k % 60);
        std::fs::write(
            dir.join(format!("note-{k:05}.md")),
            format!(
                "# Note {k}\n\n{p} met {q} at Nordwind Labs in Velmora.\n{q} reviewed the \
                 archive {k} with {p}.\n{filler}\n"
            ),
        )?;
    }
    Ok(())
}

/// A private cluster: initdb, pg_ctl start on a free port, pgvector created.
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn start(root: &Path) -> anyhow::Result<Cluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")?
            .filter_map(|e| {
                let e = e.ok()?;
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let b = e.path().join("bin");
                b.join("initdb").is_file().then_some((v, b))
            })
            .max_by_key(|(v, _)| *v)
            .map(|(_, b)| b)
            .ok_or_else(|| anyhow::anyhow!("no PostgreSQL under /usr/lib/postgresql"))?;
        let dir = root.join("pg");
        std::fs::create_dir_all(&dir)?;
        let as_postgres = nix::unistd::geteuid().is_root();
        if as_postgres {
            let u = nix::unistd::User::from_name("postgres")?
                .ok_or_else(|| anyhow::anyhow!("no postgres user"))?;
            nix::unistd::chown(root, Some(u.uid), Some(u.gid))?;
            nix::unistd::chown(&dir, Some(u.uid), Some(u.gid))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let c = Cluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        c.run(
            "initdb",
            &[
                "-D",
                &c.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )?;
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=128MB",
            c.dir.display()
        );
        let log = c.dir.join("pg.log").display().to_string();
        c.run(
            "pg_ctl",
            &[
                "-D",
                &c.data(),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "start",
                "-o",
                &opts,
            ],
        )?;
        let url = c.url();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS vector")
                    .execute(&mut conn)
                    .await?;
                anyhow::Ok(())
            })?;
        Ok(c)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn stop(&self) {
        // Best effort: the temp dir goes anyway.
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }
}

struct Daemon {
    child: Child,
    ctl: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(hragd: &Path, hragctl: &Path, dir: &Path) -> anyhow::Result<Daemon> {
        let log = dir.join("hragd.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(hragd)
            .arg("--registry")
            .arg(dir.join("registry.yaml"))
            .arg("--socket")
            .arg(dir.join("d.sock"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let d = Daemon {
            child,
            ctl: hragctl.to_path_buf(),
            socket: dir.join("d.sock"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        while d.state().as_deref() != Some("idle") {
            anyhow::ensure!(
                Instant::now() < deadline,
                "hragd did not become idle; log:\n{}",
                std::fs::read_to_string(&d.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(d)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ctl_json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let out = Command::new(&self.ctl)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--json")
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn state(&self) -> Option<String> {
        let s = self.ctl_json(&["status"]).ok()?;
        s["databases"][0]["state"].as_str().map(str::to_owned)
    }

    fn doc_count(&self) -> anyhow::Result<u64> {
        let v = self.ctl_json(&["backend", "status", WS])?;
        let r = if v.is_array() { v[0].clone() } else { v };
        Ok(r["metrics"]["doc_count"].as_u64().unwrap_or(0))
    }

    /// One query over the control socket, as `hragctl query` sends it; the number of hits.
    async fn query(&self, mode: QueryMode, text: &str) -> anyhow::Result<usize> {
        use hrag_proto::{
            Channel, Hello, HelloReply, PROTOCOL_VERSION, QuerySpec, Request, Response,
            ServerMessage,
        };
        let mut chan = Channel::new(tokio::net::UnixStream::connect(&self.socket).await?);
        chan.send(&Hello {
            protocol_min: PROTOCOL_VERSION,
            protocol_max: PROTOCOL_VERSION,
            client: "pg_rss bench".into(),
        })
        .await?;
        anyhow::ensure!(
            matches!(
                chan.recv::<HelloReply>().await?,
                HelloReply::Accepted { .. }
            ),
            "hragd refused the bench's connection"
        );
        chan.send(&Request::Query(QuerySpec {
            db: WS.into(),
            text: text.into(),
            mode,
            top_k: None,
            answer: false,
        }))
        .await?;
        loop {
            match chan.recv::<ServerMessage>().await? {
                ServerMessage::Progress(_) => {}
                ServerMessage::Response(Response::Query(r)) => {
                    return Ok(r.chunks.len() + r.entities.len() + r.relations.len());
                }
                ServerMessage::Response(other) => {
                    anyhow::bail!("{} query answered {other:?}", mode.as_str())
                }
            }
        }
    }

    /// VmRSS once the daemon has settled (a few seconds without work).
    fn idle_rss(&self) -> anyhow::Result<u64> {
        std::thread::sleep(Duration::from_secs(3));
        Ok(proc_status(self.pid(), "VmRSS:"))
    }

    fn stop(mut self) -> anyhow::Result<()> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        self.child.wait()?;
        Ok(())
    }
}
