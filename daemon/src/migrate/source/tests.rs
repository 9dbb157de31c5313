#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::graph::{GraphEvent, GraphSource};
use super::kv::KvSource;
use super::vdb::VdbSource;
use super::{SourceDir, StoreKind};
use crate::storage::json::{JsonStores, STORE_FILES};
use crate::storage::{
    DocStatusStore, GraphStore, KvNamespace, KvStore, Record, StorageError, VectorNamespace,
    VectorStore,
};

const FIXTURES: [&str; 2] = ["lightrag-1.5.7-small", "lightrag-1.4.9.8-small"];

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

/// A copy of a fixture's store files, so that opening the loader (which takes a lock file)
/// never writes into the repository.
fn fixture_copy(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in STORE_FILES {
        let src = fixture_dir(name).join(f);
        if src.exists() {
            std::fs::copy(&src, tmp.path().join(f)).unwrap();
        }
    }
    tmp
}

fn err_text(e: StorageError) -> String {
    e.to_string()
}

#[tokio::test]
async fn kv_streams_match_the_loader() {
    for fixture in FIXTURES {
        let tmp = fixture_copy(fixture);
        let stores = JsonStores::open(tmp.path(), None, None).unwrap();
        for (store, ns) in stores.kv.iter().zip(KvNamespace::ALL) {
            let mut n = 0;
            for e in KvSource::open(&tmp.path().join(ns.file_name())).unwrap() {
                let e = e.unwrap();
                assert_eq!(e.ordinal, n);
                let loaded = store.get(&e.key).await.unwrap().expect("key loaded");
                let streamed: Record = serde_json::from_str(e.value.get()).unwrap();
                assert_eq!(streamed, loaded, "{fixture} {ns:?} {}", e.key);
                n += 1;
            }
            assert_eq!(n, store.count().await.unwrap(), "{fixture} {ns:?}");
        }
        let mut n = 0;
        for e in KvSource::open(&tmp.path().join(crate::storage::DOC_STATUS_FILE)).unwrap() {
            let e = e.unwrap();
            assert!(stores.doc_status.get(&e.key).await.unwrap().is_some());
            n += 1;
        }
        assert!(n > 0);
        assert_eq!(n, stores.doc_status.count().await.unwrap(), "{fixture}");
    }
}

#[test]
fn kv_resumes_after_an_ordinal() {
    let path = fixture_dir(FIXTURES[0]).join("kv_store_text_chunks.json");
    let all: Vec<_> = KvSource::open(&path)
        .unwrap()
        .map(|e| e.unwrap().key)
        .collect();
    assert!(all.len() > 3);
    let rest: Vec<_> = KvSource::open_from(&path, 3)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.ordinal, e.key)
        })
        .collect();
    assert_eq!(rest.first().map(|r| r.0), Some(3));
    assert_eq!(
        rest.into_iter().map(|r| r.1).collect::<Vec<_>>(),
        all[3..].to_vec()
    );
    assert!(
        KvSource::open_from(&path, all.len() as u64)
            .unwrap()
            .next()
            .is_none()
    );
    let e = KvSource::open_from(&path, all.len() as u64 + 1)
        .err()
        .unwrap();
    assert!(err_text(e).contains("kv_store_text_chunks.json"));
}

#[tokio::test]
async fn vdb_streams_match_the_loader_bit_for_bit() {
    for fixture in FIXTURES {
        let tmp = fixture_copy(fixture);
        let stores = JsonStores::open(tmp.path(), None, None).unwrap();
        for (store, ns) in stores.vectors.iter().zip(VectorNamespace::ALL) {
            let src = VdbSource::open(&tmp.path().join(ns.file_name())).unwrap();
            assert_eq!(src.embedding_dim(), store.dim());
            assert_eq!(src.row_count(), Some(store.count().await.unwrap()));
            let mut n = 0;
            for row in src.rows().unwrap() {
                let row = row.unwrap();
                assert_eq!(row.ordinal, n);
                let item = store.get(&[row.id.to_string()]).await.unwrap();
                let item = item[0].as_ref().expect("row loaded");
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&row.vector),
                    bits(&item.vector),
                    "{fixture} {}",
                    row.id
                );
                let mut meta: Record = serde_json::from_str(row.row.get()).unwrap();
                meta.shift_remove("__id__");
                meta.shift_remove("vector");
                assert_eq!(meta, item.meta);
                n += 1;
            }
            assert_eq!(Some(n), src.row_count(), "{fixture} {ns:?}");
            assert!(n > 0);
        }
    }
}

