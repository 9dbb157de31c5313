//! Benchmark: loading a LightRAG JSON working directory.
//!
//!     cargo bench -p hrag-daemon --bench json_load            # 1 GiB, 1024-dim vectors
//!     HRAG_BENCH_MB=256 HRAG_BENCH_DIM=768 cargo bench -p hrag-daemon --bench json_load
//!
//! Generates a directory of about `HRAG_BENCH_MB` MiB in LightRAG's format (its own simple
//! writer, independent of hrag's), then measures, each in a fresh child process so that peak
//! RSS belongs to that one load:
//!   * baseline `read`: reading every file's bytes (the ceiling for any loader);
//!   * baseline `serde_json::Value`: parsing every file into a generic JSON tree (what a naive
//!     loader, and LightRAG's `json.load`, does);
//!   * `hrag`: `JsonStores::open`, the JSON backend's load.
//!
//! It prints MB/s, peak RSS ÷ on-disk size, and hrag's ratios to both baselines. PRODUCT §11's
//! targets: ≥ 200 MB/s, peak RSS ≤ 1.5× the files' size.

#[allow(dead_code)] // each bench uses a subset of the shared helpers
mod common;

use common::env_num;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let mode = args.get(i + 1).map(String::as_str).unwrap_or("");
        let dir = PathBuf::from(args.get(i + 2).map(String::as_str).unwrap_or("."));
        return child(mode, &dir);
    }
    let mb: u64 = env_num("HRAG_BENCH_MB", 1024);
    let dim: usize = env_num("HRAG_BENCH_DIM", 1024) as usize;
    let root = tempfile::Builder::new()
        .prefix("hrag-bench.")
        .tempdir_in(std::env::temp_dir())?;
    let dir = root.path().join("kb");
    let t = Instant::now();
    generate(&dir, mb << 20, dim)?;
    let size = dir_size(&dir)?;
    println!(
        "generated {:.0} MiB of LightRAG JSON ({dim}-dim vectors) in {:.1}s at {}",
        size as f64 / 1048576.0,
        t.elapsed().as_secs_f64(),
        dir.display()
    );
    // Warm the page cache so every run reads from memory alike.
    run_child("read", &dir)?;
    let read = run_child("read", &dir)?;
    let value = run_child("serde-value", &dir)?;
    let hrag = run_child("hrag", &dir)?;
    let mbs = |secs: f64| size as f64 / 1048576.0 / secs;
    println!();
    println!(
        "{:<22} {:>10} {:>12} {:>14}",
        "load", "MB/s", "peak RSS", "RSS ÷ size"
    );
    for (name, r) in [
        ("baseline read", &read),
        ("baseline serde Value", &value),
        ("hrag JsonStores::open", &hrag),
    ] {
        println!(
            "{:<22} {:>10.0} {:>9.0} MiB {:>14.2}",
            name,
            mbs(r.secs),
            r.peak_rss as f64 / 1048576.0,
            r.peak_rss as f64 / size as f64
        );
    }
    println!();
    println!(
        "hrag load speed ÷ raw read:        {:.2}",
        read.secs / hrag.secs
    );
    println!(
        "hrag load speed ÷ serde Value:     {:.2}",
        value.secs / hrag.secs
    );
    println!(
        "hrag peak RSS ÷ serde Value's:     {:.2}",
        hrag.peak_rss as f64 / value.peak_rss as f64
    );
    println!(
        "targets: ≥ 200 MB/s ({}), RSS ≤ 1.5× size ({})",
        if mbs(hrag.secs) >= 200.0 {
            "met"
        } else {
            "NOT met"
        },
        if (hrag.peak_rss as f64) <= 1.5 * size as f64 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

struct Run {
    secs: f64,
    peak_rss: u64,
}

fn run_child(mode: &str, dir: &Path) -> anyhow::Result<Run> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--child", mode])
        .arg(dir)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "child {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let secs: f64 = parts.next().unwrap_or("0").parse()?;
    let peak_rss: u64 = parts.next().unwrap_or("0").parse()?;
    Ok(Run { secs, peak_rss })
}

