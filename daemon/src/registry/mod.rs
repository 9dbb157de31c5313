//! HybridRAG's `registry.yaml`: `{version: 1, databases: {name: entry}}`.
//!
//! Invariants: the YAML document is the source of truth and is rewritten with every key it had,
//! in its order, including keys hrag does not know; every write happens under an exclusive lock
//! on `<registry>.lock`, re-reads the file inside the lock (so concurrent writers do not lose each
//! other's updates) and replaces it atomically.

mod entry;
mod location;
pub mod secret;

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

pub use entry::{
    BackendConfig, BackendType, DbEntry, FieldError, ModelConfig, normalise_name, parse_entry,
};
pub use location::default_registry_path;

use crate::fsutil::{self, FileLock};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// YAML syntax or shape errors; the message carries line and column.
    #[error("registry {}: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    /// An entry that fails validation, naming the file, the database and the field.
    #[error("registry {}: database '{db}': {error}", path.display())]
    Invalid {
        path: PathBuf,
        db: String,
        error: FieldError,
    },
    #[error("database '{0}' is not in the registry")]
    NotFound(String),
    #[error("database '{0}' is already in the registry")]
    Exists(String),
}

/// One parsed registry document.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    path: PathBuf,
    doc: Mapping,
}

const DATABASES: &str = "databases";

impl Registry {
    /// An empty registry, as a first run creates it.
    pub fn empty(path: &Path) -> Registry {
        let mut doc = Mapping::new();
        doc.insert("version".into(), 1.into());
        doc.insert(DATABASES.into(), Value::Mapping(Mapping::new()));
        Registry {
            path: path.to_path_buf(),
            doc,
        }
    }

    /// Parses registry text; `path` is used in messages and to resolve relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Registry, RegistryError> {
        let malformed = |message: String| RegistryError::Malformed {
            path: path.to_path_buf(),
            message,
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| malformed(e.to_string()))?;
        let mut doc = match value {
            Value::Null => Mapping::new(),
            Value::Mapping(m) => m,
            _ => {
                return Err(malformed(
                    "the top level must be a mapping with `version` and `databases`".into(),
                ));
            }
        };
        match doc.get("version") {
            None => {
                doc.insert("version".into(), 1.into());
            }
            Some(v) if v.as_u64() == Some(1) => {}
            Some(v) => {
                return Err(malformed(format!(
                    "version {} is not supported (hrag reads version 1)",
                    serde_yaml_ng::to_string(v).unwrap_or_default().trim()
                )));
            }
        }
        match doc.get(DATABASES) {
            None | Some(Value::Null) => {
                doc.insert(DATABASES.into(), Value::Mapping(Mapping::new()));
            }
            Some(Value::Mapping(dbs)) => {
                if let Some(k) = dbs.keys().find(|k| !k.is_string()) {
                    return Err(malformed(format!(
                        "`databases` key {} is not a string",
                        serde_yaml_ng::to_string(k).unwrap_or_default().trim()
                    )));
                }
            }
            Some(_) => {
                return Err(malformed(
                    "`databases` must be a mapping of name → entry".into(),
                ));
            }
        }
        Ok(Registry {
            path: path.to_path_buf(),
            doc,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    fn databases(&self) -> Option<&Mapping> {
        self.doc.get(DATABASES).and_then(Value::as_mapping)
    }

    fn databases_mut(&mut self) -> &mut Mapping {
        if !matches!(self.doc.get(DATABASES), Some(Value::Mapping(_))) {
            self.doc
                .insert(DATABASES.into(), Value::Mapping(Mapping::new()));
        }
        match self.doc.get_mut(DATABASES) {
            Some(Value::Mapping(m)) => m,
            // Just inserted above; kept total without a panic path.
            _ => unreachable_mapping(),
        }
    }

    /// Database names in file order.
    pub fn names(&self) -> Vec<String> {
        self.databases()
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The raw YAML of one entry.
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.databases()?.get(name)
    }

    /// The validated view of one entry.
    pub fn entry(&self, name: &str) -> Result<DbEntry, RegistryError> {
        let raw = self
            .raw(name)
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        entry::parse_entry(name, raw, &self.dir()).map_err(|error| RegistryError::Invalid {
            path: self.path.clone(),
            db: name.to_owned(),
            error,
        })
    }

    /// Adds a new entry; refuses an existing name.
    pub fn insert(&mut self, name: &str, entry: Mapping) -> Result<(), RegistryError> {
        if self.raw(name).is_some() {
            return Err(RegistryError::Exists(name.to_owned()));
        }
        let dbs = self.databases_mut();
        dbs.insert(name.into(), Value::Mapping(entry));
        // Validate what we are about to write, so hrag never writes an entry it cannot read.
        self.entry(name).map(|_| ()).inspect_err(|_| {
            self.databases_mut().remove(name);
        })
    }

    /// Changes keys of an existing entry in place (keeping its other keys and their order).
    pub fn modify(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Mapping),
    ) -> Result<(), RegistryError> {
        let before = self
            .raw(name)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        if let Some(Value::Mapping(m)) = self.databases_mut().get_mut(name) {
            f(m);
        }
        self.entry(name).map(|_| ()).inspect_err(|_| {
            self.databases_mut().insert(name.into(), before);
        })
    }

    pub fn remove(&mut self, name: &str) -> Result<(), RegistryError> {
        self.databases_mut()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))
    }

    /// The YAML text hrag writes: block style, keys in their order.
    pub fn to_yaml(&self) -> Result<String, RegistryError> {
        serde_yaml_ng::to_string(&self.doc).map_err(|e| RegistryError::Malformed {
            path: self.path.clone(),
            message: format!("cannot serialise: {e}"),
        })
    }
}

