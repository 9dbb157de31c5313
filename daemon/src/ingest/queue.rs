//! The pending work of one database: coalesced per file, retried with backoff, persisted in the
//! state dir so that work still pending at shutdown is picked up at the next start.
//!
//! Invariants: at most one entry per file (a newer event replaces an older one), so a burst of
//! events never grows the queue beyond the number of distinct files; a failing file waits with
//! exponential backoff at the back and never blocks the others; after `MAX_ATTEMPTS` it is
//! dropped (its document stays `failed` with the error).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::fsutil;

pub const MAX_ATTEMPTS: u32 = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// (Re)ingest the file at `abs` under the document path `rel`.
    Upsert { abs: PathBuf },
    /// Remove the document stored under `rel`.
    Remove,
}

#[derive(Debug, Clone)]
struct Item {
    work: Work,
    attempts: u32,
    not_before: Instant,
}

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    rel: String,
    work: Work,
}

pub struct IngestQueue {
    items: IndexMap<String, Item>,
    file: PathBuf,
    dirty: bool,
}

impl IngestQueue {
    /// The queue of database `db`, with whatever was pending at the last save.
    pub fn load(state_dir: &Path, db: &str) -> IngestQueue {
        let file = state_dir.join("databases").join(format!("{db}.queue.json"));
        let mut q = IngestQueue {
            items: IndexMap::new(),
            file,
            dirty: false,
        };
        if let Ok(bytes) = std::fs::read(&q.file)
            && let Ok(saved) = serde_json::from_slice::<Vec<Saved>>(&bytes)
        {
            for s in saved {
                q.push(s.rel, s.work);
            }
            q.dirty = false;
        }
        q
    }

    /// Adds or replaces the work for `rel`; the newest event wins and runs as soon as possible.
    pub fn push(&mut self, rel: String, work: Work) {
        self.items.shift_remove(&rel);
        self.items.insert(
            rel,
            Item {
                work,
                attempts: 0,
                not_before: Instant::now(),
            },
        );
        self.dirty = true;
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When the next item is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.items.values().map(|i| i.not_before).min()
    }

    /// Takes the first item that is due now.
    pub fn pop_due(&mut self) -> Option<(String, Work, u32)> {
        let now = Instant::now();
        let idx = self.items.values().position(|i| i.not_before <= now)?;
        let (rel, item) = self.items.shift_remove_index(idx)?;
        self.dirty = true;
        Some((rel, item.work, item.attempts))
    }

    /// Puts a failed item back with backoff; `false` when it has used up its attempts.
    pub fn retry(&mut self, rel: String, work: Work, attempts: u32) -> bool {
        let attempts = attempts + 1;
        if attempts >= MAX_ATTEMPTS || self.items.contains_key(&rel) {
            // Out of attempts, or a newer event for the same file is already queued.
            return attempts < MAX_ATTEMPTS;
        }
        let backoff = Duration::from_secs(1u64 << attempts.min(8)).min(MAX_BACKOFF);
        self.items.insert(
            rel,
            Item {
                work,
                attempts,
                not_before: Instant::now() + backoff,
            },
        );
        self.dirty = true;
        true
    }

    /// Writes the queue to the state dir when it changed since the last save.
    pub fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let saved: Vec<Saved> = self
            .items
            .iter()
            .map(|(rel, i)| Saved {
                rel: rel.clone(),
                work: i.work.clone(),
            })
            .collect();
        if let Some(dir) = self.file.parent() {
            fsutil::create_private_dir(dir, 0o700)?;
        }
        let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
        fsutil::write_atomic(&self.file, &bytes, 0o600)?;
        self.dirty = false;
        Ok(())
    }

    pub fn forget(state_dir: &Path, db: &str) {
        let _ = std::fs::remove_file(state_dir.join("databases").join(format!("{db}.queue.json")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_for_one_file_coalesce_and_the_newest_wins() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut q = IngestQueue::load(dir.path(), "db");
        for _ in 0..1000 {
            q.push(
                "a.md".into(),
                Work::Upsert {
                    abs: "/s/a.md".into(),
                },
            );
        }
        q.push("a.md".into(), Work::Remove);
        q.push(
            "b.md".into(),
            Work::Upsert {
                abs: "/s/b.md".into(),
            },
        );
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop_due().map(|x| x.1), Some(Work::Remove));
    }

    #[test]
    fn pending_work_survives_a_restart() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut q = IngestQueue::load(dir.path(), "db");
        q.push(
            "a.md".into(),
            Work::Upsert {
                abs: "/s/a.md".into(),
            },
        );
        q.push("gone.md".into(), Work::Remove);
        q.save()?;
        let mut again = IngestQueue::load(dir.path(), "db");
        assert_eq!(again.len(), 2);
        assert_eq!(again.pop_due().map(|x| x.0), Some("a.md".to_owned()));
        Ok(())
    }

    #[test]
    fn failures_back_off_and_give_up() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut q = IngestQueue::load(dir.path(), "db");
        assert!(q.retry("a.md".into(), Work::Remove, 0));
        assert!(q.pop_due().is_none(), "not due before its backoff");
        assert!(!q.retry("b.md".into(), Work::Remove, MAX_ATTEMPTS - 1));
    }
}
