//! The PostgreSQL storage backend against a real private cluster: LightRAG's schema, the four
//! storage traits with the JSON stores' semantics, adopting what LightRAG 1.5.7 wrote, and the
//! single-writer advisory lock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hrag_daemon::storage::postgres::{PgSettings, PgStores};
use hrag_daemon::storage::{
    Cursor, DocStatusStore, GraphStore, KvNamespace, KvStore, Record, StorageError, VectorItem,
    VectorNamespace, VectorStore,
};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;

use crate::support::fixtures::fixture;
use crate::support::pg::PgCluster;

fn rec(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn s(x: &str) -> String {
    x.to_owned()
}

fn pg_fixture(name: &str) -> PathBuf {
    fixture("lightrag-1.5.7-pg").join(name)
}

fn url_for(pg: &PgCluster, db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{}/{db}", pg.port())
}

async fn stores(pg: &PgCluster, db: &str, ws: &str, model: Option<&str>, dim: usize) -> PgStores {
    let mut settings = PgSettings::new(url_for(pg, db), ws, model.map(str::to_owned), dim);
    settings.max_connections = 4;
    PgStores::connect(settings).await.unwrap()
}

/// psql from the PostgreSQL installation the harness uses.
fn psql() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("psql not found under /usr/lib/postgresql/<N>/bin/: run scripts/setup-postgres.sh")
    })
}

fn run_psql_file(pg: &PgCluster, db: &str, file: &Path) {
    let out = Command::new(psql())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(url_for(pg, db))
        .arg("-f")
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql -f {} failed: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn create_db(pg: &PgCluster, name: &str) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg.url())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    let db = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url_for(pg, name))
        .await
        .unwrap();
    sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
        .execute(&db)
        .await
        .unwrap();
}

type Columns = Vec<(
    String,
    String,
    i32,
    String,
    Option<i32>,
    Option<String>,
    String,
)>;

async fn columns(url: &str) -> Columns {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT table_name::text, column_name::text, ordinal_position::int, udt_name::text, \
         character_maximum_length::int, column_default::text, is_nullable::text \
         FROM information_schema.columns WHERE table_schema = 'public' \
         AND table_name LIKE 'lightrag_%' ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
}

async fn indexes(url: &str) -> Vec<(String, String)> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public' \
         AND tablename LIKE 'lightrag_%' ORDER BY indexname",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
}

async fn constraints(url: &str) -> Vec<(String, String)> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid::regclass::text LIKE 'lightrag_%' ORDER BY conname",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn pg_schema_is_idempotent_and_matches_lightrag() {
    let pg = PgCluster::start();
    create_db(&pg, "reference").await;
    run_psql_file(&pg, "reference", &pg_fixture("pg-schema.sql"));

    let st = stores(&pg, "postgres", "ws", Some("fake-embed"), 64).await;
    st.ensure_schema().await.unwrap();
    st.ensure_schema().await.unwrap();

    let ours = url_for(&pg, "postgres");
    let theirs = url_for(&pg, "reference");
    let (a, b) = (columns(&ours).await, columns(&theirs).await);
    assert_eq!(a.len(), b.len(), "column count differs");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    assert_eq!(indexes(&ours).await, indexes(&theirs).await);
    assert_eq!(constraints(&ours).await, constraints(&theirs).await);

    // The bare tables without a model name.
    let bare = stores(&pg, "postgres", "ws", None, 8).await;
    bare.ensure_schema().await.unwrap();
    assert_eq!(
        bare.vector_table(VectorNamespace::Relationships).unwrap(),
        "lightrag_vdb_relation"
    );
    assert!(
        columns(&ours)
            .await
            .iter()
            .any(|c| c.0 == "lightrag_vdb_chunks" && c.1 == "content_vector")
    );
}

