//! `recon report merge`: shard reports in, one report for the whole key space out.
//!
//! Shards are checked on different machines, each in its own snapshot, so the merged report says how
//! many snapshots it spans. The shards' key ranges must tile the key space exactly: shard boundaries
//! come from each machine's view of the planner's statistics, and a gap or overlap (statistics that
//! changed between the shards' starts) would silently skip or double-count keys, so it is an error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Outcome;
use crate::cli::{Format, MergeArgs};
use crate::model::{Drift, Key, Summary};
use crate::report::read::{DriftRecord, Header};
use crate::report::{self, AtomicFile, ReportOptions, RunInfo, ScaleInfo, ShardInfo, SCHEMA};

pub fn run(args: MergeArgs) -> anyhow::Result<Outcome> {
    let mut shards = Vec::with_capacity(args.reports.len());
    for path in &args.reports {
        shards.push(ShardReport::read(path)?);
    }
    let merged = merge(shards)?;
    // Every file is opened before anything is written, so an unwritable one fails the merge whole.
    let mut targets: Vec<(Format, Option<(PathBuf, AtomicFile)>)> = Vec::new();
    if args.output.is_empty() {
        targets.push((args.format, None));
    }
    for output in &args.output {
        if args.output.iter().filter(|o| o.path == output.path).count() > 1 {
            bail!(
                "--output {} is given twice; each report needs a file of its own",
                output.path.display()
            );
        }
        let file = AtomicFile::create(&output.path)
            .with_context(|| format!("cannot write the report to {}", output.path.display()))?;
        targets.push((output.format.unwrap_or(args.format), Some((output.path.clone(), file))));
    }
    let in_sync = merged.run.in_sync(&merged.summary);
    let mut writers = Vec::with_capacity(targets.len());
    let mut files = Vec::new();
    for (format, file) in targets {
        let out: Box<dyn Write + Send> = match &file {
            Some((_, file)) => Box::new(file.handle()),
            None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        };
        writers.push(report::writer(
            ReportOptions {
                truncated_upstream: merged.truncated,
                ..ReportOptions::new(format.into())
            },
            out,
        ));
        files.extend(file);
    }
    // The drift streams from the shard files to the reports, one record at a time: the shards tile
    // the key space in order, so concatenating them keeps key order without holding any list.
    merged.for_each_drift(|drift| {
        for writer in &mut writers {
            writer.drift(&drift).context("cannot write the report")?;
        }
        Ok(())
    })?;
    for writer in writers {
        writer
            .finish(&merged.summary, &merged.fields, &merged.run)
            .context("cannot write the report")?;
    }
    for (path, file) in files {
        file.commit()
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    Ok(if in_sync { Outcome::InSync } else { Outcome::Drift })
}

/// One shard's JSON report, as far as merging needs it: what it says of itself, and where its drift is
/// (read again when the merged report is written, never held).
#[derive(Debug)]
pub struct ShardReport {
    path: PathBuf,
    header: Header,
    shard: ShardInfo,
    /// The report's text when it did not come from a file (tests).
    text: Option<String>,
}

impl ShardReport {
    /// Reads the report's header and checks every drift record (a bad one fails the merge before any
    /// output is written).
    pub fn read(path: &Path) -> anyhow::Result<ShardReport> {
        let header = report::read::read_json(path, check_drift)?;
        ShardReport::new(path, header, None)
    }

    pub fn from_value(path: &Path, value: Value) -> anyhow::Result<ShardReport> {
        let text = value.to_string();
        let header = report::read::read_json_from(text.as_bytes(), path, check_drift)?;
        ShardReport::new(path, header, Some(text))
    }

    fn new(path: &Path, header: Header, text: Option<String>) -> anyhow::Result<ShardReport> {
        if !header.readable() {
            bail!("{} is not a recon.check report ({SCHEMA} or v1)", path.display());
        }
        let shard = &header.get("run")["shard"];
        if !shard.is_object() {
            bail!(
                "{} is not a shard report (run.shard is null); merge combines `recon check --shard K/N` reports",
                path.display()
            );
        }
        let count = |name: &str| shard[name].as_u64().map(|n| n as u32);
        let shard = ShardInfo {
            index: count("index").context("run.shard.index missing")?,
            count: count("count").context("run.shard.count missing")?,
            after: Key::from_json(&shard["after"]),
            until: Key::from_json(&shard["until"]),
        };
        Ok(ShardReport {
            path: path.to_path_buf(),
            header,
            shard,
            text,
        })
    }

    /// The report's drift, in the order it lists it.
    fn each_drift(&self, mut each: impl FnMut(Drift) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let each = |record: DriftRecord| each(record.into_drift().context("bad drift record")?);
        match &self.text {
            Some(text) => report::read::read_json_from(text.as_bytes(), &self.path, each)?,
            None => report::read::read_json(&self.path, each)?,
        };
        Ok(())
    }
}

/// Checks a shard report's drift record (the reader says which report and record).
fn check_drift(record: DriftRecord) -> anyhow::Result<()> {
    record.into_drift().context("bad drift record")?;
    Ok(())
}

/// The merged counts and run description, and the shards whose drift lists make up its drift list.
#[derive(Debug)]
pub struct Merged {
    pub summary: Summary,
    pub fields: std::collections::BTreeMap<String, u64>,
    pub run: RunInfo,
    pub truncated: bool,
    /// In shard order, which is key order.
    shards: Vec<ShardReport>,
}

impl Merged {
    /// The merged drift list, shard after shard, read from the shard reports as it goes.
    pub fn for_each_drift(&self, mut each: impl FnMut(Drift) -> anyhow::Result<()>) -> anyhow::Result<()> {
        for shard in &self.shards {
            shard.each_drift(&mut each)?;
        }
        Ok(())
    }
}

pub fn merge(mut shards: Vec<ShardReport>) -> anyhow::Result<Merged> {
    shards.sort_by_key(|s| s.shard.index);
    let Some(first) = shards.first() else {
        bail!("no reports to merge");
    };
    let count = shards.iter().map(|s| s.shard.count).max().unwrap_or(0);
    let indices: Vec<u32> = shards.iter().map(|s| s.shard.index).collect();
    let expected: Vec<u32> = (1..=count).collect();
    if shards.iter().any(|s| s.shard.count != count) || indices != expected {
        let given: Vec<String> = shards
            .iter()
            .map(|s| format!("{} ({}/{})", s.path.display(), s.shard.index, s.shard.count))
            .collect();
        bail!(
            "need each of the shards 1/{count} to {count}/{count} exactly once; got {}",
            given.join(", ")
        );
    }
    check_tiling(&shards)?;

    let same = |pointer: &str| -> anyhow::Result<Value> {
        let value = first.header.get("run").pointer(pointer).cloned().unwrap_or(Value::Null);
        for s in &shards {
            if s.header.get("run").pointer(pointer).cloned().unwrap_or(Value::Null) != value {
                bail!(
                    "the shards were run with different settings: run{pointer} is {} in {} but {value} in {}",
                    s.header.get("run").pointer(pointer).cloned().unwrap_or(Value::Null),
                    s.path.display(),
                    first.path.display()
                );
            }
        }
        Ok(value)
    };
    let allow = same("/allow")?.as_u64().unwrap_or(0);
    let grace = same("/grace_ms")?.as_u64().map(Duration::from_millis);
    let limit = same("/limit")?.as_u64();
    let recheck = same("/recheck_ms")?.as_u64().map(Duration::from_millis);
    let source = first.header.get("run")["source"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let first_name = first.header.get("run")["name"].as_str().unwrap_or("recon").to_string();
    let target = first.header.get("run")["target"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let mut summary = Summary::default();
    let mut fields = std::collections::BTreeMap::new();
    let mut truncated = false;
    let mut started: Option<DateTime<Utc>> = None;
    let mut ended: Option<DateTime<Utc>> = None;
    let mut snapshot_ms: Option<i64> = None;
    let mut snapshots = 0;
    let mut parallel = 1;
    for s in &shards {
        let part: Summary = serde_json::from_value(s.header.get("summary").clone())
            .with_context(|| format!("{}: unreadable summary", s.path.display()))?;
        summary += &part;
        if let Value::Object(f) = s.header.get("fields") {
            for (field, n) in f {
                *fields.entry(field.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
        truncated |= s.header.truncated();
        let run = s.header.get("run");
        let start = run["started_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc())
            .with_context(|| format!("{}: run.started_at missing", s.path.display()))?;
        let end = start + chrono::Duration::milliseconds(run["duration_ms"].as_i64().unwrap_or(0));
        started = Some(started.map_or(start, |t| t.min(start)));
        ended = Some(ended.map_or(end, |t| t.max(end)));
        if let Some(ms) = run["snapshot_ms"].as_i64() {
            snapshot_ms = Some(snapshot_ms.map_or(ms, |t: i64| t.min(ms)));
        }
        snapshots += run["snapshots"].as_u64().unwrap_or(1) as u32;
        parallel = parallel.max(run["parallel"].as_u64().unwrap_or(1) as u32);
    }
    let started = started.expect("at least one shard");
    let run = RunInfo {
        // The shards of one check share its name; reports of older recons have none.
        name: first_name,
        started_at: started,
        duration: (ended.expect("at least one shard") - started)
            .to_std()
            .unwrap_or_default(),
        source,
        target,
        snapshot_ms,
        grace,
        limit,
        allow,
        tool_version: env!("CARGO_PKG_VERSION"),
        scale: ScaleInfo {
            recheck,
            snapshots,
            parallel,
            ..ScaleInfo::default()
        },
    };
    Ok(Merged {
        summary,
        fields,
        run,
        truncated,
        shards,
    })
}

/// Shard k's range must start where shard k-1's ends; the first and last must be open-ended.
fn check_tiling(sorted: &[ShardReport]) -> anyhow::Result<()> {
    let show = |k: &Option<Key>| k.as_ref().map_or("(open)".to_string(), |k| k.to_string());
    if let Some(first) = sorted.first() {
        if first.shard.after.is_some() {
            bail!(
                "shard 1 starts after key {}, so keys before it were not checked",
                show(&first.shard.after)
            );
        }
    }
    if let Some(last) = sorted.last() {
        if last.shard.until.is_some() {
            bail!(
                "the last shard ends at key {}, so keys after it were not checked",
                show(&last.shard.until)
            );
        }
    }
    for pair in sorted.windows(2) {
        if pair[0].shard.until != pair[1].shard.after {
            bail!(
                "shards {} and {} do not meet: one ends at key {}, the next starts after {} (the shards computed \
                 their ranges from different statistics; run them closer together or after the same ANALYZE)",
                pair[0].shard.index,
                pair[1].shard.index,
                show(&pair[0].shard.until),
                show(&pair[1].shard.after)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DriftKind;
    use serde_json::json;

    fn shard(index: u32, count: u32, after: Value, until: Value, missing: u64) -> ShardReport {
        let value = json!({
            "schema": SCHEMA, "verdict": "drift", "failing": missing,
            "summary": {"source_rows": 10, "target_docs": 10 - missing, "matched": 10 - missing, "missing": missing,
                        "orphaned": 0, "mismatched": 0, "duplicate": 0, "pending": 0, "converged": 0},
            "fields": {},
            "run": {"started_at": "2026-11-28T02:00:00.000Z", "duration_ms": 1000 * index, "source": "pg",
                    "target": "es", "snapshot_ms": 1000 + index, "grace_ms": null, "limit": null, "allow": 1,
                    "tool_version": "0", "recheck_ms": null, "snapshots": 1, "parallel": 2, "targeted": null,
                    "shard": {"index": index, "count": count, "after": after, "until": until}, "sample": null},
            "listed": missing, "truncated": false,
            "drift": (0..missing).map(|i| json!({"key": index * 100 + i as u32, "kind": "missing", "ids": [], "diffs": []})).collect::<Vec<_>>(),
        });
        ShardReport::from_value(Path::new(&format!("s{index}.json")), value).unwrap()
    }

    #[test]
    fn shards_merge_into_one_run_in_key_order() {
        let merged = merge(vec![
            shard(2, 3, json!(10), json!(20), 1),
            shard(1, 3, Value::Null, json!(10), 0),
            shard(3, 3, json!(20), Value::Null, 1),
        ])
        .unwrap();
        assert_eq!(merged.summary.source_rows, 30);
        assert_eq!(merged.summary.missing, 2);
        assert_eq!(merged.run.scale.snapshots, 3);
        assert_eq!(merged.run.duration, Duration::from_secs(3));
        assert_eq!(merged.run.snapshot_ms, Some(1001));
        assert!(!merged.run.in_sync(&merged.summary), "2 failing keys > allow 1");
        let mut keys: Vec<Key> = Vec::new();
        merged
            .for_each_drift(|d| {
                keys.push(d.key);
                Ok(())
            })
            .unwrap();
        assert_eq!(keys, [Key::Int(200), Key::Int(300)]);
    }

    #[test]
    fn gaps_overlaps_and_missing_shards_are_errors() {
        let e = merge(vec![shard(1, 2, Value::Null, json!(10), 0)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly once"), "{e}");
        let e = merge(vec![
            shard(1, 2, Value::Null, json!(10), 0),
            shard(2, 2, json!(12), Value::Null, 0),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("do not meet"), "{e}");
        let e = merge(vec![
            shard(1, 2, Value::Null, json!(10), 0),
            shard(2, 2, json!(10), json!(99), 0),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("not checked"), "{e}");
    }

    #[test]
    fn unkeyed_records_merge_with_a_null_key() {
        let shard = |index: u32, after: Value, until: Value, drift: Value| {
            let value = json!({
                "schema": SCHEMA, "verdict": "drift", "failing": 1,
                "summary": {"source_rows": 1, "target_docs": 2, "matched": 1, "missing": 0, "orphaned": 0,
                            "mismatched": 0, "duplicate": 0, "pending": 0, "converged": 0, "unkeyed": 1},
                "fields": {},
                "run": {"started_at": "2026-11-28T02:00:00.000Z", "duration_ms": 1000, "source": "pg", "target": "es",
                        "snapshot_ms": 1000, "grace_ms": null, "limit": null, "allow": 0, "tool_version": "0",
                        "recheck_ms": null, "snapshots": 1, "parallel": 1, "targeted": null,
                        "shard": {"index": index, "count": 2, "after": after, "until": until}, "sample": null},
                "listed": 1, "truncated": false, "drift": drift,
            });
            ShardReport::from_value(Path::new(&format!("s{index}.json")), value).unwrap()
        };
        let merged = merge(vec![
            shard(
                1,
                Value::Null,
                json!(10),
                json!([{"key": null, "kind": "unkeyed", "ids": ["no-key"], "diffs": []}]),
            ),
            shard(
                2,
                json!(10),
                Value::Null,
                json!([{"key": 12, "kind": "missing", "ids": [], "diffs": []}]),
            ),
        ])
        .unwrap();
        assert_eq!(merged.summary.unkeyed, 2);
        let mut drift: Vec<(Value, DriftKind, Vec<String>)> = Vec::new();
        merged
            .for_each_drift(|d| {
                drift.push((d.key_json(), d.kind, d.ids));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            drift,
            [
                (Value::Null, DriftKind::Unkeyed, vec!["no-key".to_string()]),
                (json!(12), DriftKind::Missing, vec![]),
            ]
        );
    }

    /// The drift is read twice (checked, then streamed), so a bad record in the last shard fails the
    /// merge before a byte of any report is written.
    #[test]
    fn a_bad_record_in_a_later_shard_fails_before_any_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut reports = Vec::new();
        for (index, after, until, kind) in [
            (1, Value::Null, json!(10), "missing"),
            (2, json!(10), Value::Null, "vanished"),
        ] {
            let value = json!({
                "schema": SCHEMA, "verdict": "drift", "failing": 1,
                "summary": {"source_rows": 10, "target_docs": 9, "matched": 9, "missing": 1, "orphaned": 0,
                            "mismatched": 0, "duplicate": 0, "pending": 0, "converged": 0},
                "fields": {},
                "run": {"started_at": "2026-11-28T02:00:00.000Z", "duration_ms": 1000, "source": "pg",
                        "target": "es", "snapshot_ms": 1000, "grace_ms": null, "limit": null, "allow": 0,
                        "tool_version": "0", "recheck_ms": null, "snapshots": 1, "parallel": 1, "targeted": null,
                        "shard": {"index": index, "count": 2, "after": after, "until": until}, "sample": null},
                "listed": 1, "truncated": false,
                "drift": [{"key": index * 5, "kind": kind, "ids": [], "diffs": []}],
            });
            let path = dir.path().join(format!("shard-{index}.json"));
            std::fs::write(&path, value.to_string()).unwrap();
            reports.push(path);
        }
        let output = dir.path().join("merged.json");
        let e = run(MergeArgs {
            reports,
            format: Format::Json,
            output: vec![crate::cli::OutputArg {
                format: None,
                path: output.clone(),
            }],
        })
        .unwrap_err();
        assert!(format!("{e:#}").contains("shard-2.json"), "{e:#}");
        assert!(!output.exists());
    }
}
