//! Renders a check's drift and counts for people (table, markdown), machines (json, ndjson), CI
//! dashboards (junit) and monitoring (prometheus).
//!
//! Drift arrives one key at a time and a run may produce millions of drifted keys, so no writer holds
//! them all: formats whose document puts the drift list after the summary (json, junit) spool the
//! listed records to an anonymous temp file and stream it back at [`ReportWriter::finish`]; table and
//! markdown keep only their bounded sample; ndjson writes each record as it arrives; prometheus keeps
//! nothing but the counts it is handed at the end. The spool lives in `$TMPDIR` (about 200 bytes per
//! listed record, a few hundred MB for a million) and is bounded by `--limit`; memory stays flat.
//!
//! `--output FILE` goes through [`AtomicFile`]: keep the `AtomicFile`, pass [`AtomicFile::handle`] to
//! [`writer`], call `finish`, then [`AtomicFile::commit`]. An interrupted or failed run never commits,
//! so FILE keeps its previous content.

mod atomic;
pub mod explain;
mod human;
mod json;
mod junit;
mod markdown;
mod prometheus;
pub mod read;
mod record;
mod spool;
mod table;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{Drift, Summary};

pub use atomic::{AtomicFile, AtomicFileHandle};

/// The JSON report contract's identifier; see `docs/report-schema.md`.
pub const SCHEMA: &str = "recon.check/v2";

/// Schemas whose reports recon still reads (`repair --from-report`, `report merge`): v2 only added the
/// `unkeyed` kind, its `null` key and the `summary.unkeyed` count.
pub const READABLE_SCHEMAS: [&str; 2] = ["recon.check/v1", SCHEMA];

/// Default number of drifted keys shown by the table and markdown formats.
pub const DEFAULT_SAMPLE: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Summary, per-field counts and a sample of drifted keys, for a terminal.
    Table,
    /// One `recon.check/v2` JSON document.
    Json,
    /// One JSON object per line: each drifted key as it is found, then the summary.
    Ndjson,
    /// JUnit XML, one test case per drifted key, for CI dashboards.
    Junit,
    /// GitHub-flavoured markdown, for pull-request comments and CI job summaries.
    Markdown,
    /// Prometheus text exposition format, for node_exporter's textfile collector.
    Prometheus,
}

/// What the report states about the run.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The check's name (`name` in the configuration, default the index): a label on every metric.
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    /// Descriptions of both sides, without secrets.
    pub source: String,
    pub target: String,
    /// The write model's snapshot time (epoch milliseconds), when the run pinned one.
    pub snapshot_ms: Option<i64>,
    pub grace: Option<Duration>,
    pub limit: Option<u64>,
    /// Failing keys tolerated before the run counts as drift (`--allow`).
    pub allow: u64,
    pub tool_version: &'static str,
    /// How the run was cut up or narrowed (`--parallel`, `--shard`, `--sample`, `--keys`, `--since`,
    /// `--recheck`, `--resume`).
    pub scale: ScaleInfo,
}

/// The parts of a run's description that scaled runs add; the default is a plain serial full run.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleInfo {
    /// `--recheck`: the wait before drifted keys were read again.
    pub recheck: Option<Duration>,
    /// How many write-model snapshots the compared data spans: 1, or 2 and more after `--resume`.
    pub snapshots: u32,
    /// Concurrent range scans.
    pub parallel: u32,
    /// A targeted run checks only some keys.
    pub targeted: Option<Targeted>,
    pub shard: Option<ShardInfo>,
    pub sample: Option<SampleInfo>,
}

