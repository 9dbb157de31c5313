//! One supervisor task per database: its state machine and the pause/resume handshake.
//!
//! States: `starting` → `idle` ⇄ `ingesting`, `paused`, `migrating`, `error`. A supervisor runs
//! one unit of work at a time and reads its commands only between units, which is what makes
//! the pause acknowledgement mean "the document in flight has finished". Later work (watching,
//! ingestion, migration) plugs in as units run from this loop.
//!
//! Invariants: the supervisor is the only writer of its database's state; the paused flag is
//! persisted before a pause is acknowledged, so an acknowledged pause survives a crash.

mod counts_cache;
mod ingest;
mod open;
mod paused;
mod reachability;

use std::sync::Arc;
use std::time::Duration;

use hrag_proto::{BackendProbe, DbState};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use counts_cache::CountsCache;
pub use ingest::QueryContext;
pub use open::{embedder_dim, pg_settings, pg_target_settings};
pub use paused::PausedStore;

use crate::ingest::watcher::FileEvent;
use crate::registry::DbEntry;
use crate::storage::{Backend, Counts, StorageError};

/// First wait before reconnecting to an unreachable server; doubled per failure up to the cap.
const RECONNECT_MIN: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// How long after a failed flush it is tried again (the changes stay in memory meanwhile).
const FLUSH_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// What the outside world may read about a database at any moment.
#[derive(Debug, Clone, PartialEq)]
pub struct DbSnapshot {
    pub state: DbState,
    pub paused: bool,
    /// Why the database is in `error`.
    pub error: Option<String>,
    pub queue_depth: u64,
    pub last_ingest: Option<String>,
    pub last_error: Option<String>,
    /// Record counts: live once the store is open, else as cached at the last flush.
    pub counts: Option<Counts>,
    /// Whether the store is open (loaded, or connected).
    pub backend_open: bool,
    /// The last reachability probe of the store's server (Postgres).
    pub probe: Option<BackendProbe>,
    /// Size and ingest-rate figures (`crate::monitor`).
    pub monitor: crate::monitor::Figures,
}

impl DbSnapshot {
    fn starting(cached: Option<Counts>) -> DbSnapshot {
        DbSnapshot {
            state: DbState::Starting,
            paused: false,
            error: None,
            queue_depth: 0,
            last_ingest: None,
            last_error: None,
            counts: cached,
            backend_open: false,
            probe: None,
            monitor: crate::monitor::Figures::default(),
        }
    }
}

/// Where a supervisor keeps what must outlive it.
#[derive(Debug, Clone)]
pub struct StateFiles {
    pub dir: std::path::PathBuf,
    pub paused: PausedStore,
    pub counts: CountsCache,
}

/// The configuration a supervisor runs with: a valid entry, or why the entry is unusable.
pub type EntryConfig = Result<DbEntry, String>;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("database '{0}' is shutting down")]
    Gone(String),
    #[error("database '{db}': cannot persist the pause state: {source}")]
    Persist {
        db: String,
        #[source]
        source: std::io::Error,
    },
}

type Ack = oneshot::Sender<Result<DbSnapshot, SupervisorError>>;

enum Command {
    Pause(Ack),
    Resume(Ack),
    Reconfigure(Box<EntryConfig>),
    Enqueue(
        Vec<std::path::PathBuf>,
        oneshot::Sender<Result<(u64, Vec<String>), String>>,
    ),
}

