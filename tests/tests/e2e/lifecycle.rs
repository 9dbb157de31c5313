//! The daemon's life: the pause handshake and its persistence, signals, systemd notification,
//! log formats, quick start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::daemon::{TestDaemon, stderr, stdout};

const TWO_DBS: &str =
    "version: 1\ndatabases:\n  notes:\n    path: {dir}/kb\n  code:\n    path: {dir}/code\n";

#[test]
fn pause_is_acknowledged_persisted_across_restarts_and_resumed() {
    let mut d = TestDaemon::new(TWO_DBS);
    d.start();
    let ack = d.json(&["pause", "notes"]);
    assert_eq!(
        ack,
        serde_json::json!([{ "name": "notes", "state": "paused", "paused": true }])
    );
    assert_eq!(d.state_of("notes"), "paused");
    assert_eq!(d.state_of("code"), "idle");
    assert!(d.log_text().contains("db_paused"));

    assert_eq!(d.stop().code(), Some(0));
    d.start();
    assert_eq!(d.state_of("notes"), "paused", "a pause survives a restart");
    assert_eq!(d.state_of("code"), "idle");

    // Survives kill -9 too: it was persisted before the acknowledgement.
    d.kill9();
    d.start();
    assert_eq!(d.state_of("notes"), "paused");

    let out = d.ctl(&["resume", "notes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(d.state_of("notes"), "idle");
    d.stop();
    d.start();
    assert_eq!(d.state_of("notes"), "idle");

    let all = d.json(&["pause", "--all"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let out = d.ctl(&["pause", "nosuchdb"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nosuchdb") && stderr(&out).contains("not in the registry"));
}

#[test]
fn sigterm_drains_exits_zero_and_removes_the_socket() {
    let mut d = TestDaemon::new(TWO_DBS);
    d.start();
    let status = d.stop();
    assert_eq!(status.code(), Some(0), "log:\n{}", d.log_text());
    assert!(!d.socket.exists());
    let log = d.log_text();
    for event in ["daemon_stopping", "db_stopped", "daemon_stopped"] {
        assert!(log.contains(event), "{event} missing from:\n{log}");
    }
    // SIGINT behaves the same.
    d.start();
    d.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(d.wait(Duration::from_secs(30)).code(), Some(0));
    assert!(!d.socket.exists());
}

#[test]
fn systemd_notifications_ready_watchdog_stopping() {
    let d0 = TestDaemon::new(TWO_DBS);
    let notify_path = d0.path("notify.sock");
    let listener = UnixDatagram::bind(&notify_path).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut d = d0
        .env("NOTIFY_SOCKET", notify_path.to_str().unwrap())
        .env("WATCHDOG_USEC", "400000");
    d.start();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let read_until = |seen: &mut String, want: &str, listener: &UnixDatagram, buf: &mut [u8]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.contains(want) {
            assert!(
                Instant::now() < deadline,
                "{want} never arrived; got:\n{seen}"
            );
            if let Ok(n) = listener.recv(buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                seen.push('\n');
            }
        }
    };
    read_until(&mut seen, "READY=1", &listener, &mut buf);
    // Pings at half of WatchdogSec (every 200 ms here): at least four in 1.1 s, where pinging
    // at the full interval would give two.
    seen.clear();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1100) {
        if let Ok(n) = listener.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    }
    let pings = seen.matches("WATCHDOG=1").count();
    assert!((4..=8).contains(&pings), "{pings} pings:\n{seen}");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    read_until(&mut seen, "STOPPING=1", &listener, &mut buf);
    assert_eq!(d.wait(Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn json_logs_are_one_object_per_line_with_stable_events() {
    let mut d = TestDaemon::new(TWO_DBS).arg("--log-format").arg("json");
    d.start();
    d.ctl(&["pause", "code"]);
    d.stop();
    let log = d.log_text();
    let mut events = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if let Some(e) = v["event"].as_str() {
            events.push(e.to_owned());
        }
    }
    for e in [
        "daemon_started",
        "db_started",
        "db_paused",
        "daemon_stopped",
    ] {
        assert!(events.iter().any(|x| x == e), "{e} not in {events:?}");
    }
}

#[test]
fn health_reports_memory_fds_and_each_database() {
    let mut d = TestDaemon::new(TWO_DBS);
    d.start();
    let h = d.json(&["health"]);
    assert!(h["rss_bytes"].as_u64().unwrap() > 1024 * 1024);
    assert!(h["peak_rss_bytes"].as_u64().unwrap() >= h["rss_bytes"].as_u64().unwrap());
    assert!(h["open_fds"].as_u64().unwrap() > 3);
    assert_eq!(h["pid"].as_u64().unwrap(), d.pid() as u64);
    let names: Vec<_> = h["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].clone())
        .collect();
    assert_eq!(names, vec!["code", "notes"]);
    let human = stdout(&d.ctl(&["health"]));
    assert!(human.contains("MiB") && human.contains("notes"), "{human}");
}

#[test]
fn quick_start_registers_the_watched_folder() {
    let d = TestDaemon::new("");
    let src = d.path("notes");
    std::fs::create_dir_all(&src).unwrap();
    let mut d = d
        .arg("--watch")
        .arg(src.to_str().unwrap())
        .arg("--db")
        .arg("mynotes");
    d.start();
    let s = d.json(&["status"]);
    let db = &s["databases"][0];
    assert_eq!(db["name"], "mynotes");
    assert_eq!(db["auto_watch"], true);
    assert_eq!(db["source_folder"].as_str(), src.to_str());
    assert!(d.state.join("kb/mynotes").is_dir());
    // A second start with the same flags changes nothing.
    let before = d.registry_text();
    d.stop();
    d.start();
    assert_eq!(before, d.registry_text());
}
