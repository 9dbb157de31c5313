//! Monitoring end to end: size warnings in the daemon's log (text and JSON), `backend status`
//! against PRODUCT §9's field list, and `metrics` read by a Prometheus text-format parser.
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

#[test]
fn metrics_parse_as_prometheus_text() {
    let d = daemon_over_threshold("text");
    let out = d.ctl(&["metrics"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let names: std::collections::BTreeSet<&str> =
        scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for n in [
        "hrag_process_resident_memory_bytes",
        "hrag_documents",
        "hrag_queue_depth",
        "hrag_store_size_bytes",
        "hrag_store_file_size_warning_bytes",
        "hrag_backend_up",
        "hrag_ingest_documents_total",
    ] {
        assert!(names.contains(n), "{n} missing from:\n{text}");
    }
    let cache = scrape
        .samples
        .iter()
        .find(|s| s.metric == "hrag_store_size_bytes" && s.labels.get("file") == Some(CACHE))
        .expect("the cache's size");
    assert_eq!(cache.labels.get("db"), Some("mon"));
    match cache.value {
        prometheus_parse::Value::Gauge(v) => assert!(v > MIB as f64),
        ref other => panic!("not a gauge: {other:?}"),
    }
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "hrag_documents" && s.labels.get("status") == Some("processed")),
        "{text}"
    );
    assert!(scrape.docs.contains_key("hrag_store_size_bytes"));
}

#[test]
fn metrics_listener_serves_loopback_only() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut d = TestDaemon::new(&registry(""))
        .arg("--metrics-addr")
        .arg(&format!("127.0.0.1:{port}"));
    copy_dir(&fixture("lightrag-1.5.7-small"), &d.path("kb"));
    d.start();
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("text/plain; version=0.0.4"), "{answer}");
    assert!(answer.contains("\r\n\r\n# HELP hrag_"), "{answer}");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /nope HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    let refused = TestDaemon::new(&registry(""))
        .arg("--metrics-addr")
        .arg("0.0.0.0:9464")
        .run_to_exit(Duration::from_secs(10));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("only loopback addresses"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn a_file_grown_by_ingest_warns_after_the_flush() {
    // 0.05 MiB: the fixture's full_docs (19 KiB) is under it until a 60 KiB document arrives.
    // The timer checks only at start, so the second warning can come from the flush alone.
    let mut d = TestDaemon::new(
        &registry("").replace("file_size_warning_mb: 1", "file_size_warning_mb: 0.05"),
    )
    .env("HRAG_SIZE_CHECK_SECS", "3600");
    copy_dir(&fixture("lightrag-1.5.7-small"), &d.path("kb"));
    d.start();
    wait_until_idle(&d);
    let full_docs = "file=kv_store_full_docs.json";
    let before = wait_for_warnings(&d, 1);
    assert!(!before.iter().any(|l| l.contains(full_docs)), "{before:?}");
    let doc = d.path("big.md");
    let para =
        "Ada Lovelace wrote the first program for the Analytical Engine of Charles Babbage. ";
    std::fs::write(&doc, para.repeat(60 * 1024 / para.len())).unwrap();
    d.json(&["ingest", "mon", doc.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !warning_lines(&d).iter().any(|l| l.contains(full_docs)) {
        assert!(
            Instant::now() < deadline,
            "no warning for the grown file; log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let n = warning_lines(&d)
        .iter()
        .filter(|l| l.contains(full_docs))
        .count();
    assert_eq!(n, 1);
}

/// A loopback OpenAI-compatible `/v1/embeddings` that answers after `delay_ms` (changeable while
/// it serves): the slow provider that makes ingestion slow down for real.
fn slow_embeddings_server(delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>) -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let delay = delay_ms.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let data: Vec<serde_json::Value> = request["input"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .map(|(i, text)| {
                        let seed: u64 = text.as_str().unwrap_or("").bytes().map(u64::from).sum();
                        let v: Vec<f64> = (0..8u64)
                            .map(|k| ((seed + 31 * k) % 97 + 1) as f64)
                            .collect();
                        serde_json::json!({"object": "embedding", "index": i, "embedding": v})
                    })
                    .collect();
                std::thread::sleep(Duration::from_millis(
                    delay.load(std::sync::atomic::Ordering::SeqCst),
                ));
                let answer = serde_json::json!({"object": "list", "data": data}).to_string();
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            });
        }
    });
    port
}

#[test]
fn a_slowed_provider_logs_ingest_rate_degraded() {
    let delay = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let port = slow_embeddings_server(delay.clone());
    let mut d = TestDaemon::new(&format!(
        "version: 1\ndatabases:\n  slow:\n    name: slow\n    path: {{dir}}/kb\n    \
         source_folder: {{dir}}/src\n    auto_watch: true\n    file_extensions: ['.md']\n    \
         backend_type: json\n    model_config:\n      embedding_model: openai/test-embed\n      \
         embedding_dim: 8\n      embedding_api_base: http://127.0.0.1:{port}/v1\n"
    ))
    .env("OPENAI_API_KEY", "sk-test-not-a-secret")
    .arg("--log-format")
    .arg("json");
    std::fs::create_dir_all(d.path("src")).unwrap();
    d.start();
    // One document per ingest cycle: five fast ones make the baseline, then the provider
    // answers slowly and three slow cycles drag the recent mean below half of it.
    for i in 0..10 {
        if i == 6 {
            delay.store(400, std::sync::atomic::Ordering::SeqCst);
        }
        std::fs::write(
            d.path(&format!("src/note-{i}.md")),
            format!("Captain Ilse Varga sailed the Meridian {i} times past Cape Orrin.\n"),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = d.json(&["backend", "status", "slow"]);
            let status = if status.is_array() {
                status[0].clone()
            } else {
                status
            };
            if status["metrics"]["doc_count"].as_u64() == Some(i + 1) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "document {i} not processed:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let warnings: Vec<serde_json::Value> = d
        .log_text()
        .lines()
        .filter(|l| l.contains("ingest_rate_degraded"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(warnings.len(), 1, "{}", d.log_text());
    let w = &warnings[0];
    assert_eq!(w["db"], "slow");
    let (rate, baseline) = (w["rate"].as_f64().unwrap(), w["baseline"].as_f64().unwrap());
    assert!(rate < baseline / 2.0, "{w}");
    assert!(stdout(&d.ctl(&["metrics"])).contains("hrag_"));
}
