//! The control socket: permissions, peer checks, single instance, framing robustness, and the
//! client's behaviour when no daemon answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use crate::support::daemon::{TestDaemon, hragctl, stderr, stdout};

const ONE_DB: &str = "version: 1\ndatabases:\n  notes:\n    path: {dir}/kb\n";

#[test]
fn socket_is_0600_and_other_uids_are_refused_by_the_peer_check() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs a client as another uid (runuser -u nobody) and must run as root"
    );
    let mut d = TestDaemon::new(ONE_DB);
    d.start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Open the file permissions wide so that only the daemon's SO_PEERCRED check stands in the
    // way, and give `nobody` a copy of hragctl it can execute.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let ctl = d.path("hragctl");
    std::fs::copy(hragctl(), &ctl).unwrap();
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(&ctl)
        .arg("--socket")
        .arg(&d.socket)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(77),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("notes"));
    assert!(d.log_text().contains("peer_refused"));
    // The owner is still served.
    assert_eq!(d.state_of("notes"), "idle");
}

#[test]
fn a_second_daemon_on_the_same_socket_refuses_to_start() {
    let mut first = TestDaemon::new(ONE_DB);
    first.start();
    let second = TestDaemon::new(ONE_DB);
    let out = Command::new(crate::support::daemon::hragd())
        .arg("--registry")
        .arg(&second.registry)
        .arg("--socket")
        .arg(&first.socket)
        .arg("--state-dir")
        .arg(&second.state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));
    assert!(stderr(&out).contains(first.socket.to_str().unwrap()));
    // The first daemon is untouched.
    assert_eq!(first.state_of("notes"), "idle");
}

#[test]
fn a_stale_socket_from_a_killed_daemon_is_replaced() {
    let mut d = TestDaemon::new(ONE_DB);
    d.start();
    d.kill9();
    assert!(d.socket.exists(), "kill -9 leaves the socket behind");
    d.start();
    assert_eq!(d.state_of("notes"), "idle");
    assert!(d.log_text().contains("stale_socket_removed"));
}

#[test]
fn without_a_daemon_the_client_names_the_socket_and_fails() {
    let d = TestDaemon::new("");
    for json in [false, true] {
        let mut args = vec!["status"];
        if json {
            args.insert(0, "--json");
        }
        let out = d.ctl(&args);
        assert_eq!(out.status.code(), Some(69));
        let err = stderr(&out);
        assert!(
            err.contains(d.socket.to_str().unwrap()) && err.contains("not running"),
            "{err}"
        );
        assert!(err.contains("hragd"), "says how to start it: {err}");
        if json {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["error"]["kind"], "daemon_unavailable");
        }
    }
}

fn raw_connection(d: &TestDaemon) -> UnixStream {
    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn malformed_and_oversized_frames_close_only_their_connection() {
    let mut d = TestDaemon::new(ONE_DB);
    d.start();
    // Garbage as a hello.
    let mut s = raw_connection(&d);
    s.write_all(&[0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    // An oversized length prefix (1 GiB) is refused without reading it.
    let mut s = raw_connection(&d);
    s.write_all(&(1u32 << 30).to_be_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty(), "no answer to an oversized frame");
    // A client that connects and says nothing does not block others.
    let _idle = raw_connection(&d);
    for _ in 0..3 {
        assert_eq!(d.state_of("notes"), "idle");
    }
}

#[test]
fn a_protocol_mismatch_gets_a_plain_sentence() {
    let mut d = TestDaemon::new(ONE_DB);
    d.start();
    let mut s = raw_connection(&d);
    // Hello { protocol_min: 99, protocol_max: 99, client: "old" } in bincode's varint encoding.
    let payload = [99u8, 99, 3, b'o', b'l', b'd'];
    s.write_all(&(payload.len() as u32).to_be_bytes()).unwrap();
    s.write_all(&payload).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("protocol") && text.contains("99"), "{text}");
    assert!(d.log_text().contains("protocol_mismatch"));
}

#[test]
fn json_flag_is_global_and_every_json_output_parses() {
    let mut d = TestDaemon::new(ONE_DB);
    d.start();
    for cmd in [
        vec!["status"],
        vec!["health"],
        vec!["db", "list"],
        vec!["db", "show", "notes"],
        vec!["pause", "--all"],
        vec!["resume", "--all"],
        vec!["reload"],
    ] {
        let before = d.json(&cmd);
        let mut after_args = cmd.clone();
        after_args.push("--json");
        let out = d.ctl(&after_args);
        assert!(out.status.success(), "{after_args:?}: {}", stderr(&out));
        let after: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if cmd == ["status"] || cmd == ["health"] {
            assert_eq!(before["databases"], after["databases"]);
        } else {
            assert_eq!(before, after, "{cmd:?}");
        }
    }
    // Errors are JSON too, with the exit code of their class.
    let out = d.ctl(&["--json", "db", "show", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "not_found");
}

#[test]
fn migration_requests_that_cannot_run_answer_typed_errors_and_leave_the_database_as_it_was() {
    let mut d = TestDaemon::new(ONE_DB);
    d.start();
    // A port nothing listens on: the plan's target check fails (exit 3, target error).
    let refused = "postgres://postgres@127.0.0.1:9/postgres";
    for (cmd, code, kind) in [
        (
            vec!["migrate", "nobody", "--to", "postgres"],
            1,
            "not_found",
        ),
        (vec!["verify", "notes"], 6, "invalid_request"),
        (
            vec![
                "migrate",
                "notes",
                "--to",
                "postgres",
                "--connection-string",
                refused,
            ],
            3,
            "target_error",
        ),
    ] {
        let mut args = vec!["--json"];
        args.extend(&cmd);
        let out = d.ctl(&args);
        assert_eq!(out.status.code(), Some(code), "{cmd:?}: {}", stderr(&out));
        let text = stdout(&out);
        // Progress lines (one JSON object each) may come before the pretty-printed answer.
        let at = if text.starts_with("{\n") {
            0
        } else {
            text.find("\n{\n").map_or(0, |i| i + 1)
        };
        let v: serde_json::Value =
            serde_json::from_str(&text[at..]).unwrap_or_else(|e| panic!("{cmd:?}: {e}: {text}"));
        assert_eq!(v["error"]["kind"], kind, "{cmd:?}: {text}");
    }
    assert!(!stderr(&d.ctl(&["migrate", "status"])).contains("panicked"));
    let s = d.json(&["status"]);
    assert_eq!(
        s["databases"][0]["paused"], false,
        "ingestion was given back: {s}"
    );
    assert_eq!(d.state_of("notes"), "idle", "the daemon survives them all");
    assert!(d.registry_text().contains("notes"));
    assert!(
        !d.registry_text().contains("postgres"),
        "the entry stays on JSON"
    );
}

#[test]
fn completions_are_generated_without_a_daemon() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(hragctl())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(stdout(&out).contains("hragctl"));
    }
}