/// Runs one load in this (fresh) process; prints seconds and peak RSS bytes.
fn child(mode: &str, dir: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    match mode {
        "read" => {
            let mut total = 0usize;
            for f in files(dir)? {
                total += std::fs::read(f)?.len();
            }
            std::hint::black_box(total);
        }
        "serde-value" => {
            let mut kept = Vec::new();
            for f in files(dir)? {
                if f.extension().is_some_and(|e| e == "json") {
                    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f)?)?;
                    kept.push(v);
                }
            }
            std::hint::black_box(&kept);
        }
        "hrag" => {
            let stores = hrag_daemon::storage::json::JsonStores::open(dir, None, None)?;
            std::hint::black_box(&stores);
        }
        other => anyhow::bail!("unknown mode {other}"),
    }
    let secs = t.elapsed().as_secs_f64();
    println!("{secs} {}", peak_rss());
    Ok(())
}

fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    Ok(v)
}

fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    Ok(files(dir)?
        .iter()
        .map(|f| f.metadata().map(|m| m.len()).unwrap_or(0))
        .sum())
}

/// xorshift64*: fast deterministic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
    fn word(&mut self) -> &'static str {
        const WORDS: [&str; 16] = [
            "ledger", "aurora", "summit", "harbor", "quantum", "meadow", "cobalt", "signal",
            "archive", "lantern", "vector", "granite", "orchard", "beacon", "cipher", "delta",
        ];
        WORDS[(self.next() % 16) as usize]
    }
    fn sentence(&mut self, words: usize) -> String {
        let mut s = String::with_capacity(words * 8);
        for i in 0..words {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(self.word());
        }
        s.push('.');
        s
    }
}

/// One vdb file being written: rows to `data` now, the matrix to a side file, joined at the end.
struct VdbWriter {
    path: PathBuf,
    data: BufWriter<std::fs::File>,
    matrix: Vec<u8>,
    rows: usize,
    dim: usize,
}

impl VdbWriter {
    fn new(path: PathBuf, dim: usize) -> anyhow::Result<VdbWriter> {
        let mut data = BufWriter::new(std::fs::File::create(path.with_extension("data"))?);
        write!(data, "{{\"embedding_dim\": {dim}, \"data\": [")?;
        Ok(VdbWriter {
            path,
            data,
            matrix: Vec::new(),
            rows: 0,
            dim,
        })
    }

    fn row(&mut self, rng: &mut Rng, id: &str, meta: &str) -> anyhow::Result<()> {
        let raw: Vec<f32> = (0..self.dim).map(|_| rng.unit()).collect();
        let norm = raw
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        for x in &raw {
            self.matrix.extend_from_slice(&(x / norm).to_le_bytes());
        }
        let f16: Vec<u8> = raw
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&f16)?;
        let vector = B64.encode(z.finish()?);
        if self.rows > 0 {
            self.data.write_all(b", ")?;
        }
        write!(
            self.data,
            "{{\"__id__\": \"{id}\", \"__created_at__\": 1735689600, {meta}, \"vector\": \"{vector}\"}}"
        )?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.data.write_all(b"], \"matrix\": \"")?;
        // Encode in 3-byte-aligned pieces so no giant string is built.
        for piece in self.matrix.chunks(3 << 16) {
            self.data.write_all(B64.encode(piece).as_bytes())?;
        }
        self.data.write_all(b"\"}")?;
        self.data.flush()?;
        drop(self.data);
        std::fs::rename(self.path.with_extension("data"), &self.path)?;
        Ok(())
    }
}

/// A pretty (indent=2) KV file being written record by record.
struct KvWriter {
    out: BufWriter<std::fs::File>,
    n: usize,
}

