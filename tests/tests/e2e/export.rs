//! `hragctl export DB --to json DIR` end to end: a Postgres workspace LightRAG 1.5.7 itself
//! filled is written out as a JSON directory that LightRAG's own JSON classes open with the
//! same counts, record for record equal to the Postgres rows; a JSON database exports too; a
//! non-empty DIR and an unknown database are refused and leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use hrag_daemon::storage::json::JsonStores;
use hrag_daemon::storage::postgres::PgSettings;
use hrag_daemon::storage::{Backend, KvNamespace, Record, VectorItem, VectorNamespace};
use serde_json::Value;

use crate::pg_daemon::wait_docs;
use crate::support::daemon::{TestDaemon, stderr, stdout};
use crate::support::fixtures::{check_with_lightrag, copy_dir, fixture};
use crate::support::pg::PgCluster;

fn pg_fixture(name: &str) -> PathBuf {
    fixture("lightrag-1.5.7-pg").join(name)
}

fn pg_counts() -> Value {
    serde_json::from_slice(&std::fs::read(pg_fixture("pg-small-COUNTS.json")).unwrap()).unwrap()
}

/// `lr`: the workspace LightRAG wrote (its embedding model names the vector tables; the HTTP
/// embedder is never called, nothing is ingested); `small`: a LightRAG JSON directory.
fn registry(pg_url: &str, c: &Value) -> String {
    format!(
        "version: 1\ndatabases:\n  lr:\n    name: lr\n    path: {{dir}}/kb\n    \
         backend_type: postgres\n    backend_config:\n      connection_string: {pg_url}\n      \
         postgres_workspace: {ws}\n    model_config:\n      embedding_model: {model}\n      \
         embedding_dim: {dim}\n      api_base: http://127.0.0.1:9/v1\n      api_keys:\n        \
         openai: unused\n  small:\n    name: small\n    path: {{dir}}/small\n",
        ws = c["workspace"].as_str().unwrap(),
        model = c["embedding_model_name"].as_str().unwrap(),
        dim = c["embedding_dim"],
    )
}

/// Runs `hragctl --json export DB --to json DIR`: the output, the progress events and the
/// report (the JSON after the progress lines).
fn export(d: &TestDaemon, db: &str, dir: &Path) -> (Output, Vec<Value>, Option<Value>) {
    let out = d.ctl(&[
        "--json",
        "export",
        db,
        "--to",
        "json",
        dir.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    let (mut progress, mut rest) = (Vec::new(), String::new());
    for line in text.lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.get("progress").is_some() => progress.push(v["progress"].clone()),
            _ => {
                rest.push_str(line);
                rest.push('\n');
            }
        }
    }
    (out, progress, serde_json::from_str(&rest).ok())
}

