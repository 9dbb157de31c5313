//! Recognising stored documents on Postgres through the store's indexed lookups (no in-memory
//! index of the workspace): the pipeline must decide exactly as it does on JSON, where it keeps
//! an in-memory index — including after a restart and for documents LightRAG wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use hrag_daemon::ingest::pipeline::{Outcome, Pipeline};
use hrag_daemon::providers::{self, HASH_EMBEDDER_MODEL, ProviderSettings};
use hrag_daemon::storage::postgres::PgSettings;
use hrag_daemon::storage::{Backend, KvNamespace, Record};
use serde_json::{Value, json};

use crate::support::pg::PgCluster;

const DIM: usize = 32;
const NOTE: &str = "Ada Varga met Chen Ming at Nordwind Labs in Velmora to review the archive.";
const OTHER: &str = "Dalia Osei and Farah Quist wrote the harbor ledger report together.";

fn rec(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn pipeline_providers(backend: &Backend) -> providers::Providers {
    let settings = ProviderSettings {
        embedding_dim: Some(DIM as i64),
        ..Default::default()
    };
    providers::from_settings(
        &settings,
        backend.kv(KvNamespace::LlmResponseCache).clone(),
        &|_| None,
    )
    .unwrap()
}

async fn pipeline(backend: &Arc<Backend>) -> Pipeline {
    Pipeline::new(backend.clone(), pipeline_providers(backend))
        .await
        .unwrap()
}

/// What an outcome says, without the chunk count.
fn said(o: &Outcome) -> String {
    match o {
        Outcome::Processed { doc_id, .. } => format!("processed {doc_id}"),
        Outcome::Unchanged { doc_id } => format!("unchanged {doc_id}"),
        Outcome::Removed { doc_id } => format!("removed {doc_id}"),
        Outcome::Skipped(why) => format!("skipped: {why}"),
    }
}

/// One scenario on a fresh store; every step's outcome and lookups, in order. The pipeline is
/// rebuilt in the middle, as a daemon restart does.
async fn scenario(backend: Arc<Backend>) -> Vec<String> {
    // A document LightRAG wrote itself: another id, no file of ours, processed.
    let lightrag_id = "doc-0123456789abcdef0123456789abcdef".to_owned();
    backend
        .doc_status
        .upsert(vec![(
            lightrag_id.clone(),
            rec(
                json!({"status": "processed", "file_path": "inbox/theirs.txt",
                       "content_summary": "x", "content_length": OTHER.len(),
                       "track_id": "insert_lightrag", "chunks_count": 0, "chunks_list": [],
                       "content_hash": hrag_daemon::ingest::text::content_hash(OTHER),
                       "created_at": "2025-01-01T00:00:00+00:00",
                       "updated_at": "2025-01-01T00:00:00+00:00"}),
            ),
        )])
        .await
        .unwrap();

    let mut log = Vec::new();
    let p = pipeline(&backend).await;
    let mut step = |what: &str, o: &Outcome| log.push(format!("{what}: {}", said(o)));
    step("a new", &p.upsert_file("a.md", NOTE).await.unwrap());
    step("a again", &p.upsert_file("a.md", NOTE).await.unwrap());
    step("b = a's text", &p.upsert_file("b.md", NOTE).await.unwrap());
    step(
        "c = LightRAG's text",
        &p.upsert_file("c.md", OTHER).await.unwrap(),
    );
    log.push(format!(
        "path a: {:?}",
        p.doc_of_path("a.md").await.unwrap()
    ));
    log.push(format!(
        "path b: {:?}",
        p.doc_of_path("b.md").await.unwrap()
    ));
    log.push(format!(
        "path theirs: {:?}",
        p.doc_of_path("inbox/theirs.txt").await.unwrap()
    ));
    drop(p);

    // Restarted: nothing carried over in memory.
    let p = pipeline(&backend).await;
    let mut ours = p.known_paths().await.unwrap();
    ours.sort();
    log.push(format!("ours after restart: {ours:?}"));
    let mut step = |what: &str, o: &Outcome| log.push(format!("{what}: {}", said(o)));
    step(
        "a after restart",
        &p.upsert_file("a.md", NOTE).await.unwrap(),
    );
    step(
        "b after restart",
        &p.upsert_file("b.md", NOTE).await.unwrap(),
    );
    step(
        "a changed",
        &p.upsert_file("a.md", &format!("{NOTE} Then they left."))
            .await
            .unwrap(),
    );
    step("b now new", &p.upsert_file("b.md", NOTE).await.unwrap());
    step("a removed", &p.remove_file("a.md").await.unwrap());
    step("a removed again", &p.remove_file("a.md").await.unwrap());
    log.push(format!(
        "path a: {:?}",
        p.doc_of_path("a.md").await.unwrap()
    ));
    let mut ours = p.known_paths().await.unwrap();
    ours.sort();
    log.push(format!("ours: {ours:?}"));
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_recognises_stored_documents_as_json_does_without_an_index_in_memory() {
    let pg = PgCluster::start();
    let mut s = PgSettings::new(pg.url(), "dedup", Some(HASH_EMBEDDER_MODEL.to_owned()), DIM);
    s.max_connections = 2;
    let pgb = Arc::new(Backend::open_postgres(s).await.unwrap());
    assert!(
        pipeline(&pgb).await.index_in_store(),
        "Postgres lookups must go to the store"
    );
    let on_pg = scenario(pgb).await;

    let dir = tempfile::tempdir().unwrap();
    let json = Arc::new(hrag_daemon::storage::json::open(dir.path(), None, None).unwrap());
    assert!(!pipeline(&json).await.index_in_store());
    let on_json = scenario(json).await;

    assert_eq!(on_pg, on_json, "Postgres and JSON decided differently");
    // And the decisions are the right ones, not merely the same.
    let a = hrag_daemon::ingest::text::doc_id_for_path("a.md");
    let b = hrag_daemon::ingest::text::doc_id_for_path("b.md");
    let theirs = "doc-0123456789abcdef0123456789abcdef";
    let expect = |i: usize, want: String| assert_eq!(on_pg[i], want, "step {i}: {on_pg:#?}");
    expect(0, format!("a new: processed {a}"));
    expect(1, format!("a again: unchanged {a}"));
    expect(2, format!("b = a's text: unchanged {a}"));
    expect(3, format!("c = LightRAG's text: unchanged {theirs}"));
    expect(4, format!("path a: Some({a:?})"));
    expect(5, "path b: None".to_owned());
    expect(6, format!("path theirs: Some({theirs:?})"));
    expect(7, "ours after restart: [\"a.md\"]".to_owned());
    expect(8, format!("a after restart: unchanged {a}"));
    expect(9, format!("b after restart: unchanged {a}"));
    expect(10, format!("a changed: processed {a}"));
    expect(11, format!("b now new: processed {b}"));
    expect(12, format!("a removed: removed {a}"));
    expect(
        13,
        "a removed again: skipped: a.md was not ingested".to_owned(),
    );
    expect(14, "path a: None".to_owned());
    expect(15, "ours: [\"b.md\"]".to_owned());
}
