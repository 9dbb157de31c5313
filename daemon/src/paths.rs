//! Default locations of the daemon's state, following systemd and XDG.

use std::path::PathBuf;

/// `$STATE_DIRECTORY` (systemd's `StateDirectory=`), then `$XDG_STATE_HOME/hrag`, then
/// `~/.local/state/hrag`, then `/var/lib/hrag`.
pub fn default_state_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(dirs) = var("STATE_DIRECTORY") {
        let first = dirs
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        return PathBuf::from(first);
    }
    if let Some(x) = var("XDG_STATE_HOME") {
        return PathBuf::from(x).join("hrag");
    }
    if let Some(home) = var("HOME") {
        return PathBuf::from(home).join(".local/state/hrag");
    }
    PathBuf::from("/var/lib/hrag")
}

/// The default control socket for this process's user.
pub fn default_socket() -> PathBuf {
    hrag_proto::paths::default_socket_path(nix::unistd::geteuid().as_raw())
}
