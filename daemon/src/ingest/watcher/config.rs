//! What to watch: [`WatchConfig`] and its defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::registry::DbEntry;

/// Extensions watched when the entry names none (lower-case, with the dot).
pub const DEFAULT_EXTENSIONS: &[&str] = &[".md", ".txt", ".rst", ".org", ".markdown"];
/// Files larger than this are skipped (`too_large`).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Quiet time after a path's last event before it is handled.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);
/// HybridRAG's `watch_interval` default.
pub const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(300);
/// How often a missing root (or a watcher that could not be set up) is retried.
pub const DEFAULT_ROOT_RETRY: Duration = Duration::from_secs(10);

/// What one watcher watches and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// The source folder. Events and `abs_path`s are built on this path as given.
    pub root: PathBuf,
    /// Enter subdirectories.
    pub recursive: bool,
    /// Watched name endings, lower-case with the leading dot (see [`normalise_extensions`]).
    pub extensions: Vec<String>,
    /// Larger files are skipped.
    pub max_file_bytes: u64,
    /// Per-path quiet time before an event is handled.
    pub debounce: Duration,
    /// Period of the reconcile scan (the entry's `watch_interval`).
    pub reconcile_every: Duration,
    /// Retry period while the root is missing or inotify could not be set up.
    pub root_retry: Duration,
    /// Directories never watched (the database's own working directory when it lies inside
    /// the source folder). Absolute, or relative to `root`.
    pub exclude: Vec<PathBuf>,
}

impl WatchConfig {
    /// A configuration for `root` with every default: recursive, [`DEFAULT_EXTENSIONS`],
    /// [`DEFAULT_MAX_FILE_BYTES`], [`DEFAULT_DEBOUNCE`], [`DEFAULT_RECONCILE_EVERY`],
    /// [`DEFAULT_ROOT_RETRY`], nothing excluded.
    pub fn new(root: impl Into<PathBuf>) -> WatchConfig {
        WatchConfig {
            root: root.into(),
            recursive: true,
            extensions: DEFAULT_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            debounce: DEFAULT_DEBOUNCE,
            reconcile_every: DEFAULT_RECONCILE_EVERY,
            root_retry: DEFAULT_ROOT_RETRY,
            exclude: Vec::new(),
        }
    }

    /// The watch configuration of a registry entry; `None` when it has no `source_folder`.
    /// Uses `recursive`, `file_extensions` (normalised; none or empty → the defaults) and
    /// `watch_interval`; excludes the entry's working directory `path`. Whether to watch at all
    /// (`auto_watch`, `source_type`) is the caller's decision.
    pub fn from_entry(entry: &DbEntry) -> Option<WatchConfig> {
        let root = entry.source_folder.clone()?;
        let mut config = WatchConfig::new(root);
        config.recursive = entry.recursive;
        config.extensions = normalise_extensions(entry.file_extensions.as_deref().unwrap_or(&[]));
        config.reconcile_every = Duration::from_secs(entry.watch_interval_secs.max(1));
        config.exclude = vec![entry.path.clone()];
        Some(config)
    }

    /// Whether a file name ends with a watched extension (case-insensitive; the name must be
    /// longer than the extension).
    pub(super) fn watches_name(&self, name: &str) -> bool {
        let lower = name.to_lowercase();
        self.extensions
            .iter()
            .any(|ext| lower.len() > ext.len() && lower.ends_with(ext.as_str()))
    }
}

/// Normalises `file_extensions` as users write them (`md`, `.MD`, ` .txt `): trimmed,
/// lower-cased, with one leading dot, duplicates and empty items dropped. An empty result means
/// [`DEFAULT_EXTENSIONS`].
pub fn normalise_extensions(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in list {
        let trimmed = item.trim().trim_start_matches('.').to_lowercase();
        if trimmed.is_empty() {
            continue;
        }
        let ext = format!(".{trimmed}");
        if !out.contains(&ext) {
            out.push(ext);
        }
    }
    if out.is_empty() {
        DEFAULT_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect()
    } else {
        out
    }
}
