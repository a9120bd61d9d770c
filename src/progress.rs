//! Progress on stderr: indicatif bars on a terminal, a log line every few seconds otherwise, nothing
//! under `--quiet`. The scan only bumps atomic counters; a ticker task does the drawing, so progress
//! costs the hot path one relaxed add per document.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;

use crate::plural::plural;

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
        } else if crate::terminal::redraw_stderr() {
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
                    // Log lines meanwhile are written above the bars, not through them.
                    let _shown = crate::logging::BarsShown::new(&multi);
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
                                crate::note!(
                                    "recon: {}, {} read ({:.0} rows/s), {drifted} drifted so far",
                                    counted(rows, &labels.0, "row", "rows"),
                                    counted(docs, &labels.1, "doc", "docs"),
                                    rows.max(docs) as f64 / secs
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

    /// Starts drawing a parallel scan: the two total bars of [`Progress::start`] under one bar per range in
    /// flight (or, not on a terminal, a log line per range). Ranges come and go through the returned board.
    pub fn start_ranged(
        mode: ProgressMode,
        labels: (String, String),
        estimates: (Option<u64>, Option<u64>),
        counters: Arc<Counters>,
        of_ranges: usize,
    ) -> (Progress, Arc<RangeBoard>) {
        let board = Arc::new(RangeBoard {
            mode,
            ranges: Mutex::new(Vec::new()),
            ended: AtomicUsize::new(0),
        });
        if mode == ProgressMode::Off {
            return (Progress { stop: None, task: None }, board);
        }
        let (tx, mut rx) = oneshot::channel::<()>();
        let shown = board.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            match mode {
                ProgressMode::Bars => {
                    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
                    // Log lines meanwhile are written above the bars, not through them.
                    let _shown = crate::logging::BarsShown::new(&multi);
                    let totals = [bar(&multi, &labels.0, estimates.0), bar(&multi, &labels.1, estimates.1)];
                    // Bars of the ranges in flight, above the totals, by range index.
                    let mut drawn: Vec<(usize, ProgressBar)> = Vec::new();
                    let mut tick = tokio::time::interval(Duration::from_millis(100));
                    loop {
                        let (rows, docs, drifted) = counters.snapshot();
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        totals[0].set_position(rows);
                        totals[0].set_message(format!("{:.0}/s", rows as f64 / secs));
                        totals[1].set_position(docs);
                        totals[1].set_message(format!("{:.0}/s, drift so far: {drifted}", docs as f64 / secs));
                        {
                            let mut ranges = shown.lock();
                            drawn.retain(|(index, b)| {
                                let live = ranges.iter().any(|r| r.index == *index && !r.done);
                                if !live {
                                    b.finish_and_clear();
                                }
                                live
                            });
                            ranges.retain(|r| !r.done);
                            for range in ranges.iter().filter(|r| !r.done) {
                                let drawn_bar = match drawn.iter().position(|(i, _)| *i == range.index) {
                                    Some(at) => &drawn[at].1,
                                    None => {
                                        let b = bar_before(&multi, Some(&totals[0]), &range.label, range.estimate);
                                        drawn.push((range.index, b));
                                        &drawn[drawn.len() - 1].1
                                    }
                                };
                                let (rows, docs, drifted) = range.counters.snapshot();
                                drawn_bar.set_position(rows);
                                drawn_bar.set_message(format!("{docs} docs, drift {drifted}"));
                            }
                        }
                        tokio::select! {
                            _ = tick.tick() => {}
                            _ = &mut rx => break,
                        }
                    }
                    for (_, b) in &drawn {
                        b.finish_and_clear();
                    }
                    for b in &totals {
                        b.finish_and_clear();
                    }
                }
                ProgressMode::Log => {
                    // A bounded log, however many ranges (`--sample` scans up to hundreds of small ones): a line
                    // at the start, the ranges in flight every LOG_EVERY, a summary at the end.
                    crate::note!("recon: {} to scan", plural(of_ranges, "key range", "key ranges"));
                    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + LOG_EVERY, LOG_EVERY);
                    loop {
                        tokio::select! {
                            _ = tick.tick() => {
                                for range in shown.lock().iter() {
                                    let (rows, docs, drifted) = range.counters.snapshot();
                                    crate::note!(
                                        "recon: {}: {}, {} read{}, {drifted} drifted so far",
                                        range.label,
                                        plural(rows, "row", "rows"),
                                        plural(docs, "doc", "docs"),
                                        range.estimate.map(|n| format!(" of ~{n}")).unwrap_or_default(),
                                    );
                                }
                                let (rows, docs, drifted) = counters.snapshot();
                                let secs = started.elapsed().as_secs_f64().max(0.001);
                                crate::note!(
                                    "recon: {} of {of_ranges} ranges done: {}, {} read ({:.0} rows/s), {drifted} \
                                     drifted so far",
                                    shown.ended.load(Ordering::Relaxed),
                                    plural(rows, "row", "rows"),
                                    plural(docs, "doc", "docs"),
                                    rows.max(docs) as f64 / secs
                                );
                            }
                            _ = &mut rx => break,
                        }
                    }
                    let (rows, docs, drifted) = counters.snapshot();
                    crate::note!(
                        "recon: {} of {of_ranges} ranges done: {}, {}, {drifted} drifted",
                        shown.ended.load(Ordering::Relaxed),
                        plural(rows, "row", "rows"),
                        plural(docs, "doc", "docs"),
                    );
                }
                ProgressMode::Off => {}
            }
        });
        (
            Progress {
                stop: Some(tx),
                task: Some(task),
            },
            board,
        )
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