fn records_of(report: &Value) -> BTreeMap<String, u64> {
    report["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["store"].as_str().unwrap().to_owned(),
                s["records"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Files and directories in `dir` (names).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_postgres_workspace_exports_to_json_that_lightrag_reads_with_the_same_records() {
    let c = pg_counts();
    let pg = PgCluster::start();
    pg.psql_file(&pg_fixture("pg-schema.sql"));
    pg.psql_file(&pg_fixture("pg-small-data.sql"));
    let mut d = TestDaemon::new(&registry(&pg.url(), &c));
    copy_dir(&fixture("lightrag-1.5.7-small"), &d.path("small"));
    d.start();
    let docs = c["doc_status"]["total"].as_u64().unwrap();
    wait_docs(&d, "lr", docs, Duration::from_secs(60));

    let out_lr = d.path("out/lr");
    let (out, progress, report) = export(&d, "lr", &out_lr);
    assert!(
        out.status.success(),
        "export failed: {}{}\nlog:\n{}",
        stdout(&out),
        stderr(&out),
        d.log_text()
    );
    let report = report.unwrap_or_else(|| panic!("no report in {}", stdout(&out)));
    assert!(
        progress.iter().any(|p| p["phase"] == "copying"
            && p["store"] == "vdb_chunks.json"
            && p["records_done"] == c["vdb"]["chunks"]),
        "no progress for vdb_chunks.json: {progress:?}"
    );

    // The report's counts are the fixture's, store by store.
    let got = records_of(&report);
    for ns in KvNamespace::ALL {
        assert_eq!(
            got[&ns.file_name()],
            c["kv"][ns.as_str()],
            "{}",
            ns.as_str()
        );
    }
    for ns in VectorNamespace::ALL {
        assert_eq!(
            got[&ns.file_name()],
            c["vdb"][ns.as_str()],
            "{}",
            ns.as_str()
        );
    }
    let graph = "graph_chunk_entity_relation.graphml";
    assert_eq!(got[&format!("{graph}:nodes")], c["graph"]["nodes"]);
    assert_eq!(got[&format!("{graph}:edges")], c["graph"]["edges"]);
    assert_eq!(got["kv_store_doc_status.json"], c["doc_status"]["total"]);
    let bytes: u64 = report["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["bytes"].as_u64().unwrap())
        .sum();
    let on_disk: u64 = hrag_daemon::storage::json::STORE_FILES
        .iter()
        .map(|f| std::fs::metadata(out_lr.join(f)).unwrap().len())
        .sum();
    assert_eq!(bytes, on_disk, "the report's sizes are the files' sizes");
    // Exactly the twelve files; no scratch file and no staging directory left.
    let mut twelve: Vec<String> = hrag_daemon::storage::json::STORE_FILES
        .iter()
        .map(|s| s.to_string())
        .collect();
    twelve.sort();
    assert_eq!(entries(&out_lr), twelve);
    assert_eq!(entries(&d.path("out")), vec!["lr".to_owned()]);

    // LightRAG's own JSON classes open it with the counts LightRAG wrote to Postgres.
    check_with_lightrag(&out_lr, &pg_fixture("pg-small-COUNTS.json"));

    // Ingestion was paused for the export and is resumed after it.
    let st = d.json(&["status"]);
    let lr = st["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "lr")
        .unwrap();
    assert_eq!(lr["paused"], false, "{st}");

    // Human output: one line per store and a total.
    let out_h = d.path("out/lr-human");
    let o = d.ctl(&["export", "lr", "--to", "json", out_h.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("vdb_entities.json"), "{text}");
    assert!(text.contains("exported lr to"), "{text}");

    d.stop();
    compare_with_postgres(&pg, &c, &out_lr);
}

/// Every exported record equals its Postgres row: KV and doc status exactly (timestamps
/// included), the graph's properties with their types, vector meta exactly, matrix rows as the
/// normalised stored vectors (f32) and `vector` fields as the raw ones (within float16).
fn compare_with_postgres(pg: &PgCluster, c: &Value, dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dim = usize::try_from(c["embedding_dim"].as_u64().unwrap()).unwrap();
        let mut s = PgSettings::new(
            pg.url(),
            c["workspace"].as_str().unwrap(),
            Some(c["embedding_model_name"].as_str().unwrap().to_owned()),
            dim,
        );
        s.max_connections = 2;
        let pgb = Backend::open_postgres(s).await.unwrap();
        let stores = JsonStores::open(dir, None, Some(dim)).unwrap();
        let raw: Vec<_> = stores.vectors.clone();
        let json = stores.into_backend().unwrap();

        for ns in KvNamespace::ALL {
            let (a, b) = (kv_all(&pgb, ns).await, kv_all(&json, ns).await);
            assert_eq!(a.len() as u64, c["kv"][ns.as_str()].as_u64().unwrap());
            assert_eq!(a, b, "kv {}", ns.as_str());
        }
        assert_eq!(doc_status_all(&pgb).await, doc_status_all(&json).await);
        let (pn, pe) = graph_all(&pgb).await;
        let (jn, je) = graph_all(&json).await;
        assert_eq!(pn.len() as u64, c["graph"]["nodes"].as_u64().unwrap());
        assert_eq!(pn, jn, "graph nodes");
        assert_eq!(pe, je, "graph edges");

        for (ns, raw) in VectorNamespace::ALL.into_iter().zip(&raw) {
            let (a, b) = (vectors_all(&pgb, ns).await, vectors_all(&json, ns).await);
            assert_eq!(a.len() as u64, c["vdb"][ns.as_str()].as_u64().unwrap());
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "{}",
                ns.as_str()
            );
            for (id, p) in &a {
                let j = &b[id];
                let mut meta = j.meta.clone();
                for k in ["__created_at__", "__write_seq__"] {
                    assert!(meta.remove(k).is_some(), "{} {id}: no {k}", ns.as_str());
                }
                assert_eq!(p.meta, meta, "{} {id}", ns.as_str());
                let norm = p.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
                for (x, y) in p.vector.iter().zip(&j.vector) {
                    assert!(
                        (x / norm - y).abs() < 1e-6,
                        "{} {id}: matrix row",
                        ns.as_str()
                    );
                }
                let half = raw.raw_vector(id).unwrap().unwrap();
                assert_eq!(half.len(), p.vector.len());
                for (x, y) in p.vector.iter().zip(&half) {
                    assert!(
                        (x - y).abs() <= 1e-3 * x.abs().max(1e-2),
                        "{} {id}: vector field {y} for {x}",
                        ns.as_str()
                    );
                }
            }
        }
    });
}

async fn kv_all(b: &Backend, ns: KvNamespace) -> BTreeMap<String, Record> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = b.kv(ns).page(cursor, 100).await.unwrap();
        out.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

async fn doc_status_all(b: &Backend) -> BTreeMap<String, Record> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = b.doc_status.page(cursor, 100).await.unwrap();
        out.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

type Edges = BTreeMap<(String, String), Record>;

async fn graph_all(b: &Backend) -> (BTreeMap<String, Record>, Edges) {
    let (mut nodes, mut edges) = (BTreeMap::new(), BTreeMap::new());
    let mut cursor = None;
    loop {
        let page = b.graph.page_nodes(cursor, 100).await.unwrap();
        nodes.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut cursor = None;
    loop {
        let page = b.graph.page_edges(cursor, 100).await.unwrap();
        for (a, z, r) in page.items {
            edges.insert(if a <= z { (a, z) } else { (z, a) }, r);
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => return (nodes, edges),
        }
    }
}

async fn vectors_all(b: &Backend, ns: VectorNamespace) -> BTreeMap<String, VectorItem> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = b.vectors(ns).page(cursor, 100).await.unwrap();
        out.extend(page.items.into_iter().map(|i| (i.id.clone(), i)));
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[test]
fn a_json_database_exports_and_bad_targets_are_refused_leaving_nothing() {
    let mut d = TestDaemon::new(
        "version: 1\ndatabases:\n  small:\n    name: small\n    path: {dir}/small\n",
    );
    copy_dir(&fixture("lightrag-1.5.7-small"), &d.path("small"));
    d.start();

    // An existing empty directory is filled (replaced atomically).
    let out_dir = d.path("empty");
    std::fs::create_dir(&out_dir).unwrap();
    let (out, _, report) = export(&d, "small", &out_dir);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(report.is_some(), "{}", stdout(&out));
    assert_eq!(entries(&out_dir).len(), 12, "{:?}", entries(&out_dir));
    check_with_lightrag(
        &out_dir,
        &fixture("lightrag-1.5.7-small").join("COUNTS.json"),
    );
    // Read through the same traits, the KV, doc-status and GraphML files come out byte for
    // byte as LightRAG wrote them (vdb rows get new timestamps and write-seq tokens).
    for f in hrag_daemon::storage::json::STORE_FILES {
        if !f.starts_with("vdb_") {
            let (a, b) = (
                std::fs::read(d.path("small").join(f)).unwrap(),
                std::fs::read(out_dir.join(f)).unwrap(),
            );
            assert!(a == b, "{f}: {} bytes exported for {}", b.len(), a.len());
        }
    }

    // A directory with something in it is refused (exit 6) and left exactly as it was.
    let full = d.path("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep.txt"), "mine").unwrap();
    let (out, _, _) = export(&d, "small", &full);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert_eq!(entries(&full), vec!["keep.txt".to_owned()]);
    assert_eq!(
        std::fs::read_to_string(full.join("keep.txt")).unwrap(),
        "mine"
    );
    // …and so is a file.
    let (out, _, _) = export(&d, "small", &full.join("keep.txt"));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));

    // An unknown database: exit 1, nothing created.
    let nowhere = d.path("nowhere");
    let (out, _, _) = export(&d, "nosuchdb", &nowhere);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!nowhere.exists());

    // No staging directory is left anywhere.
    let stray: Vec<String> = entries(d.path("").as_path())
        .into_iter()
        .filter(|n| n.contains("hrag-export"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    assert_eq!(d.state_of("small"), "idle");
}
