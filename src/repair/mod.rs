//! `recon repair`: re-verify drifted keys on both sides, plan conditional writes, and apply them behind
//! a write-ahead audit log that `recon undo` and `--resume` read.
//!
//! The rule everything here follows: a repair never loses a write. Every write is conditional on the
//! version that was compared (an opaque token of the read model's, see [`crate::model::Version`]) or
//! is a `create`; a conflict means someone wrote meanwhile, and the key is left alone and reported.
//! The writes go through the read model's [`ConditionalWriter`].
//!
//! [`plan`] is pure; [`apply`] re-reads and writes; [`audit`] is the log; [`undo`] reads it back.

pub mod apply;
pub mod audit;
pub mod plan;
pub mod reproject;
pub mod spool;
pub mod undo;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::{json, Value};

use self::apply::{Executor, Repairer, Tally};
use self::audit::{AuditLog, Header, AUDIT_SCHEMA};
use self::plan::{plan_key, PlanContext, PlannedAction, RepairMode};
use self::spool::{KeySpool, PlanSpool};
use crate::command_line::{CommandLine, Takes, Target};
use crate::config::Settings;
use crate::diff::Comparator;
use crate::engine::Outcome;
use crate::engine::{connect_sides, scan, ScanScope};
use crate::model::{DriftKind, Key, KeyedDoc};
use crate::plural::plural;
use crate::progress::ProgressMode;
use crate::scale::keyfile::{KeyFile, KeySorter};
use crate::source::{BulkSettings, ConditionalWriter, KeyRange, ReadModel, WriteKind, WriteModel};

/// The `--plan` file this recon writes: versions as the read model's opaque tokens.
pub const PLAN_SCHEMA: &str = "recon.repair-plan/v2";
/// Plans of older recons, with Elasticsearch's versions spelled out: read as well.
const PLAN_SCHEMA_V1: &str = "recon.repair-plan/v1";

/// `--max-changes` unless given.
pub const DEFAULT_MAX_CHANGES: u64 = 1000;
/// `--max-deletes` unless given.
pub const DEFAULT_MAX_DELETES: u64 = 100;

/// Keys looked up per request while planning and re-checking.
const LOOKUP_CHUNK: usize = 1000;
/// Lookup chunks in flight at once.
const LOOKUPS_IN_FLIGHT: usize = 4;

/// Where the keys to repair come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A full check, now.
    Check,
    /// The drift listed in a `recon.check` report (JSON or NDJSON).
    Report(PathBuf),
    /// Keys given by the operator, as text (`--keys`).
    Keys(Vec<String>),
    /// `--keys-file`: one key per line, `#` comments, `-` for stdin.
    KeysFile(PathBuf),
    /// A plan written earlier with `--plan`: its conditions are kept, so anything written since
    /// the plan was made conflicts.
    Plan(PathBuf),
    /// The unfinished part of an audit log.
    Resume(PathBuf),
}

/// Output of the summary on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct RepairOptions {
    pub keys: KeySource,
    pub mode: RepairMode,
    pub apply: bool,
    pub yes: bool,
    pub plan_out: Option<PathBuf>,
    pub max_changes: u64,
    pub max_deletes: u64,
    pub audit: Option<PathBuf>,
    pub bulk: BulkSettings,
    pub concurrency: usize,
    pub grace: Option<Duration>,
    pub progress: ProgressMode,
    pub format: SummaryFormat,
    /// The config file and the flags that override where the run acts: for the header and the
    /// commands printed for the user to paste (resume, undo, apply).
    pub target: Target,
    /// `--via amqp|http|ndjson`: through the projector instead of by writing.
    pub reproject: reproject::ReprojectOptions,
}

/// A repair's connections ([`crate::engine::connect::connect_for_repair`]: whole documents on the read
/// model) and the comparator.
pub struct Connected {
    pub write_model: Box<dyn WriteModel>,
    pub read_model: Box<dyn ReadModel>,
    pub comparator: Comparator,
}

impl Connected {
    /// The writer a repair applies its plan with; refused for a read model recon cannot write.
    fn writer(&self, batching: BulkSettings) -> anyhow::Result<Arc<dyn ConditionalWriter>> {
        self.read_model.conditional_writer(batching).with_context(|| {
            format!(
                "{} cannot be repaired by recon: it has no conditional writes",
                self.read_model.describe()
            )
        })
    }
}

async fn connect(settings: &Settings) -> anyhow::Result<Connected> {
    let comparator = Comparator::new(&settings.compare).context("invalid [compare] rules")?;
    let sides = crate::engine::connect::connect_for_repair(settings).await?;
    Ok(Connected {
        write_model: sides.write_model,
        read_model: sides.read_model,
        comparator,
    })
}

/// What a repair run did, for the summary.
#[derive(Debug, Default)]
struct RunReport {
    /// Actions planned, per (drift, action).
    planned: BTreeMap<(DriftKind, WriteKind), u64>,
    tally: Tally,
    remaining: BTreeMap<DriftKind, u64>,
    remaining_keys: Vec<(Value, DriftKind)>,
    audit: Option<PathBuf>,
    applied: bool,
}

