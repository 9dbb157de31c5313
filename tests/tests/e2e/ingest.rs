//! Ingestion through the real daemon (issue 4): watched folders become processed documents that
//! queries find; changes replace and deletions remove them down to the graph; pause, restarts
//! and an adopted LightRAG directory never lose or repeat work; what hrag writes opens with
//! LightRAG's own classes; ineligible files are skipped with a reason; `hragctl ingest`.
//!
//! Every test makes its own corpus in a temp dir, uses the built-in providers (no network, no
//! keys) and polls with deadlines instead of sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::support::daemon::{TestDaemon, stderr};
use crate::support::fixtures::{
    check_with_lightrag, copy_dir, expected_counts, fixture, physical_counts,
};

// ---------------------------------------------------------------------------------------------
// Corpus

const PEOPLE: [&str; 8] = [
    "Ada Varga",
    "Bruno Castell",
    "Chen Ming",
    "Dalia Osei",
    "Emil Navarro",
    "Farah Quist",
    "Goran Ilic",
    "Hana Sato",
];
const ORGS: [&str; 5] = [
    "Nordwind Labs",
    "Pellucid Systems",
    "Harbor Metrics",
    "Quillon Institute",
    "Tessera Bank",
];
const PLACES: [&str; 8] = [
    "Velmora",
    "Ostrava",
    "Lisbon",
    "Tromso",
    "Kyoto",
    "Valparaiso",
    "Zurich",
    "Accra",
];
const WORDS: [&str; 10] = [
    "quartz", "amber", "cobalt", "saffron", "ivory", "obsidian", "jade", "crimson", "silver",
    "teal",
];
const FILLER: [&str; 8] = [
    "storage", "latency", "graph", "ledger", "harbor", "signal", "orchard", "meadow",
];

/// xorshift64*: a deterministic corpus without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// The unique codeword planted in note `k`.
fn codeword(k: usize) -> String {
    format!("zx{k:04}q")
}

fn note_name(k: usize) -> String {
    format!("note-{k:04}.md")
}

/// Note `k`: two people, an organisation and a place (named entities the built-in extractor
/// finds), the codeword, and filler. The same `k` always gives the same text.
fn note(k: usize) -> String {
    let mut r = Rng::new(k as u64 + 1);
    let p = PEOPLE[r.below(PEOPLE.len())];
    let q = PEOPLE[(PEOPLE.iter().position(|x| *x == p).unwrap() + 1 + r.below(7)) % 8];
    let o = ORGS[r.below(ORGS.len())];
    let pl = PLACES[r.below(PLACES.len())];
    let w = WORDS[k % WORDS.len()];
    let filler: Vec<&str> = (0..40 + r.below(80))
        .map(|_| FILLER[r.below(FILLER.len())])
        .collect();
    format!(
        "# Field note {k}\n\n{p} met {q} at {o} in {pl} to review the quarterly archive.\n\
         The {w} beacon of {pl} is {k}. Its codeword is {}.\n\
         {q} later wrote that {o} would fund the {w} survey together with {p}.\n{}.\n",
        codeword(k),
        filler.join(" ")
    )
}

