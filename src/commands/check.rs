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
use crate::config::Settings;
use crate::diff::{Comparator, Grace, Joiner, Outcome as KeyOutcome};
use crate::model::{Drift, DriftKind, Key, KeyKind, KeyedDoc, Summary};
use crate::progress::{Counters, Progress, ProgressMode};
use crate::report::{self, AtomicFile, Format, ReportOptions, RunInfo, SampleInfo, ScaleInfo, ShardInfo, Targeted};
use crate::scale::checkpoint::{
    Checkpoint, CheckpointWriter, RangeProgress, RangesCheckpoint, RangesCheckpointWriter, Saved,
};
use crate::scale::keyfile::KeyFile;
use crate::scale::plan::{self, Shard};
use crate::scale::spool::DriftSpool;
use crate::source::elasticsearch::{ConnectSettings, ElasticsearchSettings, ElasticsearchSource, SharedPit};
use crate::source::postgres::{PostgresSettings, PostgresSource, SharedSnapshot};
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
    /// Which keys and how: targeted, parallel, sharded, sampled, rechecked runs.
    pub scale: ScaleOptions,
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
    if args.verbose {
        for line in settings.describe_origins() {
            crate::note!("recon: {line}");
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
    // An unwritable --output fails before any scan starts.
    let atomic = match &options.output {
        Some(path) => {
            Some(AtomicFile::create(path).with_context(|| format!("cannot write the report to {}", path.display()))?)
        }
        None => None,
    };
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
                    let keys = KeyFile::from_stream(sides.write_model.changed_key_stream(*since_ms)?).await?;
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
    if options.verbose {
        crate::note!("recon: write model: {}", sides.write_model.describe());
        crate::note!("recon: read model: {}", sides.read_model.describe());
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
        keys,
        parallel: options.scale.parallel.max(1) as usize,
        shard: options.scale.shard,
        sample: options.scale.sample,
        recheck: options.scale.recheck,
        checkpoint: options.scale.checkpoint.as_ref().map(|(path, resume)| CheckpointSpec {
            path: path.clone(),
            resume: *resume,
            fingerprint: crate::scale::checkpoint::fingerprint(&[
                &settings.postgres.query,
                &settings.postgres.key,
                &settings.elasticsearch.index,
                &settings.elasticsearch.key,
                &options.scale.shard.map(|s| s.to_string()).unwrap_or_default(),
            ]),
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

impl Sides {
    /// [`ensure_known_fields`] on these sides. Not part of [`connect_sides_with`]: reindex's verify gate
    /// connects to a new generation (whose `--mapping` may not map an ignored read-model field) after
    /// checking the rules against the alias at the start.
    pub async fn ensure_known_fields(&self, settings: &Settings) -> anyhow::Result<()> {
        ensure_known_fields(
            settings,
            self.write_model.columns(),
            self.read_model.client(),
            &settings.elasticsearch.index,
        )
        .await
    }
}

/// Connects to both sides, asks the read model for only the compared fields, and refuses a pair whose
/// key kinds would sort differently.
/// Also refuses `[compare]` paths naming no field ([`ensure_known_fields`]).
pub async fn connect_sides(settings: &Settings) -> anyhow::Result<Sides> {
    let sides = connect_sides_with(settings, 1).await?;
    sides.ensure_known_fields(settings).await?;
    Ok(sides)
}

/// [`connect_sides`] with room in the PostgreSQL pool for `parallel` concurrent range scans.
pub async fn connect_sides_with(settings: &Settings, parallel: u32) -> anyhow::Result<Sides> {
    let pg_settings = PostgresSettings {
        updated_at: settings.postgres.updated_at.clone(),
        // Read-ahead memory is pages × ranges: smaller pages per range keep the total flat in N.
        page_size: per_range(settings.postgres.page_size, parallel, 500),
        scan: settings.postgres.scan,
        // A scan per worker, the exported snapshot's holder, lookups and estimates.
        max_connections: (parallel + 4).max(8),
        ..PostgresSettings::new(
            settings.postgres.url.expose(),
            &settings.postgres.query,
            &settings.postgres.key,
        )
    };
    let es = &settings.elasticsearch;
    let mut es_settings = ElasticsearchSettings {
        connect: ConnectSettings::from_config(es),
        index: es.index.clone(),
        key_field: es.key.clone(),
        page_size: per_range(es.page_size, parallel, 250),
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
    ensure_same_key_kind(
        settings,
        write_model.key_kind(),
        read_model.key_kind(),
        read_model.key_mapping(),
    )?;
    Ok(Sides {
        write_model,
        read_model,
    })
}

/// Both sides must order keys alike, or the merge join would pair the wrong documents. `read_mapping`
/// is the read model's own name for the key field's type (`keyword`, `long`), which is what the message
/// shows: recon's key kinds are not mapping types.
pub fn ensure_same_key_kind(
    settings: &Settings,
    write: KeyKind,
    read: KeyKind,
    read_mapping: &str,
) -> anyhow::Result<()> {
    if write != read {
        let (write_kind, fix) = match write {
            KeyKind::Int => ("an integer key (smallint, integer or bigint)", "as long"),
            KeyKind::Text => ("a text key (text, varchar or uuid)", "as keyword"),
        };
        bail!(
            "the two sides sort keys differently: postgres.key {:?} is {write_kind} but elasticsearch.key {:?} is \
             mapped as {read_mapping}; map the field {fix} (or cast the key in the query) so both sort alike",
            settings.postgres.key,
            settings.elasticsearch.key,
        );
    }
    Ok(())
}

/// Refuses `[compare]` paths that name no field of the documents, listing the fields there are: a typo
/// in a rule or an ignore entry would otherwise silently change what is compared. `projected` are the
/// projection's fields ([`PostgresSource::columns`]); the read model's mapping (`index`) is read only
/// when an ignore entry names something else, and a mapping that cannot be read judges no ignore entry.
pub async fn ensure_known_fields(
    settings: &Settings,
    projected: &[String],
    client: &crate::source::elasticsearch::EsClient,
    index: &str,
) -> anyhow::Result<()> {
    let compare = &settings.compare;
    let first = |path: &String| path.split('.').next().unwrap_or_default().to_string();
    let read_model_only = if compare.ignore.iter().all(|p| projected.contains(&first(p))) {
        Some(BTreeSet::new())
    } else {
        mapped_fields(client, index)
            .await
            .map(|fields| fields.into_iter().filter(|f| !projected.contains(f)).collect())
    };
    let unknown = crate::diff::unknown_fields(compare, projected, read_model_only.as_ref());
    if unknown.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "[compare] names {} the documents do not have: {}; fix or remove {} (a typo there would silently \
         change what is compared). The projection (postgres.query) produces: {}; a nested path starts at one \
         of them (e.g. products.price)",
        if unknown.len() == 1 { "a field" } else { "fields" },
        unknown.join(", "),
        if unknown.len() == 1 { "it" } else { "them" },
        projected.join(", ")
    );
    if let Some(only) = read_model_only.filter(|only| !only.is_empty()) {
        let only: Vec<&str> = only.iter().map(String::as_str).collect();
        message.push_str(&format!(
            ". compare.ignore may also name a field only the read model has; {index} maps: {}",
            only.join(", ")
        ));
    }
    bail!("{message}")
}

/// The top-level fields of the mappings behind `index` (every index of an alias); None when they cannot
/// be read.
async fn mapped_fields(client: &crate::source::elasticsearch::EsClient, index: &str) -> Option<BTreeSet<String>> {
    let path: String = url::form_urlencoded::byte_serialize(index.as_bytes()).collect();
    let answer = client
        .request(
            elasticsearch::http::Method::Get,
            &format!("/{path}/_mapping"),
            &[],
            None,
        )
        .await
        .ok()?;
    if answer.status != 200 {
        return None;
    }
    let indices = answer.body.as_object()?;
    Some(
        indices
            .values()
            .filter_map(|i| i["mappings"]["properties"].as_object())
            .flat_map(|properties| properties.keys().cloned())
            .collect(),
    )
}

/// A page size shared out over `parallel` ranges, but not below `floor` (nor above the setting).
fn per_range(page_size: usize, parallel: u32, floor: usize) -> usize {
    (page_size / parallel.max(1) as usize).max(floor).min(page_size)
}

/// Which keys one scan covers and how it behaves.
#[derive(Debug, Clone)]
pub struct ScanScope {
    pub range: KeyRange,
    pub grace: Option<Duration>,
    pub progress: ProgressMode,
    /// Only these keys, looked up on both sides instead of scanned.
    pub keys: Option<Arc<KeyFile>>,
    /// Concurrent range scans; more than one shares one snapshot and one point in time.
    pub parallel: usize,
    /// Only the K-th of N ranges of `range`.
    pub shard: Option<Shard>,
    /// A seeded subset of ranges covering about this fraction of the rows: (fraction, seed).
    pub sample: Option<(f64, u64)>,
    /// Wait this long after the scan, then read every drifted key again and keep what still drifts.
    pub recheck: Option<Duration>,
    /// Record progress for `--resume` (serial scans only).
    pub checkpoint: Option<CheckpointSpec>,
}

/// Where a run records its progress, and whether it continues from there.
#[derive(Debug, Clone)]
pub struct CheckpointSpec {
    pub path: PathBuf,
    pub resume: bool,
    /// What the run compares; a checkpoint of another run is refused.
    pub fingerprint: String,
}

impl ScanScope {
    /// One serial scan of `range` in one snapshot.
    pub fn serial(range: KeyRange, grace: Option<Duration>, progress: ProgressMode) -> ScanScope {
        ScanScope {
            range,
            grace,
            progress,
            keys: None,
            parallel: 1,
            shard: None,
            sample: None,
            recheck: None,
            checkpoint: None,
        }
    }
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
    /// Write-model snapshots the compared data spans (parallel ranges share one).
    pub snapshots: u32,
    /// The shard's range, for `--shard`.
    pub shard: Option<ShardInfo>,
    /// What `--sample` covered.
    pub sample: Option<SampleInfo>,
}

/// Ranges the key space is cut into for `--sample`: fine enough that a few percent is several ranges.
const SAMPLE_RANGES: usize = 200;
/// Keys per lookup round trip in targeted runs and rechecks.
const LOOKUP_BATCH: usize = 1000;
/// Lookup batches in flight at once per side in targeted runs and rechecks: enough to hide the round
/// trips, few enough that only a few batches of keys and documents are held at a time.
const LOOKUPS_IN_FLIGHT: usize = 4;

/// Opens both snapshots, reads them concurrently and merge-joins them, handing every drifted key to
/// `on_drift` in key order. `check` renders the drift; `repair` plans from it.
///
/// A serial scan without recheck hands drift over as it is found. Parallel ranges and rechecks park
/// drift in temp files (never in memory) and hand it over in key order once it is final.
pub async fn scan(
    sides: &Sides,
    comparator: Comparator,
    scope: &ScanScope,
    mut on_drift: impl FnMut(&Drift) -> anyhow::Result<()>,
) -> anyhow::Result<Scanned> {
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    let counters = Arc::new(Counters::default());
    let hold = scope.recheck.is_some();
    let mut snapshots = 1;
    let mut shard = None;
    let mut sample = None;
    let mut pass = if let Some(keys) = &scope.keys {
        let mut sink = if hold {
            Sink::Spool(DriftSpool::new()?)
        } else {
            Sink::Direct(&mut on_drift)
        };
        let pass = targeted(sides, &comparator, keys, scope, &counters, &mut sink).await?;
        pass.with_sink(sink)
    } else {
        let mut ranges = vec![scope.range.clone()];
        // A run over several ranges pins them in its checkpoint: a resume continues those ranges, whatever
        // the statistics say now.
        let resumed_ranges = match &scope.checkpoint {
            Some(spec) if spec.resume => match Saved::load(&spec.path)? {
                Some(Saved::Ranges(saved)) => Some(saved),
                Some(Saved::Serial(_)) if scope.parallel > 1 => bail!(
                    "the checkpoint {} was written by a serial run; resume it without --parallel",
                    spec.path.display()
                ),
                _ => None,
            },
            _ => None,
        };
        if let Some(k) = scope.shard {
            let all = sides.write_model.split(&scope.range, k.count as usize).await?;
            let range = all.get(k.index as usize - 1).cloned().with_context(|| {
                format!(
                    "shard {k}: the key space splits into only {} (too few distinct keys for {} shards)",
                    crate::plural::plural(all.len(), "range", "ranges"),
                    k.count
                )
            })?;
            shard = Some(ShardInfo {
                index: k.index,
                count: k.count,
                after: range.after.clone(),
                until: range.until.clone(),
            });
            ranges = vec![range];
        }
        if let Some((fraction, seed)) = scope.sample {
            let all = sides.write_model.split(&ranges[0], SAMPLE_RANGES).await?;
            let of_ranges = all.len() as u64;
            ranges = plan::sample(all, fraction, seed);
            sample = Some(SampleInfo {
                fraction,
                seed,
                ranges: ranges.len() as u64,
                of_ranges,
                rows_fraction: None,
                estimated_failing: None,
            });
        }
        if scope.parallel > 1 && ranges.len() == 1 {
            ranges = sides.write_model.split(&ranges[0], scope.parallel).await?;
        }
        if let Some(saved) = &resumed_ranges {
            ranges = saved
                .ranges
                .iter()
                .map(|r| KeyRange {
                    after: r.after.clone(),
                    until: r.until.clone(),
                })
                .collect();
        }
        if ranges.len() == 1 && resumed_ranges.is_none() {
            let mut sink = if hold {
                Sink::Spool(DriftSpool::new()?)
            } else {
                Sink::Direct(&mut on_drift)
            };
            let mut range = ranges[0].clone();
            let mut writer = None;
            if let Some(spec) = &scope.checkpoint {
                let resumed = match spec.resume {
                    true => Checkpoint::load(&spec.path)?,
                    false => None,
                };
                if let Some(c) = &resumed {
                    if !range.contains(&c.last_key) {
                        bail!(
                            "the checkpoint {} is outside the range this run checks",
                            spec.path.display()
                        );
                    }
                    range.after = Some(c.last_key.clone());
                }
                writer = Some(CheckpointWriter::open(
                    &spec.path,
                    spec.fingerprint.clone(),
                    resumed.as_ref(),
                    None,
                    |drift| sink.take(&drift),
                )?);
            }
            let mut pass = serial(sides, &comparator, &range, scope, &counters, &mut sink, writer.as_mut()).await?;
            if let Some(writer) = writer {
                let (summary, fields) = writer.base();
                add_summary(&mut pass.summary, summary);
                for (field, n) in fields {
                    *pass.fields.entry(field.clone()).or_default() += n;
                }
                snapshots = writer.snapshots();
                pass.snapshot_ms = writer.snapshot_ms().or(pass.snapshot_ms);
                if !pass.interrupted {
                    writer.finish()?;
                }
            }
            pass.with_sink(sink)
        } else {
            let (pass, spanned) = ranged(sides, &comparator, ranges, scope, &counters, resumed_ranges).await?;
            snapshots = spanned;
            pass
        }
    };
    if !pass.interrupted && !hold {
        // Parallel ranges: their drift, in range order, which is key order.
        for spool in std::mem::take(&mut pass.spools) {
            let mut replay = spool.replay().context("cannot read back the parked drift")?;
            while let Some(drift) = replay.next_drift().context("cannot read back the parked drift")? {
                on_drift(&drift)?;
            }
        }
    }
    if !pass.interrupted {
        if let Some(wait) = scope.recheck {
            let spools = std::mem::take(&mut pass.spools);
            pass.interrupted = recheck(sides, &comparator, scope, wait, spools, &mut pass, &mut on_drift).await?;
        }
    }
    // Documents without a key sit outside every key range, so the run that reaches the end of the key
    // space reads them: a whole check, the last shard, a resumed run. Targeted runs name keys and samples
    // estimate, so neither does. They are read after any recheck, so what they report is current.
    if !pass.interrupted && scope.keys.is_none() && scope.sample.is_none() && scope.range.until.is_none() {
        let last_shard = scope.shard.is_none_or(|k| k.index == k.count);
        if last_shard {
            pass.interrupted = unkeyed(sides, &mut pass.summary, &mut on_drift).await?;
        }
    }
    if let (Some(sample), Some(total)) = (&mut sample, sides.write_model.estimate(&scope.range).await) {
        if total > 0 {
            let fraction = (pass.summary.source_rows as f64 / total as f64).min(1.0);
            sample.rows_fraction = Some(fraction);
            if fraction > 0.0 {
                sample.estimated_failing = Some((pass.summary.failing() as f64 / fraction).round() as u64);
            }
        }
    }
    Ok(Scanned {
        summary: pass.summary,
        fields: pass.fields,
        snapshot_ms: pass.snapshot_ms,
        started_at,
        duration: clock.elapsed(),
        interrupted: pass.interrupted,
        snapshots,
        shard,
        sample,
    })
}

/// Hands every read-model document without a usable key to `on_drift` as `unkeyed` drift, counted in
/// `target_docs` too; true when interrupted.
async fn unkeyed(
    sides: &Sides,
    summary: &mut Summary,
    on_drift: &mut impl FnMut(&Drift) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let mut docs = sides.read_model.open_unkeyed_scan().await?;
    let interrupted = super::interrupted();
    tokio::pin!(interrupted);
    loop {
        let doc = tokio::select! {
            doc = docs.next() => doc,
            _ = &mut interrupted => return Ok(true),
        };
        let Some(doc) = doc else {
            return Ok(false);
        };
        let drift = Drift::unkeyed(doc.context("cannot read the read model's documents without a key")?);
        summary.target_docs += 1;
        summary.count(DriftKind::Unkeyed);
        on_drift(&drift)?;
    }
}

/// Where a pass puts drift: straight to the caller, or into a temp file to be handed over later.
enum Sink<'a> {
    Direct(&'a mut (dyn FnMut(&Drift) -> anyhow::Result<()> + 'a)),
    Spool(DriftSpool),
}

impl Sink<'_> {
    fn take(&mut self, drift: &Drift) -> anyhow::Result<()> {
        match self {
            Sink::Direct(f) => f(drift),
            Sink::Spool(spool) => spool.push(drift).context("cannot park drift in a temp file"),
        }
    }
}

/// What a pass over the key space found before any recheck.
struct Pass {
    summary: Summary,
    fields: BTreeMap<String, u64>,
    snapshot_ms: Option<i64>,
    /// Drift not yet handed over, in key order.
    spools: Vec<DriftSpool>,
    interrupted: bool,
}

impl Pass {
    fn with_sink(mut self, sink: Sink<'_>) -> Pass {
        if let Sink::Spool(spool) = sink {
            self.spools.push(spool);
        }
        self
    }
}

/// Pulls verdicts out of the join until both sides end or the process is asked to stop; true when
/// interrupted.
async fn drive<S, T>(
    joiner: &mut Joiner<S, T>,
    counters: &Counters,
    sink: &mut Sink<'_>,
    mut checkpoint: Option<&mut CheckpointWriter>,
) -> anyhow::Result<bool>
where
    S: futures::Stream<Item = anyhow::Result<KeyedDoc>> + Unpin,
    T: futures::Stream<Item = anyhow::Result<KeyedDoc>> + Unpin,
{
    let interrupted = super::interrupted();
    tokio::pin!(interrupted);
    // With a checkpoint, an interrupt is acted on only between keys: `next()` may have counted a row
    // whose verdict it has not given yet, and the saved counts must cover exactly the keys up to
    // `last_key`.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = checkpoint.is_some().then(|| {
        let stop = stop.clone();
        tokio::spawn(async move {
            super::interrupted().await;
            stop.store(true, Ordering::Relaxed);
        })
    });
    let _watcher = AbortOnDrop(watcher);
    let mut last_key: Option<Key> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            if let (Some(writer), Some(key)) = (checkpoint.as_deref_mut(), &last_key) {
                writer.maybe_save(key, joiner.summary(), joiner.field_counts(), true)?;
            }
            return Ok(true);
        }
        let next = match checkpoint {
            Some(_) => joiner.next().await?,
            None => tokio::select! {
                next = joiner.next() => next?,
                _ = &mut interrupted => return Ok(true),
            },
        };
        let key = match next {
            Some(KeyOutcome::Matched(key)) => key,
            Some(KeyOutcome::Drift(drift)) => {
                counters.drifted.fetch_add(1, Ordering::Relaxed);
                if let Some(writer) = checkpoint.as_deref_mut() {
                    writer.drift(&drift)?;
                }
                sink.take(&drift)?;
                drift.key
            }
            None => return Ok(false),
        };
        if let Some(writer) = checkpoint.as_deref_mut() {
            writer.maybe_save(&key, joiner.summary(), joiner.field_counts(), false)?;
            last_key = Some(key);
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

fn grace_at(grace: Option<Duration>, snapshot_ms: Option<i64>) -> Option<Grace> {
    match (grace, snapshot_ms) {
        (Some(g), Some(snapshot_ms)) => Some(Grace {
            snapshot_ms,
            grace_ms: g.as_millis() as i64,
        }),
        _ => None,
    }
}

fn counted(docs: crate::source::DocStream, counter: Arc<Counters>, source: bool) -> crate::source::DocStream {
    docs.inspect(move |_| {
        let c = if source {
            &counter.source_rows
        } else {
            &counter.target_docs
        };
        c.fetch_add(1, Ordering::Relaxed);
    })
    .boxed()
}

/// One range in its own snapshot and PIT: the plain `recon check`.
async fn serial(
    sides: &Sides,
    comparator: &Comparator,
    range: &KeyRange,
    scope: &ScanScope,
    counters: &Arc<Counters>,
    sink: &mut Sink<'_>,
    mut checkpoint: Option<&mut CheckpointWriter>,
) -> anyhow::Result<Pass> {
    // Both snapshots are opened, then read concurrently: each side pages ahead on its own task.
    let (source_scan, target_scan) = tokio::try_join!(
        sides.write_model.open_scan(range.clone()),
        sides.read_model.open_scan(range.clone())
    )?;
    let progress = Progress::start(
        scope.progress,
        ("PostgreSQL".into(), "Elasticsearch".into()),
        (source_scan.estimate, target_scan.estimate),
        counters.clone(),
    );
    if let Some(writer) = checkpoint.as_deref_mut() {
        writer.note_snapshot(source_scan.snapshot_ms);
    }
    let source = counted(source_scan.docs, counters.clone(), true);
    let target = counted(target_scan.docs, counters.clone(), false);
    let mut joiner = Joiner::new(
        source,
        target,
        comparator.clone(),
        grace_at(scope.grace, source_scan.snapshot_ms),
    );
    let driven = drive(&mut joiner, counters, sink, checkpoint).await;
    progress.finish().await;
    Ok(Pass {
        interrupted: driven?,
        summary: joiner.summary().clone(),
        fields: joiner.field_counts().clone(),
        snapshot_ms: source_scan.snapshot_ms,
        spools: Vec::new(),
    })
}

/// The documents of `keys` on one side, in key order, looked up a few batches at a time (each side
/// reads the key file on its own).
fn lookup_stream<'a, S: DocumentSource>(
    source: &'a S,
    keys: &'a KeyFile,
    counter: Arc<Counters>,
    write_model: bool,
) -> anyhow::Result<futures::stream::BoxStream<'a, anyhow::Result<KeyedDoc>>> {
    use futures::TryStreamExt;
    Ok(futures::stream::iter(keys.chunks(LOOKUP_BATCH)?)
        .map(move |chunk| async move {
            let chunk = chunk.context("cannot read back the keys to check")?;
            let mut docs = source.lookup(&chunk).await?;
            docs.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.meta.id.cmp(&b.meta.id)));
            Ok::<_, anyhow::Error>(futures::stream::iter(docs.into_iter().map(Ok)))
        })
        .buffered(LOOKUPS_IN_FLIGHT)
        .try_flatten()
        .inspect(move |_| {
            let c = if write_model {
                &counter.source_rows
            } else {
                &counter.target_docs
            };
            c.fetch_add(1, Ordering::Relaxed);
        })
        .boxed())
}

