//! Monitoring end to end: size warnings in the daemon's log (text and JSON), `backend status`
//! against PRODUCT §9's field list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::daemon::{TestDaemon, stdout};
use crate::support::fixtures::{copy_dir, fixture};

const CACHE: &str = "kv_store_llm_response_cache.json";
const MIB: u64 = 1024 * 1024;

fn registry(extra: &str) -> String {
    format!(
        "version: 1\ndatabases:\n  mon:\n    name: mon\n    path: {{dir}}/kb\n    backend_type: json\n    backend_config:\n      file_size_warning_mb: 1\n{extra}"
    )
}

/// The fixture's LLM cache padded with copies of its own records to more than `bytes`: still a
/// valid store, only larger.
fn grown_cache(original: &Path, bytes: u64) -> Vec<u8> {
    let mut cache: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(original).unwrap()).unwrap();
    let records: Vec<serde_json::Value> = cache.values().cloned().collect();
    let mut i = 0;
    loop {
        let text = serde_json::to_vec_pretty(&cache).unwrap();
        if text.len() as u64 > bytes {
            return text;
        }
        for r in &records {
            cache.insert(format!("default:extract:padding{i:08}"), r.clone());
            i += 1;
        }
    }
}

/// Replaces a store file atomically, as a writer would.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-test");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn warning_lines(d: &TestDaemon) -> Vec<String> {
    d.log_text()
        .lines()
        .filter(|l| l.contains("size_threshold_exceeded"))
        .map(str::to_owned)
        .collect()
}

fn wait_for_warnings(d: &TestDaemon, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lines = warning_lines(d);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} size warning(s); log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A daemon over the small fixture whose LLM cache is over 1 MiB, checking sizes twice a second.
fn daemon_over_threshold(format: &str) -> TestDaemon {
    let mut d = TestDaemon::new(&registry(""))
        .arg("--log-format")
        .arg(format)
        .env("HRAG_SIZE_CHECK_SECS", "0.3");
    let kb = d.path("kb");
    copy_dir(&fixture("lightrag-1.5.7-small"), &kb);
    std::fs::remove_file(kb.join("COUNTS.json")).unwrap();
    replace(
        &kb.join(CACHE),
        &grown_cache(&kb.join(CACHE), MIB + MIB / 4),
    );
    d.start();
    wait_until_idle(&d);
    d
}

fn wait_until_idle(d: &TestDaemon) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.state_of("mon") != "idle" {
        assert!(
            Instant::now() < deadline,
            "mon never became idle; log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One warning per crossing: none while still over, a second after falling under and growing.
fn one_warning_per_crossing(d: &TestDaemon) -> Vec<String> {
    wait_for_warnings(d, 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(warning_lines(d).len(), 1, "repeated while still over");
    let cache = d.path("kb").join(CACHE);
    let big = std::fs::read(&cache).unwrap();
    replace(
        &cache,
        &std::fs::read(fixture("lightrag-1.5.7-small").join(CACHE)).unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        warning_lines(d).len(),
        1,
        "warned while under the threshold"
    );
    replace(&cache, &big);
    let both = wait_for_warnings(d, 2);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(warning_lines(d).len(), 2, "re-armed more than once");
    both
}

#[test]
fn a_size_crossing_logs_one_warning_in_text() {
    let d = daemon_over_threshold("text");
    let lines = one_warning_per_crossing(&d);
    for l in &lines {
        assert!(l.contains("WARN"), "{l}");
        assert!(l.contains("db=mon"), "{l}");
        assert!(l.contains(&format!("file={CACHE}")), "{l}");
        assert!(l.contains("bytes="), "{l}");
        assert!(l.contains("threshold_bytes=1048576"), "{l}");
        assert!(l.contains("hragctl migrate mon --to postgres"), "{l}");
    }
}

#[test]
fn a_size_crossing_logs_one_warning_in_json() {
    let d = daemon_over_threshold("json");
    let lines = one_warning_per_crossing(&d);
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["level"], "WARN", "{l}");
        assert_eq!(v["event"], "size_threshold_exceeded", "{l}");
        assert_eq!(v["db"], "mon", "{l}");
        assert_eq!(v["file"], CACHE, "{l}");
        assert!(v["bytes"].as_u64().unwrap() > MIB, "{l}");
        assert_eq!(v["threshold_bytes"], MIB, "{l}");
        assert_eq!(v["suggestion"], "hragctl migrate mon --to postgres", "{l}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("hragctl migrate mon --to postgres"),
            "{l}"
        );
    }
}

#[test]
fn backend_status_carries_the_contract_fields_and_size_warnings() {
    let d = daemon_over_threshold("text");
    let all = d.json(&["backend", "status", "mon"]);
    let r = &all.as_array().unwrap()[0];
    assert_eq!(r["database"], "mon");
    assert_eq!(r["backend_type"], "json");
    assert_eq!(r["status"], "healthy");
    let m = &r["metrics"];
    for k in [
        "file_sizes",
        "total_size_bytes",
        "entity_count",
        "relation_count",
        "chunk_count",
        "doc_count",
        "is_connected",
        "connection_latency_ms",
    ] {
        assert!(m.get(k).is_some(), "metrics lack {k}: {m}");
    }
    assert_eq!(m["is_connected"], true);
    let sizes = m["file_sizes"].as_object().unwrap();
    assert_eq!(sizes.len(), 12, "{m}");
    assert!(sizes.contains_key("graph_chunk_entity_relation.graphml"));
    let total: u64 = sizes.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(m["total_size_bytes"].as_u64().unwrap(), total);
    assert!(m["entity_count"].as_u64().unwrap() > 0);
    assert_eq!(m["file_size_warning_bytes"], MIB);
    let warnings = r["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.contains(CACHE) && w.contains("hragctl migrate mon --to postgres"),
        "{w}"
    );

    let human = stdout(&d.ctl(&["backend", "status", "mon"]));
    assert!(human.contains("MiB"), "{human}");
    assert!(human.contains("over 1.0 MiB"), "{human}");
    assert!(
        human
            .trim_end()
            .ends_with("`hragctl migrate mon --to postgres`"),
        "{human}"
    );

    let missing = d.ctl(&["backend", "status", "nosuch"]);
    assert_eq!(missing.status.code(), Some(1));
}
