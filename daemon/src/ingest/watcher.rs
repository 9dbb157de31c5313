//! The watcher: turns a database's source folder into a bounded stream of [`FileEvent`]s that
//! the ingestion pipeline consumes.
//!
//! # What it emits
//! - [`FileEvent::Upsert`] for a file that is (still) eligible and new or changed;
//!   [`FileEvent::Remove`] for a path the consumer was told about (or that the store already
//!   had, the `known` set) that is gone or no longer eligible. `rel_path` is relative to the root
//!   with `/` separators: LightRAG's `file_path` and the input of the document id.
//! - At start, a catch-up scan emits an `Upsert` for every eligible file (the pipeline decides by
//!   content hash whether work is needed) and a `Remove` for every `known` path not present.
//! - Afterwards: inotify events (one non-recursive watch per watched directory), debounced per
//!   path: a path is handled once no event arrived for it for `debounce` (or at the latest
//!   `10 × debounce` after its first event, so a file that is written continuously is still
//!   picked up). A burst of writes gives one `Upsert`; create + delete within the window gives
//!   nothing (or a `Remove` when the path had been reported); a rename gives `Remove` old +
//!   `Upsert` new; a directory moved in or out gives the events of every file under it.
//! - A reconcile scan every `reconcile_every` (and on inotify queue overflow, and on
//!   [`Watcher::reconcile_now`]) compares each file's (size, mtime, inode) with what was last
//!   reported and nominates the differences: it catches what events missed (network
//!   filesystems, overflow, writes through a hard link outside the root, symlinked files whose
//!   target changed).
//!
//! # Eligibility ([`scan`], [`SkipReason`])
//! In order: a path with a component starting with `.` is hidden (a hidden directory is not
//! entered); the database's working directory is excluded; directories are entered only when
//! `recursive`; the file name must end with a watched extension (case-insensitive); it must be
//! a regular file; at most `max_file_bytes`; readable; and its first 8 KiB must hold no NUL byte
//! and be valid UTF-8 (a character cut by the 8 KiB boundary is fine).
//!
//! Symlinks: a symlinked *file* is followed when its target lies inside the root (it is reported
//! under the link's path, with the target's size and mtime). A symlinked *directory* is never
//! entered: a link to a directory that contains the link is a `symlink_loop`, one to a
//! directory elsewhere in the root is `symlink_to_directory` (its files are reached through
//! their real path, so they are not indexed twice), one leaving the root is
//! `symlink_outside_root`. A link that resolves nowhere is `broken_symlink` (or `symlink_loop`
//! for ELOOP).
//!
//! Each skip is logged once (`event = "file_skipped"`, `path`, `reason`) and again only when
//! its reason changes or after the file disappeared and came back: the database's own working
//! directory at DEBUG, unreadable, loops, broken or outside links at WARN, the rest (hidden,
//! extension not watched, binary, too large…) at INFO.
//!
//! # Safety of removals
//! The watcher never infers a removal from something it could not see: while the root is
//! missing or unreadable it emits nothing (`event = "watch_error"`, retried every
//! `root_retry`), files under a directory it could not read are kept, and a file that exists but
//! cannot be read is logged and kept (not removed). When the root comes back, a reconcile
//! brings the consumer up to date.
//!
//! # Backpressure
//! Nothing grows with the number of events, only with the number of distinct paths: raw events
//! are coalesced in a set keyed by path (capped: past 65,536 distinct paths the set is dropped
//! and a full reconcile scheduled instead), debouncing and the ready queue are keyed by
//! `rel_path` (a path is queued at most once), and at most 64 evaluated events wait for channel
//! capacity. When the consumer stops reading (a paused database), changes keep being coalesced
//! and are delivered when it reads again.

mod config;
mod scan;
mod state;
mod task;
#[cfg(test)]
mod tests;

pub use config::{
    DEFAULT_DEBOUNCE, DEFAULT_EXTENSIONS, DEFAULT_MAX_FILE_BYTES, DEFAULT_RECONCILE_EVERY,
    DEFAULT_ROOT_RETRY, WatchConfig, normalise_extensions,
};
pub use scan::{ScannedFile, Skip, SkipReason, scan};
pub use task::{WatchStats, Watcher};

use std::path::PathBuf;

/// A change the pipeline must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// The file exists and is eligible; it is new or changed since it was last reported (or
    /// this is the catch-up scan). `size` and `mtime_ns` are as seen when the event was made.
    Upsert {
        rel_path: String,
        abs_path: PathBuf,
        size: u64,
        mtime_ns: i128,
    },
    /// The file is gone (deleted, renamed away, no longer eligible) and its document should go.
    Remove { rel_path: String },
}

impl FileEvent {
    /// The path relative to the root, `/`-separated.
    pub fn rel_path(&self) -> &str {
        match self {
            FileEvent::Upsert { rel_path, .. } | FileEvent::Remove { rel_path } => rel_path,
        }
    }
}

/// Why a watcher could not be started or a scan not made.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// `Watcher::start` was called outside a tokio runtime.
    #[error("the watcher must be started inside a tokio runtime")]
    NoRuntime,
    /// The inotify instance could not be created (e.g. `fs.inotify.max_user_instances`).
    #[error("cannot create the file watcher: {0}")]
    Backend(#[from] ::notify::Error),
    /// The source folder does not exist, is not a directory, or cannot be read.
    #[error("source folder {} is unavailable: {error}", root.display())]
    RootUnavailable {
        root: PathBuf,
        #[source]
        error: std::io::Error,
    },
}