/// A nano-vectordb file of `rows` rows of dimension `dim`, members in the given order.
fn vdb_text(dim: usize, rows: usize, matrix_first: bool) -> (String, Vec<f32>) {
    let values: Vec<f32> = (0..dim * rows).map(|i| i as f32 * 0.25 - 3.0).collect();
    let bytes: Vec<u8> = values.iter().flat_map(|f| f.to_le_bytes()).collect();
    let matrix = format!("\"matrix\": \"{}\"", STANDARD.encode(&bytes));
    let data = format!(
        "\"data\": [{}]",
        (0..rows)
            .map(|i| format!("{{\"__id__\": \"r{i}\", \"__created_at__\": {i}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let body = if matrix_first {
        format!("{{\"embedding_dim\": {dim}, {matrix}, \"x\": [1, 2], {data}}}")
    } else {
        format!("{{\"embedding_dim\": {dim}, {data}, {matrix}}}")
    };
    (body, values)
}

#[test]
fn vdb_members_in_either_order_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    for matrix_first in [false, true] {
        let (text, values) = vdb_text(3, 5, matrix_first);
        let path = tmp.path().join("vdb_chunks.json");
        std::fs::write(&path, text).unwrap();
        let src = VdbSource::open(&path).unwrap();
        assert_eq!((src.embedding_dim(), src.row_count()), (3, Some(5)));
        let rows: Vec<_> = src.rows().unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 5);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(&*r.id, format!("r{i}"));
            assert_eq!(r.vector, values[i * 3..i * 3 + 3].to_vec());
        }
        let rest: Vec<_> = src.rows_from(2).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(rest.len(), 3);
        assert_eq!((rest[0].ordinal, &*rest[0].id), (2, "r2"));
        assert_eq!(rest[0].vector, rows[2].vector);
    }
}

/// Reading only the header leaves the row count unknown; the stream still checks the matrix
/// against the rows (too short or too long) and its byte count ends at the file's size.
#[test]
fn vdb_header_only_open_defers_the_size_checks_to_the_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vdb_chunks.json");
    let (normal, _) = vdb_text(3, 5, false);
    let (matrix_first, _) = vdb_text(3, 5, true);
    // A file whose `embedding_dim` is not the first member is surveyed as before.
    let dim_last = format!(
        "{}, \"embedding_dim\": 3}}",
        normal
            .replacen("\"embedding_dim\": 3, ", "", 1)
            .trim_end_matches('}')
    );
    for (text, rows) in [(&normal, None), (&matrix_first, None), (&dim_last, Some(5))] {
        std::fs::write(&path, text).unwrap();
        let src = VdbSource::open_header(&path).unwrap();
        assert_eq!((src.embedding_dim(), src.row_count()), (3, rows), "{text}");
        let mut it = src.rows().unwrap();
        let mut read = 0;
        while let Some(r) = it.next() {
            r.unwrap();
            read = read.max(it.bytes_read());
        }
        assert!(
            read > 0 && read <= text.len() as u64,
            "{read} of {}",
            text.len()
        );
    }
    let ends_with_error = |text: String| {
        std::fs::write(&path, text).unwrap();
        let src = VdbSource::open_header(&path).unwrap();
        assert_eq!(src.row_count(), None);
        let errs: Vec<_> = src.rows().unwrap().filter_map(|r| r.err()).collect();
        assert_eq!(errs.len(), 1, "one error, then the stream ends");
        err_text(errs.into_iter().next().unwrap())
    };
    // Two rows of dimension 2 with 3 values, then with 5.
    for (bytes, says) in [(12, "ends before this row"), (20, "more than the 2 rows")] {
        let m = STANDARD.encode(vec![0u8; bytes]);
        let msg = ends_with_error(format!(
            "{{\"embedding_dim\": 2, \"data\": [{{\"__id__\": \"a\"}}, {{\"__id__\": \"b\"}}], \"matrix\": \"{m}\"}}"
        ));
        assert!(
            msg.contains("vdb_chunks.json") && msg.contains(says),
            "{msg}"
        );
    }
}