fn unreachable_mapping() -> &'static mut Mapping {
    // `databases_mut` inserts a mapping right before looking it up, so this is never reached;
    // leaking one empty mapping is the total, panic-free answer if it ever were.
    Box::leak(Box::new(Mapping::new()))
}

/// The registry file on disk: loads it and applies locked, atomic updates.
#[derive(Debug, Clone)]
pub struct RegistryStore {
    path: PathBuf,
}

impl RegistryStore {
    pub fn new(path: PathBuf) -> RegistryStore {
        RegistryStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> RegistryError {
        RegistryError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// Reads the registry; a missing file reads as empty.
    pub fn load(&self) -> Result<Registry, RegistryError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|e| RegistryError::Malformed {
                    path: self.path.clone(),
                    message: format!("not UTF-8 at byte offset {}", e.utf8_error().valid_up_to()),
                })?;
                Registry::parse(&self.path, &text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::empty(&self.path)),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Creates an empty registry (and its directory) unless the file exists.
    pub fn create_if_missing(&self) -> Result<bool, RegistryError> {
        if self.path.exists() {
            return Ok(false);
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fsutil::create_private_dir(dir, 0o700).map_err(|e| self.io(e))?;
        }
        let _lock = FileLock::acquire(&self.lock_path()).map_err(|e| self.io(e))?;
        if self.path.exists() {
            return Ok(false);
        }
        self.write(&Registry::empty(&self.path))?;
        Ok(true)
    }

    /// Read-modify-write under the lock. `f` sees the file as it is now, not an older copy.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut Registry) -> Result<T, RegistryError>,
    ) -> Result<(Registry, T), RegistryError> {
        let _lock = FileLock::acquire(&self.lock_path()).map_err(|e| self.io(e))?;
        let mut reg = self.load()?;
        let out = f(&mut reg)?;
        self.write(&reg)?;
        Ok((reg, out))
    }

    fn write(&self, reg: &Registry) -> Result<(), RegistryError> {
        let text = reg.to_yaml()?;
        // Keep the file's mode if it exists (users may share it); new files are private.
        let mode = std::fs::metadata(&self.path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(0o600);
        fsutil::write_atomic(&self.path, text.as_bytes(), mode).map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRIDRAG: &str = "version: 1
databases:
  notes:
    name: notes
    path: /data/notes
    source_folder: /src/notes
    auto_watch: true
    ingestion_mode: batch
    max_daily_cost_usd: 5.0
    fallback_tiers:
    - ollama/qwen
    - azure/gpt-4o
    fallback_trigger: on_budget_exceeded
";

    #[test]
    fn unknown_keys_survive_a_rewrite() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("registry.yaml");
        std::fs::write(&path, HYBRIDRAG)?;
        let store = RegistryStore::new(path.clone());
        store.update(|reg| {
            let mut e = Mapping::new();
            e.insert("name".into(), "second".into());
            e.insert("path".into(), "/data/second".into());
            reg.insert("second", e)
        })?;
        let text = std::fs::read_to_string(&path)?;
        let before: Value = serde_yaml_ng::from_str(HYBRIDRAG)?;
        let after: Value = serde_yaml_ng::from_str(&text)?;
        assert_eq!(before["databases"]["notes"], after["databases"]["notes"]);
        assert!(text.find("notes:") < text.find("second:"), "{text}");
        Ok(())
    }

    #[test]
    fn malformed_yaml_names_file_and_position() {
        let err = Registry::parse(Path::new("/etc/bad.yaml"), "version: 1\ndatabases: [oops\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/etc/bad.yaml"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn invalid_entries_name_file_db_and_field() -> Result<(), RegistryError> {
        let reg = Registry::parse(
            Path::new("/r.yaml"),
            "version: 1\ndatabases:\n  kb:\n    path: /kb\n    watch_interval: soon\n",
        )?;
        let err = reg
            .entry("kb")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("/r.yaml") && err.contains("'kb'") && err.contains("watch_interval"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn an_invalid_insert_is_rolled_back() -> Result<(), RegistryError> {
        let mut reg = Registry::empty(Path::new("/r.yaml"));
        let mut e = Mapping::new();
        e.insert("path".into(), "/kb".into());
        e.insert("backend_type".into(), "neo4j".into());
        assert!(reg.insert("kb", e).is_err());
        assert!(reg.names().is_empty());
        Ok(())
    }
}
