//! The ingestion side of a supervisor: providers, pipeline, watcher and queue of one database,
//! and the read-only context that queries use concurrently.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::ingest::pipeline::{Outcome, Pipeline, PipelineError};
use crate::ingest::queue::{IngestQueue, Work};
use crate::ingest::watcher::{self, FileEvent, SkipReason, WatchConfig, Watcher};
use crate::providers::{self, Providers};
use crate::registry::DbEntry;
use crate::storage::{Backend, KvNamespace, VectorNamespace};

/// How much of a file is read to tell text from binary (as the watcher does).
const SNIFF_BYTES: usize = 8 * 1024;

/// Flush the stores after at least this many documents even while more are queued…
pub const BATCH: usize = 32;
/// …and only once this many times the last flush's duration has passed since it: a JSON
/// store rewrites whole files, so a fixed batch would make ingest quadratic in the store's
/// size; this keeps flushing at most ~1/(1+FLUSH_SPACING) of the time.
pub const FLUSH_SPACING: u32 = 4;
/// Capacity of the watcher → supervisor channel; the watcher coalesces beyond it.
const EVENTS: usize = 256;

/// What queries need; shared with the control socket while the supervisor ingests.
pub struct QueryContext {
    pub backend: Arc<Backend>,
    pub providers: Providers,
}

pub struct Ingest {
    pub pipeline: Pipeline,
    pub queue: IngestQueue,
    /// Source folder documents are named relative to.
    source: Option<PathBuf>,
    config: Option<WatchConfig>,
    _watcher: Option<Watcher>,
    pub since_flush: usize,
    /// Files whose content another document already holds (not ingested again), by that
    /// document: when it is removed or replaced they are queued again, so their content does
    /// not leave the store while they are still there.
    duplicates: HashMap<String, BTreeMap<String, PathBuf>>,
    /// When the last flush ended, and how long it took.
    pub last_flush: (std::time::Instant, std::time::Duration),
    /// A flush waiting for its spacing to pass (see [`Ingest::flush_due`]).
    pub flush_at: Option<std::time::Instant>,
}

impl Ingest {
    /// When the documents run since the last flush should be written, given whether the queue
    /// has drained: `None` while a batch is still filling (or nothing ran). Either way no
    /// sooner than `FLUSH_SPACING` times the last flush's duration after it — also when the
    /// queue drains, since files trickling in (one per watcher debounce) would otherwise make
    /// every document rewrite the whole store.
    pub fn flush_due(&self, drained: bool) -> Option<std::time::Instant> {
        if self.since_flush == 0 || !(drained || self.since_flush >= BATCH) {
            return None;
        }
        let (ended, took) = self.last_flush;
        Some(ended + took * FLUSH_SPACING)
    }
}

