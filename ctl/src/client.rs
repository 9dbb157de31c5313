//! Talking to hragd: connect, handshake, one request, progress frames, one response.

use std::path::{Path, PathBuf};

use hrag_proto::{
    Channel, Hello, HelloReply, PROTOCOL_VERSION, ProgressEvent, Request, Response, ServerMessage,
    exit, paths,
};
use tokio::net::UnixStream;

/// A failure before a response arrived, with the exit code to return.
#[derive(Debug)]
pub struct ClientError {
    pub code: i32,
    pub message: String,
}

impl ClientError {
    fn new(code: i32, message: impl Into<String>) -> ClientError {
        ClientError {
            code,
            message: message.into(),
        }
    }
}

/// The socket to use: the flag, else the daemon's default for this user, else the system
/// service's socket when only that one exists.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p;
    }
    let mine = paths::default_socket_path(nix::unistd::geteuid().as_raw());
    let system = Path::new(paths::SYSTEM_SOCKET);
    if !mine.exists() && system.exists() {
        return system.to_path_buf();
    }
    mine
}

pub async fn call(
    socket: &Path,
    request: &Request,
    mut on_progress: impl FnMut(&ProgressEvent),
) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(socket).await.map_err(|e| {
        ClientError::new(
            exit::DAEMON_UNAVAILABLE,
            format!(
                "hragd is not running, or not reachable: cannot connect to {} ({e}).\n\
                 Start it with `hragd` (or `systemctl start hragd`), or point --socket at its socket.",
                socket.display()
            ),
        )
    })?;
    let mut chan = Channel::new(stream);
    let proto = |e: hrag_proto::FrameError| {
        ClientError::new(
            exit::PROTOCOL,
            format!("talking to hragd at {}: {e}", socket.display()),
        )
    };
    let hello = Hello {
        protocol_min: PROTOCOL_VERSION,
        protocol_max: PROTOCOL_VERSION,
        client: format!("hragctl {}", env!("CARGO_PKG_VERSION")),
    };
    chan.send(&hello).await.map_err(proto)?;
    match chan.recv::<HelloReply>().await.map_err(proto)? {
        HelloReply::Accepted { .. } => {}
        HelloReply::Rejected { exit_code, message } => {
            return Err(ClientError::new(
                exit_code,
                format!("hragd refused the connection: {message}"),
            ));
        }
    }
    chan.send(request).await.map_err(proto)?;
    loop {
        match chan.recv::<ServerMessage>().await.map_err(proto)? {
            ServerMessage::Progress(p) => on_progress(&p),
            ServerMessage::Response(r) => return Ok(r),
        }
    }
}
