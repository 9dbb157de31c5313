//! [`PgSettings`] of a registry entry: `backend_config` first, then LightRAG's `POSTGRES_*`
//! environment variables, then HybridRAG's defaults (registry fact sheet).
//!
//! The password comes from, in order: `postgres_password_file`, `POSTGRES_PASSWORD`,
//! `backend_config.postgres_password` (plain text, warned about by the entry), the DSN itself.
//! It is held apart from the URL so that nothing shown can carry it.

use std::path::Path;
use std::time::Duration;

use url::Url;

use crate::registry::DbEntry;
use crate::storage::{StorageError, StorageResult};

use super::PgSettings;

/// HybridRAG's defaults for a `backend_config` without connection fields.
const DEFAULT_HOST: &str = "localhost";
const DEFAULT_PORT: i64 = 5432;
const DEFAULT_USER: &str = "hybridrag";
const DEFAULT_DATABASE: &str = "hybridrag";
const DEFAULT_MAX_CONNECTIONS: i64 = 10;

/// How long a pool waits for a connection: short, so that an outage surfaces as an error
/// (and the database as degraded) within seconds rather than blocking ingestion.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which pgvector index the vector tables get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VectorIndexType {
    #[default]
    Hnsw,
    IvfFlat,
}

impl PgSettings {
    /// The settings of a Postgres entry. `embedding` is the embedder's model name and
    /// dimension (they name the vector tables); `env` reads an environment variable.
    pub fn from_entry(
        entry: &DbEntry,
        embedding_model: Option<String>,
        embedding_dim: usize,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> StorageResult<PgSettings> {
        let c = &entry.backend_config;
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let url = match &c.connection_string {
            Some(dsn) => dsn.clone(),
            None => {
                let port = match c.postgres_port {
                    Some(p) => p,
                    None => match env("POSTGRES_PORT") {
                        Some(p) => p.trim().parse::<i64>().map_err(|_| {
                            StorageError::Invalid(format!(
                                "database '{}': POSTGRES_PORT='{p}' is not a port number",
                                entry.name
                            ))
                        })?,
                        None => DEFAULT_PORT,
                    },
                };
                build_url(
                    &c.postgres_host
                        .clone()
                        .or_else(|| env("POSTGRES_HOST"))
                        .unwrap_or_else(|| DEFAULT_HOST.to_owned()),
                    port,
                    &c.postgres_user
                        .clone()
                        .or_else(|| env("POSTGRES_USER"))
                        .unwrap_or_else(|| DEFAULT_USER.to_owned()),
                    &c.postgres_database
                        .clone()
                        .or_else(|| env("POSTGRES_DATABASE"))
                        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
                )
                .map_err(|e| StorageError::Invalid(format!("database '{}': {e}", entry.name)))?
            }
        };
        let password = match &c.postgres_password_file {
            Some(file) => Some(read_password(file)?),
            None => env("POSTGRES_PASSWORD").or_else(|| c.postgres_password.clone()),
        };
        let mut s = PgSettings::new(
            url,
            entry.postgres_workspace(),
            embedding_model,
            embedding_dim,
        );
        s.password = password;
        s.ssl_mode = c.postgres_ssl_mode.clone();
        let max = c
            .postgres_max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        s.max_connections = u32::try_from(max.clamp(1, 100)).unwrap_or(10);
        s.acquire_timeout = ACQUIRE_TIMEOUT;
        if let Some(m) = c.hnsw_m.and_then(|m| u32::try_from(m).ok()) {
            s.hnsw_m = m;
        }
        if let Some(ef) = c.hnsw_ef.and_then(|ef| u32::try_from(ef).ok()) {
            s.hnsw_ef = ef;
        }
        s.index_type = match c.vector_index_type.as_deref().map(str::to_lowercase) {
            Some(t) if t == "ivfflat" => VectorIndexType::IvfFlat,
            _ => VectorIndexType::Hnsw,
        };
        Ok(s)
    }
}

/// `postgres://user@host:port/database`; a host that is a directory (a unix socket) goes in
/// the `host` query parameter, which is how libpq and sqlx accept it in a URL.
fn build_url(host: &str, port: i64, user: &str, database: &str) -> Result<String, String> {
    let port = u16::try_from(port).map_err(|_| format!("postgres port {port} is out of range"))?;
    let socket_dir = host.starts_with('/');
    let mut url = Url::parse(&format!(
        "postgres://{}:{port}",
        if socket_dir { "localhost" } else { host }
    ))
    .map_err(|e| format!("postgres host '{host}' is not a valid host name: {e}"))?;
    url.set_username(user)
        .map_err(|()| format!("postgres user '{user}' cannot be put in a URL"))?;
    url.set_path(database);
    if socket_dir {
        url.query_pairs_mut().append_pair("host", host);
    }
    Ok(url.to_string())
}

/// A password file's content without its trailing line break.
fn read_password(file: &Path) -> StorageResult<String> {
    let text = std::fs::read_to_string(file).map_err(|e| StorageError::io(file, e))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// The connection as shown to people (password redacted).
pub(super) fn shown(settings: &PgSettings) -> String {
    crate::registry::secret::redact_dsn(&settings.url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::parse_entry;

    fn entry(yaml: &str) -> DbEntry {
        let v = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        parse_entry("notes", &v, Path::new("/reg")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn fields_then_environment_then_defaults() -> StorageResult<()> {
        let e =
            entry("path: /kb\nbackend_type: postgres\nbackend_config:\n  postgres_port: 5433\n");
        let env = |k: &str| match k {
            "POSTGRES_HOST" => Some("db.local".to_owned()),
            "POSTGRES_PORT" => Some("9999".to_owned()),
            "POSTGRES_PASSWORD" => Some("s3cret".to_owned()),
            _ => None,
        };
        let s = PgSettings::from_entry(&e, Some("m".into()), 8, &env)?;
        assert_eq!(s.url, "postgres://hybridrag@db.local:5433/hybridrag");
        assert_eq!(s.password.as_deref(), Some("s3cret"));
        assert_eq!(s.workspace, "notes");
        assert_eq!(s.max_connections, 10);
        assert!(!format!("{s:?}").contains("s3cret"));
        Ok(())
    }

    #[test]
    fn connection_string_and_socket_dirs() -> StorageResult<()> {
        let e = entry(
            "path: /kb\nbackend_type: postgres\nbackend_config:\n  connection_string: postgres://u@h:1/d\n  postgres_workspace: w\n  postgres_ssl_mode: require\n",
        );
        let s = PgSettings::from_entry(&e, None, 8, &no_env)?;
        assert_eq!(s.url, "postgres://u@h:1/d");
        assert_eq!(s.workspace, "w");
        assert_eq!(s.ssl_mode.as_deref(), Some("require"));
        let e = entry(
            "path: /kb\nbackend_type: postgres\nbackend_config:\n  postgres_host: /tmp/pg\n  postgres_user: me\n",
        );
        let s = PgSettings::from_entry(&e, None, 8, &no_env)?;
        assert_eq!(
            s.url,
            "postgres://me@localhost:5432/hybridrag?host=%2Ftmp%2Fpg"
        );
        Ok(())
    }

    #[test]
    fn password_file_wins_and_loses_its_newline() -> StorageResult<()> {
        let dir = tempfile::tempdir().map_err(|e| StorageError::io(Path::new("tmp"), e))?;
        let f = dir.path().join("pw");
        std::fs::write(&f, "filepw\n").map_err(|e| StorageError::io(&f, e))?;
        let e = entry(&format!(
            "path: /kb\nbackend_type: postgres\nbackend_config:\n  postgres_password_file: {}\n",
            f.display()
        ));
        let env = |k: &str| (k == "POSTGRES_PASSWORD").then(|| "envpw".to_owned());
        let s = PgSettings::from_entry(&e, None, 8, &env)?;
        assert_eq!(s.password.as_deref(), Some("filepw"));
        Ok(())
    }
}
