//! The process-wide o200k_base tokenizer, built when a document is first chunked and dropped
//! again after a quiet period.
//!
//! Why: its tables (200k-entry encoder and decoder maps, the sorted vocabulary) are ~45 MiB of
//! heap, five times what an idle daemon needs otherwise, and only chunking uses them: queries,
//! status and a watcher with nothing to do never do. Building costs ~0.3 s (release), so one
//! instance is kept across documents and databases while ingestion is busy, and released once
//! none has been chunked for [`IDLE_RELEASE`] (`HRAG_TOKENIZER_IDLE_SECS`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::chunking::{ChunkError, Chunker};

/// How long the tokenizer is kept after its last use, unless `HRAG_TOKENIZER_IDLE_SECS` says
/// otherwise.
pub const IDLE_RELEASE: Duration = Duration::from_secs(30);

/// A lazily built tokenizer released when idle. Callers hold the `Arc` only while chunking, so
/// a release frees the tables as soon as the document in flight (if any) is done.
pub struct ChunkerCache {
    idle: Duration,
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    chunker: Option<Arc<Chunker>>,
    last_used: Option<Instant>,
    /// Whether a reaper thread is watching this slot.
    reaper: bool,
    /// How many times the tokenizer was built (for tests and the log).
    builds: u64,
}

impl ChunkerCache {
    pub const fn new(idle: Duration) -> ChunkerCache {
        ChunkerCache {
            idle,
            slot: Mutex::new(Slot {
                chunker: None,
                last_used: None,
                reaper: false,
                builds: 0,
            }),
        }
    }

    /// The process-wide cache (idle period from `HRAG_TOKENIZER_IDLE_SECS`, else
    /// [`IDLE_RELEASE`]).
    pub fn global() -> &'static ChunkerCache {
        static GLOBAL: std::sync::OnceLock<ChunkerCache> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(|| {
            let idle = std::env::var("HRAG_TOKENIZER_IDLE_SECS")
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map_or(IDLE_RELEASE, Duration::from_secs_f64);
            ChunkerCache::new(idle)
        })
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        match self.slot.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The tokenizer, built now if it is not loaded. Building happens under the lock so that
    /// concurrent first uses build it once.
    pub fn get(&'static self) -> Result<Arc<Chunker>, ChunkError> {
        let mut slot = self.slot();
        slot.last_used = Some(Instant::now());
        if let Some(c) = &slot.chunker {
            return Ok(c.clone());
        }
        let chunker = Arc::new(Chunker::new()?);
        slot.chunker = Some(chunker.clone());
        slot.builds += 1;
        // Building takes a while (seconds in debug builds): the idle period starts after it.
        slot.last_used = Some(Instant::now());
        tracing::debug!(
            event = "tokenizer_loaded",
            builds = slot.builds,
            "o200k_base tokenizer loaded"
        );
        if !slot.reaper {
            slot.reaper = true;
            // A plain thread rather than a task: the cache is used from tests and tools that
            // have no runtime, and the thread exits as soon as it has released the tokenizer.
            if std::thread::Builder::new()
                .name("hrag-tokenizer-reaper".into())
                .spawn(move || self.reap())
                .is_err()
            {
                // No thread: keep the tokenizer for good rather than fail the document.
                slot.reaper = false;
            }
        }
        Ok(chunker)
    }

    /// Sleeps until the tokenizer has been unused for the idle period, then drops it.
    fn reap(&self) {
        loop {
            let wait = {
                let mut slot = self.slot();
                // Still held by a document being chunked: dropping our reference now would
                // only make the next document build a second copy alongside it.
                if slot
                    .chunker
                    .as_ref()
                    .is_some_and(|c| Arc::strong_count(c) > 1)
                {
                    slot.last_used = Some(Instant::now());
                }
                let since = slot.last_used.map_or(self.idle, |t| t.elapsed());
                if since >= self.idle {
                    let released = slot.chunker.take();
                    slot.reaper = false;
                    drop(slot);
                    // Dropped outside the lock: freeing 600k allocations takes a while.
                    drop(released);
                    tracing::debug!(
                        event = "tokenizer_released",
                        "o200k_base tokenizer released after {:?} unused",
                        self.idle
                    );
                    return;
                }
                self.idle.saturating_sub(since)
            };
            std::thread::sleep(wait);
        }
    }

    /// Whether the tokenizer is loaded now.
    pub fn is_loaded(&self) -> bool {
        self.slot().chunker.is_some()
    }

    /// How many times the tokenizer has been built.
    pub fn builds(&self) -> u64 {
        self.slot().builds
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn built_on_first_use_shared_while_busy_and_released_when_idle() {
        static CACHE: ChunkerCache = ChunkerCache::new(Duration::from_millis(300));
        assert!(!CACHE.is_loaded(), "nothing is built before it is needed");
        let a = CACHE.get().unwrap();
        let b = CACHE.get().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one instance while in use");
        assert_eq!(CACHE.builds(), 1);
        assert_eq!(a.count_tokens("hello world"), 2);
        std::thread::sleep(Duration::from_millis(900));
        assert!(CACHE.is_loaded(), "released while still in use");
        drop((a, b));
        let deadline = Instant::now() + Duration::from_secs(10);
        while CACHE.is_loaded() {
            assert!(Instant::now() < deadline, "never released");
            std::thread::sleep(Duration::from_millis(20));
        }
        let c = CACHE.get().unwrap();
        assert_eq!(CACHE.builds(), 2, "rebuilt after the release");
        assert_eq!(c.count_tokens("hello world"), 2);
    }

    #[test]
    fn kept_while_used_more_often_than_the_idle_period() {
        static CACHE: ChunkerCache = ChunkerCache::new(Duration::from_secs(1));
        for _ in 0..30 {
            drop(CACHE.get().unwrap());
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(CACHE.builds(), 1);
    }
}
