//! `recon check`: stream both sides, merge-join, report. Never writes to either side.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use super::Outcome;
use crate::cli::CheckArgs;
use crate::config::Settings;
use crate::diff::Comparator;
use crate::engine::{connect_sides_with, scan, CheckpointSpec, ScanScope};
use crate::model::Summary;
use crate::progress::ProgressMode;
use crate::report::{self, AtomicFile, Format, ReportOptions, ReportWriter, RunInfo, ScaleInfo, Targeted};
use crate::scale::keyfile::KeyFile;
use crate::scale::plan::Shard;
use crate::source::KeyRange;

/// How one check runs, beyond what the configuration says.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub grace: Option<Duration>,
    pub allow: u64,
    pub limit: Option<u64>,
    /// Where the reports go: one per target, all of the same run. `path: None` is stdout.
    pub reports: Vec<ReportTarget>,
    pub progress: ProgressMode,
    pub color: bool,
    /// Which keys and how: targeted, parallel, sharded, sampled, rechecked runs.
    pub scale: ScaleOptions,
}

/// One report of a run: its format, and its file (written atomically) or stdout.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportTarget {
    pub format: Format,
    pub path: Option<PathBuf>,
}

/// The production-scale knobs of a check; the default is one serial scan of every key.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    pub keys: Option<KeySelection>,
    pub recheck: Option<Duration>,
    pub parallel: u32,
    pub shard: Option<Shard>,
    pub sample: Option<(f64, u64)>,
    /// `--checkpoint FILE` and whether to `--resume` from it.
    pub checkpoint: Option<(PathBuf, bool)>,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        ScaleOptions {
            keys: None,
            recheck: None,
            parallel: 1,
            shard: None,
            sample: None,
            checkpoint: None,
        }
    }
}

/// Keys a targeted run is limited to, resolved against the write model once connected.
#[derive(Debug, Clone)]
pub enum KeySelection {
    List(String),
    File(PathBuf),
    /// Rows changed at or after this instant, epoch milliseconds.
    Since(i64),
}

/// What a finished check found.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub outcome: Outcome,
    pub summary: Summary,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<Outcome> {
    let settings = args.connection.load()?;
    for line in settings.describe_origins() {
        tracing::debug!("{line}");
    }
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let format = args
        .format
        .map(Format::from)
        .unwrap_or(if stdout_is_terminal && args.output.is_empty() {
            Format::Table
        } else {
            Format::Json
        });
    // Without --output the report goes to stdout; each --output is a file of its own format (a plain
    // FILE takes --format), and stdout stays empty.
    let reports = match args.output.is_empty() {
        true => vec![ReportTarget { format, path: None }],
        false => args
            .output
            .into_iter()
            .map(|o| ReportTarget {
                format: o.format.map(Format::from).unwrap_or(format),
                path: Some(o.path),
            })
            .collect(),
    };
    let options = CheckOptions {
        grace: args.grace,
        allow: args.allow,
        limit: args.limit,
        reports,
        progress: ProgressMode::detect(args.quiet),
        color: crate::terminal::colour_stdout(),
        scale: ScaleOptions {
            keys: match (args.keys, args.keys_file, args.since) {
                (Some(list), _, _) => Some(KeySelection::List(list)),
                (_, Some(file), _) => Some(KeySelection::File(file)),
                (_, _, Some(since)) => Some(KeySelection::Since(parse_since(&since, chrono::Utc::now())?)),
                _ => None,
            },
            recheck: args.recheck,
            parallel: args.parallel,
            shard: args.shard,
            sample: args.sample.map(|f| {
                let seed = args
                    .sample_seed
                    .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64);
                (f, seed)
            }),
            checkpoint: args.checkpoint.map(|path| (path, args.resume)),
        },
    };
    Ok(run_check(&settings, &options).await?.outcome)
}

