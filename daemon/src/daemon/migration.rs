//! The daemon's side of a migration: one job per database, running on the daemon's task
//! tracker so that a client may disconnect and reattach (`migrate status`); the database's
//! ingestion paused around it; the registry switched to Postgres only after verification.
//!
//! Invariant: a failed or interrupted migration leaves the entry on JSON and ingestion as the
//! user had it (paused or not) — also after a kill -9, through the `<db>.paused-by-user` file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hrag_proto::{
    BackendKind, ErrorBody, JobPhase, MigrateSpec, MigrationReport, PgTargetSpec, ProgressEvent,
    VerifyReport,
};
use serde_yaml_ng::{Mapping, Value};
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use super::Daemon;
use crate::error::DaemonError;
use crate::migrate::{Emit, Job, JobSpec};
use crate::registry::{self, BackendType, RegistryError};

type JobResult = Option<Result<MigrationReport, ErrorBody>>;

/// How many progress events a follower may fall behind before it skips some.
const EVENT_BACKLOG: usize = 1024;

/// One job: its events as they happen, and its result once there is one.
#[derive(Clone)]
struct Slot {
    events: broadcast::Sender<ProgressEvent>,
    result: watch::Receiver<JobResult>,
}

/// The job's side of a [`Slot`].
struct JobHandle {
    events: broadcast::Sender<ProgressEvent>,
    result: watch::Sender<JobResult>,
}

/// The migrations of this daemon's life, running or finished, by database.
#[derive(Default)]
pub struct Jobs {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Jobs {
    fn get(&self, db: &str) -> Option<Slot> {
        self.slots.lock().ok().and_then(|m| m.get(db).cloned())
    }

    fn all(&self) -> Vec<(String, Slot)> {
        self.slots
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Registers a new job, unless one runs for `db`.
    fn start(&self, db: &str) -> Result<(JobHandle, Slot), DaemonError> {
        let mut m = self
            .slots
            .lock()
            .map_err(|_| DaemonError::Invalid("job table poisoned".into()))?;
        if let Some(slot) = m.get(db)
            && slot.result.borrow().is_none()
        {
            return Err(DaemonError::Conflict(format!(
                "a migration of '{db}' is already running; follow it with \
                 `hragctl migrate status {db}`"
            )));
        }
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let (result_tx, result) = watch::channel(None);
        let slot = Slot {
            events: events.clone(),
            result,
        };
        m.insert(db.to_owned(), slot.clone());
        Ok((
            JobHandle {
                events,
                result: result_tx,
            },
            slot,
        ))
    }
}

impl Slot {
    /// A follower from now on (subscribe before the job starts to see every event).
    fn follower(&self) -> Follower {
        Follower {
            events: self.events.subscribe(),
            result: self.result.clone(),
        }
    }
}

struct Follower {
    events: broadcast::Receiver<ProgressEvent>,
    result: watch::Receiver<JobResult>,
}

/// Forwards a job's progress to `progress` until it ends; returns its result.
async fn follow(
    f: Follower,
    progress: &tokio::sync::mpsc::UnboundedSender<ProgressEvent>,
) -> Result<MigrationReport, ErrorBody> {
    let Follower {
        mut events,
        mut result,
    } = f;
    loop {
        if let Some(r) = result.borrow_and_update().clone() {
            while let Ok(p) = events.try_recv() {
                let _ = progress.send(p);
            }
            return r;
        }
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(p) => { let _ = progress.send(p); }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {}
            },
            changed = result.changed() => {
                if changed.is_err() && result.borrow().is_none() {
                    return Err(ErrorBody::new(
                        hrag_proto::ErrorKind::Interrupted,
                        "the migration job ended without a result".to_owned(),
                    ));
                }
            }
        }
    }
}