/// `--keys`, `--keys-file`, `--since`: both sides looked up by key, joined like a scan.
async fn targeted(
    sides: &Sides,
    comparator: &Comparator,
    keys: &KeyFile,
    scope: &ScanScope,
    counters: &Arc<Counters>,
    sink: &mut Sink<'_>,
) -> anyhow::Result<Pass> {
    let snapshot_ms = Some(chrono::Utc::now().timestamp_millis());
    let progress = Progress::start(
        scope.progress,
        ("PostgreSQL".into(), "Elasticsearch".into()),
        (Some(keys.len()), Some(keys.len())),
        counters.clone(),
    );
    let source = lookup_stream(&sides.write_model, keys, counters.clone(), true)?;
    let target = lookup_stream(&sides.read_model, keys, counters.clone(), false)?;
    let mut joiner = Joiner::new(source, target, comparator.clone(), grace_at(scope.grace, snapshot_ms));
    let driven = drive(&mut joiner, counters, sink, None).await;
    progress.finish().await;
    Ok(Pass {
        interrupted: driven?,
        summary: joiner.summary().clone(),
        fields: joiner.field_counts().clone(),
        snapshot_ms,
        spools: Vec::new(),
    })
}

/// Several ranges, `scope.parallel` at a time, all in one exported PostgreSQL snapshot and one
/// point in time: exactly as consistent as a serial scan. Each range's join runs on its own task and
/// parks its drift in a temp file; the files come back in range order.
///
/// With `--checkpoint`, every range records its own progress; `resumed` is the checkpoint a `--resume`
/// continues (its ranges are the ones given). Returns the pass and the snapshots its data spans.
async fn ranged(
    sides: &Sides,
    comparator: &Comparator,
    ranges: Vec<KeyRange>,
    scope: &ScanScope,
    counters: &Arc<Counters>,
    resumed: Option<RangesCheckpoint>,
) -> anyhow::Result<(Pass, u32)> {
    let snapshot = sides.write_model.export_snapshot().await?;
    let checkpoint = match &scope.checkpoint {
        Some(spec) => Some(Arc::new(RangesCheckpointWriter::open(
            &spec.path,
            spec.fingerprint.clone(),
            &ranges,
            resumed,
            Some(snapshot.snapshot_ms()),
        )?)),
        None => None,
    };
    let pit = sides.read_model.open_shared_pit().await?;
    let result = run_ranges(
        sides,
        comparator,
        ranges,
        scope,
        counters,
        &snapshot,
        &pit,
        checkpoint.clone(),
    )
    .await;
    sides.read_model.close_shared_pit(pit).await;
    drop(snapshot);
    let mut pass = result?;
    let mut snapshots = 1;
    if let Some(writer) = checkpoint {
        snapshots = writer.snapshots();
        pass.snapshot_ms = writer.snapshot_ms().or(pass.snapshot_ms);
        if !pass.interrupted {
            let writer = Arc::into_inner(writer).context("a range worker outlived the scan")?;
            writer.finish()?;
        }
    }
    Ok((pass, snapshots))
}