/// The matrix is never held: the decoded floats in hand stay a small fraction of the file's
/// (bounded by one read buffer's worth of base64), however large the file.
#[test]
fn vdb_memory_stays_bounded() {
    let (dim, rows) = (256, 8192);
    let (text, values) = vdb_text(dim, rows, false);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vdb_chunks.json");
    std::fs::write(&path, text).unwrap();
    let src = VdbSource::open(&path).unwrap();
    let mut it = src.rows().unwrap();
    let (mut n, mut held) = (0, 0);
    while let Some(row) = it.next() {
        let row = row.unwrap();
        if n % 1000 == 0 {
            assert_eq!(row.vector, values[n * dim..(n + 1) * dim].to_vec());
        }
        held = held.max(it.held_values());
        n += 1;
    }
    assert_eq!(n, rows);
    assert!(
        held > 0 && held < values.len() / 4,
        "{held} of {}",
        values.len()
    );
}

#[test]
fn vdb_corrupt_inputs_name_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vdb_entities.json");
    let open_err = |text: &str| {
        std::fs::write(&path, text).unwrap();
        err_text(VdbSource::open(&path).expect_err("an error"))
    };
    let iter_err = |text: &str| {
        std::fs::write(&path, text).unwrap();
        let src = VdbSource::open(&path).unwrap();
        let errs: Vec<_> = src.rows().unwrap().filter_map(|r| r.err()).collect();
        assert_eq!(errs.len(), 1, "one error, then the stream ends");
        errs.into_iter().next().map(err_text).unwrap()
    };
    let (good, _) = vdb_text(2, 3, false);

    // matrix length ≠ rows × dim: 2 rows of dimension 2 but 3 values.
    let three = STANDARD.encode([0u8; 12]);
    let msg = open_err(&format!(
        "{{\"embedding_dim\": 2, \"data\": [{{\"__id__\": \"a\"}}, {{\"__id__\": \"b\"}}], \"matrix\": \"{three}\"}}"
    ));
    assert!(
        msg.contains("vdb_entities.json") && msg.contains("byte "),
        "{msg}"
    );
    assert!(msg.contains("rows × embedding_dim 2 = 4"), "{msg}");

    // Bad base64: a character outside the alphabet, found at the row that needs it.
    let at = good.find("\"matrix\": \"").unwrap() + 11 + 5;
    let mut bad = good.clone().into_bytes();
    bad[at] = b'!';
    let msg = iter_err(std::str::from_utf8(&bad).unwrap());
    assert!(msg.contains("vdb_entities.json"), "{msg}");
    assert!(msg.contains(&format!("byte {at}")), "{msg}");
    assert!(msg.contains("invalid base64"), "{msg}");

    // Truncated file.
    let msg = open_err(&good[..good.len() - 10]);
    assert!(
        msg.contains("vdb_entities.json") && msg.contains("byte "),
        "{msg}"
    );
    assert!(msg.contains("unexpected end of file"), "{msg}");

    // A row that is not an object, and missing members.
    let msg = iter_err(&good.replace("{\"__id__\": \"r1\", \"__created_at__\": 1}", "7"));
    assert!(msg.contains("row 1 of \"data\" at byte"), "{msg}");
    let msg = open_err("{\"embedding_dim\": 2, \"data\": []}");
    assert!(msg.contains("no \"matrix\""), "{msg}");

    // Missing file: an empty store.
    let src = VdbSource::open(&tmp.path().join("absent.json")).unwrap();
    assert_eq!(src.row_count(), Some(0));
    assert!(src.rows().unwrap().next().is_none());
}

