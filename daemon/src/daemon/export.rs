//! The daemon's side of `hragctl export`: the database's ingestion paused around the job (so
//! the files agree with one another) and resumed after, unless the user had paused it.
//!
//! The job runs on the daemon's task tracker, so a client that disconnects does not cut it
//! short halfway (which would leave ingestion paused and a staging directory behind).

use std::path::PathBuf;
use std::sync::Arc;

use hrag_proto::{ExportReport, ProgressEvent};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

use super::{Daemon, absolute};
use crate::error::DaemonError;
use crate::export::{self, Progress};
use crate::supervisor::{QueryContext, SupervisorHandle};

impl Daemon {
    /// `hragctl export DB --to json DIR`: writes the database into the new (or empty)
    /// directory `dir` as a LightRAG JSON working directory.
    pub async fn export(
        self: &Arc<Self>,
        db: &str,
        dir: &str,
        progress: Option<UnboundedSender<ProgressEvent>>,
    ) -> Result<ExportReport, DaemonError> {
        let name = db.trim().to_lowercase();
        let dir = absolute("DIR", dir)?;
        // A target that would be refused is refused before anything is paused.
        export::check_target(&dir)?;
        let ctx = self
            .with_db(&name, async |h: &SupervisorHandle| {
                h.query_context().ok_or_else(|| {
                    let snap = h.snapshot();
                    DaemonError::NotReady(format!(
                        "database '{name}' cannot be exported now: {}",
                        snap.error.unwrap_or_else(|| format!(
                            "its store is not open ({})",
                            snap.state.as_str()
                        ))
                    ))
                })
            })
            .await?;
        let this = Arc::clone(self);
        self.tracker
            .spawn(async move { this.export_paused(name, dir, ctx, progress).await })
            .await
            .map_err(|e| {
                DaemonError::io(
                    "export",
                    std::io::Error::other(format!("the job failed: {e}")),
                )
            })?
    }

    async fn export_paused(
        &self,
        name: String,
        dir: PathBuf,
        ctx: Arc<QueryContext>,
        progress: Option<UnboundedSender<ProgressEvent>>,
    ) -> Result<ExportReport, DaemonError> {
        let user_paused = self.pause_for_job(&name).await?;
        info!(event = "export_started", db = %name, dir = %dir.display(), "exporting to a LightRAG JSON directory");
        let result = export::run(&ctx.backend, &dir, &Progress::new(&name, progress)).await;
        self.release_after_job(&name, user_paused).await;
        match result {
            Ok(stores) => {
                info!(event = "export_completed", db = %name, dir = %dir.display(), "export done");
                Ok(ExportReport {
                    db: name,
                    dir: dir.display().to_string(),
                    stores,
                })
            }
            Err(e) => {
                warn!(event = "export_failed", db = %name, error = %e, "export failed; nothing was written");
                Err(e.into())
            }
        }
    }
}