impl KvWriter {
    fn new(path: &Path) -> anyhow::Result<KvWriter> {
        let mut out = BufWriter::new(std::fs::File::create(path)?);
        out.write_all(b"{")?;
        Ok(KvWriter { out, n: 0 })
    }
    fn record(&mut self, id: &str, body: &str) -> anyhow::Result<()> {
        let sep = if self.n == 0 { "\n" } else { ",\n" };
        write!(self.out, "{sep}  \"{id}\": {{\n{body}\n  }}")?;
        self.n += 1;
        Ok(())
    }
    fn finish(mut self) -> anyhow::Result<()> {
        self.out
            .write_all(if self.n == 0 { b"}" } else { b"\n}" })?;
        self.out.flush()?;
        Ok(())
    }
}

fn generate(dir: &Path, target: u64, dim: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut docs = KvWriter::new(&dir.join("kv_store_full_docs.json"))?;
    let mut chunks = KvWriter::new(&dir.join("kv_store_text_chunks.json"))?;
    let mut status = KvWriter::new(&dir.join("kv_store_doc_status.json"))?;
    let mut cache = KvWriter::new(&dir.join("kv_store_llm_response_cache.json"))?;
    let mut ent_chunks = KvWriter::new(&dir.join("kv_store_entity_chunks.json"))?;
    let mut rel_chunks = KvWriter::new(&dir.join("kv_store_relation_chunks.json"))?;
    let mut full_ents = KvWriter::new(&dir.join("kv_store_full_entities.json"))?;
    let mut full_rels = KvWriter::new(&dir.join("kv_store_full_relations.json"))?;
    let mut vchunks = VdbWriter::new(dir.join("vdb_chunks.json"), dim)?;
    let mut vents = VdbWriter::new(dir.join("vdb_entities.json"), dim)?;
    let mut vrels = VdbWriter::new(dir.join("vdb_relationships.json"), dim)?;
    let mut graph = BufWriter::new(std::fs::File::create(
        dir.join("graph_chunk_entity_relation.graphml"),
    )?);
    graph.write_all(b"<?xml version='1.0' encoding='utf-8'?>\n<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd\">\n  <key id=\"d4\" for=\"edge\" attr.name=\"description\" attr.type=\"string\" />\n  <key id=\"d3\" for=\"edge\" attr.name=\"weight\" attr.type=\"double\" />\n  <key id=\"d2\" for=\"node\" attr.name=\"description\" attr.type=\"string\" />\n  <key id=\"d1\" for=\"node\" attr.name=\"entity_type\" attr.type=\"string\" />\n  <key id=\"d0\" for=\"node\" attr.name=\"entity_id\" attr.type=\"string\" />\n  <graph edgedefault=\"undirected\">\n")?;
    let mut edges: Vec<String> = Vec::new();
    let mut written = 0u64;
    let mut d = 0u64;
    while written < target {
        let doc = format!("doc-{d:032x}");
        let chunk = format!("{doc}-chunk-000");
        let text = (0..25)
            .map(|_| rng.sentence(12))
            .collect::<Vec<_>>()
            .join(" ");
        docs.record(&doc, &format!("    \"content\": \"{text}\",\n    \"file_path\": \"note-{d}.md\",\n    \"create_time\": 1735689600,\n    \"update_time\": 1735689600,\n    \"_id\": \"{doc}\""))?;
        chunks.record(&chunk, &format!("    \"tokens\": 330,\n    \"content\": \"{text}\",\n    \"chunk_order_index\": 0,\n    \"full_doc_id\": \"{doc}\",\n    \"file_path\": \"note-{d}.md\",\n    \"llm_cache_list\": [],\n    \"create_time\": 1735689600,\n    \"update_time\": 1735689600,\n    \"_id\": \"{chunk}\""))?;
        status.record(&doc, &format!("    \"status\": \"processed\",\n    \"chunks_count\": 1,\n    \"chunks_list\": [\n      \"{chunk}\"\n    ],\n    \"content_summary\": \"{}\",\n    \"content_length\": {},\n    \"created_at\": \"2025-01-01T00:00:00+00:00\",\n    \"updated_at\": \"2025-01-01T00:00:00+00:00\",\n    \"file_path\": \"note-{d}.md\",\n    \"track_id\": \"insert_bench\",\n    \"metadata\": {{}}", &text[..200], text.len()))?;
        cache.record(&format!("default:extract:{:032x}", rng.next()), &format!("    \"return\": \"{}\",\n    \"cache_type\": \"extract\",\n    \"chunk_id\": \"{chunk}\",\n    \"original_prompt\": \"{}\",\n    \"queryparam\": null,\n    \"create_time\": 1735689600,\n    \"update_time\": 1735689600,\n    \"_id\": \"x\"", rng.sentence(40), text))?;
        vchunks.row(&mut rng, &chunk, &format!("\"content\": \"{text}\", \"full_doc_id\": \"{doc}\", \"file_path\": \"note-{d}.md\""))?;
        let names: Vec<String> = (0..3).map(|i| format!("Entity {} {}", d, i)).collect();
        for n in &names {
            let desc = rng.sentence(20);
            let id = format!("ent-{:032x}", rng.next());
            vents.row(&mut rng, &id, &format!("\"entity_name\": \"{n}\", \"source_id\": \"{chunk}\", \"content\": \"{n}\\n{desc}\", \"file_path\": \"note-{d}.md\""))?;
            write!(
                graph,
                "    <node id=\"{n}\">\n      <data key=\"d0\">{n}</data>\n      <data key=\"d1\">concept</data>\n      <data key=\"d2\">{desc}</data>\n    </node>\n"
            )?;
            ent_chunks.record(n, &format!("    \"chunk_ids\": [\n      \"{chunk}\"\n    ],\n    \"count\": 1,\n    \"update_time\": 1735689600,\n    \"_id\": \"{n}\""))?;
        }
        full_ents.record(&doc, &format!("    \"entity_names\": [\n      \"{}\",\n      \"{}\",\n      \"{}\"\n    ],\n    \"count\": 3,\n    \"_id\": \"{doc}\"", names[0], names[1], names[2]))?;
        for (a, b) in [(0, 1), (1, 2), (0, 2)] {
            let desc = rng.sentence(16);
            let id = format!("rel-{:032x}", rng.next());
            vrels.row(&mut rng, &id, &format!("\"src_id\": \"{}\", \"tgt_id\": \"{}\", \"source_id\": \"{chunk}\", \"content\": \"related\\t{}\\n{}\\n{desc}\", \"file_path\": \"note-{d}.md\"", names[a], names[b], names[a], names[b]))?;
            edges.push(format!("    <edge source=\"{}\" target=\"{}\">\n      <data key=\"d3\">1.0</data>\n      <data key=\"d4\">{desc}</data>\n    </edge>\n", names[a], names[b]));
            rel_chunks.record(&format!("{}<SEP>{}", names[a], names[b]), &format!("    \"chunk_ids\": [\n      \"{chunk}\"\n    ],\n    \"count\": 1,\n    \"update_time\": 1735689600,\n    \"_id\": \"x\""))?;
        }
        full_rels.record(
            &doc,
            &format!("    \"relation_pairs\": [],\n    \"count\": 3,\n    \"_id\": \"{doc}\""),
        )?;
        d += 1;
        // Rough per-unit size: texts four times, seven vector rows, the graph.
        written += (text.len() * 5 + 7 * (dim * 4 * 4 / 3 + dim * 2 * 4 / 3 + 200) + 1500) as u64;
    }
    for e in &edges {
        graph.write_all(e.as_bytes())?;
    }
    graph.write_all(b"  </graph>\n</graphml>\n")?;
    graph.flush()?;
    for w in [
        docs, chunks, status, cache, ent_chunks, rel_chunks, full_ents, full_rels,
    ] {
        w.finish()?;
    }
    for v in [vchunks, vents, vrels] {
        v.finish()?;
    }
    Ok(())
}
