//! Benchmark: ingestion with the built-in, offline providers (PRODUCT §11: ≥ 50 documents/s of
//! 1–5 KB text on 2 cores).
//!
//!     cargo build --release && cargo bench -p hrag-daemon --bench ingest
//!     HRAG_BENCH_DOCS=4000 HRAG_BENCH_BURST=20000 cargo bench -p hrag-daemon --bench ingest
//!
//! Generates field notes of 1–5 KB (people, organisations and places that recur across the
//! corpus, so the rule extractor and the graph merge do real work), then measures:
//!   1a. in process, each stage in a fresh child process (so peak RSS belongs to it), over
//!       `HRAG_BENCH_DOCS` documents (default 2000; to profile a stage by hand:
//!       `ingest-<hash> --child gen DIR`, then `--child hrag DIR KB` under `perf record`):
//!       * baseline `chunk`: sanitising and chunking alone (`Chunker::stored_chunks`);
//!       * baseline `compute`: chunking + rule extraction + hash embedding of the chunks, entities
//!         and relations a document yields — the pipeline's CPU work without any store;
//!       * `hrag`: `Pipeline::upsert_file` on a fresh JSON store, flushed as the supervisor
//!         flushes a long queue — after 32 documents once 4× the last flush's duration has
//!         passed — and at the end (flush time reported apart);
//!   1b. end to end: the real `hragd` (built by cargo next to this bench) watches a folder that
//!       receives `HRAG_BENCH_DOCS / 4` files (default 500); time until `hragctl --json backend
//!       status` reports them all;
//!   2.  a burst of `HRAG_BENCH_BURST` files (default 10,000) dropped into the watched folder of a
//!       fresh daemon: hragd's VmRSS/VmHWM sampled while it works, the peak against its idle RSS,
//!       the corpus and the store, at each tenth of the burst; then the database is paused and
//!       the same store reopened by a fresh daemon, idle, to separate what holding the store
//!       costs from what ingesting costs.
//!
//! `HRAG_BENCH_BUDGET_SECS` (default 270; 0 = none) bounds the run: the `hrag` stage of 1a and
//! part 1b may each take a third of it, part 2 whatever is left. A stage still running when its
//! share is spent stops there, says so (`NOT finished`), and reports the figures of the
//! documents it got through.
//!
//! `hragctl` must have been built next to `hragd` (`cargo build --release`). Ratios are against
//! baselines measured in the same run.

#[allow(dead_code)] // each bench uses a subset of the shared helpers
mod common;

use common::{Sampler, env_num, proc_status};

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hrag_daemon::ingest::chunking::Chunker;
use hrag_daemon::ingest::pipeline::{Outcome, Pipeline};
use hrag_daemon::ingest::text;
use hrag_daemon::providers::{self, ProviderSettings, Providers};
use hrag_daemon::storage::json::JsonStores;
use hrag_daemon::storage::{Backend, KvNamespace};

/// While more work is queued the supervisor flushes its store after at least this many
/// documents (`supervisor::ingest::BATCH`)…
const FLUSH_BATCH: usize = 32;
/// …once this many times the last flush's duration has passed since it ended
/// (`supervisor::ingest::FLUSH_SPACING`).
const FLUSH_SPACING: u32 = 4;
const MIB: f64 = 1048576.0;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let arg = |k: usize| args.get(i + k).cloned().unwrap_or_default();
        return child(&arg(1), Path::new(&arg(2)), Path::new(&arg(3)));
    }
    let docs = env_num("HRAG_BENCH_DOCS", 2000).max(1) as usize;
    let e2e_docs = (docs / 4).max(1);
    let burst = env_num("HRAG_BENCH_BURST", 10_000).max(4) as usize;
    let budget = Budget::from_env();
    println!(
        "time budget: {}",
        match budget.total {
            Some(b) => format!(
                "{} s for the run (HRAG_BENCH_BUDGET_SECS; 0 = none), a third at most for 1a's \
                 pipeline and for 1b",
                b.as_secs()
            ),
            None => "none".to_owned(),
        }
    );
    let bins = Bins::locate()?;
    let root = tempfile::Builder::new()
        .prefix("hrag-bench-ingest.")
        .tempdir_in(std::env::temp_dir())?;

    let corpus = root.path().join("corpus");
    let gen_stats = write_corpus(&corpus, &generate(docs, 1))?;
    println!(
        "corpus: {} documents, {:.1} MiB (sizes {:.1}–{:.1} KB, mean {:.1} KB); {} people, {} \
         organisations, {} places recur across it",
        gen_stats.files,
        gen_stats.bytes as f64 / MIB,
        gen_stats.min as f64 / 1000.0,
        gen_stats.max as f64 / 1000.0,
        gen_stats.bytes as f64 / gen_stats.files as f64 / 1000.0,
        FIRST.len() * LAST.len(),
        ORG_A.len() * ORG_B.len(),
        PLACES.len()
    );
    println!("all runs on {} CPU(s)", available_cpus());

    in_process(root.path(), &corpus, &gen_stats, &budget)?;
    let e2e = end_to_end(root.path(), &bins, e2e_docs, &budget)?;
    burst_rss(root.path(), &bins, burst, e2e, &budget)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1a. In process