/// The handle the daemon keeps for a running supervisor.
pub struct SupervisorHandle {
    name: String,
    tx: mpsc::Sender<Command>,
    snapshot: watch::Receiver<DbSnapshot>,
    query: watch::Receiver<Option<Arc<QueryContext>>>,
    cancel: CancellationToken,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl SupervisorHandle {
    /// Starts the supervisor of `name` on `tracker`; it stops when `parent` is cancelled or
    /// [`SupervisorHandle::stop`] is called.
    pub fn spawn(
        name: String,
        entry: EntryConfig,
        files: StateFiles,
        tracker: &TaskTracker,
        parent: &CancellationToken,
    ) -> SupervisorHandle {
        let (tx, rx) = mpsc::channel(16);
        let (snap_tx, snapshot) = watch::channel(DbSnapshot::starting(files.counts.load(&name)));
        let cancel = parent.child_token();
        let (done_tx, done) = oneshot::channel();
        let (query_tx, query) = watch::channel(None);
        let sup = Supervisor {
            query: query_tx,
            ingest: None,
            name: name.clone(),
            entry,
            files,
            snapshot: snap_tx,
            rx,
            cancel: cancel.clone(),
            paused: false,
            backend: None,
            open_error: None,
            outage: None,
            reachability: None,
            lost: Arc::new(Notify::new()),
            monitor: crate::monitor::DbMonitor::new(&name),
        };
        tracker.spawn(async move {
            sup.run().await;
            let _ = done_tx.send(());
        });
        SupervisorHandle {
            name,
            tx,
            snapshot,
            query,
            cancel,
            done,
        }
    }

    pub fn snapshot(&self) -> DbSnapshot {
        self.snapshot.borrow().clone()
    }

    /// Waits until the supervisor has left `starting`.
    pub async fn started(&self) -> DbSnapshot {
        let mut rx = self.snapshot.clone();
        let _ = rx.wait_for(|s| s.state != DbState::Starting).await;
        self.snapshot()
    }

    async fn ask(&self, make: impl FnOnce(Ack) -> Command) -> Result<DbSnapshot, SupervisorError> {
        let (ack, answer) = oneshot::channel();
        self.tx
            .send(make(ack))
            .await
            .map_err(|_| SupervisorError::Gone(self.name.clone()))?;
        answer
            .await
            .map_err(|_| SupervisorError::Gone(self.name.clone()))?
    }

    /// Pauses ingestion; returns once the supervisor acknowledged (work in flight finished).
    pub async fn pause(&self) -> Result<DbSnapshot, SupervisorError> {
        self.ask(Command::Pause).await
    }

    pub async fn resume(&self) -> Result<DbSnapshot, SupervisorError> {
        self.ask(Command::Resume).await
    }

    /// The store and providers for queries, once the database is ready.
    pub fn query_context(&self) -> Option<Arc<QueryContext>> {
        self.query.borrow().clone()
    }

    /// Queues files and folders for ingestion now.
    pub async fn enqueue(
        &self,
        paths: Vec<std::path::PathBuf>,
    ) -> Result<(u64, Vec<String>), String> {
        let (ack, answer) = oneshot::channel();
        self.tx
            .send(Command::Enqueue(paths, ack))
            .await
            .map_err(|_| format!("database '{}' is shutting down", self.name))?;
        answer
            .await
            .map_err(|_| format!("database '{}' is shutting down", self.name))?
    }

    /// Hands the supervisor a changed registry entry.
    pub async fn reconfigure(&self, entry: EntryConfig) {
        let _ = self.tx.send(Command::Reconfigure(Box::new(entry))).await;
    }

    /// Stops the supervisor and waits for it to finish its work in flight.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.done.await;
    }
}

/// An outage of the store's server.
struct Outage {
    message: String,
    backoff: Duration,
    retry_at: std::time::Instant,
}

struct Supervisor {
    name: String,
    entry: EntryConfig,
    files: StateFiles,
    snapshot: watch::Sender<DbSnapshot>,
    rx: mpsc::Receiver<Command>,
    cancel: CancellationToken,
    paused: bool,
    /// The open store; `None` while starting, or when it could not be opened.
    backend: Option<Arc<Backend>>,
    /// Why the store could not be opened (or ingestion could not start on it).
    open_error: Option<String>,
    /// The store's server is unreachable: the store is closed and reopened with backoff.
    outage: Option<Outage>,
    /// Probes the store's server while it is open (Postgres).
    reachability: Option<reachability::Monitor>,
    /// Woken by the monitor when the server stops answering.
    lost: Arc<Notify>,
    /// Ingestion, once the store is open.
    ingest: Option<ingest::Ingest>,
    /// What queries read, published once ready.
    query: watch::Sender<Option<Arc<QueryContext>>>,
    /// Store sizes and ingest rate (logic in `crate::monitor`).
    monitor: crate::monitor::DbMonitor,
}

