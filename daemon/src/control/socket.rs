//! Binding the control socket: one daemon per socket, private permissions, stale sockets of a
//! crashed daemon replaced.
//!
//! Invariants: the socket never exists with wider permissions than 0600 (0660 with a group):
//! it is bound under a restrictive umask before any chmod. A live daemon's socket is never
//! unlinked: an exclusive lock on `<socket>.lock`, held for the daemon's lifetime, decides.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Group};
use tokio::net::UnixListener;
use tracing::info;

use crate::error::DaemonError;
use crate::fsutil::{self, FileLock};

/// A bound control socket; removes its file when dropped.
pub struct BoundSocket {
    pub listener: UnixListener,
    path: PathBuf,
    /// Group whose members may connect, when configured.
    pub group: Option<Gid>,
    _lock: FileLock,
}

impl BoundSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    socket.with_file_name(name)
}

/// Binds `path`, refusing when another hragd serves it.
pub fn bind(path: &Path, group: Option<&str>) -> Result<BoundSocket, DaemonError> {
    let gid = group
        .map(|g| match Group::from_name(g) {
            Ok(Some(gr)) => Ok(gr.gid),
            Ok(None) => Err(DaemonError::Invalid(format!(
                "--socket-group: no group named '{g}'"
            ))),
            Err(e) => Err(DaemonError::Invalid(format!("--socket-group '{g}': {e}"))),
        })
        .transpose()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fsutil::create_private_dir(dir, 0o700)
            .map_err(|e| DaemonError::io(format!("cannot create {}", dir.display()), e))?;
    }
    let lock_file = lock_path(path);
    let lock = FileLock::try_acquire(&lock_file)
        .map_err(|e| DaemonError::io(format!("cannot open {}", lock_file.display()), e))?
        .ok_or_else(|| already_running(path))?;
    remove_stale(path)?;
    let mode = if gid.is_some() { 0o660 } else { 0o600 };
    // Bind under a umask that leaves only owner bits, so there is no window in which another
    // user could connect before the chmod below.
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    umask(old);
    let std_listener =
        bound.map_err(|e| DaemonError::io(format!("cannot bind {}", path.display()), e))?;
    if let Some(g) = gid {
        std::os::unix::fs::chown(path, None, Some(g.as_raw())).map_err(|e| {
            DaemonError::io(format!("cannot give {} to its group", path.display()), e)
        })?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| DaemonError::io(format!("cannot chmod {}", path.display()), e))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| DaemonError::io("cannot configure the socket", e))?;
    let listener = UnixListener::from_std(std_listener)
        .map_err(|e| DaemonError::io("cannot register the socket", e))?;
    Ok(BoundSocket {
        listener,
        path: path.to_path_buf(),
        group: gid,
        _lock: lock,
    })
}

fn already_running(path: &Path) -> DaemonError {
    DaemonError::AlreadyRunning(format!(
        "another hragd is already running on {} (stop it first, or use --socket)",
        path.display()
    ))
}

/// Removes a socket file nobody answers on; refuses if someone does, or if it is not a socket.
fn remove_stale(path: &Path) -> Result<(), DaemonError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(DaemonError::io(
                format!("cannot inspect {}", path.display()),
                e,
            ));
        }
    };
    if !meta.file_type().is_socket() {
        return Err(DaemonError::Invalid(format!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        )));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(already_running(path));
    }
    std::fs::remove_file(path).map_err(|e| {
        DaemonError::io(
            format!("cannot remove the stale socket {}", path.display()),
            e,
        )
    })?;
    info!(event = "stale_socket_removed", socket = %path.display(),
          "removed the socket of a daemon that is no longer running");
    Ok(())
}
