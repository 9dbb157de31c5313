//! `hragctl backend setup-docker` and `setup-local`: provision PostgreSQL + pgvector on this
//! machine and register it for a database. These run in the client, not the daemon: they drive
//! local programs (docker, initdb, pg_ctl, psql) as the invoking user, and only the final
//! registration goes to hragd, as an ordinary `db set-backend` request.
//!
//! Both are idempotent: each step looks before it acts, every action taken is reported, and a
//! run that finds everything in place says so and changes nothing.

pub mod docker;
pub mod local;
pub mod register;
pub mod runner;

use serde::Serialize;

use crate::client::ClientError;

/// Exit codes of the setup commands (the original plan's `setup-docker` codes, which
/// `setup-local` shares where they apply).
pub mod code {
    /// docker (or PostgreSQL's binaries, or pgvector) is not installed or not usable.
    pub const UNAVAILABLE: i32 = 1;
    pub const PORT_IN_USE: i32 = 2;
    pub const CREATE_FAILED: i32 = 3;
}

pub fn fail(code: i32, message: impl Into<String>) -> ClientError {
    ClientError {
        code,
        message: message.into(),
    }
}

/// What a setup run found and did. Never carries a password.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `docker` or `local`.
    pub kind: &'static str,
    /// False when everything was already in place.
    pub changed: bool,
    /// What this run did, in order; empty when nothing changed.
    pub actions: Vec<String>,
    /// Where the server is: the container, or the cluster's data directory.
    pub location: String,
    pub port: u16,
    /// The connection, password redacted.
    pub connection: String,
    /// The hrag database now pointing at this server, if one was named.
    pub registered: Option<String>,
    /// Whether hragd has that database open on this server (None: no database named).
    pub served: Option<bool>,
    /// Why hragd does not serve it yet, when it does not.
    pub served_note: Option<String>,
    /// Password location, for the user's own tools (a 0600 file).
    pub password_file: Option<String>,
}

impl Report {
    pub fn print(&self, json: bool) {
        if json {
            match serde_json::to_string_pretty(self) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("hragctl: cannot render JSON: {e}"),
            }
            return;
        }
        for a in &self.actions {
            println!("- {a}");
        }
        if !self.changed {
            println!("nothing changed: PostgreSQL + pgvector already set up");
        }
        if let (Some(db), Some(note)) = (&self.registered, &self.served_note) {
            eprintln!("hragctl: warning: hragd does not serve {db} from this server yet: {note}");
        }
        let rows = [
            ("server", self.location.clone()),
            ("port", self.port.to_string()),
            ("connection", self.connection.clone()),
            (
                "registered",
                self.registered.clone().unwrap_or_else(|| "-".into()),
            ),
            (
                "password file",
                self.password_file.clone().unwrap_or_else(|| "-".into()),
            ),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            println!("{k:<width$}  {v}");
        }
    }
}

/// Registers `db` (if named) and fills the report's registration fields.
pub fn register_into(
    report: &mut Report,
    socket: &std::path::Path,
    db: Option<&str>,
    password: &str,
) -> Result<(), ClientError> {
    let Some(db) = db else { return Ok(()) };
    let (registration, served) = register::register(socket, db, &report.connection, password)?;
    if registration == register::Registration::Updated {
        report.actions.push(format!(
            "pointed the database {db} at {}",
            report.connection
        ));
        report.changed = true;
    }
    report.registered = Some(db.to_owned());
    match served {
        register::Served::Connected => report.served = Some(true),
        register::Served::NotYet(why) => {
            report.served = Some(false);
            report.served_note = Some(why);
        }
    }
    Ok(())
}

/// Is `port` free on the loopback interface (where both setups publish Postgres)?
pub fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A fresh random password (hex, URL-safe), from the kernel's generator.
pub fn random_password() -> Result<String, ClientError> {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            fail(
                code::CREATE_FAILED,
                format!("cannot read /dev/urandom: {e}"),
            )
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `text` to `path` with mode 0600 from the start (never briefly world-readable).
pub fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)
}

/// Where hragctl keeps what it provisions: `$XDG_DATA_HOME/hrag`, `~/.local/share/hrag`; for
/// root `/var/lib/hragctl` (a home under /root is not traversable by the `postgres` user, and
/// /var/lib/hrag belongs to the system service).
pub fn data_home() -> std::path::PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if nix::unistd::geteuid().is_root() {
        return "/var/lib/hragctl".into();
    }
    if let Some(x) = var("XDG_DATA_HOME") {
        return std::path::PathBuf::from(x).join("hrag");
    }
    match var("HOME") {
        Some(h) => std::path::PathBuf::from(h).join(".local/share/hrag"),
        None => std::env::temp_dir().join(format!("hrag-{}", nix::unistd::geteuid())),
    }
}
