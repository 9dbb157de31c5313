//! Who may talk to the daemon: its own user, root, and members of the configured group.
//! Checked with SO_PEERCRED on every connection, whatever the socket file's mode says.

use nix::unistd::{Gid, Uid};
use tokio::net::UnixStream;

/// Why a peer was refused, for the log and for the client.
pub fn check(stream: &UnixStream, group: Option<Gid>) -> Result<u32, String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    let uid = cred.uid();
    let me = Uid::effective().as_raw();
    if uid == me || uid == 0 {
        return Ok(uid);
    }
    if let Some(g) = group
        && (cred.gid() == g.as_raw() || cred.pid().is_some_and(|pid| in_group(pid, g.as_raw())))
    {
        return Ok(uid);
    }
    Err(format!(
        "permission denied: uid {uid} may not use this hragd (it serves uid {me}, root{})",
        if group.is_some() {
            " and its socket group"
        } else {
            ""
        }
    ))
}

/// Whether process `pid` has `gid` among its supplementary groups.
fn in_group(pid: i32, gid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .map(|g| g.split_whitespace().any(|x| x.parse() == Ok(gid)))
        })
        .unwrap_or(false)
}