impl Supervisor {
    async fn run(mut self) {
        self.paused = match self.files.paused.is_paused(&self.name) {
            Ok(p) => p,
            Err(error) => {
                // Unreadable state must not silently resume work the user paused.
                warn!(event = "state_unreadable", db = %self.name, %error,
                      "the saved pause state cannot be read; starting paused");
                true
            }
        };
        // Sizes need no open store: a store big enough to warn about is also slow to load.
        self.monitor.check_sizes(self.entry.as_ref().ok());
        let mut events = self.open_backend().await;
        info!(event = "db_started", db = %self.name, state = self.state().as_str(),
              "database supervisor started");
        loop {
            let due = match (&self.ingest, self.paused) {
                (Some(i), false) => i.queue.next_due(),
                _ => None,
            };
            let flush_at = self.ingest.as_ref().and_then(|i| i.flush_at);
            let retry = self.outage.as_ref().map(|o| o.retry_at);
            let lost = self.lost.clone();
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                _ = lost.notified(), if self.backend.is_some() => {
                    if let Some(events_after) = self.check_lost().await {
                        events = events_after;
                    }
                }
                _ = sleep_until(retry), if retry.is_some() => {
                    events = self.open_backend().await;
                }
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Reconfigure(entry)) => {
                        self.close_backend().await;
                        self.entry = *entry;
                        if let Err(error) = &self.entry {
                            warn!(event = "registry_entry_invalid", db = %self.name, %error,
                                  "the database's registry entry is invalid");
                        }
                        events = self.open_backend().await;
                    }
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                ev = next_event(&mut events) => match (ev, self.ingest.as_mut()) {
                    (Some(ev), Some(ing)) => {
                        ing.push_event(ev);
                        self.snapshot.send_modify(|s| s.queue_depth = ing.queue.len() as u64);
                    }
                    _ => events = None,
                },
                _ = sleep_until(flush_at), if flush_at.is_some() => {
                    self.flush().await;
                    self.publish();
                }
                _ = sleep_until(due), if due.is_some() => self.work_one().await,
                _ = self.monitor.tick() => self.monitor.check_sizes(self.entry.as_ref().ok()),
            }
        }
        self.close_backend().await;
        info!(event = "db_stopped", db = %self.name, "database supervisor stopped");
    }

    fn state(&self) -> DbState {
        if self.entry.is_err() || self.open_error.is_some() {
            return DbState::Error;
        }
        let unreachable = self
            .snapshot
            .borrow()
            .probe
            .as_ref()
            .is_some_and(|p| !p.reachable);
        if self.outage.is_some() || unreachable {
            return DbState::Degraded;
        }
        match (&self.backend, self.paused) {
            (None, _) => DbState::Starting,
            (Some(_), true) => DbState::Paused,
            (Some(_), false) => DbState::Idle,
        }
    }

    fn publish(&self) {
        let state = self.state();
        let error = match &self.entry {
            Err(e) => Some(e.clone()),
            Ok(_) => self
                .open_error
                .clone()
                .or_else(|| self.outage.as_ref().map(|o| o.message.clone())),
        };
        let open = self.backend.is_some();
        self.snapshot.send_modify(|s| {
            s.state = state;
            s.paused = self.paused;
            s.error = error;
            s.backend_open = open;
        });
    }

    /// Runs one queued document, then flushes (now, or once its spacing has passed) when a
    /// batch is complete or the queue is drained, so that what is acknowledged as processed
    /// reaches the disk.
    async fn work_one(&mut self) {
        let Some(ing) = self.ingest.as_mut() else {
            return;
        };
        self.snapshot.send_modify(|s| s.state = DbState::Ingesting);
        let started = std::time::Instant::now();
        let result = ing.run_one(&self.name).await;
        let drained = ing
            .queue
            .next_due()
            .is_none_or(|d| d > std::time::Instant::now());
        let flush_at = ing.flush_due(drained);
        let flush = flush_at.is_some_and(|at| at <= std::time::Instant::now());
        // A later one stands; an earlier pending one keeps its time.
        ing.flush_at = match (ing.flush_at, flush_at) {
            (Some(pending), Some(at)) => Some(pending.min(at)),
            (pending, at) => pending.or(at),
        };
        let depth = ing.queue.len() as u64;
        if let Some(r) = result {
            self.monitor.document_done(started.elapsed());
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            self.snapshot.send_modify(|s| {
                s.queue_depth = depth;
                match r {
                    Ok(_) => s.last_ingest = Some(now),
                    Err(e) => s.last_error = Some(e),
                }
            });
        }
        if flush {
            self.flush().await;
        }
        self.publish();
    }

    /// Writes pending store changes and the queue; refreshes the published counts.
    async fn flush(&mut self) {
        let Some(backend) = self.backend.clone() else {
            return;
        };
        let started = std::time::Instant::now();
        if let Err(e) = backend.flush().await {
            warn!(event = "store_flush_failed", db = %self.name, error = %e,
                  "pending changes could not be written; they stay in memory and are retried");
            self.snapshot
                .send_modify(|s| s.last_error = Some(format!("flush failed: {e}")));
            if let Some(ing) = self.ingest.as_mut() {
                ing.flush_at = Some(std::time::Instant::now() + FLUSH_RETRY);
            }
            return;
        }
        if let Some(ing) = self.ingest.as_mut() {
            ing.since_flush = 0;
            ing.flush_at = None;
            ing.last_flush = (std::time::Instant::now(), started.elapsed());
            if let Err(e) = ing.queue.save() {
                warn!(db = %self.name, error = %e, "cannot save the ingest queue");
            }
        }
        if let Ok(c) = backend.counts().await {
            self.save_counts(&c);
            self.snapshot.send_modify(|s| s.counts = Some(c));
        }
        let took = started.elapsed();
        self.monitor
            .flushed(self.entry.as_ref().ok(), took, &self.snapshot);
    }

    /// Opens the store off the runtime (a JSON store loads every file) and starts ingestion on
    /// it. Failure puts the database in `error` with the message; the daemon and other
    /// databases go on. Returns the watcher's event stream, if the folder is watched.
    async fn open_backend(&mut self) -> Option<mpsc::Receiver<FileEvent>> {
        let events = self.open_store().await;
        self.publish();
        events
    }

    async fn open_store(&mut self) -> Option<mpsc::Receiver<FileEvent>> {
        self.release().await;
        self.open_error = None;
        self.publish();
        let Ok(entry) = self.entry.clone() else {
            return None;
        };
        let started = std::time::Instant::now();
        let backend = match open::open(&entry).await {
            Ok(b) => Arc::new(b),
            Err(StorageError::Unreachable(e)) => {
                self.outage_continues(e);
                return None;
            }
            // During an outage the lock may still be held by our own lost session (the server
            // has not noticed it is gone yet): that is the outage going on, not another writer.
            Err(StorageError::Locked(e)) if self.outage.is_some() => {
                self.outage_continues(e);
                return None;
            }
            Err(e) => {
                warn!(event = "store_open_failed", db = %self.name, error = %e,
                      "the store cannot be opened; the database stays in error and nothing is written to it");
                self.open_error = Some(format!("cannot open the store: {e}"));
                self.outage = None;
                return None;
            }
        };
        let counts = backend.counts().await.ok();
        if let Some(c) = &counts {
            self.save_counts(c);
        }
        info!(event = "store_opened", db = %self.name, location = %backend.location,
              millis = started.elapsed().as_millis() as u64, "store opened");
        self.backend = Some(backend.clone());
        self.snapshot.send_modify(|s| s.counts = counts);
        match ingest::start(&entry, backend.clone(), &self.files.dir).await {
            Ok((ing, ctx, events)) => {
                self.snapshot
                    .send_modify(|s| s.queue_depth = ing.queue.len() as u64);
                self.ingest = Some(ing);
                self.query.send_replace(Some(ctx));
                if let Some(o) = self.outage.take() {
                    info!(event = "backend_reconnected", db = %self.name, after = %o.message,
                          "the store's server answers again; pending work resumes");
                }
                if let Some(probe) = backend.probe() {
                    self.reachability = Some(reachability::Monitor::start(
                        probe,
                        self.snapshot.clone(),
                        self.lost.clone(),
                    ));
                }
                return events;
            }
            Err(e) => {
                // Indexing the stored documents reads the server: tell an outage from a fault.
                if let Some(probe) = backend.probe()
                    && let Err(lost) = probe.probe().await
                {
                    drop(backend);
                    self.release().await;
                    self.outage_continues(lost.to_string());
                    return None;
                }
                warn!(event = "ingest_unavailable", db = %self.name, error = %e,
                      "ingestion cannot start on this database");
                self.open_error = Some(e);
                self.outage = None;
            }
        }
        None
    }

    /// The monitor saw the server go: confirms with one probe (a wake-up may be stale), then
    /// releases the store and waits to reconnect. `Some(None)` when the store was released.
    async fn check_lost(&mut self) -> Option<Option<mpsc::Receiver<FileEvent>>> {
        let backend = self.backend.clone()?;
        let probe = backend.probe()?.clone();
        drop(backend);
        let error = match probe.probe().await {
            Ok(report) => {
                // A blip: the server answers again; watch it anew.
                if let Some(m) = self.reachability.take() {
                    m.stop().await;
                }
                self.snapshot
                    .send_modify(|s| s.probe = Some(reachability::to_wire(&Ok(report))));
                self.reachability = Some(reachability::Monitor::start(
                    &probe,
                    self.snapshot.clone(),
                    self.lost.clone(),
                ));
                self.publish();
                return None;
            }
            Err(e) => e,
        };
        drop(probe);
        self.release().await;
        self.outage_continues(error.to_string());
        Some(None)
    }

    /// Enters an outage, or schedules the next reconnect of one going on (backoff doubled,
    /// capped). Logs `backend_unreachable` once per outage.
    fn outage_continues(&mut self, message: String) {
        let backoff = match &self.outage {
            None => {
                warn!(event = "backend_unreachable", db = %self.name, error = %message,
                      "the store's server is unreachable; the database is degraded, its work \
                       waits and resumes once the server answers");
                RECONNECT_MIN
            }
            Some(o) => (o.backoff * 2).min(RECONNECT_MAX),
        };
        let probe = reachability::to_wire(&Err(StorageError::Unreachable(message.clone())));
        self.snapshot.send_modify(|s| s.probe = Some(probe));
        self.outage = Some(Outage {
            message: format!("backend unreachable: {message}"),
            backoff,
            retry_at: std::time::Instant::now() + backoff,
        });
        self.publish();
    }

    /// Drops the store without writing to it: queries stop, the queue is saved, the monitor
    /// ends, and the single-writer lock goes with the last reference.
    async fn release(&mut self) {
        self.query.send_replace(None);
        if let Some(mut ing) = self.ingest.take()
            && let Err(e) = ing.queue.save()
        {
            warn!(db = %self.name, error = %e, "cannot save the ingest queue");
        }
        if let Some(m) = self.reachability.take() {
            m.stop().await;
        }
        self.backend = None;
        self.snapshot.send_modify(|s| s.probe = None);
    }

    /// Flushes pending changes and releases the store (and its single-writer lock).
    async fn close_backend(&mut self) {
        let Some(backend) = self.backend.clone() else {
            self.release().await;
            return;
        };
        self.release().await;
        match backend.flush().await {
            Ok(n) if n > 0 => info!(event = "store_flushed", db = %self.name, stores = n,
                                   "pending changes written"),
            Ok(_) => {}
            Err(e) => warn!(event = "store_flush_failed", db = %self.name, error = %e,
                            "pending changes could not be written"),
        }
        if let Ok(c) = backend.counts().await {
            self.save_counts(&c);
        }
    }

    fn save_counts(&self, counts: &Counts) {
        if let Err(error) = self.files.counts.save(&self.name, counts) {
            warn!(db = %self.name, %error, "cannot cache the store's counts");
        }
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Pause(ack) => {
                let _ = ack.send(self.set_paused(true).await);
            }
            Command::Resume(ack) => {
                let _ = ack.send(self.set_paused(false).await);
            }
            // Handled in the run loop, which owns the watcher's event stream.
            Command::Reconfigure(_) => {}
            Command::Enqueue(paths, ack) => {
                let answer = match self.ingest.as_mut() {
                    Some(ing) => {
                        let r = ing.enqueue(paths);
                        self.snapshot
                            .send_modify(|s| s.queue_depth = ing.queue.len() as u64);
                        Ok(r)
                    }
                    None => Err(format!(
                        "database '{}' cannot ingest: {}",
                        self.name,
                        self.open_error
                            .clone()
                            .unwrap_or_else(|| "its store is not open".into())
                    )),
                };
                let _ = ack.send(answer);
            }
        }
    }

    async fn set_paused(&mut self, paused: bool) -> Result<DbSnapshot, SupervisorError> {
        if paused {
            // What was processed before the pause is on disk when the pause is acknowledged.
            self.flush().await;
        }
        if self.paused != paused {
            self.files
                .paused
                .set_paused(&self.name, paused)
                .map_err(|source| SupervisorError::Persist {
                    db: self.name.clone(),
                    source,
                })?;
            self.paused = paused;
            self.publish();
            let event = if paused { "db_paused" } else { "db_resumed" };
            info!(event, db = %self.name, "ingestion {}", if paused { "paused" } else { "resumed" });
        }
        Ok(self.snapshot.borrow().clone())
    }
}

/// The next watcher event, or never when the database has no watcher.
async fn next_event(events: &mut Option<mpsc::Receiver<FileEvent>>) -> Option<FileEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `due` (a std instant), or forever when there is none.
async fn sleep_until(due: Option<std::time::Instant>) {
    match due {
        Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
