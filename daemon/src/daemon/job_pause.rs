//! Jobs (migration, export) pause a database's ingestion for their whole run and give it back
//! afterwards, unless the user had paused it. Since pauses persist across restarts, a job cut
//! short by kill -9 would leave the database paused for good: a marker file in the state dir
//! (`jobs/<db>.pause`, holding whether the user had paused it) lets the next start give
//! ingestion back — a failed job leaves the database working, as PRODUCT §7 asks.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::Daemon;
use crate::error::DaemonError;

/// How long start waits for a database to take back its ingestion.
const RECOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn marker(state_dir: &Path, db: &str) -> PathBuf {
    state_dir.join("jobs").join(format!("{db}.pause"))
}

impl Daemon {
    /// Pauses `name` for a job (acknowledged: work in flight is done); returns whether the
    /// user had paused it already.
    pub(super) async fn pause_for_job(&self, name: &str) -> Result<bool, DaemonError> {
        let snap = self.with_db(name, async |h| Ok(h.snapshot())).await?;
        let file = marker(&self.config.state_dir, name);
        // A marker left by an interrupted job knows the user's choice better than the
        // (job-made) pause now persisted.
        let user_paused = match std::fs::read_to_string(&file) {
            Ok(s) => s.trim() == "true",
            Err(_) => snap.paused,
        };
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| DaemonError::io(format!("cannot create {}", dir.display()), e))?;
        }
        crate::fsutil::write_atomic(&file, user_paused.to_string().as_bytes(), 0o600)
            .map_err(|e| DaemonError::io("cannot write the job's pause marker", e))?;
        self.with_db(name, async |h| h.pause().await.map_err(DaemonError::from))
            .await?;
        Ok(user_paused)
    }

    /// Gives ingestion back after a job (unless the user had paused it).
    pub(super) async fn release_after_job(&self, name: &str, user_paused: bool) {
        if !user_paused
            && let Err(e) = self
                .with_db(name, async |h| h.resume().await.map_err(DaemonError::from))
                .await
        {
            warn!(event = "job_resume_failed", db = %name, error = %e,
                  "cannot resume ingestion after the job");
        }
        let _ = std::fs::remove_file(marker(&self.config.state_dir, name));
    }

    /// At start: databases a killed job left paused get their ingestion back.
    pub(super) async fn recover_job_pauses(&self) {
        let dir = self.config.state_dir.join("jobs");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Some(db) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pause"))
                .map(str::to_owned)
            else {
                continue;
            };
            let user_paused = std::fs::read_to_string(&path).is_ok_and(|s| s.trim() == "true");
            info!(event = "job_interrupted", db = %db, user_paused,
                  "a migration or export of this database was interrupted; ingestion is given back");
            let _ = std::fs::remove_file(&path);
            if !user_paused {
                // The command is queued at once; a store still loading acknowledges it later,
                // and the daemon must not wait for that before serving.
                let resume =
                    self.with_db(&db, async |h| h.resume().await.map_err(DaemonError::from));
                if let Ok(Err(e)) = tokio::time::timeout(RECOVER_WAIT, resume).await {
                    warn!(event = "job_resume_failed", db = %db, error = %e,
                          "cannot resume ingestion after an interrupted job");
                }
            }
        }
    }
}
