//! Prometheus text exposition (format 0.0.4) of the daemon and its databases.
//!
//! Names follow Prometheus conventions: the `hrag_` prefix, base units (`_bytes`, `_seconds`),
//! `_total` on counters, one HELP and TYPE line per family with all its samples together.
//! Label values are escaped; nothing secret (DSNs, passwords) is ever a label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use hrag_proto::DbState;

use super::size::{self, Thresholds};
use crate::registry::DbEntry;
use crate::supervisor::{DbSnapshot, QueryContext};

/// How long a database may take to count its documents by status before it is left out (a
/// Postgres outage must not hang `metrics`).
const COUNT_TIMEOUT: Duration = Duration::from_secs(2);

const STATES: [DbState; 6] = [
    DbState::Starting,
    DbState::Idle,
    DbState::Ingesting,
    DbState::Paused,
    DbState::Migrating,
    DbState::Error,
];

/// The daemon process's own figures.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    pub uptime_secs: f64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub open_fds: u64,
}

/// What the daemon knows about one database, gathered under its lock.
pub struct Source {
    pub name: String,
    pub snapshot: DbSnapshot,
    pub entry: Option<DbEntry>,
    pub query: Option<Arc<QueryContext>>,
}

/// One database's figures, ready to print.
struct Db {
    name: String,
    backend: String,
    snap: DbSnapshot,
    by_status: Option<BTreeMap<String, u64>>,
    sizes: BTreeMap<String, u64>,
    thresholds: Option<Thresholds>,
}

