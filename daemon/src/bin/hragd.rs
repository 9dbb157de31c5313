//! `hragd`: the hrag daemon. Parses flags and environment, sets up logging, runs the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hrag_daemon::daemon::DaemonConfig;
use hrag_daemon::lifecycle::{self, QuickStart};
use hrag_daemon::logging::{self, LogFormat};
use hrag_daemon::{paths, registry};

// jemalloc rather than glibc's malloc: glibc keeps freed small blocks in per-thread arenas and
// seldom returns them, so a daemon stayed at its busiest size (e.g. the tokenizer's 600k table
// entries, still resident after it was released when idle); jemalloc gives unused pages back
// after a decay period (10 s), purged by its background thread even while the daemon sleeps.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Keeps LightRAG knowledge bases fresh from watched folders; driven by `hragctl`.
#[derive(Debug, Parser)]
#[command(name = "hragd", version, about)]
struct Args {
    /// HybridRAG registry file [default: $HYBRIDRAG_CONFIG, the path in
    /// ~/.hybridrag/config_pointer, else ~/.hybridrag/registry.yaml]
    #[arg(long, env = "HRAG_REGISTRY", value_name = "PATH")]
    registry: Option<PathBuf>,

    /// Control socket [default: $RUNTIME_DIRECTORY/hragd.sock, $XDG_RUNTIME_DIR/hrag/hragd.sock,
    /// /run/hrag/hragd.sock for root]
    #[arg(long, env = "HRAG_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,

    /// State directory (pause flags, checkpoints, secrets) [default: $STATE_DIRECTORY,
    /// $XDG_STATE_HOME/hrag, ~/.local/state/hrag]
    #[arg(long, env = "HRAG_STATE_DIR", value_name = "PATH")]
    state_dir: Option<PathBuf>,

    /// Log format: text for terminals, json for collectors.
    #[arg(long, env = "HRAG_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,

    /// Log level or filter directive (error, warn, info, debug, trace).
    #[arg(long, env = "HRAG_LOG_LEVEL", default_value = "info")]
    log_level: String,

    /// Group whose members may use the control socket (it becomes mode 0660).
    #[arg(long, env = "HRAG_SOCKET_GROUP", value_name = "GROUP")]
    socket_group: Option<String>,

    /// Longest time a shutdown waits for work in flight, in seconds.
    #[arg(long, env = "HRAG_DRAIN_TIMEOUT", default_value_t = 30)]
    drain_timeout: u64,

    /// Serve Prometheus metrics at http://ADDR/metrics; loopback addresses only
    /// (e.g. 127.0.0.1:9464).
    #[arg(long, env = "HRAG_METRICS_ADDR", value_name = "ADDR", value_parser = loopback_addr)]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Quick start: watch this folder into a JSON knowledge base (registered if missing).
    #[arg(long, value_name = "DIR")]
    watch: Option<PathBuf>,

    /// Quick start: the database name for --watch.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "default",
        requires = "watch"
    )]
    db: String,

    /// Quick start: the LightRAG working directory for --watch [default: <state-dir>/kb/<db>].
    #[arg(long, value_name = "DIR", requires = "watch")]
    kb: Option<PathBuf>,
}

fn loopback_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let addr = s
        .parse()
        .map_err(|e| format!("'{s}' is not an IP:PORT address: {e}"))?;
    hrag_daemon::monitor::http::check_loopback(addr).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = logging::init(args.log_format, &args.log_level) {
        eprintln!("hragd: {e}");
        return ExitCode::from(2);
    }
    // Without the background thread, pages freed by a thread that then sleeps would only be
    // purged on that arena's next allocation.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(event = "allocator_background_thread_failed", error = %e,
                       "jemalloc's background purging is off; idle memory may stay higher");
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(event = "daemon_failed", error = %format!("{e:#}"), "hragd cannot run");
            eprintln!("hragd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let registry = match args.registry {
        Some(p) => p,
        None => registry::default_registry_path()
            .context("no registry path: set --registry, HYBRIDRAG_CONFIG or HOME")?,
    };
    let config = DaemonConfig {
        registry,
        socket: args.socket.unwrap_or_else(paths::default_socket),
        state_dir: args.state_dir.unwrap_or_else(paths::default_state_dir),
        socket_group: args.socket_group,
        drain_timeout: Duration::from_secs(args.drain_timeout),
        metrics_addr: args.metrics_addr,
    };
    let quick = args.watch.map(|source| QuickStart {
        name: args.db,
        source,
        path: args.kb,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(lifecycle::run(config, quick))?;
    Ok(())
}
