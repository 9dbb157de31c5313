//! Rendering responses: aligned tables for people, JSON for machines. Sizes in binary units.

use hrag_proto::{
    BackendHealth, BackendStatusReport, DaemonStatus, DbAck, DbDetail, DbSummary, ExportReport,
    Health, IndexBuild, IndexBuildState, QueryResult, ReloadReport, Response, Retrieved,
};

/// Prints rows with each column padded to its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut out = String::new();
        for (i, (cell, w)) in cells.into_iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i + 1 < n {
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// The JSON form of a response: its payload, without the enum wrapper.
pub fn json(resp: &Response) -> serde_json::Result<String> {
    use serde_json::to_string_pretty as s;
    match resp {
        Response::Status(x) => s(x),
        Response::Health(x) => s(x),
        Response::Paused(x) | Response::Resumed(x) => s(x),
        Response::DbList(x) => s(x),
        Response::DbShow(x) => {
            let entry: serde_json::Value = serde_json::from_str(&x.entry_json)?;
            s(&serde_json::json!({ "summary": x.summary, "entry": entry }))
        }
        Response::DbAdded(x) | Response::BackendSet(x) => s(x),
        Response::DbRemoved { name } => s(&serde_json::json!({ "removed": name })),
        Response::BackendStatus(x) => s(x),
        Response::Migration(x) => s(x),
        Response::MigrationStatus(x) => s(x),
        Response::Verified(x) => s(x),
        Response::Exported(x) => s(x),
        Response::Enqueued(x) => s(x),
        Response::Query(x) => s(x),
        Response::Metrics { text } => s(&serde_json::json!({ "metrics": text })),
        Response::Reloaded(x) => s(x),
        Response::Error(e) => s(&serde_json::json!({ "error": e })),
    }
}

pub fn human(resp: &Response) {
    match resp {
        Response::Status(s) => status(s),
        Response::Health(h) => health(h),
        Response::Paused(acks) | Response::Resumed(acks) => ack_lines(acks),
        Response::DbList(list) => db_list(list),
        Response::DbShow(d) => db_show(d),
        Response::DbAdded(s) => println!("registered {} ({}) at {}", s.name, s.backend, s.path),
        Response::BackendSet(s) => println!("{} now uses the {} backend", s.name, s.backend),
        Response::DbRemoved { name } => {
            println!("unregistered {name}; its data is left in place")
        }
        Response::BackendStatus(list) => {
            for (i, r) in list.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                backend_status(r);
            }
        }
        Response::Metrics { text } => print!("{text}"),
        Response::Reloaded(r) => reloaded(r),
        Response::Exported(x) => exported(x),
        Response::Query(q) => query(q),
        Response::Enqueued(e) => {
            println!("{}: {} file(s) queued for ingestion", e.db, e.files);
            for s in &e.skipped {
                println!("  skipped {s}");
            }
        }
        Response::Migration(r) => migration(r),
        Response::MigrationStatus(list) => {
            if list.is_empty() {
                println!("no migration since hragd started");
            }
            list.iter().for_each(migration);
        }
        Response::Verified(v) => verified(v),
        Response::Error(e) => eprintln!("error: {}", e.message),
    }
}

fn status(s: &DaemonStatus) {
    println!(
        "hragd {}  pid {}  up {}  socket {}",
        s.version,
        s.pid,
        duration(s.uptime_secs),
        s.socket
    );
    println!("registry {}", s.registry);
    if s.databases.is_empty() {
        println!("no databases registered (add one with `hragctl db add NAME --path DIR`)");
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = s
        .databases
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.backend.clone(),
                d.state.as_str().to_owned(),
                if d.auto_watch {
                    opt(&d.source_folder)
                } else {
                    "-".into()
                },
                d.path.clone(),
            ]
        })
        .collect();
    table(&["DATABASE", "BACKEND", "STATE", "WATCHING", "PATH"], &rows);
    for d in s.databases.iter().filter(|d| d.error.is_some()) {
        println!("\n{}: {}", d.name, opt(&d.error));
    }
    let builds = index_build_rows(s);
    if !builds.is_empty() {
        println!("\nvector indexes built in the background:");
        table(
            &[
                "  DATABASE",
                "TABLE",
                "INDEX",
                "STATE",
                "PROGRESS",
                "ELAPSED",
                "PHASE",
            ],
            &builds,
        );
    }
}

fn index_build_rows(s: &DaemonStatus) -> Vec<Vec<String>> {
    let row = |db: &str, b: &IndexBuild| {
        vec![
            format!("  {db}"),
            b.table.clone(),
            b.index.clone(),
            b.state.as_str().to_owned(),
            b.percent
                .map(|p| format!("{p:.0}%"))
                .unwrap_or_else(|| "-".into()),
            duration(b.elapsed_secs as u64),
            b.phase.clone(),
        ]
    };
    s.databases
        .iter()
        .flat_map(|d| d.index_builds.iter().map(|b| row(&d.name, b)))
        .collect()
}

