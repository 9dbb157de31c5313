//! The running watcher: inotify callback → coalesced raw paths → per-path debounce → ready
//! queue → evaluation → a small outbox that waits for channel capacity.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, Watcher as _};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::scan::{is_hidden_rel, rel_string};
use super::state::{Core, Nominations};
use super::{FileEvent, WatchConfig, WatchError};

/// Distinct raw paths held before falling back to a full reconcile.
const MAX_RAW_PATHS: usize = 65_536;
/// Event-driven pending paths (beyond the last reconcile's nominations) held before falling
/// back to a full reconcile.
const MAX_PENDING: usize = 100_000;
/// Paths evaluated per blocking step; also the most events waiting for channel capacity.
const EVAL_BATCH: usize = 64;
/// Floor of the reconcile and retry periods (a zero period would spin).
const MIN_PERIOD: Duration = Duration::from_millis(100);
/// A path written continuously is handled at the latest this many debounce periods after its
/// first event.
const MAX_DELAY_FACTOR: u32 = 10;

/// `t + d` that cannot overflow (durations come from configuration).
fn later(t: Instant, d: Duration) -> Instant {
    const CAP: Duration = Duration::from_secs(10 * 365 * 86_400);
    t.checked_add(d.min(CAP)).unwrap_or(t)
}

/// A snapshot of a watcher's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchStats {
    /// Paths waiting: debouncing, queued for evaluation, or evaluated and waiting for channel
    /// capacity. At most one per path in each stage.
    pub pending: usize,
    /// Paths the consumer knows about (reported, or `known` and not removed).
    pub tracked: usize,
    /// The source folder exists and can be read.
    pub root_available: bool,
    /// Skips logged so far (each path and reason once).
    pub skips_logged: u64,
    /// Reconcile scans completed (the catch-up scan included).
    pub reconciles: u64,
}

/// Raw inotify output, coalesced by path.
#[derive(Default)]
struct Raw {
    /// Path → "content changed" (as opposed to metadata only).
    paths: HashMap<PathBuf, bool>,
    rescan: bool,
    reconcile: bool,
    overflowed: bool,
    errors: Vec<String>,
}

/// What the inotify callback, the task and the `Watcher` handle share.
#[derive(Default)]
pub(super) struct Shared {
    raw: Mutex<Raw>,
    wake: tokio::sync::Notify,
    pub pending: AtomicUsize,
    pub tracked: AtomicUsize,
    pub root_available: AtomicBool,
    pub healthy: AtomicBool,
    pub skips_logged: AtomicU64,
    pub reconciles: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// A new inotify watcher feeding this queue (no watches yet). Symlinked directories are
    /// never followed.
    pub fn new_backend(self: &Arc<Self>) -> notify::Result<RecommendedWatcher> {
        let shared = Arc::downgrade(self);
        RecommendedWatcher::new(
            move |res: notify::Result<notify::Event>| {
                if let Some(shared) = shared.upgrade() {
                    shared.on_event(res);
                }
            },
            notify::Config::default().with_follow_symlinks(false),
        )
    }

    /// The inotify callback (runs on notify's thread): never blocks for long, never grows past
    /// [`MAX_RAW_PATHS`].
    fn on_event(&self, res: notify::Result<notify::Event>) {
        let mut raw = lock(&self.raw);
        match res {
            Ok(event) => {
                let content = match event.kind {
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                    // Opens and reads, ours included: nothing changed.
                    EventKind::Access(_) if !event.need_rescan() => return,
                    EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
                    _ => true,
                };
                if event.need_rescan() {
                    raw.rescan = true;
                }
                for path in event.paths {
                    if raw.paths.len() >= MAX_RAW_PATHS && !raw.paths.contains_key(&path) {
                        raw.paths.clear();
                        raw.rescan = true;
                        raw.overflowed = true;
                    }
                    *raw.paths.entry(path).or_insert(false) |= content;
                }
            }
            Err(error) => {
                raw.rescan = true;
                if raw.errors.len() < 8 {
                    raw.errors.push(error.to_string());
                }
            }
        }
        drop(raw);
        self.wake.notify_one();
    }

    fn take_raw(&self) -> Raw {
        std::mem::take(&mut *lock(&self.raw))
    }
}

/// Per-path debounce: one heap entry per pending path.
struct Debouncer {
    debounce: Duration,
    max_delay: Duration,
    pending: HashMap<String, Pending>,
    heap: BinaryHeap<Reverse<(Instant, String)>>,
}

struct Pending {
    first: Instant,
    last: Instant,
    content: bool,
}

impl Debouncer {
    fn new(debounce: Duration) -> Debouncer {
        Debouncer {
            debounce,
            max_delay: debounce.saturating_mul(MAX_DELAY_FACTOR),
            pending: HashMap::new(),
            heap: BinaryHeap::new(),
        }
    }

