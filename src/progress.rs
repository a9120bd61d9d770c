//! Progress on stderr: indicatif bars on a terminal, a log line every few seconds otherwise, nothing
//! under `--quiet`. The scan only bumps atomic counters; a ticker task does the drawing, so progress
//! costs the hot path one relaxed add per document.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Bars,
    Log,
    Off,
}

impl ProgressMode {
    pub fn detect(quiet: bool) -> ProgressMode {
        if quiet {
            ProgressMode::Off
        } else if std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb") {
            ProgressMode::Bars
        } else {
            ProgressMode::Log
        }
    }
}

/// What the run has done so far.
#[derive(Debug, Default)]
pub struct Counters {
    pub source_rows: AtomicU64,
    pub target_docs: AtomicU64,
    pub drifted: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.source_rows.load(Ordering::Relaxed),
            self.target_docs.load(Ordering::Relaxed),
            self.drifted.load(Ordering::Relaxed),
        )
    }
}

pub struct Progress {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// Starts drawing. `labels` name the two sides; `estimates` size the bars.
    pub fn start(
        mode: ProgressMode,
        labels: (String, String),
        estimates: (Option<u64>, Option<u64>),
        counters: Arc<Counters>,
    ) -> Progress {
        if mode == ProgressMode::Off {
            return Progress { stop: None, task: None };
        }
        let (tx, mut rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            match mode {
                ProgressMode::Bars => {
                    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
                    let bars = [bar(&multi, &labels.0, estimates.0), bar(&multi, &labels.1, estimates.1)];
                    let mut tick = tokio::time::interval(Duration::from_millis(100));
                    loop {
                        let (rows, docs, drifted) = counters.snapshot();
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        bars[0].set_position(rows);
                        bars[0].set_message(format!("{:.0}/s", rows as f64 / secs));
                        bars[1].set_position(docs);
                        bars[1].set_message(format!("{:.0}/s, drift so far: {drifted}", docs as f64 / secs));
                        tokio::select! {
                            _ = tick.tick() => {}
                            _ = &mut rx => break,
                        }
                    }
                    for b in &bars {
                        b.finish_and_clear();
                    }
                }
                ProgressMode::Log => {
                    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + LOG_EVERY, LOG_EVERY);
                    loop {
                        tokio::select! {
                            _ = tick.tick() => {
                                let (rows, docs, drifted) = counters.snapshot();
                                let secs = started.elapsed().as_secs_f64().max(0.001);
                                eprintln!(
                                    "recon: {rows} {} rows, {docs} {} docs read ({:.0} rows/s), {drifted} drifted so far",
                                    labels.0, labels.1, rows.max(docs) as f64 / secs
                                );
                            }
                            _ = &mut rx => break,
                        }
                    }
                }
                ProgressMode::Off => {}
            }
        });
        Progress {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops drawing and clears the bars before the report is printed.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn bar(multi: &MultiProgress, label: &str, estimate: Option<u64>) -> ProgressBar {
    let bar = match estimate {
        Some(n) => multi.add(ProgressBar::new(n)),
        None => multi.add(ProgressBar::new_spinner()),
    };
    let template = if estimate.is_some() {
        "{prefix:>14} {bar:30} {human_pos}/~{human_len} ETA {eta} {msg}"
    } else {
        "{prefix:>14} {spinner} {human_pos} {msg}"
    };
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar.set_prefix(label.to_string());
    bar
}
