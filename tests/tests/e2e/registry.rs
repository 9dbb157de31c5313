//! The HybridRAG registry through the real daemon: unknown keys survive rewrites, invalid input
//! is named precisely, passwords never appear in plain text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::support::daemon::{TestDaemon, stderr, stdout};

const HYBRIDRAG_REGISTRY: &str = "version: 1
databases:
  notes:
    name: notes
    path: {dir}/kb
    source_folder: {dir}/src
    source_type: filesystem
    auto_watch: true
    watch_interval: 300
    model: azure/gpt-4o
    file_extensions:
    - .md
    - .txt
    backend_type: json
    ingestion_mode: batch
    spoonfeed_files_per_day: 40
    max_daily_cost_usd: 5.0
    max_run_cost_usd: 1.5
    fallback_llm_model: ollama/qwen2.5
    fallback_tiers:
    - tier: local
      model: ollama/qwen2.5
    fallback_trigger: on_budget_exceeded
    model_config:
      embedding_model: text-embedding-3-small
      embedding_dim: 1536
      api_keys:
        openai: ${OPENAI_API_KEY}
";

fn yaml(text: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(text).unwrap()
}

#[test]
fn db_add_keeps_every_unknown_key_of_other_entries() {
    let mut d = TestDaemon::new(HYBRIDRAG_REGISTRY);
    std::fs::create_dir_all(d.path("kb")).unwrap();
    let before = yaml(&d.registry_text());
    d.start();
    let kb2 = d.path("kb2");
    let out = d.ctl(&["db", "add", "second", "--path", kb2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = yaml(&d.registry_text());
    assert_eq!(before["databases"]["notes"], after["databases"]["notes"]);
    assert_eq!(after["databases"]["second"]["path"].as_str(), kb2.to_str());
    assert!(kb2.is_dir(), "db add creates the working directory");
    // The new database is served at once, without a reload.
    assert_eq!(d.state_of("second"), "idle");
    // `register` is an alias; a duplicate name is refused without touching the file.
    let text = d.registry_text();
    let out = d.ctl(&["db", "register", "second", "--path", kb2.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("already"), "{}", stderr(&out));
    assert_eq!(text, d.registry_text());
    // Removing keeps the rest.
    let out = d.ctl(&["db", "remove", "second"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = yaml(&d.registry_text());
    assert!(after["databases"].get("second").is_none());
    assert_eq!(before["databases"]["notes"], after["databases"]["notes"]);
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn invalid_names_are_refused_and_upper_case_is_normalised() {
    let mut d = TestDaemon::new("");
    d.start();
    let kb = d.path("kb");
    let out = d.ctl(&["db", "add", "Bad_Name", "--path", kb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("Bad_Name"), "{}", stderr(&out));
    // Upper case is normalised as HybridRAG does.
    let out = d.ctl(&["db", "add", "Notes", "--path", kb.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        d.registry_text().contains("  notes:"),
        "{}",
        d.registry_text()
    );
}

#[test]
fn first_run_creates_the_registry() {
    let mut d = TestDaemon::new("");
    assert!(!d.registry.exists());
    d.start();
    let reg = yaml(&d.registry_text());
    assert_eq!(reg["version"].as_u64(), Some(1));
    assert!(reg["databases"].as_mapping().unwrap().is_empty());
}

#[test]
fn malformed_registry_is_fatal_and_names_file_and_position() {
    let d = TestDaemon::new("version: 1\ndatabases: [oops\n");
    let out = d.run_to_exit(Duration::from_secs(10));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(d.registry.to_str().unwrap()), "{err}");
    assert!(err.contains("line 2") || err.contains("line 3"), "{err}");
    assert!(
        !d.socket.exists(),
        "no socket for a daemon that did not start"
    );
}

#[test]
fn an_invalid_entry_puts_only_that_database_in_error() {
    let mut d = TestDaemon::new(
        "version: 1
databases:
  good:
    path: {dir}/good
  bad:
    path: {dir}/bad
    backend_config:
      postgres_port: 99999
",
    );
    d.start();
    assert_eq!(d.state_of("good"), "idle");
    assert_eq!(d.state_of("bad"), "error");
    let s = d.json(&["status"]);
    let bad = s["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "bad")
        .unwrap();
    let msg = bad["error"].as_str().unwrap();
    for part in [
        d.registry.to_str().unwrap(),
        "'bad'",
        "backend_config.postgres_port",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
    assert!(d.log_text().contains("registry_entry_invalid"));
}

#[test]
fn no_password_reaches_registry_output_or_logs() {
    const SECRET: &str = "Sup3rS3cretPw";
    let mut d = TestDaemon::new(&format!(
        "version: 1
databases:
  legacy:
    path: {{dir}}/legacy
    backend_type: postgres
    backend_config:
      postgres_host: db.internal
      postgres_password: {SECRET}
"
    ));
    d.start();
    let kb = d.path("pgkb");
    let dsn = format!("postgresql://hrag:{SECRET}@127.0.0.1:5433/kb");
    let added = d.json(&[
        "db",
        "add",
        "pg",
        "--path",
        kb.to_str().unwrap(),
        "--backend",
        "postgres",
        "--connection-string",
        &dsn,
        "--no-check",
    ]);
    let reg = d.registry_text();
    // The new entry holds no password, only a 0600 file's path.
    let parsed = yaml(&reg);
    let cfg = &parsed["databases"]["pg"]["backend_config"];
    assert!(cfg.get("postgres_password").is_none());
    let file = cfg["postgres_password_file"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(file).unwrap(), SECRET);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!cfg["connection_string"].as_str().unwrap().contains(SECRET));
    // The legacy entry's plain-text password was already there: kept for HybridRAG, never shown.
    let mut shown = vec![added.to_string()];
    for args in [
        vec!["status"],
        vec!["health"],
        vec!["db", "list"],
        vec!["db", "show", "pg"],
        vec!["db", "show", "legacy"],
    ] {
        shown.push(d.json(&args).to_string());
        let human = d.ctl(&args);
        shown.push(stdout(&human));
        shown.push(stderr(&human));
    }
    let show = d.json(&["db", "show", "legacy"]);
    assert_eq!(show["entry"]["backend_config"]["postgres_password"], "***");
    d.stop();
    shown.push(d.log_text());
    for text in shown {
        assert!(!text.contains(SECRET), "password leaked in: {text}");
    }
    assert!(
        d.log_text().contains("registry_plaintext_password"),
        "a warning about the legacy password"
    );
}

#[test]
fn sighup_and_reload_pick_up_hand_edits() {
    let mut d = TestDaemon::new("version: 1\ndatabases:\n  one:\n    path: {dir}/one\n");
    d.start();
    let mut text = d.registry_text();
    text.push_str(&format!("  two:\n    path: {}\n", d.path("two").display()));
    std::fs::write(&d.registry, &text).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    // Generous: a loaded CI machine builds the tokenizer for the new database in a debug binary.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !stdout(&d.ctl(&["--json", "db", "list"])).contains("\"two\"") {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not add 'two'"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A broken edit is refused by `reload`; the daemon keeps serving what it had.
    std::fs::write(&d.registry, "databases: {{{").unwrap();
    let out = d.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("registry.yaml"), "{}", stderr(&out));
    assert_eq!(d.state_of("two"), "idle");
    // Removing an entry by hand and reloading stops its supervisor.
    std::fs::write(
        &d.registry,
        format!(
            "version: 1\ndatabases:\n  one:\n    path: {}\n",
            d.path("one").display()
        ),
    )
    .unwrap();
    let r = d.json(&["reload"]);
    assert_eq!(r["removed"], serde_json::json!(["two"]));
    assert!(d.log_text().contains("registry_reload_failed"));
}