#[tokio::test]
async fn pg_kv_round_trip() {
    let pg = PgCluster::start();
    let st = stores(&pg, "postgres", "ws1", Some("m"), 4).await;
    st.ensure_schema().await.unwrap();
    let other = stores(&pg, "postgres", "ws2", Some("m"), 4).await;

    let chunks = st.kv(KvNamespace::TextChunks);
    assert_eq!(chunks.namespace(), KvNamespace::TextChunks);
    let mut recs = Vec::new();
    for i in 0..5 {
        recs.push((
            format!("chunk-{i}"),
            rec(
                json!({"tokens": 10 + i, "content": format!("text {i}"), "chunk_order_index": i,
                       "full_doc_id": "doc-1", "file_path": "a.txt", "unknown": 1}),
            ),
        ));
    }
    chunks.upsert(recs).await.unwrap();
    assert_eq!(chunks.count().await.unwrap(), 5);
    assert_eq!(other.kv(KvNamespace::TextChunks).count().await.unwrap(), 0);

    let r = chunks.get("chunk-2").await.unwrap().unwrap();
    assert_eq!(r["_id"], "chunk-2");
    assert_eq!(r["content"], "text 2");
    assert_eq!(r["tokens"], 12);
    assert_eq!(r["chunk_order_index"], 2);
    assert_eq!(r["llm_cache_list"], json!([]));
    assert!(!r.contains_key("unknown"));
    let created = r["create_time"].as_i64().unwrap();
    assert!(created > 1_700_000_000);
    assert!(r["update_time"].as_i64().unwrap() >= created);

    assert!(chunks.get("nope").await.unwrap().is_none());
    let many = chunks
        .get_many(&[s("chunk-4"), s("nope"), s("chunk-0")])
        .await
        .unwrap();
    assert_eq!(many[0].as_ref().unwrap()["content"], "text 4");
    assert!(many[1].is_none());
    assert_eq!(many[2].as_ref().unwrap()["content"], "text 0");
    assert_eq!(
        chunks
            .missing(&[s("x"), s("chunk-1"), s("y")])
            .await
            .unwrap(),
        vec![s("x"), s("y")]
    );

    // Replacing keeps create_time, updates fields.
    chunks
        .upsert(vec![(
            s("chunk-2"),
            rec(
                json!({"tokens": 1, "content": "new", "chunk_order_index": 2,
                       "full_doc_id": "doc-1", "file_path": "a.txt", "llm_cache_list": ["k"]}),
            ),
        )])
        .await
        .unwrap();
    let r = chunks.get("chunk-2").await.unwrap().unwrap();
    assert_eq!(r["content"], "new");
    assert_eq!(r["llm_cache_list"], json!(["k"]));
    assert_eq!(r["create_time"].as_i64().unwrap(), created);

    // Paging sees everything once.
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = chunks.page(cursor, 2).await.unwrap();
        seen.extend(page.items.into_iter().map(|(k, _)| k));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..5).map(|i| format!("chunk-{i}")).collect::<Vec<_>>()
    );

    chunks.delete(&[s("chunk-0"), s("chunk-9")]).await.unwrap();
    assert_eq!(chunks.count().await.unwrap(), 4);
    assert!(!chunks.flush().await.unwrap());

    // Namespace-specific column mappings.
    let docs = st.kv(KvNamespace::FullDocs);
    docs.upsert(vec![(
        s("doc-1"),
        rec(json!({"content": "hello", "file_path": "a.txt"})),
    )])
    .await
    .unwrap();
    let d = docs.get("doc-1").await.unwrap().unwrap();
    assert_eq!(d["file_path"], "a.txt");
    assert_eq!(d["content"], "hello");
    let cache = st.kv(KvNamespace::LlmResponseCache);
    cache
        .upsert(vec![(
            s("default:extract:abc"),
            rec(
                json!({"return": "answer", "cache_type": "extract", "chunk_id": "chunk-1",
                       "original_prompt": "p", "queryparam": {"mode": "local"}}),
            ),
        )])
        .await
        .unwrap();
    let c = cache.get("default:extract:abc").await.unwrap().unwrap();
    assert_eq!(c["return"], "answer");
    assert_eq!(c["queryparam"], json!({"mode": "local"}));
    let ents = st.kv(KvNamespace::FullEntities);
    ents.upsert(vec![(
        s("doc-1"),
        rec(json!({"entity_names": ["A", "B"], "count": 2})),
    )])
    .await
    .unwrap();
    let e = ents.get("doc-1").await.unwrap().unwrap();
    assert_eq!(e["entity_names"], json!(["A", "B"]));
    assert_eq!(e["count"], 2);
    let rc = st.kv(KvNamespace::RelationChunks);
    rc.upsert(vec![(
        s("A<SEP>B"),
        rec(json!({"chunk_ids": ["c1", "c2"], "count": 2})),
    )])
    .await
    .unwrap();
    assert_eq!(
        rc.get("A<SEP>B").await.unwrap().unwrap()["chunk_ids"],
        json!(["c1", "c2"])
    );
}