#[test]
fn kv_corrupt_and_missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        KvSource::open(&tmp.path().join("absent.json"))
            .unwrap()
            .next()
            .is_none()
    );
    let path = tmp.path().join("kv_store_full_docs.json");
    std::fs::write(&path, "{\n  \"a\": {\"x\": 1},\n  \"b\": {\"x\": 2").unwrap();
    let items: Vec<_> = KvSource::open(&path).unwrap().collect();
    assert_eq!(items.len(), 2);
    assert_eq!(&*items[0].as_ref().unwrap().key, "a");
    let msg = err_text(items.into_iter().nth(1).unwrap().err().unwrap());
    assert!(
        msg.contains("kv_store_full_docs.json") && msg.contains("byte "),
        "{msg}"
    );
    std::fs::write(&path, "{\"a\": [1]}").unwrap();
    let msg = err_text(
        KvSource::open(&path)
            .unwrap()
            .next()
            .unwrap()
            .err()
            .unwrap(),
    );
    assert!(
        msg.contains("byte 6") && msg.contains("not a JSON object"),
        "{msg}"
    );
}

#[tokio::test]
async fn graph_streams_match_the_loader() {
    for fixture in FIXTURES {
        let tmp = fixture_copy(fixture);
        let stores = JsonStores::open(tmp.path(), None, None).unwrap();
        let g = &stores.graph;
        let (mut nodes, mut edges) = (0u64, 0u64);
        for ev in GraphSource::open(&tmp.path().join(crate::storage::GRAPH_FILE)).unwrap() {
            match ev.unwrap() {
                GraphEvent::Node(n) => {
                    assert_eq!(n.ordinal, nodes);
                    assert_eq!(edges, 0, "LightRAG lists nodes first");
                    let loaded = g.get_node(&n.id).await.unwrap().expect("node loaded");
                    assert_eq!(n.properties, loaded, "{fixture} node {}", n.id);
                    nodes += 1;
                }
                GraphEvent::Edge(e) => {
                    assert_eq!(e.ordinal, edges);
                    let loaded = g.get_edge(&e.source, &e.target).await.unwrap();
                    let loaded = loaded.expect("edge loaded");
                    assert_eq!(
                        e.properties, loaded,
                        "{fixture} edge {}-{}",
                        e.source, e.target
                    );
                    edges += 1;
                }
            }
        }
        assert_eq!(nodes, g.node_count().await.unwrap(), "{fixture}");
        assert_eq!(edges, g.edge_count().await.unwrap(), "{fixture}");
        assert!(nodes > 0 && edges > 0);
    }
}

#[test]
fn graph_types_defaults_and_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        GraphSource::open(&tmp.path().join("absent.graphml"))
            .unwrap()
            .next()
            .is_none()
    );
    let path = tmp.path().join("g.graphml");
    std::fs::write(
        &path,
        r#"<?xml version='1.0' encoding='utf-8'?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="d0" for="node" attr.name="created_at" attr.type="long" />
  <key id="d1" for="node" attr.name="entity_type" attr.type="string"><default>UNKNOWN</default></key>
  <key id="d2" for="edge" attr.name="weight" attr.type="double" />
  <graph edgedefault="undirected">
    <node id="A &amp; B"><data key="d0">17</data></node>
    <node id="C"><data key="d1"><![CDATA[x<y]]></data><data key="d0"></data></node>
    <edge source="A &amp; B" target="C" id="e1"><data key="d2">2.5</data></edge>
  </graph>
</graphml>
"#,
    )
    .unwrap();
    let evs: Vec<_> = GraphSource::open(&path)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    let json = |v: Value| match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    assert_eq!(evs.len(), 3);
    let GraphEvent::Node(a) = &evs[0] else {
        panic!()
    };
    assert_eq!(a.id, "A & B");
    assert_eq!(
        a.properties,
        json(serde_json::json!({"created_at": 17, "entity_type": "UNKNOWN"}))
    );
    let GraphEvent::Node(c) = &evs[1] else {
        panic!()
    };
    assert_eq!(
        c.properties,
        json(serde_json::json!({"entity_type": "x<y", "created_at": ""}))
    );
    let GraphEvent::Edge(e) = &evs[2] else {
        panic!()
    };
    assert_eq!((e.source.as_str(), e.target.as_str()), ("A & B", "C"));
    assert_eq!(
        e.properties,
        json(serde_json::json!({"weight": 2.5, "id": "e1"}))
    );
}