    fn len(&self) -> usize {
        self.pending.len()
    }

    fn clear(&mut self) {
        self.pending.clear();
        self.heap.clear();
    }

    fn touch(&mut self, rel: String, content: bool, now: Instant) {
        match self.pending.entry(rel) {
            Entry::Occupied(mut e) => {
                let p = e.get_mut();
                p.last = now;
                p.content |= content;
            }
            Entry::Vacant(e) => {
                self.heap
                    .push(Reverse((later(now, self.debounce), e.key().clone())));
                e.insert(Pending {
                    first: now,
                    last: now,
                    content,
                });
            }
        }
    }

    fn due(&self, p: &Pending) -> Instant {
        later(p.last, self.debounce).min(later(p.first, self.max_delay))
    }

    fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Paths quiet for `debounce` (or pending for `max_delay`), with their content flag.
    fn take_due(&mut self, now: Instant) -> Nominations {
        let mut out = Vec::new();
        while self.next_due().is_some_and(|at| at <= now) {
            let Some(Reverse((_, rel))) = self.heap.pop() else {
                break;
            };
            let Some(p) = self.pending.get(&rel) else {
                continue;
            };
            let due = self.due(p);
            if due <= now {
                if let Some(p) = self.pending.remove(&rel) {
                    out.push((rel, p.content));
                }
            } else {
                self.heap.push(Reverse((due, rel)));
            }
        }
        out
    }
}

/// Paths to evaluate, in arrival order, each at most once.
#[derive(Default)]
struct Ready {
    order: VecDeque<String>,
    forced: HashMap<String, bool>,
}

impl Ready {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn clear(&mut self) {
        self.order.clear();
        self.forced.clear();
    }

    fn extend(&mut self, items: Nominations) {
        for (rel, forced) in items {
            match self.forced.entry(rel) {
                Entry::Occupied(mut e) => *e.get_mut() |= forced,
                Entry::Vacant(e) => {
                    self.order.push_back(e.key().clone());
                    e.insert(forced);
                }
            }
        }
    }

    fn take(&mut self, n: usize) -> Nominations {
        let mut out = Vec::with_capacity(n.min(self.order.len()));
        while out.len() < n {
            let Some(rel) = self.order.pop_front() else {
                break;
            };
            let forced = self.forced.remove(&rel).unwrap_or(false);
            out.push((rel, forced));
        }
        out
    }
}

/// A running watcher. Dropping it (or [`Watcher::stop`]) ends its task and its inotify
/// watches.
pub struct Watcher {
    cancel: CancellationToken,
    shared: Arc<Shared>,
    pub(super) task: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching `config.root`, sending changes to `tx`. `known` is the set of rel_paths
    /// the store already has: those not present (or no longer eligible) get a `Remove` from the
    /// catch-up scan. Must be called inside a tokio runtime. Fails only when the inotify
    /// instance cannot be created; a missing root is logged and retried.
    pub fn start(
        config: WatchConfig,
        tx: mpsc::Sender<FileEvent>,
        known: impl IntoIterator<Item = String>,
    ) -> Result<Watcher, WatchError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
        let cfg = Arc::new(config);
        let shared = Arc::new(Shared::default());
        let backend = shared.new_backend()?;
        let core = Core::new(cfg.clone(), shared.clone(), known, Some(backend));
        let cancel = CancellationToken::new();
        let task = runtime.spawn(run(
            cfg,
            shared.clone(),
            Arc::new(Mutex::new(core)),
            tx,
            cancel.clone(),
        ));
        Ok(Watcher {
            cancel,
            shared,
            task: Some(task),
        })
    }

    /// Schedules a reconcile scan now (e.g. after a resume, or on request).
    pub fn reconcile_now(&self) {
        lock(&self.shared.raw).reconcile = true;
        self.shared.wake.notify_one();
    }

    pub fn stats(&self) -> WatchStats {
        let s = &self.shared;
        WatchStats {
            pending: s.pending.load(Ordering::Relaxed),
            tracked: s.tracked.load(Ordering::Relaxed),
            root_available: s.root_available.load(Ordering::Relaxed),
            skips_logged: s.skips_logged.load(Ordering::Relaxed),
            reconciles: s.reconciles.load(Ordering::Relaxed),
        }
    }

    /// Stops the watcher and waits for its task to end (a scan in progress stops at its next
    /// directory).
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Runs one step on a blocking thread with the core locked.
async fn blocking<T: Send + 'static>(
    core: &Arc<Mutex<Core>>,
    step: impl FnOnce(&mut Core) -> T + Send + 'static,
) -> Option<T> {
    let core = core.clone();
    match tokio::task::spawn_blocking(move || step(&mut lock(&core))).await {
        Ok(v) => Some(v),
        Err(error) => {
            tracing::error!(event = "watch_error", %error, "watcher step failed");
            None
        }
    }
}

