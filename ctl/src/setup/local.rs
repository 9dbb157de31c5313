//! `hragctl backend setup-local`: a PostgreSQL cluster with pgvector from this machine's own
//! binaries (initdb, pg_ctl, psql), for hosts without Docker and for tests.
//!
//! Layout under `--dir`: `data/` (PGDATA), `run/` (the unix socket), `log/postgres.log`, and
//! `hrag.password` (0600, the `hrag` role's password; hragd keeps its own copy). Administration
//! goes over the unix socket with peer authentication as the cluster's superuser (the OS user that
//! ran initdb: `postgres` when hragctl runs as root, through `runuser`); hragd connects over TCP on
//! 127.0.0.1 as the `hrag` role with scram-sha-256, to the database `hrag`.

use std::path::{Path, PathBuf};

use crate::client::ClientError;

use super::runner::{Cmd, Runner};
use super::{Report, code, fail};

/// Default port: clear of a system cluster (5432) and of setup-docker's (5433).
pub const DEFAULT_PORT: u16 = 5434;
pub const ROLE: &str = "hrag";
pub const DATABASE: &str = "hrag";
/// The OS user that owns the cluster when hragctl runs as root (initdb refuses root).
const SERVICE_USER: &str = "postgres";

pub struct Options {
    pub dir: PathBuf,
    pub port: Option<u16>,
    pub db: Option<String>,
    pub socket: PathBuf,
}

/// The PostgreSQL installation used.
pub struct PgBin {
    pub dir: PathBuf,
}

impl PgBin {
    /// `$HRAG_PG_BIN`, else the highest `/usr/lib/postgresql/<N>/bin` with initdb, else
    /// `pg_config --bindir`.
    pub fn locate(runner: &dyn Runner) -> Result<PgBin, ClientError> {
        if let Some(d) = std::env::var_os("HRAG_PG_BIN").filter(|d| !d.is_empty()) {
            return Ok(PgBin { dir: d.into() });
        }
        let mut best: Option<(u32, PathBuf)> = None;
        if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
            for e in entries.flatten() {
                let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let bin = e.path().join("bin");
                if bin.join("initdb").is_file() && best.as_ref().is_none_or(|(m, _)| n > *m) {
                    best = Some((n, bin));
                }
            }
        }
        if let Some((_, dir)) = best {
            return Ok(PgBin { dir });
        }
        match runner.run(&Cmd::new("pg_config").arg("--bindir")) {
            Ok(o) if o.success && !o.stdout.trim().is_empty() => Ok(PgBin {
                dir: o.stdout.trim().into(),
            }),
            _ => Err(fail(
                code::UNAVAILABLE,
                "PostgreSQL's server binaries were not found (no /usr/lib/postgresql/<N>/bin/initdb, \
                 no pg_config on PATH): install the postgresql package, or set HRAG_PG_BIN",
            )),
        }
    }

    fn tool(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// pgvector's control file must be in this installation's extension directory.
    fn check_pgvector(&self, runner: &dyn Runner) -> Result<(), ClientError> {
        let out = runner
            .run(&Cmd::new(self.tool("pg_config")).arg("--sharedir"))
            .map_err(|e| fail(code::UNAVAILABLE, format!("cannot run pg_config: {e}")))?;
        let control = Path::new(out.stdout.trim()).join("extension/vector.control");
        if out.success && control.is_file() {
            Ok(())
        } else {
            Err(fail(
                code::UNAVAILABLE,
                format!(
                    "pgvector is not installed for the PostgreSQL in {} (no {}): install it \
                     (scripts/setup-postgres.sh builds it on Debian)",
                    self.dir.display(),
                    control.display()
                ),
            ))
        }
    }
}

/// Paths of one cluster directory.
struct Layout {
    dir: PathBuf,
    data: PathBuf,
    run: PathBuf,
    log: PathBuf,
    password: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
            data: dir.join("data"),
            run: dir.join("run"),
            log: dir.join("log"),
            password: dir.join("hrag.password"),
        }
    }
}

