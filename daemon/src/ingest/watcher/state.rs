//! The watcher's memory and its blocking steps: what the consumer was told, what was skipped
//! (so a skip is logged once), which directories are watched, and the three operations the task
//! runs on a blocking thread — reconcile, settle (a debounced path), evaluate (make events).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use super::scan::{self, Class, Ctx, Fingerprint, Item, Skip, SkipReason, under};
use super::task::Shared;
use super::{FileEvent, WatchConfig, WatchError};

/// Paths to (re)evaluate, each with `forced`: an event said its content changed, so an eligible
/// file is reported even when its fingerprint looks the same.
pub(super) type Nominations = Vec<(String, bool)>;

/// A path the consumer knows: `fp` is what it was last told (`None`: from the store's `known`
/// set, never reported by this watcher).
#[derive(Debug)]
struct Reported {
    fp: Option<Fingerprint>,
    seen: u64,
}

/// The last skip logged for a path.
#[derive(Debug)]
struct SkipMemo {
    reason: SkipReason,
    fp: Option<Fingerprint>,
    seen: u64,
}

pub(super) struct Core {
    cfg: Arc<WatchConfig>,
    shared: Arc<Shared>,
    /// `Some` while the root is available.
    ctx: Option<Ctx>,
    root_down_logged: bool,
    reported: BTreeMap<String, Reported>,
    skipped: HashMap<String, SkipMemo>,
    /// Symlinked files: target rel_path → the links to it, and back.
    links: HashMap<String, BTreeSet<String>>,
    link_of: HashMap<String, String>,
    /// Walk generation: entries seen by the current walk carry it.
    generation: u64,
    backend: Option<RecommendedWatcher>,
    backend_error_logged: bool,
    /// Directories with a watch.
    watched: HashSet<PathBuf>,
    /// Directories whose watch failed (logged once; retried at each reconcile). A full
    /// reconcile rebuilds the set from the directories that still fail.
    unwatchable: HashSet<PathBuf>,
    previously_unwatchable: HashSet<PathBuf>,
    skips_logged: u64,
}

impl Core {
    pub fn new(
        cfg: Arc<WatchConfig>,
        shared: Arc<Shared>,
        known: impl IntoIterator<Item = String>,
        backend: Option<RecommendedWatcher>,
    ) -> Core {
        let reported = known
            .into_iter()
            .map(|rel| (rel, Reported { fp: None, seen: 0 }))
            .collect();
        Core {
            cfg,
            shared,
            ctx: None,
            root_down_logged: false,
            reported,
            skipped: HashMap::new(),
            links: HashMap::new(),
            link_of: HashMap::new(),
            generation: 0,
            backend,
            backend_error_logged: false,
            watched: HashSet::new(),
            unwatchable: HashSet::new(),
            previously_unwatchable: HashSet::new(),
            skips_logged: 0,
        }
    }

    /// Root available and inotify set up: the normal reconcile period applies.
    pub fn healthy(&self) -> bool {
        self.ctx.is_some() && self.backend.is_some()
    }

    /// Publishes the counters `Watcher::stats` reads.
    pub fn publish(&self) {
        let s = &self.shared;
        s.tracked.store(self.reported.len(), Ordering::Relaxed);
        s.root_available
            .store(self.ctx.is_some(), Ordering::Relaxed);
        s.healthy.store(self.healthy(), Ordering::Relaxed);
        s.skips_logged.store(self.skips_logged, Ordering::Relaxed);
    }

    /// Re-checks the root. On loss: log once, drop the inotify watcher (its watches are stale).
    fn ensure_root(&mut self) -> bool {
        match Ctx::open(self.cfg.clone()) {
            Ok(ctx) => {
                if let Some(old) = &self.ctx
                    && (old.root_id != ctx.root_id || old.canon_root != ctx.canon_root)
                {
                    // Replaced under us: the watches point at the old directory.
                    self.drop_backend();
                }
                if self.root_down_logged {
                    tracing::info!(
                        event = "watch_recovered",
                        root = %self.cfg.root.display(),
                        "source folder available again"
                    );
                    self.root_down_logged = false;
                }
                self.ctx = Some(ctx);
                true
            }
            Err(error) => {
                let error = match error {
                    WatchError::RootUnavailable { error, .. } => error.to_string(),
                    other => other.to_string(),
                };
                if !self.root_down_logged {
                    tracing::warn!(
                        event = "watch_error",
                        root = %self.cfg.root.display(),
                        %error,
                        retry_secs = self.cfg.root_retry.as_secs_f64(),
                        "source folder unavailable: no change is reported until it is back"
                    );
                    self.root_down_logged = true;
                }
                self.ctx = None;
                self.drop_backend();
                false
            }
        }
    }

    fn drop_backend(&mut self) {
        self.backend = None;
        self.watched.clear();
        self.unwatchable.clear();
    }

