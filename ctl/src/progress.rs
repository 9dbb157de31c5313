//! Progress of long jobs (migration, export): a bar with rate and ETA on a terminal, a line
//! per phase (and every few seconds while copying) otherwise, JSON lines with `--json`.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use hrag_proto::{JobPhase, ProgressEvent};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const LINE_EVERY: Duration = Duration::from_secs(3);

pub struct Progress {
    json: bool,
    bar: Option<ProgressBar>,
    phase: Option<JobPhase>,
    last_line: Option<Instant>,
}

impl Progress {
    pub fn new(json: bool) -> Progress {
        Progress {
            json,
            bar: None,
            phase: None,
            last_line: None,
        }
    }

    fn bar(&mut self, total: u64) -> &ProgressBar {
        self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg:30} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        })
    }

    pub fn on(&mut self, p: &ProgressEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(&serde_json::json!({ "progress": p })) {
                println!("{line}");
            }
            return;
        }
        let what = format!(
            "{} {}{}",
            p.db,
            phase_name(p.phase),
            p.store
                .as_deref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default()
        );
        if std::io::stderr().is_terminal() {
            if let Some(m) = &p.message {
                match &self.bar {
                    Some(b) => b.println(format!("{}: {m}", p.db)),
                    None => eprintln!("{}: {m}", p.db),
                }
            }
            if let Some(total) = p.bytes_total {
                let bar = self.bar(total);
                bar.set_length(total);
                bar.set_position(p.bytes_done);
                bar.set_message(format!("{what} {} rec", p.records_done));
            }
            return;
        }
        let changed = self.phase != Some(p.phase);
        let due = self.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY);
        if let Some(m) = &p.message {
            eprintln!("{}: {m}", p.db);
        } else if changed || due {
            let pct = p
                .bytes_total
                .filter(|t| *t > 0)
                .map(|t| format!(" ({:.0}%)", p.bytes_done as f64 * 100.0 / t as f64))
                .unwrap_or_default();
            eprintln!("{what}: {} records{pct}", p.records_done);
        } else {
            return;
        }
        self.phase = Some(p.phase);
        self.last_line = Some(Instant::now());
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

fn phase_name(p: JobPhase) -> &'static str {
    match p {
        JobPhase::Planning => "planning",
        JobPhase::Pausing => "pausing",
        JobPhase::Copying => "copying",
        JobPhase::Verifying => "verifying",
        JobPhase::Switching => "switching",
        JobPhase::Indexing => "indexing",
        JobPhase::Done => "done",
        JobPhase::Failed => "failed",
        JobPhase::Interrupted => "interrupted",
    }
}
