//! The typed, validated view of one registry entry (HybridRAG's fact sheet plus hrag's
//! `workspace` and `postgres_password_file`). The YAML itself stays the source of truth: this
//! view is derived from it and never written back, so keys hrag does not know survive rewrites.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::secret;

/// Storage backend of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendType {
    Json,
    Postgres,
}

impl BackendType {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendType::Json => "json",
            BackendType::Postgres => "postgres",
        }
    }
}

/// Backends HybridRAG names but hrag does not implement; named so the error can say so.
const FOREIGN_BACKENDS: &[&str] = &[
    "mongodb", "neo4j", "milvus", "qdrant", "faiss", "redis", "memgraph",
];

/// An entry field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Dotted path of the field, e.g. `backend_config.postgres_port`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `backend_config` as the original plan defines it. `Debug` is hand-written: it must never
/// print the password.
#[derive(Clone, Default, Deserialize)]
pub struct BackendConfig {
    pub backend_type: Option<String>,
    pub postgres_host: Option<String>,
    pub postgres_port: Option<i64>,
    pub postgres_user: Option<String>,
    pub postgres_password: Option<String>,
    pub postgres_password_file: Option<PathBuf>,
    pub postgres_database: Option<String>,
    pub postgres_workspace: Option<String>,
    /// Written by one HybridRAG migration path; an alias of `postgres_workspace`.
    pub workspace: Option<String>,
    pub postgres_ssl_mode: Option<String>,
    pub postgres_max_connections: Option<i64>,
    pub connection_string: Option<String>,
    pub vector_index_type: Option<String>,
    pub hnsw_m: Option<i64>,
    pub hnsw_ef: Option<i64>,
    /// The model name in LightRAG's per-model vector table names, when the stored vectors
    /// come from a model other than the one hrag embeds with (set by a migration); empty for
    /// LightRAG's bare `LIGHTRAG_VDB_*` tables.
    pub embedding_model_name: Option<String>,
    pub file_size_warning_mb: Option<f64>,
    pub total_size_warning_mb: Option<f64>,
    pub performance_degradation_pct: Option<f64>,
}

impl std::fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendConfig")
            .field("backend_type", &self.backend_type)
            .field("postgres_host", &self.postgres_host)
            .field("postgres_port", &self.postgres_port)
            .field("postgres_user", &self.postgres_user)
            .field(
                "postgres_password",
                &self.postgres_password.as_ref().map(|_| secret::REDACTED),
            )
            .field("postgres_password_file", &self.postgres_password_file)
            .field("postgres_database", &self.postgres_database)
            .field("postgres_workspace", &self.postgres_workspace)
            .field(
                "connection_string",
                &self.connection_string.as_deref().map(secret::redact_dsn),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelConfig {
    pub llm_model: Option<String>,
    pub embedding_model: Option<String>,
    pub embedding_dim: Option<i64>,
}

/// What hrag reads of an entry. Unknown keys are ignored here and kept in the YAML.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawEntry {
    name: Option<String>,
    path: Option<String>,
    source_folder: Option<String>,
    source_type: Option<String>,
    auto_watch: Option<bool>,
    watch_interval: Option<i64>,
    model: Option<String>,
    recursive: Option<bool>,
    file_extensions: Option<Vec<String>>,
    preprocessing_pipeline: Option<Vec<String>>,
    created_at: Option<String>,
    last_sync: Option<String>,
    description: Option<String>,
    backend_type: Option<String>,
    backend_config: Option<BackendConfig>,
    model_config: Option<ModelConfig>,
    workspace: Option<String>,
}

