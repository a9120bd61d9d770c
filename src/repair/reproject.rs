//! `recon repair --via amqp|http|ndjson`: repair through the projector. The same keys, re-verification,
//! plan, caps, confirmation and write-ahead audit log as a repair by writing, but each drifted key becomes
//! one re-projection request ([`crate::publish::Request`]) handed to a [`Transport`]; the projector
//! writes the read model. Then (`--await`) the requested keys are re-checked on both sides until they
//! converge or the deadline passes.
//!
//! The log: `header` (`command: "reproject"`), a `reproject` record (via, run id, target), one
//! `request` per key (the plan), then per batch the `publish` records, fsynced before the batch goes
//! out, and an `outcome` per message (`confirmed`, `returned`, `nacked`, `failed`, `skipped`). A resume
//! never publishes a confirmed (or returned, or skipped) request again; a `publish` without outcome is in
//! doubt and is published again as it was, same `message_id` (at-least-once); `nacked` and `failed`
//! are published again too; requests never published are re-verified and published.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::audit::{
    self, AuditContents, AuditLog, Header, OutcomeRecord, PublishRecord, ReprojectRecord, RequestRecord, AUDIT_SCHEMA,
    PUBLISH, REPROJECT, REQUEST,
};
use super::plan::{plan_key, PlanContext};
use super::spool::PlanSpool;
use super::{
    caps_message, confirm, dry_run_command, for_each_key, make_plan, pending_since, resume_command, Connected,
    RepairOptions, SummaryFormat, LOOKUP_CHUNK,
};
use crate::config::Settings;
use crate::engine::Outcome;
use crate::model::{DriftKind, Key, KeyedDoc};
use crate::plural::plural;
use crate::progress::ProgressMode;
use crate::publish::{self, Delivery, Message, Request, Transport, Via, REQUEST_SCHEMA};
use crate::secret::redact_url;

/// The `command` of a repair-through-the-projector log's header. An older recon's `--resume` and
/// `undo` refuse it (they only take `repair`), instead of writing.
pub const COMMAND: &str = "reproject";

/// The `--format json` summary of a repair through the projector (a repair by writing prints
/// `recon.repair/v1`, with other fields).
pub const SUMMARY_SCHEMA: &str = "recon.repair-reproject/v1";

/// How long `--await` waits unless told, with `--via amqp` or `http`.
pub const DEFAULT_AWAIT: Duration = Duration::from_secs(5 * 60);

/// The flags of a repair through the projector.
#[derive(Debug, Clone, Default)]
pub struct ReprojectOptions {
    /// None: a repair by writing.
    pub via: Option<Via>,
    /// `--dead-letter FILE`: requests the broker could not route, appended as NDJSON.
    pub dead_letter: Option<PathBuf>,
    /// `--output FILE` of `--via ndjson` (stdout when None).
    pub output: Option<PathBuf>,
    /// `--await`; None takes the default of the transport.
    pub await_for: Option<Duration>,
    /// `--amqp-url` as given, for the commands printed to paste (shown with its password masked).
    pub amqp_url: Option<String>,
}

impl ReprojectOptions {
    fn await_for(&self, via: Via) -> Duration {
        self.await_for.unwrap_or(match via {
            // Nobody confirms what a pipe's reader does, nor when it runs.
            Via::Ndjson => Duration::ZERO,
            Via::Amqp | Via::Http => DEFAULT_AWAIT,
        })
    }

    /// Whether stdout carries the messages (then the plan and the summary go to stderr).
    fn messages_on_stdout(&self, via: Via) -> bool {
        via == Via::Ndjson && self.output.is_none()
    }
}

/// One request on its way: planned (re-verified before it goes) or in doubt (published again as it was).
struct Item {
    seq: u64,
    key: Value,
    kind: DriftKind,
    resend: Option<Message>,
}

/// What the publishing came to.
#[derive(Debug, Default)]
struct Tally {
    confirmed: u64,
    returned: u64,
    nacked: u64,
    failed: u64,
    skipped: u64,
    not_started: u64,
    /// Keys confirmed (by this run or, on resume, an earlier one): what `--await` watches.
    confirmed_keys: Vec<Key>,
    /// (key, reason) of returned, nacked and failed requests.
    returns: Vec<(Value, String)>,
    failures: Vec<(Value, String)>,
    skips: Vec<(Value, String)>,
}

