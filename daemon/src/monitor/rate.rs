//! Ingest-rate tracker: documents per minute per ingest cycle (the documents processed between
//! two flushes, over the time spent on them), against a baseline of the first cycles.
//!
//! HybridRAG's rule: a window of 20 cycles; the baseline is the mean of the first 5; a warning
//! when the mean of the last 3 is `performance_degradation_pct` % or more below it, at most
//! once per 5 cycles. Pure logic: the caller times cycles and logs.

use std::collections::VecDeque;
use std::time::Duration;

pub const WINDOW: usize = 20;
pub const BASELINE_CYCLES: usize = 5;
pub const RECENT_CYCLES: usize = 3;
/// Cycles between two warnings at least.
pub const WARN_EVERY: u64 = 5;
pub const DEFAULT_DEGRADATION_PCT: f64 = 50.0;

#[derive(Debug, Default)]
pub struct RateTracker {
    window: VecDeque<f64>,
    first: Vec<f64>,
    cycles: u64,
    last_warned: Option<u64>,
}

/// A degradation worth a warning.
#[derive(Debug, Clone, PartialEq)]
pub struct Degraded {
    /// Mean docs/min of the recent cycles.
    pub rate: f64,
    pub baseline: f64,
    /// How far below the baseline, in percent.
    pub pct: f64,
}

impl RateTracker {
    /// Records a cycle of `docs` documents that took `took`; returns a degradation when one is
    /// due a warning. Empty or instantaneous cycles say nothing about the rate and are ignored.
    pub fn record(&mut self, docs: u64, took: Duration, threshold_pct: f64) -> Option<Degraded> {
        let secs = took.as_secs_f64();
        if docs == 0 || secs <= 0.0 {
            return None;
        }
        let rate = docs as f64 * 60.0 / secs;
        self.cycles += 1;
        if self.first.len() < BASELINE_CYCLES {
            self.first.push(rate);
        }
        if self.window.len() == WINDOW {
            self.window.pop_front();
        }
        self.window.push_back(rate);
        // The recent cycles must all come after the baseline's.
        if self.cycles < (BASELINE_CYCLES + RECENT_CYCLES) as u64 {
            return None;
        }
        let baseline = self.baseline()?;
        let rate = self.recent()?;
        let pct = (baseline - rate) / baseline * 100.0;
        let quiet = self
            .last_warned
            .is_some_and(|at| self.cycles - at < WARN_EVERY);
        if pct >= threshold_pct && !quiet {
            self.last_warned = Some(self.cycles);
            return Some(Degraded {
                rate,
                baseline,
                pct,
            });
        }
        None
    }

    /// Mean docs/min of the first cycles, once there are enough.
    pub fn baseline(&self) -> Option<f64> {
        (self.first.len() == BASELINE_CYCLES && mean(&self.first) > 0.0).then(|| mean(&self.first))
    }

    /// Mean docs/min of the last cycles.
    pub fn recent(&self) -> Option<f64> {
        (self.window.len() >= RECENT_CYCLES).then(|| {
            let recent: Vec<f64> = self
                .window
                .iter()
                .rev()
                .take(RECENT_CYCLES)
                .copied()
                .collect();
            mean(&recent)
        })
    }

    /// Docs/min of the last cycle.
    pub fn last(&self) -> Option<f64> {
        self.window.back().copied()
    }

    pub fn cycles(&self) -> u64 {
        self.cycles
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    /// Feeds cycles of `docs` per minute; returns the cycle numbers (1-based) that warned.
    fn feed(t: &mut RateTracker, rates: &[u64]) -> Vec<usize> {
        rates
            .iter()
            .enumerate()
            .filter_map(|(i, r)| t.record(*r, MIN, 50.0).map(|_| i + 1))
            .collect()
    }

    #[test]
    fn steady_rate_never_warns() {
        let mut t = RateTracker::default();
        assert!(feed(&mut t, &[100; 40]).is_empty());
        assert_eq!(t.baseline(), Some(100.0));
    }

    #[test]
    fn a_halved_rate_warns_once_per_five_cycles() {
        let mut t = RateTracker::default();
        let mut rates = vec![100; 5];
        rates.extend([40; 12]);
        // Cycles 6..8 are the first three slow ones: the mean of the last 3 reaches 40 at 8.
        assert_eq!(feed(&mut t, &rates), vec![8, 13]);
    }

    #[test]
    fn a_drop_short_of_the_threshold_is_quiet() {
        let mut t = RateTracker::default();
        let mut rates = vec![100; 5];
        rates.extend([60; 10]);
        assert!(feed(&mut t, &rates).is_empty());
    }

    #[test]
    fn the_warning_carries_rate_baseline_and_pct() {
        let mut t = RateTracker::default();
        feed(&mut t, &[120; 5]);
        feed(&mut t, &[30, 30]);
        let d = t.record(30, MIN, 50.0).expect("a warning");
        assert_eq!(d.rate, 30.0);
        assert_eq!(d.baseline, 120.0);
        assert_eq!(d.pct, 75.0);
    }

    #[test]
    fn recovery_stops_the_warnings() {
        let mut t = RateTracker::default();
        let mut rates = vec![100; 5];
        rates.extend([10; 3]);
        rates.extend([100; 10]);
        assert_eq!(feed(&mut t, &rates), vec![8]);
    }

    #[test]
    fn empty_cycles_are_ignored() {
        let mut t = RateTracker::default();
        assert_eq!(t.record(0, MIN, 50.0), None);
        assert_eq!(t.record(5, Duration::ZERO, 50.0), None);
        assert_eq!(t.cycles(), 0);
    }

    #[test]
    fn rate_is_per_minute() {
        let mut t = RateTracker::default();
        t.record(10, Duration::from_secs(30), 50.0);
        assert_eq!(t.last(), Some(20.0));
    }
}