/// The relative path of an event path ("" for the root itself); `None` for what the watcher
/// ignores (outside the root, hidden, not UTF-8, below the root in non-recursive mode).
fn event_rel(cfg: &WatchConfig, path: &Path) -> Option<String> {
    let rel = rel_string(path.strip_prefix(&cfg.root).ok()?)?;
    if is_hidden_rel(&rel) || (!cfg.recursive && rel.contains('/')) {
        return None;
    }
    Some(rel)
}

async fn run(
    cfg: Arc<WatchConfig>,
    shared: Arc<Shared>,
    core: Arc<Mutex<Core>>,
    tx: mpsc::Sender<FileEvent>,
    cancel: CancellationToken,
) {
    let mut debouncer = Debouncer::new(cfg.debounce);
    let mut ready = Ready::default();
    let mut outbox: VecDeque<FileEvent> = VecDeque::new();
    // The catch-up scan runs first.
    let mut reconcile_asap = true;
    let mut last_reconcile = Instant::now();
    let mut reconcile_allowance = 0usize;
    let mut overflow_logged = false;
    let every = cfg.reconcile_every.max(MIN_PERIOD);
    let retry = cfg.root_retry.max(MIN_PERIOD).min(every);

    while !cancel.is_cancelled() && !tx.is_closed() {
        let raw = shared.take_raw();
        for error in &raw.errors {
            tracing::warn!(event = "watch_error", root = %cfg.root.display(), %error,
                "file event error: a reconcile scan follows");
        }
        if raw.overflowed {
            tracing::warn!(event = "watch_error", root = %cfg.root.display(),
                "too many file events: a reconcile scan follows");
        }
        reconcile_asap |= raw.rescan || raw.reconcile;
        let now = Instant::now();
        for (path, content) in raw.paths {
            match event_rel(&cfg, &path) {
                Some(rel) if rel.is_empty() => reconcile_asap |= content,
                Some(rel) => debouncer.touch(rel, content, now),
                None => {}
            }
        }
        if debouncer.len() + ready.len() > MAX_PENDING + reconcile_allowance {
            if !overflow_logged {
                tracing::warn!(event = "watch_error", root = %cfg.root.display(),
                    "too many pending changes: falling back to a reconcile scan");
                overflow_logged = true;
            }
            debouncer.clear();
            ready.clear();
            reconcile_asap = true;
        }

        let healthy = shared.healthy.load(Ordering::Relaxed);
        let interval = if healthy { every } else { retry };
        if reconcile_asap || now >= later(last_reconcile, interval) {
            let token = cancel.clone();
            let step = move |core: &mut Core| core.reconcile(&|| token.is_cancelled());
            if let Some(nominations) = blocking(&core, step).await {
                reconcile_allowance = nominations.len();
                ready.extend(nominations);
            }
            shared.reconciles.fetch_add(1, Ordering::Relaxed);
            reconcile_asap = false;
            last_reconcile = Instant::now();
            continue;
        }

        let due = debouncer.take_due(now);
        if !due.is_empty() {
            let token = cancel.clone();
            let step = move |core: &mut Core| core.settle(due, &|| token.is_cancelled());
            if let Some(nominations) = blocking(&core, step).await {
                ready.extend(nominations);
            }
        }

        if outbox.is_empty() && !ready.is_empty() {
            let batch = ready.take(EVAL_BATCH);
            if let Some((events, nominations)) = blocking(&core, move |c| c.evaluate(batch)).await {
                outbox.extend(events);
                ready.extend(nominations);
            }
        }

        while let Some(event) = outbox.pop_front() {
            match tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    outbox.push_front(event);
                    break;
                }
                Err(TrySendError::Closed(_)) => return,
            }
        }
        shared.pending.store(
            debouncer.len() + ready.len() + outbox.len(),
            Ordering::Relaxed,
        );
        if outbox.is_empty() && !ready.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }

        let healthy = shared.healthy.load(Ordering::Relaxed);
        let interval = if healthy { every } else { retry };
        let mut deadline = later(last_reconcile, interval);
        if let Some(due) = debouncer.next_due() {
            deadline = deadline.min(due);
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = tx.closed() => break,
            () = shared.wake.notified() => {}
            () = tokio::time::sleep_until(deadline) => {}
            permit = tx.reserve(), if !outbox.is_empty() => match permit {
                Ok(permit) => {
                    if let Some(event) = outbox.pop_front() {
                        permit.send(event);
                    }
                }
                Err(_) => break,
            },
        }
    }
}
