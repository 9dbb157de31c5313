//! Crash-safe file writes and advisory locks.
//!
//! Invariant: a file written through [`write_atomic`] is, after any crash, either its previous
//! content or its new content, never a mix: the bytes go to a temp file in the same directory,
//! which is fsynced, renamed over the target, and the directory is fsynced so the rename sticks.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically; the new file gets permission bits `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, mode, |w| w.write_all(bytes))
}

/// Replaces `path` atomically with what `fill` writes, streamed through a buffer (so a large
/// store is never held twice in memory). Same guarantees as [`write_atomic`].
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut io::BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed `mode`; callers ask for exact bits (0600 secrets).
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        let mut w = io::BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs a directory so that renames and unlinks inside it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` (and parents) and, when this call created it, gives it `mode`.
pub fn create_private_dir(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// Temp files [`write_atomic`] leaves behind when the process dies mid-write, in `dir`.
pub fn stale_temp_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') && name.contains(".tmp.")
        })
        .map(|e| e.path())
        .collect()
}

/// An exclusive `flock` on a lock file, released when dropped (or when the process dies, which
/// is why a lock file left behind by a crash never blocks anyone).
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl FileLock {
    /// Takes the lock, waiting for another holder to release it.
    pub fn acquire(path: &Path) -> io::Result<FileLock> {
        Self::lock(path, FlockArg::LockExclusive)?.ok_or_else(|| io::Error::other("lock busy"))
    }

    /// Takes the lock if free; `Ok(None)` when another process holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<FileLock>> {
        Self::lock(path, FlockArg::LockExclusiveNonblock)
    }

    fn lock(path: &Path, arg: FlockArg) -> io::Result<Option<FileLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        match Flock::lock(file, arg) {
            Ok(lock) => Ok(Some(FileLock {
                _lock: lock,
                path: path.to_path_buf(),
            })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(io::Error::from(errno)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records who holds the lock (shown to whoever finds it taken).
    pub fn set_owner(&mut self, owner: &str) -> io::Result<()> {
        use std::io::Seek;
        let file: &mut File = &mut self._lock;
        file.set_len(0)?;
        file.seek(io::SeekFrom::Start(0))?;
        file.write_all(owner.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("f.json");
        write_atomic(&target, b"one", 0o644)?;
        write_atomic(&target, b"two", 0o600)?;
        assert_eq!(std::fs::read(&target)?, b"two");
        assert_eq!(
            std::fs::metadata(&target)?.permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        Ok(())
    }

    #[test]
    fn second_try_lock_is_refused_until_release() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("x.lock");
        let first = FileLock::try_acquire(&p)?;
        assert!(first.is_some());
        assert!(FileLock::try_acquire(&p)?.is_none());
        drop(first);
        assert!(FileLock::try_acquire(&p)?.is_some());
        Ok(())
    }
}
