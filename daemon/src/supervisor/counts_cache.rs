//! Record counts saved in the state dir after each load and flush, so `backend status` can
//! answer while a large store is still loading, without parsing any store file.

use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::storage::Counts;

#[derive(Debug, Clone)]
pub struct CountsCache {
    dir: PathBuf,
}

impl CountsCache {
    pub fn new(state_dir: &Path) -> CountsCache {
        CountsCache {
            dir: state_dir.join("databases"),
        }
    }

    fn file(&self, db: &str) -> PathBuf {
        self.dir.join(format!("{db}.counts.json"))
    }

    pub fn load(&self, db: &str) -> Option<Counts> {
        let bytes = std::fs::read(self.file(db)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn save(&self, db: &str, counts: &Counts) -> std::io::Result<()> {
        fsutil::create_private_dir(&self.dir, 0o700)?;
        let bytes = serde_json::to_vec(counts).map_err(std::io::Error::other)?;
        fsutil::write_atomic(&self.file(db), &bytes, 0o600)
    }

    pub fn forget(&self, db: &str) {
        let _ = std::fs::remove_file(self.file(db));
    }
}