fn in_process(
    root: &Path,
    corpus: &Path,
    stats: &CorpusStats,
    budget: &Budget,
) -> anyhow::Result<()> {
    let kb = root.join("kb-inproc");
    let chunk = run_child("chunk", corpus, &kb, None)?;
    let compute = run_child("compute", corpus, &kb, None)?;
    let hrag = run_child("hrag", corpus, &kb, budget.phase())?;
    let n = stats.files as f64;
    let mb_per_doc = stats.bytes as f64 / 1e6 / n;
    // The pipeline may have stopped at the budget: its rates are over the documents it did.
    let done = hrag.get("docs");
    println!();
    println!(
        "1a. in process, {} documents, built-in providers (hrag-hash-v1 384-dim, hrag-rules-v1)",
        stats.files
    );
    println!(
        "{:<44} {:>7} {:>9} {:>8} {:>10} {:>10}",
        "stage", "docs", "docs/s", "MB/s", "ms/doc", "peak RSS"
    );
    let row = |name: &str, docs: f64, r: &ChildReport| {
        let secs = r.get("secs");
        println!(
            "{:<44} {:>7} {:>9.0} {:>8.2} {:>10.2} {:>6.0} MiB",
            name,
            docs,
            docs / secs,
            docs * mb_per_doc / secs,
            secs * 1000.0 / docs,
            r.get("peak_rss") / MIB
        );
    };
    row("baseline: chunking only", n, &chunk);
    row("baseline: chunk + extract + embed, no store", n, &compute);
    row("hrag: Pipeline::upsert_file + batch flushes", done, &hrag);
    if done < n {
        println!(
            "  NOT finished: the pipeline stopped at the budget after {done} of {n} documents"
        );
    }
    let ms = |secs: f64, docs: f64| secs * 1000.0 / docs;
    let (c_chunk, c_compute) = (ms(chunk.get("secs"), n), ms(compute.get("secs"), n));
    let c_hrag = ms(hrag.get("secs"), done);
    let c_flush = ms(hrag.get("flush_secs"), done);
    println!(
        "where a document's {c_hrag:.2} ms go: chunking {c_chunk:.2} ms, extraction + embedding \
         {:.2} ms, merge into the store (reads, description merge, re-embedding) {:.2} ms, \
         flushes (JSON writes) {c_flush:.2} ms",
        c_compute - c_chunk,
        (c_hrag - c_compute - c_flush).max(0.0),
    );
    println!(
        "  per document: {:.2} chunks, {:.1} entities, {:.1} relations extracted; the store after \
         {done} documents: {} chunks, {} entities, {} relations, {:.1} MiB on disk ({:.1}× those \
         documents' text)",
        compute.get("chunks") / n,
        compute.get("entities") / n,
        compute.get("relations") / n,
        hrag.get("chunk_count"),
        hrag.get("entity_count"),
        hrag.get("relation_count"),
        hrag.get("store_bytes") / MIB,
        hrag.get("store_bytes") / (done * mb_per_doc * 1e6)
    );
    let q: Vec<f64> = (0..=4).map(|i| hrag.get(&format!("q{i}"))).collect();
    let rates: Vec<String> = q
        .windows(2)
        .map(|w| format!("{:.0}", done / 4.0 / (w[1] - w[0])))
        .collect();
    println!(
        "  hrag docs/s by quarter of its documents: {}; {} flushes, {:.0}% of the time, the last \
         one {:.0} ms for {:.1} MiB; entity descriptions in the graph: mean {:.0} B, longest \
         {:.0} B",
        rates.join(", "),
        hrag.get("flushes"),
        100.0 * hrag.get("flush_secs") / hrag.get("secs"),
        hrag.get("flush_last") * 1000.0,
        hrag.get("store_bytes") / MIB,
        hrag.get("desc_mean"),
        hrag.get("desc_max"),
    );
    println!(
        "hrag speed ÷ chunking alone:          {:.3}",
        c_chunk / c_hrag
    );
    println!(
        "hrag speed ÷ chunk+extract+embed:     {:.3}",
        c_compute / c_hrag
    );
    println!(
        "hrag peak RSS ÷ compute's peak RSS:   {:.2}",
        hrag.get("peak_rss") / compute.get("peak_rss")
    );
    println!(
        "target ≥ 50 docs/s in process: {} ({:.0} docs/s over {done} documents; {} over the last \
         quarter)",
        met(1000.0 / c_hrag >= 50.0),
        1000.0 / c_hrag,
        rates.last().map(String::as_str).unwrap_or("?")
    );
    Ok(())
}

/// What a child printed: `key=value` figures.
#[derive(Default)]
struct ChildReport(HashMap<String, f64>);

impl ChildReport {
    fn get(&self, k: &str) -> f64 {
        self.0.get(k).copied().unwrap_or(f64::NAN)
    }
}

