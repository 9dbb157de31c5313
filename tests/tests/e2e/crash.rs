//! kill -9 in the middle of JSON flushes: every file is afterwards the previous or the new
//! version, never torn, and the next open removes the temp files the dead writer left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use hrag_daemon::storage::json::{JsonStores, STORE_FILES};

use crate::support::daemon::bin_dir;
use crate::support::fixtures::{copy_dir, fixture};

fn flush_loop() -> std::path::PathBuf {
    let p = bin_dir().join("examples/flush_loop");
    assert!(
        p.is_file(),
        "{} missing: `cargo build -p hrag-daemon --examples` (cargo test builds it)",
        p.display()
    );
    p
}

/// Whether full_docs' `doc-crash` holds one whole version `<n>:<4 MiB of x>`.
fn full_docs_holds_a_whole_version(dir: &std::path::Path) -> bool {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("kv_store_full_docs.json")).unwrap())
            .unwrap_or_else(|e| panic!("kv_store_full_docs.json is torn: {e}"));
    let Some(content) = v.get("doc-crash").and_then(|r| r["content"].as_str()) else {
        return false;
    };
    match content.split_once(':') {
        Some((n, pad)) => {
            n.parse::<u64>().is_ok() && pad.len() == 4 << 20 && pad.bytes().all(|b| b == b'x')
        }
        None => false,
    }
}

#[test]
fn kill_9_during_flushes_never_leaves_a_torn_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kb");
    copy_dir(&fixture("lightrag-1.5.7-small"), &dir);
    let mut kills = 0;
    for i in 0..24u64 {
        let mut child = Command::new(flush_loop())
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for a first flush, then kill at a varying point of a later one.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next();
        assert!(
            matches!(first, Some(Ok(ref l)) if l.starts_with("flushed")),
            "flush_loop failed: {first:?} {}",
            {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                String::from_utf8_lossy(&out.stderr).into_owned()
            }
        );
        std::thread::sleep(Duration::from_millis(3 + (i * 7) % 40));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        kills += 1;
        // Every store file parses; full_docs holds a whole version; the graph too.
        for f in STORE_FILES {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            if f.ends_with(".json") {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .unwrap_or_else(|e| panic!("{f} is torn after kill {kills}: {e}"));
            }
        }
        assert!(
            full_docs_holds_a_whole_version(&dir),
            "full_docs lost its last version"
        );
        let stores = JsonStores::open(&dir, None, Some(64))
            .unwrap_or_else(|e| panic!("the store does not open after kill {kills}: {e}"));
        // The next open cleaned up the dead writer's temp files.
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
        drop(stores);
    }
    assert!(kills >= 20);
}
