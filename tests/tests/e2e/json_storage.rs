//! LightRAG JSON working directories through the real daemon: adoption with exact counts,
//! workspaces, corrupt stores isolated, one writer per directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use crate::support::daemon::{TestDaemon, stderr};
use crate::support::fixtures::{copy_dir, expected_counts, fixture};

fn counts(d: &TestDaemon, db: &str) -> (u64, u64, u64, u64) {
    let r = d.json(&["backend", "status", db]);
    let m = &r[0]["metrics"];
    let n = |k: &str| {
        m[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {r}"))
    };
    (
        n("doc_count"),
        n("chunk_count"),
        n("entity_count"),
        n("relation_count"),
    )
}

fn add(d: &TestDaemon, args: &[&str]) {
    let mut all = vec!["db", "add"];
    all.extend_from_slice(args);
    let out = d.ctl(&all);
    assert!(out.status.success(), "{all:?}: {}", stderr(&out));
}

#[test]
fn adopted_fixtures_report_their_exact_counts() {
    let mut d = TestDaemon::new("");
    let small = d.path("small");
    copy_dir(&fixture("lightrag-1.5.7-small"), &small);
    let ws = d.path("ws");
    copy_dir(&fixture("lightrag-1.4.9.8-small"), &ws.join("team_a"));
    d.start();
    add(&d, &["small", "--path", small.to_str().unwrap()]);
    add(
        &d,
        &[
            "teama",
            "--path",
            ws.to_str().unwrap(),
            "--workspace",
            "team_a",
        ],
    );
    assert_eq!(
        counts(&d, "small"),
        expected_counts(&fixture("lightrag-1.5.7-small"))
    );
    assert_eq!(
        counts(&d, "teama"),
        expected_counts(&fixture("lightrag-1.4.9.8-small"))
    );

    let r = d.json(&["backend", "status", "small"]);
    let r = &r[0];
    assert_eq!(r["database"], "small");
    assert_eq!(r["backend_type"], "json");
    assert_eq!(r["status"], "healthy");
    assert_eq!(r["metrics"]["is_connected"], true);
    let sizes = r["metrics"]["file_sizes"].as_object().unwrap();
    assert_eq!(sizes.len(), 12, "{sizes:?}");
    let total: u64 = sizes.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(r["metrics"]["total_size_bytes"].as_u64(), Some(total));
    let on_disk = std::fs::metadata(small.join("vdb_chunks.json"))
        .unwrap()
        .len();
    assert_eq!(sizes["vdb_chunks.json"].as_u64(), Some(on_disk));

    // All databases at once; and the counts survive a restart (cached at shutdown).
    let all = d.json(&["backend", "status"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    d.stop();
    assert_untouched(&fixture("lightrag-1.5.7-small"), &small);
    d.start();
    assert_eq!(
        counts(&d, "small"),
        expected_counts(&fixture("lightrag-1.5.7-small"))
    );
}

/// Adopting and serving a directory writes none of its files.
fn assert_untouched(original: &Path, copy: &Path) {
    for f in std::fs::read_dir(original).unwrap() {
        let f = f.unwrap();
        let a = std::fs::read(f.path()).unwrap();
        let b = std::fs::read(copy.join(f.file_name())).unwrap();
        assert!(a == b, "{} changed", f.file_name().to_string_lossy());
    }
}

#[test]
fn a_corrupt_store_puts_only_its_database_in_error_and_is_not_overwritten() {
    let mut d = TestDaemon::new("");
    let good = d.path("good");
    let bad = d.path("bad");
    copy_dir(&fixture("lightrag-1.5.7-small"), &good);
    copy_dir(&fixture("lightrag-1.5.7-small"), &bad);
    let vdb = bad.join("vdb_relationships.json");
    let bytes = std::fs::read(&vdb).unwrap();
    std::fs::write(&vdb, &bytes[..20000]).unwrap();
    d.start();
    add(&d, &["good", "--path", good.to_str().unwrap()]);
    add(&d, &["broken", "--path", bad.to_str().unwrap()]);
    assert_eq!(d.state_of("broken"), "error");
    assert_eq!(d.state_of("good"), "idle");
    let status = d.json(&["status"]);
    let broken = status["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "broken")
        .unwrap();
    let msg = broken["error"].as_str().unwrap();
    assert!(
        msg.contains("vdb_relationships.json") && msg.contains("byte"),
        "{msg}"
    );
    // backend status says so too, with exit code 2.
    let out = d.ctl(&["--json", "backend", "status", "broken"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r[0]["status"], "error");
    assert!(
        r[0]["reason"]
            .as_str()
            .unwrap()
            .contains("vdb_relationships.json")
    );
    // Health carries the error as well.
    let h = d.json(&["health"]);
    assert!(h.to_string().contains("vdb_relationships.json"));
    assert_eq!(
        counts(&d, "good"),
        expected_counts(&fixture("lightrag-1.5.7-small"))
    );
    d.stop();
    assert_eq!(
        std::fs::read(&vdb).unwrap().len(),
        20000,
        "the corrupt file is left as it was"
    );
}

#[test]
fn a_second_daemon_cannot_write_the_same_directory() {
    let mut first = TestDaemon::new("");
    let kb = first.path("kb");
    copy_dir(&fixture("lightrag-1.5.7-small"), &kb);
    first.start();
    add(&first, &["kb", "--path", kb.to_str().unwrap()]);
    assert_eq!(first.state_of("kb"), "idle");

    let mut second = TestDaemon::new("");
    second.start();
    add(&second, &["same", "--path", kb.to_str().unwrap()]);
    assert_eq!(second.state_of("same"), "error");
    let s = second.json(&["status"]);
    let msg = s["databases"][0]["error"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("locked") && msg.contains(kb.to_str().unwrap()),
        "{msg}"
    );
    // Once the first lets go, the second can open it (after a reload of its registry entry).
    first.stop();
    let out = second.ctl(&["db", "remove", "same"]);
    assert!(out.status.success());
    add(&second, &["same", "--path", kb.to_str().unwrap()]);
    assert_eq!(second.state_of("same"), "idle");
}
