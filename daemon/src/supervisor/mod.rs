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
mod paused;

use std::sync::Arc;

use hrag_proto::DbState;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use counts_cache::CountsCache;
pub use paused::PausedStore;

use crate::registry::DbEntry;
use crate::storage::{Backend, Counts};

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
        }
    }
}

/// Where a supervisor keeps what must outlive it.
#[derive(Debug, Clone)]
pub struct StateFiles {
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
}

/// The handle the daemon keeps for a running supervisor.
pub struct SupervisorHandle {
    name: String,
    tx: mpsc::Sender<Command>,
    snapshot: watch::Receiver<DbSnapshot>,
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
        let sup = Supervisor {
            name: name.clone(),
            entry,
            files,
            snapshot: snap_tx,
            rx,
            cancel: cancel.clone(),
            paused: false,
            backend: None,
            open_error: None,
        };
        tracker.spawn(async move {
            sup.run().await;
            let _ = done_tx.send(());
        });
        SupervisorHandle {
            name,
            tx,
            snapshot,
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
    /// Why the store could not be opened.
    open_error: Option<String>,
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
        self.open_backend().await;
        info!(event = "db_started", db = %self.name, state = self.state().as_str(),
              "database supervisor started");
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
            }
        }
        self.close_backend().await;
        info!(event = "db_stopped", db = %self.name, "database supervisor stopped");
    }

    fn state(&self) -> DbState {
        if self.entry.is_err() || self.open_error.is_some() {
            return DbState::Error;
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
            Ok(_) => self.open_error.clone(),
        };
        let open = self.backend.is_some();
        self.snapshot.send_modify(|s| {
            s.state = state;
            s.paused = self.paused;
            s.error = error;
            s.backend_open = open;
        });
    }

    /// Opens the store off the runtime (a JSON store loads every file). Failure puts the
    /// database in `error` with the store's message; the daemon and other databases go on.
    async fn open_backend(&mut self) {
        self.backend = None;
        self.open_error = None;
        self.publish();
        let Ok(entry) = self.entry.clone() else {
            self.publish();
            return;
        };
        let started = std::time::Instant::now();
        let opened = tokio::task::spawn_blocking(move || Backend::open(&entry)).await;
        match opened {
            Ok(Ok(backend)) => {
                let backend = Arc::new(backend);
                let counts = backend.counts().await.ok();
                if let Some(c) = &counts {
                    self.save_counts(c);
                }
                info!(event = "store_opened", db = %self.name, location = %backend.location,
                      millis = started.elapsed().as_millis() as u64, "store opened");
                self.backend = Some(backend);
                self.snapshot.send_modify(|s| s.counts = counts);
            }
            Ok(Err(e)) => {
                warn!(event = "store_open_failed", db = %self.name, error = %e,
                      "the store cannot be opened; the database stays in error and nothing is written to it");
                self.open_error = Some(format!("cannot open the store: {e}"));
            }
            Err(join) => {
                self.open_error = Some(format!("opening the store failed: {join}"));
            }
        }
        self.publish();
    }

    /// Flushes pending changes and releases the store (and its single-writer lock).
    async fn close_backend(&mut self) {
        let Some(backend) = self.backend.take() else {
            return;
        };
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
                let _ = ack.send(self.set_paused(true));
            }
            Command::Resume(ack) => {
                let _ = ack.send(self.set_paused(false));
            }
            Command::Reconfigure(entry) => {
                self.close_backend().await;
                self.entry = *entry;
                if let Err(error) = &self.entry {
                    warn!(event = "registry_entry_invalid", db = %self.name, %error,
                          "the database's registry entry is invalid");
                }
                self.open_backend().await;
            }
        }
    }

    fn set_paused(&mut self, paused: bool) -> Result<DbSnapshot, SupervisorError> {
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
