//! Operations (issue #8): the systemd units, the compose file, and `hragctl backend
//! setup-local` / `setup-docker` run for real. setup-local drives this machine's initdb/pg_ctl;
//! setup-docker runs against a stand-in `docker` executable (no Docker engine is available
//! where these tests run), which records every call so idempotence can be checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::daemon::{TestDaemon, hragctl, hragd, stderr, stdout};
use crate::support::pg::{sql_exec, sql_value};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

const ONE_DB: &str = "version: 1\ndatabases:\n  local1:\n    path: {dir}/kb\n";

// ---------------------------------------------------------------------------------------------
// systemd units and the compose file

#[test]
fn systemd_units_verify_and_the_system_unit_is_hardened() {
    // The check CI runs: verify both units (against the built hragd) and exposure <= 2.0.
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/check-systemd"))
        .arg(hragd())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/check-systemd failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("systemd units OK"),
        "{}",
        stdout(&out)
    );
    for unit in ["hragd.service", "hragd.user.service"] {
        let text = std::fs::read_to_string(repo_root().join("systemd").join(unit)).unwrap();
        for line in [
            "Type=notify",
            "Restart=on-failure",
            "RuntimeDirectory=hrag",
            "StateDirectory=hrag",
        ] {
            assert!(text.lines().any(|l| l == line), "{unit}: no {line}");
        }
        let secs = |key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{unit}: no {key}"))
                .parse()
                .unwrap()
        };
        let drain = secs("Environment=HRAG_DRAIN_TIMEOUT=");
        assert!(
            secs("TimeoutStopSec=") > drain,
            "{unit}: stop timeout <= drain"
        );
        assert!(secs("WatchdogSec=") > 0);
        assert!(
            text.lines().any(|l| l.starts_with("EnvironmentFile=-")),
            "{unit}: optional EnvironmentFile"
        );
    }
}

