//! Where the control socket lives by default, so that `hragd` and `hragctl` agree without flags.
//!
//! Order: `$HRAG_SOCKET` is handled by the binaries' flags; here `$RUNTIME_DIRECTORY` (systemd's
//! `RuntimeDirectory=`), then `$XDG_RUNTIME_DIR/hrag`, then `/run/hrag` for root, else a
//! per-user directory under the system temp dir.

use std::path::PathBuf;

pub const SOCKET_FILE: &str = "hragd.sock";

/// The system service's socket (`RuntimeDirectory=hrag` in `hragd.service`).
pub const SYSTEM_SOCKET: &str = "/run/hrag/hragd.sock";

/// The default socket path for a process with user id `uid`, reading the environment.
pub fn default_socket_path(uid: u32) -> PathBuf {
    default_socket_path_from(uid, |k| std::env::var_os(k))
}

/// As [`default_socket_path`], with the environment supplied by `env` (for tests).
pub fn default_socket_path_from(
    uid: u32,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> PathBuf {
    let non_empty = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = non_empty("RUNTIME_DIRECTORY") {
        // systemd may list several directories separated by ':'; the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        return PathBuf::from(first).join(SOCKET_FILE);
    }
    if let Some(dir) = non_empty("XDG_RUNTIME_DIR") {
        return dir.join("hrag").join(SOCKET_FILE);
    }
    if uid == 0 {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    std::env::temp_dir()
        .join(format!("hrag-{uid}"))
        .join(SOCKET_FILE)
}
