//! Which databases the user paused, persisted in the state dir so a pause survives restarts.
//!
//! One small JSON file per database (`<state>/databases/<name>.json`), written atomically, so
//! two databases never contend for one file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    paused: bool,
}

#[derive(Debug, Clone)]
pub struct PausedStore {
    dir: PathBuf,
}

impl PausedStore {
    pub fn new(state_dir: &Path) -> PausedStore {
        PausedStore {
            dir: state_dir.join("databases"),
        }
    }

    fn file(&self, db: &str) -> PathBuf {
        self.dir.join(format!("{db}.json"))
    }

    /// Whether `db` was left paused. A missing file means "not paused".
    pub fn is_paused(&self, db: &str) -> std::io::Result<bool> {
        let path = self.file(db);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Persisted>(&bytes)
                .map(|p| p.paused)
                .map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn set_paused(&self, db: &str, paused: bool) -> std::io::Result<()> {
        fsutil::create_private_dir(&self.dir, 0o700)?;
        let bytes = serde_json::to_vec(&Persisted { paused }).map_err(std::io::Error::other)?;
        fsutil::write_atomic(&self.file(db), &bytes, 0o600)
    }

    /// Forgets a database (after `db remove`).
    pub fn forget(&self, db: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.file(db)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