/// Runs `recon repair` with resolved settings.
pub async fn run(settings: &Settings, options: &RepairOptions) -> anyhow::Result<Outcome> {
    // Before anything is read: a refusal after a whole check would waste it.
    needs_yes(options.apply, options.yes)?;
    if let KeySource::Resume(path) = &options.keys {
        return resume(settings, options, path).await;
    }
    if let Some(via) = options.reproject.via {
        return reproject::run(settings, options, via).await;
    }
    let conn = connect(settings).await?;
    let writer = conn.writer(options.bulk.clone())?;
    let cx = PlanContext {
        comparator: &conn.comparator,
        mode: writable_mode(options.mode, writer.as_ref(), true),
        write_index: settings.read_model_target().to_string(),
        pending_since_ms: pending_since(settings, options.grace)?,
    };
    let mut clock = std::time::Instant::now();
    // The plan goes to disk as it is made, counted on the way: memory stays flat however much
    // drift there is, and the caps are checked on the whole plan before any write.
    let mut spool = PlanSpool::new().context("cannot create a temporary file for the plan")?;
    match make_plan(settings, options, &conn, &cx, &mut spool).await? {
        Some(started) => clock = started.unwrap_or(clock),
        None => {
            crate::note!("recon: interrupted; nothing was written");
            return Ok(Outcome::Interrupted);
        }
    }
    tracing::debug!(
        "planned {} actions in {:.2} s (keys looked up and re-verified on both sides)",
        spool.len(),
        clock.elapsed().as_secs_f64()
    );
    if let Some(path) = &options.plan_out {
        write_plan(path, settings, &mut spool)
            .with_context(|| format!("cannot write the plan to {}", path.display()))?;
    }
    print_plan(&spool, options, writer.as_ref());
    if spool.is_empty() {
        print_summary(options, &RunReport { ..RunReport::default() })?;
        return Ok(Outcome::InSync);
    }
    let deletes = spool.deletes();
    let changes = spool.len();
    let over_caps = caps_message(changes, deletes, options, settings.redis.is_none());
    if !options.apply {
        if let Some(message) = &over_caps {
            crate::note!("recon: warning: {message}");
        }
        crate::note!(
            "recon: dry run: nothing was written; to make these changes: {}",
            apply_command(options)
        );
        print_summary(
            options,
            &RunReport {
                planned: spool.counts().clone(),
                ..RunReport::default()
            },
        )?;
        return Ok(Outcome::Drift);
    }
    if let Some(message) = over_caps {
        bail!("{message}");
    }
    if !confirm(
        &format!(
            "Apply {} ({}) to {}?",
            plural(changes, "change", "changes"),
            plural(deletes, "delete", "deletes"),
            settings.read_model_target()
        ),
        options.yes,
    )? {
        crate::note!("recon: not confirmed; nothing was written");
        return Ok(Outcome::Drift);
    }
    // The log exists, durable, before the first write; an unwritable path stops the run here.
    let audit_path = options.audit.clone().unwrap_or_else(|| audit::default_path("repair"));
    let mut log = AuditLog::create(&audit_path)?;
    log.header(&header(settings, options, cx.mode, changes))?;
    for part in spool.read(LOOKUP_CHUNK)? {
        log.plan(&part?)?;
    }
    log.finish()?;
    if options.progress != ProgressMode::Off {
        crate::note!(
            "recon: applying {changes} actions to {}; audit log {}",
            settings.read_model_target(),
            audit_path.display()
        );
    }
    let executor = executor(writer, log, options)?;
    let repairer = Repairer {
        write_model: conn.write_model.as_ref(),
        read_model: conn.read_model.as_ref(),
        comparator: &conn.comparator,
        ignore: &settings.compare.ignore,
    };
    let clock = std::time::Instant::now();
    let tally = executor
        .run_plan(&repairer, spool.read(options.bulk.max_actions)?, changes)
        .await
        .map_err(|e| e.context(resume_hint(&audit_path, options)))?;
    let secs = clock.elapsed().as_secs_f64();
    tracing::debug!(
        "applied {changes} actions in {secs:.2} s ({:.0} actions/s, {} audit fsyncs)",
        changes as f64 / secs,
        executor.durable.fsyncs()
    );
    let planned = spool.counts().clone();
    let keys = planned_keys(spool.read(LOOKUP_CHUNK)?);
    finish(
        settings, options, &conn, &cx, &executor, planned, keys, tally, audit_path,
    )
    .await
}