#[test]
fn compose_file_runs_pgvector_with_a_volume_a_healthcheck_and_no_password() {
    let text =
        std::fs::read_to_string(repo_root().join("docker/docker-compose.postgres.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let pg = &doc["services"]["postgres"];
    let image = pg["image"].as_str().unwrap();
    assert!(image.starts_with("pgvector/pgvector:pg"), "{image}");
    assert!(!image.contains("age"), "no Apache AGE image: {image}");
    assert_eq!(pg["restart"].as_str(), Some("unless-stopped"));

    // A named volume, declared at the top level.
    let mount = pg["volumes"][0].as_str().unwrap();
    let (volume, target) = mount.split_once(':').unwrap();
    assert_eq!(target, "/var/lib/postgresql/data");
    assert!(
        doc["volumes"].get(volume).is_some(),
        "{volume} not declared"
    );

    let test = serde_yaml_ng::to_string(&pg["healthcheck"]["test"]).unwrap();
    assert!(test.contains("pg_isready"), "{test}");

    // Port and password from the environment; the password is required, never defaulted.
    let port = pg["ports"][0].as_str().unwrap();
    assert!(port.contains("${HRAG_PG_PORT"), "{port}");
    for svc in ["postgres", "hragd"] {
        let pw = doc["services"][svc]["environment"]["POSTGRES_PASSWORD"]
            .as_str()
            .unwrap();
        assert!(pw.starts_with("${POSTGRES_PASSWORD:?"), "{svc}: {pw}");
    }
    // Memory is bounded for the container and Postgres is sized for it.
    assert!(pg["mem_limit"].as_str().is_some());
    let command = serde_yaml_ng::to_string(&pg["command"]).unwrap();
    assert!(command.contains("shared_buffers="), "{command}");

    // The daemon runs next to Postgres only when asked for (a profile), waiting for health.
    let d = &doc["services"]["hragd"];
    assert_eq!(d["profiles"][0].as_str(), Some("hragd"));
    assert_eq!(
        d["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    assert_eq!(d["build"]["dockerfile"].as_str(), Some("docker/Dockerfile"));

    let dockerfile = std::fs::read_to_string(repo_root().join("docker/Dockerfile")).unwrap();
    assert!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 2
    );
    assert!(dockerfile.contains("\nUSER 65532"), "non-root final image");
}

// ---------------------------------------------------------------------------------------------
// setup-local: a real cluster from this machine's binaries

/// The cluster directory of one test; the server is stopped on drop.
struct LocalCluster {
    dir: tempfile::TempDir,
}

impl LocalCluster {
    fn new() -> LocalCluster {
        let dir = tempfile::Builder::new()
            .prefix("hrag-local.")
            .tempdir_in("/tmp")
            .unwrap();
        // initdb runs as `postgres` when we are root: it must traverse the parent.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        LocalCluster { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("pg")
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let data = self.path().join("data");
        if !data.exists() {
            return;
        }
        let bin = "/usr/lib/postgresql/15/bin/pg_ctl";
        let mut c = if nix::unistd::geteuid().is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", bin]);
            c
        } else {
            Command::new(bin)
        };
        let _ = c
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn setup_local_makes_a_pgvector_cluster_registers_it_and_is_idempotent() {
    let cluster = LocalCluster::new();
    let mut d = TestDaemon::new(ONE_DB);
    d.start();
    let port = free_port().to_string();
    let dir = cluster.path();
    let args = [
        "backend",
        "setup-local",
        "--dir",
        dir.to_str().unwrap(),
        "--port",
        &port,
        "--db",
        "local1",
    ];
    let first = d.ctl(&args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let text = stdout(&first);
    for what in [
        "initialised a cluster",
        "started PostgreSQL",
        "created the role hrag",
        "created the database hrag",
        "created the vector extension",
        "pointed the database local1",
    ] {
        assert!(text.contains(what), "{what} missing from:\n{text}");
    }

    // The registry points local1 at the cluster, and holds no password.
    let registry = d.registry_text();
    let dsn = format!("postgresql://hrag@127.0.0.1:{port}/hrag");
    assert!(registry.contains("backend_type: postgres"), "{registry}");
    assert!(registry.contains(&dsn), "{registry}");
    let password_file = d.state.join("secrets/local1.password");
    assert_eq!(mode(&password_file), 0o600);
    let password = std::fs::read_to_string(&password_file).unwrap();
    assert!(password.len() >= 32);
    assert!(!registry.contains(&password), "password in the registry");
    assert!(!text.contains(&password) && !stderr(&first).contains(&password));
    assert!(!d.log_text().contains(&password), "password in hragd's log");
    // hragctl's own copy, for later runs: 0600 too.
    assert_eq!(mode(&dir.join("hrag.password")), 0o600);

    // A working cluster with pgvector, reachable as hragd will reach it (TCP, scram).
    let url = format!("postgresql://hrag:{password}@127.0.0.1:{port}/hrag");
    let ext = sql_value::<String>(
        &url,
        "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
    )
    .unwrap();
    assert!(!ext.is_empty());
    let v = sql_value::<String>(
        &url,
        "SELECT ('[1,2,3]'::vector <-> '[1,2,4]'::vector)::text",
    )
    .unwrap();
    assert_eq!(v, "1");
    // …and not without the password.
    let refused = sql_value::<String>(
        &format!("postgresql://hrag@127.0.0.1:{port}/hrag"),
        "SELECT '1'",
    );
    assert!(refused.is_err(), "logged in without a password");

    // Second run: nothing changes, and it says so.
    let before = d.registry_text();
    let second = d.ctl(&args);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("nothing changed"),
        "{}",
        stdout(&second)
    );
    assert_eq!(before, d.registry_text());
    assert_eq!(std::fs::read_to_string(&password_file).unwrap(), password);
    let third = d.json(&args);
    assert_eq!(third["changed"], false, "{third}");
    assert_eq!(third["actions"], serde_json::json!([]));
    assert_eq!(third["connection"], dsn.as_str());
    // setup waits for hragd to open the database there, and says why when it cannot.
    assert_eq!(third["registered"], "local1");
    match third["served"].as_bool() {
        Some(true) => {}
        Some(false) => assert!(third["served_note"].as_str().is_some_and(|n| !n.is_empty())),
        None => panic!("no served field: {third}"),
    }
    assert!(!third.to_string().contains(&password));

    // The same cluster asked for on another port is refused, clearly.
    let other = free_port().to_string();
    let mut wrong = args;
    wrong[5] = &other;
    let out = d.ctl(&wrong);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("configured for port {port}")));

    // A stopped server is started again (and only that).
    cluster_stop(&dir);
    let again = d.ctl(&args);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let text = stdout(&again);
    assert!(
        text.contains("started PostgreSQL") && !text.contains("created"),
        "{text}"
    );

    // The restart cost hragd its connections (and its single-writer lock): it notices, gets
    // them back, and then stores what it ingests there and answers from it.
    crate::pg_daemon::wait_log(&d, "backend_reconnected");
    crate::pg_daemon::wait_state(&d, "local1", "idle", std::time::Duration::from_secs(60));
    let note = dir.join("lighthouse.md");
    std::fs::write(
        &note,
        "Orla Quinn keeps the Skerry lighthouse and logs every storm in the Skerry ledger.\n",
    )
    .unwrap();
    let out = d.ctl(&["ingest", "local1", note.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    crate::pg_daemon::wait_docs(&d, "local1", 1, std::time::Duration::from_secs(90));
    let rows = sql_value::<String>(
        &url,
        "SELECT count(*)::text FROM lightrag_doc_status WHERE workspace = 'local1'",
    )
    .unwrap();
    assert_eq!(rows, "1");
    let hits = d.json(&[
        "query",
        "local1",
        "Skerry lighthouse storms",
        "--mode",
        "naive",
    ]);
    assert!(
        hits["chunks"][0]["content"]
            .as_str()
            .is_some_and(|c| c.contains("Orla Quinn")),
        "{hits}"
    );
}

fn cluster_stop(dir: &Path) -> Output {
    let data = dir.join("data");
    let bin = "/usr/lib/postgresql/15/bin/pg_ctl";
    let mut c = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", bin]);
        c
    } else {
        Command::new(bin)
    };
    let out = c
        .args(["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

#[test]
fn setup_local_refuses_a_port_in_use() {
    let cluster = LocalCluster::new();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = Command::new(hragctl())
        .args([
            "backend",
            "setup-local",
            "--dir",
            cluster.path().to_str().unwrap(),
        ])
        .args(["--port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    assert!(
        !cluster.path().join("data").exists(),
        "a refused run initialised a cluster"
    );
}

// ---------------------------------------------------------------------------------------------
// setup-docker through its command runner

/// A stand-in `docker`: logs each call's arguments to `calls.log` and answers from `state`
/// (absent, running healthy, exited…), as the real CLI does for the commands setup-docker uses.
const FAKE_DOCKER: &str = r#"#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls.log"
state=$(cat "$here/state" 2>/dev/null || echo absent)
case "$1" in
  info) echo 28.2.2 ;;
  compose)
    case " $* " in
      *" version "*) echo "Docker Compose version v2.36.0" ;;
      *" up "*)
        [ -f "$here/up-fails" ] && { echo "Error response from daemon: pull access denied" >&2; exit 1; }
        echo "running healthy" > "$here/state" ;;
    esac ;;
  inspect)
    if [ "$state" = absent ]; then
      echo "Error: No such object: $4" >&2; exit 1
    fi
    echo "$state" ;;
  start) echo "running healthy" > "$here/state"; echo "$2" ;;
  volume) [ -f "$here/volume-exists" ] && echo '[{"Name": "hybridrag-pgdata"}]' && exit 0
          echo "Error response from daemon: get $3: no such volume" >&2; exit 1 ;;
  exec) exit 0 ;;
  *) echo "fake docker: unexpected $*" >&2; exit 1 ;;