/// One range's counts, per-field counts and parked drift.
type RangeFound = (Summary, BTreeMap<String, u64>, DriftSpool);
/// A range worker's end: what it found, or `None` when it stopped early (interrupted, progress saved).
type RangeDone = anyhow::Result<Option<(usize, Summary, BTreeMap<String, u64>, DriftSpool)>>;

#[allow(clippy::too_many_arguments)]
async fn run_ranges(
    sides: &Sides,
    comparator: &Comparator,
    ranges: Vec<KeyRange>,
    scope: &ScanScope,
    counters: &Arc<Counters>,
    snapshot: &SharedSnapshot,
    pit: &SharedPit,
    checkpoint: Option<Arc<RangesCheckpointWriter>>,
) -> anyhow::Result<Pass> {
    let snapshot_ms = Some(snapshot.snapshot_ms());
    let grace = grace_at(scope.grace, snapshot_ms);
    let saved: Vec<Option<RangeProgress>> = match &checkpoint {
        Some(writer) => writer.ranges().into_iter().map(Some).collect(),
        None => vec![None; ranges.len()],
    };
    // Estimates only size the progress bars; a cheap EXPLAIN per range, of what is left of it when
    // resuming (a finished range has nothing left).
    let mut estimates: Vec<Option<u64>> = vec![None; ranges.len()];
    if scope.progress != ProgressMode::Off {
        for ((range, saved), estimate) in ranges.iter().zip(&saved).zip(estimates.iter_mut()).take(16) {
            *estimate = match saved {
                Some(saved) if saved.done => Some(0),
                Some(saved) => sides.write_model.estimate(&saved.rest()).await,
                None => sides.write_model.estimate(range).await,
            };
        }
    }
    let estimate = estimates.iter().copied().sum::<Option<u64>>().filter(|&n| n > 0);
    let (progress, board) = Progress::start_ranged(
        scope.progress,
        (
            format!("PostgreSQL ×{}", scope.parallel.min(ranges.len())),
            "Elasticsearch".into(),
        ),
        (estimate, estimate),
        counters.clone(),
        ranges.len(),
    );
    let of_ranges = ranges.len();
    // Tells the range workers to save their progress and stop (only with a checkpoint: without one they
    // are simply aborted).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut results: Vec<Option<RangeFound>> = (0..ranges.len()).map(|_| None).collect();
    let mut pending = ranges.into_iter().zip(saved).enumerate();
    let mut running: tokio::task::JoinSet<RangeDone> = tokio::task::JoinSet::new();
    let interrupted = super::interrupted();
    tokio::pin!(interrupted);
    let outcome: anyhow::Result<bool> = async {
        loop {
            while running.len() < scope.parallel.max(1) {
                let Some((index, (range, saved))) = pending.next() else {
                    break;
                };
                let mut spool = DriftSpool::new().context("cannot park drift in a temp file")?;
                // Drift a checkpointed earlier run found in this range comes first: its keys are smaller.
                let mut log = match &checkpoint {
                    Some(writer) => Some(writer.range_log(index, |drift| {
                        spool.push(&drift).context("cannot park drift in a temp file")
                    })?),
                    None => None,
                };
                let (base_summary, base_fields) = match &saved {
                    Some(saved) => (saved.summary.clone(), saved.fields.clone()),
                    None => (Summary::default(), BTreeMap::new()),
                };
                if saved.as_ref().is_some_and(|s| s.done) {
                    results[index] = Some((base_summary, base_fields, spool));
                    continue;
                }
                let rest = saved.as_ref().map(RangeProgress::rest).unwrap_or(range);
                let label = format!("range {}/{of_ranges}", index + 1);
                let own = board.begin(index, label, estimates[index]);
                let (source_scan, target_scan) = tokio::try_join!(
                    sides.write_model.open_scan_at(rest.clone(), Some(snapshot)),
                    sides.read_model.open_scan_at(rest, Some(pit))
                )?;
                let source = counted(counted(source_scan.docs, counters.clone(), true), own.clone(), true);
                let target = counted(counted(target_scan.docs, counters.clone(), false), own.clone(), false);
                let comparator = comparator.clone();
                let counters = counters.clone();
                let checkpoint = checkpoint.clone();
                let stop = stop.clone();
                running.spawn(async move {
                    let mut joiner = Joiner::new(source, target, comparator, grace);
                    // The range's counts so far, earlier runs included.
                    let so_far = |joiner: &Joiner<_, _>| {
                        let mut summary = base_summary.clone();
                        add_summary(&mut summary, joiner.summary());
                        let mut fields = base_fields.clone();
                        for (field, n) in joiner.field_counts() {
                            *fields.entry(field.clone()).or_default() += n;
                        }
                        (summary, fields)
                    };
                    let mut last_key: Option<Key> = None;
                    loop {
                        // Asked to stop: only between keys, never inside `next()`, which may have counted
                        // a row whose verdict it has not given yet (the saved counts must cover exactly
                        // the keys up to `last_key`).
                        if stop.load(Ordering::Relaxed) {
                            if let (Some(writer), Some(log)) = (&checkpoint, log.as_mut()) {
                                let (summary, fields) = so_far(&joiner);
                                writer.save_range(index, log, last_key.as_ref(), &summary, &fields, false)?;
                            }
                            return Ok(None);
                        }
                        let key = match joiner.next().await? {
                            None => break,
                            Some(KeyOutcome::Matched(key)) => key,
                            Some(KeyOutcome::Drift(drift)) => {
                                counters.drifted.fetch_add(1, Ordering::Relaxed);
                                own.drifted.fetch_add(1, Ordering::Relaxed);
                                if let Some(log) = log.as_mut() {
                                    log.drift(&drift)?;
                                }
                                spool.push(&drift).context("cannot park drift in a temp file")?;
                                drift.key
                            }
                        };
                        if let (Some(writer), Some(log)) = (&checkpoint, log.as_mut()) {
                            if log.due() {
                                let (summary, fields) = so_far(&joiner);
                                writer.save_range(index, log, Some(&key), &summary, &fields, false)?;
                            }
                            last_key = Some(key);
                        }
                    }
                    let (summary, fields) = so_far(&joiner);
                    if let (Some(writer), Some(log)) = (&checkpoint, log.as_mut()) {
                        writer.save_range(index, log, last_key.as_ref(), &summary, &fields, true)?;
                    }
                    Ok(Some((index, summary, fields, spool)))
                });
            }
            let done = tokio::select! {
                done = running.join_next() => done,
                _ = &mut interrupted => {
                    if checkpoint.is_some() {
                        // Each worker saves how far it got, then stops.
                        stop.store(true, Ordering::Relaxed);
                        while let Some(done) = running.join_next().await {
                            done.context("a range worker panicked")??;
                        }
                    }
                    return Ok(true);
                }
            };
            let Some(done) = done else { return Ok(false) };
            let Some((index, summary, fields, spool)) = done.context("a range worker panicked")?? else {
                continue;
            };
            board.end(index);
            results[index] = Some((summary, fields, spool));
        }
    }
    .await;
    running.abort_all();
    progress.finish().await;
    let interrupted = outcome?;
    let mut pass = Pass {
        summary: Summary::default(),
        fields: BTreeMap::new(),
        snapshot_ms,
        spools: Vec::new(),
        interrupted,
    };
    for (summary, fields, spool) in results.into_iter().flatten() {
        add_summary(&mut pass.summary, &summary);
        for (field, n) in fields {
            *pass.fields.entry(field).or_default() += n;
        }
        pass.spools.push(spool);
    }
    Ok(pass)
}

