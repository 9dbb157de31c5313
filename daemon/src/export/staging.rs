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
    /// Checks the target (see [`check`]) and creates the staging directory beside it
    /// (creating missing parents).
    pub fn prepare(target: &Path) -> Result<Staging, ExportError> {
        let (parent, name) = check(target)?;
        std::fs::create_dir_all(parent).map_err(|e| ExportError::write(parent, e))?;
        let prefix = format!(".{}.hrag-export.", name.to_string_lossy());
        remove_abandoned(parent, &prefix);
        let tmp = parent.join(format!(
            "{prefix}{}.{}",
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

/// Checks that `target` is absolute and absent or an empty directory; its parent and name.
pub fn check(target: &Path) -> Result<(&Path, &std::ffi::OsStr), ExportError> {
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
        Ok(m) if !m.is_dir() => Err(refuse("exists and is not a directory")),
        Ok(_) => {
            let mut entries =
                std::fs::read_dir(target).map_err(|e| ExportError::write(target, e))?;
            if entries.next().is_some() {
                return Err(refuse(
                    "exists and is not empty; export writes a new LightRAG directory, \
                     give a new or empty one",
                ));
            }
            Ok((parent, name))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((parent, name)),
        Err(e) => Err(ExportError::write(target, e)),
    }
}

/// Removes the staging directories `<prefix><pid>.<n>` left by an hragd that died during an
/// export to the same target (a live process's are left alone).
fn remove_abandoned(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.split('.').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_committed_directory_replaces_an_empty_target_and_nothing_else_is_left() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("out");
        std::fs::create_dir(&target).unwrap();
        let s = Staging::prepare(&target).unwrap();
        std::fs::write(s.file("a.json"), "{}").unwrap();
        s.commit().unwrap();
        assert_eq!(names(&target), vec!["a.json"]);
        assert_eq!(names(t.path()), vec!["out"]);
    }

    #[test]
    fn an_abandoned_export_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("new/out");
        {
            let s = Staging::prepare(&target).unwrap();
            std::fs::write(s.file("a.json"), "{}").unwrap();
        }
        assert!(names(&t.path().join("new")).is_empty());
    }

    #[test]
    fn a_target_with_files_is_refused_untouched() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("keep"), "x").unwrap();
        let e = Staging::prepare(t.path()).err().unwrap();
        assert!(e.to_string().contains("not empty"), "{e}");
        let e = Staging::prepare(&t.path().join("keep")).err().unwrap();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = Staging::prepare(Path::new("rel/out")).err().unwrap();
        assert!(e.to_string().contains("absolute"), "{e}");
        assert_eq!(names(t.path()), vec!["keep"]);
    }

    #[test]
    fn staging_left_by_a_dead_hragd_is_removed_and_a_live_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        // Pids above the kernel's maximum (2^22) are never alive.
        let dead = t.path().join(".out.hrag-export.99999999.0");
        let live = t
            .path()
            .join(format!(".out.hrag-export.{}.77", std::process::id()));
        let other = t.path().join(".other.hrag-export.99999999.0");
        for d in [&dead, &live, &other] {
            std::fs::create_dir(d).unwrap();
        }
        let s = Staging::prepare(&t.path().join("out")).unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
        drop(s);
    }
}
