//! `hragctl backend setup-docker`: PostgreSQL + pgvector in a Docker container, from the
//! project's compose file (`docker/docker-compose.postgres.yaml`, compiled in).
//!
//! Look before acting: a running, healthy container is only reported; a stopped one is
//! started; an absent one is created with `docker compose up -d`. The compose project lives in
//! `<data>/docker/` (`$HRAG_DOCKER_DIR` overrides): the compose file and a 0600 `.env` with the
//! password, port and volume, so a later run, or the user's own `docker compose`, finds them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::client::ClientError;

use super::runner::{Cmd, Runner};
use super::{Report, code, fail};

/// The compose file shipped in the repository: one source of truth for users and this command.
pub const COMPOSE_FILE: &str = include_str!("../../../docker/docker-compose.postgres.yaml");
pub const COMPOSE_NAME: &str = "docker-compose.postgres.yaml";
/// HybridRAG's defaults, so existing setups are found again.
pub const CONTAINER: &str = "hybridrag-postgres";
pub const DEFAULT_VOLUME: &str = "hybridrag-pgdata";
pub const DEFAULT_PORT: u16 = 5433;
pub const USER: &str = "hybridrag";
pub const DATABASE: &str = "hybridrag";
const PROJECT: &str = "hrag";

pub struct Options {
    pub port: Option<u16>,
    /// `--password`, else `$POSTGRES_PASSWORD` (the caller merges them).
    pub password: Option<String>,
    pub volume: Option<String>,
    pub db: Option<String>,
    pub socket: PathBuf,
    pub dir: PathBuf,
    /// How long to wait for the healthcheck.
    pub timeout: Duration,
}

impl Options {
    /// `$HRAG_DOCKER_DIR`, else `<data home>/docker`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("HRAG_DOCKER_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| super::data_home().join("docker"))
    }
}

/// The container's state as `docker inspect` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Absent,
    /// `.State.Status` (running, exited, created, paused…) and the health status, if any.
    Present {
        status: String,
        health: String,
    },
}

/// The project's settings: what the `.env` beside the compose file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    password: String,
    port: u16,
    volume: String,
}

impl Settings {
    /// Single quotes keep compose from interpolating `$` in a password.
    fn env_text(&self) -> String {
        format!(
            "# written by hragctl backend setup-docker; read by docker compose\n\
             POSTGRES_PASSWORD='{}'\nHRAG_PG_PORT={}\nHRAG_PG_VOLUME={}\nHRAG_PG_CONTAINER={CONTAINER}\n",
            self.password, self.port, self.volume
        )
    }

    fn parse(text: &str) -> (Option<String>, Option<u16>, Option<String>) {
        let mut out = (None, None, None);
        for line in text.lines() {
            match line.split_once('=') {
                Some(("POSTGRES_PASSWORD", v)) => {
                    let v = v
                        .strip_prefix('\'')
                        .and_then(|v| v.strip_suffix('\''))
                        .unwrap_or(v);
                    out.0 = Some(v.to_owned());
                }
                Some(("HRAG_PG_PORT", v)) => out.1 = v.parse().ok(),
                Some(("HRAG_PG_VOLUME", v)) => out.2 = Some(v.to_owned()),
                _ => {}
            }
        }
        out
    }
}

struct Project<'a> {
    runner: &'a dyn Runner,
    dir: &'a Path,
}