/// Writes notes `ks` into `dir`; returns their file names.
fn write_notes(dir: &Path, ks: impl IntoIterator<Item = usize>) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    ks.into_iter()
        .map(|k| {
            std::fs::write(dir.join(note_name(k)), note(k)).unwrap();
            note_name(k)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Daemon helpers

/// A registry with database `notes`: store `{dir}/kb`, watched folder `{dir}/src` (created).
fn watched_daemon(extra_entry_lines: &str) -> TestDaemon {
    let d = TestDaemon::new(&format!(
        "version: 1\ndatabases:\n  notes:\n    path: {{dir}}/kb\n    source_folder: {{dir}}/src\n    \
         auto_watch: true\n    watch_interval: 1\n{extra_entry_lines}"
    ));
    std::fs::create_dir_all(d.path("src")).unwrap();
    d
}

/// Polls `ok` every 100 ms until it holds; panics after `secs` with the daemon's log.
fn wait_for(d: &TestDaemon, what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}; log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `backend status` metrics of `db`.
fn metrics(d: &TestDaemon, db: &str) -> Value {
    d.json(&["backend", "status", db])[0]["metrics"].clone()
}

/// (docs, chunks, entities, relations) as `backend status` reports them.
fn counts(d: &TestDaemon, db: &str) -> (u64, u64, u64, u64) {
    let m = metrics(d, db);
    let n = |k: &str| m[k].as_u64().unwrap_or_else(|| panic!("{k} missing: {m}"));
    (
        n("doc_count"),
        n("chunk_count"),
        n("entity_count"),
        n("relation_count"),
    )
}

fn doc_count(d: &TestDaemon, db: &str) -> u64 {
    counts(d, db).0
}

/// `db`'s entry in `health --json`.
fn health(d: &TestDaemon, db: &str) -> Value {
    let h = d.json(&["health"]);
    h["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == db)
        .cloned()
        .unwrap_or_else(|| panic!("{db} not in health: {h}"))
}

/// Waits until `db` has worked through its catch-up: something was handled, nothing is queued
/// and it is idle, and it stays so for 1.5 s (two reconcile periods of `watch_interval: 1`).
fn wait_caught_up(d: &TestDaemon, db: &str) {
    let mut quiet_since: Option<Instant> = None;
    wait_for(d, &format!("{db} to catch up"), 40, || {
        let h = health(d, db);
        if h["queue_depth"] != 0 || h["last_ingest"].is_null() || h["state"] != "idle" {
            quiet_since = None;
            return false;
        }
        quiet_since.get_or_insert_with(Instant::now).elapsed() >= Duration::from_millis(1500)
    });
}

fn ctl_ok(d: &TestDaemon, args: &[&str]) {
    let out = d.ctl(args);
    assert!(out.status.success(), "hragctl {args:?}: {}", stderr(&out));
}

/// Runs a query and checks the answer's shape.
fn query(d: &TestDaemon, db: &str, text: &str, mode: &str, top_k: u32) -> Value {
    let k = top_k.to_string();
    let r = d.json(&["query", db, text, "--mode", mode, "--top-k", &k]);
    assert_eq!(r["db"], db, "{r}");
    assert_eq!(r["mode"], mode, "{r}");
    for list in ["chunks", "entities", "relations"] {
        for item in r[list].as_array().unwrap_or_else(|| panic!("{list}: {r}")) {
            assert!(
                item["id"].is_string() && item["score"].is_number() && item["content"].is_string(),
                "{list} item: {item}"
            );
        }
    }
    r
}

/// The contents of a query's chunks.
fn chunk_texts(r: &Value) -> Vec<String> {
    r["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["content"].as_str().unwrap().to_owned())
        .collect()
}

/// Lines of a text log with `event="NAME"`.
fn events(log: &str, event: &str) -> Vec<String> {
    let key = format!("event=\"{event}\"");
    log.lines()
        .filter(|l| l.contains(&key))
        .map(str::to_owned)
        .collect()
}

fn log_since(d: &TestDaemon, offset: usize) -> String {
    d.log_text().get(offset..).unwrap_or_default().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Store helpers (the files on disk)

/// A store file parsed (an empty object when it does not exist yet).
fn store(kb: &Path, file: &str) -> Value {
    match std::fs::read(kb.join(file)) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{file}: {e}")),
        Err(_) => Value::Object(Map::new()),
    }
}

fn doc_status(kb: &Path) -> Map<String, Value> {
    store(kb, "kv_store_doc_status.json")
        .as_object()
        .unwrap()
        .clone()
}

/// The rows of a `vdb_*.json` file.
fn vdb_rows(kb: &Path, file: &str) -> Vec<Value> {
    store(kb, file)["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn graphml(kb: &Path) -> String {
    std::fs::read_to_string(kb.join("graph_chunk_entity_relation.graphml")).unwrap_or_default()
}

/// (nodes, edges) of the GraphML file.
fn graph_counts(kb: &Path) -> (u64, u64) {
    let g = graphml(kb);
    (
        g.matches("<node ").count() as u64,
        g.matches("<edge ").count() as u64,
    )
}

/// Every store file of the working directory, by name (not hrag's `.hrag.lock`).
fn snapshot(kb: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(kb)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The doc status record (id, record) whose `file_path` is `path`.
fn record_of(status: &Map<String, Value>, path: &str) -> Option<(String, Value)> {
    status
        .iter()
        .find(|(_, r)| r["file_path"] == path)
        .map(|(id, r)| (id.clone(), r.clone()))
}

/// Waits until the store on disk holds exactly the documents `paths`, each `processed`, and
/// `backend status` reports as many; returns the doc status records.
fn wait_docs(d: &TestDaemon, db: &str, kb: &Path, paths: &[&str]) -> Map<String, Value> {
    let want: BTreeSet<&str> = paths.iter().copied().collect();
    let mut last = Map::new();
    wait_for(d, &format!("{db} to hold exactly {want:?}"), 60, || {
        last = doc_status(kb);
        let have: BTreeSet<&str> = last
            .values()
            .filter(|r| r["status"] == "processed")
            .filter_map(|r| r["file_path"].as_str())
            .collect();
        have == want && last.len() == want.len() && doc_count(d, db) == want.len() as u64
    });
    last
}

/// Asserts that each record is a processed hrag document with LightRAG's fields.
fn assert_processed_records(kb: &Path, status: &Map<String, Value>) {
    let full = store(kb, "kv_store_full_docs.json");
    let chunks = store(kb, "kv_store_text_chunks.json");
    for (id, r) in status {
        assert_eq!(r["status"], "processed", "{id}: {r}");
        assert_eq!(r["track_id"], "hrag_ingest", "{id}: {r}");
        assert!(
            r["content_hash"].as_str().is_some_and(|h| h.len() == 32),
            "{r}"
        );
        assert!(r["content_length"].as_u64().is_some_and(|n| n > 0), "{r}");
        assert!(
            r["created_at"].is_string() && r["updated_at"].is_string(),
            "{r}"
        );
        let list = r["chunks_list"].as_array().unwrap();
        assert!(!list.is_empty(), "{r}");
        assert_eq!(r["chunks_count"].as_u64(), Some(list.len() as u64), "{r}");
        assert_eq!(full[id]["file_path"], r["file_path"], "full_docs of {id}");
        for c in list {
            let c = c.as_str().unwrap();
            assert_eq!(chunks[c]["full_doc_id"], id.as_str(), "chunk {c}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Watched folder → processed documents; queries; modify; delete; pause

#[test]
fn files_dropped_into_a_watched_folder_are_processed_and_every_query_mode_finds_them() {
    let mut d = watched_daemon("    file_extensions: [\".md\"]\n");
    let (src, kb) = (d.path("src"), d.path("kb"));
    d.start();
    // Dropped while the daemon runs: found by file events, not by the start-up scan.
    let names = write_notes(&src, 0..6);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let status = wait_docs(&d, "notes", &kb, &names);
    assert_processed_records(&kb, &status);
    assert_eq!(events(&d.log_text(), "document_processed").len(), 6);

    // naive: the planted sentence, from its own file.
    for k in [1, 4] {
        let r = query(
            &d,
            "notes",
            &format!("codeword {}", codeword(k)),
            "naive",
            3,
        );
        let hit = r["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["content"].as_str().unwrap().contains(&codeword(k)))
            .unwrap_or_else(|| panic!("{} not in the top 3: {r}", codeword(k)));
        assert_eq!(hit["source"], note_name(k).as_str());
        assert!(r["entities"].as_array().unwrap().is_empty());
        assert!(r["relations"].as_array().unwrap().is_empty());
    }

    // The graph modes: entities and relations of named things in the text.
    let text = note(0);
    let org = ORGS.iter().find(|o| text.contains(*o)).unwrap();
    let person = PEOPLE.iter().find(|p| text.contains(*p)).unwrap();
    let question = format!("{person} {org}");
    for mode in ["local", "global", "hybrid", "mix"] {
        let r = query(&d, "notes", &question, mode, 10);
        let entities = r["entities"].as_array().unwrap();
        let relations = r["relations"].as_array().unwrap();
        let wants_entities = mode != "global";
        let wants_relations = mode != "local";
        assert_eq!(!entities.is_empty(), wants_entities, "{mode}: {r}");
        assert_eq!(!relations.is_empty(), wants_relations, "{mode}: {r}");
        assert!(!r["chunks"].as_array().unwrap().is_empty(), "{mode}: {r}");
        if wants_entities {
            let ids: Vec<&str> = entities.iter().map(|e| e["id"].as_str().unwrap()).collect();
            assert!(
                ids.contains(org) || ids.contains(person),
                "{mode}: neither {org} nor {person} in {ids:?}"
            );
        }
    }
}

#[test]
fn a_modified_file_replaces_its_document() {
    let mut d = watched_daemon("");
    let (src, kb) = (d.path("src"), d.path("kb"));
    let mut names = write_notes(&src, 0..3);
    // A note whose entities are its own: the old version's must leave the graph too.
    let old_text = "# Visit\n\nOrla Fenwick met Ada Varga at Nordwind Labs in Lisbon.\n\
                    The codeword of the visit is zx5100q.\n";
    std::fs::write(src.join("visit.md"), old_text).unwrap();
    names.push("visit.md".into());
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    d.start();
    let before = wait_docs(&d, "notes", &kb, &names);
    let (old_id, old_rec) = record_of(&before, "visit.md").unwrap();
    assert!(graphml(&kb).contains("<node id=\"Orla Fenwick\""));

    let new_text = "# Visit\n\nPiet Hallgrimsson met Ada Varga at Nordwind Labs in Lisbon.\n\
                    The codeword of the visit is zx5200q.\n";
    std::fs::write(src.join("visit.md"), new_text).unwrap();
    let mut after = Map::new();
    wait_for(&d, "visit.md to be processed again", 30, || {
        after = doc_status(&kb);
        record_of(&after, "visit.md").is_some_and(|(_, r)| {
            r["status"] == "processed" && r["content_hash"] != old_rec["content_hash"]
        }) && doc_count(&d, "notes") == 4
    });
    let (new_id, _) = record_of(&after, "visit.md").unwrap();
    assert_eq!(new_id, old_id, "a document's id follows its path");
    assert_eq!(
        after.len(),
        4,
        "the document was replaced, not added: {after:?}"
    );
    assert_processed_records(&kb, &after);
    assert_eq!(
        store(&kb, "kv_store_full_docs.json")[&new_id]["content"]
            .as_str()
            .map(str::trim),
        Some(new_text.trim())
    );

    // New content found, old content gone: queries and every store file.
    let r = query(&d, "notes", "codeword of the visit zx5200q", "naive", 3);
    assert!(chunk_texts(&r).iter().any(|c| c.contains("zx5200q")), "{r}");
    let all = query(&d, "notes", "codeword of the visit zx5100q", "mix", 40);
    assert!(!all.to_string().contains("zx5100q"), "{all}");
    assert!(!all.to_string().contains("Orla Fenwick"), "{all}");
    assert!(graphml(&kb).contains("<node id=\"Piet Hallgrimsson\""));
    for (file, bytes) in snapshot(&kb) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("zx5100q") && !text.contains("Orla Fenwick"),
            "{file} still holds the old version"
        );
    }
    // The other documents were not touched.
    for n in &names[..3] {
        assert_eq!(record_of(&before, n), record_of(&after, n), "{n}");
    }
}

#[test]
fn a_deleted_file_takes_its_chunks_vectors_and_sole_entities_with_it() {
    let mut d = watched_daemon("");
    let (src, kb) = (d.path("src"), d.path("kb"));
    std::fs::write(
        src.join("a.md"),
        "# Alpha\n\nAda Varga met Bruno Castell at Nordwind Labs in Lisbon.\n\
         Bruno Castell later wrote that Nordwind Labs would fund the survey.\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.md"),
        "# Beta\n\nChen Ming met Dalia Osei at Harbor Metrics in Kyoto.\n\
         Dalia Osei later wrote that Harbor Metrics would fund the survey with Ada Varga.\n",
    )
    .unwrap();
    // Quintus Zellweger, and the Harbor Metrics–Lisbon relation, exist only in gone.md; Ada
    // Varga, Lisbon and Harbor Metrics are shared with the others.
    std::fs::write(
        src.join("gone.md"),
        "# Gamma\n\nQuintus Zellweger met Ada Varga at Harbor Metrics in Lisbon.\n\
         The codeword is zx4242q.\n",
    )
    .unwrap();
    d.start();
    let before = wait_docs(&d, "notes", &kb, &["a.md", "b.md", "gone.md"]);
    let (gone_id, gone_rec) = record_of(&before, "gone.md").unwrap();
    let gone_chunks: Vec<String> = gone_rec["chunks_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let g = graphml(&kb);
    assert!(g.contains("<node id=\"Quintus Zellweger\""), "{g}");
    let has_entity = |kb: &Path, name: &str| {
        vdb_rows(kb, "vdb_entities.json")
            .iter()
            .any(|r| r["entity_name"] == name)
    };
    let has_relation = |kb: &Path, a: &str, b: &str| {
        vdb_rows(kb, "vdb_relationships.json").iter().any(|r| {
            (r["src_id"] == a && r["tgt_id"] == b) || (r["src_id"] == b && r["tgt_id"] == a)
        })
    };
    assert!(has_entity(&kb, "Quintus Zellweger"));
    assert!(has_relation(&kb, "Harbor Metrics", "Lisbon"));

    std::fs::remove_file(src.join("gone.md")).unwrap();
    let after = wait_docs(&d, "notes", &kb, &["a.md", "b.md"]);
    assert_processed_records(&kb, &after);
    assert_eq!(events(&d.log_text(), "document_removed").len(), 1);

    // Its records, chunks and chunk vectors are gone.
    assert!(
        store(&kb, "kv_store_full_docs.json")
            .get(&gone_id)
            .is_none()
    );
    let chunks = store(&kb, "kv_store_text_chunks.json");
    for c in &gone_chunks {
        assert!(chunks.get(c).is_none(), "text chunk {c} left");
    }
    assert_eq!(chunks.as_object().unwrap().len(), 2);
    let vchunks = vdb_rows(&kb, "vdb_chunks.json");
    assert_eq!(vchunks.len(), 2);
    assert!(vchunks.iter().all(|r| r["full_doc_id"] != gone_id.as_str()));
    // The entity and relations only it supported are gone from the graph and the vectors.
    let g = graphml(&kb);
    assert!(!g.contains("Quintus Zellweger"), "{g}");
    assert!(!has_entity(&kb, "Quintus Zellweger"));
    assert!(!has_relation(&kb, "Ada Varga", "Quintus Zellweger"));
    assert!(!has_relation(&kb, "Harbor Metrics", "Lisbon"));
    for f in [
        "kv_store_entity_chunks.json",
        "kv_store_relation_chunks.json",
    ] {
        let text = store(&kb, f).to_string();
        assert!(!text.contains("Quintus Zellweger"), "{f}: {text}");
    }
    // Shared entities and relations stay, with only the contributions that remain.
    for name in ["Ada Varga", "Lisbon", "Harbor Metrics"] {
        assert!(g.contains(&format!("<node id=\"{name}\"")), "{name} lost");
        assert!(has_entity(&kb, name), "{name} vector lost");
    }
    assert!(has_relation(&kb, "Ada Varga", "Lisbon"));
    assert!(has_relation(&kb, "Ada Varga", "Harbor Metrics"));
    for (file, bytes) in snapshot(&kb) {
        let text = String::from_utf8_lossy(&bytes);
        for gone in [gone_id.as_str(), "gone.md", "Quintus", "zx4242q"] {
            assert!(!text.contains(gone), "{file} still mentions {gone}");
        }
    }
    // hrag's counts are the physical ones.
    let (nodes, edges) = graph_counts(&kb);
    assert_eq!(counts(&d, "notes"), (2, 2, nodes, edges));
    assert_eq!(nodes, 8, "{g}");
    let r = query(&d, "notes", "Quintus Zellweger", "mix", 40);
    assert!(!r.to_string().contains("Quintus"), "{r}");
}

#[test]
fn a_copy_is_not_ingested_twice_but_takes_over_when_the_original_goes() {
    let mut d = watched_daemon("");
    let (src, kb) = (d.path("src"), d.path("kb"));
    write_notes(&src, [1, 2]);
    d.start();
    let (n1, n2) = (note_name(1), note_name(2));
    wait_docs(&d, "notes", &kb, &[&n1, &n2]);

    // Same content under another name: no second document (no second spend on models). Held
    // by a pause until both events are queued, so that both are seen before what follows.
    ctl_ok(&d, &["pause", "notes"]);
    std::fs::copy(src.join(&n1), src.join("copy-of-1.md")).unwrap();
    std::fs::copy(src.join(&n2), src.join("copy-of-2.md")).unwrap();
    wait_for(&d, "2 queued copies", 15, || {
        health(&d, "notes")["queue_depth"] == 2
    });
    ctl_ok(&d, &["resume", "notes"]);
    wait_for(&d, "the copies to be handled", 15, || {
        let h = health(&d, "notes");
        h["queue_depth"] == 0 && h["state"] == "idle"
    });
    assert_eq!(doc_count(&d, "notes"), 2);
    assert_eq!(doc_status(&kb).len(), 2);
    assert_eq!(events(&d.log_text(), "document_processed").len(), 2);

    // The original goes: its copy's content must stay in the store, now as the copy.
    std::fs::remove_file(src.join(&n1)).unwrap();
    wait_docs(&d, "notes", &kb, &["copy-of-1.md", &n2]);
    let r = query(
        &d,
        "notes",
        &format!("codeword {}", codeword(1)),
        "naive",
        3,
    );
    assert!(
        r["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["source"] == "copy-of-1.md"
                && c["content"].as_str().unwrap().contains(&codeword(1))),
        "{r}"
    );
    // The original changes: the copy still holds the old content, so it becomes a document.
    std::fs::write(src.join(&n2), note(2).replace(&codeword(2), "zx7272q")).unwrap();
    let status = wait_docs(&d, "notes", &kb, &["copy-of-1.md", "copy-of-2.md", &n2]);
    assert_processed_records(&kb, &status);
    let all = query(&d, "notes", "codeword", "naive", 40).to_string();
    assert!(
        all.contains(&codeword(2)) && all.contains("zx7272q"),
        "{all}"
    );
}

#[test]
fn pause_holds_new_files_back_until_resume() {
    let mut d = watched_daemon("");
    let (src, kb) = (d.path("src"), d.path("kb"));
    let names = write_notes(&src, 0..3);
    d.start();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    wait_docs(&d, "notes", &kb, &names);

    ctl_ok(&d, &["pause", "notes"]);
    assert_eq!(d.state_of("notes"), "paused");
    write_notes(&src, 3..5);
    // The watcher's events are kept while paused...
    wait_for(&d, "2 queued files", 15, || {
        health(&d, "notes")["queue_depth"] == 2
    });
    // ...and nothing is processed for a while.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(d.state_of("notes"), "paused");
        assert_eq!(doc_count(&d, "notes"), 3);
        assert_eq!(doc_status(&kb).len(), 3);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(events(&d.log_text(), "document_processed").len(), 3);

    ctl_ok(&d, &["resume", "notes"]);
    let all: Vec<String> = (0..5).map(note_name).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    wait_docs(&d, "notes", &kb, &all);
    wait_for(&d, "idle", 10, || d.state_of("notes") == "idle");
    assert_eq!(health(&d, "notes")["queue_depth"], 0);
}

// ---------------------------------------------------------------------------------------------
// 2–3. Restarts

#[test]
fn files_pending_at_shutdown_are_processed_after_a_restart_and_resume() {
    let mut d = watched_daemon("");
    let (src, kb) = (d.path("src"), d.path("kb"));
    write_notes(&src, 0..2);
    d.start();
    wait_docs(&d, "notes", &kb, &[&note_name(0), &note_name(1)]);
    ctl_ok(&d, &["pause", "notes"]);
    write_notes(&src, 2..4);
    wait_for(&d, "2 queued files", 15, || {
        health(&d, "notes")["queue_depth"] == 2
    });
    assert!(d.stop().success());
    assert_eq!(doc_status(&kb).len(), 2, "nothing processed while paused");

    let offset = d.log_text().len();
    d.start();
    assert_eq!(
        d.state_of("notes"),
        "paused",
        "the pause survives a restart"
    );
    wait_for(&d, "the pending files queued again", 15, || {
        health(&d, "notes")["queue_depth"].as_u64() >= Some(2)
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(doc_count(&d, "notes"), 2);
    assert_eq!(doc_status(&kb).len(), 2);
    ctl_ok(&d, &["resume", "notes"]);
    let all: Vec<String> = (0..4).map(note_name).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let status = wait_docs(&d, "notes", &kb, &all);
    assert_processed_records(&kb, &status);
    let second_run = log_since(&d, offset);
    let processed = events(&second_run, "document_processed");
    assert_eq!(processed.len(), 2, "only the pending files: {processed:#?}");
    assert!(
        processed
            .iter()
            .all(|l| l.contains("note-0002.md") || l.contains("note-0003.md"))
    );
}

#[test]
fn a_restart_after_processing_reprocesses_nothing() {
    let mut d = watched_daemon("");
    let (src, kb) = (d.path("src"), d.path("kb"));
    let names = write_notes(&src, 0..5);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    d.start();
    wait_docs(&d, "notes", &kb, &names);
    let counted = counts(&d, "notes");
    assert!(d.stop().success());
    let before = snapshot(&kb);

    let offset = d.log_text().len();
    d.start();
    wait_caught_up(&d, "notes");
    assert_eq!(counts(&d, "notes"), counted);
    let second_run = log_since(&d, offset);
    for ev in ["document_processed", "document_removed", "document_failed"] {
        assert!(events(&second_run, ev).is_empty(), "{ev} in:\n{second_run}");
    }
    assert!(
        doc_status(&kb)
            == serde_json::from_slice::<Map<String, Value>>(&before["kv_store_doc_status.json"])
                .unwrap()
    );
    assert!(d.stop().success());
    let after = snapshot(&kb);
    for (file, bytes) in &before {
        assert!(after.get(file) == Some(bytes), "{file} was rewritten");
    }
}

#[test]
fn changes_made_while_the_daemon_was_down_are_applied_at_the_next_start() {
    let mut d = watched_daemon("");
    let (src, kb) = (d.path("src"), d.path("kb"));
    let names = write_notes(&src, 0..4);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    d.start();
    let before = wait_docs(&d, "notes", &kb, &names);
    assert!(d.stop().success());

    std::fs::remove_file(src.join(note_name(1))).unwrap();
    write_notes(&src, [9]);
    let changed = note(2).replace(&codeword(2), "zx8882q");
    std::fs::write(src.join(note_name(2)), &changed).unwrap();

    let offset = d.log_text().len();
    d.start();
    let want = [note_name(0), note_name(2), note_name(3), note_name(9)];
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    let mut after = Map::new();
    wait_for(&d, "the changes made while down", 60, || {
        after = wait_docs(&d, "notes", &kb, &want);
        record_of(&after, &note_name(2)).unwrap().1["content_hash"]
            != record_of(&before, &note_name(2)).unwrap().1["content_hash"]
    });
    assert_processed_records(&kb, &after);
    let second_run = log_since(&d, offset);
    let removed = events(&second_run, "document_removed");
    assert!(
        removed.len() == 1 && removed[0].contains(&note_name(1)),
        "{second_run}"
    );
    let processed = events(&second_run, "document_processed");
    assert_eq!(processed.len(), 2, "note 2 and note 9 only: {processed:#?}");

    let r = query(
        &d,
        "notes",
        &format!("codeword {}", codeword(9)),
        "naive",
        3,
    );
    assert!(
        chunk_texts(&r).iter().any(|c| c.contains(&codeword(9))),
        "{r}"
    );
    let r = query(&d, "notes", "codeword zx8882q", "naive", 3);
    assert!(chunk_texts(&r).iter().any(|c| c.contains("zx8882q")), "{r}");
    let all = query(&d, "notes", "codeword", "naive", 40).to_string();
    assert!(
        !all.contains(&codeword(1)) && !all.contains(&codeword(2)),
        "{all}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Adopting a LightRAG directory

#[test]
fn adopting_a_lightrag_directory_whose_files_are_present_processes_nothing() {
    let mut d = TestDaemon::new("");
    let kb = d.path("kb");
    let src = d.path("src");
    let fx = fixture("lightrag-1.5.7-small");
    copy_dir(&fx, &kb);
    std::fs::create_dir_all(&src).unwrap();
    // Each processed document's file, as LightRAG was given it.
    let full = store(&kb, "kv_store_full_docs.json");
    let mut files = 0;
    for (id, r) in doc_status(&kb) {
        if r["status"] == "processed" {
            let doc = &full[&id];
            let name = doc["file_path"].as_str().unwrap();
            std::fs::write(src.join(name), doc["content"].as_str().unwrap()).unwrap();
            files += 1;
        }
    }
    assert_eq!(files, 12);
    let before = snapshot(&kb);

    d.start();
    let out = d.ctl(&[
        "db",
        "add",
        "small",
        "--path",
        kb.to_str().unwrap(),
        "--source",
        src.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        d.json(&["db", "show", "small"])
            .to_string()
            .contains("auto_watch")
    );
    wait_caught_up(&d, "small");

    let log = d.log_text();
    assert_eq!(events(&log, "watch_started").len(), 1, "{log}");
    for ev in [
        "document_processed",
        "document_removed",
        "document_failed",
        "document_skipped",
    ] {
        assert!(events(&log, ev).is_empty(), "{ev} in:\n{log}");
    }
    assert_eq!(counts(&d, "small"), expected_counts(&fx));
    assert!(
        std::fs::read(kb.join("kv_store_doc_status.json")).unwrap()
            == before["kv_store_doc_status.json"],
        "doc status changed"
    );
    assert!(d.stop().success());
    // Nothing was written: no document, no LLM cache entry (no model was called).
    let after = snapshot(&kb);
    for (file, bytes) in &before {
        assert!(after.get(file) == Some(bytes), "{file} changed");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. LightRAG reads what hrag wrote

#[test]
fn lightrag_opens_what_hrag_wrote_with_the_counts_hrag_reports() {
    let mut d = watched_daemon("");
    let (src, kb) = (d.path("src"), d.path("kb"));
    let names = write_notes(&src, 0..8);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    d.start();
    let before = wait_docs(&d, "notes", &kb, &names);
    // A replaced and a removed document, so the store has been through both paths.
    let (_, old3) = record_of(&before, &note_name(3)).unwrap();
    std::fs::write(
        src.join(note_name(3)),
        note(3).replace("quarterly archive", "annual archive"),
    )
    .unwrap();
    std::fs::remove_file(src.join(note_name(5))).unwrap();
    let left: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| *n != note_name(5))
        .collect();
    wait_for(&d, "the change and the removal", 60, || {
        let s = wait_docs(&d, "notes", &kb, &left);
        record_of(&s, &note_name(3)).unwrap().1["content_hash"] != old3["content_hash"]
    });
    let reported = counts(&d, "notes");
    assert!(d.stop().success());

    // The physical counts, as LightRAG's checker is told to expect them.
    let counts_dir = d.path("counts");
    std::fs::create_dir_all(&counts_dir).unwrap();
    let expect = counts_dir.join("COUNTS.json");
    physical_counts(&kb, &expect);
    let (docs, chunks, nodes, edges) = expected_counts(&counts_dir);
    assert_eq!(
        reported,
        (docs, chunks, nodes, edges),
        "backend status vs disk"
    );
    assert_eq!(docs, 7);
    assert!(chunks >= 7 && nodes > 0 && edges > 0);

    check_with_lightrag(&kb, &expect);
}

// ---------------------------------------------------------------------------------------------
// 6. Ineligible files

/// The JSON log lines with `event == "file_skipped"`, as (file name, reason, level).
fn skips(d: &TestDaemon) -> Vec<(String, String, String)> {
    d.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|j| j["event"] == "file_skipped")
        .map(|j| {
            let path = PathBuf::from(j["path"].as_str().unwrap());
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                j["reason"].as_str().unwrap().to_owned(),
                j["level"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn binary_hidden_too_large_and_unwatched_files_are_skipped_with_a_reason() {
    // Every skip reason is logged at the default level.
    let mut d = watched_daemon("").arg("--log-format").arg("json");
    let (src, kb) = (d.path("src"), d.path("kb"));
    let text = "Ada Varga met Bruno Castell at Nordwind Labs in Lisbon.\n";
    let write = |name: &str, bytes: &[u8]| {
        let p = src.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    let big = text.repeat(11 * 1024 * 1024 / text.len() + 1);
    // Present at start (the catch-up scan)...
    write("good.md", text.as_bytes());
    write(
        "nul.md",
        b"Ada Varga met\0Bruno Castell at Nordwind Labs.\n",
    );
    write("latin1.md", b"Caf\xe9 au lait in Lisbon with Ada Varga.\n");
    write(".hidden.md", text.as_bytes());
    write(".cache/inside.md", text.as_bytes());
    write("big.md", big.as_bytes());
    write("photo.png", text.as_bytes());
    d.start();
    // ...and dropped while running (file events).
    write("late.md", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    write("report.pdf", text.as_bytes());
    write(".late-hidden.md", text.as_bytes());
    write(
        "good2.md",
        b"Chen Ming met Dalia Osei at Harbor Metrics in Kyoto.\n",
    );
    wait_docs(&d, "notes", &kb, &["good.md", "good2.md"]);

    let expected = [
        ("nul.md", "binary", "INFO"),
        ("latin1.md", "binary", "INFO"),
        ("big.md", "too_large", "INFO"),
        ("late.md", "binary", "INFO"),
        (".hidden.md", "hidden", "INFO"),
        (".cache", "hidden", "INFO"),
        (".late-hidden.md", "hidden", "INFO"),
        ("photo.png", "extension_not_watched", "INFO"),
        ("report.pdf", "extension_not_watched", "INFO"),
    ];
    wait_for(&d, "a file_skipped line for each file", 20, || {
        let got = skips(&d);
        expected
            .iter()
            .all(|(n, r, l)| got.iter().any(|(gn, gr, gl)| gn == n && gr == r && gl == l))
    });
    // Several reconcile scans later: still skipped, and each logged once, not at every scan.
    std::thread::sleep(Duration::from_millis(2500));
    let got = skips(&d);
    for (name, _, _) in &expected {
        let n = got.iter().filter(|(g, _, _)| g == name).count();
        assert_eq!(n, 1, "{name} logged {n} times: {got:?}");
    }
    let status = doc_status(&kb);
    assert_eq!(status.len(), 2, "{status:?}");
    assert_eq!(doc_count(&d, "notes"), 2);
    let log = d.log_text();
    let processed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"document_processed\""))
        .collect();
    assert_eq!(processed.len(), 2, "{processed:#?}");
}

// ---------------------------------------------------------------------------------------------
// 7. hragctl ingest

#[test]
fn hragctl_ingest_enqueues_files_outside_the_folder_and_whole_folders() {
    let mut d = TestDaemon::new(
        "version: 1\ndatabases:\n  notes:\n    path: {dir}/kb\n    source_folder: {dir}/src\n    \
         auto_watch: true\n    watch_interval: 1\n  manual:\n    path: {dir}/manual-kb\n",
    );
    let (src, kb, manual_kb) = (d.path("src"), d.path("kb"), d.path("manual-kb"));
    write_notes(&src, [0]);
    let elsewhere = d.path("elsewhere");
    write_notes(&elsewhere, [7]);
    let outside = elsewhere.join(note_name(7));
    // A folder for the database that watches nothing: two notes, a subfolder, and files the
    // database's filters leave out.
    let folder = d.path("folder");
    write_notes(&folder, [1, 2]);
    write_notes(&folder.join("sub"), [3]);
    std::fs::write(folder.join("diagram.png"), "not a note").unwrap();
    std::fs::write(folder.join("blob.md"), b"\0\x01\x02binary").unwrap();
    // Files named on the command line are judged by content too.
    let binary = elsewhere.join("raw.md");
    std::fs::write(&binary, b"Ada Varga\0\0\0\x01\x02").unwrap();
    let huge = elsewhere.join("huge.md");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(11 * 1024 * 1024)
        .unwrap();
    d.start();
    wait_docs(&d, "notes", &kb, &[&note_name(0)]);

    let r = d.json(&["ingest", "notes", outside.to_str().unwrap()]);
    assert_eq!(r["db"], "notes");
    assert_eq!(r["files"], 1, "{r}");
    let outside_path = outside.to_str().unwrap().to_owned();
    let status = wait_docs(&d, "notes", &kb, &[&note_name(0), &outside_path]);
    assert_processed_records(&kb, &status);
    let q = query(
        &d,
        "notes",
        &format!("codeword {}", codeword(7)),
        "naive",
        3,
    );
    assert!(
        chunk_texts(&q).iter().any(|c| c.contains(&codeword(7))),
        "{q}"
    );

    let r = d.json(&[
        "ingest",
        "manual",
        folder.to_str().unwrap(),
        binary.to_str().unwrap(),
        huge.to_str().unwrap(),
    ]);
    assert_eq!(r["files"], 3, "{r}");
    let skipped = r["skipped"].to_string();
    for (name, why) in [
        ("diagram.png", "extension"),
        ("blob.md", "binary"),
        ("raw.md", "binary"),
        ("huge.md", "too large"),
    ] {
        assert!(
            skipped.contains(name) && skipped.contains(why),
            "{name}: {r}"
        );
    }
    let in_folder: Vec<String> = [
        folder.join(note_name(1)),
        folder.join(note_name(2)),
        folder.join("sub").join(note_name(3)),
    ]
    .iter()
    .map(|p| p.to_str().unwrap().to_owned())
    .collect();
    let in_folder: Vec<&str> = in_folder.iter().map(String::as_str).collect();
    let status = wait_docs(&d, "manual", &manual_kb, &in_folder);
    assert_processed_records(&manual_kb, &status);
    let q = query(
        &d,
        "manual",
        &format!("codeword {}", codeword(3)),
        "naive",
        3,
    );
    assert!(
        chunk_texts(&q).iter().any(|c| c.contains(&codeword(3))),
        "{q}"
    );

    // A file ingested from outside the watched folder is not "deleted" by the next start's
    // catch-up scan of that folder.
    assert!(d.stop().success());
    let offset = d.log_text().len();
    d.start();
    wait_caught_up(&d, "notes");
    let second_run = log_since(&d, offset);
    assert!(
        events(&second_run, "document_removed").is_empty(),
        "{second_run}"
    );
    wait_docs(&d, "notes", &kb, &[&note_name(0), &outside_path]);
    wait_docs(&d, "manual", &manual_kb, &in_folder);
}