/// Gathers each database's figures (sizes by `stat`, document counts from the open store) and
/// renders the exposition.
pub async fn collect(process: Process, sources: Vec<Source>) -> String {
    let mut dbs = Vec::with_capacity(sources.len());
    for s in sources {
        let by_status = match &s.query {
            Some(q) => tokio::time::timeout(COUNT_TIMEOUT, q.backend.doc_status.counts_by_status())
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        dbs.push(Db {
            backend: s
                .entry
                .as_ref()
                .map_or("unknown", |e| e.backend_type.as_str())
                .to_owned(),
            sizes: s
                .entry
                .as_ref()
                .map(size::store_file_sizes)
                .unwrap_or_default(),
            thresholds: s.entry.as_ref().and_then(Thresholds::of),
            name: s.name,
            snap: s.snapshot,
            by_status,
        });
    }
    render(&process, &dbs)
}

fn render(p: &Process, dbs: &[Db]) -> String {
    let mut w = Writer::default();
    w.family(
        "hrag_process_uptime_seconds",
        "gauge",
        "Seconds since hragd started.",
    );
    w.sample("hrag_process_uptime_seconds", &[], p.uptime_secs);
    w.family(
        "hrag_process_resident_memory_bytes",
        "gauge",
        "Resident memory of hragd.",
    );
    w.sample(
        "hrag_process_resident_memory_bytes",
        &[],
        p.rss_bytes as f64,
    );
    w.family(
        "hrag_process_resident_memory_peak_bytes",
        "gauge",
        "Peak resident memory of hragd (VmHWM).",
    );
    w.sample(
        "hrag_process_resident_memory_peak_bytes",
        &[],
        p.peak_rss_bytes as f64,
    );
    w.family(
        "hrag_process_open_fds",
        "gauge",
        "Open file descriptors of hragd.",
    );
    w.sample("hrag_process_open_fds", &[], p.open_fds as f64);

    let per_db =
        |w: &mut Writer, name: &str, kind: &str, help: &str, f: &dyn Fn(&Db) -> Option<f64>| {
            w.family(name, kind, help);
            for d in dbs {
                if let Some(v) = f(d) {
                    w.sample(name, &[("db", &d.name)], v);
                }
            }
        };

    w.family(
        "hrag_database_info",
        "gauge",
        "Registered databases and their backend (always 1).",
    );
    for d in dbs {
        w.sample(
            "hrag_database_info",
            &[("db", &d.name), ("backend", &d.backend)],
            1.0,
        );
    }
    w.family(
        "hrag_database_state",
        "gauge",
        "The database's supervisor state (1 for the current one).",
    );
    for d in dbs {
        for s in STATES {
            let v = if d.snap.state == s { 1.0 } else { 0.0 };
            w.sample(
                "hrag_database_state",
                &[("db", &d.name), ("state", s.as_str())],
                v,
            );
        }
    }
    per_db(
        &mut w,
        "hrag_backend_up",
        "gauge",
        "Whether the database's store is open (loaded or connected).",
        &|d| Some(if d.snap.backend_open { 1.0 } else { 0.0 }),
    );
    per_db(
        &mut w,
        "hrag_queue_depth",
        "gauge",
        "Files waiting for ingestion.",
        &|d| Some(d.snap.queue_depth as f64),
    );
    w.family("hrag_documents", "gauge", "Documents by doc-status status.");
    for d in dbs {
        for (status, n) in d.by_status.iter().flatten() {
            w.sample(
                "hrag_documents",
                &[("db", &d.name), ("status", status)],
                *n as f64,
            );
        }
    }
    let counts = |d: &Db| d.snap.counts.unwrap_or_default();
    per_db(
        &mut w,
        "hrag_chunks",
        "gauge",
        "Chunk vectors in the store.",
        &|d| Some(counts(d).chunk_count as f64),
    );
    per_db(
        &mut w,
        "hrag_entities",
        "gauge",
        "Graph nodes in the store.",
        &|d| Some(counts(d).entity_count as f64),
    );
    per_db(
        &mut w,
        "hrag_relations",
        "gauge",
        "Graph edges in the store.",
        &|d| Some(counts(d).relation_count as f64),
    );
    per_db(
        &mut w,
        "hrag_ingest_rate_documents_per_minute",
        "gauge",
        "Documents per minute of the last ingest cycle.",
        &|d| d.snap.monitor.ingest_rate_per_min,
    );
    per_db(
        &mut w,
        "hrag_ingest_rate_baseline_documents_per_minute",
        "gauge",
        "Baseline ingest rate (mean of the first cycles).",
        &|d| d.snap.monitor.baseline_per_min,
    );
    per_db(
        &mut w,
        "hrag_ingest_documents_total",
        "counter",
        "Documents run through the pipeline since hragd started.",
        &|d| Some(d.snap.monitor.documents_total as f64),
    );
    per_db(
        &mut w,
        "hrag_ingest_cycles_total",
        "counter",
        "Ingest cycles (documents between two flushes) since hragd started.",
        &|d| Some(d.snap.monitor.cycles_total as f64),
    );
    w.family(
        "hrag_store_size_bytes",
        "gauge",
        "Size of each JSON store file.",
    );
    for d in dbs {
        for (file, b) in &d.sizes {
            w.sample(
                "hrag_store_size_bytes",
                &[("db", &d.name), ("file", file)],
                *b as f64,
            );
        }
    }
    per_db(
        &mut w,
        "hrag_store_total_size_bytes",
        "gauge",
        "Total size of the JSON store files.",
        &|d| d.thresholds.map(|_| d.sizes.values().sum::<u64>() as f64),
    );
    per_db(
        &mut w,
        "hrag_store_file_size_warning_bytes",
        "gauge",
        "Per-file size warning threshold (file_size_warning_mb).",
        &|d| d.thresholds.map(|t| t.file_bytes as f64),
    );
    per_db(
        &mut w,
        "hrag_store_total_size_warning_bytes",
        "gauge",
        "Total size warning threshold (total_size_warning_mb).",
        &|d| d.thresholds.map(|t| t.total_bytes as f64),
    );
    per_db(
        &mut w,
        "hrag_store_over_threshold",
        "gauge",
        "Store files (and the total) over their size warning threshold.",
        &|d| d.thresholds.map(|t| t.over(&d.sizes).len() as f64),
    );
    w.out
}

/// Builds the exposition text, one family at a time.
#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// HELP text escapes backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
    }

    #[test]
    fn numbers_print_as_prometheus_reads_them() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }

    #[test]
    fn families_carry_help_and_type_before_their_samples() {
        let mut w = Writer::default();
        w.family("hrag_x_bytes", "gauge", "X.");
        w.sample("hrag_x_bytes", &[("db", "a\"b"), ("file", "f.json")], 12.0);
        assert_eq!(
            w.out,
            "# HELP hrag_x_bytes X.\n# TYPE hrag_x_bytes gauge\nhrag_x_bytes{db=\"a\\\"b\",file=\"f.json\"} 12\n"
        );
    }
}