    fn ensure_backend(&mut self) {
        if self.backend.is_some() {
            return;
        }
        match self.shared.new_backend() {
            Ok(backend) => {
                if self.backend_error_logged {
                    tracing::info!(
                        event = "watch_recovered",
                        root = %self.cfg.root.display(),
                        "file events available again"
                    );
                    self.backend_error_logged = false;
                }
                self.backend = Some(backend);
            }
            Err(error) => {
                if !self.backend_error_logged {
                    tracing::warn!(
                        event = "watch_error",
                        root = %self.cfg.root.display(),
                        %error,
                        "cannot receive file events: changes are found by the reconcile scan only"
                    );
                    self.backend_error_logged = true;
                }
            }
        }
    }

    fn watch_dir(&mut self, abs: &Path, failures: &mut usize, first_error: &mut Option<String>) {
        if self.watched.contains(abs) {
            return;
        }
        let Some(backend) = self.backend.as_mut() else {
            return;
        };
        match backend.watch(abs, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.unwatchable.remove(abs);
                self.watched.insert(abs.to_path_buf());
            }
            Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {}
            Err(e) => {
                let known = self.previously_unwatchable.contains(abs);
                if self.unwatchable.insert(abs.to_path_buf()) && !known {
                    *failures += 1;
                    if first_error.is_none() {
                        *first_error = Some(e.to_string());
                    }
                }
            }
        }
    }

    /// Logs a skip unless the same reason was already logged for this path; remembers it.
    fn note_skip(&mut self, rel: &str, abs: &Path, reason: SkipReason, fp: Option<Fingerprint>) {
        let known = self.skipped.get(rel).is_some_and(|m| m.reason == reason);
        if !known {
            Skip {
                path: abs.to_path_buf(),
                rel_path: rel.to_owned(),
                reason: reason.clone(),
            }
            .log();
            self.skips_logged += 1;
        }
        self.skipped.insert(
            rel.to_owned(),
            SkipMemo {
                reason,
                fp,
                seen: self.generation,
            },
        );
    }

    fn set_link(&mut self, rel: &str, target: Option<String>) {
        if let Some(old) = self.link_of.remove(rel)
            && let Some(set) = self.links.get_mut(&old)
        {
            set.remove(rel);
            if set.is_empty() {
                self.links.remove(&old);
            }
        }
        if let Some(target) = target {
            self.links
                .entry(target.clone())
                .or_default()
                .insert(rel.to_owned());
            self.link_of.insert(rel.to_owned(), target);
        }
    }

    /// Reported paths strictly below `rel`.
    fn reported_below(&self, rel: &str) -> impl Iterator<Item = &String> {
        let prefix = format!("{rel}/");
        self.reported
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(move |k| k.starts_with(&prefix))
    }

    /// A full reconcile: re-checks the root (and inotify), re-watches directories, and
    /// nominates every path whose state differs from what was reported.
    pub fn reconcile(&mut self, cancelled: &dyn Fn() -> bool) -> Nominations {
        let mut out = Vec::new();
        if self.ensure_root() {
            self.ensure_backend();
            if let Some(ctx) = self.ctx.clone() {
                self.previously_unwatchable = std::mem::take(&mut self.unwatchable);
                self.reconcile_in(&ctx, "", cancelled, &mut out);
                self.previously_unwatchable.clear();
            }
        }
        self.publish();
        out
    }

    /// Reconciles the subtree `prefix` ("" = the root; otherwise a real directory).
    fn reconcile_in(
        &mut self,
        ctx: &Ctx,
        prefix: &str,
        cancelled: &dyn Fn() -> bool,
        out: &mut Nominations,
    ) {
        self.generation += 1;
        let generation = self.generation;
        let mut incomplete: Vec<String> = Vec::new();
        let mut failures = 0usize;
        let mut first_error = None;
        let result = scan::walk(ctx, prefix, cancelled, &mut |item| match item {
            Item::Dir { abs } => self.watch_dir(abs, &mut failures, &mut first_error),
            Item::Incomplete { rel } => incomplete.push(rel.to_owned()),
            Item::Entry { rel, abs, class } => self.seen_entry(rel, abs, class, out),
        });
        if failures > 0 {
            tracing::warn!(
                event = "watch_error",
                root = %ctx.cfg.root.display(),
                directories = failures,
                first_error = first_error.as_deref().unwrap_or(""),
                "some directories cannot be watched: their changes are found by the reconcile scan"
            );
        }
        match result {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) if prefix.is_empty() => {
                tracing::warn!(
                    event = "watch_error",
                    root = %ctx.cfg.root.display(),
                    %error,
                    "cannot list the source folder"
                );
                return;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // The directory vanished since it was seen: what was below it is gone.
                out.push((prefix.to_owned(), false));
                let below: Vec<String> = self.reported_below(prefix).cloned().collect();
                out.extend(below.into_iter().map(|k| (k, false)));
                return;
            }
            Err(error) => {
                let reason = SkipReason::Unreadable {
                    error: error.to_string(),
                };
                self.note_skip(prefix, &ctx.abs(prefix), reason, None);
                return;
            }
        }
        let blocked = |k: &str| incomplete.iter().any(|i| under(k, i));
        let unseen = self
            .reported
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, r)| under(k, prefix) && r.seen != generation && !blocked(k))
            .map(|(k, _)| (k.clone(), false));
        out.extend(unseen);
        self.skipped
            .retain(|k, m| m.seen == generation || !under(k, prefix) || blocked(k));
    }

    /// One entry of a walk: nominate it when it differs from what was reported.
    fn seen_entry(&mut self, rel: &str, abs: &Path, class: Class, out: &mut Nominations) {
        let generation = self.generation;
        match class {
            Class::Candidate { fp, .. } => {
                let mut nominate = true;
                if let Some(r) = self.reported.get_mut(rel) {
                    r.seen = generation;
                    nominate = r.fp != Some(fp);
                }
                if let Some(m) = self.skipped.get_mut(rel) {
                    m.seen = generation;
                    match m.reason {
                        // Content already judged for this very version.
                        SkipReason::Binary if m.fp == Some(fp) => nominate = false,
                        // May have become readable (permissions are not in the fingerprint).
                        SkipReason::Unreadable { .. } => nominate = true,
                        _ => {}
                    }
                }
                if nominate {
                    out.push((rel.to_owned(), false));
                }
            }
            Class::Skipped { reason, fp } => {
                let unreadable = matches!(reason, SkipReason::Unreadable { .. });
                match self.reported.get_mut(rel) {
                    // The evaluation removes it (and logs why).
                    Some(r) if !unreadable => {
                        r.seen = generation;
                        out.push((rel.to_owned(), false));
                    }
                    Some(r) => {
                        r.seen = generation;
                        self.note_skip(rel, abs, reason, fp);
                    }
                    None => self.note_skip(rel, abs, reason, fp),
                }
            }
            Class::Dir | Class::Missing => {}
        }
    }

    /// Handles paths whose events have settled: a directory is reconciled (watched, and its
    /// files nominated); anything else is nominated together with what was reported below it.
    pub fn settle(&mut self, paths: Nominations, cancelled: &dyn Fn() -> bool) -> Nominations {
        let mut out = Vec::new();
        if !self.ensure_root() {
            self.publish();
            return out;
        }
        self.ensure_backend();
        let Some(ctx) = self.ctx.clone() else {
            return out;
        };
        for (rel, forced) in paths {
            if cancelled() {
                break;
            }
            if rel.is_empty() {
                self.reconcile_in(&ctx, "", cancelled, &mut out);
                continue;
            }
            // A directory deleted, moved or replaced must be watched again.
            let abs = ctx.abs(&rel);
            if self.watched.remove(&abs) {
                self.watched.retain(|d| !d.starts_with(&abs));
            }
            match scan::locate(&ctx, &rel) {
                Class::Dir if ctx.cfg.recursive => {
                    self.reconcile_in(&ctx, &rel, cancelled, &mut out);
                }
                _ => {
                    let below: Vec<String> = self.reported_below(&rel).cloned().collect();
                    out.push((rel, forced));
                    out.extend(below.into_iter().map(|k| (k, false)));
                }
            }
        }
        self.publish();
        out
    }

    /// Evaluates paths and turns the differences into events. Returns the events and the
    /// symlinks whose target was among the paths (to evaluate next).
    pub fn evaluate(&mut self, batch: Nominations) -> (Vec<FileEvent>, Nominations) {
        let mut events = Vec::new();
        let mut out = Vec::new();
        let Some(ctx) = self.ctx.clone() else {
            // Root unavailable: the reconcile that follows its return covers these paths.
            return (events, out);
        };
        let mut root_checked = false;
        for (rel, forced) in batch {
            let class = scan::evaluate(&ctx, &rel);
            if let Some(links) = self.links.get(&rel) {
                out.extend(links.iter().map(|l| (l.clone(), forced)));
            }
            match class {
                Class::Candidate { fp, link_target } => {
                    self.skipped.remove(&rel);
                    self.set_link(&rel, link_target);
                    let changed = self.reported.get(&rel).is_none_or(|r| r.fp != Some(fp));
                    if forced || changed {
                        events.push(FileEvent::Upsert {
                            rel_path: rel.clone(),
                            abs_path: ctx.abs(&rel),
                            size: fp.size,
                            mtime_ns: fp.mtime_ns,
                        });
                    }
                    let seen = self.generation;
                    self.reported.insert(rel, Reported { fp: Some(fp), seen });
                }
                Class::Skipped { reason, fp } => {
                    self.set_link(&rel, None);
                    // A file that exists but cannot be read keeps its document.
                    let keep = matches!(reason, SkipReason::Unreadable { .. });
                    self.note_skip(&rel, &ctx.abs(&rel), reason, fp);
                    if !keep && self.reported.remove(&rel).is_some() {
                        events.push(FileEvent::Remove { rel_path: rel });
                    }
                }
                Class::Dir | Class::Missing => {
                    self.set_link(&rel, None);
                    self.skipped.remove(&rel);
                    if self.reported.contains_key(&rel) {
                        // Never infer removals from a root that went away.
                        if !root_checked {
                            root_checked = true;
                            if !self.ensure_root() {
                                break;
                            }
                        }
                        self.reported.remove(&rel);
                        events.push(FileEvent::Remove { rel_path: rel });
                    }
                }
            }
        }
        self.publish();
        (events, out)
    }
}
