//! `recon check`: stream both sides, merge-join, report. Never writes to either side.

use std::collections::BTreeSet;
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
use crate::model::Summary;
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

/// Runs one check with resolved settings; `recon demo` calls this too.
pub async fn run_check(settings: &Settings, options: &CheckOptions) -> anyhow::Result<CheckResult> {
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    let comparator = Comparator::new(&settings.compare).context("invalid [compare] rules")?;
    if options.grace.is_some() && settings.postgres.updated_at.is_none() {
        bail!("--grace needs postgres.updated_at: the column with each row's last change");
    }

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
            retry: RetryPolicy::default(),
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
    if options.verbose {
        eprintln!("recon: write model: {}", write_model.describe());
        eprintln!("recon: read model: {}", read_model.describe());
    }

    // Both snapshots are opened, then read concurrently: each side pages ahead on its own task.
    let (source_scan, target_scan) = tokio::try_join!(
        write_model.open_scan(KeyRange::all()),
        read_model.open_scan(KeyRange::all())
    )?;
    let grace = match (options.grace, source_scan.snapshot_ms) {
        (Some(g), Some(snapshot_ms)) => Some(Grace {
            snapshot_ms,
            grace_ms: g.as_millis() as i64,
        }),
        _ => None,
    };
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(
        options.progress,
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

    let atomic = match &options.output {
        Some(path) => {
            Some(AtomicFile::create(path).with_context(|| format!("cannot write the report to {}", path.display()))?)
        }
        None => None,
    };
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

    let interrupted = super::interrupted();
    tokio::pin!(interrupted);
    loop {
        let next = tokio::select! {
            next = joiner.next() => next,
            _ = &mut interrupted => {
                progress.finish().await;
                eprintln!("recon: interrupted; no report written");
                return Ok(CheckResult { outcome: Outcome::Interrupted, summary: joiner.summary().clone() });
            }
        };
        match next {
            Ok(Some(KeyOutcome::Matched(_))) => {}
            Ok(Some(KeyOutcome::Drift(drift))) => {
                counters.drifted.fetch_add(1, Ordering::Relaxed);
                writer.drift(&drift).context("cannot write the report")?;
            }
            Ok(None) => break,
            Err(e) => {
                progress.finish().await;
                return Err(e);
            }
        }
    }
    progress.finish().await;

    let summary = joiner.summary().clone();
    let run = RunInfo {
        started_at,
        duration: clock.elapsed(),
        source: write_model.describe(),
        target: read_model.describe(),
        snapshot_ms: source_scan.snapshot_ms,
        grace: options.grace,
        limit: options.limit,
        allow: options.allow,
        tool_version: env!("CARGO_PKG_VERSION"),
    };
    let in_sync = run.in_sync(&summary);
    writer
        .finish(&summary, joiner.field_counts(), &run)
        .context("cannot write the report")?;
    if let Some(file) = atomic {
        file.commit().context("cannot write the report")?;
    }
    let outcome = if in_sync { Outcome::InSync } else { Outcome::Drift };
    Ok(CheckResult { outcome, summary })
}