/// Plans the keys `options.keys` names into `spool`: each re-verified on both sides now. None when
/// the check that finds them was interrupted; otherwise when the planning itself started, if after a
/// check (which reports its own time).
async fn make_plan(
    settings: &Settings,
    options: &RepairOptions,
    conn: &Connected,
    cx: &PlanContext<'_>,
    spool: &mut PlanSpool,
) -> anyhow::Result<Option<Option<std::time::Instant>>> {
    let mut started = None;
    match &options.keys {
        KeySource::Plan(path) => read_plan(path, spool)?,
        KeySource::Check => {
            let (keys, unkeyed) = match drifted_keys(settings, options).await? {
                Some(found) => found,
                None => return Ok(None),
            };
            // The check hands drift over in key order, each key once. It reports its own time.
            started = Some(std::time::Instant::now());
            plan_keys(conn, cx, keys.chunks(LOOKUP_CHUNK)?, spool).await?;
            if unkeyed {
                plan_unkeyed(conn, spool).await?;
            }
        }
        KeySource::Report(path) => {
            let (keys, unkeyed) = report_keys(path)?;
            plan_keys(conn, cx, keys.chunks(LOOKUP_CHUNK)?, spool).await?;
            if unkeyed {
                plan_unkeyed(conn, spool).await?;
            }
        }
        KeySource::Keys(texts) => {
            // clap split the list at its commas; the one key parser reads it whole, as `check --keys` does.
            let keys = crate::scale::keys::parse_list(&texts.join(","), conn.write_model.key_kind())?;
            let keys = KeyFile::sort(keys.into_iter().map(Ok))?;
            plan_keys(conn, cx, keys.chunks(LOOKUP_CHUNK)?, spool).await?;
        }
        KeySource::KeysFile(path) => {
            let keys = crate::scale::keys::read_file(path, conn.write_model.key_kind())?;
            plan_keys(conn, cx, keys.chunks(LOOKUP_CHUNK)?, spool).await?;
        }
        KeySource::Resume(_) => unreachable!("a resume plans nothing"),
    };
    Ok(Some(started))
}

/// The keys of planned actions, `LOOKUP_CHUNK` at a time. A key's actions are consecutive (planned
/// together), so each key comes once.
fn planned_keys(
    actions: impl Iterator<Item = std::io::Result<Vec<PlannedAction>>>,
) -> impl Iterator<Item = std::io::Result<Vec<Key>>> {
    let mut last: Option<Key> = None;
    actions.map(move |part| {
        let mut keys = Vec::new();
        for key in part?.iter().filter_map(PlannedAction::key) {
            if last.as_ref() != Some(&key) {
                last = Some(key.clone());
                keys.push(key);
            }
        }
        Ok(keys)
    })
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    settings: &Settings,
    options: &RepairOptions,
    conn: &Connected,
    cx: &PlanContext<'_>,
    executor: &Executor,
    planned: BTreeMap<(DriftKind, WriteKind), u64>,
    keys: impl Iterator<Item = std::io::Result<Vec<Key>>>,
    tally: Tally,
    audit_path: PathBuf,
) -> anyhow::Result<Outcome> {
    if executor.stopped() {
        crate::note!(
            "recon: warning: interrupted: {} actions recorded, {} not started; {}",
            tally.applied + tally.conflict + tally.failed + tally.skipped,
            tally.not_started,
            resume_hint(&audit_path, options)
        );
        return Ok(Outcome::Interrupted);
    }
    // Searches see writes only after a refresh; the re-check must see the repair.
    executor.writer.refresh(settings.read_model_target()).await?;
    let clock = std::time::Instant::now();
    let recheck = plan_keys_verdicts(conn, cx, keys).await?;
    tracing::debug!("re-checked the repaired keys in {:.2} s", clock.elapsed().as_secs_f64());
    // Documents without a key are named by no key: list them again, as the check does.
    let unkeyed_left = if planned.keys().any(|(drift, _)| *drift == DriftKind::Unkeyed) {
        let mut docs = conn.read_model.open_unkeyed_scan().await?;
        let mut left = 0u64;
        while let Some(doc) = docs.next().await {
            doc.context("cannot read the read model's documents without a key")?;
            left += 1;
        }
        left
    } else {
        0
    };
    let mut report = RunReport {
        planned,
        tally,
        audit: Some(audit_path),
        applied: true,
        ..RunReport::default()
    };
    for (key, drift) in recheck {
        if drift != DriftKind::Pending {
            *report.remaining.entry(drift).or_insert(0) += 1;
            report.remaining_keys.push((key.to_json(), drift));
        }
    }
    if unkeyed_left > 0 {
        report.remaining.insert(DriftKind::Unkeyed, unkeyed_left);
    }
    print_summary(options, &report)?;
    let clean = report.remaining.is_empty() && report.tally.failed == 0 && report.tally.conflict == 0;
    Ok(if clean { Outcome::InSync } else { Outcome::Drift })
}

fn executor(writer: Arc<dyn ConditionalWriter>, log: AuditLog, options: &RepairOptions) -> anyhow::Result<Executor> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        crate::engine::interrupted().await;
        flag.store(true, Ordering::SeqCst);
    });
    Ok(Executor::new(
        writer,
        log,
        stop,
        options.concurrency,
        options.progress != ProgressMode::Off,
    ))
}