#[tokio::test]
async fn pg_doc_status_round_trip() {
    let pg = PgCluster::start();
    let st = stores(&pg, "postgres", "ws", Some("m"), 4).await;
    st.ensure_schema().await.unwrap();
    let ds = st.doc_status();
    let processed = rec(json!({
        "status": "processed", "content_summary": "sum", "content_length": 42,
        "created_at": "2025-01-01T00:00:00+00:00", "updated_at": "2025-01-02T03:04:05.250000+00:00",
        "file_path": "a.txt", "track_id": "hrag_ingest", "chunks_count": 2,
        "chunks_list": ["c1", "c2"], "metadata": {"k": 1}, "content_hash": "h1"
    }));
    let pending = rec(json!({
        "status": "pending", "content_summary": "p", "content_length": 1,
        "created_at": "2025-01-01T00:00:00+00:00", "updated_at": "2025-01-01T00:00:00+00:00",
        "file_path": "b.txt", "chunks_list": [], "metadata": {}
    }));
    let mut records = vec![
        (s("doc-a"), processed.clone()),
        (s("doc-b"), pending.clone()),
    ];
    for i in 0..3 {
        let mut f = pending.clone();
        f.insert("status".into(), json!("failed"));
        f.insert("error_msg".into(), json!("boom"));
        records.push((format!("doc-f{i}"), f));
    }
    ds.upsert(records).await.unwrap();

    assert_eq!(ds.get("doc-a").await.unwrap().unwrap(), processed);
    let b = ds.get("doc-b").await.unwrap().unwrap();
    assert_eq!(b, pending, "chunks_count -1 reads back as absent");
    assert!(ds.get("zzz").await.unwrap().is_none());
    assert_eq!(ds.count().await.unwrap(), 5);
    assert_eq!(
        ds.counts_by_status().await.unwrap(),
        BTreeMap::from([(s("failed"), 3), (s("pending"), 1), (s("processed"), 1)])
    );
    let mut failed = Vec::new();
    let mut cursor = None;
    loop {
        let p = ds.by_status("failed", cursor, 2).await.unwrap();
        failed.extend(p.items.into_iter().map(|(k, r)| {
            assert_eq!(r["error_msg"], "boom");
            k
        }));
        match p.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(failed, vec![s("doc-f0"), s("doc-f1"), s("doc-f2")]);
    let all = ds.page(None, 100).await.unwrap();
    assert_eq!(all.items.len(), 5);
    assert!(all.next.is_none());
    let many = ds.get_many(&[s("doc-b"), s("x")]).await.unwrap();
    assert!(many[0].is_some() && many[1].is_none());

    let bad = ds
        .upsert(vec![(
            s("doc-x"),
            rec(json!({"status": "pending", "foo": 1})),
        )])
        .await;
    assert!(matches!(bad, Err(StorageError::Invalid(_))), "{bad:?}");

    ds.delete(&[s("doc-a")]).await.unwrap();
    assert_eq!(ds.count().await.unwrap(), 4);
    assert_eq!(ds.counts_by_status().await.unwrap().get("processed"), None);
}

#[tokio::test]
async fn pg_vector_round_trip_and_cosine_query() {
    let pg = PgCluster::start();
    let st = stores(&pg, "postgres", "ws", Some("test-model"), 3).await;
    st.ensure_schema().await.unwrap();

    let chunks = st.vectors(VectorNamespace::Chunks).unwrap();
    assert_eq!(chunks.dim(), 3);
    let item = |id: &str, v: Vec<f32>, meta: Value| VectorItem {
        id: s(id),
        meta: rec(meta),
        vector: v,
    };
    chunks
        .upsert(vec![
            item("c1", vec![1.0, 0.0, 0.0], json!({"full_doc_id": "d", "content": "x", "file_path": "f", "tokens": 3, "chunk_order_index": 0})),
            item("c2", vec![0.8, 0.6, 0.0], json!({"full_doc_id": "d", "content": "y", "file_path": "f"})),
            item("c3", vec![0.0, 0.0, 2.0], json!({"full_doc_id": "d", "content": "z", "file_path": "f"})),
            item("c4", vec![0.1, 1.0 / 3.0, -2.5e-7], json!({"full_doc_id": "d", "content": "w", "file_path": "f"})),
        ])
        .await
        .unwrap();
    assert_eq!(chunks.count().await.unwrap(), 4);
    let got = chunks.get(&[s("c4"), s("nope")]).await.unwrap();
    let c4 = got[0].as_ref().unwrap();
    assert_eq!(
        c4.vector.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        [0.1f32, 1.0 / 3.0, -2.5e-7]
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        c4.meta,
        rec(json!({"full_doc_id": "d", "content": "w", "file_path": "f"}))
    );
    assert!(got[1].is_none());

    let hits = chunks.query(&[1.0, 0.1, 0.0], 10, 0.2).await.unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["c1", "c2", "c4"], "{hits:?}");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!((hits[0].score - 0.995_037).abs() < 1e-4);
    assert_eq!(hits[0].meta["content"], "x");
    assert_eq!(
        chunks.query(&[1.0, 0.1, 0.0], 1, 0.2).await.unwrap().len(),
        1
    );
    assert!(matches!(
        chunks.query(&[1.0, 0.0], 1, 0.2).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        chunks.upsert(vec![item("bad", vec![1.0], json!({}))]).await,
        Err(StorageError::Invalid(_))
    ));

    let mut n = 0;
    let mut cursor = None;
    loop {
        let p = chunks.page(cursor, 3).await.unwrap();
        n += p.items.len();
        match p.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(n, 4);
    chunks.delete(&[s("c1")]).await.unwrap();
    assert_eq!(chunks.count().await.unwrap(), 3);

    let ents = st.vectors(VectorNamespace::Entities).unwrap();
    let emeta = json!({"entity_name": "Alice", "source_id": "c1<SEP>c2", "content": "Alice\nperson", "file_path": "f"});
    ents.upsert(vec![item("ent-1", vec![0.0, 1.0, 0.0], emeta.clone())])
        .await
        .unwrap();
    assert_eq!(
        ents.get(&[s("ent-1")]).await.unwrap()[0]
            .as_ref()
            .unwrap()
            .meta,
        rec(emeta)
    );

    let rels = st.vectors(VectorNamespace::Relationships).unwrap();
    rels.upsert(vec![item(
        "rel-1",
        vec![0.0, 1.0, 1.0],
        json!({"src_id": "Zed", "tgt_id": "Alice", "source_id": "c1", "content": "k", "file_path": "f", "weight": 1.0}),
    )])
    .await
    .unwrap();
    let r = rels.get(&[s("rel-1")]).await.unwrap()[0].clone().unwrap();
    assert_eq!(
        r.meta,
        rec(
            json!({"src_id": "Alice", "tgt_id": "Zed", "source_id": "c1", "content": "k", "file_path": "f"})
        )
    );
    let hit = rels.query(&[0.0, 1.0, 1.0], 5, 0.0).await.unwrap();
    assert_eq!(hit[0].meta["src_id"], "Alice");

    // LightRAG's columns hold what LightRAG expects.
    let pool = st.pool();
    let (src, tgt, ids): (String, String, Vec<String>) = sqlx::query_as(
        "SELECT source_id, target_id, chunk_ids::text[] FROM lightrag_vdb_relation_test_model_3d \
         WHERE workspace = 'ws' AND id = 'rel-1'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((src.as_str(), tgt.as_str()), ("Alice", "Zed"));
    assert_eq!(ids, vec![s("c1")]);
}

#[tokio::test]
async fn pg_graph_round_trip_with_canonical_edges() {
    let pg = PgCluster::start();
    let st = stores(&pg, "postgres", "ws", Some("m"), 4).await;
    st.ensure_schema().await.unwrap();
    let g = st.graph();

    g.upsert_nodes(vec![
        (
            s("Zed"),
            rec(json!({"entity_id": "Zed", "entity_type": "person", "created_at": 1})),
        ),
        (
            s("Élodie"),
            rec(json!({"entity_id": "Élodie", "weight": 2.5})),
        ),
    ])
    .await
    .unwrap();
    g.upsert_nodes(vec![(s("Zed"), rec(json!({"description": "d"})))])
        .await
        .unwrap();
    assert_eq!(
        g.get_node("Zed").await.unwrap().unwrap(),
        rec(
            json!({"entity_id": "Zed", "entity_type": "person", "created_at": 1, "description": "d"})
        )
    );
    assert!(g.get_node("nobody").await.unwrap().is_none());

    // "Zed" < "bob" < "Élodie" by code point.
    g.upsert_edges(vec![
        (
            s("Élodie"),
            s("Zed"),
            rec(json!({"weight": 1.0, "description": "e1"})),
        ),
        (s("bob"), s("Zed"), rec(json!({"weight": 2.0}))),
        (s("Élodie"), s("bob"), rec(json!({"weight": 3.0}))),
    ])
    .await
    .unwrap();
    assert_eq!(
        g.get_node("bob").await.unwrap().unwrap(),
        rec(json!({"entity_id": "bob"}))
    );
    let e = g.get_edge("Zed", "Élodie").await.unwrap().unwrap();
    assert_eq!(e, rec(json!({"weight": 1.0, "description": "e1"})));
    assert_eq!(g.get_edge("Élodie", "Zed").await.unwrap().unwrap(), e);
    assert!(g.get_edge("Zed", "nobody").await.unwrap().is_none());

    let noncanonical: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lightrag_graph_edges WHERE src_id COLLATE \"C\" > tgt_id COLLATE \"C\"",
    )
    .fetch_one(st.pool())
    .await
    .unwrap();
    assert_eq!(noncanonical, 0);
    let zed_src: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lightrag_graph_edges WHERE src_id = 'Zed' AND namespace = 'chunk_entity_relation'",
    )
    .fetch_one(st.pool())
    .await
    .unwrap();
    assert_eq!(zed_src, 2);

    assert_eq!(g.node_count().await.unwrap(), 3);
    assert_eq!(g.edge_count().await.unwrap(), 3);
    assert_eq!(
        g.neighbours("Zed").await.unwrap(),
        vec![s("bob"), s("Élodie")]
    );
    assert_eq!(g.degree("bob").await.unwrap(), 2);
    assert_eq!(g.degree("nobody").await.unwrap(), 0);

    let mut edges = Vec::new();
    let mut cursor = None;
    loop {
        let p = g.page_edges(cursor, 1).await.unwrap();
        edges.extend(p.items.into_iter().map(|(a, b, _)| (a, b)));
        match p.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(edges.len(), 3);
    assert!(edges.iter().all(|(a, b)| a < b));
    let nodes = g.page_nodes(None, 10).await.unwrap();
    assert_eq!(nodes.items.len(), 3);
    assert!(nodes.next.is_none());

    g.delete_edges(&[(s("Zed"), s("bob"))]).await.unwrap();
    assert_eq!(g.edge_count().await.unwrap(), 2);
    g.delete_nodes(&[s("Élodie")]).await.unwrap();
    assert_eq!(g.node_count().await.unwrap(), 2);
    assert_eq!(g.edge_count().await.unwrap(), 0);
    assert!(!g.flush().await.unwrap());
}

#[tokio::test]
async fn pg_adopts_lightrag_fixture_with_exact_counts() {
    let pg = PgCluster::start();
    run_psql_file(&pg, "postgres", &pg_fixture("pg-schema.sql"));
    run_psql_file(&pg, "postgres", &pg_fixture("pg-small-data.sql"));
    let counts: Value =
        serde_json::from_slice(&std::fs::read(pg_fixture("pg-small-COUNTS.json")).unwrap())
            .unwrap();
    let ws = counts["workspace"].as_str().unwrap();
    let model = counts["embedding_model_name"].as_str().unwrap();
    let dim = usize::try_from(counts["embedding_dim"].as_u64().unwrap()).unwrap();

    let st = stores(&pg, "postgres", ws, Some(model), dim).await;
    st.ensure_schema().await.unwrap();
    let backend = stores(&pg, "postgres", ws, Some(model), dim)
        .await
        .into_backend()
        .await
        .unwrap();

    for ns in KvNamespace::ALL {
        let store = backend.kv(ns);
        let want = counts["kv"][ns.as_str()].as_u64().unwrap();
        assert_eq!(store.count().await.unwrap(), want, "{}", ns.as_str());
        let mut n = 0;
        let mut cursor = None;
        loop {
            let p = store.page(cursor, 7).await.unwrap();
            n += p.items.len() as u64;
            match p.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(n, want, "paged {}", ns.as_str());
    }
    for ns in VectorNamespace::ALL {
        let store = backend.vectors(ns);
        assert_eq!(
            store.count().await.unwrap(),
            counts["vdb"][ns.as_str()].as_u64().unwrap(),
            "{}",
            ns.as_str()
        );
    }
    assert_eq!(
        backend.graph.node_count().await.unwrap(),
        counts["graph"]["nodes"].as_u64().unwrap()
    );
    assert_eq!(
        backend.graph.edge_count().await.unwrap(),
        counts["graph"]["edges"].as_u64().unwrap()
    );
    assert_eq!(
        backend.doc_status.count().await.unwrap(),
        counts["doc_status"]["total"].as_u64().unwrap()
    );
    let by_status: BTreeMap<String, u64> =
        serde_json::from_value(counts["doc_status"]["by_status"].clone()).unwrap();
    assert_eq!(
        backend.doc_status.counts_by_status().await.unwrap(),
        by_status
    );
    let c = backend.counts().await.unwrap();
    assert_eq!(c.chunk_count, counts["vdb"]["chunks"].as_u64().unwrap());

    // Records read in the JSON shape; a stored vector finds itself first.
    let page = backend
        .vectors(VectorNamespace::Chunks)
        .page(None, 1)
        .await
        .unwrap();
    let first = &page.items[0];
    assert_eq!(first.vector.len(), dim);
    assert!(first.meta.contains_key("full_doc_id"));
    let hits = backend
        .vectors(VectorNamespace::Chunks)
        .query(&first.vector, 3, 0.0)
        .await
        .unwrap();
    assert_eq!(hits[0].id, first.id);
    assert!((hits[0].score - 1.0).abs() < 1e-4);
    let rels = backend
        .vectors(VectorNamespace::Relationships)
        .page(None, 5)
        .await
        .unwrap();
    for r in &rels.items {
        let (a, b) = (
            r.meta["src_id"].as_str().unwrap(),
            r.meta["tgt_id"].as_str().unwrap(),
        );
        assert!(a <= b, "{a} {b}");
        assert!(backend.graph.get_edge(b, a).await.unwrap().is_some());
    }
    let (name, node) = backend
        .graph
        .page_nodes(None, 1)
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!(node["entity_id"], Value::String(name.clone()));
    assert!(backend.graph.degree(&name).await.unwrap() > 0);
    let processed = backend
        .doc_status
        .by_status("processed", None, 100)
        .await
        .unwrap();
    assert_eq!(processed.items.len() as u64, by_status["processed"]);
    let pending = backend
        .doc_status
        .by_status("pending", None, 100)
        .await
        .unwrap();
    assert!(!pending.items[0].1.contains_key("chunks_count"));
}

#[tokio::test]
async fn pg_advisory_lock_refuses_second_holder() {
    let pg = PgCluster::start();
    let first = stores(&pg, "postgres", "locked", Some("m"), 4)
        .await
        .into_backend()
        .await
        .unwrap();
    let second = stores(&pg, "postgres", "locked", Some("m"), 4)
        .await
        .into_backend()
        .await;
    match second {
        Err(StorageError::Locked(msg)) => {
            assert!(msg.contains("another hragd"), "{msg}");
            assert!(msg.contains("locked"), "{msg}");
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second holder got the lock"),
    }
    // Another workspace is independent.
    let _other = stores(&pg, "postgres", "free", Some("m"), 4)
        .await
        .into_backend()
        .await
        .unwrap();
    drop(first);
    // The lock goes with the session; the server notices the closed socket promptly.
    let mut again = None;
    for _ in 0..50 {
        match stores(&pg, "postgres", "locked", Some("m"), 4)
            .await
            .into_backend()
            .await
        {
            Ok(b) => {
                again = Some(b);
                break;
            }
            Err(StorageError::Locked(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        again.is_some(),
        "the lock was not released with the first backend"
    );
}

#[tokio::test]
async fn pg_unreachable_is_reported_without_password() {
    let mut settings = PgSettings::new(
        "postgres://postgres:s3cret@127.0.0.1:1/postgres",
        "ws",
        None,
        4,
    );
    settings.acquire_timeout = std::time::Duration::from_secs(2);
    match PgStores::connect(settings).await {
        Err(StorageError::Unreachable(msg)) => {
            assert!(!msg.contains("s3cret"), "{msg}");
            assert!(msg.contains("127.0.0.1"), "{msg}");
        }
        Err(e) => panic!("expected Unreachable, got {e}"),
        Ok(_) => panic!("connected to port 1"),
    }
}

#[tokio::test]
async fn pg_indexes_above_2000_dims_as_halfvec_and_builds_ivfflat_on_request() {
    use hrag_daemon::storage::postgres::VectorIndexType;
    let pg = PgCluster::start();
    // 3072 dimensions: pgvector cannot index `vector` columns that wide; halfvec can.
    let dim = 3072;
    let st = stores(&pg, "postgres", "wide", Some("big-model"), dim).await;
    st.ensure_schema().await.unwrap();
    let chunks = st.vectors(VectorNamespace::Chunks).unwrap();
    let unit = |i: usize| {
        let mut v = vec![0.0f32; dim];
        v[i] = 1.0;
        v[(i + 1) % dim] = 0.5;
        v
    };
    let items: Vec<VectorItem> = (0..50)
        .map(|i| VectorItem {
            id: format!("c{i:02}"),
            meta: rec(
                json!({"full_doc_id": "d", "content": format!("chunk {i}"), "file_path": "f"}),
            ),
            vector: unit(i * 7),
        })
        .collect();
    chunks.upsert(items).await.unwrap();
    let hits = chunks.query(&unit(21), 3, 0.0).await.unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].id, "c03");
    assert!(
        (hits[0].score - 1.0).abs() < 1e-6,
        "exact score: {}",
        hits[0].score
    );
    let idx = indexes(&pg.url()).await;
    let half = idx
        .iter()
        .find(|(n, _)| n.contains("big_model_3072d_hnsw_halfvec_cosine") && n.contains("chunks"));
    let (_, def) = half.unwrap_or_else(|| panic!("no halfvec index in {idx:?}"));
    assert!(def.contains("halfvec_cosine_ops"), "{def}");

    let mut settings = PgSettings::new(url_for(&pg, "postgres"), "flat", Some("ivf".into()), 8);
    settings.index_type = VectorIndexType::IvfFlat;
    let st = PgStores::connect(settings).await.unwrap();
    st.ensure_schema().await.unwrap();
    let idx = indexes(&pg.url()).await;
    assert!(
        idx.iter().any(
            |(n, d)| n == "idx_lightrag_vdb_chunks_ivf_8d_ivfflat_cosine"
                && d.contains("USING ivfflat")
        ),
        "{idx:?}"
    );
}
