//! The target directory, written atomically: every file goes into a hidden directory beside
//! DIR, which is fsynced and renamed onto DIR only when all of it is written. A failed or
//! abandoned export removes its staging directory, so DIR is either absent (or empty, as it
//! was) or complete.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::ExportError;
use crate::fsutil;

/// Tells apart two exports started by this process in the same instant.
static COUNTER: AtomicU64 = AtomicU64::new(0);

pub struct Staging {
    target: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl Staging {
    /// Checks that `target` is absolute and absent or an empty directory, and creates the
    /// staging directory beside it (creating missing parents).
    pub fn prepare(target: &Path) -> Result<Staging, ExportError> {
        let refuse = |reason: &str| ExportError::Target {
            dir: target.to_path_buf(),
            reason: reason.to_owned(),
        };
        if !target.is_absolute() {
            return Err(refuse("the export directory must be an absolute path"));
        }
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(refuse("cannot export into the root directory"));
        };
        match std::fs::symlink_metadata(target) {
            Ok(m) if !m.is_dir() => return Err(refuse("exists and is not a directory")),
            Ok(_) => {
                let mut entries =
                    std::fs::read_dir(target).map_err(|e| ExportError::write(target, e))?;
                if entries.next().is_some() {
                    return Err(refuse(
                        "exists and is not empty; export writes a new LightRAG directory, \
                         give a new or empty one",
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ExportError::write(target, e)),
        }
        std::fs::create_dir_all(parent).map_err(|e| ExportError::write(parent, e))?;
        let tmp = parent.join(format!(
            ".{}.hrag-export.{}.{}",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&tmp).map_err(|e| ExportError::write(&tmp, e))?;
        Ok(Staging {
            target: target.to_path_buf(),
            tmp,
            committed: false,
        })
    }

    /// A file of the directory being written.
    pub fn file(&self, name: &str) -> PathBuf {
        self.tmp.join(name)
    }

    /// Publishes the directory: fsync it, rename it onto the target (replacing an empty
    /// directory, which `rename(2)` allows), fsync the parent.
    pub fn commit(mut self) -> Result<(), ExportError> {
        fsutil::sync_dir(&self.tmp).map_err(|e| ExportError::write(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.target).map_err(|e| match e.kind() {
            std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists => {
                ExportError::Target {
                    dir: self.target.clone(),
                    reason: "files appeared in it during the export; nothing was written".into(),
                }
            }
            _ => ExportError::write(&self.target, e),
        })?;
        self.committed = true;
        if let Some(parent) = self.target.parent() {
            fsutil::sync_dir(parent).map_err(|e| ExportError::write(parent, e))?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}