/// The ranges of a parallel scan, as the progress display sees them.
pub struct RangeBoard {
    mode: ProgressMode,
    ranges: Mutex<Vec<RangeShown>>,
    /// Ranges finished so far.
    ended: AtomicUsize,
}

struct RangeShown {
    index: usize,
    label: String,
    estimate: Option<u64>,
    counters: Arc<Counters>,
    done: bool,
}

impl RangeBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RangeShown>> {
        self.ranges.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A range starts: its own counters, which its scan bumps besides the totals.
    pub fn begin(&self, index: usize, label: String, estimate: Option<u64>) -> Arc<Counters> {
        let counters = Arc::new(Counters::default());
        self.lock().push(RangeShown {
            index,
            label,
            estimate,
            counters: counters.clone(),
            done: false,
        });
        counters
    }

    /// A range is done: its bar goes; not on a terminal, it counts towards the next log line (a line
    /// per range would be hundreds with `--sample`).
    pub fn end(&self, index: usize) {
        let mut ranges = self.lock();
        let Some(at) = ranges.iter().position(|r| r.index == index) else {
            return;
        };
        self.ended.fetch_add(1, Ordering::Relaxed);
        if self.mode == ProgressMode::Bars {
            // The drawing task clears the bar (and forgets the range) at its next tick.
            ranges[at].done = true;
        } else {
            ranges.remove(at);
        }
    }
}

/// `1 PostgreSQL row`, `2 Elasticsearch docs`: a count of one side's records.
fn counted(n: u64, side: &str, one: &str, many: &str) -> String {
    plural(n, &format!("{side} {one}"), &format!("{side} {many}"))
}

fn bar(multi: &MultiProgress, label: &str, estimate: Option<u64>) -> ProgressBar {
    bar_before(multi, None, label, estimate)
}

/// A bar added at the end, or inserted above `before`.
fn bar_before(multi: &MultiProgress, before: Option<&ProgressBar>, label: &str, estimate: Option<u64>) -> ProgressBar {
    let new = match estimate {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let bar = match before {
        Some(below) => multi.insert_before(below, new),
        None => multi.add(new),
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
