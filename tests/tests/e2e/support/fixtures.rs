//! The repository's LightRAG fixtures and the LightRAG reference reader.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `tests/fixtures/<name>` (read-only: copy before writing).
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

/// Copies a directory tree (fixtures are small).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
            let mut perm = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&target, perm).unwrap();
        }
    }
}

/// (docs, chunks, entities, relations) a fixture's COUNTS.json promises, for either generator.
pub fn expected_counts(fixture_dir: &Path) -> (u64, u64, u64, u64) {
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture_dir.join("COUNTS.json")).unwrap()).unwrap();
    if c.get("graph").is_some() {
        return (
            c["doc_status"]["total"].as_u64().unwrap(),
            c["vdb"]["chunks"].as_u64().unwrap(),
            c["graph"]["nodes"].as_u64().unwrap(),
            c["graph"]["edges"].as_u64().unwrap(),
        );
    }
    let f = &c["files"];
    let g = &f["graph_chunk_entity_relation.graphml"];
    (
        f["kv_store_doc_status.json"]["records"].as_u64().unwrap(),
        f["vdb_chunks.json"]["rows"].as_u64().unwrap(),
        g["nodes"].as_u64().unwrap(),
        g["edges"].as_u64().unwrap(),
    )
}

/// The python of a venv with LightRAG 1.5.7 (`scripts/setup-lightrag.sh` makes it). Panics
/// with instructions when it is missing: these checks are never skipped.
pub fn lightrag_python() -> PathBuf {
    let candidate = std::env::var_os("HRAG_LIGHTRAG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/lightrag-venv/bin/python"));
    let ok = Command::new(&candidate)
        .args(["-c", "import lightrag"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "no LightRAG 1.5.7 venv at {}: run scripts/setup-lightrag.sh (scripts/test does) or set \
         HRAG_LIGHTRAG_PYTHON",
        candidate.display()
    );
    candidate
}

/// Runs `tests/tools/<tool>` with LightRAG's python; returns (success, combined output).
pub fn run_checker(tool: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(lightrag_python())
        .arg(repo_root().join("tests/tools").join(tool))
        .args(args)
        .env("POSTGRES_PASSWORD", "unused")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Writes counts_from_dir.py's COUNTS.json for `dir` (what is physically there) to `out`.
pub fn physical_counts(dir: &Path, out: &Path) {
    let o = Command::new(lightrag_python())
        .arg(repo_root().join("tests/tools/counts_from_dir.py"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(out, &o.stdout).unwrap();
}

/// LightRAG 1.5.7's own classes open `dir` and find the counts in `expect`.
pub fn check_with_lightrag(dir: &Path, expect: &Path) {
    let (ok, text) = run_checker(
        "lightrag_json_check.py",
        &[
            dir.to_str().unwrap(),
            "--expect",
            expect.to_str().unwrap(),
            "--stored-vector-query",
        ],
    );
    assert!(ok, "LightRAG could not read {}:\n{text}", dir.display());
    assert!(text.contains(" 0 failed"), "{text}");
}