impl Tally {
    fn add(&mut self, key: &Value, outcome: &OutcomeRecord) {
        let reason = || outcome.error.clone().unwrap_or_default();
        match outcome.status.as_str() {
            "confirmed" => {
                self.confirmed += 1;
                if let Some(key) = Key::from_json(key) {
                    self.confirmed_keys.push(key);
                }
            }
            "returned" => {
                self.returned += 1;
                self.returns.push((key.clone(), reason()));
            }
            "skipped" => {
                self.skipped += 1;
                self.skips.push((key.clone(), reason()));
            }
            "nacked" => {
                self.nacked += 1;
                self.failures.push((key.clone(), reason()));
            }
            _ => {
                self.failed += 1;
                self.failures.push((key.clone(), reason()));
            }
        }
    }
}

/// What `--await` found.
#[derive(Debug, Default)]
struct Convergence {
    awaited: bool,
    /// SIGINT came before every key converged or the deadline passed.
    interrupted: bool,
    converged: Vec<Key>,
    not_converged: Vec<(Key, DriftKind)>,
    waited: Duration,
}

/// Both sides, as a check connects them: only the compared fields (a request carries no document),
/// and any read model a check takes, Redis too (nothing here writes to it).
async fn connect(settings: &Settings) -> anyhow::Result<Connected> {
    let comparator = crate::diff::Comparator::new(&settings.compare).context("invalid [compare] rules")?;
    let sides = crate::engine::connect_sides(settings).await?;
    Ok(Connected {
        write_model: sides.write_model,
        read_model: sides.read_model,
        comparator,
    })
}

/// A fresh repair through the projector.
pub async fn run(settings: &Settings, options: &RepairOptions, via: Via) -> anyhow::Result<Outcome> {
    let ro = &options.reproject;
    if options.plan_out.is_some() {
        bail!(
            "--plan writes a plan of writes; with --via {} the plan is the requests the dry run lists",
            via.as_str()
        );
    }
    let conn = connect(settings).await?;
    let cx = PlanContext {
        comparator: &conn.comparator,
        mode: options.mode,
        write_index: settings.elasticsearch.index.clone(),
        pending_since_ms: pending_since(settings, options.grace)?,
    };
    // SIGINT/SIGTERM are listened for from here on (the listener starts on a task of its own, so well
    // before the audit log exists): a signal then stops the run at its next step instead of killing it.
    crate::engine::stop_requested();
    let mut spool = PlanSpool::new().context("cannot create a temporary file for the plan")?;
    if make_plan(settings, options, &conn, &cx, &mut spool).await?.is_none() {
        crate::note!("recon: interrupted; nothing was published");
        return Ok(Outcome::Interrupted);
    }
    // One request per key: a key's actions are consecutive in the plan.
    let mut requests: Vec<RequestRecord> = Vec::new();
    let mut unkeyed = 0u64;
    for part in spool.read(LOOKUP_CHUNK)? {
        for a in part? {
            if a.drift == DriftKind::Unkeyed || a.key().is_none() {
                unkeyed += 1;
            } else if requests.last().map(|r| &r.key) != Some(&a.key) {
                requests.push(RequestRecord {
                    seq: requests.len() as u64 + 1,
                    key: a.key,
                    kind: a.drift,
                });
            }
        }
    }
    if unkeyed > 0 {
        crate::note!(
            "recon: warning: {} without a key cannot be re-projected (no key names them); delete them with \
             `recon repair --via write`",
            plural(unkeyed, "document", "documents")
        );
    }
    let target = describe_target(via, settings, ro);
    print_plan(&requests, via, &target, options);
    let counts = counts(&requests);
    if requests.is_empty() {
        print_summary(options, via, &Report::default(), None)?;
        return Ok(if unkeyed > 0 { Outcome::Drift } else { Outcome::InSync });
    }
    let deletes = counts.get(&DriftKind::Orphaned).copied().unwrap_or(0);
    let over_caps = caps_message(requests.len() as u64, deletes, options, settings.redis.is_none());
    if !options.apply {
        if let Some(message) = &over_caps {
            crate::note!("recon: warning: {message}");
        }
        crate::note!(
            "recon: dry run: nothing was published; to publish these requests: {}",
            with_via(dry_run_command(options), via, ro).arg("--apply")
        );
        let report = Report {
            planned: counts,
            ..Report::default()
        };
        print_summary(options, via, &report, None)?;
        return Ok(Outcome::Drift);
    }
    if let Some(message) = over_caps {
        bail!("{message}");
    }
    if !confirm(
        &format!(
            "Publish {} to {target}?",
            plural(requests.len() as u64, "re-projection request", "re-projection requests")
        ),
        options.yes,
    )? {
        crate::note!("recon: not confirmed; nothing was published");
        return Ok(Outcome::Drift);
    }
    // Reachable, and the exchange there, before the log says anything was attempted.
    let transport = publish::connect(
        via,
        &settings.publish,
        ro.output.clone(),
        options.bulk.item_retry.clone(),
    )
    .await?;
    let audit_path = options.audit.clone().unwrap_or_else(|| audit::default_path("repair"));
    let run_id = new_run_id();
    let mut log = AuditLog::create(&audit_path)?;
    log.header(&Header {
        schema: AUDIT_SCHEMA.into(),
        command: COMMAND.into(),
        started_at: now(),
        config: Some(options.target.config.display().to_string()),
        // What the run checked: the index, or the Redis key pattern (`name`, unless set).
        index: settings.name.clone(),
        mode: None,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        actions: Some(requests.len() as u64),
    })?;
    log.records(
        REPROJECT,
        &[ReprojectRecord {
            via: via.as_str().into(),
            run: run_id.clone(),
            target: target.clone(),
        }],
    )?;
    log.records(REQUEST, &requests)?;
    log.finish()?;
    if options.progress != ProgressMode::Off {
        crate::note!(
            "recon: publishing {} to {target}; run {run_id}; audit log {}",
            plural(requests.len() as u64, "request", "requests"),
            audit_path.display()
        );
    }
    let items = requests
        .into_iter()
        .map(|r| Item {
            seq: r.seq,
            key: r.key,
            kind: r.kind,
            resend: None,
        })
        .collect();
    let report = Report {
        planned: counts,
        ..Report::default()
    };
    let publisher = Publisher {
        settings,
        options,
        conn: &conn,
        cx: &cx,
        transport: transport.as_ref(),
        run_id,
        via,
        audit_path,
    };
    publisher.publish_all(log, items, Tally::default(), report).await
}