esac
"#;

struct FakeDocker {
    dir: tempfile::TempDir,
}

impl FakeDocker {
    fn new() -> FakeDocker {
        let dir = tempfile::Builder::new()
            .prefix("hrag-docker.")
            .tempdir_in("/tmp")
            .unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let exe = bin.join("docker");
        std::fs::write(&exe, FAKE_DOCKER).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeDocker { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.bin().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn set_state(&self, s: &str) {
        std::fs::write(self.bin().join("state"), format!("{s}\n")).unwrap();
    }

    /// Runs hragctl with only the stand-in (and the base system) on PATH.
    fn ctl(&self, socket: &Path, args: &[&str]) -> Output {
        Command::new(hragctl())
            .arg("--socket")
            .arg(socket)
            .args(args)
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin().display()))
            .env("HRAG_DOCKER_DIR", self.project())
            .env_remove("POSTGRES_PASSWORD")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

#[test]
fn setup_docker_without_docker_says_so_and_exits_1() {
    let empty = tempfile::tempdir_in("/tmp").unwrap();
    let out = Command::new(hragctl())
        .args(["backend", "setup-docker", "--port", "1"])
        .env("PATH", empty.path())
        .env("HRAG_DOCKER_DIR", empty.path().join("project"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("docker is not installed"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("setup-local"),
        "points at the alternative"
    );
    assert!(!empty.path().join("project").exists(), "nothing written");

    // An installed CLI whose engine is down is "unavailable" too.
    let fake = FakeDocker::new();
    let down = fake.bin().join("docker");
    std::fs::write(
        &down,
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock' >&2\nexit 1\n",
    )
    .unwrap();
    let out = fake.ctl(Path::new("/nonexistent"), &["backend", "setup-docker"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not reachable"), "{}", stderr(&out));
}

#[test]
fn setup_docker_creates_once_then_only_reports_or_starts() {
    let fake = FakeDocker::new();
    let nosock = Path::new("/nonexistent/hragd.sock");
    let port = free_port().to_string();
    let args = ["backend", "setup-docker", "--port", &port];

    let first = fake.ctl(nosock, &args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let calls = fake.calls();
    let ups: Vec<_> = calls
        .iter()
        .filter(|c| c.contains(" up -d postgres"))
        .collect();
    assert_eq!(ups.len(), 1, "{calls:#?}");
    assert!(
        ups[0].starts_with("compose --project-name hrag"),
        "{}",
        ups[0]
    );
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("exec hybridrag-postgres psql")
                && c.contains("CREATE EXTENSION IF NOT EXISTS vector")),
        "{calls:#?}"
    );

    // The project files: the repository's compose file, and a 0600 .env with the password.
    let compose = fake.project().join("docker-compose.postgres.yaml");
    assert_eq!(
        std::fs::read_to_string(&compose).unwrap(),
        std::fs::read_to_string(repo_root().join("docker/docker-compose.postgres.yaml")).unwrap()
    );
    let env_file = fake.project().join(".env");
    assert_eq!(mode(&env_file), 0o600);
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(env.contains(&format!("HRAG_PG_PORT={port}")));
    assert!(env.contains("HRAG_PG_VOLUME=hybridrag-pgdata"));
    let password = env
        .lines()
        .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD='"))
        .and_then(|v| v.strip_suffix('\''))
        .unwrap()
        .to_owned();
    assert!(password.len() >= 32);
    for (what, text) in [
        ("docker arguments", calls.join("\n")),
        ("stdout", stdout(&first)),
        ("stderr", stderr(&first)),
    ] {
        assert!(!text.contains(&password), "password in the {what}");
    }

    // Second run: running and healthy → report only; no `up`, files unchanged.
    let n = fake.calls().len();
    let second = fake.ctl(nosock, &args);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("nothing changed"),
        "{}",
        stdout(&second)
    );
    let new_calls = &fake.calls()[n..];
    assert!(
        !new_calls.iter().any(|c| c.contains(" up ")),
        "{new_calls:#?}"
    );
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), env);

    // Stopped → started, not re-created; --json reports it without the password.
    fake.set_state("exited");
    let n = fake.calls().len();
    let mut json_args = vec!["--json"];
    json_args.extend_from_slice(&args);
    let third = fake.ctl(nosock, &json_args);
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    let report: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(report["changed"], true);
    assert_eq!(report["port"].as_u64(), Some(port.parse().unwrap()));
    assert!(!report.to_string().contains(&password));
    let new_calls = &fake.calls()[n..];
    assert!(
        new_calls.iter().any(|c| c == "start hybridrag-postgres"),
        "{new_calls:#?}"
    );
    assert!(
        !new_calls.iter().any(|c| c.contains(" up ")),
        "{new_calls:#?}"
    );
}

#[test]
fn setup_docker_registers_a_running_server_with_the_password_in_a_0600_file() {
    // The "container" is a real private PostgreSQL published on its port, so hragd can reach
    // what it is pointed at; the stand-in docker reports it running and healthy.
    let pg = crate::support::pg::PgCluster::start();
    // One statement each: a multi-statement string runs in one transaction, which CREATE
    // DATABASE refuses.
    sql_exec(&pg.url(), "CREATE ROLE hybridrag LOGIN").unwrap();
    sql_exec(&pg.url(), "CREATE DATABASE hybridrag OWNER hybridrag").unwrap();
    sql_exec(
        &format!("postgres://postgres@127.0.0.1:{}/hybridrag", pg.port()),
        "CREATE EXTENSION IF NOT EXISTS vector",
    )
    .unwrap();
    let fake = FakeDocker::new();
    fake.set_state("running healthy");
    let mut d = TestDaemon::new(ONE_DB);
    d.start();
    let port = pg.port().to_string();
    let args = ["backend", "setup-docker", "--port", &port, "--db", "local1"];

    // An existing container whose password hragctl does not know is not registered.
    let out = fake.ctl(&d.socket, &args);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("--password"), "{}", stderr(&out));
    assert!(!d.registry_text().contains("postgres"));

    let password = "s3cret-from-env";
    let run = |args: &[&str]| {
        let mut c = Command::new(hragctl());
        c.arg("--socket")
            .arg(&d.socket)
            .args(args)
            .env("PATH", format!("{}:/usr/bin:/bin", fake.bin().display()))
            .env("HRAG_DOCKER_DIR", fake.project())
            .env("POSTGRES_PASSWORD", password)
            .stdin(Stdio::null());
        c.output().unwrap()
    };
    let first = run(&args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("pointed the database local1"),
        "{}",
        stdout(&first)
    );
    assert!(
        !fake.calls().iter().any(|c| c.contains(" up ")),
        "a running container is not re-created"
    );

    let registry = d.registry_text();
    assert!(registry.contains("backend_type: postgres"), "{registry}");
    assert!(registry.contains(&format!(
        "postgresql://hybridrag@127.0.0.1:{port}/hybridrag"
    )));
    let secret = d.state.join("secrets/local1.password");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), password);
    assert_eq!(mode(&secret), 0o600);
    for (what, text) in [
        ("registry", registry.clone()),
        ("docker arguments", fake.calls().join("\n")),
        ("stdout", stdout(&first)),
        ("stderr", stderr(&first)),
        ("hragd log", d.log_text()),
    ] {
        assert!(!text.contains(password), "password in the {what}");
    }

    // Again: nothing to do, registry untouched.
    let second = run(&args);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("nothing changed"),
        "{}",
        stdout(&second)
    );
    assert_eq!(registry, d.registry_text());
}

