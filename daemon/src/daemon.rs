//! The daemon's core: the registry, one supervisor per database, and the operations the control
//! socket exposes. Everything that changes the registry goes through [`RegistryStore::update`]
//! and then [`Daemon::apply`], so the running supervisors always mirror the file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hrag_proto::{
    BackendHealth, BackendKind, BackendMetrics, BackendStatusReport, DaemonStatus, DbAck,
    DbAddSpec, DbDetail, DbHealth, DbStatus, DbSummary, DbTarget, Health, PgTargetSpec,
    ReloadReport, SetBackendSpec,
};
use serde_yaml_ng::{Mapping, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::error::DaemonError;
use crate::health;
use crate::registry::{self, Registry, RegistryError, RegistryStore, secret};
use crate::storage::postgres;
use crate::supervisor::{
    CountsCache, DbSnapshot, EntryConfig, PausedStore, StateFiles, SupervisorHandle,
};

mod export;
mod job_pause;
mod migration;

/// Everything `hragd` is started with.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub registry: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// Group allowed on the control socket (mode 0660) besides the daemon's user and root.
    pub socket_group: Option<String>,
    /// Upper bound for the drain at shutdown.
    pub drain_timeout: Duration,
    /// Loopback address of the optional HTTP metrics listener.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// How long a registry change waits for new databases to open before answering.
const START_WAIT: Duration = Duration::from_secs(3);
/// How long `db add` waits for a Postgres target to answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

struct Running {
    raw: Value,
    handle: SupervisorHandle,
}

pub struct Daemon {
    pub config: DaemonConfig,
    registry: RegistryStore,
    files: StateFiles,
    started: Instant,
    /// The supervisors, by database name. A tokio mutex: held across awaits while syncing.
    dbs: tokio::sync::Mutex<BTreeMap<String, Running>>,
    /// The registry as last applied (for `status` and `db show` without re-reading the file).
    current: Mutex<Registry>,
    /// Serialises registry changes with their application, so two `db add` never interleave.
    changes: tokio::sync::Mutex<()>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// Migration jobs, running or finished.
    jobs: migration::Jobs,
}

impl Daemon {
    /// Loads the registry and starts a supervisor per database. A registry that cannot be
    /// parsed is fatal here (at start) but not at reload.
    pub async fn start(
        config: DaemonConfig,
        cancel: CancellationToken,
    ) -> Result<Daemon, DaemonError> {
        let registry = RegistryStore::new(config.registry.clone());
        let reg = registry.load()?;
        let daemon = Daemon {
            files: StateFiles {
                dir: config.state_dir.clone(),
                paused: PausedStore::new(&config.state_dir),
                counts: CountsCache::new(&config.state_dir),
            },
            config,
            current: Mutex::new(reg.clone()),
            registry,
            started: Instant::now(),
            dbs: tokio::sync::Mutex::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
            tracker: TaskTracker::new(),
            cancel,
            jobs: migration::Jobs::default(),
        };
        daemon.apply(reg).await;
        daemon.recover_job_pauses().await;
        Ok(daemon)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn registry_snapshot(&self) -> Registry {
        match self.current.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn entry_config(reg: &Registry, name: &str) -> EntryConfig {
        reg.entry(name).map_err(|e| e.to_string())
    }

    /// Makes the running supervisors match `reg`: starts new ones, stops removed ones, hands
    /// changed entries to theirs.
    pub async fn apply(&self, reg: Registry) -> ReloadReport {
        let mut report = ReloadReport {
            added: vec![],
            removed: vec![],
            changed: vec![],
        };
        let mut dbs = self.dbs.lock().await;
        let names = reg.names();
        let gone: Vec<String> = dbs.keys().filter(|n| !names.contains(n)).cloned().collect();
        for name in gone {
            if let Some(run) = dbs.remove(&name) {
                run.handle.stop().await;
                info!(event = "db_removed", db = %name, "database removed from the daemon");
                report.removed.push(name);
            }
        }
        for name in names {
            let raw = reg.raw(&name).cloned().unwrap_or(Value::Null);
            let config = Self::entry_config(&reg, &name);
            if let Ok(entry) = &config {
                for w in entry.warnings() {
                    warn!(event = "registry_plaintext_password", db = %name, "{w}");
                }
            }
            match dbs.get_mut(&name) {
                Some(run) if run.raw == raw => {}
                Some(run) => {
                    run.raw = raw;
                    run.handle.reconfigure(config).await;
                    report.changed.push(name);
                }
                None => {
                    if let Err(error) = &config {
                        warn!(event = "registry_entry_invalid", db = %name, %error,
                              "the database's registry entry is invalid; it stays in error");
                    }
                    let handle = SupervisorHandle::spawn(
                        name.clone(),
                        config,
                        self.files.clone(),
                        &self.tracker,
                        &self.cancel,
                    );
                    dbs.insert(name.clone(), Running { raw, handle });
                    report.added.push(name);
                }
            }
        }
        // Give new databases a moment to open small stores, so that an answer right after
        // `db add` shows them ready; large stores keep loading in the background.
        let opening = report
            .added
            .iter()
            .filter_map(|n| dbs.get(n))
            .map(|run| run.handle.started());
        let _ = tokio::time::timeout(START_WAIT, futures::future::join_all(opening)).await;
        drop(dbs);
        match self.current.lock() {
            Ok(mut g) => *g = reg,
            Err(poisoned) => *poisoned.into_inner() = reg,
        }
        report
    }

    /// Re-reads the registry file (SIGHUP, `hragctl reload`). A broken file leaves the running
    /// set as it was.
    pub async fn reload(&self) -> Result<ReloadReport, DaemonError> {
        let _guard = self.changes.lock().await;
        let reg = self.registry.load().inspect_err(|e| {
            error!(event = "registry_reload_failed", error = %e,
                   "the registry cannot be read; keeping the databases as they were");
        })?;
        let report = self.apply(reg).await;
        info!(event = "registry_reloaded", added = ?report.added, removed = ?report.removed,
              changed = ?report.changed, "registry reloaded");
        Ok(report)
    }

    /// Applies a locked, atomic registry change and brings the supervisors in line.
    async fn change<T>(
        &self,
        f: impl FnOnce(&mut Registry) -> Result<T, RegistryError>,
    ) -> Result<T, DaemonError> {
        let _guard = self.changes.lock().await;
        let (reg, out) = self.registry.update(f)?;
        self.apply(reg).await;
        Ok(out)
    }

    fn summary(reg: &Registry, name: &str) -> Result<DbSummary, DaemonError> {
        let e = reg.entry(name)?;
        Ok(DbSummary {
            name: e.name.clone(),
            backend: e.backend_type.as_str().to_owned(),
            path: e.path.display().to_string(),
            workspace: e.effective_workspace(),
            source_folder: e.source_folder.as_ref().map(|p| p.display().to_string()),
            auto_watch: e.auto_watch,
            connection: e.connection_display(),
        })
    }

    /// A summary even for an invalid entry (with what can be read of it).
    fn summary_lenient(reg: &Registry, name: &str) -> DbSummary {
        Self::summary(reg, name).unwrap_or_else(|_| {
            let raw = reg.raw(name);
            let text = |k: &str| {
                raw.and_then(|r| r.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            DbSummary {
                name: name.to_owned(),
                backend: text("backend_type").unwrap_or_else(|| "json".into()),
                path: text("path").unwrap_or_default(),
                workspace: text("workspace"),
                source_folder: text("source_folder"),
                auto_watch: false,
                connection: None,
            }
        })
    }

    /// The background vector-index builds of `db` (none while it is not open on Postgres).
    pub async fn index_builds_of(&self, db: &str) -> Vec<hrag_proto::IndexBuild> {
        let dbs = self.dbs.lock().await;
        dbs.get(db)
            .map(|run| index_builds(&run.handle))
            .unwrap_or_default()
    }

    pub async fn status(&self) -> DaemonStatus {
        let reg = self.registry_snapshot();
        let dbs = self.dbs.lock().await;
        let databases = dbs
            .iter()
            .map(|(name, run)| {
                let s = run.handle.snapshot();
                let sum = Self::summary_lenient(&reg, name);
                DbStatus {
                    name: name.clone(),
                    backend: sum.backend,
                    state: s.state,
                    paused: s.paused,
                    path: sum.path,
                    workspace: sum.workspace,
                    source_folder: sum.source_folder,
                    auto_watch: sum.auto_watch,
                    error: s.error,
                    index_builds: index_builds(&run.handle),
                }
            })
            .collect();
        DaemonStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uptime_secs: self.uptime().as_secs(),
            socket: self.config.socket.display().to_string(),
            registry: self.config.registry.display().to_string(),
            state_dir: self.config.state_dir.display().to_string(),
            databases,
        }
    }

    pub async fn health(&self) -> Health {
        let dbs = self.dbs.lock().await;
        let databases = dbs
            .iter()
            .map(|(name, run)| {
                let s = run.handle.snapshot();
                DbHealth {
                    name: name.clone(),
                    state: s.state,
                    paused: s.paused,
                    queue_depth: s.queue_depth,
                    last_ingest: s.last_ingest,
                    last_error: s.last_error.or(s.error),
                    backend: s.probe,
                }
            })
            .collect();
        let mem = health::memory();
        Health {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uptime_secs: self.uptime().as_secs(),
            rss_bytes: mem.rss_bytes,
            peak_rss_bytes: mem.peak_rss_bytes,
            open_fds: health::open_fds(),
            databases,
        }
    }

    /// PRODUCT §9's backend status of one database or all. Never reads a store file: counts
    /// come from the supervisor (live, or cached at the last flush) and sizes from `stat`.
    pub async fn backend_status(
        &self,
        db: Option<String>,
    ) -> Result<Vec<BackendStatusReport>, DaemonError> {
        let reg = self.registry_snapshot();
        let dbs = self.dbs.lock().await;
        let names: Vec<String> = match db {
            Some(n) => {
                let n = n.trim().to_lowercase();
                if !dbs.contains_key(&n) {
                    return Err(RegistryError::NotFound(n).into());
                }
                vec![n]
            }
            None => dbs.keys().cloned().collect(),
        };
        let mut reports = Vec::with_capacity(names.len());
        for name in names {
            let Some(run) = dbs.get(&name) else { continue };
            let snap = run.handle.snapshot();
            let entry = reg.entry(&name).ok();
            let mut report = backend_report(&name, entry.as_ref(), &snap);
            report
                .warnings
                .extend(index_build_warnings(&index_builds(&run.handle)));
            reports.push(report);
        }
        Ok(reports)
    }

    /// `hragctl metrics` and the HTTP listener: the Prometheus text exposition.
    pub async fn metrics(&self) -> String {
        let reg = self.registry_snapshot();
        let sources = self
            .dbs
            .lock()
            .await
            .iter()
            .map(|(name, run)| crate::monitor::metrics::Source {
                name: name.clone(),
                snapshot: run.handle.snapshot(),
                entry: reg.entry(name).ok(),
                query: run.handle.query_context(),
            })
            .collect();
        let mem = health::memory();
        let process = crate::monitor::metrics::Process {
            uptime_secs: self.uptime().as_secs_f64(),
            rss_bytes: mem.rss_bytes,
            peak_rss_bytes: mem.peak_rss_bytes,
            open_fds: health::open_fds(),
        };
        crate::monitor::metrics::collect(process, sources).await
    }

    /// The named database's running supervisor, by normalised name.
    async fn with_db<T>(
        &self,
        db: &str,
        f: impl AsyncFnOnce(&SupervisorHandle) -> Result<T, DaemonError>,
    ) -> Result<T, DaemonError> {
        let name = db.trim().to_lowercase();
        let dbs = self.dbs.lock().await;
        let run = dbs
            .get(&name)
            .ok_or_else(|| RegistryError::NotFound(name.clone()))?;
        f(&run.handle).await
    }

    /// `hragctl query`: retrieval (and an answer, if asked) over the database's store.
    pub async fn query(
        &self,
        spec: hrag_proto::QuerySpec,
    ) -> Result<hrag_proto::QueryResult, DaemonError> {
        let (ctx, name) = self
            .with_db(&spec.db, async |h: &SupervisorHandle| {
                let snap = h.snapshot();
                h.query_context()
                    .map(|c| (c, spec.db.clone()))
                    .ok_or_else(|| {
                        DaemonError::NotReady(format!(
                            "database '{}' cannot answer queries yet: {}",
                            spec.db,
                            snap.error
                                .unwrap_or_else(|| format!("it is {}", snap.state.as_str()))
                        ))
                    })
            })
            .await?;
        // The lock on the supervisors is released: a query never holds up ingestion or others.
        crate::query::run(
            &ctx.backend,
            &ctx.providers,
            spec.mode,
            &spec.text,
            spec.top_k.map(|k| k as usize),
            spec.answer,
            &name,
        )
        .await
        .map_err(|e| DaemonError::Invalid(e.to_string()))
    }

    /// `hragctl ingest`: queues files and folders now.
    pub async fn ingest(
        &self,
        db: &str,
        paths: Vec<String>,
    ) -> Result<hrag_proto::Enqueued, DaemonError> {
        let paths: Vec<PathBuf> = paths
            .iter()
            .map(|p| absolute("PATH", p))
            .collect::<Result<_, _>>()?;
        let name = db.trim().to_lowercase();
        let (files, skipped) = self
            .with_db(db, async |h: &SupervisorHandle| {
                h.enqueue(paths).await.map_err(DaemonError::NotReady)
            })
            .await?;
        Ok(hrag_proto::Enqueued {
            db: name,
            files,
            skipped,
        })
    }

    fn ack(name: &str, s: &DbSnapshot) -> DbAck {
        DbAck {
            name: name.to_owned(),
            state: s.state,
            paused: s.paused,
        }
    }

    /// Pauses (or resumes) the targets, answering once every one acknowledged.
    pub async fn set_paused(
        &self,
        target: DbTarget,
        paused: bool,
    ) -> Result<Vec<DbAck>, DaemonError> {
        let dbs = self.dbs.lock().await;
        let names: Vec<String> = match target {
            DbTarget::All => dbs.keys().cloned().collect(),
            DbTarget::One(n) => {
                let n = n.trim().to_lowercase();
                if !dbs.contains_key(&n) {
                    return Err(RegistryError::NotFound(n).into());
                }
                vec![n]
            }
        };
        let mut acks = Vec::with_capacity(names.len());
        for name in names {
            if let Some(run) = dbs.get(&name) {
                let snap = if paused {
                    run.handle.pause().await?
                } else {
                    run.handle.resume().await?
                };
                acks.push(Self::ack(&name, &snap));
            }
        }
        Ok(acks)
    }

    pub fn db_list(&self) -> Vec<DbSummary> {
        let reg = self.registry_snapshot();
        reg.names()
            .iter()
            .map(|n| Self::summary_lenient(&reg, n))
            .collect()
    }

    pub fn db_show(&self, name: &str) -> Result<DbDetail, DaemonError> {
        let reg = self.registry_snapshot();
        let name = name.trim().to_lowercase();
        let raw = reg
            .raw(&name)
            .ok_or_else(|| RegistryError::NotFound(name.clone()))?;
        let mut shown = yaml_to_json(raw);
        redact_json(&mut shown);
        Ok(DbDetail {
            summary: Self::summary_lenient(&reg, &name),
            entry_json: shown.to_string(),
        })
    }

    pub async fn db_add(&self, spec: DbAddSpec) -> Result<DbSummary, DaemonError> {
        let name =
            registry::normalise_name(&spec.name).map_err(|e| DaemonError::Invalid(e.message))?;
        let path = absolute("--path", &spec.path)?;
        let source = spec
            .source_folder
            .as_deref()
            .map(|s| absolute("--source", s))
            .transpose()?;
        if spec.backend == BackendKind::Json {
            let dir = match &spec.workspace {
                Some(ws) => path.join(ws),
                None => path.clone(),
            };
            std::fs::create_dir_all(&dir)
                .map_err(|e| DaemonError::io(format!("cannot create {}", dir.display()), e))?;
        }
        let mut entry = Mapping::new();
        entry.insert("name".into(), name.clone().into());
        entry.insert("path".into(), path.display().to_string().into());
        if let Some(src) = &source {
            entry.insert("source_folder".into(), src.display().to_string().into());
        }
        entry.insert("source_type".into(), "filesystem".into());
        entry.insert("auto_watch".into(), source.is_some().into());
        entry.insert("watch_interval".into(), 300.into());
        entry.insert("recursive".into(), true.into());
        entry.insert("created_at".into(), now_iso().into());
        entry.insert("backend_type".into(), spec.backend.as_str().into());
        if let Some(ws) = &spec.workspace {
            entry.insert("workspace".into(), ws.clone().into());
        }
        if spec.backend == BackendKind::Postgres {
            // Refused before a password file is written, so an existing entry's stays intact.
            if self.registry_snapshot().raw(&name).is_some() {
                return Err(RegistryError::Exists(name).into());
            }
            let config = self.postgres_config(&name, &spec.pg)?;
            // A password moved out of the DSN has just been written; a refused target must
            // not leave it behind.
            let stored_password =
                match (&spec.pg.password_file, config.get("postgres_password_file")) {
                    (None, Some(Value::String(f))) => Some(PathBuf::from(f)),
                    _ => None,
                };
            entry.insert("backend_config".into(), Value::Mapping(config));
            if !spec.pg.no_check
                && let Err(e) = self.check_postgres(&name, &entry).await
            {
                if let Some(f) = stored_password {
                    // Best effort: the file is 0600 and is overwritten by the next attempt.
                    let _ = std::fs::remove_file(f);
                }
                return Err(e);
            }
        }
        let n = name.clone();
        self.change(move |reg| reg.insert(&n, entry)).await?;
        info!(event = "db_added", db = %name, backend = spec.backend.as_str(), "database registered");
        Self::summary(&self.registry_snapshot(), &name)
    }

    /// Connects to the Postgres target of a candidate entry before it is saved: each reason it
    /// cannot be used (timeout, refused, unknown database, bad credentials, no pgvector) gets
    /// its own message; the first two are `backend_unreachable`, the others `target_error`.
    async fn check_postgres(&self, name: &str, entry: &Mapping) -> Result<(), DaemonError> {
        let dir = self
            .config
            .registry
            .parent()
            .unwrap_or(std::path::Path::new("/"));
        let parsed = registry::parse_entry(name, &Value::Mapping(entry.clone()), dir)
            .map_err(|e| DaemonError::Invalid(format!("database '{name}': {e}")))?;
        let settings = crate::supervisor::pg_settings(&parsed)
            .map_err(|e| DaemonError::Invalid(e.to_string()))?;
        match postgres::check_target(&settings, CHECK_TIMEOUT).await {
            Ok(r) => {
                info!(event = "postgres_checked", db = %name, server = %r.server_version,
                      pgvector = r.pgvector_version.as_deref().unwrap_or("-"),
                      "the postgres target answers and has pgvector");
                Ok(())
            }
            Err(e) if e.is_unreachable() => Err(DaemonError::Unreachable(e.to_string())),
            Err(e) => Err(DaemonError::Target(e.to_string())),
        }
    }

    /// `backend_config` for a Postgres entry; a password in the DSN goes to a 0600 file.
    fn postgres_config(&self, name: &str, pg: &PgTargetSpec) -> Result<Mapping, DaemonError> {
        let mut config = Mapping::new();
        config.insert("backend_type".into(), "postgres".into());
        let mut pw_file = pg
            .password_file
            .as_deref()
            .map(|p| absolute("--password-file", p))
            .transpose()?;
        let text = [
            ("postgres_host", &pg.host),
            ("postgres_user", &pg.user),
            ("postgres_database", &pg.database),
            ("postgres_ssl_mode", &pg.ssl_mode),
        ];
        for (key, value) in text {
            if let Some(v) = value {
                config.insert(key.into(), v.clone().into());
            }
        }
        if let Some(port) = pg.port {
            config.insert("postgres_port".into(), u64::from(port).into());
        }
        if let Some(max) = pg.max_connections {
            config.insert("postgres_max_connections".into(), u64::from(max).into());
        }
        if let Some(dsn) = pg.connection_string.as_deref() {
            let (clean, password) = secret::split_password(dsn);
            if let Some(pw) = password {
                let dir = self.config.state_dir.join("secrets");
                let file = secret::store_password(&dir, name, &pw)
                    .map_err(|e| DaemonError::io("cannot store the Postgres password", e))?;
                pw_file = Some(file);
            }
            config.insert("connection_string".into(), clean.into());
        }
        if let Some(f) = pw_file {
            config.insert(
                "postgres_password_file".into(),
                f.display().to_string().into(),
            );
        }
        Ok(config)
    }

    pub async fn db_remove(&self, name: &str) -> Result<(), DaemonError> {
        let name = name.trim().to_lowercase();
        let n = name.clone();
        self.change(move |reg| reg.remove(&n)).await?;
        if let Err(error) = self.files.paused.forget(&name) {
            warn!(db = %name, %error, "cannot remove the database's saved state");
        }
        self.files.counts.forget(&name);
        info!(event = "db_unregistered", db = %name, "database unregistered; its data is left in place");
        Ok(())
    }

    pub async fn db_set_backend(&self, spec: SetBackendSpec) -> Result<DbSummary, DaemonError> {
        let name = spec.name.trim().to_lowercase();
        self.refuse_if_holding_data(&name, spec.backend).await?;
        let config = match spec.backend {
            BackendKind::Postgres => Some(self.postgres_config(&name, &spec.pg)?),
            BackendKind::Json => None,
        };
        if let (Some(config), false) = (&config, spec.pg.no_check) {
            let reg = self.registry_snapshot();
            let mut candidate = match reg.raw(&name) {
                Some(Value::Mapping(m)) => m.clone(),
                _ => return Err(RegistryError::NotFound(name).into()),
            };
            let mut merged = match candidate.get("backend_config") {
                Some(Value::Mapping(old)) => old.clone(),
                _ => Mapping::new(),
            };
            for (k, v) in config.clone() {
                merged.insert(k, v);
            }
            candidate.insert("backend_type".into(), "postgres".into());
            candidate.insert("backend_config".into(), Value::Mapping(merged));
            self.check_postgres(&name, &candidate).await?;
        }
        let n = name.clone();
        self.change(move |reg| {
            reg.modify(&n, |m| {
                m.insert("backend_type".into(), spec.backend.as_str().into());
                if let Some(new) = config {
                    // Merge into any existing backend_config so thresholds and unknown keys stay.
                    let mut merged = match m.get("backend_config") {
                        Some(Value::Mapping(old)) => old.clone(),
                        _ => Mapping::new(),
                    };
                    if new.contains_key("connection_string") {
                        merged.remove("postgres_password");
                    }
                    for (k, v) in new {
                        merged.insert(k, v);
                    }
                    m.insert("backend_config".into(), Value::Mapping(merged));
                } else if let Some(Value::Mapping(old)) = m.get_mut("backend_config") {
                    old.insert("backend_type".into(), "json".into());
                }
            })
        })
        .await?;
        info!(event = "db_backend_set", db = %name, backend = spec.backend.as_str(), "database backend changed");
        Self::summary(&self.registry_snapshot(), &name)
    }

    /// `set-backend` only re-points an empty database: moving data is the migration's job.
    async fn refuse_if_holding_data(&self, name: &str, to: BackendKind) -> Result<(), DaemonError> {
        let reg = self.registry_snapshot();
        let entry = reg.entry(name).ok();
        let snap = {
            let dbs = self.dbs.lock().await;
            dbs.get(name)
                .map(|run| run.handle.snapshot())
                .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?
        };
        let current = entry
            .as_ref()
            .map(|e| e.backend_type.as_str())
            .unwrap_or("json");
        if current == to.as_str() {
            return Ok(());
        }
        let files = entry
            .as_ref()
            .map(crate::monitor::size::store_file_sizes)
            .unwrap_or_default();
        let docs = snap.counts.map(|c| c.doc_count);
        let holds_data = match docs {
            Some(n) => n > 0,
            None => !files.is_empty(),
        };
        if holds_data {
            let what = docs
                .map(|n| format!("{n} documents"))
                .unwrap_or_else(|| "data".to_owned());
            return Err(DaemonError::Conflict(format!(
                "database '{name}' holds {what} on {current}; set-backend only re-points an \
                 empty database. To move its data run: hragctl migrate {name} --to {}",
                to.as_str()
            )));
        }
        Ok(())
    }

    /// Stops every supervisor, letting each finish its work in flight, within the drain bound.
    pub async fn drain(&self) -> bool {
        self.cancel.cancel();
        let mut dbs = self.dbs.lock().await;
        let all = std::mem::take(&mut *dbs);
        drop(dbs);
        let stop_all = async {
            for (_, run) in all {
                run.handle.stop().await;
            }
            self.tracker.close();
            self.tracker.wait().await;
        };
        tokio::time::timeout(self.config.drain_timeout, stop_all)
            .await
            .is_ok()
    }
}

fn backend_report(
    name: &str,
    entry: Option<&registry::DbEntry>,
    snap: &DbSnapshot,
) -> BackendStatusReport {
    let (status, reason) = match snap.state {
        hrag_proto::DbState::Error => (BackendHealth::Error, snap.error.clone()),
        hrag_proto::DbState::Starting => (
            BackendHealth::Degraded,
            Some("the store is still opening; counts are those of the last flush".to_owned()),
        ),
        hrag_proto::DbState::Degraded => (
            BackendHealth::Degraded,
            snap.error.clone().or_else(|| {
                snap.probe
                    .as_ref()
                    .and_then(|p| p.error.clone())
                    .map(|e| format!("backend unreachable: {e}"))
            }),
        ),
        _ => (BackendHealth::Healthy, None),
    };
    let file_sizes = entry
        .map(crate::monitor::size::store_file_sizes)
        .unwrap_or_default();
    let mut warnings: Vec<String> = entry.map(|e| e.warnings()).unwrap_or_default();
    let thresholds = entry.and_then(crate::monitor::size::Thresholds::of);
    if let Some(t) = &thresholds {
        warnings.extend(crate::monitor::size::warnings(name, &file_sizes, t));
    }
    let counts = snap.counts.unwrap_or_default();
    BackendStatusReport {
        database: name.to_owned(),
        backend_type: entry
            .map(|e| e.backend_type.as_str().to_owned())
            .unwrap_or_else(|| "unknown".into()),
        status,
        reason,
        metrics: BackendMetrics {
            total_size_bytes: file_sizes.values().sum(),
            file_sizes,
            entity_count: counts.entity_count,
            relation_count: counts.relation_count,
            chunk_count: counts.chunk_count,
            doc_count: counts.doc_count,
            is_connected: snap.backend_open && snap.probe.as_ref().is_none_or(|p| p.reachable),
            connection_latency_ms: snap.probe.as_ref().and_then(|p| p.latency_ms),
            file_size_warning_bytes: thresholds.map(|t| t.file_bytes),
            total_size_warning_bytes: thresholds.map(|t| t.total_bytes),
        },
        warnings,
    }
}

/// The background index builds of a database's open store, as `status` shows them.
fn index_builds(handle: &SupervisorHandle) -> Vec<hrag_proto::IndexBuild> {
    use crate::storage::IndexBuildState as S;
    let Some(ctx) = handle.query_context() else {
        return Vec::new();
    };
    let Some(builds) = ctx.backend.index_builds() else {
        return Vec::new();
    };
    builds
        .index_builds()
        .into_iter()
        .map(|b| hrag_proto::IndexBuild {
            table: b.table,
            index: b.index,
            phase: b.phase,
            percent: b.percent,
            elapsed_secs: b.elapsed_secs,
            state: match b.state {
                S::Building => hrag_proto::IndexBuildState::Building,
                S::Done => hrag_proto::IndexBuildState::Done,
                S::Failed => hrag_proto::IndexBuildState::Failed,
            },
        })
        .collect()
}

/// `backend status` warns about vector indexes not (yet) usable; finished builds are quiet.
fn index_build_warnings(builds: &[hrag_proto::IndexBuild]) -> Vec<String> {
    builds
        .iter()
        .filter(|b| b.state != hrag_proto::IndexBuildState::Done)
        .map(|b| {
            let pct = b.percent.map(|p| format!(", {p:.0}%")).unwrap_or_default();
            format!(
                "vector index {} on {} is {} ({}{pct}, {:.0} s); vector queries on it use a \
                 sequential scan until it is built",
                b.index,
                b.table,
                b.state.as_str(),
                b.phase,
                b.elapsed_secs
            )
        })
        .collect()
}

fn absolute(flag: &str, p: &str) -> Result<PathBuf, DaemonError> {
    let path = PathBuf::from(p.trim());
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(DaemonError::Invalid(format!(
            "{flag} '{p}' must be an absolute path"
        )))
    }
}

fn now_iso() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn yaml_to_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Hides passwords (and DSN passwords) anywhere in a shown entry.
fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let key = k.to_lowercase();
                let secret_key = ["password", "secret", "token", "api_key"]
                    .iter()
                    .any(|w| key.contains(w));
                if secret_key && !key.ends_with("_file") {
                    *val = serde_json::Value::String(secret::REDACTED.to_owned());
                } else if let serde_json::Value::String(s) = val {
                    if key.contains("connection") || key.contains("dsn") || key.contains("url") {
                        *s = secret::redact_dsn(s);
                    }
                } else {
                    redact_json(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}