/// Runs `--child mode`; `limit` is passed on as `HRAG_BENCH_STAGE_SECS`.
fn run_child(
    mode: &str,
    corpus: &Path,
    kb: &Path,
    limit: Option<Instant>,
) -> anyhow::Result<ChildReport> {
    let secs = limit.map_or(0, |l| {
        l.saturating_duration_since(Instant::now()).as_secs().max(1)
    });
    let out = Command::new(std::env::current_exe()?)
        .args(["--child", mode])
        .arg(corpus)
        .arg(kb)
        .env("HRAG_BENCH_STAGE_SECS", secs.to_string())
        .stdin(Stdio::null())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "child {mode} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = ChildReport::default();
    for kv in text.split_whitespace() {
        if let Some((k, v)) = kv.split_once('=') {
            r.0.insert(k.to_owned(), v.parse()?);
        }
    }
    Ok(r)
}

/// Runs one measured stage in this (fresh) process; prints `key=value` pairs.
fn child(mode: &str, corpus: &Path, kb: &Path) -> anyhow::Result<()> {
    if mode == "gen" {
        // For profiling a stage by hand: `--child gen DIR` then `--child hrag DIR KB`.
        let n = env_num("HRAG_BENCH_DOCS", 2000) as usize;
        write_corpus(corpus, &generate(n, 1))?;
        return Ok(());
    }
    let docs = read_corpus(corpus)?;
    // The tokenizer is built once per process (about 0.3 s), as the daemon does at start.
    let chunker = Chunker::shared()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut out: Vec<(String, f64)> = Vec::new();
    match mode {
        "chunk" => {
            let t = Instant::now();
            let mut chunks = 0usize;
            for (_, content) in &docs {
                let clean = text::sanitize_text(content);
                chunks += chunker.stored_chunks(&clean, None)?.len();
            }
            out.push(("secs".into(), t.elapsed().as_secs_f64()));
            out.push(("chunks".into(), chunks as f64));
        }
        "compute" => {
            // A store only to hand the providers their (unused) LLM cache; never written.
            let scratch = tempfile::tempdir()?;
            let backend = JsonStores::open(scratch.path(), None, None)?.into_backend()?;
            let providers = builtin_providers(&backend)?;
            let (secs, chunks, entities, relations) =
                rt.block_on(compute(&docs, &chunker, &providers))?;
            out.push(("secs".into(), secs));
            out.push(("chunks".into(), chunks as f64));
            out.push(("entities".into(), entities as f64));
            out.push(("relations".into(), relations as f64));
        }
        "hrag" => {
            let _ = std::fs::remove_dir_all(kb);
            out = rt.block_on(pipeline(&docs, kb))?;
        }
        other => anyhow::bail!("unknown mode {other}"),
    }
    out.push((
        "peak_rss".into(),
        proc_status(std::process::id(), "VmHWM:") as f64,
    ));
    let line: Vec<String> = out.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{}", line.join(" "));
    Ok(())
}

/// The built-ins exactly as a registry entry without `model` / `model_config` gets them.
fn builtin_providers(backend: &Backend) -> anyhow::Result<Providers> {
    let p = providers::from_settings(
        &ProviderSettings::default(),
        backend.kv(KvNamespace::LlmResponseCache).clone(),
        &|_| None,
    )?;
    anyhow::ensure!(p.llm.is_none(), "expected the built-in providers");
    Ok(p)
}

/// The pipeline's CPU work without a store: chunks, extraction per chunk, and one embedding
/// call each for the chunks, the entities (`name\ndescription`) and the relations
/// (`keywords\tsrc\ntgt\ndescription`) of the document, as `Pipeline::process` and
/// `merge::merge` make them for entities seen for the first time.
async fn compute(
    docs: &[(String, String)],
    chunker: &Chunker,
    providers: &Providers,
) -> anyhow::Result<(f64, usize, usize, usize)> {
    let t = Instant::now();
    let (mut n_chunks, mut n_ent, mut n_rel) = (0, 0, 0);
    for (rel, content) in docs {
        let clean = text::sanitize_text(content);
        let _hash = text::content_hash(&clean);
        let doc_id = text::doc_id_for_path(rel);
        let chunks = chunker.stored_chunks(&clean, None)?;
        let mut ent: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut rels: std::collections::BTreeMap<(String, String), (String, Vec<String>)> =
            Default::default();
        for c in &chunks {
            let id = text::chunk_id(&doc_id, c.order);
            let ex = providers.extractor.extract(&id, &c.content).await?;
            for e in ex.entities {
                ent.entry(e.name).or_default().push(e.description);
            }
            for r in ex.relations {
                let pair = text::relation_pair(&r.src, &r.tgt);
                let e = rels.entry(pair).or_default();
                e.0 = r.keywords;
                e.1.push(r.description);
            }
        }
        let chunk_texts: Vec<String> = chunks.iter().map(|c| c.content.clone()).collect();
        let ent_texts: Vec<String> = ent
            .iter()
            .map(|(name, d)| format!("{name}\n{}", d.join(text::GRAPH_FIELD_SEP)))
            .collect();
        let rel_texts: Vec<String> = rels
            .iter()
            .map(|((a, b), (k, d))| format!("{k}\t{a}\n{b}\n{}", d.join(text::GRAPH_FIELD_SEP)))
            .collect();
        for texts in [&chunk_texts, &ent_texts, &rel_texts] {
            if !texts.is_empty() {
                std::hint::black_box(providers.embedder.embed(texts).await?);
            }
        }
        n_chunks += chunks.len();
        n_ent += ent.len();
        n_rel += rels.len();
    }
    Ok((t.elapsed().as_secs_f64(), n_chunks, n_ent, n_rel))
}