/// Sets up ingestion for an open store. Refuses a provider whose embedding dimension differs
/// from the vectors already stored (mixing dimensions silently breaks every query).
pub async fn start(
    entry: &DbEntry,
    backend: Arc<Backend>,
    state_dir: &Path,
) -> Result<(Ingest, Arc<QueryContext>, Option<mpsc::Receiver<FileEvent>>), String> {
    let stored_dim = VectorNamespace::ALL
        .iter()
        .map(|ns| backend.vectors(*ns).dim())
        .find(|d| *d > 0);
    let mut entry = entry.clone();
    // An adopted store without a configured dimension keeps its own.
    if entry.model_config.embedding_dim.is_none() {
        entry.model_config.embedding_dim = stored_dim.and_then(|d| i64::try_from(d).ok());
    }
    let providers =
        providers::from_entry(&entry, backend.kv(KvNamespace::LlmResponseCache).clone())
            .map_err(|e| format!("cannot set up the model providers: {e}"))?;
    if let Some(dim) = stored_dim
        && dim != providers.embedder.dim()
    {
        return Err(format!(
            "the store's vectors have {dim} dimensions but the embedder {} produces {}; set \
             model_config.embedding_model / embedding_dim to the model the store was built with",
            providers.embedder.model_name(),
            providers.embedder.dim()
        ));
    }
    let pipeline = Pipeline::new(backend.clone(), providers.clone())
        .await
        .map_err(|e| format!("cannot index the stored documents: {e}"))?;
    let config = WatchConfig::from_entry(&entry);
    let (watcher, events) = match (&config, entry.auto_watch) {
        (Some(c), true) => {
            let (tx, rx) = mpsc::channel(EVENTS);
            // Only documents named relative to the folder can be judged by it: one ingested
            // from elsewhere (`hragctl ingest`, named by its absolute path) is not "deleted"
            // just because the folder lacks it.
            let known = pipeline
                .known_paths()
                .await
                .map_err(|e| format!("cannot list the stored documents: {e}"))?
                .into_iter()
                .filter(|p| !Path::new(p).is_absolute());
            let w = Watcher::start(c.clone(), tx, known)
                .map_err(|e| format!("cannot watch {}: {e}", c.root.display()))?;
            info!(event = "watch_started", db = %entry.name, folder = %c.root.display(),
                  "watching the source folder");
            (Some(w), Some(rx))
        }
        _ => (None, None),
    };
    let ctx = Arc::new(QueryContext { backend, providers });
    Ok((
        Ingest {
            pipeline,
            queue: IngestQueue::load(state_dir, &entry.name),
            source: entry.source_folder.clone(),
            config,
            _watcher: watcher,
            since_flush: 0,
            flush_at: None,
            duplicates: HashMap::new(),
            last_flush: (std::time::Instant::now(), std::time::Duration::ZERO),
        },
        ctx,
        events,
    ))
}

impl Ingest {
    /// Queues a watcher event.
    pub fn push_event(&mut self, ev: FileEvent) {
        match ev {
            FileEvent::Upsert {
                rel_path, abs_path, ..
            } => self.queue.push(rel_path, Work::Upsert { abs: abs_path }),
            FileEvent::Remove { rel_path } => self.queue.push(rel_path, Work::Remove),
        }
    }

    /// The document path of a file: relative to the source folder when inside it, else its
    /// absolute path.
    fn rel_of(&self, abs: &Path) -> String {
        self.source
            .as_ref()
            .and_then(|s| abs.strip_prefix(s).ok())
            .map(|r| r.to_string_lossy().replace('\\', "/"))
            .unwrap_or_else(|| abs.to_string_lossy().into_owned())
    }

    /// `hragctl ingest`: queues files, and the eligible files of folders (with the database's
    /// filters). Returns how many were queued and what was skipped, with reasons.
    pub fn enqueue(&mut self, paths: Vec<PathBuf>) -> (u64, Vec<String>) {
        let mut queued = 0;
        let mut skipped = Vec::new();
        for p in paths {
            if p.is_dir() {
                let mut cfg = self.config.clone().unwrap_or_else(|| WatchConfig::new(&p));
                cfg.root = p.clone();
                match watcher::scan(&cfg) {
                    Ok((files, skips)) => {
                        for f in files {
                            let rel = self.rel_of(&f.abs_path);
                            self.queue.push(rel, Work::Upsert { abs: f.abs_path });
                            queued += 1;
                        }
                        skipped.extend(
                            skips
                                .iter()
                                .map(|s| format!("{}: {}", s.path.display(), s.reason)),
                        );
                    }
                    Err(e) => skipped.push(format!("{}: {e}", p.display())),
                }
            } else if p.is_file() {
                if let Some(why) = self.ineligible(&p) {
                    skipped.push(format!("{}: {why}", p.display()));
                    continue;
                }
                let rel = self.rel_of(&p);
                self.queue.push(rel, Work::Upsert { abs: p });
                queued += 1;
            } else {
                skipped.push(format!("{}: not a file or folder", p.display()));
            }
        }
        (queued, skipped)
    }

