//! Benchmark: `hragctl --json backend status` across 10 JSON databases, two of them over 1 GiB.
//!
//!     cargo build --release --bins && cargo bench -p hrag-daemon --bench status
//!     HRAG_BENCH_GB=2 cargo bench -p hrag-daemon --bench status    # larger stores
//!
//! Copies the small LightRAG fixture into 10 working directories and grows the LLM cache of
//! two of them past `HRAG_BENCH_GB` GiB with trailing whitespace (still a valid JSON document,
//! written in 8 MiB blocks). Starts the release `hragd` on them and, while the big stores are
//! still loading, runs the release `hragctl`:
//!   * baseline: `hragctl --json status` (one round trip that touches no store);
//!   * `backend status` for all 10 databases.
//!
//! Prints the medians of 15 runs and their ratio. PRODUCT §11's target: ≤ 100 ms, because
//! status never parses a store file (`stat` only).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 15;
const DATABASES: usize = 10;
const BIG: [usize; 2] = [3, 7];
const CACHE: &str = "kv_store_llm_response_cache.json";

fn main() -> anyhow::Result<()> {
    let gib: u64 = std::env::var("HRAG_BENCH_GB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let bins = release_bins()?;
    let root = tempfile::Builder::new()
        .prefix("hrag-bench-status.")
        .tempdir_in(std::env::temp_dir())?;
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lightrag-1.5.7-small");
    let mut registry = String::from("version: 1\ndatabases:\n");
    let t = Instant::now();
    for i in 0..DATABASES {
        let dir = root.path().join(format!("db{i}"));
        copy_dir(&fixture, &dir)?;
        if BIG.contains(&i) {
            pad(&dir.join(CACHE), gib << 30)?;
        }
        registry.push_str(&format!(
            "  db{i}:\n    name: db{i}\n    path: {}\n    backend_type: json\n",
            dir.display()
        ));
    }
    std::fs::write(root.path().join("registry.yaml"), registry)?;
    println!(
        "generated {DATABASES} databases ({} of {gib} GiB+) in {:.1} s",
        BIG.len(),
        t.elapsed().as_secs_f64()
    );
    let socket = root.path().join("d.sock");
    let mut daemon = Daemon(
        Command::new(bins.join("hragd"))
            .arg("--registry")
            .arg(root.path().join("registry.yaml"))
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(root.path().join("state"))
            .arg("--log-level")
            .arg("warn")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let ctl = |args: &[&str]| -> anyhow::Result<Duration> {
        let t = Instant::now();
        let out = Command::new(bins.join("hragctl"))
            .arg("--socket")
            .arg(&socket)
            .arg("--json")
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "hragctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(t.elapsed())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctl(&["status"]).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "hragd did not come up");
        if let Some(s) = daemon.0.try_wait()? {
            anyhow::bail!("hragd exited: {s}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let base = median(
        (0..RUNS)
            .map(|_| ctl(&["status"]))
            .collect::<anyhow::Result<_>>()?,
    );
    let status = median(
        (0..RUNS)
            .map(|_| ctl(&["backend", "status"]))
            .collect::<anyhow::Result<_>>()?,
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "baseline  hragctl status          median {:7.2} ms",
        ms(base)
    );
    println!(
        "hrag      backend status (10 dbs)  median {:7.2} ms  ratio {:.2}x baseline  target <= 100 ms: {}",
        ms(status),
        ms(status) / ms(base),
        if ms(status) <= 100.0 { "met" } else { "MISSED" }
    );
    daemon.stop();
    Ok(())
}

/// Stops hragd even when the bench fails half-way.
struct Daemon(Child);

impl Daemon {
    fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `target/release/`, where `cargo build --release --bins` put hragd and hragctl.
fn release_bins() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow::anyhow!("no target dir"))?
        .to_path_buf();
    for b in ["hragd", "hragctl"] {
        anyhow::ensure!(
            dir.join(b).is_file(),
            "{} is missing: run `cargo build --release --bins` first",
            dir.join(b).display()
        );
    }
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_name() != "COUNTS.json" {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Appends whitespace until the file is over `bytes`: JSON allows it after the document.
fn pad(file: &Path, bytes: u64) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(file)?;
    let block = vec![b' '; 8 << 20];
    let mut len = f.metadata()?.len();
    while len <= bytes {
        f.write_all(&block)?;
        len += block.len() as u64;
    }
    f.write_all(b"\n")?;
    Ok(())
}
