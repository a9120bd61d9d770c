//! Scan plans: one serial range, several ranges in one shared view, targeted keys, a sample, a resumed
//! run; each hands drift to a sink in key order. Never writes to either side.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;

use super::connect::Sides;
use super::pass::{counted, grace_at, Pass, Sink, LOOKUPS_IN_FLIGHT, LOOKUP_BATCH};
use super::recheck::recheck;
use super::scope::ScanScope;
use crate::diff::{Comparator, Joiner, Outcome as KeyOutcome};
use crate::model::{Drift, DriftKind, Key, KeyedDoc, Summary};
use crate::progress::{Counters, Progress, ProgressMode};
use crate::report::{SampleInfo, ShardInfo};
use crate::scale::checkpoint::{
    Checkpoint, CheckpointWriter, RangeProgress, RangesCheckpoint, RangesCheckpointWriter, Saved,
};
use crate::scale::keyfile::KeyFile;
use crate::scale::plan::{self};
use crate::scale::spool::DriftSpool;
use crate::source::SharedView;
use crate::source::{DocumentSource, KeyRange};

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
                pass.summary += summary;
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
        (sides.write_model.product().into(), sides.read_model.product().into()),
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
pub(super) fn lookup_stream<'a, S: DocumentSource + ?Sized>(
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
        (sides.write_model.product().into(), sides.read_model.product().into()),
        (Some(keys.len()), Some(keys.len())),
        counters.clone(),
    );
    let source = lookup_stream(sides.write_model.as_ref(), keys, counters.clone(), true)?;
    let target = lookup_stream(sides.read_model.as_ref(), keys, counters.clone(), false)?;
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
    let snapshot = sides.write_model.open_view().await?;
    let checkpoint = match &scope.checkpoint {
        Some(spec) => Some(Arc::new(RangesCheckpointWriter::open(
            &spec.path,
            spec.fingerprint.clone(),
            &ranges,
            resumed,
            snapshot.snapshot_ms(),
        )?)),
        None => None,
    };
    // A read model without a shared view lets each range open its own.
    let view = sides.read_model.open_view().await?;
    let result = run_ranges(
        sides,
        comparator,
        ranges,
        scope,
        counters,
        snapshot.as_ref(),
        view.as_deref(),
        checkpoint.clone(),
    )
    .await;
    if let Some(view) = view {
        sides.read_model.close_view(view).await;
    }
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
    snapshot: &dyn SharedView,
    view: Option<&dyn SharedView>,
    checkpoint: Option<Arc<RangesCheckpointWriter>>,
) -> anyhow::Result<Pass> {
    let snapshot_ms = snapshot.snapshot_ms();
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
            format!("{} ×{}", sides.write_model.product(), scope.parallel.min(ranges.len())),
            sides.read_model.product().into(),
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
                    sides.write_model.open_scan_in(rest.clone(), snapshot),
                    sides.read_model.open_scan_in(rest, view)
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
                        summary += joiner.summary();
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
        pass.summary += &summary;
        for (field, n) in fields {
            *pass.fields.entry(field).or_default() += n;
        }
        pass.spools.push(spool);
    }
    Ok(pass)
}
