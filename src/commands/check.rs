//! `recon check`: stream both sides, merge-join, report. Never writes to either side.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;

use super::Outcome;
use crate::cli::CheckArgs;
use crate::config::{Overrides, Settings};
use crate::diff::{Comparator, Grace, Joiner, Outcome as KeyOutcome};
use crate::model::{Drift, Summary};
use crate::progress::{Counters, Progress, ProgressMode};
use crate::report::{self, AtomicFile, Format, ReportOptions, RunInfo};
use crate::source::elasticsearch::{ConnectSettings, ElasticsearchSettings, ElasticsearchSource, RetryPolicy};
use crate::source::postgres::{PostgresSettings, PostgresSource};
use crate::source::{DocumentSource, KeyRange};

/// How one check runs, beyond what the configuration says.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub grace: Option<Duration>,
    pub allow: u64,
    pub limit: Option<u64>,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub progress: ProgressMode,
    pub verbose: bool,
    pub color: bool,
}

/// What a finished check found.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub outcome: Outcome,
    pub summary: Summary,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<Outcome> {
    let overrides = Overrides {
        pg_url: args.pg_url,
        es_url: args.es_url,
        es_index: args.index,
    };
    let settings = Settings::load(&args.config, &overrides, &|name| std::env::var(name).ok())?;
    if args.verbose {
        for line in settings.describe_origins() {
            eprintln!("recon: {line}");
        }
    }
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let format = args.format.unwrap_or(if stdout_is_terminal && args.output.is_none() {
        Format::Table
    } else {
        Format::Json
    });
    let options = CheckOptions {
        grace: args.grace,
        allow: args.allow,
        limit: args.limit,
        format,
        output: args.output,
        progress: ProgressMode::detect(args.quiet),
        verbose: args.verbose,
        color: stdout_is_terminal && std::env::var_os("NO_COLOR").is_none(),
    };
    Ok(run_check(&settings, &options).await?.outcome)
}

/// Runs one check with resolved settings and writes its report; `recon demo` calls this too.
pub async fn run_check(settings: &Settings, options: &CheckOptions) -> anyhow::Result<CheckResult> {
    let comparator = Comparator::new(&settings.compare).context("invalid [compare] rules")?;
    if options.grace.is_some() && settings.postgres.updated_at.is_none() {
        bail!("--grace needs postgres.updated_at: the column with each row's last change");
    }
    // An unwritable --output fails before any scan starts.
    let atomic = match &options.output {
        Some(path) => {
            Some(AtomicFile::create(path).with_context(|| format!("cannot write the report to {}", path.display()))?)
        }
        None => None,
    };
    let sides = connect_sides(settings).await?;
    if options.verbose {
        eprintln!("recon: write model: {}", sides.write_model.describe());
        eprintln!("recon: read model: {}", sides.read_model.describe());
    }
    let out: Box<dyn Write + Send> = match &atomic {
        Some(file) => Box::new(file.handle()),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut writer = report::writer(
        ReportOptions {
            limit: options.limit,
            color: options.color,
            ..ReportOptions::new(options.format)
        },
        out,
    );
    let scope = ScanScope {
        range: KeyRange::all(),
        grace: options.grace,
        progress: options.progress,
    };
    let scanned = scan(&sides, comparator, &scope, |drift| {
        writer.drift(drift).context("cannot write the report")
    })
    .await?;
    if scanned.interrupted {
        eprintln!("recon: interrupted; no report written");
        return Ok(CheckResult {
            outcome: Outcome::Interrupted,
            summary: scanned.summary,
        });
    }
    let run = RunInfo {
        started_at: scanned.started_at,
        duration: scanned.duration,
        source: sides.write_model.describe(),
        target: sides.read_model.describe(),
        snapshot_ms: scanned.snapshot_ms,
        grace: options.grace,
        limit: options.limit,
        allow: options.allow,
        tool_version: env!("CARGO_PKG_VERSION"),
    };
    let in_sync = run.in_sync(&scanned.summary);
    writer
        .finish(&scanned.summary, &scanned.fields, &run)
        .context("cannot write the report")?;
    if let Some(file) = atomic {
        file.commit().context("cannot write the report")?;
    }
    let outcome = if in_sync { Outcome::InSync } else { Outcome::Drift };
    Ok(CheckResult {
        outcome,
        summary: scanned.summary,
    })
}

/// Both sides of a check, connected and known to sort keys alike.
pub struct Sides {
    pub write_model: PostgresSource,
    pub read_model: ElasticsearchSource,
}

/// Connects to both sides, asks the read model for only the compared fields, and refuses a pair whose
/// key kinds would sort differently.
pub async fn connect_sides(settings: &Settings) -> anyhow::Result<Sides> {
    let pg_settings = PostgresSettings {
        updated_at: settings.postgres.updated_at.clone(),
        page_size: settings.postgres.page_size,
        ..PostgresSettings::new(
            settings.postgres.url.expose(),
            &settings.postgres.query,
            &settings.postgres.key,
        )
    };
    let es = &settings.elasticsearch;
    let mut es_settings = ElasticsearchSettings {
        connect: ConnectSettings {
            url: es.url.expose().to_string(),
            username: es.username.clone(),
            password: es.password.clone(),
            api_key: es.api_key.clone(),
            ca_cert: es.ca_cert.clone(),
            insecure: es.insecure,
            timeout: es.timeout,
            retry: RetryPolicy {
                max_retries: es.max_retries,
                ..RetryPolicy::default()
            },
        },
        index: es.index.clone(),
        key_field: es.key.clone(),
        page_size: es.page_size,
        keep_alive: es.keep_alive.clone(),
        source_includes: None,
        source_excludes: Vec::new(),
        prefetch_pages: 2,
    };

    let write_model = PostgresSource::connect(pg_settings).await?;
    // Fetch only what is compared: the projection's columns, minus what is ignored.
    let ignored: BTreeSet<&str> = settings.compare.ignore.iter().map(String::as_str).collect();
    let mut includes: Vec<String> = write_model
        .columns()
        .iter()
        .filter(|c| !ignored.contains(c.as_str()))
        .cloned()
        .collect();
    if !includes.contains(&es.key) {
        includes.push(es.key.clone());
    }
    es_settings.source_includes = Some(includes);
    es_settings.source_excludes = settings
        .compare
        .ignore
        .iter()
        .filter(|p| p.contains('.'))
        .cloned()
        .collect();
    let read_model = ElasticsearchSource::connect(es_settings).await?;
    if write_model.key_kind() != read_model.key_kind() {
        bail!(
            "the two sides sort keys differently: postgres.key {:?} is an {} key but elasticsearch.key {:?} is \
             mapped as {}; map the field as {} (or cast the key in the query) so both sort alike",
            settings.postgres.key,
            write_model.key_kind(),
            es.key,
            read_model.key_kind(),
            match write_model.key_kind() {
                crate::model::KeyKind::Int => "long",
                crate::model::KeyKind::Text => "keyword",
            },
        );
    }
    Ok(Sides {
        write_model,
        read_model,
    })
}

/// Which keys one scan covers and how it behaves.
#[derive(Debug, Clone)]
pub struct ScanScope {
    pub range: KeyRange,
    pub grace: Option<Duration>,
    pub progress: ProgressMode,
}

/// What one scan found, besides the drift handed to the sink.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub summary: Summary,
    pub fields: BTreeMap<String, u64>,
    pub snapshot_ms: Option<i64>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration: Duration,
    /// SIGINT or SIGTERM arrived; the counts cover only part of the key space.
    pub interrupted: bool,
}

