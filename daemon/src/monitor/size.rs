//! Size monitor for JSON databases: each store file (the GraphML included) against
//! `file_size_warning_mb` and their total against `total_size_warning_mb`.
//!
//! Invariants: sizes come from `metadata()` only, never from reading a file, so a check costs
//! a dozen `stat`s whatever the store's size; a crossing is logged once and re-arms only when
//! the size falls back under its threshold; Postgres databases are never checked.

use std::collections::{BTreeMap, BTreeSet};

use tracing::warn;

use crate::registry::{BackendType, DbEntry};

/// HybridRAG's defaults (registry `backend_config`).
pub const DEFAULT_FILE_WARNING_MB: f64 = 500.0;
pub const DEFAULT_TOTAL_WARNING_MB: f64 = 2048.0;

/// The name a total crossing is reported under, in place of a file name.
pub const TOTAL: &str = "total";

const MIB: f64 = 1024.0 * 1024.0;

/// A database's size thresholds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub file_bytes: u64,
    pub total_bytes: u64,
}

impl Thresholds {
    /// The entry's thresholds; `None` for backends that have no store files to watch.
    pub fn of(entry: &DbEntry) -> Option<Thresholds> {
        if entry.backend_type != BackendType::Json {
            return None;
        }
        let c = &entry.backend_config;
        Some(Thresholds {
            file_bytes: mb_to_bytes(c.file_size_warning_mb.unwrap_or(DEFAULT_FILE_WARNING_MB)),
            total_bytes: mb_to_bytes(c.total_size_warning_mb.unwrap_or(DEFAULT_TOTAL_WARNING_MB)),
        })
    }

    /// The (name, bytes, threshold) of every file — and of the total — over its threshold.
    pub fn over<'a>(&self, sizes: &'a BTreeMap<String, u64>) -> Vec<(&'a str, u64, u64)> {
        let mut over: Vec<(&str, u64, u64)> = sizes
            .iter()
            .filter(|(_, b)| **b > self.file_bytes)
            .map(|(f, b)| (f.as_str(), *b, self.file_bytes))
            .collect();
        let total = sizes.values().sum::<u64>();
        if total > self.total_bytes {
            over.push((TOTAL, total, self.total_bytes));
        }
        over
    }
}

/// Registry megabytes are MiB, as HybridRAG computed them (`bytes / 1024 / 1024`).
fn mb_to_bytes(mb: f64) -> u64 {
    (mb * MIB) as u64
}

/// The store files of a JSON database that exist, with their sizes, by `stat` only. Empty for
/// other backends.
pub fn store_file_sizes(entry: &DbEntry) -> BTreeMap<String, u64> {
    if entry.backend_type != BackendType::Json {
        return BTreeMap::new();
    }
    let dir = crate::storage::json_store_dir(&entry.path, entry.workspace.as_deref());
    crate::storage::json::STORE_FILES
        .iter()
        .filter_map(|f| {
            let meta = std::fs::metadata(dir.join(f)).ok()?;
            Some(((*f).to_owned(), meta.len()))
        })
        .collect()
}

/// The command that moves a database off JSON files.
pub fn migrate_command(db: &str) -> String {
    format!("hragctl migrate {db} --to postgres")
}

/// One sentence per crossing, for `backend status`'s warnings.
pub fn warnings(db: &str, sizes: &BTreeMap<String, u64>, t: &Thresholds) -> Vec<String> {
    t.over(sizes)
        .into_iter()
        .map(|(file, bytes, threshold)| message(db, file, bytes, threshold))
        .collect()
}

fn message(db: &str, file: &str, bytes: u64, threshold: u64) -> String {
    let what = if file == TOTAL {
        "the store's total size".to_owned()
    } else {
        file.to_owned()
    };
    format!(
        "database '{db}': {what} is {} bytes ({:.1} MiB), over the warning threshold of {} bytes \
         ({:.1} MiB); run `{}`",
        bytes,
        bytes as f64 / MIB,
        threshold,
        threshold as f64 / MIB,
        migrate_command(db)
    )
}

/// What a database's last checks found over threshold; a name leaves the set (re-arms) when its
/// size falls back under.
#[derive(Debug, Default)]
pub struct SizeWatch {
    over: BTreeSet<String>,
}

/// A threshold newly crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    pub file: String,
    pub bytes: u64,
    pub threshold_bytes: u64,
}

impl SizeWatch {
    /// The crossings new since the last check; forgets those back under their threshold.
    pub fn update(&mut self, sizes: &BTreeMap<String, u64>, t: &Thresholds) -> Vec<Crossing> {
        let now: Vec<(&str, u64, u64)> = t.over(sizes);
        self.over
            .retain(|name| now.iter().any(|(f, _, _)| *f == name.as_str()));
        now.into_iter()
            .filter(|(f, _, _)| self.over.insert((*f).to_owned()))
            .map(|(f, bytes, threshold_bytes)| Crossing {
                file: f.to_owned(),
                bytes,
                threshold_bytes,
            })
            .collect()
    }

    /// Checks `entry`'s files now and logs one warning per new crossing.
    pub fn check(&mut self, entry: &DbEntry) {
        let Some(t) = Thresholds::of(entry) else {
            self.over.clear();
            return;
        };
        let sizes = store_file_sizes(entry);
        for c in self.update(&sizes, &t) {
            let suggestion = migrate_command(&entry.name);
            warn!(event = "size_threshold_exceeded", db = %entry.name, file = %c.file,
                  bytes = c.bytes, threshold_bytes = c.threshold_bytes, suggestion = %suggestion,
                  "{}", message(&entry.name, &c.file, c.bytes, c.threshold_bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sizes(items: &[(&str, u64)]) -> BTreeMap<String, u64> {
        items.iter().map(|(f, b)| ((*f).to_owned(), *b)).collect()
    }

    const T: Thresholds = Thresholds {
        file_bytes: 100,
        total_bytes: 250,
    };

    #[test]
    fn one_crossing_until_the_size_falls_back() {
        let mut w = SizeWatch::default();
        assert!(w.update(&sizes(&[("a.json", 50)]), &T).is_empty());
        let first = w.update(&sizes(&[("a.json", 150)]), &T);
        assert_eq!(
            first,
            vec![Crossing {
                file: "a.json".into(),
                bytes: 150,
                threshold_bytes: 100
            }]
        );
        assert!(w.update(&sizes(&[("a.json", 160)]), &T).is_empty());
        assert!(w.update(&sizes(&[("a.json", 90)]), &T).is_empty());
        assert_eq!(w.update(&sizes(&[("a.json", 101)]), &T).len(), 1);
    }

    #[test]
    fn the_total_is_its_own_threshold() {
        let mut w = SizeWatch::default();
        let c = w.update(
            &sizes(&[("a.json", 90), ("b.json", 90), ("c.json", 90)]),
            &T,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].file, TOTAL);
        assert_eq!(c[0].bytes, 270);
    }

    #[test]
    fn equal_to_the_threshold_is_not_over() {
        assert!(T.over(&sizes(&[("a.json", 100)])).is_empty());
    }

    #[test]
    fn warnings_name_the_file_and_the_command() {
        let w = warnings("db3", &sizes(&[("vdb_chunks.json", 200)]), &T);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("vdb_chunks.json"), "{}", w[0]);
        assert!(
            w[0].contains("hragctl migrate db3 --to postgres"),
            "{}",
            w[0]
        );
    }

    #[test]
    fn megabytes_are_mebibytes() {
        assert_eq!(mb_to_bytes(1.0), 1_048_576);
        assert_eq!(mb_to_bytes(0.5), 524_288);
    }
}