    /// Why a file must not become a document whatever its name: not a regular file, larger
    /// than the database's limit, or binary (a NUL byte or invalid UTF-8 in its first 8 KiB),
    /// as the watcher judges folders. Applies to files named on `hragctl ingest`, and again
    /// just before reading (a file may have changed since it was queued). `None` also when the
    /// file cannot be opened: reading it reports that.
    fn ineligible(&self, abs: &Path) -> Option<SkipReason> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let limit = self
            .config
            .as_ref()
            .map_or(watcher::DEFAULT_MAX_FILE_BYTES, |c| c.max_file_bytes);
        // O_NONBLOCK: a FIFO must not block the supervisor.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(abs)
            .ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return Some(SkipReason::NotRegularFile);
        }
        let size = meta.len();
        if size > limit {
            return Some(SkipReason::TooLarge { size, limit });
        }
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        file.take(SNIFF_BYTES as u64).read_to_end(&mut head).ok()?;
        let binary = head.contains(&0)
            || std::str::from_utf8(&head)
                .err()
                .is_some_and(|e| !(head.len() == SNIFF_BYTES && e.error_len().is_none()));
        binary.then_some(SkipReason::Binary)
    }

    /// Runs one due item. `Ok(None)` when nothing was due.
    pub async fn run_one(&mut self, db: &str) -> Option<Result<Outcome, String>> {
        let (rel, work, attempts) = self.queue.pop_due()?;
        // Re-evaluated now: a duplicate again only if this run finds so.
        self.duplicates.retain(|_, files| {
            files.remove(&rel);
            !files.is_empty()
        });
        let result = match &work {
            Work::Upsert { abs } if let Some(why) = self.ineligible(abs) => {
                Ok(Outcome::Skipped(format!("{}: {why}", abs.display())))
            }
            Work::Upsert { abs } => match tokio::fs::read(abs).await {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => self.pipeline.upsert_file(&rel, &text).await,
                    Err(e) => Ok(Outcome::Skipped(format!(
                        "{}: not UTF-8 (byte offset {})",
                        abs.display(),
                        e.utf8_error().valid_up_to()
                    ))),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.pipeline.remove_file(&rel).await
                }
                Err(e) => Err(PipelineError::Invalid(format!(
                    "cannot read {}: {e}",
                    abs.display()
                ))),
            },
            Work::Remove => self.pipeline.remove_file(&rel).await,
        };
        self.since_flush += 1;
        Some(match result {
            Ok(outcome) => {
                match &outcome {
                    Outcome::Processed { doc_id, chunks } => info!(event = "document_processed",
                        db, path = %rel, doc_id = %doc_id, chunks, "document processed"),
                    Outcome::Removed { doc_id } => info!(event = "document_removed", db,
                        path = %rel, doc_id = %doc_id, "document removed"),
                    Outcome::Unchanged { doc_id } => {
                        // A failed lookup counts as "another document's": requeueing the file
                        // later is harmless, losing it is not.
                        if let Work::Upsert { abs } = &work
                            && self
                                .pipeline
                                .doc_of_path(&rel)
                                .await
                                .ok()
                                .flatten()
                                .as_ref()
                                != Some(doc_id)
                        {
                            self.duplicates
                                .entry(doc_id.clone())
                                .or_default()
                                .insert(rel.clone(), abs.clone());
                        }
                    }
                    Outcome::Skipped(why) => info!(event = "document_skipped", db, path = %rel,
                        reason = %why, "document skipped"),
                }
                if let Outcome::Processed { doc_id, .. } | Outcome::Removed { doc_id } = &outcome
                    && let Some(files) = self.duplicates.remove(doc_id)
                {
                    for (rel, abs) in files {
                        self.queue.push(rel, Work::Upsert { abs });
                    }
                }
                Ok(outcome)
            }
            Err(e) => {
                let msg = format!("{rel}: {e}");
                if self.queue.retry(rel.clone(), work, attempts) {
                    warn!(event = "document_failed", db, path = %rel, error = %e, attempt = attempts + 1,
                          "document failed; it will be retried");
                } else {
                    warn!(event = "document_gave_up", db, path = %rel, error = %e,
                          "document failed too often; it stays failed until the file changes");
                }
                Err(msg)
            }
        })
    }
}
