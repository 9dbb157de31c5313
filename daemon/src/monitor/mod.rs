//! Monitoring: store sizes against their thresholds, the ingest rate against its baseline, and
//! the figures `metrics` exports.
//!
//! A supervisor owns one [`DbMonitor`] and calls it at three points only: after each document,
//! after each successful flush (the end of an ingest cycle) and on the monitor's timer. All the
//! logic lives here, so the supervisor's loop stays about ingestion.

pub mod http;
pub mod metrics;
pub mod rate;
pub mod size;

use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use crate::registry::DbEntry;
use crate::supervisor::DbSnapshot;

/// How often sizes are checked besides after each flush; `HRAG_SIZE_CHECK_SECS` overrides it
/// (tests use a second).
pub const SIZE_CHECK_EVERY: Duration = Duration::from_secs(60);

fn size_check_every() -> Duration {
    std::env::var("HRAG_SIZE_CHECK_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(SIZE_CHECK_EVERY, Duration::from_secs_f64)
}

/// What a database's monitor publishes (for `metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Docs/min of the last ingest cycle.
    pub ingest_rate_per_min: Option<f64>,
    /// Docs/min the rate is compared with, once established.
    pub baseline_per_min: Option<f64>,
    /// Documents run (processed, removed, unchanged or skipped) since the daemon started.
    pub documents_total: u64,
    pub cycles_total: u64,
}

/// One database's monitor, owned by its supervisor.
pub struct DbMonitor {
    db: String,
    sizes: size::SizeWatch,
    rate: rate::RateTracker,
    /// The cycle in progress: documents run and time spent on them since the last flush.
    cycle_docs: u64,
    cycle_busy: Duration,
    documents_total: u64,
    every: Duration,
    timer: Option<tokio::time::Interval>,
}

impl DbMonitor {
    pub fn new(db: &str) -> DbMonitor {
        DbMonitor {
            db: db.to_owned(),
            sizes: size::SizeWatch::default(),
            rate: rate::RateTracker::default(),
            cycle_docs: 0,
            cycle_busy: Duration::ZERO,
            documents_total: 0,
            every: size_check_every(),
            timer: None,
        }
    }

    /// Resolves when a timed size check is due; the first is due at once. Cancel-safe.
    pub async fn tick(&mut self) {
        let every = self.every;
        let timer = self.timer.get_or_insert_with(|| {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        timer.tick().await;
    }

    /// Checks the store's sizes now (logs new crossings).
    pub fn check_sizes(&mut self, entry: Option<&DbEntry>) {
        if let Some(entry) = entry {
            self.sizes.check(entry);
        }
    }

    /// A document of the current cycle finished after `took`.
    pub fn document_done(&mut self, took: Duration) {
        self.cycle_docs += 1;
        self.cycle_busy += took;
        self.documents_total += 1;
    }

    /// A flush succeeded after `took`: closes the ingest cycle, checks the rate and the sizes,
    /// and publishes the figures.
    pub fn flushed(
        &mut self,
        entry: Option<&DbEntry>,
        took: Duration,
        snapshot: &watch::Sender<DbSnapshot>,
    ) {
        let docs = std::mem::take(&mut self.cycle_docs);
        let busy = std::mem::take(&mut self.cycle_busy) + took;
        let threshold = entry
            .and_then(|e| e.backend_config.performance_degradation_pct)
            .unwrap_or(rate::DEFAULT_DEGRADATION_PCT);
        if let Some(d) = self.rate.record(docs, busy, threshold) {
            warn!(event = "ingest_rate_degraded", db = %self.db, rate = d.rate,
                  baseline = d.baseline, pct = d.pct,
                  "ingestion slowed to {:.1} documents/min, {:.0} % below its baseline of {:.1}",
                  d.rate, d.pct, d.baseline);
        }
        self.check_sizes(entry);
        let figures = self.figures();
        snapshot.send_modify(|s| s.monitor = figures);
    }

    pub fn figures(&self) -> Figures {
        Figures {
            ingest_rate_per_min: self.rate.last(),
            baseline_per_min: self.rate.baseline(),
            documents_total: self.documents_total,
            cycles_total: self.rate.cycles(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects the JSON log lines written while `f` runs.
    fn logged(f: impl FnOnce()) -> Vec<serde_json::Value> {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn snapshot() -> watch::Sender<DbSnapshot> {
        watch::channel(DbSnapshot {
            state: hrag_proto::DbState::Idle,
            paused: false,
            error: None,
            queue_depth: 0,
            last_ingest: None,
            last_error: None,
            counts: None,
            backend_open: true,
            probe: None,
            monitor: Figures::default(),
        })
        .0
    }

    /// A slowed pipeline: five cycles of 10 documents at 1 s each, then 4 s each.
    #[test]
    fn a_slowed_pipeline_logs_ingest_rate_degraded_once() {
        let snap = snapshot();
        let mut m = DbMonitor::new("slow");
        let lines = logged(|| {
            for cycle in 0..10 {
                let per_doc = if cycle < 5 { 1 } else { 4 };
                for _ in 0..10 {
                    m.document_done(Duration::from_secs(per_doc));
                }
                m.flushed(None, Duration::ZERO, &snap);
            }
        });
        let warned: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["event"] == "ingest_rate_degraded")
            .collect();
        assert_eq!(warned.len(), 1, "{lines:?}");
        let w = warned[0];
        assert_eq!(w["level"], "WARN");
        assert_eq!(w["db"], "slow");
        assert_eq!(w["rate"], 15.0);
        assert_eq!(w["baseline"], 60.0);
        assert_eq!(w["pct"], 75.0);
        let f = snap.borrow().monitor;
        assert_eq!(f.documents_total, 100);
        assert_eq!(f.cycles_total, 10);
        assert_eq!(f.ingest_rate_per_min, Some(15.0));
        assert_eq!(f.baseline_per_min, Some(60.0));
    }
}
