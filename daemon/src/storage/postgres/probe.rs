//! Reachability: the health probe of an open backend, and the checks `db add` runs on a
//! target before it is saved, each failure classified so the user learns what to fix.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};
use tokio::sync::Mutex;

use super::PgSettings;
use crate::storage::{Probe, ProbeReport, StorageError, StorageResult};

/// Probes the server over the single-writer lock's own session: if that session is gone (the
/// server went away or restarted), the lock is gone too, and the backend must be reopened.
pub struct PgProbe {
    conn: Arc<Mutex<PgConnection>>,
    timeout: Duration,
}

impl PgProbe {
    pub(super) fn new(conn: Arc<Mutex<PgConnection>>, timeout: Duration) -> PgProbe {
        PgProbe { conn, timeout }
    }
}

#[async_trait]
impl Probe for PgProbe {
    async fn probe(&self) -> StorageResult<ProbeReport> {
        let run = async {
            let mut conn = self.conn.lock().await;
            versions(&mut conn).await
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(super::db_err("probe", e)),
            Err(_) => Err(StorageError::Unreachable(format!(
                "postgres did not answer within {} s",
                self.timeout.as_secs()
            ))),
        }
    }
}

/// One round trip: the server's and pgvector's versions, timed.
async fn versions(conn: &mut PgConnection) -> Result<ProbeReport, sqlx::Error> {
    let started = Instant::now();
    let (server, vector): (String, Option<String>) = sqlx::query_as(
        "SELECT current_setting('server_version'), \
         (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
    )
    .fetch_one(conn)
    .await?;
    Ok(ProbeReport {
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        server_version: server,
        pgvector_version: vector,
    })
}

/// Why a Postgres target cannot be used; each has its own message (PRODUCT §9, `db add`).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("postgres at {at} did not answer within {secs} s (is the host right and reachable?)")]
    Timeout { at: String, secs: u64 },
    #[error(
        "postgres at {at} refused the connection (is the server running on that host and port?)"
    )]
    Refused { at: String },
    #[error("postgres at {at}: database {database:?} does not exist (create it, or name another)")]
    UnknownDatabase { at: String, database: String },
    #[error(
        "postgres at {at}: authentication failed for user {user:?} (check the password file or \
         POSTGRES_PASSWORD)"
    )]
    BadCredentials { at: String, user: String },
    #[error(
        "postgres at {at}: the pgvector extension is not installed in this database and cannot \
         be created here ({why}); install pgvector on the server and run CREATE EXTENSION vector \
         as a superuser"
    )]
    NoPgvector { at: String, why: String },
    #[error("postgres at {at}: {message}")]
    Other { at: String, message: String },
}

impl TargetError {
    /// Whether the server could not be reached at all (as opposed to refusing what was asked).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            TargetError::Timeout { .. } | TargetError::Refused { .. }
        )
    }
}

/// Connects once and checks that the database exists, the credentials work and pgvector is
/// there or can be created; returns the server's versions.
pub async fn check_target(
    settings: &PgSettings,
    timeout: Duration,
) -> Result<ProbeReport, TargetError> {
    let at = super::settings::shown(settings);
    let opts = settings.connect_options().map_err(|e| TargetError::Other {
        at: at.clone(),
        message: e.to_string(),
    })?;
    let database = opts.get_database().unwrap_or_default().to_owned();
    let user = opts.get_username().to_owned();
    let run = async {
        let mut conn = opts
            .connect()
            .await
            .map_err(|e| classify(&at, &database, &user, e))?;
        let mut report = versions(&mut conn).await.map_err(|e| other(&at, e))?;
        if report.pgvector_version.is_none() {
            let available: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')",
            )
            .fetch_one(&mut conn)
            .await
            .map_err(|e| other(&at, e))?;
            if !available {
                return Err(TargetError::NoPgvector {
                    at: at.clone(),
                    why: "the server does not have it".into(),
                });
            }
            sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
                .execute(&mut conn)
                .await
                .map_err(|e| TargetError::NoPgvector {
                    at: at.clone(),
                    why: e.to_string(),
                })?;
            report = versions(&mut conn).await.map_err(|e| other(&at, e))?;
        }
        // Best effort: the session ends when the connection drops anyway.
        let _ = conn.close().await;
        Ok(report)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(TargetError::Timeout {
            at,
            secs: timeout.as_secs(),
        }),
    }
}

fn other(at: &str, e: sqlx::Error) -> TargetError {
    TargetError::Other {
        at: at.to_owned(),
        message: e.to_string(),
    }
}

/// Maps a connect error onto what the user has to fix (SQLSTATE 3D000: no such database;
/// 28P01 / 28000: authentication).
fn classify(at: &str, database: &str, user: &str, e: sqlx::Error) -> TargetError {
    let at = at.to_owned();
    match &e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            TargetError::Refused { at }
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            TargetError::Timeout { at, secs: 0 }
        }
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("3D000") => TargetError::UnknownDatabase {
                at,
                database: database.to_owned(),
            },
            Some("28P01") | Some("28000") => TargetError::BadCredentials {
                at,
                user: user.to_owned(),
            },
            _ => other(&at, e),
        },
        _ => other(&at, e),
    }
}