fn health(h: &Health) {
    println!(
        "hragd {}  pid {}  up {}",
        h.version,
        h.pid,
        duration(h.uptime_secs)
    );
    println!(
        "memory {} (peak {})  open files {}",
        bytes(h.rss_bytes),
        bytes(h.peak_rss_bytes),
        h.open_fds
    );
    if h.databases.is_empty() {
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = h
        .databases
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.state.as_str().to_owned(),
                d.queue_depth.to_string(),
                opt(&d.last_ingest),
                opt(&d.last_error),
            ]
        })
        .collect();
    table(
        &["DATABASE", "STATE", "QUEUE", "LAST INGEST", "LAST ERROR"],
        &rows,
    );
    let servers: Vec<Vec<String>> = h
        .databases
        .iter()
        .filter_map(|d| d.backend.as_ref().map(|b| (d, b)))
        .map(|(d, b)| {
            vec![
                d.name.clone(),
                if b.reachable { "yes" } else { "no" }.to_owned(),
                b.latency_ms
                    .map(|ms| format!("{ms:.1} ms"))
                    .unwrap_or_else(|| "-".into()),
                opt(&b.server_version),
                opt(&b.pgvector_version),
                opt(&b.error),
            ]
        })
        .collect();
    if !servers.is_empty() {
        println!();
        table(
            &[
                "DATABASE",
                "REACHABLE",
                "LATENCY",
                "POSTGRES",
                "PGVECTOR",
                "ERROR",
            ],
            &servers,
        );
    }
}

fn ack_lines(acks: &[DbAck]) {
    if acks.is_empty() {
        println!("no databases registered");
    }
    for a in acks {
        println!("{}: {}", a.name, a.state.as_str());
    }
}

fn db_list(list: &[DbSummary]) {
    if list.is_empty() {
        println!("no databases registered (add one with `hragctl db add NAME --path DIR`)");
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.backend.clone(),
                opt(&d.workspace),
                if d.auto_watch {
                    opt(&d.source_folder)
                } else {
                    "-".into()
                },
                d.connection.clone().unwrap_or_else(|| d.path.clone()),
            ]
        })
        .collect();
    table(
        &["DATABASE", "BACKEND", "WORKSPACE", "WATCHING", "LOCATION"],
        &rows,
    );
}

fn db_show(d: &DbDetail) {
    let entry: serde_json::Value = serde_json::from_str(&d.entry_json).unwrap_or_default();
    let Some(map) = entry.as_object() else {
        println!("{}", d.entry_json);
        return;
    };
    let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
    println!("{}", d.summary.name);
    for (k, v) in map {
        let shown = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        println!("  {k:width$}  {shown}");
    }
}

