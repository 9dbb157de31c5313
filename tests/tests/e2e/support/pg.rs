//! A private, throwaway PostgreSQL cluster (with pgvector) for tests.
//!
//! Each [`PgCluster`] lives in its own short temporary directory under `/tmp` (unix socket paths
//! are limited to ~107 bytes), listens on a free TCP port on 127.0.0.1 and on a unix socket in that
//! directory, trusts every local connection as the `postgres` superuser, and is torn down on drop.
//!
//! Missing PostgreSQL binaries or a missing pgvector extension make [`PgCluster::start`] panic with
//! a clear message: tests are never skipped silently. Install both with
//! `scripts/setup-postgres.sh` (as root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// How many times `start` retries with a new port when the one picked got taken in between.
const PORT_ATTEMPTS: usize = 5;
/// Lines of `pg.log` quoted in a failure message.
const LOG_TAIL_LINES: usize = 40;

/// A running private PostgreSQL cluster. Stopped (`-m immediate`) and deleted on drop.
pub struct PgCluster {
    bin_dir: PathBuf,
    /// Run the server tools as the `postgres` user (initdb refuses to run as root).
    as_postgres_user: bool,
    port: u16,
    // Declared last so it is removed after `Drop::drop` has stopped the server.
    dir: tempfile::TempDir,
}

// The API is for all e2e tests; not every helper is used by every test binary build.
#[allow(dead_code)]
impl PgCluster {
    /// Initialises and starts a fresh cluster and creates the `vector` extension in the
    /// `postgres` database. Panics (loudly, with the reason and the server log) on any failure.
    pub fn start() -> PgCluster {
        let tools = PgTools::locate();
        let as_postgres_user = nix::unistd::geteuid().is_root();

        let dir = tempfile::Builder::new()
            .prefix("hrag-pg.")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("cannot create a temporary directory under /tmp: {e}"));
        if as_postgres_user {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .unwrap_or_else(|| {
                    setup_panic(&["the `postgres` system user (needed to run initdb as root)"])
                });
            nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap_or_else(|e| {
                panic!("cannot chown {} to postgres: {e}", dir.path().display())
            });
        }

        let mut cluster = PgCluster {
            bin_dir: tools.bin_dir,
            as_postgres_user,
            port: 0,
            dir,
        };