/// Runs one check with resolved settings and writes its report; `recon demo` calls this too.
pub async fn run_check(settings: &Settings, options: &CheckOptions) -> anyhow::Result<CheckResult> {
    let comparator = Comparator::new(&settings.compare).context("invalid [compare] rules")?;
    if options.grace.is_some() && settings.postgres.updated_at.is_none() {
        bail!("--grace needs postgres.updated_at: the column with each row's last change");
    }
    // An unwritable --output fails before any scan starts; two reports into one file are refused.
    let mut files = Vec::new();
    for report in &options.reports {
        if let Some(path) = &report.path {
            if options.reports.iter().filter(|r| r.path.as_ref() == Some(path)).count() > 1 {
                bail!(
                    "--output {} is given twice; each report needs a file of its own",
                    path.display()
                );
            }
            let file =
                AtomicFile::create(path).with_context(|| format!("cannot write the report to {}", path.display()))?;
            files.push(file);
        }
    }
    if matches!(options.scale.keys, Some(KeySelection::Since(_))) && settings.postgres.updated_at.is_none() {
        bail!("--since needs postgres.updated_at: the column with each row's last change");
    }
    let sides = connect_sides_with(settings, options.scale.parallel).await?;
    sides.ensure_known_fields(settings).await?;
    let (keys, targeted) = match &options.scale.keys {
        None => (None, None),
        Some(selection) => {
            let kind = sides.write_model.key_kind();
            let (keys, targeted) = match selection {
                KeySelection::List(list) => {
                    let keys = KeyFile::sort(crate::scale::keys::parse_list(list, kind)?.into_iter().map(Ok))?;
                    let n = keys.len();
                    (keys, Targeted::Keys(n))
                }
                KeySelection::File(path) => {
                    let keys = crate::scale::keys::read_file(path, kind)?;
                    let n = keys.len();
                    (keys, Targeted::Keys(n))
                }
                KeySelection::Since(since_ms) => {
                    let keys = KeyFile::from_stream(sides.write_model.changed_keys(*since_ms)?).await?;
                    let n = keys.len();
                    (
                        keys,
                        Targeted::Since {
                            since_ms: *since_ms,
                            keys: n,
                        },
                    )
                }
            };
            (Some(Arc::new(keys)), Some(targeted))
        }
    };
    tracing::debug!("write model: {}", sides.write_model.describe());
    tracing::debug!("read model: {}", sides.read_model.describe());
    // Every report of the run hears the same drift and the same counts: one scan, one snapshot.
    let mut files_left = files.iter();
    let writers: Vec<Box<dyn ReportWriter>> = options
        .reports
        .iter()
        .map(|report| {
            let out: Box<dyn Write + Send> = match report.path {
                Some(_) => Box::new(files_left.next().expect("a file per report with a path").handle()),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            report::writer(
                ReportOptions {
                    limit: options.limit,
                    // Colour is for a terminal, never for a file.
                    color: options.color && report.path.is_none(),
                    ..ReportOptions::new(report.format)
                },
                out,
            )
        })
        .collect();
    let mut writer = report::Tee::new(writers);
    let scope = ScanScope {
        range: KeyRange::all(),
        grace: options.grace,
        progress: options.progress,
        keys,
        parallel: options.scale.parallel.max(1) as usize,
        shard: options.scale.shard,
        sample: options.scale.sample,
        recheck: options.scale.recheck,
        checkpoint: options.scale.checkpoint.as_ref().map(|(path, resume)| CheckpointSpec {
            path: path.clone(),
            resume: *resume,
            fingerprint: {
                let shard = options.scale.shard.map(|s| s.to_string()).unwrap_or_default();
                let mut parts = vec![
                    settings.postgres.query.as_str(),
                    settings.postgres.key.as_str(),
                    settings.elasticsearch.index.as_str(),
                    settings.elasticsearch.key.as_str(),
                    shard.as_str(),
                ];
                // A Redis read model is named by its key pattern (an Elasticsearch one's fingerprint
                // stays as it was, so its checkpoints still resume).
                if let Some(redis) = &settings.redis {
                    parts.extend([redis.key_pattern.as_str(), redis.key.as_str()]);
                }
                crate::scale::checkpoint::fingerprint(&parts)
            },
        }),
    };
    let scanned = scan(&sides, comparator, &scope, |drift| {
        writer.drift(drift).context("cannot write the report")
    })
    .await?;
    if scanned.interrupted {
        crate::note!("recon: interrupted; no report written");
        return Ok(CheckResult {
            outcome: Outcome::Interrupted,
            summary: scanned.summary,
        });
    }
    let run = RunInfo {
        name: settings.name.clone(),
        started_at: scanned.started_at,
        duration: scanned.duration,
        source: sides.write_model.describe(),
        target: sides.read_model.describe(),
        snapshot_ms: scanned.snapshot_ms,
        grace: options.grace,
        limit: options.limit,
        allow: options.allow,
        tool_version: env!("CARGO_PKG_VERSION"),
        scale: ScaleInfo {
            recheck: options.scale.recheck,
            snapshots: scanned.snapshots,
            parallel: options.scale.parallel.max(1),
            targeted,
            shard: scanned.shard.clone(),
            sample: scanned.sample.clone(),
        },
    };
    let in_sync = run.in_sync(&scanned.summary);
    Box::new(writer)
        .finish(&scanned.summary, &scanned.fields, &run)
        .context("cannot write the report")?;
    for file in files {
        file.commit().context("cannot write the report")?;
    }
    let outcome = if in_sync { Outcome::InSync } else { Outcome::Drift };
    Ok(CheckResult {
        outcome,
        summary: scanned.summary,
    })
}
/// `--since`: a duration before `now` (`90m`) or an RFC 3339 instant, as epoch milliseconds.
pub fn parse_since(text: &str, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<i64> {
    if let Ok(duration) = humantime::parse_duration(text) {
        let duration = chrono::Duration::from_std(duration).context("--since: duration too large")?;
        return Ok((now - duration).timestamp_millis());
    }
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => Ok(t.timestamp_millis()),
        Err(_) => {
            bail!("--since {text:?} is neither a duration (30m, 24h) nor an RFC 3339 timestamp (2026-11-28T02:00:00Z)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_instants() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T02:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(parse_since("1h", now).unwrap(), now.timestamp_millis() - 3_600_000);
        assert_eq!(
            parse_since("2026-11-28T01:00:00+01:00", now).unwrap(),
            now.timestamp_millis() - 7_200_000
        );
        assert!(parse_since("yesterday", now).is_err());
    }
}