/// `--resume AUDIT` of a repair through the projector.
pub async fn resume(
    settings: &Settings,
    options: &RepairOptions,
    path: &Path,
    contents: AuditContents,
) -> anyhow::Result<Outcome> {
    let record = contents
        .reproject
        .clone()
        .with_context(|| format!("{} has no reproject record: the log is damaged", path.display()))?;
    let via =
        Via::parse(&record.via).with_context(|| format!("{}: unknown transport {:?}", path.display(), record.via))?;
    if let Some(asked) = options.reproject.via.filter(|v| *v != via) {
        bail!(
            "{} published via {}; resume it with --via {} (or without --via), not --via {}",
            path.display(),
            via.as_str(),
            via.as_str(),
            asked.as_str()
        );
    }
    let planned = contents.header.as_ref().and_then(|h| h.actions).unwrap_or(0);
    if (contents.requests.len() as u64) < planned {
        bail!(
            "{} is the log of a repair that stopped while it was logging its plan ({} of {planned} requests); \
             nothing was published: run the repair again (this log can be deleted)",
            path.display(),
            contents.requests.len()
        );
    }
    let mut tally = Tally::default();
    let mut items = Vec::new();
    for r in &contents.requests {
        match (contents.outcomes.get(&r.seq), contents.published.get(&r.seq)) {
            (Some(o), _) if matches!(o.status.as_str(), "confirmed" | "returned" | "skipped") => tally.add(&r.key, o),
            (_, Some(p)) => items.push(Item {
                seq: r.seq,
                key: p.key.clone(),
                kind: p.kind,
                resend: Some(p.message.clone()),
            }),
            (_, None) => items.push(Item {
                seq: r.seq,
                key: r.key.clone(),
                kind: r.kind,
                resend: None,
            }),
        }
    }
    let in_doubt = items.iter().filter(|i| i.resend.is_some()).count();
    // Requests in doubt go out a second time: a warning, so that -q still says so.
    crate::note!(
        "recon: {}{}: {} requests done, {in_doubt} published without a confirmed outcome (published again, same \
         message_id), {} not published",
        if in_doubt > 0 { "warning: " } else { "" },
        path.display(),
        contents.requests.len() - items.len(),
        items.len() - in_doubt
    );
    crate::engine::stop_requested();
    let conn = connect(settings).await?;
    let mode = match contents.header.as_ref().and_then(|h| h.mode.as_deref()) {
        Some("patch") => super::plan::RepairMode::Patch,
        _ => super::plan::RepairMode::Replace,
    };
    let cx = PlanContext {
        comparator: &conn.comparator,
        mode,
        write_index: settings.elasticsearch.index.clone(),
        pending_since_ms: pending_since(settings, options.grace)?,
    };
    if !options.apply {
        crate::note!(
            "recon: dry run: to finish the repair: {}",
            with_amqp_url(resume_command(path, options), &options.reproject).arg("--apply")
        );
        return Ok(if items.is_empty() {
            Outcome::InSync
        } else {
            Outcome::Drift
        });
    }
    if !items.is_empty() && !confirm(&format!("Finish the repair: {} requests?", items.len()), options.yes)? {
        crate::note!("recon: not confirmed; nothing was published");
        return Ok(Outcome::Drift);
    }
    let ro = &options.reproject;
    let transport = publish::connect(
        via,
        &settings.publish,
        ro.output.clone(),
        options.bulk.item_retry.clone(),
    )
    .await?;
    let mut log = AuditLog::append_to(path)?;
    let mut note = json!({"started_at": now()});
    if let Some(line) = contents.torn_tail {
        note[audit::TORN_LINE] = json!(line);
    }
    log.note("resume", &note)?;
    let publisher = Publisher {
        settings,
        options,
        conn: &conn,
        cx: &cx,
        transport: transport.as_ref(),
        run_id: record.run,
        via,
        audit_path: path.to_path_buf(),
    };
    let report = Report {
        planned: counts(&contents.requests),
        ..Report::default()
    };
    publisher.publish_all(log, items, tally, report).await
}

