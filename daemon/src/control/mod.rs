//! The control socket: binding, peer checks, the handshake, and request dispatch.
//!
//! Invariants: only `hrag_proto` types cross the socket; a malformed, oversized or unexpected
//! frame closes that one connection and nothing else; a refused peer gets one sentence saying
//! why and is disconnected before any request is read.

mod handler;
mod peer;
mod socket;

use std::sync::Arc;
use std::time::Duration;

use hrag_proto::{
    Channel, FrameError, Hello, HelloReply, PROTOCOL_VERSION, Request, ServerMessage,
};
use nix::unistd::Gid;
use tokio::net::UnixStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use socket::{BoundSocket, bind};

use crate::daemon::Daemon;

/// At most this many clients are served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// A client that connects must say Hello within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until `cancel` fires; each is served on `tracker` so the drain waits for
/// answers in flight.
pub async fn serve(
    socket: &BoundSocket,
    daemon: Arc<Daemon>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = socket.listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(error) => {
                    warn!(%error, "accept failed on the control socket");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let daemon = daemon.clone();
        let group = socket.group;
        let cancel = cancel.clone();
        tracker.spawn(async move {
            connection(stream, daemon, group, cancel).await;
            drop(permit);
        });
    }
}

async fn connection(
    stream: UnixStream,
    daemon: Arc<Daemon>,
    group: Option<Gid>,
    cancel: CancellationToken,
) {
    let peer = peer::check(&stream, group);
    let mut chan = Channel::new(stream);
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, chan.recv::<Hello>()).await {
        Ok(Ok(h)) => h,
        Ok(Err(error)) => {
            debug!(%error, "connection closed before a valid hello");
            return;
        }
        Err(_) => {
            debug!("client sent no hello in time");
            return;
        }
    };
    let uid = match peer {
        Ok(uid) => uid,
        Err(message) => {
            warn!(event = "peer_refused", reason = %message, "refused a client on the control socket");
            let reply = HelloReply::Rejected {
                exit_code: hrag_proto::exit::PERMISSION_DENIED,
                message,
            };
            let _ = chan.send(&reply).await;
            return;
        }
    };
    if !(hello.protocol_min..=hello.protocol_max).contains(&PROTOCOL_VERSION) {
        let message = format!(
            "{} speaks control protocol {}–{}, this hragd {} speaks {}; use an hragctl of the same version",
            hello.client,
            hello.protocol_min,
            hello.protocol_max,
            env!("CARGO_PKG_VERSION"),
            PROTOCOL_VERSION
        );
        warn!(event = "protocol_mismatch", client = %hello.client, "{message}");
        let reply = HelloReply::Rejected {
            exit_code: hrag_proto::exit::PROTOCOL,
            message,
        };
        let _ = chan.send(&reply).await;
        return;
    }
    let accepted = HelloReply::Accepted {
        protocol: PROTOCOL_VERSION,
        server: format!("hragd {}", env!("CARGO_PKG_VERSION")),
    };
    if chan.send(&accepted).await.is_err() {
        return;
    }
    debug!(uid, client = %hello.client, "client connected");
    loop {
        let request = tokio::select! {
            _ = cancel.cancelled() => break,
            r = chan.recv::<Request>() => r,
        };
        let request = match request {
            Ok(r) => r,
            Err(FrameError::Closed) => break,
            Err(error) => {
                warn!(event = "bad_frame", %error, "closing a connection that sent a malformed frame");
                break;
            }
        };
        let name = request.name();
        let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel();
        let answer = handler::handle(&daemon, request, &ptx);
        tokio::pin!(answer);
        // Progress frames go out while the request runs; a client that leaves stops only the
        // following — background jobs go on.
        let response = loop {
            tokio::select! {
                r = &mut answer => break r,
                Some(p) = prx.recv() => {
                    if chan.send(&ServerMessage::Progress(p)).await.is_err() {
                        return;
                    }
                }
            }
        };
        while let Ok(p) = prx.try_recv() {
            if chan.send(&ServerMessage::Progress(p)).await.is_err() {
                return;
            }
        }
        if let hrag_proto::Response::Error(e) = &response {
            info!(request = name, kind = ?e.kind, error = %e.message, "request failed");
        }
        if chan.send(&ServerMessage::Response(response)).await.is_err() {
            break;
        }
    }
}