pub(crate) fn add_summary(total: &mut Summary, part: &Summary) {
    *total += part;
}

/// Counts `drift` in (`up`) or out of the verdict counts and per-field counts, as the join does.
fn tally(summary: &mut Summary, fields: &mut BTreeMap<String, u64>, drift: &Drift, up: bool) {
    let step = |n: &mut u64| *n = if up { *n + 1 } else { n.saturating_sub(1) };
    match drift.kind {
        DriftKind::Missing => step(&mut summary.missing),
        DriftKind::Orphaned => step(&mut summary.orphaned),
        DriftKind::Mismatched => step(&mut summary.mismatched),
        DriftKind::Duplicate => step(&mut summary.duplicate),
        DriftKind::Pending => step(&mut summary.pending),
        DriftKind::Unkeyed => step(&mut summary.unkeyed),
    }
    if matches!(drift.kind, DriftKind::Mismatched | DriftKind::Duplicate) {
        let distinct: BTreeSet<&str> = drift.diffs.iter().map(|d| d.field.as_str()).collect();
        for field in distinct {
            let n = fields.entry(field.to_string()).or_default();
            step(n);
            if *n == 0 {
                fields.remove(field);
            }
        }
    }
}

/// `--recheck`: waits, then reads every parked drifted key again from both sides (PostgreSQL in a
/// fresh transaction, Elasticsearch by key) and compares once more. Keys that now agree, or are gone
/// from both sides, are converged; the rest is handed over with its fresh evidence. True when
/// interrupted.
async fn recheck(
    sides: &Sides,
    comparator: &Comparator,
    scope: &ScanScope,
    wait: Duration,
    spools: Vec<DriftSpool>,
    pass: &mut Pass,
    on_drift: &mut impl FnMut(&Drift) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let parked: u64 = spools.iter().map(DriftSpool::len).sum();
    if parked == 0 {
        return Ok(false);
    }
    if scope.progress != ProgressMode::Off {
        crate::note!(
            "recon: scan done; rechecking {parked} drifted keys in {}",
            humantime::format_duration(wait)
        );
    }
    // One listener for the wait and the lookups: a signal that comes while a batch is being compared
    // is seen at the next batch.
    let stop = super::interrupted();
    tokio::pin!(stop);
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = &mut stop => return Ok(true),
    }
    let grace = grace_at(scope.grace, Some(chrono::Utc::now().timestamp_millis()));
    let started = Instant::now();
    let converged_before = pass.summary.converged;
    // Batches of parked drift in key order, read from the temp files as the lookups need them.
    let mut spools = spools.into_iter();
    let mut replay: Option<crate::scale::spool::DriftReplay> = None;
    let batches = std::iter::from_fn(move || loop {
        let current = match &mut replay {
            Some(current) => current,
            None => match spools.next()?.replay() {
                Ok(opened) => replay.insert(opened),
                Err(e) => return Some(Err(e)),
            },
        };
        match current.next_batch(LOOKUP_BATCH) {
            Ok(batch) if batch.is_empty() => replay = None,
            found => return Some(found),
        }
    });
    // A few batches in flight hide the round trips; `buffered` hands them back in key order.
    let mut looked_up = futures::stream::iter(batches)
        .map(|batch| async move {
            let batch = batch.context("cannot read back the parked drift")?;
            let keys: Vec<Key> = batch.iter().map(|d| d.key.clone()).collect();
            let (expected, actual) = tokio::try_join!(sides.write_model.lookup(&keys), sides.read_model.lookup(&keys))?;
            Ok::<_, anyhow::Error>((batch, expected, actual))
        })
        .buffered(LOOKUPS_IN_FLIGHT);
    loop {
        let looked_up = tokio::select! {
            next = looked_up.next() => next,
            _ = &mut stop => return Ok(true),
        };
        let Some(looked_up) = looked_up else { break };
        let (batch, mut expected, mut actual) = looked_up?;
        expected.sort_by(|a, b| a.key.cmp(&b.key));
        actual.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.meta.id.cmp(&b.meta.id)));
        let mut joiner = Joiner::new(
            futures::stream::iter(expected.into_iter().map(Ok)),
            futures::stream::iter(actual.into_iter().map(Ok)),
            comparator.clone(),
            grace,
        );
        let mut still: BTreeMap<Key, Drift> = BTreeMap::new();
        while let Some(outcome) = joiner.next().await? {
            if let KeyOutcome::Drift(drift) = outcome {
                still.insert(drift.key.clone(), drift);
            }
        }
        for old in batch {
            tally(&mut pass.summary, &mut pass.fields, &old, false);
            match still.remove(&old.key) {
                Some(drift) => {
                    tally(&mut pass.summary, &mut pass.fields, &drift, true);
                    on_drift(&drift)?;
                }
                None => {
                    pass.summary.converged += 1;
                    pass.summary.matched += 1;
                }
            }
        }
    }
    if scope.progress != ProgressMode::Off {
        crate::note!(
            "recon: rechecked {} in {:.2} s; {} converged",
            crate::plural::plural(parked, "key", "keys"),
            started.elapsed().as_secs_f64(),
            pass.summary.converged - converged_before
        );
    }
    Ok(false)
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