fn resume_hint(audit: &Path, options: &RepairOptions) -> String {
    format!(
        "finish with: {}",
        resume_command(audit, options).arg("--apply").arg("--yes")
    )
}

/// `recon repair --resume AUDIT` where this run acted.
fn resume_command(audit: &Path, options: &RepairOptions) -> CommandLine {
    with_grace(
        CommandLine::recon("repair")
            .arg("--resume")
            .path(audit)
            .at(&options.target, Takes::ALL),
        options,
    )
}

/// `recon undo AUDIT` where this run acted (undo takes only the read model's connection).
fn undo_command(audit: &Path, options: &RepairOptions) -> CommandLine {
    CommandLine::recon("undo")
        .path(audit)
        .at(&options.target, Takes::READ_MODEL)
}

/// This dry run again, with `--apply`: the same keys, mode and caps, where this run looked.
fn apply_command(options: &RepairOptions) -> CommandLine {
    dry_run_command(options).arg("--apply")
}

/// This dry run again: the same keys, mode and caps, where this run looked.
fn dry_run_command(options: &RepairOptions) -> CommandLine {
    let mut command = CommandLine::recon("repair").at(&options.target, Takes::ALL);
    command = match &options.keys {
        KeySource::Check => command,
        KeySource::Report(path) => command.arg("--from-report").path(path),
        KeySource::Keys(keys) => command.option("--keys", keys.join(",")),
        KeySource::KeysFile(path) => command.arg("--keys-file").path(path),
        KeySource::Plan(path) => command.arg("--from-plan").path(path),
        KeySource::Resume(path) => command.arg("--resume").path(path),
    };
    command = with_grace(command, options);
    if options.mode == RepairMode::Patch {
        command = command.option("--mode", "patch");
    }
    if options.max_changes != DEFAULT_MAX_CHANGES {
        command = command.option("--max-changes", options.max_changes.to_string());
    }
    if options.max_deletes != DEFAULT_MAX_DELETES {
        command = command.option("--max-deletes", options.max_deletes.to_string());
    }
    if let Some(audit) = &options.audit {
        command = command.arg("--audit").path(audit);
    }
    command
}

fn with_grace(command: CommandLine, options: &RepairOptions) -> CommandLine {
    match options.grace {
        Some(grace) => command.option("--grace", humantime::format_duration(grace).to_string()),
        None => command,
    }
}

