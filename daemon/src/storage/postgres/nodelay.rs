//! TCP_NODELAY on the connections to PostgreSQL.
//!
//! sqlx 0.9.0 stopped setting it (launchbadge/sqlx#4335; the fix, #4336, is not released).
//! With Nagle's algorithm on, a message written after a large one waits for the server's
//! delayed ACK: every `COPY`'s closing `CopyDone` and many small queries stall for ~40 ms on
//! Linux. libpq always sets TCP_NODELAY; hrag does the same, from outside sqlx, which does not
//! hand out its socket: the process's own TCP sockets to the server's port are found through
//! `/proc/self/fd` and reached with `pidfd_getfd` (a duplicate of the descriptor, so setting the
//! option changes the shared socket and dropping the duplicate closes nothing of sqlx's).
//!
//! Best effort: where `/proc` or `pidfd_getfd` (Linux 5.6) is missing, connections work as
//! before, only slower.

use std::os::fd::OwnedFd;

use rustix::net::{SocketType, sockopt};
use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

/// Sets TCP_NODELAY on every TCP socket of this process whose peer port is `port` and which
/// does not have it yet; returns how many it changed.
pub fn set_on_sockets_to(port: u16) -> usize {
    let Ok(me) = pidfd_open(getpid(), PidfdFlags::empty()) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut changed = 0;
    for entry in entries.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if !is_socket {
            continue;
        }
        let Ok(sock) = pidfd_getfd(&me, fd, PidfdGetfdFlags::empty()) else {
            continue;
        };
        if is_tcp_to(&sock, port) && sockopt::tcp_nodelay(&sock).is_ok_and(|on| !on) {
            changed += usize::from(sockopt::set_tcp_nodelay(&sock, true).is_ok());
        }
    }
    changed
}

fn is_tcp_to(sock: &OwnedFd, port: u16) -> bool {
    if !sockopt::socket_type(sock).is_ok_and(|t| t == SocketType::STREAM) {
        return false;
    }
    match rustix::net::getpeername(sock) {
        Ok(Some(peer)) => std::net::SocketAddr::try_from(peer).is_ok_and(|a| a.port() == port),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn sockets_to_the_port_get_nodelay_and_others_keep_nagle() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let to_server = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let elsewhere = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_server.nodelay().unwrap());
        assert!(set_on_sockets_to(listener.local_addr().unwrap().port()) >= 1);
        assert!(to_server.nodelay().unwrap());
        assert!(!elsewhere.nodelay().unwrap());
        // Already set: nothing more to change.
        assert_eq!(set_on_sockets_to(listener.local_addr().unwrap().port()), 0);
    }
}