fn backend_status(r: &BackendStatusReport) {
    let m = &r.metrics;
    let status = match r.status {
        BackendHealth::Healthy => "healthy",
        BackendHealth::Degraded => "degraded",
        BackendHealth::Error => "error",
    };
    println!("{} ({}): {status}", r.database, r.backend_type);
    if let Some(reason) = &r.reason {
        println!("  {reason}");
    }
    println!(
        "  documents {}  chunks {}  entities {}  relations {}",
        m.doc_count, m.chunk_count, m.entity_count, m.relation_count
    );
    if let Some(ms) = m.connection_latency_ms {
        println!("  connected {}  latency {ms:.1} ms", m.is_connected);
    }
    let over = |b: u64, limit: Option<u64>| limit.is_some_and(|l| b > l);
    let mark = |b: u64, limit: Option<u64>| match limit {
        Some(l) if b > l => format!("over {}", bytes(l)),
        _ => String::new(),
    };
    let mut any_over = false;
    if !m.file_sizes.is_empty() {
        let mut rows: Vec<Vec<String>> = m
            .file_sizes
            .iter()
            .map(|(f, b)| {
                any_over |= over(*b, m.file_size_warning_bytes);
                vec![
                    format!("  {f}"),
                    bytes(*b),
                    mark(*b, m.file_size_warning_bytes),
                ]
            })
            .collect();
        any_over |= over(m.total_size_bytes, m.total_size_warning_bytes);
        rows.push(vec![
            "  total".into(),
            bytes(m.total_size_bytes),
            mark(m.total_size_bytes, m.total_size_warning_bytes),
        ]);
        table(&["  FILE", "SIZE", "WARNING"], &rows);
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
    if any_over {
        println!(
            "  over a size threshold: move it to Postgres with `hragctl migrate {} --to postgres`",
            r.database
        );
    }
}

fn query(q: &QueryResult) {
    let section = |title: &str, items: &[Retrieved]| {
        if items.is_empty() {
            return;
        }
        println!("{title}");
        for (i, it) in items.iter().enumerate() {
            let source = it
                .source
                .as_deref()
                .map(|s| format!("  ({s})"))
                .unwrap_or_default();
            println!("{:>3}. {:.3}  {}{source}", i + 1, it.score, it.id);
            let text: String = it.content.chars().take(300).collect();
            for line in text.lines().take(4) {
                println!("       {line}");
            }
        }
        println!();
    };
    section("ENTITIES", &q.entities);
    section("RELATIONS", &q.relations);
    section("CHUNKS", &q.chunks);
    if q.chunks.is_empty() && q.entities.is_empty() && q.relations.is_empty() {
        println!("nothing retrieved");
    }
    if let Some(a) = &q.answer {
        println!("ANSWER\n{a}");
    }
}

fn reloaded(r: &ReloadReport) {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    println!(
        "registry reloaded: added {}; removed {}; changed {}",
        list(&r.added),
        list(&r.removed),
        list(&r.changed)
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn migration(r: &hrag_proto::MigrationReport) {
    let what = if r.dry_run {
        "migration plan"
    } else {
        "migration"
    };
    println!(
        "{what} of {}: {:?} → {}",
        r.db,
        r.phase,
        r.target.as_deref().unwrap_or("-")
    );
    if let Some(dim) = r.embedding_dim {
        println!(
            "  embedding: {} dims, model {}",
            dim,
            r.embedding_model
                .as_deref()
                .unwrap_or("(none: bare LIGHTRAG_VDB_* tables)")
        );
    }
    println!(
        "  {:<24} {:>10} {:>10}  verified",
        "store", "records", "MiB"
    );
    for s in &r.stores {
        let v = match s.verified {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "  {:<24} {:>10} {:>10.1}  {v}",
            s.store,
            s.records,
            mib(s.bytes)
        );
    }
    if !r.dry_run {
        println!(
            "  {:.1} s, {:.1} MB/s, peak RSS {:.0} MiB, verification: {}",
            r.duration_secs,
            r.bytes_per_sec / 1e6,
            mib(r.peak_rss_bytes),
            match r.verified {
                Some(true) => "passed",
                Some(false) => "FAILED",
                None => "skipped",
            }
        );
    }
    for b in &r.index_builds {
        let how = match b.state {
            IndexBuildState::Done => format!("built in {:.1} s", b.elapsed_secs),
            IndexBuildState::Building => format!(
                "building in the background ({}{}, {:.0} s so far; queries scan meanwhile)",
                b.phase,
                b.percent.map(|p| format!(" {p:.0}%")).unwrap_or_default(),
                b.elapsed_secs
            ),
            IndexBuildState::Failed => format!("build FAILED: {}", b.phase),
        };
        println!("  vector index {} on {}: {how}", b.index, b.table);
    }
    if let Some(m) = &r.message {
        println!("  {m}");
    }
}

fn verified(v: &hrag_proto::VerifyReport) {
    println!(
        "verification of {}: {}",
        v.db,
        if v.ok { "passed" } else { "FAILED" }
    );
    for s in &v.stores {
        println!(
            "  {:<24} {:>10} records  {}",
            s.store,
            s.records,
            if s.verified == Some(false) {
                "DIFFERS"
            } else {
                "ok"
            }
        );
    }
    for m in &v.mismatches {
        println!("  {m}");
    }
}

fn exported(x: &ExportReport) {
    let rows: Vec<Vec<String>> = x
        .stores
        .iter()
        .map(|s| vec![s.store.clone(), s.records.to_string(), bytes(s.bytes)])
        .collect();
    table(&["STORE", "RECORDS", "SIZE"], &rows);
    let total: u64 = x.stores.iter().map(|s| s.bytes).sum();
    println!(
        "exported {} to {} ({}): a LightRAG JSON working directory",
        x.db,
        x.dir,
        bytes(total)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn index_builds_get_one_row_each() {
        use hrag_proto::{DbState, DbStatus};
        let build = |table: &str, state, percent| IndexBuild {
            table: table.into(),
            index: format!("idx_{table}_hnsw_cosine"),
            phase: "building index: loading tuples".into(),
            percent,
            elapsed_secs: 75.4,
            state,
        };
        let db = DbStatus {
            name: "big".into(),
            backend: "postgres".into(),
            state: DbState::Idle,
            paused: false,
            path: "/kb".into(),
            workspace: None,
            source_folder: None,
            auto_watch: false,
            error: None,
            index_builds: vec![
                build("t1", IndexBuildState::Building, Some(42.4)),
                build("t2", IndexBuildState::Done, None),
            ],
        };
        let s = DaemonStatus {
            version: "0".into(),
            pid: 1,
            uptime_secs: 1,
            socket: "s".into(),
            registry: "r".into(),
            state_dir: "d".into(),
            databases: vec![db],
        };
        let rows = index_build_rows(&s);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            [
                "  big",
                "t1",
                "idx_t1_hnsw_cosine",
                "building",
                "42%",
                "1m15s",
                "building index: loading tuples"
            ]
        );
        assert_eq!((rows[1][3].as_str(), rows[1][4].as_str()), ("done", "-"));
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(61), "1m01s");
        assert_eq!(duration(3 * 3600 + 120), "3h02m");
        assert_eq!(duration(2 * 86400 + 3600), "2d01h");
    }
}
