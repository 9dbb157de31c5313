//! `hragctl migrate` end to end, with the real binaries and a private PostgreSQL cluster: a real
//! LightRAG fixture migrates, verifies, switches and is read by LightRAG's own PG classes; kill -9
//! at random moments then `--resume` always ends verified with exact counts; a Postgres restart
//! mid-copy is ridden out; a touched source refuses to resume (exit 2); a non-empty target is
//! refused (exit 3) unless `--force`; a tampered target fails verification (exit 4); vectors
//! above pgvector's 2000-dimension index limit migrate bit for bit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon::{TestDaemon, hragctl, stderr, stdout};
use crate::support::fixtures::{copy_dir, fixture, lightrag_python, repo_root, run_checker};
use crate::support::pg::{PgCluster, sql_exec, sql_value};

const QUESTION: &str = "Who worked with whom, and where?";

/// The first five chunk, entity and relation keys of a query answer.
fn top_keys(q: &Value) -> (Vec<String>, Vec<String>, Vec<String>) {
    let keys = |k: &str| -> Vec<String> {
        q[k].as_array()
            .map(|a| {
                a.iter()
                    .take(5)
                    .map(|r| r["key"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    (keys("chunks"), keys("entities"), keys("relations"))
}

fn registry_with(db: &str, path: &Path) -> String {
    format!(
        "version: 1\ndatabases:\n  {db}:\n    name: {db}\n    path: {}\n",
        path.display()
    )
}

/// A synthetic LightRAG 1.5.7 directory (tests/tools/synth_lightrag.py) of `docs` documents.
fn synth(out: &Path, docs: u32, dim: u32) {
    let o = Command::new(lightrag_python())
        .arg(repo_root().join("tests/tools/synth_lightrag.py"))
        .args(["--out", out.to_str().unwrap(), "--force"])
        .args(["--docs", &docs.to_string(), "--dim", &dim.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn migrate_args<'a>(db: &'a str, url: &'a str, model: &'a str) -> Vec<&'a str> {
    vec![
        "migrate",
        db,
        "--to",
        "postgres",
        "--connection-string",
        url,
        "--embedding-model",
        model,
    ]
}

/// The final (pretty-printed) JSON document of `--json` output, after the progress lines.
fn report_of(text: &str) -> Value {
    let at = if text.starts_with("{\n") {
        0
    } else {
        text.find("\n{\n").map(|i| i + 1).unwrap_or(0)
    };
    serde_json::from_str(&text[at..]).unwrap_or_else(|e| panic!("no JSON report ({e}):\n{text}"))
}

fn run_ctl(d: &TestDaemon, args: &[&str]) -> (i32, String, String) {
    let o = d.ctl(args);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

fn files_digest(dir: &Path) -> Vec<(String, u64, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                bytes.len() as u64,
                bytes,
            )
        })
        .collect();
    v.sort();
    v
}

fn backend_of(d: &TestDaemon, db: &str) -> String {
    let v = d.json(&["db", "show", db]);
    v["summary"]["backend"].as_str().unwrap_or("").to_owned()
}

fn pg_check(url: &str, workspace: &str, expect: &Path, model: &str) {
    let (ok, text) = run_checker(
        "lightrag_pg_check.py",
        &[
            "--dsn",
            url,
            "--workspace",
            workspace,
            "--expect",
            expect.to_str().unwrap(),
            "--embed-model",
            model,
            "--stored-vector-query",
        ],
    );
    assert!(
        ok,
        "LightRAG's PG classes disagree for {workspace}:\n{text}"
    );
}

#[test]
fn a_lightrag_fixture_migrates_verifies_switches_and_lightrag_reads_it() {
    let pg = PgCluster::start();
    let url = pg.url();
    let mut d = TestDaemon::new("");
    let src = d.path("small");
    copy_dir(&fixture("lightrag-1.5.7-small"), &src);
    let counts = src.join("COUNTS.json");
    let expect = d.path("COUNTS.json");
    std::fs::rename(&counts, &expect).unwrap();
    std::fs::write(&d.registry, registry_with("small", &src)).unwrap();
    d.start();
    let before = files_digest(&src);
    let o = d.ctl(&["--json", "query", "small", QUESTION, "--mode", "mix"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before_query = top_keys(&serde_json::from_slice(&o.stdout).unwrap());
    assert!(
        !before_query.0.is_empty() && !before_query.1.is_empty(),
        "{before_query:?}"
    );

    // The plan changes nothing.
    let out = d.ctl(
        &[
            vec!["--json"],
            migrate_args("small", &url, "fake-embed"),
            vec!["--dry-run"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = report_of(&stdout(&out));
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(plan["embedding_dim"], 64, "{plan}");
    assert_eq!(backend_of(&d, "small"), "json");

    let out = d.ctl(&[vec!["--json"], migrate_args("small", &url, "fake-embed")].concat());
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let report = report_of(&text);
    assert_eq!(report["verified"], true, "{report}");
    assert!(
        report["message"]
            .as_str()
            .unwrap_or("")
            .contains("3 sample queries gave the same top 5"),
        "the query sample ran: {report}"
    );
    assert!(
        report["stores"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["verified"] == true),
        "{report}"
    );
    // JSON progress lines came first.
    assert!(
        text.lines().any(|l| l.starts_with("{\"progress\"")),
        "{text}"
    );
    assert_eq!(files_digest(&src), before, "the JSON source was modified");
    assert_eq!(backend_of(&d, "small"), "postgres");
    let reg = d.registry_text();
    assert!(reg.contains("embedding_model_name: fake-embed"), "{reg}");
    assert!(!reg.to_lowercase().contains("password:"), "{reg}");

    pg_check(&url, "small", &expect, "fake-embed");
    // The switched database answers queries from Postgres as it did from JSON.
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let o = d.ctl(&["--json", "query", "small", QUESTION, "--mode", "mix"]);
        if o.status.success() {
            break top_keys(&serde_json::from_slice(&o.stdout).unwrap());
        }
        assert!(Instant::now() < deadline, "no query answer: {}", stderr(&o));
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        after, before_query,
        "query results differ between JSON and Postgres"
    );
    // The report of the finished job gains the background vector-index builds' times.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, out, err) = run_ctl(&d, &["--json", "migrate", "status", "small"]);
        assert_eq!(code, 0, "{err}");
        let at = out.find("[\n").unwrap_or(0);
        let list: Value = serde_json::from_str(&out[at..]).unwrap();
        let builds = list[0]["index_builds"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let done = builds.len() == 3
            && builds
                .iter()
                .all(|b| b["state"] == "done" && b["elapsed_secs"].as_f64().unwrap() > 0.0);
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the three vector indexes are not reported built: {list}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // verify on demand passes; a tampered record fails it, named, with exit 4.
    let (code, _, err) = run_ctl(&d, &["verify", "small"]);
    assert_eq!(code, 0, "{err}");
    let victim: String = sql_value(
        &url,
        "SELECT id FROM lightrag_doc_chunks WHERE workspace = 'small' ORDER BY id LIMIT 1",
    )
    .unwrap();
    sql_exec(
        &url,
        &format!(
            "UPDATE lightrag_doc_chunks SET content = content || ' (edited)' \
             WHERE workspace = 'small' AND id = '{victim}'"
        ),
    )
    .unwrap();
    let (code, _, err) = run_ctl(&d, &["verify", "small"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains(&victim),
        "the differing record is not named: {err}"
    );
    // Migrating again is refused: it is on Postgres now.
    let (code, _, err) = run_ctl(&d, &migrate_args("small", &url, "fake-embed"));
    assert_ne!(code, 0, "{err}");
}

/// A generated source, migrated once without interruption to learn how long a copy takes.
struct CrashBed {
    pg: PgCluster,
    url: String,
    source: tempfile::TempDir,
    expect: PathBuf,
}

impl CrashBed {
    fn new(docs: u32) -> CrashBed {
        let pg = PgCluster::start();
        let url = pg.url();
        let source = tempfile::Builder::new()
            .prefix("hrag-synth.")
            .tempdir_in("/tmp")
            .unwrap();
        synth(source.path(), docs, 64);
        let expect = source.path().join("COUNTS.json");
        CrashBed {
            pg,
            url,
            source,
            expect,
        }
    }

    /// A daemon with a fresh copy of the source registered as `db`.
    fn daemon(&self, db: &str) -> TestDaemon {
        let mut d = TestDaemon::new("");
        let src = d.path("kb");
        copy_dir(self.source.path(), &src);
        std::fs::remove_file(src.join("COUNTS.json")).unwrap();
        std::fs::write(&d.registry, registry_with(db, &src)).unwrap();
        d.start();
        d
    }

    fn spawn_migrate(&self, d: &TestDaemon, db: &str, resume: bool) -> Child {
        let mut args = migrate_args(db, &self.url, "synth-embed");
        if resume {
            args.push("--resume");
        }
        Command::new(hragctl())
            .arg("--socket")
            .arg(&d.socket)
            .arg("--json")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn rand_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    getrandom_fill(&mut b);
    u64::from_le_bytes(b) % n.max(1)
}

fn getrandom_fill(b: &mut [u8]) {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(b)
        .unwrap();
}

fn wait_unpaused(d: &TestDaemon, db: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = d.json(&["status"]);
        let paused = s["databases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == db)
            .map(|x| x["paused"] == true)
            .unwrap();
        if !paused {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{db} stays paused after the restart: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kill_9_at_random_moments_then_resume_always_ends_verified_with_exact_counts() {
    let bed = CrashBed::new(120);
    // How long an uninterrupted migration takes here: kills land inside that window.
    let d = bed.daemon("whole");
    let t0 = Instant::now();
    let (code, _, err) = run_ctl(&d, &migrate_args("whole", &bed.url, "synth-embed"));
    assert_eq!(code, 0, "{err}");
    let window = t0.elapsed().as_millis() as u64;
    drop(d);
    let runs = 20;
    let mut resumed_mid_copy = 0;
    for i in 0..runs {
        let db = format!("crash{i:02}");
        let mut d = bed.daemon(&db);
        let mut ctl = bed.spawn_migrate(&d, &db, false);
        std::thread::sleep(Duration::from_millis(50 + rand_below(window)));
        d.kill9();
        let _ = ctl.wait();
        d.start();
        if backend_of(&d, &db) == "postgres" {
            // The kill came after the switch: the migration had finished.
            let (code, _, err) = run_ctl(&d, &["verify", &db]);
            assert_eq!(code, 0, "run {i}: {err}");
        } else {
            // The interrupted job's pause is given back at start: the database works on JSON.
            wait_unpaused(&d, &db);
            let mirror = d.state.join("migrations").join(format!("{db}.json"));
            if mirror.exists() {
                resumed_mid_copy += 1;
            }
            let mut args = migrate_args(&db, &bed.url, "synth-embed");
            args.push("--resume");
            let (code, out, err) = run_ctl(&d, &args);
            assert_eq!(
                code,
                0,
                "run {i}: resume failed:\n{out}\n{err}\n{}",
                d.log_text()
            );
            assert_eq!(backend_of(&d, &db), "postgres", "run {i}");
        }
        pg_check(&bed.url, &db, &bed.expect, "synth-embed");
    }
    assert!(
        resumed_mid_copy >= runs / 2,
        "only {resumed_mid_copy} of {runs} kills landed during a copy"
    );
}

#[test]
fn a_postgres_restart_mid_copy_is_ridden_out_and_a_touched_source_refuses_to_resume() {
    let bed = CrashBed::new(200);
    // Postgres restarts while the copy runs: the job retries from its checkpoint.
    let d = bed.daemon("bounce");
    let mut ctl = bed.spawn_migrate(&d, "bounce", false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d.state.join("migrations/bounce.json").exists() {
        assert!(Instant::now() < deadline, "the copy never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    bed.pg.stop();
    std::thread::sleep(Duration::from_secs(3));
    bed.pg.start_again();
    let status = ctl.wait().unwrap();
    let mut err = String::new();
    use std::io::Read as _;
    ctl.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{status}: {err}\n{}", d.log_text());
    assert!(
        d.log_text().contains("migration_target_lost"),
        "{}",
        d.log_text()
    );
    pg_check(&bed.url, "bounce", &bed.expect, "synth-embed");

    // kill -9, then a source file changes: --resume refuses with exit 2 and the entry stays JSON.
    let mut d = bed.daemon("touched");
    let mut ctl = bed.spawn_migrate(&d, "touched", false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d.state.join("migrations/touched.json").exists() {
        assert!(Instant::now() < deadline, "the copy never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill9();
    let _ = ctl.wait();
    let f = d.path("kb/kv_store_full_docs.json");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text).unwrap();
    d.start();
    let mut args = migrate_args("touched", &bed.url, "synth-embed");
    args.push("--resume");
    let (code, _, err) = run_ctl(&d, &args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("changed since the checkpoint"), "{err}");
    assert_eq!(backend_of(&d, "touched"), "json");
    // Ingestion was given back: the database is not left paused.
    let s = d.json(&["status"]);
    let db = s["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "touched")
        .unwrap()
        .clone();
    assert_eq!(db["paused"], false, "{s}");
    // A fresh start is refused while the checkpoint is there; --force starts over.
    let (code, _, err) = run_ctl(&d, &migrate_args("touched", &bed.url, "synth-embed"));
    assert_eq!(code, 3, "{err}");
    let mut args = migrate_args("touched", &bed.url, "synth-embed");
    args.push("--force");
    let (code, _, err) = run_ctl(&d, &args);
    assert_eq!(code, 0, "{err}");
    pg_check(&bed.url, "touched", &bed.expect, "synth-embed");
}

#[test]
fn a_non_empty_target_is_refused_unless_forced_and_2048_dims_migrate_bit_for_bit() {
    let pg = PgCluster::start();
    let url = pg.url();
    let mut d = TestDaemon::new("");
    let src = d.path("wide");
    synth(&src, 12, 2048);
    let expect = d.path("COUNTS.json");
    std::fs::rename(src.join("COUNTS.json"), &expect).unwrap();
    std::fs::write(&d.registry, registry_with("wide", &src)).unwrap();
    d.start();
    // Someone else's row in the workspace.
    let (code, _, err) = run_ctl(
        &d,
        &[migrate_args("wide", &url, "wide-embed"), vec!["--dry-run"]].concat(),
    );
    assert_eq!(code, 0, "{err}");
    sql_exec(
        &url,
        "CREATE TABLE IF NOT EXISTS lightrag_doc_full (id varchar(255) NOT NULL, \
         workspace varchar(255) NOT NULL, doc_name varchar(1024), content text, meta jsonb, \
         sidecar_location text, parse_format varchar(32), content_hash text, \
         process_options text, chunk_options jsonb, parse_engine text, \
         create_time timestamp(0), update_time timestamp(0), \
         CONSTRAINT lightrag_doc_full_pk PRIMARY KEY (workspace, id)); \
         INSERT INTO lightrag_doc_full (id, workspace, content) VALUES ('stray', 'wide', 'x')",
    )
    .unwrap();
    let (code, _, err) = run_ctl(&d, &migrate_args("wide", &url, "wide-embed"));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(backend_of(&d, "wide"), "json");
    let mut args = migrate_args("wide", &url, "wide-embed");
    args.push("--force");
    let out = d.ctl(&[vec!["--json"], args].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let stray: i64 = sql_value(
        &url,
        "SELECT count(*) FROM lightrag_doc_full WHERE workspace = 'wide' AND id = 'stray'",
    )
    .unwrap();
    assert_eq!(stray, 0, "--force replaces the workspace");
    let dims: i32 = sql_value(
        &url,
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = \
         'lightrag_vdb_chunks_wide_embed_2048d'::regclass AND attname = 'content_vector'",
    )
    .unwrap();
    assert_eq!(dims, 2048);
    let text = stdout(&out);
    assert!(
        text.contains("halfvec"),
        "the plan says how 2048 dims get indexed: {text}"
    );
    pg_check(&url, "wide", &expect, "wide-embed");
}