/// What a publishing run shares.
struct Publisher<'a> {
    settings: &'a Settings,
    options: &'a RepairOptions,
    conn: &'a Connected,
    cx: &'a PlanContext<'a>,
    transport: &'a dyn Transport,
    run_id: String,
    via: Via,
    audit_path: PathBuf,
}

#[derive(Debug, Default)]
struct Report {
    planned: BTreeMap<DriftKind, u64>,
    tally: Tally,
    convergence: Convergence,
    applied: bool,
    audit: Option<PathBuf>,
}

impl Publisher<'_> {
    async fn publish_all(
        &self,
        mut log: AuditLog,
        items: Vec<Item>,
        mut tally: Tally,
        mut report: Report,
    ) -> anyhow::Result<Outcome> {
        // Listening from here on: a SIGINT stops the run at the next batch (the one in flight is recorded).
        let stop = || crate::engine::stop_requested();
        let mut dead = DeadLetters::new(self.options.reproject.dead_letter.clone(), &self.run_id);
        let mut pacer = self.options.bulk.max_rate.filter(|r| *r > 0.0).map(Pacer::new);
        let batch = self.options.bulk.max_actions.max(1);
        let total = items.len();
        let mut done = 0usize;
        let mut last_report = Instant::now();
        let mut chunks = items.chunks(batch);
        for chunk in chunks.by_ref() {
            if stop() {
                tally.not_started += chunk.len() as u64;
                continue;
            }
            if let Some(p) = pacer.as_mut() {
                tokio::select! {
                    _ = p.wait(chunk.len()) => {}
                    _ = crate::engine::interrupted() => {}
                }
            }
            if stop() {
                tally.not_started += chunk.len() as u64;
                continue;
            }
            let (sending, skipped) = self.prepare(chunk).await?;
            log.records("outcome", &skipped)?;
            let keys: HashMap<u64, &Value> = chunk.iter().map(|i| (i.seq, &i.key)).collect();
            for o in &skipped {
                tally.add(keys[&o.seq], o);
            }
            if sending.is_empty() {
                continue;
            }
            // The intents are on disk before anything goes out.
            log.records(PUBLISH, &sending)?;
            log.finish()?;
            let messages: Vec<Message> = sending.iter().map(|p| p.message.clone()).collect();
            let deliveries = self.transport.publish(&messages).await.map_err(|e| {
                e.context(format!(
                    "this batch of {} is in doubt; finish with: {}",
                    plural(messages.len() as u64, "request", "requests"),
                    finish_command(&self.audit_path, self.options)
                ))
            })?;
            let mut outcomes = Vec::with_capacity(sending.len());
            for (p, delivery) in sending.iter().zip(deliveries) {
                let (status, reason) = match delivery {
                    Delivery::Confirmed => ("confirmed", None),
                    Delivery::Returned(reason) => {
                        dead.add(p, &reason)?;
                        ("returned", Some(reason))
                    }
                    Delivery::Nacked(reason) => ("nacked", Some(reason)),
                    Delivery::Failed(reason) => ("failed", Some(reason)),
                };
                outcomes.push(OutcomeRecord {
                    status: status.into(),
                    error: reason,
                    ..OutcomeRecord::skipped(p.seq, "", "")
                });
            }
            for o in &mut outcomes {
                o.result = None;
            }
            dead.flush()?;
            log.records("outcome", &outcomes)?;
            for o in &outcomes {
                tally.add(keys[&o.seq], o);
            }
            done += chunk.len();
            if self.options.progress != ProgressMode::Off && last_report.elapsed() >= crate::progress::LOG_EVERY {
                last_report = Instant::now();
                crate::note!(
                    "recon: repair: {done}/{total} requests ({} confirmed, {} returned, {} failed)",
                    tally.confirmed,
                    tally.returned,
                    tally.nacked + tally.failed
                );
            }
        }
        log.finish()?;
        self.transport.close().await?;
        // A signal after the last batch interrupts the wait below, not the publishing: nothing is left
        // to resume.
        if stop() && tally.not_started > 0 {
            crate::note!(
                "recon: warning: interrupted: {} requests recorded, {} not published; finish with: {}",
                tally.confirmed + tally.returned + tally.nacked + tally.failed + tally.skipped,
                tally.not_started,
                finish_command(&self.audit_path, self.options)
            );
            return Ok(Outcome::Interrupted);
        }
        if let Some(path) = dead.path() {
            if tally.returned > 0 {
                crate::note!(
                    "recon: warning: {} could not be routed; written to {}",
                    plural(tally.returned, "request", "requests"),
                    path.display()
                );
            }
        }
        let deadline = self.options.reproject.await_for(self.via);
        let mut keys = tally.confirmed_keys.clone();
        keys.sort();
        keys.dedup();
        report.convergence = if deadline.is_zero() || keys.is_empty() {
            Convergence::default()
        } else {
            self.await_convergence(keys, deadline).await?
        };
        if report.convergence.interrupted {
            crate::note!(
                "recon: warning: interrupted while awaiting convergence: every request was published; `recon check` \
                 shows what the projector has done since"
            );
        }
        report.tally = tally;
        report.applied = true;
        report.audit = Some(self.audit_path.clone());
        print_summary(self.options, self.via, &report, Some(self))?;
        let t = &report.tally;
        let clean = t.returned + t.nacked + t.failed == 0 && report.convergence.not_converged.is_empty();
        Ok(if report.convergence.interrupted {
            Outcome::Interrupted
        } else if clean {
            Outcome::InSync
        } else {
            Outcome::Drift
        })
    }

    /// Re-verifies the planned items on both sides: a key in sync now (or within `--grace`) is skipped;
    /// the others become messages with the drift and paths seen now. Items in doubt go as they were.
    async fn prepare(&self, chunk: &[Item]) -> anyhow::Result<(Vec<PublishRecord>, Vec<OutcomeRecord>)> {
        let fresh: Vec<Key> = chunk
            .iter()
            .filter(|i| i.resend.is_none())
            .filter_map(|i| Key::from_json(&i.key))
            .collect();
        let mut verdicts: HashMap<Key, (Option<DriftKind>, Vec<String>)> = HashMap::new();
        if !fresh.is_empty() {
            let mut sorted = fresh.clone();
            sorted.sort();
            sorted.dedup();
            let cx = self.cx;
            for_each_key(self.conn, std::iter::once(Ok(sorted)), |key, expected, actual| {
                let drift = plan_key(key, expected, actual, cx).drift;
                verdicts.insert(key.clone(), (drift, paths(cx, key, expected, actual)));
            })
            .await?;
        }
        let mut sending = Vec::new();
        let mut skipped = Vec::new();
        for item in chunk {
            if let Some(message) = &item.resend {
                sending.push(PublishRecord {
                    seq: item.seq,
                    key: item.key.clone(),
                    kind: item.kind,
                    message: message.clone(),
                });
                continue;
            }
            let verdict = Key::from_json(&item.key).and_then(|k| verdicts.remove(&k));
            match verdict {
                None | Some((None, _)) => skipped.push(OutcomeRecord::skipped(item.seq, "already in sync", "in_sync")),
                Some((Some(DriftKind::Pending), _)) => skipped.push(OutcomeRecord::skipped(
                    item.seq,
                    "the row changed within --grace; the projector may not have caught up",
                    "pending",
                )),
                Some((Some(kind), paths)) => {
                    let request = Request {
                        schema: REQUEST_SCHEMA.into(),
                        key: item.key.clone(),
                        kind: kind.as_str().into(),
                        run: self.run_id.clone(),
                        requested_at: now(),
                        paths,
                    };
                    let routing_key =
                        publish::routing_key(&self.settings.publish.routing_key, &item.key, kind.as_str());
                    sending.push(PublishRecord {
                        seq: item.seq,
                        key: item.key.clone(),
                        kind,
                        message: Message::request(format!("{}-{}", self.run_id, item.seq), routing_key, &request),
                    });
                }
            }
        }
        Ok((sending, skipped))
    }

    /// Re-checks `keys` on both sides until every one is in sync or `deadline` has passed, polling with
    /// backoff (200 ms doubling to 5 s). A key counts as converged the first time it is seen in sync.
    async fn await_convergence(&self, keys: Vec<Key>, deadline: Duration) -> anyhow::Result<Convergence> {
        let start = Instant::now();
        let end = start + deadline;
        let total = keys.len() as u64;
        let bar = match self.options.progress {
            ProgressMode::Bars => {
                let bar =
                    indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} converged {elapsed}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix("await");
                Some(bar)
            }
            _ => None,
        };
        let mut converged = Vec::new();
        let mut waiting = keys;
        let mut pause = Duration::from_millis(200);
        let mut last_log = Instant::now();
        loop {
            let mut still: HashMap<Key, DriftKind> = HashMap::new();
            let cx = self.cx;
            for_each_key(
                self.conn,
                waiting.chunks(LOOKUP_CHUNK).map(|c| Ok(c.to_vec())),
                |key, expected, actual| {
                    if let Some(drift) = plan_key(key, expected, actual, cx).drift {
                        still.insert(key.clone(), drift);
                    }
                },
            )
            .await?;
            let (left, now_in_sync): (Vec<Key>, Vec<Key>) = waiting.into_iter().partition(|k| still.contains_key(k));
            converged.extend(now_in_sync);
            waiting = left;
            if let Some(bar) = &bar {
                bar.set_position(converged.len() as u64);
            } else if self.options.progress == ProgressMode::Log && last_log.elapsed() >= crate::progress::LOG_EVERY {
                last_log = Instant::now();
                crate::note!("recon: await: {}/{total} keys converged", converged.len());
            }
            let now = Instant::now();
            let interrupted = crate::engine::stop_requested();
            if waiting.is_empty() || now >= end || interrupted {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                converged.sort();
                let mut not_converged: Vec<(Key, DriftKind)> =
                    waiting.into_iter().map(|k| (k.clone(), still[&k])).collect();
                not_converged.sort();
                return Ok(Convergence {
                    awaited: true,
                    interrupted,
                    converged,
                    not_converged,
                    waited: start.elapsed(),
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(pause.min(end - now)) => {}
                _ = crate::engine::interrupted() => {}
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

/// The differing paths of a key's document: for a mismatch, or the document a duplicate keeps.
fn paths(cx: &PlanContext<'_>, key: &Key, expected: Option<&KeyedDoc>, actual: &[KeyedDoc]) -> Vec<String> {
    let Some(expected) = expected else { return Vec::new() };
    let id = key.doc_id();
    let kept = actual
        .iter()
        .find(|d| d.meta.id.as_deref() == Some(id.as_str()))
        .or(actual.first());
    match kept {
        Some(doc) => cx
            .comparator
            .diff(&expected.doc, &doc.doc)
            .into_iter()
            .map(|d| d.path)
            .collect(),
        None => Vec::new(),
    }
}

fn counts(requests: &[RequestRecord]) -> BTreeMap<DriftKind, u64> {
    let mut counts = BTreeMap::new();
    for r in requests {
        *counts.entry(r.kind).or_insert(0) += 1;
    }
    counts
}

/// `20261206T001500Z-3f9a1c2e`: when, and 32 random bits against two runs in one second.
fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    )
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Where the messages go, in words, from the configuration (no secrets).
fn describe_target(via: Via, settings: &Settings, ro: &ReprojectOptions) -> String {
    let p = &settings.publish;
    match via {
        Via::Amqp => format!(
            "exchange {} on {}",
            p.exchange
                .as_deref()
                .map_or("(publish.exchange not set)".into(), |e| format!("{e:?}")),
            p.url
                .as_ref()
                .map_or("(publish.url not set)".into(), |u| redact_url(u.expose()))
        ),
        Via::Http => format!(
            "POST {}",
            p.http_url
                .as_ref()
                .map_or("(publish.http_url not set)".into(), |u| redact_url(u.expose()))
        ),
        Via::Ndjson => match &ro.output {
            Some(path) => format!("NDJSON in {}", path.display()),
            None => "NDJSON on stdout".into(),
        },
    }
}

/// The dry run's command again, with this run's `--via` flags.
fn with_via(
    command: crate::command_line::CommandLine,
    via: Via,
    ro: &ReprojectOptions,
) -> crate::command_line::CommandLine {
    let mut command = command.option("--via", via.as_str());
    if let Some(path) = &ro.output {
        command = command.arg("--output").path(path);
    }
    if let Some(path) = &ro.dead_letter {
        command = command.arg("--dead-letter").path(path);
    }
    if let Some(wait) = ro.await_for {
        command = command.option("--await", humantime::format_duration(wait).to_string());
    }
    with_amqp_url(command, ro)
}

/// `--amqp-url`, when the run was given one, its password masked.
fn with_amqp_url(command: crate::command_line::CommandLine, ro: &ReprojectOptions) -> crate::command_line::CommandLine {
    match &ro.amqp_url {
        Some(url) => command.option("--amqp-url", redact_url(url)),
        None => command,
    }
}

/// `recon repair --resume AUDIT --apply --yes` where this run acted.
fn finish_command(path: &Path, options: &RepairOptions) -> crate::command_line::CommandLine {
    with_amqp_url(resume_command(path, options), &options.reproject)
        .arg("--apply")
        .arg("--yes")
}

/// Where the plan and the summary go: stdout, unless stdout carries the messages.
fn summary_out(options: &RepairOptions, via: Via) -> Box<dyn Write> {
    if options.reproject.messages_on_stdout(via) {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    }
}

fn print_plan(requests: &[RequestRecord], via: Via, target: &str, options: &RepairOptions) {
    if options.format != SummaryFormat::Text {
        return;
    }
    let mut out = summary_out(options, via);
    let _ = writeln!(
        out,
        "plan: {} via {} to {target}",
        plural(requests.len() as u64, "re-projection request", "re-projection requests"),
        via.as_str()
    );
    for (kind, n) in counts(requests) {
        let _ = writeln!(out, "  {:<11} {n}", kind.as_str());
    }
    for r in requests.iter().take(10) {
        let _ = writeln!(out, "  request key {} ({})", r.key, r.kind.as_str());
    }
    if requests.len() > 10 {
        let _ = writeln!(out, "  … {} more", requests.len() - 10);
    }
}

fn print_summary(
    options: &RepairOptions,
    via: Via,
    report: &Report,
    publisher: Option<&Publisher<'_>>,
) -> anyhow::Result<()> {
    let mut out = summary_out(options, via);
    let t = &report.tally;
    let c = &report.convergence;
    let key_reason = |list: &[(Value, String)], field: &str| -> Vec<Value> {
        list.iter().map(|(k, r)| json!({"key": k, field: r})).collect()
    };
    match options.format {
        SummaryFormat::Json => {
            let summary = json!({
                "schema": SUMMARY_SCHEMA,
                "via": via.as_str(),
                "run": publisher.map(|p| p.run_id.clone()),
                "applied": report.applied,
                "planned": report.planned.iter().map(|(k, n)| (k.as_str().to_string(), *n)).collect::<BTreeMap<_, _>>(),
                "requests": report.planned.values().sum::<u64>(),
                "outcomes": {"confirmed": t.confirmed, "returned": t.returned, "nacked": t.nacked,
                             "failed": t.failed, "skipped": t.skipped, "not_started": t.not_started},
                "returned": key_reason(&t.returns, "reason"),
                "failures": key_reason(&t.failures, "error"),
                "awaited": c.awaited,
                "converged": c.converged.iter().map(Key::to_json).collect::<Vec<_>>(),
                "not_converged": c.not_converged.iter()
                    .map(|(k, d)| json!({"key": k.to_json(), "kind": d.as_str()})).collect::<Vec<_>>(),
                "audit": report.audit.as_ref().map(|p| p.display().to_string()),
            });
            serde_json::to_writer(&mut out, &summary)?;
            writeln!(out)?;
        }
        SummaryFormat::Text if report.applied => {
            writeln!(
                out,
                "published via {}: confirmed {}, returned {}, failed {}, skipped {}",
                via.as_str(),
                t.confirmed,
                t.returned,
                t.nacked + t.failed,
                t.skipped
            )?;
            for (key, reason) in t.returns.iter().take(20) {
                writeln!(out, "  returned: key {key}: {reason}")?;
            }
            for (key, reason) in t.failures.iter().take(20) {
                writeln!(out, "  failed: key {key}: {reason}")?;
            }
            if c.awaited {
                writeln!(
                    out,
                    "converged: {} of {} in {:.1} s",
                    c.converged.len(),
                    plural((c.converged.len() + c.not_converged.len()) as u64, "key", "keys"),
                    c.waited.as_secs_f64()
                )?;
                for (key, drift) in c.not_converged.iter().take(50) {
                    writeln!(out, "  not converged: {} key {key}", drift.as_str())?;
                }
                if c.not_converged.len() > 50 {
                    writeln!(
                        out,
                        "  … {} more (--format json lists them all)",
                        c.not_converged.len() - 50
                    )?;
                }
            } else if t.confirmed > 0 {
                writeln!(
                    out,
                    "not awaited: the projector has the requests; `recon check` shows when they are done"
                )?;
            }
            if let Some(path) = &report.audit {
                writeln!(out, "audit log: {}", path.display())?;
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

/// `--dead-letter FILE`: the requests the broker could not route, one NDJSON line each.
struct DeadLetters {
    path: Option<PathBuf>,
    run: String,
    file: Option<std::fs::File>,
}

impl DeadLetters {
    fn new(path: Option<PathBuf>, run: &str) -> DeadLetters {
        DeadLetters {
            path,
            run: run.to_string(),
            file: None,
        }
    }

    fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn add(&mut self, p: &PublishRecord, reason: &str) -> anyhow::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        if self.file.is_none() {
            self.file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open --dead-letter {}", path.display()))?,
            );
        }
        let line = json!({
            "key": p.key, "kind": p.kind.as_str(), "reason": reason, "run": self.run,
            "message_id": p.message.message_id, "routing_key": p.message.routing_key, "body": p.message.body,
        });
        let file = self.file.as_mut().expect("opened above");
        serde_json::to_writer(&mut *file, &line)?;
        file.write_all(b"\n")
            .with_context(|| format!("cannot write to --dead-letter {}", path.display()))?;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if let (Some(file), Some(path)) = (self.file.as_mut(), &self.path) {
            file.sync_data()
                .with_context(|| format!("cannot write to --dead-letter {}", path.display()))?;
        }
        Ok(())
    }
}

/// `--max-rate`: requests per second across the run.
struct Pacer {
    rate: f64,
    next: Instant,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        Pacer {
            rate,
            next: Instant::now(),
        }
    }

    /// Waits until `n` more requests fit the rate.
    async fn wait(&mut self, n: usize) {
        let now = Instant::now();
        if self.next > now {
            tokio::time::sleep(self.next - now).await;
        }
        self.next = self.next.max(now) + Duration::from_secs_f64(n as f64 / self.rate);
    }
}
