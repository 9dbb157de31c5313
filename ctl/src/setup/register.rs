//! The one step that talks to hragd: point a database at the new server, unless it already is.
//! It uses the existing `db show` / `db set-backend` requests; the password travels inside the
//! connection string over the (0600, peer-checked) socket and hragd moves it to its own 0600
//! file, so the registry never holds it.

use std::path::Path;
use std::time::{Duration, Instant};

use hrag_proto::{
    BackendHealth, BackendKind, PgTargetSpec, Request, Response, SetBackendSpec, exit,
};

use crate::client::{self, ClientError};

/// Whether the registry already pointed `db` at `clean_dsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Unchanged,
    Updated,
}

/// Whether hragd has opened the database on the server by the time setup returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    Connected,
    /// Not (yet): hragd's reason.
    NotYet(String),
}

/// How long setup waits for hragd to open the database on its new server: a store opens in
/// well under a second, and a setup that returned before it did would leave `backend status`
/// showing the database as still starting.
const SERVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Points `db` at `clean_dsn` (no password) with `password` (moved to a 0600 file by hragd),
/// then waits until hragd serves it from there.
pub fn register(
    socket: &Path,
    db: &str,
    clean_dsn: &str,
    password: &str,
) -> Result<(Registration, Served), ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError {
            code: exit::INTERNAL,
            message: format!("cannot start the async runtime: {e}"),
        })?;
    runtime.block_on(async {
        let show = Request::DbShow {
            name: db.to_owned(),
        };
        let registration = match call(socket, show).await? {
            Response::DbShow(detail) if already_registered(&detail.entry_json, clean_dsn) => {
                Registration::Unchanged
            }
            _ => {
                let set = Request::DbSetBackend(set_backend(db, clean_dsn, password));
                call(socket, set).await?;
                Registration::Updated
            }
        };
        Ok((registration, wait_served(socket, db).await?))
    })
}

/// The one place that builds the request (its shape is the protocol's, not setup's).
fn set_backend(db: &str, clean_dsn: &str, password: &str) -> SetBackendSpec {
    SetBackendSpec {
        name: db.to_owned(),
        backend: BackendKind::Postgres,
        pg: PgTargetSpec {
            connection_string: Some(with_password(clean_dsn, password)),
            ..PgTargetSpec::default()
        },
    }
}

/// Polls `backend status DB` until hragd has the database open on Postgres, reports an error
/// for it, or [`SERVE_TIMEOUT`] passes.
async fn wait_served(socket: &Path, db: &str) -> Result<Served, ClientError> {
    let deadline = Instant::now() + SERVE_TIMEOUT;
    loop {
        let request = Request::BackendStatus {
            db: Some(db.to_owned()),
            verbose: false,
        };
        let report = match call(socket, request).await? {
            Response::BackendStatus(mut reports) if !reports.is_empty() => reports.swap_remove(0),
            _ => return Ok(Served::NotYet("hragd sent no status for it".into())),
        };
        if report.backend_type == "postgres" && report.metrics.is_connected {
            return Ok(Served::Connected);
        }
        if report.status == BackendHealth::Error || Instant::now() >= deadline {
            let why = report
                .reason
                .unwrap_or_else(|| format!("its backend status is {:?}", report.status));
            return Ok(Served::NotYet(why));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn call(socket: &Path, request: Request) -> Result<Response, ClientError> {
    match client::call(socket, &request, |_| {}).await? {
        Response::Error(e) => Err(ClientError {
            code: e.kind.exit_code(),
            message: format!("registering the connection: {}", e.message),
        }),
        r => Ok(r),
    }
}

/// The entry (as `db show` renders it) is a Postgres entry on this DSN with a password file.
fn already_registered(entry_json: &str, clean_dsn: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(entry_json) else {
        return false;
    };
    let config = &v["backend_config"];
    let is_pg = |x: &serde_json::Value| {
        x.as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("postgres"))
    };
    is_pg(&v["backend_type"])
        && config["connection_string"].as_str() == Some(clean_dsn)
        && config["postgres_password_file"].is_string()
}

/// `postgresql://user@host…` → `postgresql://user:PASSWORD@host…`. Callers only use
/// generated hex passwords or ones they percent-encode.
fn with_password(clean_dsn: &str, password: &str) -> String {
    match clean_dsn.split_once('@') {
        Some((user, rest)) => format!("{user}:{}@{rest}", percent_encode(password)),
        None => clean_dsn.to_owned(),
    }
}

pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_goes_into_the_userinfo_encoded() {
        assert_eq!(
            with_password("postgresql://hrag@127.0.0.1:5434/hrag", "p@ss w"),
            "postgresql://hrag:p%40ss%20w@127.0.0.1:5434/hrag"
        );
    }

    #[test]
    fn registered_means_postgres_same_dsn_and_a_password_file() {
        let dsn = "postgresql://hrag@127.0.0.1:5434/hrag";
        let entry = |bt: &str, cs: &str, pf: bool| {
            let mut c = serde_json::json!({ "connection_string": cs });
            if pf {
                c["postgres_password_file"] = "/s/x.password".into();
            }
            serde_json::json!({ "backend_type": bt, "backend_config": c }).to_string()
        };
        assert!(already_registered(&entry("postgres", dsn, true), dsn));
        assert!(!already_registered(&entry("json", dsn, true), dsn));
        assert!(!already_registered(&entry("postgres", dsn, false), dsn));
        assert!(!already_registered(
            &entry("postgres", "postgresql://hrag@127.0.0.1:5435/hrag", true),
            dsn
        ));
    }
}