#[test]
fn graph_corrupt_inputs_name_file_and_offset() {
    let text =
        std::fs::read_to_string(fixture_dir(FIXTURES[1]).join(crate::storage::GRAPH_FILE)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("graph_chunk_entity_relation.graphml");
    let last_err = |doc: &str| {
        std::fs::write(&path, doc).unwrap();
        let res: Result<Vec<_>, _> = GraphSource::open(&path).and_then(|s| s.collect());
        err_text(res.expect_err("an error"))
    };
    // Truncated in the middle of the edges.
    let cut = text.find("<edge ").unwrap() + 40;
    let msg = last_err(&text[..cut]);
    assert!(
        msg.contains("graph_chunk_entity_relation.graphml: byte "),
        "{msg}"
    );
    // Broken XML: a mismatched end tag.
    let broken = text.replacen("</node>", "</nod>", 1);
    let msg = last_err(&broken);
    assert!(
        msg.contains("graph_chunk_entity_relation.graphml: byte "),
        "{msg}"
    );
    // A value its key's type cannot hold.
    let doc = r#"<graphml><key id="d0" for="node" attr.name="n" attr.type="long"/><graph><node id="a"><data key="d0">x</data></node></graph></graphml>"#;
    let msg = last_err(doc);
    assert!(msg.contains("byte ") && msg.contains("node \"a\""), "{msg}");
    let msg = last_err("");
    assert!(msg.contains("byte 0"), "{msg}");
}

#[test]
fn source_dir_lists_stores_and_fingerprints() {
    let tmp = fixture_copy(FIXTURES[1]);
    std::fs::remove_file(tmp.path().join("kv_store_full_entities.json")).unwrap();
    let dir = SourceDir::open(tmp.path(), None).unwrap();
    assert_eq!(dir.files().len(), 12);
    let ent = dir
        .files()
        .iter()
        .find(|f| f.kind == StoreKind::Kv(KvNamespace::FullEntities))
        .unwrap();
    assert_eq!(ent.size, None);
    let graph = dir
        .files()
        .iter()
        .find(|f| f.kind == StoreKind::Graph)
        .unwrap();
    assert_eq!(
        graph.size,
        Some(std::fs::metadata(&graph.path).unwrap().len())
    );
    assert!(dir.total_size() > 0);

    let fp = dir.fingerprint().unwrap();
    assert_eq!(fp, dir.fingerprint().unwrap());
    // Same size and mtime, different bytes at the end: the tail hash tells.
    let p = tmp.path().join("kv_store_text_chunks.json");
    let meta = std::fs::metadata(&p).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    let last = bytes.len() - 1;
    bytes[last] = b' ';
    std::fs::write(&p, &bytes).unwrap();
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(meta.modified().unwrap()).unwrap();
    let fp2 = dir.fingerprint().unwrap();
    assert_ne!(fp, fp2);
    let json = serde_json::to_string(&fp2).unwrap();
    assert_eq!(
        serde_json::from_str::<super::Fingerprint>(&json).unwrap(),
        fp2
    );

    // A workspace subfolder; a missing directory is an error naming it.
    let ws = SourceDir::open(
        tmp.path().parent().unwrap(),
        tmp.path().file_name().unwrap().to_str(),
    )
    .unwrap();
    assert_eq!(ws.dir(), tmp.path());
    let msg = err_text(
        SourceDir::open(&tmp.path().join("nope"), None)
            .err()
            .unwrap(),
    );
    assert!(msg.contains("nope"), "{msg}");
}
