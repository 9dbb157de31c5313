//! hragd on PostgreSQL, end to end with the real binaries and a private cluster: the JSON vs
//! Postgres contract (same records, same query results), LightRAG's own PG classes reading what
//! hrag wrote, an outage mid-ingest that loses and duplicates nothing, and `db add`'s checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hrag_daemon::storage::postgres::PgSettings;
use hrag_daemon::storage::{Backend, KvNamespace, Record, VectorNamespace};
use serde_json::Value;

use crate::support::daemon::{TestDaemon, stderr, stdout};
use crate::support::fixtures::{repo_root, run_checker};
use crate::support::pg::{PgCluster, sql_exec, sql_value};

const PEOPLE: [&str; 6] = [
    "Ada Varga",
    "Bruno Castell",
    "Chen Ming",
    "Dalia Osei",
    "Emil Navarro",
    "Farah Quist",
];
const ORGS: [&str; 4] = [
    "Nordwind Labs",
    "Pellucid Systems",
    "Harbor Metrics",
    "Quillon Institute",
];
const PLACES: [&str; 4] = ["Velmora", "Ostrava", "Lisbon", "Kyoto"];

/// Writes notes `from..to` (each with a unique codeword `zxKKKKq`) into `dir`.
fn write_notes(dir: &Path, from: usize, to: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for k in from..to {
        let (p, q) = (PEOPLE[k % 6], PEOPLE[(k * 5 + 1) % 6]);
        let (o, pl) = (ORGS[k % 4], PLACES[(k / 2) % 4]);
        let filler: Vec<&str> = (0..40 + k * 7)
            .map(|i| ["ledger", "harbor", "signal", "orchard", "archive"][(i * 7 + k) % 5])
            .collect();
        let body = format!(
            "# Field note {k}\n\n{p} met {q} at {o} in {pl} to review the quarterly archive.\n\
             The beacon of {pl} is {k}. Its codeword is zx{k:04}q.\n\
             {q} later wrote that {o} would fund the survey together with {p}.\n{}.\n",
            filler.join(" ")
        );
        std::fs::write(dir.join(format!("note-{k:04}.md")), body).unwrap();
    }
}

fn registry(pg_url: &str, with_json: bool) -> String {
    let mut r = String::from("version: 1\ndatabases:\n");
    if with_json {
        r.push_str(
            "  jnotes:\n    name: jnotes\n    path: {dir}/kbj\n    source_folder: {dir}/src\n    \
             auto_watch: true\n    file_extensions: ['.md']\n",
        );
    }
    r.push_str(&format!(
        "  pnotes:\n    name: pnotes\n    path: {{dir}}/kbp\n    source_folder: {{dir}}/src\n    \
         auto_watch: true\n    file_extensions: ['.md']\n    backend_type: postgres\n    \
         backend_config:\n      connection_string: {pg_url}\n"
    ));
    r
}

pub(crate) fn doc_count(d: &TestDaemon, db: &str) -> Option<u64> {
    let out = d.ctl(&["--json", "backend", "status", db]);
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let r = if v.is_array() { v[0].clone() } else { v };
    r["metrics"]["doc_count"].as_u64()
}