/// A validated registry entry.
#[derive(Debug, Clone)]
pub struct DbEntry {
    pub name: String,
    pub path: PathBuf,
    pub source_folder: Option<PathBuf>,
    pub source_type: String,
    pub auto_watch: bool,
    pub watch_interval_secs: u64,
    pub model: Option<String>,
    pub recursive: bool,
    pub file_extensions: Option<Vec<String>>,
    pub preprocessing_pipeline: Option<Vec<String>>,
    pub created_at: Option<String>,
    pub last_sync: Option<String>,
    pub description: Option<String>,
    pub backend_type: BackendType,
    pub backend_config: BackendConfig,
    pub model_config: ModelConfig,
    /// The whole `model_config` mapping (providers read keys the typed view does not name).
    pub model_config_raw: Option<Value>,
    /// JSON: the workspace subfolder; Postgres: the `workspace` column (default: the db name).
    pub workspace: Option<String>,
}

impl DbEntry {
    /// The Postgres workspace: `postgres_workspace`, its alias, the entry's `workspace`, else the
    /// database's name (never a shared `default`).
    pub fn postgres_workspace(&self) -> String {
        let c = &self.backend_config;
        c.postgres_workspace
            .clone()
            .or_else(|| c.workspace.clone())
            .or_else(|| self.workspace.clone())
            .unwrap_or_else(|| self.name.clone())
    }

    /// The workspace shown to users for this entry's backend.
    pub fn effective_workspace(&self) -> Option<String> {
        match self.backend_type {
            BackendType::Json => self.workspace.clone(),
            BackendType::Postgres => Some(self.postgres_workspace()),
        }
    }

    /// The Postgres connection for display, password redacted.
    pub fn connection_display(&self) -> Option<String> {
        if self.backend_type != BackendType::Postgres {
            return None;
        }
        let c = &self.backend_config;
        if let Some(dsn) = &c.connection_string {
            return Some(secret::redact_dsn(dsn));
        }
        Some(format!(
            "postgresql://{}@{}:{}/{}",
            c.postgres_user.as_deref().unwrap_or("hybridrag"),
            c.postgres_host.as_deref().unwrap_or("localhost"),
            c.postgres_port.unwrap_or(5432),
            c.postgres_database.as_deref().unwrap_or("hybridrag"),
        ))
    }

    /// Warnings about the entry that do not make it unusable.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.backend_config.postgres_password.is_some() {
            w.push(format!(
                "database '{}' keeps backend_config.postgres_password in plain text; move it to \
                 postgres_password_file or the POSTGRES_PASSWORD environment variable",
                self.name
            ));
        }
        if let Some(dsn) = &self.backend_config.connection_string
            && secret::split_password(dsn).1.is_some()
        {
            w.push(format!(
                "database '{}' has a password inside backend_config.connection_string; move it to \
                 postgres_password_file or POSTGRES_PASSWORD",
                self.name
            ));
        }
        w
    }
}

/// Checks a database name against HybridRAG's rule; returns the normalised name.
pub fn normalise_name(input: &str) -> Result<String, FieldError> {
    let name = input.trim().to_lowercase();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(name)
    } else {
        Err(FieldError::new(
            "name",
            format!(
                "'{input}' is not a valid database name: use lower-case letters, digits and \
                 '-', starting and ending with a letter or digit"
            ),
        ))
    }
}

