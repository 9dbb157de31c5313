//! The optional metrics listener (`hragd --metrics-addr 127.0.0.1:PORT`): `GET /metrics` over a
//! minimal HTTP/1.1 responder, one request per connection.
//!
//! Invariants: it binds loopback addresses only (the exposition names databases and paths'
//! files, and has no authentication); a request head is bounded in size and time; a broken
//! client closes its own connection only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::daemon::Daemon;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 16;
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "--metrics-addr {0}: only loopback addresses are allowed (127.0.0.1 or [::1]); the \
         metrics have no authentication — put a reverse proxy in front to expose them"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Refuses any address a remote host could reach.
pub fn check_loopback(addr: SocketAddr) -> Result<SocketAddr, HttpError> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(HttpError::NotLoopback(addr))
    }
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    let addr = check_loopback(addr)?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves `/metrics` until `cancel`.
pub async fn serve(listener: TcpListener, daemon: Arc<Daemon>, cancel: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(event = "metrics_listening", addr = %addr, "serving metrics at http://{addr}/metrics");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(error) => {
                warn!(%error, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over the cap the connection is simply closed: scrapers retry.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = respond(stream, &daemon).await;
        });
    }
}

async fn respond(mut stream: TcpStream, daemon: &Daemon) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => return write(&mut stream, 400, "Bad Request", "", false).await,
        Ok(Err(e)) => return Err(e),
        Err(_) => return write(&mut stream, 408, "Request Timeout", "", false).await,
    };
    match route(&head) {
        Route::Metrics { head_only } => {
            let body = daemon.metrics().await;
            write(&mut stream, 200, "OK", &body, head_only).await
        }
        Route::NotFound => write(&mut stream, 404, "Not Found", "try /metrics\n", false).await,
        Route::BadMethod => {
            write(
                &mut stream,
                405,
                "Method Not Allowed",
                "GET or HEAD\n",
                false,
            )
            .await
        }
        Route::Bad => write(&mut stream, 400, "Bad Request", "", false).await,
    }
}

/// The request head up to its blank line; `None` when it is oversized or the peer hung up.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(String::from_utf8(buf[..end].to_vec()).ok());
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    NotFound,
    BadMethod,
    Bad,
}

fn route(head: &str) -> Route {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Route::Bad;
    }
    let path = target.split('?').next().unwrap_or_default();
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::BadMethod,
    };
    if path == "/metrics" {
        Route::Metrics { head_only }
    } else {
        Route::NotFound
    }
}

async fn write(
    stream: &mut TcpStream,
    code: u16,
    reason: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    if code == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn only_loopback_is_allowed() {
        assert!(check_loopback("127.0.0.1:9100".parse().unwrap()).is_ok());
        assert!(check_loopback("[::1]:9100".parse().unwrap()).is_ok());
        assert!(check_loopback("0.0.0.0:9100".parse().unwrap()).is_err());
        assert!(check_loopback("192.168.1.2:9100".parse().unwrap()).is_err());
    }

    #[test]
    fn routes() {
        assert_eq!(
            route("GET /metrics HTTP/1.1\r\nHost: x"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route("HEAD /metrics?x=1 HTTP/1.0"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(route("GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(route("POST /metrics HTTP/1.1"), Route::BadMethod);
        assert_eq!(route("garbage"), Route::Bad);
    }
}