/// `Pipeline::upsert_file` for every document on a fresh JSON store in `kb`, flushing as the
/// supervisor does ([`FLUSH_BATCH`], [`FLUSH_SPACING`]) and at the end; stops early when the
/// budget is spent.
async fn pipeline(docs: &[(String, String)], kb: &Path) -> anyhow::Result<Vec<(String, f64)>> {
    let backend = Arc::new(JsonStores::open(kb, None, None)?.into_backend()?);
    let providers = builtin_providers(&backend)?;
    let pipeline = Pipeline::new(backend.clone(), providers).await?;
    let budget = match env_num("HRAG_BENCH_STAGE_SECS", 0) {
        0 => None,
        s => Some(Duration::from_secs(s)),
    };
    let t = Instant::now();
    let mut flush = Duration::ZERO;
    let mut flush_last = Duration::ZERO;
    let (mut since_flush, mut flush_ended, mut flushes) = (0usize, Instant::now(), 0u32);
    // Elapsed seconds after each document.
    let mut at: Vec<f64> = Vec::with_capacity(docs.len());
    for (i, (rel, content)) in docs.iter().enumerate() {
        let outcome = pipeline.upsert_file(rel, content).await?;
        anyhow::ensure!(
            matches!(outcome, Outcome::Processed { .. }),
            "{rel}: {outcome:?}"
        );
        let out_of_time = budget.is_some_and(|b| t.elapsed() > b);
        since_flush += 1;
        let batch_due =
            since_flush >= FLUSH_BATCH && flush_ended.elapsed() >= flush_last * FLUSH_SPACING;
        if batch_due || i + 1 == docs.len() || out_of_time {
            let f = Instant::now();
            backend.flush().await?;
            flush_last = f.elapsed();
            flush += flush_last;
            (since_flush, flush_ended, flushes) = (0, Instant::now(), flushes + 1);
        }
        at.push(t.elapsed().as_secs_f64());
        if out_of_time {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let counts = backend.counts().await?;
    anyhow::ensure!(
        counts.doc_count == at.len() as u64,
        "the store holds {} documents, not {}",
        counts.doc_count,
        at.len()
    );
    let (desc_mean, desc_max) = graph_description_sizes(kb)?;
    let mut out: Vec<(String, f64)> = vec![
        ("docs".into(), at.len() as f64),
        ("secs".into(), secs),
        ("flush_secs".into(), flush.as_secs_f64()),
        ("flush_last".into(), flush_last.as_secs_f64()),
        ("flushes".into(), f64::from(flushes)),
        ("chunk_count".into(), counts.chunk_count as f64),
        ("entity_count".into(), counts.entity_count as f64),
        ("relation_count".into(), counts.relation_count as f64),
        ("store_bytes".into(), dir_size(kb) as f64),
        ("desc_mean".into(), desc_mean),
        ("desc_max".into(), desc_max),
        ("q0".into(), 0.0),
    ];
    for q in 1..=4 {
        let i = (at.len() * q / 4).max(1) - 1;
        out.push((format!("q{q}"), at.get(i).copied().unwrap_or(secs)));
    }
    Ok(out)
}

/// Mean and largest entity `description` in the GraphML file, in bytes (escaped as stored).
fn graph_description_sizes(kb: &Path) -> anyhow::Result<(f64, f64)> {
    let xml = std::fs::read_to_string(kb.join("graph_chunk_entity_relation.graphml"))?;
    // The node description key is declared `for="node" attr.name="description"`.
    let key = xml
        .lines()
        .find(|l| l.contains("for=\"node\"") && l.contains("attr.name=\"description\""))
        .and_then(|l| l.split("id=\"").nth(1))
        .and_then(|s| s.split('"').next())
        .unwrap_or("d2")
        .to_owned();
    let open = format!("<data key=\"{key}\">");
    let (mut n, mut total, mut max) = (0usize, 0usize, 0usize);
    let mut rest = xml.as_str();
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let len = rest.find("</data>").unwrap_or(0);
        n += 1;
        total += len;
        max = max.max(len);
        rest = &rest[len..];
    }
    Ok((total as f64 / n.max(1) as f64, max as f64))
}

// ---------------------------------------------------------------------------------------------
// 1b. End to end

struct E2e {
    docs_per_sec: f64,
}

fn end_to_end(root: &Path, bins: &Bins, n: usize, budget: &Budget) -> anyhow::Result<E2e> {
    let files = generate(n, 2);
    let bytes: usize = files.iter().map(|(_, c)| c.len()).sum();
    let mut d = Daemon::start(bins, &root.join("e2e"))?;
    d.wait_state("idle", Duration::from_secs(60))?;
    let t = Instant::now();
    write_files(&d.src, &files)?;
    let written = t.elapsed().as_secs_f64();
    let wait = d.wait_docs(n as u64, t, budget.phase(), |_, _| {})?;
    let log = d.log_text();
    let (first, last, processed) = processed_span(&log);
    let failed = log.matches("\"document_failed\"").count();
    d.stop()?;
    let (docs, secs) = (wait.docs, wait.elapsed.as_secs_f64());
    let rate = docs as f64 / secs;
    println!();
    println!(
        "1b. end to end: hragd watching a folder, {n} files ({:.1} MiB) written into it",
        bytes as f64 / MIB
    );
    if !wait.finished {
        println!("  NOT finished: {docs} of {n} documents stored when the budget ran out");
    }
    println!(
        "files written in {written:.2} s; doc_count = {docs} after {secs:.2} s: {rate:.0} docs/s, \
         {:.2} MB/s (from the first write; includes the watcher's 0.5 s debounce and the last \
         flush)",
        rate * bytes as f64 / n as f64 / 1e6
    );
    if processed > 1 && last > first {
        println!(
            "hragd's log: {processed} document_processed events over {:.2} s (first → last): \
             {:.0} docs/s while processing; {failed} document_failed",
            last - first,
            (processed - 1) as f64 / (last - first)
        );
    }
    println!(
        "target ≥ 50 docs/s end to end: {} ({rate:.0} docs/s)",
        met(wait.finished && rate >= 50.0)
    );
    Ok(E2e { docs_per_sec: rate })
}

/// Seconds (since the epoch) of the first and last `document_processed` event, and how many.
fn processed_span(log: &str) -> (f64, f64, usize) {
    let mut times = Vec::new();
    for line in log.lines() {
        if !line.contains("\"document_processed\"") {
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(ts) = v.get("timestamp").and_then(|t| t.as_str())
            && let Ok(t) = humantime::parse_rfc3339_weak(ts)
            && let Ok(d) = t.duration_since(std::time::UNIX_EPOCH)
        {
            times.push(d.as_secs_f64());
        }
    }
    let first = times.iter().copied().fold(f64::INFINITY, f64::min);
    let last = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (first, last, times.len())
}

// ---------------------------------------------------------------------------------------------
// 2. Peak RSS under a burst

/// The daemon's memory when `backend status` showed `docs` documents stored.
struct Milestone {
    docs: u64,
    secs: f64,
    store_bytes: u64,
    hwm: u64,
    rss: u64,
}

fn burst_rss(root: &Path, bins: &Bins, n: usize, e2e: E2e, budget: &Budget) -> anyhow::Result<()> {
    let files = generate(n, 3);
    let bytes: usize = files.iter().map(|(_, c)| c.len()).sum();
    let dir = root.join("burst");
    let mut d = Daemon::start(bins, &dir)?;
    d.wait_state("idle", Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = proc_status(d.pid(), "VmRSS:");
    let idle_hwm = proc_status(d.pid(), "VmHWM:");
    let sampler = Sampler::start(d.pid(), Duration::from_millis(20));
    let t = Instant::now();
    write_files(&d.src, &files)?;
    let written = t.elapsed().as_secs_f64();
    let mut milestones: Vec<Milestone> = Vec::new();
    let pid = d.pid();
    let mut last = None;
    let wait = d.wait_docs(n as u64, t, budget.end, |docs, store_bytes| {
        let m = || Milestone {
            docs,
            secs: t.elapsed().as_secs_f64(),
            store_bytes,
            hwm: proc_status(pid, "VmHWM:"),
            rss: proc_status(pid, "VmRSS:"),
        };
        while milestones.len() < 10 && docs >= (milestones.len() as u64 + 1) * n as u64 / 10 {
            milestones.push(m());
        }
        last = Some(m());
    })?;
    // Where the run stopped, when that is not a tenth already listed.
    if let Some(l) = last
        && milestones.last().is_none_or(|m| m.docs < l.docs)
    {
        milestones.push(l);
    }
    // Paused before stopping (the pause flushes), so that the daemon reopening the store below
    // does no work; what was stored by then is what the figures below are about.
    d.ctl_json(&["pause", "bench"])?;
    let (docs, _) = d.backend_status()?;
    let max_rss = sampler.stop();
    let peak = proc_status(d.pid(), "VmHWM:").max(max_rss);
    let log = d.log_text();
    let overflow = log.contains("overflow");
    let failed = log.matches("\"document_failed\"").count();
    d.stop()?;
    let store_bytes = dir_size(&d.kb);

    // The same store, reopened by a fresh daemon and left idle: what holding it costs.
    let mut again = Daemon::restart(bins, &dir)?;
    again.wait_state("paused", Duration::from_secs(300))?;
    let (docs_again, _) = again.backend_status()?;
    std::thread::sleep(Duration::from_millis(1000));
    let rest_rss = proc_status(again.pid(), "VmRSS:");
    let rest_hwm = proc_status(again.pid(), "VmHWM:");
    again.stop()?;

    let secs = wait.elapsed.as_secs_f64();
    println!();
    println!(
        "2. burst: {n} files ({:.1} MiB, written in {written:.2} s) into the watched folder of a \
         fresh hragd",
        bytes as f64 / MIB,
    );
    println!(
        "hragd idle after start (empty store): VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        idle_rss as f64 / MIB,
        idle_hwm as f64 / MIB
    );
    println!(
        "{:>8} {:>8} {:>9} {:>8} {:>14} {:>11} {:>11} {:>12}",
        "stored", "queued", "elapsed", "docs/s", "store on disk", "VmHWM", "VmRSS", "HWM ÷ store"
    );
    let mut prev: Option<&Milestone> = None;
    for m in &milestones {
        let (d0, s0) = prev.map_or((0, 0.0), |p| (p.docs, p.secs));
        println!(
            "{:>8} {:>8} {:>8.1}s {:>8.1} {:>10.1} MiB {:>7.1} MiB {:>7.1} MiB {:>12.2}",
            m.docs,
            n as u64 - m.docs.min(n as u64),
            m.secs,
            (m.docs - d0) as f64 / (m.secs - s0),
            m.store_bytes as f64 / MIB,
            m.hwm as f64 / MIB,
            m.rss as f64 / MIB,
            m.hwm as f64 / m.store_bytes.max(1) as f64
        );
        prev = Some(m);
    }
    if wait.finished {
        println!(
            "all {n} stored after {secs:.1} s: {:.1} docs/s ({:.2}× the 1b rate of {:.0} docs/s); \
             {failed} document_failed{}",
            n as f64 / secs,
            (n as f64 / secs) / e2e.docs_per_sec,
            e2e.docs_per_sec,
            if overflow {
                "; the inotify queue overflowed and a reconcile scan caught up"
            } else {
                ""
            }
        );
    } else {
        println!(
            "NOT finished: {} of {n} stored when the budget ran out after {secs:.1} s \
             ({:.1} docs/s); paused there ({docs} stored by then): the figures below are at that \
             point",
            wait.docs,
            wait.docs as f64 / secs
        );
    }
    let done_bytes = bytes as f64 * docs as f64 / n as f64;
    println!(
        "peak RSS while ingesting: {:.1} MiB; store on disk {:.1} MiB; the {docs} documents' text \
         {:.1} MiB",
        peak as f64 / MIB,
        store_bytes as f64 / MIB,
        done_bytes / MIB
    );
    println!(
        "same store reopened by a fresh hragd ({docs_again} documents; paused, the rest queued), \
         idle: \
         VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        rest_rss as f64 / MIB,
        rest_hwm as f64 / MIB
    );
    println!(
        "peak RSS ÷ idle RSS after start:             {:.2}",
        peak as f64 / idle_rss as f64
    );
    println!(
        "peak RSS ÷ corpus size (whole burst):        {:.2}",
        peak as f64 / bytes as f64
    );
    println!(
        "peak RSS ÷ text of the documents stored:     {:.2}",
        peak as f64 / done_bytes
    );
    println!(
        "peak RSS ÷ store on disk:                    {:.2}",
        peak as f64 / store_bytes as f64
    );
    println!(
        "peak RSS ÷ RSS of the same store at rest:    {:.2} (what ingesting adds: {:.1} MiB)",
        peak as f64 / rest_rss as f64,
        (peak as f64 - rest_rss as f64) / MIB
    );
    if let (Some(a), Some(b)) = (milestones.first(), milestones.last())
        && b.store_bytes > a.store_bytes
    {
        println!(
            "from {} to {} stored documents ({} then {} queued): VmHWM +{:.1} MiB for +{:.1} MiB \
             of store on disk ({:.2} MiB of peak per MiB of store)",
            a.docs,
            b.docs,
            n as u64 - a.docs.min(n as u64),
            n as u64 - b.docs.min(n as u64),
            (b.hwm as f64 - a.hwm as f64) / MIB,
            (b.store_bytes as f64 - a.store_bytes as f64) / MIB,
            (b.hwm as f64 - a.hwm as f64) / (b.store_bytes as f64 - a.store_bytes as f64),
        );
        // The line through both points, at an empty store: what does not grow with the store
        // (the daemon itself, and whatever the queued backlog costs at the first point).
        let slope = (b.hwm as f64 - a.hwm as f64) / (b.store_bytes as f64 - a.store_bytes as f64);
        let at_zero = a.hwm as f64 - slope * a.store_bytes as f64;
        println!(
            "that line at an empty store: {:.1} MiB, idle RSS after start {:.1} MiB: what does not \
             scale with the store, the {} files queued at the first point included, is about the \
             difference ({:+.1} MiB)",
            at_zero / MIB,
            idle_rss as f64 / MIB,
            n as u64 - a.docs.min(n as u64),
            (at_zero - idle_rss as f64) / MIB,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The real daemon

struct Bins {
    hragd: PathBuf,
    hragctl: PathBuf,
}

impl Bins {
    /// `hragd` as cargo built it for this bench; `hragctl` next to it.
    fn locate() -> anyhow::Result<Bins> {
        let hragd = PathBuf::from(env!("CARGO_BIN_EXE_hragd"));
        let hragctl = hragd.with_file_name("hragctl");
        for b in [&hragd, &hragctl] {
            anyhow::ensure!(
                b.is_file(),
                "{} is missing: build the binaries first (`cargo build --release`)",
                b.display()
            );
        }
        Ok(Bins { hragd, hragctl })
    }
}

/// How far `Daemon::wait_docs` got.
struct Wait {
    docs: u64,
    elapsed: Duration,
    finished: bool,
}

/// A `hragd` in its own directory (registry, socket, state, log) watching `<dir>/src` into the
/// JSON store `<dir>/kb` with the built-in providers.
struct Daemon {
    child: Option<Child>,
    ctl: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    src: PathBuf,
    kb: PathBuf,
}

impl Daemon {
    fn start(bins: &Bins, dir: &Path) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(dir.join("src"))?;
        let registry = format!(
            "version: 1\ndatabases:\n  bench:\n    name: bench\n    path: {kb}\n    \
             source_folder: {src}\n    source_type: filesystem\n    auto_watch: true\n    \
             watch_interval: 300\n    recursive: true\n    backend_type: json\n",
            kb = dir.join("kb").display(),
            src = dir.join("src").display()
        );
        std::fs::write(dir.join("registry.yaml"), registry)?;
        Daemon::restart(bins, dir)
    }

    /// Starts hragd on an existing directory and waits until its socket answers.
    fn restart(bins: &Bins, dir: &Path) -> anyhow::Result<Daemon> {
        let log = dir.join("hragd.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(&bins.hragd)
            .arg("--registry")
            .arg(dir.join("registry.yaml"))
            .arg("--socket")
            .arg(dir.join("d.sock"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--log-format", "json"])
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let mut d = Daemon {
            child: Some(child),
            ctl: bins.hragctl.clone(),
            socket: dir.join("d.sock"),
            log,
            src: dir.join("src"),
            kb: dir.join("kb"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if d.socket.exists() && d.ctl_json(&["status"]).is_ok() {
                return Ok(d);
            }
            if let Some(c) = d.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                anyhow::bail!("hragd exited early ({status}); log:\n{}", d.log_text());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "hragd did not come up; log:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn ctl_json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let out = Command::new(&self.ctl)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--json")
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "hragctl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// `backend status bench`: (doc_count, total_size_bytes).
    fn backend_status(&self) -> anyhow::Result<(u64, u64)> {
        let v = self.ctl_json(&["backend", "status", "bench"])?;
        let r = v.as_array().and_then(|a| a.first()).unwrap_or(&v);
        let m = &r["metrics"];
        Ok((
            m["doc_count"].as_u64().unwrap_or(0),
            m["total_size_bytes"].as_u64().unwrap_or(0),
        ))
    }

    /// Waits until database `bench` is in `want` (`idle`, `paused`).
    fn wait_state(&mut self, want: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.ctl_json(&["status"])?;
            let state = s["databases"]
                .as_array()
                .and_then(|a| a.iter().find(|d| d["name"] == "bench"))
                .and_then(|d| d["state"].as_str())
                .unwrap_or("")
                .to_owned();
            if state == want {
                return Ok(());
            }
            anyhow::ensure!(
                state != "error" && Instant::now() < deadline,
                "database bench is '{state}', not {want}; status: {s}\nlog:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `backend status` until doc_count reaches `n` or `limit` passes; calls
    /// `tick(doc_count, store_bytes)` at each poll; times from `since`. Fails when nothing
    /// progresses for two minutes.
    fn wait_docs(
        &mut self,
        n: u64,
        since: Instant,
        limit: Option<Instant>,
        mut tick: impl FnMut(u64, u64),
    ) -> anyhow::Result<Wait> {
        let (mut last, mut moved) = (0u64, Instant::now());
        let mut report = Instant::now();
        loop {
            let (docs, size) = self.backend_status()?;
            tick(docs, size);
            let out_of_time = limit.is_some_and(|l| Instant::now() > l);
            if docs >= n || out_of_time {
                return Ok(Wait {
                    docs,
                    elapsed: since.elapsed(),
                    finished: docs >= n,
                });
            }
            if docs != last {
                (last, moved) = (docs, Instant::now());
            }
            if report.elapsed() > Duration::from_secs(15) {
                eprintln!(
                    "  … {docs}/{n} documents after {:.0} s",
                    since.elapsed().as_secs_f64()
                );
                report = Instant::now();
            }
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                anyhow::bail!("hragd exited ({status}); log:\n{}", self.log_text());
            }
            anyhow::ensure!(
                moved.elapsed() < Duration::from_secs(120),
                "no progress for two minutes at {docs}/{n} documents; log: {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then wait for the drain.
    fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = c.kill();
                anyhow::bail!("hragd did not stop within 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Corpus

const FIRST: [&str; 12] = [
    "Ada", "Bruno", "Chen", "Dalia", "Emil", "Farah", "Goran", "Hana", "Ivan", "Julia", "Kofi",
    "Lena",
];
const LAST: [&str; 12] = [
    "Varga",
    "Castell",
    "Okafor",
    "Osei",
    "Navarro",
    "Quist",
    "Ilic",
    "Sato",
    "Petrov",
    "Moreau",
    "Mensah",
    "Lindqvist",
];
const ORG_A: [&str; 8] = [
    "Nordwind",
    "Pellucid",
    "Harbor",
    "Quillon",
    "Tessera",
    "Arcadia",
    "Brightline",
    "Corvid",
];
const ORG_B: [&str; 6] = [
    "Labs",
    "Systems",
    "Institute",
    "Bank",
    "Group",
    "Foundation",
];
const PLACES: [&str; 16] = [
    "Velmora",
    "Ostrava",
    "Lisbon",
    "Tromso",
    "Kyoto",
    "Valparaiso",
    "Zurich",
    "Accra",
    "Tallinn",
    "Porto",
    "Quito",
    "Hobart",
    "Bergen",
    "Dakar",
    "Gdansk",
    "Malmo",
];
const WORDS: [&str; 24] = [
    "quartz", "amber", "cobalt", "saffron", "ivory", "obsidian", "jade", "crimson", "silver",
    "teal", "ledger", "harbor", "signal", "orchard", "meadow", "storage", "latency", "graph",
    "archive", "survey", "budget", "sensor", "cluster", "report",
];

/// xorshift64*: fast deterministic text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
    fn person(&mut self) -> String {
        format!("{} {}", self.pick(&FIRST), self.pick(&LAST))
    }
    fn org(&mut self) -> String {
        format!("{} {}", self.pick(&ORG_A), self.pick(&ORG_B))
    }
}

/// `n` field notes of 1–5 KB (`seed` keeps the corpora of the three parts distinct).
fn generate(n: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
    (0..n)
        .map(|k| {
            // 1–5 KB: the last sentence may overshoot the target by up to ~150 bytes.
            let target = 1000 + rng.below(3850);
            let (p, q, o, l) = (rng.person(), rng.person(), rng.org(), rng.pick(&PLACES));
            let mut s = format!("# Field note {k}\n\n");
            while s.len() < target {
                let w = rng.pick(&WORDS);
                let sentence = match rng.below(8) {
                    0 => format!("{p} met {q} at {o} in {l} to review the {w} archive."),
                    1 => format!("{q} later wrote that {o} would fund the {w} survey with {p}."),
                    2 => format!("The {w} beacon of {l} is {k}. Its codeword is zx{k:05}q."),
                    3 => format!(
                        "According to {}, the {w} budget of {} grew by {} percent.",
                        rng.person(),
                        rng.org(),
                        rng.below(90) + 2
                    ),
                    4 => format!("{p} flew from {l} to {} for {o}.", rng.pick(&PLACES)),
                    _ => {
                        let words = 8 + rng.below(14);
                        let mut f = String::from("the");
                        for _ in 0..words {
                            f.push(' ');
                            f.push_str(rng.pick(&WORDS));
                        }
                        f.push('.');
                        let mut c = f.chars();
                        match c.next() {
                            Some(first) => first.to_uppercase().chain(c).collect(),
                            None => f,
                        }
                    }
                };
                s.push_str(&sentence);
                s.push(if rng.below(4) == 0 { '\n' } else { ' ' });
                if rng.below(6) == 0 {
                    s.push('\n');
                }
            }
            s.truncate(s.trim_end().len());
            s.push('\n');
            (format!("note-{k:05}.md"), s)
        })
        .collect()
}

struct CorpusStats {
    files: usize,
    bytes: u64,
    min: u64,
    max: u64,
}

fn write_corpus(dir: &Path, files: &[(String, String)]) -> anyhow::Result<CorpusStats> {
    write_files(dir, files)?;
    let sizes: Vec<u64> = files.iter().map(|(_, c)| c.len() as u64).collect();
    Ok(CorpusStats {
        files: files.len(),
        bytes: sizes.iter().sum(),
        min: sizes.iter().copied().min().unwrap_or(0),
        max: sizes.iter().copied().max().unwrap_or(0),
    })
}

fn write_files(dir: &Path, files: &[(String, String)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, content) in files {
        let mut f = std::fs::File::create(dir.join(name))?;
        f.write_all(content.as_bytes())?;
    }
    Ok(())
}

/// The corpus as (document path, content), in name order.
fn read_corpus(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| Ok((n.clone(), std::fs::read_to_string(dir.join(&n))?)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// The run's time budget (`HRAG_BENCH_BUDGET_SECS`, default 270 s; 0: none), from its start.
struct Budget {
    total: Option<Duration>,
    end: Option<Instant>,
}

impl Budget {
    fn from_env() -> Budget {
        let total = match env_num("HRAG_BENCH_BUDGET_SECS", 270) {
            0 => None,
            s => Some(Duration::from_secs(s)),
        };
        Budget {
            total,
            end: total.map(|t| Instant::now() + t),
        }
    }

    /// When a stage starting now must stop: after a third of the budget, or at its end.
    fn phase(&self) -> Option<Instant> {
        let (total, end) = (self.total?, self.end?);
        Some((Instant::now() + total / 3).min(end))
    }
}