fn header(settings: &Settings, options: &RepairOptions, mode: RepairMode, actions: u64) -> Header {
    Header {
        schema: AUDIT_SCHEMA.into(),
        command: "repair".into(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        config: Some(options.target.config.display().to_string()),
        index: settings.read_model_target().to_string(),
        mode: Some(
            match mode {
                RepairMode::Replace => "replace",
                RepairMode::Patch => "patch",
            }
            .to_string(),
        ),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        actions: Some(actions),
    }
}

/// `--resume AUDIT`: send the intents that have no outcome again (each applies once or conflicts),
/// then carry out the plan's actions that never got an intent.
async fn resume(settings: &Settings, options: &RepairOptions, path: &Path) -> anyhow::Result<Outcome> {
    let contents = audit::read(path)?;
    contents.warn_torn(path);
    let header = contents
        .header
        .clone()
        .with_context(|| format!("{} has no header; is it a recon audit log?", path.display()))?;
    if header.command == reproject::COMMAND {
        return reproject::resume(settings, options, path, contents).await;
    }
    if let Some(via) = options.reproject.via {
        bail!(
            "{} is the log of a repair by writing; resume it without --via {}",
            path.display(),
            via.as_str()
        );
    }
    if header.command != "repair" {
        bail!(
            "{} is the log of a `recon {}`, not of a repair",
            path.display(),
            header.command
        );
    }
    // The plan is made durable before the first intent: a shorter plan was cut off while it was being
    // written, and resuming it would carry out part of the repair and call it finished.
    if let Some(planned) = header.actions.filter(|n| (contents.plan.len() as u64) < *n) {
        let sent = if contents.intents.is_empty() {
            "no write was sent; run the repair again (this log can be deleted)"
        } else {
            "yet it has intents: the log is damaged"
        };
        bail!(
            "{} is the log of a repair that stopped while it was logging its plan ({} of {planned} actions): {sent}",
            path.display(),
            contents.plan.len(),
        );
    }
    if header.index != settings.read_model_target() {
        let fix = match &settings.redis {
            Some(_) => "set redis.key_pattern to it".to_string(),
            None => format!("pass --index {}", header.index),
        };
        bail!(
            "{} repaired {:?}, but the configuration names {:?}; {fix}",
            path.display(),
            header.index,
            settings.read_model_target(),
        );
    }
    let unrecorded: Vec<audit::Intent> = contents
        .intents
        .values()
        .filter(|i| !contents.outcomes.contains_key(&i.seq))
        .cloned()
        .collect();
    let untouched: Vec<PlannedAction> = contents
        .plan
        .iter()
        .filter(|a| !contents.intents.contains_key(&a.seq) && !contents.outcomes.contains_key(&a.seq))
        .cloned()
        .collect();
    let done = contents.outcomes.len();
    crate::note!(
        "recon: {}: {} actions done, {} sent without a recorded outcome, {} not started",
        path.display(),
        done,
        unrecorded.len(),
        untouched.len()
    );
    let mode = match header.mode.as_deref() {
        Some("patch") => RepairMode::Patch,
        _ => RepairMode::Replace,
    };
    let conn = connect(settings).await?;
    let writer = conn.writer(options.bulk.clone())?;
    let cx = PlanContext {
        comparator: &conn.comparator,
        mode: writable_mode(mode, writer.as_ref(), false),
        write_index: settings.read_model_target().to_string(),
        pending_since_ms: pending_since(settings, options.grace)?,
    };
    let todo = unrecorded.len() + untouched.len();
    if !options.apply {
        crate::note!(
            "recon: dry run: to finish the repair: {}",
            resume_command(path, options).arg("--apply")
        );
        return Ok(if todo == 0 { Outcome::InSync } else { Outcome::Drift });
    }
    if todo > 0 && !confirm(&format!("Finish the repair: {todo} actions?"), options.yes)? {
        crate::note!("recon: not confirmed; nothing was written");
        return Ok(Outcome::Drift);
    }
    // Ends a torn last line; the resume record names it, so a reader knows it was cut off, not damaged.
    let mut log = AuditLog::append_to(path)?;
    let mut record = json!({"started_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
    if let Some(line) = contents.torn_tail {
        record[audit::TORN_LINE] = json!(line);
    }
    log.note("resume", &record)?;
    let executor = executor(writer, log, options)?;
    let mut tally = Tally::default();
    let keys_of: HashMap<u64, Value> = contents.plan.iter().map(|a| (a.seq, a.key.clone())).collect();
    for part in unrecorded.chunks(options.bulk.max_actions.max(1)) {
        if executor.stopped() {
            tally.not_started += part.len() as u64;
            continue;
        }
        let part: Vec<apply::EncodedIntent> = part.iter().map(apply::EncodedIntent::of).collect();
        let outcomes = executor
            .write(&part, true)
            .await
            .map_err(|e| e.context(resume_hint(path, options)))?;
        for o in &outcomes {
            let key = keys_of.get(&o.seq).cloned().unwrap_or(Value::Null);
            tally.add(&key, o);
        }
    }
    let repairer = Repairer {
        write_model: conn.write_model.as_ref(),
        read_model: conn.read_model.as_ref(),
        comparator: &conn.comparator,
        ignore: &settings.compare.ignore,
    };
    let rest = executor
        .run_plan(
            &repairer,
            untouched
                .chunks(options.bulk.max_actions.max(1))
                .map(|c| Ok(c.to_vec())),
            untouched.len() as u64,
        )
        .await
        .map_err(|e| e.context(resume_hint(path, options)))?;
    tally.merge(rest);
    finish(
        settings,
        options,
        &conn,
        &cx,
        &executor,
        plan::counts(&contents.plan),
        planned_keys(std::iter::once(Ok(contents.plan.clone()))),
        tally,
        path.to_path_buf(),
    )
    .await
}

/// `mode`, unless it is a patch and the writer writes whole documents only: then a replace (said
/// once, when `say`).
fn writable_mode(mode: RepairMode, writer: &dyn ConditionalWriter, say: bool) -> RepairMode {
    if mode == RepairMode::Patch && !writer.partial_updates() {
        if say {
            crate::note!(
                "recon: this read model is written whole documents at a time: --mode patch repairs as replace"
            );
        }
        return RepairMode::Replace;
    }
    mode
}

fn pending_since(settings: &Settings, grace: Option<Duration>) -> anyhow::Result<Option<i64>> {
    let Some(grace) = grace else { return Ok(None) };
    if settings.postgres.updated_at.is_none() {
        bail!("--grace needs postgres.updated_at: the column with each row's last change");
    }
    Ok(Some(chrono::Utc::now().timestamp_millis() - grace.as_millis() as i64))
}

/// A full check's drifted keys (pending drift left out), parked on disk in key order, and whether it
/// found documents without a key; None when interrupted.
async fn drifted_keys(settings: &Settings, options: &RepairOptions) -> anyhow::Result<Option<(KeySpool, bool)>> {
    let sides = connect_sides(settings).await?;
    let comparator = Comparator::new(&settings.compare).context("invalid [compare] rules")?;
    let scope = ScanScope::serial(KeyRange::all(), options.grace, options.progress);
    let mut keys = KeySpool::new().context("cannot create a temporary file for the drifted keys")?;
    let mut unkeyed = false;
    let scanned = scan(&sides, comparator, &scope, |drift| {
        if drift.kind == DriftKind::Unkeyed {
            unkeyed = true;
        } else if drift.kind != DriftKind::Pending {
            keys.push(&drift.key)
                .context("cannot park a drifted key in a temporary file")?;
        }
        Ok(())
    })
    .await?;
    if scanned.interrupted {
        return Ok(None);
    }
    crate::note!(
        "recon: check: {} rows, {} documents, {} drifted keys to re-verify ({:.2} s)",
        scanned.summary.source_rows,
        scanned.summary.target_docs,
        keys.len(),
        scanned.duration.as_secs_f64()
    );
    Ok(Some((keys, unkeyed)))
}

/// Plans a conditional delete of every read-model document without a key, as the read model has it
/// now (a report's list may be stale). Like an orphan's, the delete holds only if the document has
/// not changed since this read.
async fn plan_unkeyed(conn: &Connected, spool: &mut PlanSpool) -> anyhow::Result<()> {
    let mut docs = conn.read_model.open_unkeyed_scan().await?;
    let mut seq = spool.len();
    while let Some(doc) = docs.next().await {
        let doc = doc.context("cannot read the read model's documents without a key")?;
        seq += 1;
        let action = plan::unkeyed_delete(&doc, seq);
        spool
            .push(&action)
            .context("cannot write the plan to a temporary file")?;
    }
    Ok(())
}

/// Looks keys up on both sides a chunk at a time and plans each into `spool`.
async fn plan_keys(
    conn: &Connected,
    cx: &PlanContext<'_>,
    keys: impl Iterator<Item = std::io::Result<Vec<Key>>>,
    spool: &mut PlanSpool,
) -> anyhow::Result<()> {
    let mut seq = 0u64;
    let mut failed = None;
    for_each_key(conn, keys, |key, expected, actual| {
        for mut a in plan_key(key, expected, actual, cx).actions {
            seq += 1;
            a.seq = seq;
            if a.action == WriteKind::Create {
                // The read model names a new document (an Elasticsearch _id is the key; a Redis key
                // is the key in its pattern).
                a.id = conn.read_model.doc_id(key);
            }
            if let Err(e) = spool.push(&a) {
                failed.get_or_insert(e);
            }
        }
    })
    .await?;
    match failed {
        Some(e) => Err(anyhow::Error::new(e).context("cannot write the plan to a temporary file")),
        None => Ok(()),
    }
}

/// Each key's drift now (in-sync keys left out).
async fn plan_keys_verdicts(
    conn: &Connected,
    cx: &PlanContext<'_>,
    keys: impl Iterator<Item = std::io::Result<Vec<Key>>>,
) -> anyhow::Result<Vec<(Key, DriftKind)>> {
    let mut verdicts = Vec::new();
    for_each_key(conn, keys, |key, expected, actual| {
        if let Some(drift) = plan_key(key, expected, actual, cx).drift {
            verdicts.push((key.clone(), drift));
        }
    })
    .await?;
    Ok(verdicts)
}

/// Looks each chunk of keys up on both sides, a few chunks in flight, and hands each key's row and
/// documents to `each`, in the order of the chunks.
async fn for_each_key(
    conn: &Connected,
    keys: impl Iterator<Item = std::io::Result<Vec<Key>>>,
    mut each: impl FnMut(&Key, Option<&KeyedDoc>, &[KeyedDoc]),
) -> anyhow::Result<()> {
    // A few chunks in flight: each lookup is a round trip to both sides, and the write model
    // answers several at once.
    let mut lookups = futures::stream::iter(keys)
        .map(|chunk| async move {
            let chunk = chunk.context("cannot read keys back from a temporary file")?;
            let (rows, docs) = tokio::try_join!(conn.write_model.lookup(&chunk), conn.read_model.lookup(&chunk))?;
            anyhow::Ok((chunk, rows, docs))
        })
        .buffered(LOOKUPS_IN_FLIGHT);
    while let Some(looked_up) = lookups.next().await {
        let (chunk, rows, docs) = looked_up?;
        let mut rows: HashMap<Key, KeyedDoc> = rows.into_iter().map(|d| (d.key.clone(), d)).collect();
        let mut by_key: HashMap<Key, Vec<KeyedDoc>> = HashMap::new();
        for d in docs {
            by_key.entry(d.key.clone()).or_default().push(d);
        }
        for key in &chunk {
            let actual = by_key.remove(key).unwrap_or_default();
            each(key, rows.remove(key).as_ref(), &actual);
        }
    }
    Ok(())
}

/// The keys of a `recon.check` report (v1 or v2), JSON or NDJSON. Pending drift is included: every key is
/// re-verified, and a row still within `--grace` is left alone then. Read as a stream (one drift
/// record at a time, [`crate::report::read`]) and sorted on disk, so a report of any size fits.
pub fn report_keys(path: &Path) -> anyhow::Result<(KeyFile, bool)> {
    let mut sorter = KeySorter::default();
    // `unkeyed` records (v2): documents without a key, which no key names.
    let mut unkeyed = false;
    let head = crate::report::read::read(path, |record| {
        match record.key {
            Some(key) => sorter.push(key)?,
            None => unkeyed = true,
        }
        Ok(())
    })?;
    if !head.readable() {
        bail!(
            "{} is not a complete {} report (JSON or NDJSON from `recon check --format json`)",
            path.display(),
            crate::report::SCHEMA
        );
    }
    if head.truncated() {
        crate::note!("recon: warning: the report was cut by --limit; only the keys it lists are repaired");
    }
    Ok((sorter.finish()?, unkeyed))
}

/// `--plan FILE`: `{"type":"header",...}` then one `{"type":"action","data":...}` per action.
fn write_plan(path: &Path, settings: &Settings, spool: &mut PlanSpool) -> anyhow::Result<()> {
    let file = crate::report::AtomicFile::create(path)?;
    {
        let mut out = std::io::BufWriter::new(file.handle());
        let header = json!({"type": "header", "data": {
            "schema": PLAN_SCHEMA,
            "index": settings.read_model_target(),
            "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "actions": spool.len(),
        }});
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        for part in spool.read(LOOKUP_CHUNK)? {
            for a in part? {
                serde_json::to_writer(&mut out, &json!({"type": "action", "data": a}))?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
    }
    file.commit()?;
    Ok(())
}

/// Reads a `--plan` file into `spool`, a line at a time.
fn read_plan(path: &Path, spool: &mut PlanSpool) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read the plan {}", path.display()))?;
    let mut header = false;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read the plan {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut value: Value =
            serde_json::from_str(&line).with_context(|| format!("{}:{}: not a plan line", path.display(), n + 1))?;
        match value["type"].as_str() {
            Some("header") => {
                header = [PLAN_SCHEMA, PLAN_SCHEMA_V1].contains(&value["data"]["schema"].as_str().unwrap_or_default())
            }
            Some("action") => {
                // A v1 plan's actions hold Elasticsearch's versions spelled out: read as tokens.
                let mut data = value["data"].take();
                crate::source::elasticsearch::audit_v1::upgrade(&mut data);
                spool.push(
                    &serde_json::from_value(data)
                        .with_context(|| format!("{}:{}: not a planned action", path.display(), n + 1))?,
                )?
            }
            _ => {}
        }
    }
    if !header {
        bail!(
            "{} is not a {PLAN_SCHEMA} (or v1) plan (written by `recon repair --plan FILE`)",
            path.display()
        );
    }
    Ok(())
}

/// Why the plan is over a cap, if it is; `reindexable`: the read model can be rebuilt by `recon reindex`.
fn caps_message(changes: u64, deletes: u64, options: &RepairOptions, reindexable: bool) -> Option<String> {
    let over = if changes > options.max_changes {
        format!(
            "the plan makes {changes} changes, more than --max-changes {}",
            options.max_changes
        )
    } else if deletes > options.max_deletes {
        format!(
            "the plan deletes {deletes} documents, more than --max-deletes {}",
            options.max_deletes
        )
    } else {
        return None;
    };
    let rebuild = if reindexable {
        "rebuild the index with `recon reindex`"
    } else {
        "rebuild the read model by replaying the projection"
    };
    Some(format!(
        "{over}; recon refuses to apply it. Drift this large usually means the projection itself is broken: \
         {rebuild}, or raise the cap once you have read the plan (--plan FILE)"
    ))
}

/// Without a terminal nobody can answer the confirmation: `--apply` needs `--yes`. Said first, before
/// anything is connected to or read.
pub fn needs_yes(apply: bool, yes: bool) -> anyhow::Result<()> {
    if apply && !yes && !std::io::stdin().is_terminal() {
        bail!(
            "--apply without a terminal needs --yes (there is nobody to confirm); pass --yes to write without \
             asking. Nothing was read or written"
        );
    }
    Ok(())
}

/// Asks on the terminal unless `--yes` ([`crate::terminal::confirm`]). Without a terminal there is
/// nobody to ask, so `--apply` needs `--yes`: a cron job never writes by accident.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    crate::terminal::confirm(question, yes, || {
        anyhow::anyhow!("--apply without a terminal needs --yes; nothing was written")
    })
}

fn print_plan(spool: &PlanSpool, options: &RepairOptions, writer: &dyn ConditionalWriter) {
    if options.format != SummaryFormat::Text {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "plan: {} on {}",
        plural(spool.len(), "action", "actions"),
        plural(spool.keys(), "key", "keys")
    );
    for ((drift, kind), n) in spool.counts() {
        let _ = writeln!(out, "  {:<11} {:<7} {n}", drift.as_str(), kind.as_str());
    }
    let shown = spool.sample();
    for a in shown {
        let condition = match &a.if_version {
            Some(version) if a.action != WriteKind::Create => format!(" {}", writer.describe_condition(version)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {} {}/{}{condition}  ({} key {})",
            a.action.as_str(),
            a.location,
            a.id,
            a.drift.as_str(),
            a.key
        );
    }
    if spool.len() > shown.len() as u64 {
        let _ = writeln!(
            out,
            "  … {} more (--plan FILE writes them all)",
            spool.len() - shown.len() as u64
        );
    }
}

fn print_summary(options: &RepairOptions, report: &RunReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let t = &report.tally;
    match options.format {
        SummaryFormat::Json => {
            let planned: BTreeMap<String, u64> = report
                .planned
                .iter()
                .map(|((d, k), n)| (format!("{}.{}", d.as_str(), k.as_str()), *n))
                .collect();
            let summary = json!({
                "schema": "recon.repair/v1",
                "applied": report.applied,
                "planned": planned,
                "actions": report.planned.values().sum::<u64>(),
                "outcomes": {"applied": t.applied, "answer_lost_verified": t.answer_lost,
                             "conflict": t.conflict, "failed": t.failed,
                             "skipped": t.skipped, "not_started": t.not_started},
                "conflicts": t.conflicts.iter().map(|(k, r)| json!({"key": k, "reason": r})).collect::<Vec<_>>(),
                "failures": t.failures.iter().map(|(k, r)| json!({"key": k, "error": r})).collect::<Vec<_>>(),
                "remaining": report.remaining.iter().map(|(d, n)| (d.as_str().to_string(), *n))
                    .collect::<BTreeMap<_, _>>(),
                "remaining_keys": report.remaining_keys.iter()
                    .map(|(k, d)| json!({"key": k, "kind": d.as_str()})).collect::<Vec<_>>(),
                "audit": report.audit.as_ref().map(|p| p.display().to_string()),
            });
            serde_json::to_writer(&mut out, &summary)?;
            writeln!(out)?;
        }
        SummaryFormat::Text if report.applied => {
            writeln!(
                out,
                "applied {}, conflicts {}, failed {}, skipped {}",
                t.applied, t.conflict, t.failed, t.skipped
            )?;
            for (key, reason) in t.conflicts.iter().take(20) {
                writeln!(out, "  conflict: key {key}: {reason}")?;
            }
            for (key, reason) in t.failures.iter().take(20) {
                writeln!(out, "  failed: key {key}: {reason}")?;
            }
            let remaining: u64 = report.remaining.values().sum();
            writeln!(
                out,
                "after the repair: {} still {}",
                plural(remaining, "key", "keys"),
                if remaining == 1 { "drifts" } else { "drift" }
            )?;
            for (key, drift) in report.remaining_keys.iter().take(20) {
                writeln!(out, "  {} key {key}", drift.as_str())?;
            }
            if let Some(path) = &report.audit {
                writeln!(out, "audit log: {}", path.display())?;
                writeln!(out, "undo with: {}", undo_command(path, options))?;
            }
        }
        SummaryFormat::Text => {
            if report.planned.values().sum::<u64>() == 0 {
                writeln!(out, "nothing to repair")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(text: &str) -> anyhow::Result<Vec<Key>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("report");
        std::fs::write(&path, text)?;
        let (keys, _) = report_keys(&path)?;
        Ok(keys.keys()?.map(Result::unwrap).collect())
    }

    #[test]
    fn reports_give_their_drift_keys_sorted_in_every_form() {
        let report = json!({"schema": "recon.check/v1", "verdict": "drift", "truncated": false,
            "summary": {"missing": 3}, "drift": [
                {"key": 9, "kind": "missing", "expected": {"products": [{"name": "x"}]}},
                {"key": 2, "kind": "orphaned", "ids": ["2"]},
                {"key": 9223372036854775807_i64, "kind": "missing"}]});
        let expected = [2, 9, i64::MAX].map(Key::Int);
        // Compact (one line) and pretty JSON.
        assert_eq!(keys_of(&report.to_string()).unwrap(), expected);
        assert_eq!(
            keys_of(&serde_json::to_string_pretty(&report).unwrap()).unwrap(),
            expected
        );
        // NDJSON: drift lines, then the summary line.
        let ndjson = [
            json!({"type": "drift", "data": {"key": 9, "kind": "missing"}}),
            json!({"type": "drift", "data": {"key": i64::MAX, "kind": "missing"}}),
            json!({"type": "drift", "data": {"key": 2, "kind": "orphaned"}}),
            json!({"type": "summary", "data": {"schema": "recon.check/v1", "truncated": false}}),
        ]
        .map(|l| l.to_string())
        .join("\n");
        assert_eq!(keys_of(&ndjson).unwrap(), expected);
    }

    #[test]
    fn anything_but_a_whole_check_report_is_refused_with_where() {
        let e = keys_of(r#"{"schema": "recon.reindex/v1", "drift": []}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a complete recon.check/v2 report"), "{e}");
        let e = keys_of(r#"{"schema": "recon.check/v1", "drift": [{"kind": "missing"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a JSON report"), "{e}");
        let ndjson = "{\"type\": \"drift\", \"data\": {\"key\": 1}}\n{\"type\": \"drift\", \"data\": {}}\n";
        let e = format!("{:#}", keys_of(ndjson).unwrap_err());
        assert!(e.contains(":2: drift without a key"), "{e}");
        // No summary line: the report was cut short.
        let e = keys_of("{\"type\": \"drift\", \"data\": {\"key\": 1}}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a complete"), "{e}");
    }
}