#[test]
fn setup_docker_port_in_use_create_failure_and_dry_run() {
    let fake = FakeDocker::new();
    let nosock = Path::new("/nonexistent/hragd.sock");

    // Port in use: exit 2, nothing created.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = fake.ctl(nosock, &["backend", "setup-docker", "--port", &port]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("in use"));
    assert!(!fake.calls().iter().any(|c| c.contains(" up ")));
    drop(busy);

    // A volume left by an earlier install keeps its password: without one, nothing is created.
    std::fs::write(fake.bin().join("volume-exists"), "").unwrap();
    let port = free_port().to_string();
    let out = fake.ctl(nosock, &["backend", "setup-docker", "--port", &port]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hybridrag-pgdata"),
        "{}",
        stderr(&out)
    );
    assert!(!fake.calls().iter().any(|c| c.contains(" up ")));
    std::fs::remove_file(fake.bin().join("volume-exists")).unwrap();

    // compose up fails: exit 3 with docker's reason.
    std::fs::write(fake.bin().join("up-fails"), "").unwrap();
    let port = free_port().to_string();
    let out = fake.ctl(nosock, &["backend", "setup-docker", "--port", &port]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pull access denied"),
        "{}",
        stderr(&out)
    );

    // --dry-run prints the compose file and the commands, and runs nothing.
    let n = fake.calls().len();
    let out = fake.ctl(
        nosock,
        &[
            "backend",
            "setup-docker",
            "--dry-run",
            "--port",
            "6543",
            "--db",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("image: pgvector/pgvector:pg15"), "{text}");
    assert!(
        text.contains("up -d postgres") && text.contains("HRAG_PG_PORT=6543"),
        "{text}"
    );
    assert!(text.contains("db set-backend x"), "{text}");
    assert_eq!(fake.calls().len(), n, "a dry run calls docker");
    let out = fake.ctl(nosock, &["--json", "backend", "setup-docker", "--dry-run"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert!(v["compose_file"].as_str().unwrap().contains("pg_isready"));
    assert!(v["commands"].as_array().unwrap().len() >= 5);
}
