//! One supervisor task per database: its state machine and the pause/resume handshake.
//!
//! States: `starting` → `idle` ⇄ `ingesting`, `paused`, `migrating`, `error`. A supervisor runs
//! one unit of work at a time and reads its commands only between units, which is what makes
//! the pause acknowledgement mean "the document in flight has finished". Later work (watching,
//! ingestion, migration) plugs in as units run from this loop.
//!
//! Invariants: the supervisor is the only writer of its database's state; the paused flag is
//! persisted before a pause is acknowledged, so an acknowledged pause survives a crash.

mod paused;

use hrag_proto::DbState;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use paused::PausedStore;

use crate::registry::DbEntry;

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
}

impl DbSnapshot {
    fn starting() -> DbSnapshot {
        DbSnapshot {
            state: DbState::Starting,
            paused: false,
            error: None,
            queue_depth: 0,
            last_ingest: None,
            last_error: None,
        }
    }
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
        store: PausedStore,
        tracker: &TaskTracker,
        parent: &CancellationToken,
    ) -> SupervisorHandle {
        let (tx, rx) = mpsc::channel(16);
        let (snap_tx, snapshot) = watch::channel(DbSnapshot::starting());
        let cancel = parent.child_token();
        let (done_tx, done) = oneshot::channel();
        let sup = Supervisor {
            name: name.clone(),
            entry,
            store,
            snapshot: snap_tx,
            rx,
            cancel: cancel.clone(),
            paused: false,
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
    store: PausedStore,
    snapshot: watch::Sender<DbSnapshot>,
    rx: mpsc::Receiver<Command>,
    cancel: CancellationToken,
    paused: bool,
}

impl Supervisor {
    async fn run(mut self) {
        self.paused = match self.store.is_paused(&self.name) {
            Ok(p) => p,
            Err(error) => {
                // Unreadable state must not silently resume work the user paused.
                warn!(event = "state_unreadable", db = %self.name, %error,
                      "the saved pause state cannot be read; starting paused");
                true
            }
        };
        self.publish();
        info!(event = "db_started", db = %self.name, state = self.state().as_str(),
              "database supervisor started");
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
            }
        }
        info!(event = "db_stopped", db = %self.name, "database supervisor stopped");
    }

    fn state(&self) -> DbState {
        match (&self.entry, self.paused) {
            (Err(_), _) => DbState::Error,
            (Ok(_), true) => DbState::Paused,
            (Ok(_), false) => DbState::Idle,
        }
    }

    fn publish(&self) {
        let state = self.state();
        let error = self.entry.as_ref().err().cloned();
        self.snapshot.send_modify(|s| {
            s.state = state;
            s.paused = self.paused;
            s.error = error;
        });
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Pause(ack) => {
                let _ = ack.send(self.set_paused(true));
            }
            Command::Resume(ack) => {
                let _ = ack.send(self.set_paused(false));
            }
            Command::Reconfigure(entry) => {
                self.entry = *entry;
                if let Err(error) = &self.entry {
                    warn!(event = "registry_entry_invalid", db = %self.name, %error,
                          "the database's registry entry is invalid");
                }
                self.publish();
            }
        }
    }

    fn set_paused(&mut self, paused: bool) -> Result<DbSnapshot, SupervisorError> {
        if self.paused != paused {
            self.store
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
