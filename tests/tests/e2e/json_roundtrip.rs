//! Round trips of real LightRAG directories through hrag's JSON backend, judged by LightRAG's
//! own storage classes (tests/tools/lightrag_json_check.py) and by byte comparison.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hrag_daemon::storage::json::JsonStores;
use hrag_daemon::storage::{KvNamespace, Record, VectorItem, VectorNamespace};
use serde_json::json;

use crate::support::fixtures::{check_with_lightrag, copy_dir, fixture, physical_counts};

fn obj(v: serde_json::Value) -> Record {
    v.as_object().unwrap().clone()
}

#[test]
fn untouched_fixtures_are_written_back_byte_identical_and_lightrag_reads_them() {
    // LightRAG 1.5.7's checker expects 1.5.7's full_docs fields, which 1.4.9.8 records lack, so
    // the older fixture is judged by byte identity alone.
    for (name, lightrag_check) in [
        ("lightrag-1.5.7-small", true),
        ("lightrag-1.4.9.8-small", false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        copy_dir(&fixture(name), &src);
        let out = tmp.path().join("out");
        {
            let stores = JsonStores::open(&src, None, Some(64)).unwrap();
            stores.write_to_dir(&out).unwrap();
        }
        for f in hrag_daemon::storage::json::STORE_FILES {
            let a = std::fs::read(src.join(f)).unwrap();
            let b = std::fs::read(out.join(f)).unwrap();
            assert!(
                a == b,
                "{name}/{f}: written back differently ({} vs {} bytes)",
                a.len(),
                b.len()
            );
        }
        if lightrag_check {
            let expect = tmp.path().join("COUNTS.json");
            physical_counts(&src, &expect);
            check_with_lightrag(&out, &expect);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modified_stores_reload_identically_and_lightrag_reads_the_new_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kb");
    copy_dir(&fixture("lightrag-1.5.7-small"), &dir);
    let doc = "doc-00000000000000000000000000000001";
    let chunk = format!("{doc}-chunk-000");
    let text = "Ada Lovelace wrote the first program for the Analytical Engine.";
    let vector: Vec<f32> = (0..64).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0).collect();
    let before = {
        let stores = JsonStores::open(&dir, None, Some(64)).unwrap();
        let backend = stores.into_backend().unwrap();
        let before = backend.counts().await.unwrap();
        backend
            .kv(KvNamespace::FullDocs)
            .upsert(vec![(
                doc.into(),
                obj(json!({"content": text, "file_path": "ada.md"})),
            )])
            .await
            .unwrap();
        backend
            .kv(KvNamespace::TextChunks)
            .upsert(vec![(
                chunk.clone(),
                obj(
                    json!({"tokens": 12, "content": text, "chunk_order_index": 0,
                           "full_doc_id": doc, "file_path": "ada.md", "llm_cache_list": []}),
                ),
            )])
            .await
            .unwrap();
        backend
            .vectors(VectorNamespace::Chunks)
            .upsert(vec![VectorItem {
                id: chunk.clone(),
                meta: obj(json!({"full_doc_id": doc, "content": text, "file_path": "ada.md"})),
                vector: vector.clone(),
            }])
            .await
            .unwrap();
        backend
            .graph
            .upsert_nodes(vec![(
                "Ada Lovelace".into(),
                obj(json!({"entity_id": "Ada Lovelace", "entity_type": "person",
                           "description": "A mathematician.", "source_id": chunk,
                           "file_path": "ada.md", "created_at": 1735689600, "truncate": ""})),
            )])
            .await
            .unwrap();
        backend
            .graph
            .upsert_edges(vec![(
                "Ada Lovelace".into(),
                "Analytical Engine".into(),
                obj(
                    json!({"weight": 1.0, "description": "wrote for", "keywords": "programming",
                           "source_id": chunk, "file_path": "ada.md", "created_at": 1735689600,
                           "truncate": ""}),
                ),
            )])
            .await
            .unwrap();
        backend
            .doc_status
            .upsert(vec![(
                doc.into(),
                obj(
                    json!({"status": "processed", "content_summary": text, "content_length": 64,
                           "created_at": "2025-01-01T00:00:00+00:00",
                           "updated_at": "2025-01-01T00:00:00+00:00", "file_path": "ada.md",
                           "track_id": "insert_test", "chunks_count": 1, "chunks_list": [chunk],
                           "metadata": {}}),
                ),
            )])
            .await
            .unwrap();
        let stored = backend
            .vectors(VectorNamespace::Chunks)
            .get(std::slice::from_ref(&chunk))
            .await
            .unwrap();
        let stored_bits: Vec<u32> = stored[0]
            .as_ref()
            .unwrap()
            .vector
            .iter()
            .map(|x| x.to_bits())
            .collect();
        let written = backend.flush().await.unwrap();
        assert_eq!(written, 5, "only the changed stores are written");
        assert_eq!(backend.flush().await.unwrap(), 0, "nothing left to write");
        (before, stored_bits)
    };
    let (before, stored_bits) = before;
    // hrag reads back what it wrote: same records, vectors bit-exact.
    let backend = JsonStores::open(&dir, None, Some(64))
        .unwrap()
        .into_backend()
        .unwrap();
    let after = backend.counts().await.unwrap();
    assert_eq!(after.doc_count, before.doc_count + 1);
    assert_eq!(after.chunk_count, before.chunk_count + 1);
    assert_eq!(
        after.entity_count,
        before.entity_count + 2,
        "the edge created its other endpoint"
    );
    assert_eq!(after.relation_count, before.relation_count + 1);
    let got = backend
        .vectors(VectorNamespace::Chunks)
        .get(std::slice::from_ref(&chunk))
        .await
        .unwrap();
    let got = got[0].clone().unwrap();
    let reread: Vec<u32> = got.vector.iter().map(|x| x.to_bits()).collect();
    assert_eq!(reread, stored_bits, "the matrix row reads back bit-exact");
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    for (got, raw) in got.vector.iter().zip(&vector) {
        assert!(
            (got - raw / norm).abs() < 1e-6,
            "stored rows are L2-normalised"
        );
    }
    let rec = backend
        .kv(KvNamespace::FullDocs)
        .get(doc)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec["content"], text);
    assert_eq!(rec["_id"], doc);
    assert!(rec["create_time"].is_i64() && rec["update_time"].is_i64());
    let ds = backend.doc_status.get(doc).await.unwrap().unwrap();
    assert!(
        ds.get("_id").is_none(),
        "doc status records carry only LightRAG's fields"
    );
    drop(backend);
    // LightRAG reads every record that is there, including the new ones.
    let expect = tmp.path().join("COUNTS.json");
    physical_counts(&dir, &expect);
    check_with_lightrag(&dir, &expect);
}