/// Parses and validates the entry stored under `key`. Relative paths are taken relative to the
/// registry file's directory.
pub fn parse_entry(key: &str, value: &Value, registry_dir: &Path) -> Result<DbEntry, FieldError> {
    let name = normalise_name(key)?;
    if name != key {
        return Err(FieldError::new(
            "name",
            format!("registry key '{key}' must be written as '{name}'"),
        ));
    }
    let raw: RawEntry = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let field = e.path().to_string();
        FieldError::new(
            if field == "." {
                "entry".to_owned()
            } else {
                field
            },
            e.into_inner().to_string(),
        )
    })?;
    if let Some(n) = &raw.name
        && n != key
    {
        return Err(FieldError::new(
            "name",
            format!("'{n}' differs from the registry key '{key}'"),
        ));
    }
    let absolute = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            registry_dir.join(p)
        }
    };
    let path = match raw.path.as_deref().map(str::trim) {
        Some(p) if !p.is_empty() => absolute(p),
        _ => {
            return Err(FieldError::new(
                "path",
                "is required (the LightRAG working directory)",
            ));
        }
    };
    let config = raw.backend_config.unwrap_or_default();
    let backend_type = parse_backend_type(
        raw.backend_type
            .as_deref()
            .or(config.backend_type.as_deref()),
    )?;
    validate_backend_config(&config)?;
    let watch_interval_secs = match raw.watch_interval {
        None => 300,
        Some(s) if s >= 1 => s as u64,
        Some(s) => {
            return Err(FieldError::new(
                "watch_interval",
                format!("{s} must be ≥ 1 second"),
            ));
        }
    };
    if let Some(ws) = &raw.workspace {
        validate_workspace("workspace", ws)?;
    }
    let source_type = raw.source_type.unwrap_or_else(|| "filesystem".to_owned());
    if !["filesystem", "specstory", "api", "schema"].contains(&source_type.as_str()) {
        return Err(FieldError::new(
            "source_type",
            format!("'{source_type}' is not one of filesystem, specstory, api, schema"),
        ));
    }
    Ok(DbEntry {
        name,
        path,
        source_folder: raw.source_folder.as_deref().map(absolute),
        source_type,
        auto_watch: raw.auto_watch.unwrap_or(false),
        watch_interval_secs,
        model: raw.model,
        recursive: raw.recursive.unwrap_or(true),
        file_extensions: raw.file_extensions,
        preprocessing_pipeline: raw.preprocessing_pipeline,
        created_at: raw.created_at,
        last_sync: raw.last_sync,
        description: raw.description,
        backend_type,
        backend_config: config,
        model_config: raw.model_config.unwrap_or_default(),
        model_config_raw: value.get("model_config").cloned(),
        workspace: raw.workspace,
    })
}

fn parse_backend_type(value: Option<&str>) -> Result<BackendType, FieldError> {
    let Some(v) = value else {
        return Ok(BackendType::Json);
    };
    match v.trim().to_lowercase().as_str() {
        "json" | "" => Ok(BackendType::Json),
        "postgres" | "postgresql" => Ok(BackendType::Postgres),
        other if FOREIGN_BACKENDS.contains(&other) => Err(FieldError::new(
            "backend_type",
            format!("'{other}' is a HybridRAG backend hrag does not support (json, postgres)"),
        )),
        other => Err(FieldError::new(
            "backend_type",
            format!("'{other}' is not a known backend (json, postgres)"),
        )),
    }
}

fn in_range(field: &str, v: Option<i64>, lo: i64, hi: i64) -> Result<(), FieldError> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => Err(FieldError::new(
            format!("backend_config.{field}"),
            format!("{x} is outside {lo}–{hi}"),
        )),
        _ => Ok(()),
    }
}

fn positive(field: &str, v: Option<f64>) -> Result<(), FieldError> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(FieldError::new(
            format!("backend_config.{field}"),
            format!("{x} must be a positive number"),
        )),
        _ => Ok(()),
    }
}

fn validate_workspace(field: &str, ws: &str) -> Result<(), FieldError> {
    let ok = !ws.is_empty()
        && ws.len() <= 255
        && ws
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("'{ws}' must be 1–255 letters, digits, '_' or '-'"),
        ))
    }
}