impl Default for ScaleInfo {
    fn default() -> Self {
        ScaleInfo {
            recheck: None,
            snapshots: 1,
            parallel: 1,
            targeted: None,
            shard: None,
            sample: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Targeted {
    /// `--keys`/`--keys-file`: this many distinct keys.
    Keys(u64),
    /// `--since`: rows changed at or after this instant (epoch milliseconds), this many of them.
    Since { since_ms: i64, keys: u64 },
}

/// `--shard K/N` and the key range the shard covered (None: unbounded on that side).
#[derive(Debug, Clone, PartialEq)]
pub struct ShardInfo {
    pub index: u32,
    pub count: u32,
    pub after: Option<crate::model::Key>,
    pub until: Option<crate::model::Key>,
}

/// `--sample`: what was asked for and what it covered.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleInfo {
    pub fraction: f64,
    pub seed: u64,
    /// Ranges checked, of how many the key space was cut into.
    pub ranges: u64,
    pub of_ranges: u64,
    /// Rows checked / rows estimated in the whole write model.
    pub rows_fraction: Option<f64>,
    /// Failing keys extrapolated to the whole key space (`failing / rows_fraction`).
    pub estimated_failing: Option<u64>,
}

impl RunInfo {
    /// Whether the run passes: failing keys within `--allow`. Pending drift never fails.
    pub fn in_sync(&self, summary: &Summary) -> bool {
        summary.failing() <= self.allow
    }
}

/// Receives drift as the check finds it, then the run's totals.
pub trait ReportWriter: Send {
    fn drift(&mut self, drift: &Drift) -> io::Result<()>;
    /// Writes the rest of the report and flushes it. The output handed to [`writer`] is dropped on
    /// return; committing an [`AtomicFile`] is the caller's step after this succeeds.
    fn finish(self: Box<Self>, summary: &Summary, fields: &BTreeMap<String, u64>, run: &RunInfo) -> io::Result<()>;
}

#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub format: Format,
    /// List only the first N drifted keys; counts stay complete and the report says it was truncated.
    pub limit: Option<u64>,
    /// How many drifted keys table and markdown show.
    pub sample: usize,
    /// Colour the table (terminal output only; other formats ignore it).
    pub color: bool,
    /// Drift was already left out before it reached this writer (merged shard reports that were cut by
    /// `--limit`): the report says it is truncated whatever it lists.
    pub truncated_upstream: bool,
}

impl ReportOptions {
    pub fn new(format: Format) -> Self {
        ReportOptions {
            format,
            limit: None,
            sample: DEFAULT_SAMPLE,
            color: false,
            truncated_upstream: false,
        }
    }
}

/// A writer for `options.format` that sends the final bytes to `out` (stdout, or an
/// [`AtomicFile::handle`] for `--output`).
pub fn writer(options: ReportOptions, out: Box<dyn Write + Send>) -> Box<dyn ReportWriter> {
    let mut listing = Listing::new(options.limit);
    // Table and markdown show `--limit` keys when it is given, else a sample of DEFAULT_SAMPLE.
    let sample = options
        .limit
        .map_or(options.sample, |limit| usize::try_from(limit).unwrap_or(usize::MAX));
    listing.upstream = options.truncated_upstream;
    match options.format {
        Format::Json => Box::new(json::JsonWriter::new(out, listing)),
        Format::Ndjson => Box::new(json::NdjsonWriter::new(out, listing)),
        Format::Junit => Box::new(junit::JunitWriter::new(out, listing)),
        Format::Table => Box::new(table::TableWriter::new(
            out,
            human::Sample::new(sample, listing),
            options.color,
        )),
        Format::Markdown => Box::new(markdown::MarkdownWriter::new(out, human::Sample::new(sample, listing))),
        Format::Prometheus => Box::new(prometheus::PrometheusWriter::new(out)),
    }
}

/// Several reports of one run: each hears every drifted key and the same counts (`-o json:… -o junit:…`).
pub struct Tee {
    writers: Vec<Box<dyn ReportWriter>>,
}

impl Tee {
    pub fn new(writers: Vec<Box<dyn ReportWriter>>) -> Tee {
        Tee { writers }
    }
}

impl ReportWriter for Tee {
    fn drift(&mut self, drift: &Drift) -> io::Result<()> {
        self.writers.iter_mut().try_for_each(|w| w.drift(drift))
    }

    fn finish(self: Box<Self>, summary: &Summary, fields: &BTreeMap<String, u64>, run: &RunInfo) -> io::Result<()> {
        self.writers
            .into_iter()
            .try_for_each(|w| w.finish(summary, fields, run))
    }
}

/// Counts drift against `--limit`: which records get listed and whether the listing was cut short.
#[derive(Debug, Clone, Copy)]
struct Listing {
    limit: Option<u64>,
    seen: u64,
    listed: u64,
    /// Drift left out before it reached the writer.
    upstream: bool,
}

impl Listing {
    fn new(limit: Option<u64>) -> Self {
        Listing {
            limit,
            seen: 0,
            listed: 0,
            upstream: false,
        }
    }

    /// Records one drifted key; true when it is within the limit and should be listed.
    fn admit(&mut self) -> bool {
        self.seen += 1;
        if self.limit.is_some_and(|limit| self.listed >= limit) {
            return false;
        }
        self.listed += 1;
        true
    }

    fn truncated(&self) -> bool {
        self.seen > self.listed || self.upstream
    }
}

#[cfg(test)]
mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_admits_up_to_the_limit_and_counts_the_rest() {
        let mut listing = Listing::new(Some(2));
        let admitted: Vec<bool> = (0..4).map(|_| listing.admit()).collect();
        assert_eq!(admitted, [true, true, false, false]);
        assert_eq!((listing.seen, listing.listed), (4, 2));
        assert!(listing.truncated());

        let mut unlimited = Listing::new(None);
        assert!((0..3).all(|_| unlimited.admit()));
        assert!(!unlimited.truncated());

        let mut zero = Listing::new(Some(0));
        assert!(!zero.admit());
        assert!(zero.truncated());
    }

    #[test]
    fn allowed_failing_keys_keep_the_run_in_sync_and_pending_never_fails() {
        let mut run = fixtures::run();
        let summary = Summary {
            mismatched: 2,
            pending: 50,
            ..Summary::default()
        };
        run.allow = 2;
        assert!(run.in_sync(&summary));
        run.allow = 1;
        assert!(!run.in_sync(&summary));
    }

    #[test]
    fn output_file_changes_only_when_the_caller_commits_after_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        std::fs::write(&path, "previous report").unwrap();

        // Interrupted: drift written, no finish, no commit.
        let file = AtomicFile::create(&path).unwrap();
        let mut report = writer(ReportOptions::new(Format::Ndjson), Box::new(file.handle()));
        for drift in fixtures::drift() {
            report.drift(&drift).unwrap();
        }
        drop(report);
        drop(file);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous report");

        // Completed.
        let file = AtomicFile::create(&path).unwrap();
        let mut report = writer(ReportOptions::new(Format::Json), Box::new(file.handle()));
        for drift in fixtures::drift() {
            report.drift(&drift).unwrap();
        }
        report
            .finish(&fixtures::summary(), &fixtures::fields(), &fixtures::run())
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous report");
        file.commit().unwrap();
        let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written["listed"], 6);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["report.json"]);
    }
}