impl Daemon {
    /// `hragctl migrate`: starts the job and follows it.
    pub async fn migrate(
        self: &Arc<Self>,
        spec: MigrateSpec,
        progress: &tokio::sync::mpsc::UnboundedSender<ProgressEvent>,
    ) -> Result<MigrationReport, DaemonError> {
        let name = spec.db.trim().to_lowercase();
        if spec.to != BackendKind::Postgres {
            return Err(DaemonError::Invalid(
                "only migrations to postgres are supported (`--to postgres`); to go back to \
                 JSON use `hragctl export DB --to json DIR`"
                    .into(),
            ));
        }
        let reg = self.registry_snapshot();
        let entry = reg.entry(&name)?;
        if entry.backend_type == BackendType::Postgres && spec.resume {
            // The job finished (switch included) before whatever interrupted the client.
            return Ok(MigrationReport {
                db: name.clone(),
                phase: JobPhase::Done,
                dry_run: false,
                target: crate::supervisor::pg_settings(&entry)
                    .ok()
                    .map(|s| s.location()),
                embedding_model: entry.backend_config.embedding_model_name.clone(),
                embedding_dim: entry
                    .model_config
                    .embedding_dim
                    .and_then(|d| u32::try_from(d).ok()),
                stores: vec![],
                duration_secs: 0.0,
                bytes_per_sec: 0.0,
                peak_rss_bytes: crate::health::memory().peak_rss_bytes,
                verified: None,
                message: Some(format!(
                    "'{name}' is already on postgres: its migration finished; nothing to resume \
                     (`hragctl verify {name}` re-checks it)"
                )),
                index_builds: self.index_builds_of(&name).await,
            });
        }
        if entry.backend_type != BackendType::Json {
            return Err(DaemonError::Invalid(format!(
                "database '{name}' is already on {}",
                entry.backend_type.as_str()
            )));
        }
        let (handle, slot) = self.jobs.start(&name)?;
        let follower = slot.follower();
        let daemon = self.clone();
        let events = handle.events.clone();
        let emit: Emit = Arc::new(move |p: ProgressEvent| {
            // No follower is fine: the job runs on.
            let _ = events.send(p);
        });
        let db = name.clone();
        self.tracker.spawn(async move {
            let result = daemon.run_migration(&db, spec, emit).await;
            if let Err(e) = &result {
                warn!(event = "migration_failed", db = %db, error = %e, "migration failed");
            }
            let _ = handle.result.send(Some(result.map_err(|e| e.to_body())));
        });
        let mut report = follow(follower, progress)
            .await
            .map_err(DaemonError::Remote)?;
        self.with_index_builds(&mut report).await;
        Ok(report)
    }

    /// A finished migration's report gains the background index builds the switch started.
    async fn with_index_builds(&self, r: &mut MigrationReport) {
        if r.phase == JobPhase::Done && !r.dry_run {
            r.index_builds = self.index_builds_of(&r.db).await;
        }
    }

    /// `hragctl migrate status [DB]`: follows a running job to its end, or reports the last.
    pub async fn migrate_status(
        &self,
        db: Option<String>,
        progress: &tokio::sync::mpsc::UnboundedSender<ProgressEvent>,
    ) -> Result<Vec<MigrationReport>, DaemonError> {
        let jobs = match db {
            Some(d) => {
                let d = d.trim().to_lowercase();
                let rx = self.jobs.get(&d).ok_or_else(|| {
                    DaemonError::Invalid(format!("no migration of '{d}' since hragd started"))
                })?;
                vec![(d, rx)]
            }
            None => self.jobs.all(),
        };
        let mut out = Vec::new();
        for (db, rx) in jobs {
            match follow(rx.follower(), progress).await {
                Ok(mut r) => {
                    self.with_index_builds(&mut r).await;
                    out.push(r)
                }
                Err(e) => out.push(MigrationReport {
                    db,
                    phase: JobPhase::Failed,
                    dry_run: false,
                    target: None,
                    embedding_model: None,
                    embedding_dim: None,
                    stores: vec![],
                    duration_secs: 0.0,
                    bytes_per_sec: 0.0,
                    peak_rss_bytes: 0,
                    verified: None,
                    message: Some(e.message),
                    index_builds: Vec::new(),
                }),
            }
        }
        Ok(out)
    }

    /// `hragctl verify DB`: the Postgres workspace against its JSON backup, record by record.
    pub async fn verify(
        &self,
        db: &str,
        progress: &tokio::sync::mpsc::UnboundedSender<ProgressEvent>,
    ) -> Result<VerifyReport, DaemonError> {
        let name = db.trim().to_lowercase();
        let entry = self.registry_snapshot().entry(&name)?;
        if entry.backend_type != BackendType::Postgres {
            return Err(DaemonError::Invalid(format!(
                "database '{name}' is on {}: verify compares a migrated Postgres database with \
                 the JSON directory it came from",
                entry.backend_type.as_str()
            )));
        }
        let target = crate::supervisor::pg_settings(&entry)
            .map_err(|e| DaemonError::Invalid(e.to_string()))?;
        let sink = progress.clone();
        let emit: Emit = Arc::new(move |p| {
            let _ = sink.send(p);
        });
        let report = crate::migrate::recheck::run(
            crate::migrate::recheck::Recheck {
                db: name.clone(),
                source_path: entry.path.clone(),
                source_workspace: entry.workspace.clone(),
                target,
            },
            emit,
        )
        .await?;
        if !report.ok {
            return Err(DaemonError::Remote(ErrorBody::new(
                hrag_proto::ErrorKind::VerificationFailed,
                format!(
                    "verification of '{name}' failed; first differing records:\n  {}",
                    report.mismatches.join("\n  ")
                ),
            )));
        }
        info!(event = "verified", db = %name, "the Postgres workspace matches its JSON backup");
        Ok(report)
    }