        let data = cluster.data_dir();
        let out = cluster
            .tool("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .arg("--locale=C.UTF-8")
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        if !out.status.success() {
            panic!(
                "initdb -D {} failed ({}):\n{}",
                data.display(),
                out.status,
                output_text(&out)
            );
        }

        let mut attempt = 1;
        loop {
            cluster.port = free_port();
            match cluster.try_start() {
                Ok(()) => break,
                Err(_) if attempt < PORT_ATTEMPTS && cluster.port_collision() => {
                    // Someone took the port between our probe and the server's bind: try another.
                    // Truncate (never create: it must stay the postgres user's) the log so the
                    // next attempt's messages stand alone.
                    let _ = fs::OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .open(cluster.log_path());
                    attempt += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }

        if let Err(e) = sql_exec(&cluster.url(), "CREATE EXTENSION IF NOT EXISTS vector") {
            panic!(
                "CREATE EXTENSION vector failed: {e}\n--- tail of {} ---\n{}",
                cluster.log_path().display(),
                cluster.log_tail(LOG_TAIL_LINES)
            );
        }
        cluster
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` (TCP).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The same database over the unix socket in [`Self::dir`].
    pub fn socket_url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}&port={}",
            self.dir().display(),
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's private directory (unix socket, `data/`, `pg.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server log.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("pg.log")
    }

    /// Stops the server (`pg_ctl -m fast stop`), e.g. to simulate a database outage.
    pub fn stop(&self) {
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "-t", "30", "stop"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl stop: {e}"));
        if !out.status.success() {
            panic!(
                "pg_ctl stop failed ({}):\n{}\n--- tail of {} ---\n{}",
                out.status,
                output_text(&out),
                self.log_path().display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }

    /// Starts the server again after [`Self::stop`], on the same port and socket directory.
    pub fn start_again(&self) {
        if let Err(e) = self.try_start() {
            panic!("{e}");
        }
    }

    /// Runs the SQL script `file` (psql meta-commands allowed, e.g. a `pg_dump` file) on
    /// the `postgres` database, stopping at the first error.
    pub fn psql_file(&self, file: &Path) {
        let out = Command::new(self.bin_dir.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .arg("-f")
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            out.status.success(),
            "psql -f {} failed:\n{}",
            file.display(),
            output_text(&out)
        );
    }

    /// The last `n` lines of the server log (empty when there is none yet).
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn port_collision(&self) -> bool {
        let log = self.log_tail(LOG_TAIL_LINES);
        log.contains("could not bind") || log.contains("Address already in use")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// A command for one of the server tools, run as `postgres` when we are root.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin_dir.join(name);
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // Our cwd may not be readable by `postgres`; stray PG* settings must not leak in.
        cmd.current_dir(self.dir())
            .env("LC_ALL", "C.UTF-8")
            .env_remove("PGDATA")
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .env_remove("PGOPTIONS")
            .stdin(Stdio::null());
        cmd
    }

    /// `pg_ctl start` with the cluster's options; `Err` carries a full explanation.
    fn try_start(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=60",
            self.port,
            self.dir().display()
        );
        // pg_ctl's own output goes to a file, not a pipe: the postmaster it forks must never be
        // able to hold a pipe of ours open.
        let out_path = self.dir().join("pg_ctl.out");
        let out_file = File::create(&out_path)
            .map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
        let err_file = out_file
            .try_clone()
            .map_err(|e| format!("cannot dup {}: {e}", out_path.display()))?;
        let status = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "30", "start", "-o"])
            .arg(&opts)
            .stdout(out_file)
            .stderr(err_file)
            .status()
            .map_err(|e| format!("cannot run pg_ctl start: {e}"))?;
        if status.success() {
            return Ok(());
        }
        Err(format!(
            "pg_ctl start (port {}) failed ({status}):\n{}\n--- tail of {} ---\n{}",
            self.port,
            fs::read_to_string(&out_path).unwrap_or_default(),
            self.log_path().display(),
            self.log_tail(LOG_TAIL_LINES)
        ))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Best effort: the server may be stopped already (or never have started).
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // `self.dir` (TempDir) is removed when the fields drop; errors are ignored there.
    }
}

/// The PostgreSQL installation the harness uses.
struct PgTools {
    bin_dir: PathBuf,
}

impl PgTools {
    /// Prefers the highest `/usr/lib/postgresql/<N>/bin` (Debian layout), else `pg_config
    /// --bindir`; checks that initdb, pg_ctl, postgres and pgvector are installed.
    fn locate() -> PgTools {
        let mut missing: Vec<String> = Vec::new();
        let Some(bin_dir) = debian_bin_dir()
            .or_else(|| pg_config(Path::new("pg_config"), "--bindir").map(PathBuf::from))
        else {
            setup_panic(&[
                "PostgreSQL server binaries (no /usr/lib/postgresql/<N>/bin/initdb and no pg_config on PATH)",
            ]);
        };
        for tool in ["initdb", "pg_ctl", "postgres"] {
            let p = bin_dir.join(tool);
            if !p.is_file() {
                missing.push(format!("{} (PostgreSQL server)", p.display()));
            }
        }
        let own_pg_config = bin_dir.join("pg_config");
        let share_dir = if own_pg_config.is_file() {
            pg_config(&own_pg_config, "--sharedir")
        } else {
            pg_config(Path::new("pg_config"), "--sharedir")
        };
        match share_dir {
            None => missing.push(format!(
                "pg_config (neither {} nor on PATH), needed to find the pgvector extension",
                own_pg_config.display()
            )),
            Some(share) => {
                let control = Path::new(&share).join("extension").join("vector.control");
                if !control.is_file() {
                    missing.push(format!("the pgvector extension ({})", control.display()));
                }
            }
        }
        if !missing.is_empty() {
            let refs: Vec<&str> = missing.iter().map(String::as_str).collect();
            setup_panic(&refs);
        }
        PgTools { bin_dir }
    }
}

/// The highest-numbered `/usr/lib/postgresql/<N>/bin` that has an `initdb`.
fn debian_bin_dir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

fn pg_config(program: &Path, arg: &str) -> Option<String> {
    let out = Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn setup_panic(missing: &[&str]) -> ! {
    let list: String = missing.iter().map(|m| format!("\n  - {m}")).collect();
    panic!(
        "\n\n*** PostgreSQL test cluster cannot start: missing{list}\n\
         *** Run scripts/setup-postgres.sh as root (e.g. `sudo scripts/setup-postgres.sh`) to \
         install PostgreSQL 15 + pgvector, then re-run the tests.\n"
    );
}

/// A free TCP port on 127.0.0.1 (probe by binding port 0; the listener is dropped again).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind a TCP port on 127.0.0.1: {e}"));
    listener.local_addr().expect("local_addr").port()
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `work` on a helper thread with its own runtime, so that the SQL helpers below work both
/// from plain `#[test]`s and from inside a `#[tokio::test]`.
fn on_own_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build a tokio runtime: {e}"))?
            .block_on(work)
    })
    .join()
    .map_err(|_| "the SQL helper thread panicked".to_owned())?
}

async fn connect(url: &str) -> Result<sqlx::PgConnection, String> {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))
}

/// Runs the statements `sql` on a fresh connection to `url`.
pub fn sql_exec(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    on_own_runtime(async move {
        let mut conn = connect(&url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("`{sql}`: {e}"))?;
        Ok(())
    })
}

/// The first column of the first row `sql` returns on a fresh connection to `url`.
pub fn sql_value<T>(url: &str, sql: &str) -> Result<T, String>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + Send
        + Unpin
        + 'static,
{
    let (url, sql) = (url.to_owned(), sql.to_owned());
    on_own_runtime(async move {
        let mut conn = connect(&url).await?;
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| format!("`{sql}`: {e}"))
    })
}