/// Opens both snapshots, reads them concurrently and merge-joins them, handing every drifted key to
/// `on_drift` in key order. `check` renders the drift; `repair` plans from it.
pub async fn scan(
    sides: &Sides,
    comparator: Comparator,
    scope: &ScanScope,
    mut on_drift: impl FnMut(&Drift) -> anyhow::Result<()>,
) -> anyhow::Result<Scanned> {
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    // Both snapshots are opened, then read concurrently: each side pages ahead on its own task.
    let (source_scan, target_scan) = tokio::try_join!(
        sides.write_model.open_scan(scope.range.clone()),
        sides.read_model.open_scan(scope.range.clone())
    )?;
    let grace = match (scope.grace, source_scan.snapshot_ms) {
        (Some(g), Some(snapshot_ms)) => Some(Grace {
            snapshot_ms,
            grace_ms: g.as_millis() as i64,
        }),
        _ => None,
    };
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(
        scope.progress,
        ("PostgreSQL".into(), "Elasticsearch".into()),
        (source_scan.estimate, target_scan.estimate),
        counters.clone(),
    );
    let c = counters.clone();
    let source = source_scan.docs.inspect(move |_| {
        c.source_rows.fetch_add(1, Ordering::Relaxed);
    });
    let c = counters.clone();
    let target = target_scan.docs.inspect(move |_| {
        c.target_docs.fetch_add(1, Ordering::Relaxed);
    });
    let mut joiner = Joiner::new(source, target, comparator, grace);

    let interrupted = super::interrupted();
    tokio::pin!(interrupted);
    let mut was_interrupted = false;
    loop {
        let next = tokio::select! {
            next = joiner.next() => next,
            _ = &mut interrupted => {
                was_interrupted = true;
                break;
            }
        };
        match next {
            Ok(Some(KeyOutcome::Matched(_))) => {}
            Ok(Some(KeyOutcome::Drift(drift))) => {
                counters.drifted.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = on_drift(&drift) {
                    progress.finish().await;
                    return Err(e);
                }
            }
            Ok(None) => break,
            Err(e) => {
                progress.finish().await;
                return Err(e);
            }
        }
    }
    progress.finish().await;
    Ok(Scanned {
        summary: joiner.summary().clone(),
        fields: joiner.field_counts().clone(),
        snapshot_ms: source_scan.snapshot_ms,
        started_at,
        duration: clock.elapsed(),
        interrupted: was_interrupted,
    })
}