impl Project<'_> {
    fn compose_path(&self) -> PathBuf {
        self.dir.join(COMPOSE_NAME)
    }

    fn env_path(&self) -> PathBuf {
        self.dir.join(".env")
    }

    fn compose(&self) -> Cmd {
        Cmd::new("docker")
            .args(["compose", "--project-name", PROJECT, "--project-directory"])
            .arg(self.dir.display().to_string())
            .arg("-f")
            .arg(self.compose_path().display().to_string())
            .arg("--env-file")
            .arg(self.env_path().display().to_string())
    }

    fn inspect(&self) -> Cmd {
        Cmd::new("docker").args([
            "inspect",
            "--format",
            "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
            CONTAINER,
        ])
    }

    fn create_extension(&self) -> Cmd {
        Cmd::new("docker").args([
            "exec",
            CONTAINER,
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            USER,
            "-d",
            DATABASE,
            "-c",
            "CREATE EXTENSION IF NOT EXISTS vector",
        ])
    }

    fn run(&self, cmd: &Cmd, failure: i32, what: &str) -> Result<String, ClientError> {
        match self.runner.run(cmd) {
            Ok(o) if o.success => Ok(o.stdout),
            Ok(o) => Err(fail(failure, format!("{what}: {}", o.reason()))),
            Err(e) => Err(fail(failure, format!("{what}: cannot run docker: {e}"))),
        }
    }

    /// docker CLI installed, engine reachable, compose plugin present.
    fn check_docker(&self) -> Result<(), ClientError> {
        match self
            .runner
            .run(&Cmd::new("docker").args(["info", "--format", "{{.ServerVersion}}"]))
        {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(fail(
                    code::UNAVAILABLE,
                    "docker is not installed (no `docker` on PATH): install Docker, or use \
                     `hragctl backend setup-local` to run PostgreSQL from this machine's binaries",
                ));
            }
            Err(e) => return Err(fail(code::UNAVAILABLE, format!("cannot run docker: {e}"))),
            Ok(o) if !o.success => {
                return Err(fail(
                    code::UNAVAILABLE,
                    format!(
                        "the Docker engine is not reachable ({}): start it (systemctl start \
                         docker) or check your permission on its socket",
                        o.reason()
                    ),
                ));
            }
            Ok(_) => {}
        }
        self.run(
            &Cmd::new("docker").args(["compose", "version"]),
            code::UNAVAILABLE,
            "the docker compose plugin is missing",
        )
        .map(|_| ())
    }

    /// Whether a Docker volume of that name exists (any failure counts as no).
    fn volume_exists(&self, name: &str) -> bool {
        let cmd = Cmd::new("docker").args(["volume", "inspect", name]);
        self.runner.run(&cmd).is_ok_and(|o| o.success)
    }

    fn state(&self) -> Result<State, ClientError> {
        let out = self
            .runner
            .run(&self.inspect())
            .map_err(|e| fail(code::UNAVAILABLE, format!("cannot run docker: {e}")))?;
        if !out.success {
            if out.stderr.to_lowercase().contains("no such") {
                return Ok(State::Absent);
            }
            return Err(fail(
                code::UNAVAILABLE,
                format!("docker inspect {CONTAINER}: {}", out.reason()),
            ));
        }
        let mut words = out.stdout.split_whitespace();
        Ok(State::Present {
            status: words.next().unwrap_or("unknown").to_owned(),
            health: words.next().unwrap_or("").to_owned(),
        })
    }

    fn write_files(&self, s: &Settings) -> Result<(), ClientError> {
        let io = |p: &Path, e: std::io::Error| {
            fail(
                code::CREATE_FAILED,
                format!("cannot write {}: {e}", p.display()),
            )
        };
        std::fs::create_dir_all(self.dir).map_err(|e| io(self.dir, e))?;
        let compose = self.compose_path();
        super::write_private(&compose, COMPOSE_FILE).map_err(|e| io(&compose, e))?;
        let env = self.env_path();
        super::write_private(&env, &s.env_text()).map_err(|e| io(&env, e))
    }

    /// Polls the healthcheck until healthy, unhealthy or the deadline.
    fn wait_healthy(&self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.state()? {
                State::Present { status, health }
                    if status == "running" && (health == "healthy" || health.is_empty()) =>
                {
                    return Ok(());
                }
                State::Present { health, .. } if health == "unhealthy" => {
                    return Err(fail(
                        code::CREATE_FAILED,
                        format!("{CONTAINER} is unhealthy: see `docker logs {CONTAINER}`"),
                    ));
                }
                _ if Instant::now() >= deadline => {
                    return Err(fail(
                        code::CREATE_FAILED,
                        format!(
                            "{CONTAINER} did not become healthy within {}s: see `docker logs \
                             {CONTAINER}`",
                            timeout.as_secs()
                        ),
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
}

/// Password, port and volume, and where they came from.
struct Resolved {
    settings: Settings,
    /// No password was given or saved: a new one was made (fine only for a new container).
    password_generated: bool,
    /// The port saved in the project's `.env` by an earlier run.
    saved_port: Option<u16>,
}

/// Resolves password, port and volume: flags, then the project's `.env`, then defaults (a new
/// random password).
fn settings(opts: &Options, env_file: &Path) -> Result<Resolved, ClientError> {
    let (pw, port, volume) = std::fs::read_to_string(env_file)
        .map(|t| Settings::parse(&t))
        .unwrap_or_default();
    let (password, password_generated) = match opts.password.clone().or(pw) {
        Some(p) => (p, false),
        None => (super::random_password()?, true),
    };
    if password.is_empty() || password.contains(['\n', '\r', '\'']) {
        return Err(fail(
            hrag_proto::exit::INVALID,
            "the password must be one non-empty line without single quotes",
        ));
    }
    Ok(Resolved {
        settings: Settings {
            password,
            port: opts.port.or(port).unwrap_or(DEFAULT_PORT),
            volume: opts
                .volume
                .clone()
                .or(volume)
                .unwrap_or_else(|| DEFAULT_VOLUME.to_owned()),
        },
        password_generated,
        saved_port: port,
    })
}

/// An existing container keeps its port and password: refuse flags that contradict them
/// rather than register a connection that cannot work.
fn check_existing(opts: &Options, r: &Resolved) -> Result<(), ClientError> {
    if let (Some(saved), Some(asked)) = (r.saved_port, opts.port)
        && saved != asked
    {
        return Err(fail(
            hrag_proto::exit::INVALID,
            format!(
                "{CONTAINER} already exists, published on port {saved}: pass --port {saved}, or \
                 remove the container to publish another port"
            ),
        ));
    }
    if r.password_generated && opts.db.is_some() {
        return Err(fail(
            hrag_proto::exit::INVALID,
            format!(
                "{CONTAINER} already exists but hragctl does not know its password: pass \
                 --password (or set POSTGRES_PASSWORD)"
            ),
        ));
    }
    Ok(())
}

pub fn setup(runner: &dyn Runner, opts: &Options) -> Result<Report, ClientError> {
    let p = Project {
        runner,
        dir: &opts.dir,
    };
    p.check_docker()?;
    let resolved = settings(opts, &p.env_path())?;
    let s = &resolved.settings;
    let state = p.state()?;
    if state != State::Absent {
        check_existing(opts, &resolved)?;
    }
    let mut actions = Vec::new();
    match state {
        State::Absent => {
            if !super::port_free(s.port) {
                return Err(fail(
                    code::PORT_IN_USE,
                    format!(
                        "port {} on 127.0.0.1 is in use: choose another with --port",
                        s.port
                    ),
                ));
            }
            // Postgres takes POSTGRES_PASSWORD only when it initialises an empty volume: a
            // volume left by an earlier install keeps its own password, which a new random one
            // would not match.
            if resolved.password_generated && p.volume_exists(&s.volume) {
                return Err(fail(
                    hrag_proto::exit::INVALID,
                    format!(
                        "the volume {} already holds a database whose password hragctl does not \
                         know: pass --password (or set POSTGRES_PASSWORD), or choose another \
                         --volume",
                        s.volume
                    ),
                ));
            }
            p.write_files(s)?;
            p.run(
                &p.compose().args(["up", "-d", "postgres"]),
                code::CREATE_FAILED,
                "docker compose up failed",
            )?;
            actions.push(format!(
                "created {CONTAINER} (volume {}, port {}) with docker compose up",
                s.volume, s.port
            ));
        }
        State::Present { status, .. } if status == "running" => {}
        State::Present { status, .. } => {
            // Saved for later runs only when the password is known, never a guessed one.
            if !p.env_path().is_file() && !resolved.password_generated {
                p.write_files(s)?;
            }
            let verb = if status == "paused" {
                "unpause"
            } else {
                "start"
            };
            p.run(
                &Cmd::new("docker").arg(verb).arg(CONTAINER),
                code::CREATE_FAILED,
                &format!("docker {verb} {CONTAINER} failed"),
            )?;
            actions.push(format!("started {CONTAINER} (it was {status})"));
        }
    }
    p.wait_healthy(opts.timeout)?;
    p.run(
        &p.create_extension(),
        code::CREATE_FAILED,
        "creating the vector extension failed",
    )?;

    let clean = format!("postgresql://{USER}@127.0.0.1:{}/{DATABASE}", s.port);
    let mut report = Report {
        kind: "docker",
        changed: !actions.is_empty(),
        actions,
        location: format!("container {CONTAINER}, volume {}", s.volume),
        port: s.port,
        connection: clean,
        registered: None,
        served: None,
        served_note: None,
        password_file: Some(p.env_path().display().to_string()),
    };
    super::register_into(&mut report, &opts.socket, opts.db.as_deref(), &s.password)?;
    Ok(report)
}

/// `--dry-run`: the compose file and the commands a run on an empty host would issue.
pub fn plan(opts: &Options) -> (String, Vec<String>) {
    let p = Project {
        runner: &super::runner::SystemRunner,
        dir: &opts.dir,
    };
    let port = opts.port.unwrap_or(DEFAULT_PORT);
    let volume = opts.volume.clone().unwrap_or_else(|| DEFAULT_VOLUME.into());
    let mut cmds = vec![
        "docker info --format '{{.ServerVersion}}'".to_owned(),
        "docker compose version".to_owned(),
        p.inspect().display(),
        format!("docker volume inspect {volume}   (an existing volume needs its password)"),
        format!(
            "write {} and {} (0600: POSTGRES_PASSWORD=***, HRAG_PG_PORT={port}, HRAG_PG_VOLUME={volume})",
            p.compose_path().display(),
            p.env_path().display()
        ),
        p.compose().args(["up", "-d", "postgres"]).display(),
        format!("{}   (until healthy)", p.inspect().display()),
        p.create_extension().display(),
    ];
    if let Some(db) = &opts.db {
        cmds.push(format!(
            "hragctl db set-backend {db} --backend postgres --connection-string \
             postgresql://{USER}:***@127.0.0.1:{port}/{DATABASE}   (hragd stores the password in a 0600 file)"
        ));
    }
    (COMPOSE_FILE.to_owned(), cmds)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::setup::runner::Outcome;

    /// Answers like docker would, from a list of `docker inspect` results consumed in order
    /// (the last one repeats), and records every command.
    struct Scripted {
        inspect: RefCell<Vec<Option<&'static str>>>,
        calls: RefCell<Vec<String>>,
    }

    impl Scripted {
        fn new(inspect: Vec<Option<&'static str>>) -> Scripted {
            Scripted {
                inspect: RefCell::new(inspect),
                calls: RefCell::new(Vec::new()),
            }
        }
    }

    impl Runner for Scripted {
        fn run(&self, cmd: &Cmd) -> std::io::Result<Outcome> {
            self.calls.borrow_mut().push(cmd.args.join(" "));
            let ok = |out: &str| Outcome {
                success: true,
                stdout: out.to_owned(),
                stderr: String::new(),
            };
            Ok(match cmd.args.first().map(String::as_str) {
                Some("inspect") => {
                    let mut q = self.inspect.borrow_mut();
                    let next = if q.len() > 1 { q.remove(0) } else { q[0] };
                    match next {
                        Some(state) => ok(state),
                        None => Outcome {
                            success: false,
                            stdout: String::new(),
                            stderr: "Error: No such object: hybridrag-postgres".into(),
                        },
                    }
                }
                _ => ok(""),
            })
        }
    }

    fn options(dir: &str) -> Options {
        let dir = std::env::temp_dir().join(format!("hrag-{dir}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Options {
            port: Some(0),
            password: Some("pw".into()),
            volume: None,
            db: None,
            socket: "/nonexistent".into(),
            dir,
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn absent_is_created_then_waited_for_until_healthy() {
        let runner = Scripted::new(vec![
            None,
            Some("running starting"),
            Some("running healthy"),
        ]);
        let opts = options("created");
        let report = setup(&runner, &opts)
            .map_err(|e| e.message)
            .unwrap_or_else(|m| panic!("{m}"));
        let calls = runner.calls.borrow();
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.ends_with("up -d postgres"))
                .count(),
            1
        );
        assert_eq!(calls.iter().filter(|c| c.starts_with("inspect")).count(), 3);
        assert!(
            calls
                .last()
                .is_some_and(|c| c.contains("CREATE EXTENSION IF NOT EXISTS vector"))
        );
        assert!(report.changed);
        let _ = std::fs::remove_dir_all(&opts.dir);
    }

    #[test]
    fn an_existing_container_with_an_unknown_password_is_not_registered() {
        let runner = Scripted::new(vec![Some("running healthy")]);
        let mut opts = options("unknown");
        opts.password = None;
        opts.db = Some("notes".into());
        let err = setup(&runner, &opts).err().map(|e| (e.code, e.message));
        let (code, message) = err.unwrap_or_default();
        assert_eq!(code, hrag_proto::exit::INVALID, "{message}");
        assert!(message.contains("--password"), "{message}");
        assert!(!runner.calls.borrow().iter().any(|c| c.contains(" up ")));
    }

    #[test]
    fn env_file_round_trips_and_quotes_the_password() {
        let s = Settings {
            password: "a$b c".into(),
            port: 5499,
            volume: "v1".into(),
        };
        let text = s.env_text();
        assert!(text.contains("POSTGRES_PASSWORD='a$b c'"));
        assert_eq!(
            Settings::parse(&text),
            (Some("a$b c".into()), Some(5499), Some("v1".into()))
        );
    }
}