pub fn setup(runner: &dyn Runner, opts: &Options) -> Result<Report, ClientError> {
    let bin = PgBin::locate(runner)?;
    for t in ["initdb", "pg_ctl", "psql"] {
        if !bin.dir.join(t).is_file() {
            return Err(fail(
                code::UNAVAILABLE,
                format!("{} is missing", bin.dir.join(t).display()),
            ));
        }
    }
    bin.check_pgvector(runner)?;
    let owner = service_owner()?;
    let user = owner.as_ref().map(|u| u.name.as_str());
    let dir = std::path::absolute(&opts.dir)
        .map_err(|e| fail(code::CREATE_FAILED, format!("{}: {e}", opts.dir.display())))?;
    let l = Layout::new(&dir);
    let mut actions = Vec::new();

    // 1. The cluster.
    let port = if l.data.join("PG_VERSION").is_file() {
        let configured = configured_port(&l.data).unwrap_or(5432);
        if let Some(p) = opts.port
            && p != configured
        {
            return Err(fail(
                hrag_proto::exit::INVALID,
                format!(
                    "the cluster in {} is configured for port {configured}, not {p}: pass \
                     --port {configured}, or another --dir for a new cluster",
                    dir.display()
                ),
            ));
        }
        configured
    } else {
        let port = opts.port.unwrap_or(DEFAULT_PORT);
        // Checked before initdb too, so a refused run leaves no cluster bound to that port.
        if !super::port_free(port) {
            return Err(port_in_use(port));
        }
        init_cluster(runner, &bin, &l, owner.as_ref(), port)?;
        actions.push(format!("initialised a cluster in {}", l.data.display()));
        port
    };

    // 2. The server.
    let status = runner
        .run(
            &Cmd::new(bin.tool("pg_ctl"))
                .args(["status", "-D"])
                .arg(path(&l.data))
                .run_as(user),
        )
        .map_err(|e| fail(code::UNAVAILABLE, format!("cannot run pg_ctl: {e}")))?;
    if !status.success {
        if !super::port_free(port) {
            return Err(port_in_use(port));
        }
        let log = l.log.join("postgres.log");
        let out = runner
            .run(
                &Cmd::new(bin.tool("pg_ctl"))
                    .args(["start", "-w", "-t", "60", "-D"])
                    .arg(path(&l.data))
                    .arg("-l")
                    .arg(path(&log))
                    .run_as(user),
            )
            .map_err(|e| fail(code::CREATE_FAILED, format!("cannot run pg_ctl: {e}")))?;
        if !out.success {
            return Err(fail(
                code::CREATE_FAILED,
                format!(
                    "pg_ctl start failed: {} (see {})",
                    out.reason(),
                    log.display()
                ),
            ));
        }
        actions.push(format!("started PostgreSQL on 127.0.0.1:{port}"));
    }

    // 3. Role, database, extension.
    let psql = Psql {
        runner,
        bin: &bin,
        run_dir: &l.run,
        port,
        user,
    };
    let known = std::fs::read_to_string(&l.password)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let role_exists = psql.exists(
        "postgres",
        &format!("SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'"),
    )?;
    let password = match (role_exists, known) {
        (true, Some(pw)) => pw,
        (exists, _) => {
            // A role without a password we know gets a new one: hragd must be able to log in.
            let pw = super::random_password()?;
            let verb = if exists { "ALTER" } else { "CREATE" };
            psql.exec(
                "postgres",
                &format!("{verb} ROLE {ROLE} LOGIN PASSWORD '{pw}'"),
            )?;
            super::write_private(&l.password, &pw).map_err(|e| {
                fail(
                    code::CREATE_FAILED,
                    format!("cannot write {}: {e}", l.password.display()),
                )
            })?;
            actions.push(if exists {
                format!("set a new password for the role {ROLE}")
            } else {
                format!("created the role {ROLE}")
            });
            pw
        }
    };
    if !psql.exists(
        "postgres",
        &format!("SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"),
    )? {
        psql.exec(
            "postgres",
            &format!("CREATE DATABASE {DATABASE} OWNER {ROLE}"),
        )?;
        actions.push(format!("created the database {DATABASE}"));
    }
    if !psql.exists(
        DATABASE,
        "SELECT 1 FROM pg_extension WHERE extname = 'vector'",
    )? {
        psql.exec(DATABASE, "CREATE EXTENSION vector")?;
        actions.push(format!("created the vector extension in {DATABASE}"));
    }

    // 4. The registry.
    let clean = format!("postgresql://{ROLE}@127.0.0.1:{port}/{DATABASE}");
    let mut report = Report {
        kind: "local",
        changed: !actions.is_empty(),
        actions,
        location: l.data.display().to_string(),
        port,
        connection: clean,
        registered: None,
        served: None,
        served_note: None,
        password_file: Some(l.password.display().to_string()),
    };
    super::register_into(&mut report, &opts.socket, opts.db.as_deref(), &password)?;
    Ok(report)
}

fn port_in_use(port: u16) -> ClientError {
    fail(
        code::PORT_IN_USE,
        format!(
            "port {port} on 127.0.0.1 is in use by another program: choose another with --port \
             (for a new --dir)"
        ),
    )
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The `postgres` system user when running as root (initdb refuses root), else nobody.
fn service_owner() -> Result<Option<nix::unistd::User>, ClientError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name(SERVICE_USER) {
        Ok(Some(u)) => Ok(Some(u)),
        _ => Err(fail(
            code::UNAVAILABLE,
            format!(
                "running as root needs the `{SERVICE_USER}` system user to own the cluster \
                 (initdb refuses to run as root); install the postgresql package or run as \
                 another user"
            ),
        )),
    }
}