fn validate_backend_config(c: &BackendConfig) -> Result<(), FieldError> {
    in_range("postgres_port", c.postgres_port, 1, 65535)?;
    in_range(
        "postgres_max_connections",
        c.postgres_max_connections,
        1,
        100,
    )?;
    in_range("hnsw_m", c.hnsw_m, 4, 64)?;
    in_range("hnsw_ef", c.hnsw_ef, 16, 256)?;
    positive("file_size_warning_mb", c.file_size_warning_mb)?;
    positive("total_size_warning_mb", c.total_size_warning_mb)?;
    if let Some(p) = c.performance_degradation_pct
        && !(p > 0.0 && p < 100.0)
    {
        return Err(FieldError::new(
            "backend_config.performance_degradation_pct",
            format!("{p} must be between 0 and 100"),
        ));
    }
    const SSL: &[&str] = &[
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];
    if let Some(m) = &c.postgres_ssl_mode
        && !SSL.contains(&m.as_str())
    {
        return Err(FieldError::new(
            "backend_config.postgres_ssl_mode",
            format!("'{m}' is not one of {}", SSL.join(", ")),
        ));
    }
    if let Some(t) = &c.vector_index_type
        && !["hnsw", "ivfflat"].contains(&t.to_lowercase().as_str())
    {
        return Err(FieldError::new(
            "backend_config.vector_index_type",
            format!("'{t}' is not one of hnsw, ivfflat"),
        ));
    }
    if let Some(dsn) = &c.connection_string {
        let scheme_ok = dsn.starts_with("postgresql://") || dsn.starts_with("postgres://");
        if !scheme_ok || url::Url::parse(dsn).is_err() {
            return Err(FieldError::new(
                "backend_config.connection_string",
                format!(
                    "'{}' is not a postgresql:// or postgres:// URL",
                    secret::redact_dsn(dsn)
                ),
            ));
        }
    }
    for (field, ws) in [
        ("backend_config.postgres_workspace", &c.postgres_workspace),
        ("backend_config.workspace", &c.workspace),
    ] {
        if let Some(ws) = ws {
            validate_workspace(field, ws)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(yaml: &str) -> Result<DbEntry, FieldError> {
        let v: Value =
            serde_yaml_ng::from_str(yaml).map_err(|e| FieldError::new("yaml", e.to_string()))?;
        parse_entry("notes", &v, Path::new("/reg"))
    }

    #[test]
    fn defaults_follow_the_fact_sheet() -> Result<(), FieldError> {
        let e = entry("path: kb\n")?;
        assert_eq!(e.path, PathBuf::from("/reg/kb"));
        assert_eq!(e.backend_type, BackendType::Json);
        assert_eq!(e.watch_interval_secs, 300);
        assert!(e.recursive && !e.auto_watch);
        assert_eq!(e.postgres_workspace(), "notes");
        Ok(())
    }

    #[test]
    fn errors_name_the_field() {
        let err = entry("path: /kb\nbackend_config:\n  postgres_port: 70000\n").err();
        assert_eq!(
            err.map(|e| e.field),
            Some("backend_config.postgres_port".to_owned())
        );
        let err = entry("path: /kb\nauto_watch: sometimes\n").err();
        assert_eq!(err.map(|e| e.field), Some("auto_watch".to_owned()));
        let err = entry("path: /kb\nbackend_type: neo4j\n").err();
        assert_eq!(err.map(|e| e.field), Some("backend_type".to_owned()));
        let err = entry("source_folder: /src\n").err();
        assert_eq!(err.map(|e| e.field), Some("path".to_owned()));
    }

    #[test]
    fn workspace_alias_and_case_insensitive_backend() -> Result<(), FieldError> {
        let e =
            entry("path: /kb\nbackend_type: PostgreSQL\nbackend_config:\n  workspace: team_a\n")?;
        assert_eq!(e.backend_type, BackendType::Postgres);
        assert_eq!(e.postgres_workspace(), "team_a");
        Ok(())
    }

    #[test]
    fn debug_never_prints_passwords() -> Result<(), FieldError> {
        let e = entry(
            "path: /kb\nbackend_config:\n  postgres_password: hunter2\n  connection_string: postgres://u:hunter2@h/db\n",
        )?;
        let shown = format!("{e:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(e.warnings().len(), 2);
        Ok(())
    }

    #[test]
    fn names_follow_hybridrag_rules() {
        assert_eq!(normalise_name(" Notes-2 ").ok(), Some("notes-2".to_owned()));
        assert!(normalise_name("a").is_ok());
        assert!(normalise_name("-a").is_err());
        assert!(normalise_name("a_b").is_err());
        assert!(normalise_name("").is_err());
    }
}
