//! The reachability monitor of a database whose store lives on a server: it probes every few
//! seconds, publishes what it finds in the snapshot (`health`, `backend status`), and wakes the
//! supervisor when the server is lost, so that an outage shows as `degraded` within seconds
//! even while a document is in flight.

use std::sync::{Arc, Weak};
use std::time::Duration;

use hrag_proto::{BackendProbe, DbState};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::DbSnapshot;
use crate::storage::{Probe, StorageResult};

/// Time between probes while the server answers.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// A running monitor; [`Monitor::stop`] ends it and waits, so it holds no session afterwards.
pub struct Monitor {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Monitor {
    /// Starts probing. The probe is held weakly: the backend (and its single-writer session)
    /// belongs to the supervisor alone.
    pub fn start(
        probe: &Arc<dyn Probe>,
        snapshot: watch::Sender<DbSnapshot>,
        lost: Arc<Notify>,
    ) -> Monitor {
        let cancel = CancellationToken::new();
        let weak: Weak<dyn Probe> = Arc::downgrade(probe);
        let token = cancel.clone();
        let task = tokio::spawn(async move {
            loop {
                let Some(probe) = weak.upgrade() else { return };
                let report = tokio::select! {
                    _ = token.cancelled() => return,
                    r = probe.probe() => r,
                };
                drop(probe);
                let shown = to_wire(&report);
                let reachable = shown.reachable;
                snapshot.send_modify(|s| {
                    if !reachable && s.state != DbState::Error {
                        s.state = DbState::Degraded;
                        s.error = shown
                            .error
                            .as_ref()
                            .map(|e| format!("backend unreachable: {e}"));
                    }
                    s.probe = Some(shown);
                });
                if !reachable {
                    lost.notify_one();
                    return;
                }
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(INTERVAL) => {}
                }
            }
        });
        Monitor { cancel, task }
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        // A monitor that panicked has nothing left to clean up.
        let _ = self.task.await;
    }
}

/// A probe's result as `health` shows it.
pub fn to_wire(report: &StorageResult<crate::storage::ProbeReport>) -> BackendProbe {
    let checked_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    match report {
        Ok(r) => BackendProbe {
            reachable: true,
            latency_ms: Some(r.latency_ms),
            server_version: Some(r.server_version.clone()),
            pgvector_version: r.pgvector_version.clone(),
            error: None,
            checked_at,
        },
        Err(e) => BackendProbe {
            reachable: false,
            latency_ms: None,
            server_version: None,
            pgvector_version: None,
            error: Some(e.to_string()),
            checked_at,
        },
    }
}