    async fn run_migration(
        &self,
        name: &str,
        spec: MigrateSpec,
        emit: Emit,
    ) -> Result<MigrationReport, DaemonError> {
        let started = std::time::Instant::now();
        let reg = self.registry_snapshot();
        let entry = reg.entry(name)?;
        let pg = PgTargetSpec {
            connection_string: spec.connection_string.clone(),
            ..PgTargetSpec::default()
        };
        let config = self.postgres_config(name, &pg)?;
        let candidate = candidate_entry(reg.raw(name), &config)
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        let dir = self
            .config
            .registry
            .parent()
            .unwrap_or(std::path::Path::new("/"));
        let parsed = registry::parse_entry(name, &Value::Mapping(candidate), dir)
            .map_err(|e| DaemonError::Invalid(format!("database '{name}': {e}")))?;
        let model = spec
            .embedding_model
            .clone()
            .or_else(|| entry.model_config.embedding_model.clone())
            .filter(|m| !m.trim().is_empty());
        let target = crate::supervisor::pg_target_settings(&parsed, model.clone())
            .map_err(|e| DaemonError::Invalid(e.to_string()))?;
        let job_spec = JobSpec {
            db: name.to_owned(),
            source_path: entry.path.clone(),
            source_workspace: entry.workspace.clone(),
            target,
            fallback_dim: crate::supervisor::embedder_dim(&entry),
            batch_rows: spec.batch_size.map(|n| n as usize),
            resume: spec.resume,
            verify: spec.verify,
            dry_run: spec.dry_run,
            force: spec.force,
            state_dir: self.config.state_dir.clone(),
            sample: self
                .with_db(name, async |h| Ok(h.query_context()))
                .await?
                .map(|c| c.backend.clone()),
        };
        let job = Job::new(job_spec, emit.clone(), self.cancel.child_token());
        if spec.dry_run {
            return Ok(job.run().await?.report);
        }
        let user_paused = self.pause_for_job(name).await?;
        let result = job.run().await;
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                self.release_after_job(name, user_paused).await;
                return Err(e.into());
            }
        };
        emit(ProgressEvent {
            db: name.to_owned(),
            phase: JobPhase::Switching,
            store: None,
            records_done: 0,
            records_total: None,
            bytes_done: 0,
            bytes_total: None,
            message: Some("verified; switching the registry entry to postgres".into()),
        });
        let dim = outcome.embedding_dim;
        let table_model = model.clone().unwrap_or_default();
        let n = name.to_owned();
        let switched = self
            .change(move |reg| reg.modify(&n, |m| switch_entry(m, config, &table_model, dim)))
            .await;
        if let Err(e) = switched {
            self.release_after_job(name, user_paused).await;
            return Err(e);
        }
        info!(event = "migration_switched", db = %name, "database now on postgres; the JSON directory is left as the backup");
        self.release_after_job(name, user_paused).await;
        let mut report = outcome.report;
        report.phase = JobPhase::Done;
        report.duration_secs = started.elapsed().as_secs_f64();
        let total: u64 = report.stores.iter().map(|s| s.bytes).sum();
        report.bytes_per_sec = total as f64 / report.duration_secs.max(1e-6);
        report.peak_rss_bytes = crate::health::memory().peak_rss_bytes;
        report.message = Some(format!(
            "switched to postgres; the JSON directory is untouched (the backup); vector \
             indexes build in the background (see `hragctl status`){}",
            outcome
                .query_check
                .map(|q| format!("; {q}"))
                .unwrap_or_default()
        ));
        Ok(report)
    }
}

/// The entry as it would be on Postgres: for checking and for the target's settings.
fn candidate_entry(raw: Option<&Value>, config: &Mapping) -> Option<Mapping> {
    let mut m = match raw {
        Some(Value::Mapping(m)) => m.clone(),
        _ => return None,
    };
    let mut merged = match m.get("backend_config") {
        Some(Value::Mapping(old)) => old.clone(),
        _ => Mapping::new(),
    };
    for (k, v) in config.clone() {
        merged.insert(k, v);
    }
    m.insert("backend_type".into(), "postgres".into());
    m.insert("backend_config".into(), Value::Mapping(merged));
    Some(m)
}

/// The registry switch: backend and connection, the vector tables' model name, and the
/// dimension when the entry does not name one (other keys untouched).
fn switch_entry(m: &mut Mapping, config: Mapping, table_model: &str, dim: usize) {
    let mut merged = match m.get("backend_config") {
        Some(Value::Mapping(old)) => old.clone(),
        _ => Mapping::new(),
    };
    if config.contains_key("connection_string") {
        merged.remove("postgres_password");
    }
    for (k, v) in config {
        merged.insert(k, v);
    }
    merged.insert("embedding_model_name".into(), table_model.into());
    m.insert("backend_type".into(), "postgres".into());
    m.insert("backend_config".into(), Value::Mapping(merged));
    let mut mc = match m.get("model_config") {
        Some(Value::Mapping(mc)) => mc.clone(),
        _ => Mapping::new(),
    };
    if !mc.contains_key("embedding_dim") {
        mc.insert("embedding_dim".into(), (dim as u64).into());
        m.insert("model_config".into(), Value::Mapping(mc));
    }
}
