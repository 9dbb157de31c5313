//! The daemon's life: start-up checks, serving, signals, and the bounded drain.
//!
//! Order at start: state dir, registry (created on a first run; a malformed one is fatal before
//! anything else is touched), quick-start entry, socket (single instance), supervisors, READY.
//! At SIGTERM/SIGINT: STOPPING, stop accepting, let supervisors finish their work in flight
//! within the drain bound, remove the socket, exit 0. SIGHUP reloads the registry.

use std::path::PathBuf;
use std::sync::Arc;

use serde_yaml_ng::Mapping;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::control;
use crate::daemon::{Daemon, DaemonConfig};
use crate::error::DaemonError;
use crate::fsutil;
use crate::notify;
use crate::registry::{self, RegistryError, RegistryStore};

/// Quick start: watch `source` into the JSON database `name` (created if missing).
#[derive(Debug, Clone)]
pub struct QuickStart {
    pub name: String,
    pub source: PathBuf,
    /// The LightRAG working directory; default `<state>/kb/<name>`.
    pub path: Option<PathBuf>,
}

/// Runs the daemon until a termination signal; returns after the drain.
pub async fn run(config: DaemonConfig, quick: Option<QuickStart>) -> Result<(), DaemonError> {
    let mut signals = Signals::install()?;
    fsutil::create_private_dir(&config.state_dir, 0o700).map_err(|e| {
        DaemonError::io(
            format!("cannot create the state dir {}", config.state_dir.display()),
            e,
        )
    })?;
    let store = RegistryStore::new(config.registry.clone());
    if store.create_if_missing()? {
        info!(event = "registry_created", registry = %config.registry.display(),
              "no registry found; created an empty one");
    }
    store.load()?;
    if let Some(q) = &quick {
        ensure_quick_start(&store, &config, q)?;
    }
    // Before the control socket: a taken port fails the start without touching it.
    let metrics = match config.metrics_addr {
        Some(addr) => Some(
            crate::monitor::http::bind(addr)
                .await
                .map_err(|e| DaemonError::Invalid(e.to_string()))?,
        ),
        None => None,
    };
    let socket = control::bind(&config.socket, config.socket_group.as_deref())?;
    let cancel = CancellationToken::new();
    let daemon = Arc::new(Daemon::start(config.clone(), cancel.child_token()).await?);
    let connections = TaskTracker::new();
    let accept_cancel = cancel.child_token();
    let server = {
        let daemon = daemon.clone();
        let connections = connections.clone();
        async move {
            control::serve(&socket, daemon, accept_cancel, connections).await;
            socket
        }
    };
    let server = tokio::spawn(server);
    if let Some(listener) = metrics {
        tokio::spawn(crate::monitor::http::serve(
            listener,
            daemon.clone(),
            cancel.child_token(),
        ));
    }
    info!(event = "daemon_started", socket = %config.socket.display(),
          registry = %config.registry.display(), pid = std::process::id(),
          databases = daemon.db_list().len(), "hragd is ready");
    notify::ready("serving");
    notify::spawn_watchdog(cancel.child_token());

    wait_for_stop(&daemon, &mut signals).await?;

    notify::stopping();
    info!(
        event = "daemon_stopping",
        "draining: finishing work in flight"
    );
    cancel.cancel();
    let socket = server
        .await
        .map_err(|e| DaemonError::Invalid(format!("control server failed: {e}")))?;
    // Stop accepting first, then let answers in flight and supervisors finish.
    connections.close();
    let drained = tokio::time::timeout(config.drain_timeout, connections.wait())
        .await
        .is_ok()
        & daemon.drain().await;
    drop(socket);
    if drained {
        info!(event = "daemon_stopped", "hragd stopped");
    } else {
        warn!(
            event = "drain_timeout",
            timeout_secs = config.drain_timeout.as_secs(),
            "the drain did not finish in time; stopping anyway"
        );
    }
    Ok(())
}

/// The signals hragd handles, installed before anything can be served: a SIGHUP that arrives
/// before its handler would end the process (the default action).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, DaemonError> {
        let sig =
            |kind| signal(kind).map_err(|e| DaemonError::io("cannot install a signal handler", e));
        Ok(Signals {
            term: sig(SignalKind::terminate())?,
            int: sig(SignalKind::interrupt())?,
            hup: sig(SignalKind::hangup())?,
        })
    }
}

async fn wait_for_stop(daemon: &Daemon, signals: &mut Signals) -> Result<(), DaemonError> {
    loop {
        tokio::select! {
            _ = signals.term.recv() => { info!(signal = "SIGTERM", "termination requested"); return Ok(()) }
            _ = signals.int.recv() => { info!(signal = "SIGINT", "termination requested"); return Ok(()) }
            _ = signals.hup.recv() => {
                notify::reloading(false);
                if let Err(e) = daemon.reload().await {
                    error!(error = %e, "reload failed");
                }
                notify::reloading(true);
            }
        }
    }
}

fn ensure_quick_start(
    store: &RegistryStore,
    config: &DaemonConfig,
    q: &QuickStart,
) -> Result<(), DaemonError> {
    let name = registry::normalise_name(&q.name).map_err(|e| DaemonError::Invalid(e.message))?;
    let source = std::path::absolute(&q.source)
        .map_err(|e| DaemonError::io(format!("--watch {}", q.source.display()), e))?;
    if !source.is_dir() {
        return Err(DaemonError::Invalid(format!(
            "--watch {}: not a directory",
            source.display()
        )));
    }
    let path = match &q.path {
        Some(p) => std::path::absolute(p)
            .map_err(|e| DaemonError::io(format!("--kb {}", p.display()), e))?,
        None => config.state_dir.join("kb").join(&name),
    };
    std::fs::create_dir_all(&path)
        .map_err(|e| DaemonError::io(format!("cannot create {}", path.display()), e))?;
    let created = store.update(|reg| {
        if reg.raw(&name).is_some() {
            return Ok(false);
        }
        let mut e = Mapping::new();
        e.insert("name".into(), name.clone().into());
        e.insert("path".into(), path.display().to_string().into());
        e.insert("source_folder".into(), source.display().to_string().into());
        e.insert("source_type".into(), "filesystem".into());
        e.insert("auto_watch".into(), true.into());
        e.insert("watch_interval".into(), 300.into());
        e.insert("recursive".into(), true.into());
        e.insert("backend_type".into(), "json".into());
        reg.insert(&name, e).map(|()| true)
    });
    match created {
        Ok((_, true)) => info!(event = "db_added", db = %name, source = %source.display(),
                               "quick start: registered the folder"),
        Ok((_, false)) => info!(db = %name, "quick start: database already registered"),
        Err(RegistryError::Exists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