pub(crate) fn wait_docs(d: &TestDaemon, db: &str, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while doc_count(d, db) != Some(n) {
        assert!(
            Instant::now() < deadline,
            "{db} did not reach {n} documents (at {:?}); status {}\nlog:\n{}",
            doc_count(d, db),
            stdout(&d.ctl(&["--json", "status"])),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub(crate) fn wait_state(d: &TestDaemon, db: &str, state: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while d.state_of(db) != state {
        assert!(
            Instant::now() < deadline,
            "{db} never became {state}; status {}\nlog:\n{}",
            stdout(&d.ctl(&["--json", "status"])),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn wait_log(d: &TestDaemon, event: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d.log_text().contains(event) {
        assert!(
            Instant::now() < deadline,
            "no {event} in the log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Timestamps differ between two ingests of the same files; everything else must not.
fn strip_times(mut r: Record) -> Record {
    for k in [
        "create_time",
        "update_time",
        "created_at",
        "updated_at",
        "_id",
        "timestamp",
        // nano-vectordb's own bookkeeping, not part of the record.
        "__created_at__",
        "__write_seq__",
    ] {
        r.remove(k);
    }
    if let Some(Value::Object(m)) = r.get_mut("metadata") {
        m.remove("process_start_time");
        m.remove("process_end_time");
    }
    r
}

async fn kv_all(b: &Backend, ns: KvNamespace) -> BTreeMap<String, Record> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = b.kv(ns).page(cursor, 200).await.unwrap();
        for (id, r) in page.items {
            out.insert(id, strip_times(r));
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

async fn vectors_all(b: &Backend, ns: VectorNamespace) -> BTreeMap<String, (Record, Vec<f32>)> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = b.vectors(ns).page(cursor, 200).await.unwrap();
        for item in page.items {
            let norm = item.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            let unit = item.vector.iter().map(|x| x / norm.max(1e-12)).collect();
            out.insert(item.id, (strip_times(item.meta), unit));
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

async fn graph_all(b: &Backend) -> (BTreeMap<String, Record>, BTreeMap<(String, String), Record>) {
    let (mut nodes, mut edges) = (BTreeMap::new(), BTreeMap::new());
    let mut cursor = None;
    loop {
        let page = b.graph.page_nodes(cursor, 200).await.unwrap();
        for (id, r) in page.items {
            nodes.insert(id, strip_times(r));
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut cursor = None;
    loop {
        let page = b.graph.page_edges(cursor, 200).await.unwrap();
        for (a, z, r) in page.items {
            let key = if a <= z { (a, z) } else { (z, a) };
            edges.insert(key, strip_times(r));
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => return (nodes, edges),
        }
    }
}

async fn doc_status_all(b: &Backend) -> BTreeMap<String, Record> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = b.doc_status.page(cursor, 200).await.unwrap();
        for (id, r) in page.items {
            out.insert(id, strip_times(r));
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Ids (in order) and scores of one query's answer.
fn query(d: &TestDaemon, db: &str, text: &str, mode: &str) -> Vec<(String, f64)> {
    let v = d.json(&["query", db, text, "--mode", mode, "--top-k", "5"]);
    let mut hits = Vec::new();
    for part in ["chunks", "entities", "relations"] {
        for h in v[part].as_array().unwrap() {
            hits.push((
                format!("{part}:{}", h["id"].as_str().unwrap()),
                h["score"].as_f64().unwrap(),
            ));
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_postgres_hold_the_same_records_and_answer_the_same() {
    let pg = PgCluster::start();
    let mut d = TestDaemon::new(&registry(&pg.url(), true));
    write_notes(&d.path("src"), 0, 14);
    d.start();
    wait_docs(&d, "jnotes", 14, Duration::from_secs(120));
    wait_docs(&d, "pnotes", 14, Duration::from_secs(120));

    for (text, mode) in [
        ("codeword zx0007q", "naive"),
        ("Quillon Institute funding", "local"),
        ("Ada Varga and Chen Ming", "global"),
        ("harbor archive review", "hybrid"),
        ("Nordwind Labs in Kyoto", "mix"),
    ] {
        let j = query(&d, "jnotes", text, mode);
        let p = query(&d, "pnotes", text, mode);
        assert!(!j.is_empty(), "{mode} query {text:?} found nothing");
        let ids = |h: &[(String, f64)]| h.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&j), ids(&p), "{mode} query {text:?}: different hits");
        for ((id, a), (_, b)) in j.iter().zip(&p) {
            assert!(
                (a - b).abs() < 1e-4,
                "{mode} {text:?} {id}: score {a} vs {b}"
            );
        }
    }
    d.stop();

    // Both stores, through the storage traits, record by record.
    let json = hrag_daemon::storage::json::open(&d.path("kbj"), None, None).unwrap();
    let mut s = PgSettings::new(
        pg.url(),
        "pnotes",
        Some(hrag_daemon::providers::HASH_EMBEDDER_MODEL.to_owned()),
        json.vectors(VectorNamespace::Chunks).dim(),
    );
    s.max_connections = 2;
    let pgb = Backend::open_postgres(s).await.unwrap();
    for ns in KvNamespace::ALL {
        assert_eq!(
            kv_all(&json, ns).await,
            kv_all(&pgb, ns).await,
            "kv {}",
            ns.as_str()
        );
    }
    assert_eq!(doc_status_all(&json).await, doc_status_all(&pgb).await);
    assert_eq!(graph_all(&json).await, graph_all(&pgb).await);
    for ns in VectorNamespace::ALL {
        let (a, b) = (vectors_all(&json, ns).await, vectors_all(&pgb, ns).await);
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{}",
            ns.as_str()
        );
        assert!(!a.is_empty(), "no {} vectors", ns.as_str());
        for (id, (meta, v)) in &a {
            let (pmeta, pv) = &b[id];
            assert_eq!(meta, pmeta, "{} {id}", ns.as_str());
            let worst = v
                .iter()
                .zip(pv)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(
                worst < 1e-5,
                "{} {id}: vectors differ by {worst}",
                ns.as_str()
            );
        }
    }
}

#[test]
fn lightrag_reads_the_workspace_hrag_filled() {
    let pg = PgCluster::start();
    let mut d = TestDaemon::new(&registry(&pg.url(), false));
    write_notes(&d.path("src"), 0, 8);
    d.start();
    wait_docs(&d, "pnotes", 8, Duration::from_secs(120));
    d.stop();
    let counts = std::process::Command::new("python3")
        .arg(repo_root().join("tests/tools/counts_from_pg.py"))
        .args([&pg.url(), "pnotes"])
        .output()
        .unwrap();
    assert!(counts.status.success(), "{}", stderr(&counts));
    let expect = d.path("expect.json");
    std::fs::write(&expect, &counts.stdout).unwrap();
    let (ok, text) = run_checker(
        "lightrag_pg_check.py",
        &[
            "--dsn",
            &pg.url(),
            "--workspace",
            "pnotes",
            "--expect",
            expect.to_str().unwrap(),
            "--stored-vector-query",
        ],
    );
    assert!(ok && text.contains(" 0 failed"), "{text}");
}

#[test]
fn an_outage_mid_ingest_loses_and_duplicates_nothing() {
    let pg = PgCluster::start();
    let mut d = TestDaemon::new(&registry(&pg.url(), false));
    write_notes(&d.path("src"), 0, 5);
    d.start();
    wait_docs(&d, "pnotes", 5, Duration::from_secs(120));
    let h = d.json(&["health"]);
    let probe = &h["databases"][0]["backend"];
    assert_eq!(probe["reachable"], true, "{h}");
    assert!(
        probe["server_version"].as_str().unwrap().starts_with("15"),
        "{h}"
    );
    assert!(probe["pgvector_version"].is_string(), "{h}");

    pg.stop();
    write_notes(&d.path("src"), 5, 11);
    wait_state(&d, "pnotes", "degraded", Duration::from_secs(20));
    let status = stdout(&d.ctl(&["--json", "status"]));
    assert!(status.contains("unreachable"), "{status}");
    let out = d.ctl(&["--json", "backend", "status", "pnotes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let h = d.json(&["health"]);
    assert_eq!(h["databases"][0]["backend"]["reachable"], false, "{h}");
    wait_log(&d, "backend_unreachable");

    pg.start_again();
    wait_docs(&d, "pnotes", 11, Duration::from_secs(120));
    wait_state(&d, "pnotes", "idle", Duration::from_secs(30));
    wait_log(&d, "backend_reconnected");
    let url = pg.url();
    assert_eq!(
        sql_value::<i64>(
            &url,
            "SELECT count(*) FROM lightrag_doc_status WHERE workspace = 'pnotes' AND status = 'processed'"
        ).unwrap(),
        11
    );
    assert_eq!(
        sql_value::<i64>(
            &url,
            "SELECT count(*) FROM lightrag_doc_status WHERE workspace = 'pnotes'"
        )
        .unwrap(),
        11
    );
    assert_eq!(
        sql_value::<i64>(
            &url,
            "SELECT count(DISTINCT full_doc_id) FROM lightrag_doc_chunks WHERE workspace = 'pnotes'"
        )
        .unwrap(),
        11
    );
    assert!(
        !d.log_text().contains("document_gave_up"),
        "{}",
        d.log_text()
    );
}

/// `db add` with `url`: the exit code and the message.
fn add(d: &TestDaemon, name: &str, url: &str) -> (Option<i32>, String) {
    let kb = d.path(name);
    let out = d.ctl(&[
        "db",
        "add",
        name,
        "--path",
        kb.to_str().unwrap(),
        "--backend",
        "postgres",
        "--connection-string",
        url,
    ]);
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
fn db_add_checks_the_target_and_says_what_is_wrong() {
    let pg = PgCluster::start();
    let port = pg.port();
    // Password checks for one role over TCP; everything else stays trusted.
    let hba = pg.dir().join("data/pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\nhost all alice 127.0.0.1/32 scram-sha-256\n\
         host all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    for sql in [
        "CREATE ROLE alice LOGIN PASSWORD 'right'",
        "GRANT CREATE ON SCHEMA public TO alice",
        "CREATE ROLE bob LOGIN",
        "CREATE DATABASE novec",
        "SELECT pg_reload_conf()",
    ] {
        sql_exec(&pg.url(), sql).unwrap();
    }
    let mut d = TestDaemon::new("version: 1\ndatabases: {}\n");
    d.start();

    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_port = refused.local_addr().unwrap().port();
    drop(refused);
    let (code, msg) = add(
        &d,
        "refused",
        &format!("postgres://postgres@127.0.0.1:{refused_port}/postgres"),
    );
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("refused the connection"), "{msg}");

    // Accepts TCP connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let (code, msg) = add(
        &d,
        "silent",
        &format!("postgres://postgres@127.0.0.1:{silent_port}/postgres"),
    );
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("did not answer"), "{msg}");
    drop(silent);

    let (code, msg) = add(
        &d,
        "nodb",
        &format!("postgres://postgres@127.0.0.1:{port}/nosuchdb"),
    );
    assert_eq!(code, Some(3), "{msg}");
    assert!(msg.contains("\"nosuchdb\" does not exist"), "{msg}");

    let (code, msg) = add(
        &d,
        "badpw",
        &format!("postgres://alice:wrong@127.0.0.1:{port}/postgres"),
    );
    assert_eq!(code, Some(3), "{msg}");
    assert!(msg.contains("authentication failed"), "{msg}");
    assert!(!msg.contains("wrong"), "the password is shown: {msg}");
    assert!(
        !d.state.join("secrets/badpw.password").exists(),
        "a refused target left its password file behind"
    );

    let (code, msg) = add(
        &d,
        "novec",
        &format!("postgres://bob@127.0.0.1:{port}/novec"),
    );
    assert_eq!(code, Some(3), "{msg}");
    assert!(msg.contains("pgvector"), "{msg}");

    let reg = d.registry_text();
    for name in ["refused", "silent", "nodb", "badpw", "novec"] {
        assert!(
            !reg.contains(&format!("{name}:")),
            "{name} was saved:\n{reg}"
        );
    }

    let (code, msg) = add(
        &d,
        "good",
        &format!("postgres://alice:right@127.0.0.1:{port}/postgres"),
    );
    assert_eq!(code, Some(0), "{msg}");
    assert!(!d.registry_text().contains("right"));
    wait_state(&d, "good", "idle", Duration::from_secs(30));
}

#[test]
fn set_backend_only_repoints_an_empty_database() {
    let pg = PgCluster::start();
    let mut d = TestDaemon::new(
        "version: 1\ndatabases:\n  full:\n    path: {dir}/full\n    source_folder: {dir}/src\n    \
         auto_watch: true\n    file_extensions: ['.md']\n  empty:\n    path: {dir}/empty\n",
    );
    write_notes(&d.path("src"), 0, 2);
    d.start();
    wait_docs(&d, "full", 2, Duration::from_secs(60));
    let out = d.ctl(&[
        "db",
        "set-backend",
        "full",
        "--backend",
        "postgres",
        "--connection-string",
        &pg.url(),
    ]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("hragctl migrate full --to postgres"));

    let out = d.ctl(&[
        "db",
        "set-backend",
        "empty",
        "--backend",
        "postgres",
        "--connection-string",
        &pg.url(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The supervisor closes the JSON store and opens the Postgres one after the registry
    // changed: "idle" may still be the old store's, so wait for the new one to answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        let out = d.ctl(&["--json", "backend", "status", "empty"]);
        let st: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let r = if st.is_array() { st[0].clone() } else { st };
        if out.status.success() && r["backend_type"] == "postgres" {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "empty never served from Postgres: {r}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(r["backend_type"], "postgres", "{r}");
    assert_eq!(r["metrics"]["is_connected"], true, "{r}");
}