fn init_cluster(
    runner: &dyn Runner,
    bin: &PgBin,
    l: &Layout,
    owner: Option<&nix::unistd::User>,
    port: u16,
) -> Result<(), ClientError> {
    let io = |what: &Path, e: std::io::Error| {
        fail(code::CREATE_FAILED, format!("{}: {e}", what.display()))
    };
    std::fs::create_dir_all(&l.dir).map_err(|e| io(&l.dir, e))?;
    for d in [&l.run, &l.log] {
        std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
        if let Some(u) = owner {
            nix::unistd::chown(d.as_path(), Some(u.uid), Some(u.gid))
                .map_err(|e| io(d, e.into()))?;
        }
    }
    if owner.is_some() {
        // initdb creates data/ itself, as the owner: it needs to write in the parent.
        std::fs::create_dir_all(&l.data).map_err(|e| io(&l.data, e))?;
        if let Some(u) = owner {
            nix::unistd::chown(l.data.as_path(), Some(u.uid), Some(u.gid))
                .map_err(|e| io(&l.data, e.into()))?;
        }
    }
    let user = owner.map(|u| u.name.as_str());
    let out = runner
        .run(
            &Cmd::new(bin.tool("initdb"))
                .arg("-D")
                .arg(path(&l.data))
                .args([
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                ])
                .run_as(user),
        )
        .map_err(|e| fail(code::CREATE_FAILED, format!("cannot run initdb: {e}")))?;
    if !out.success {
        return Err(fail(
            code::CREATE_FAILED,
            format!(
                "initdb -D {} failed: {} (every parent directory must be traversable by {})",
                l.data.display(),
                out.reason(),
                user.unwrap_or("this user")
            ),
        ));
    }
    // Settings go into the cluster's own configuration, so a plain `pg_ctl start` (after a
    // reboot, say) brings it back the same.
    let conf = l.data.join("postgresql.conf");
    let extra = format!(
        "\n# hragctl backend setup-local\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{}'\npassword_encryption = scram-sha-256\n",
        l.run.display()
    );
    let mut text = std::fs::read_to_string(&conf).map_err(|e| io(&conf, e))?;
    text.push_str(&extra);
    std::fs::write(&conf, text).map_err(|e| io(&conf, e))?;
    Ok(())
}

/// The last `port = N` in the cluster's postgresql.conf.
fn configured_port(data: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(data.join("postgresql.conf")).ok()?;
    text.lines().rev().find_map(|l| {
        let l = l.split('#').next()?.trim();
        let (k, v) = l.split_once('=')?;
        (k.trim() == "port").then(|| v.trim().parse().ok())?
    })
}

/// Administrative SQL over the unix socket as the cluster's superuser. SQL goes on stdin.
struct Psql<'a> {
    runner: &'a dyn Runner,
    bin: &'a PgBin,
    run_dir: &'a Path,
    port: u16,
    user: Option<&'a str>,
}

impl Psql<'_> {
    fn cmd(&self, database: &str, sql: &str) -> Cmd {
        Cmd::new(self.bin.tool("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(path(self.run_dir))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(database)
            .stdin(format!("{sql};\n"))
            .run_as(self.user)
    }

    fn run(&self, database: &str, sql: &str) -> Result<String, ClientError> {
        let out = self
            .runner
            .run(&self.cmd(database, sql))
            .map_err(|e| fail(code::CREATE_FAILED, format!("cannot run psql: {e}")))?;
        if !out.success {
            // The statement is not quoted: it may carry a password.
            return Err(fail(
                code::CREATE_FAILED,
                format!("psql on database {database} failed: {}", out.reason()),
            ));
        }
        Ok(out.stdout)
    }

    fn exists(&self, database: &str, query: &str) -> Result<bool, ClientError> {
        Ok(self.run(database, query)?.trim() == "1")
    }

    fn exec(&self, database: &str, sql: &str) -> Result<(), ClientError> {
        self.run(database, sql).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_port_is_the_last_uncommented_one() {
        let d = std::env::temp_dir().join(format!("hrag-conf-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap_or_default();
        std::fs::write(
            d.join("postgresql.conf"),
            "#port = 5432\nport = 5440 # first\nmax_connections = 5\nport = 5441\n",
        )
        .unwrap_or_default();
        assert_eq!(configured_port(&d), Some(5441));
        let _ = std::fs::remove_dir_all(&d);
    }
}
