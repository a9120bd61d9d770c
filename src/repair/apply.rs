//! Carrying out a plan: re-verify each key on both sides, build the writes from the rows read now,
//! make the intents durable, send them as conditional bulk requests, record each outcome.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures::StreamExt;
use serde_json::Value;

use super::audit::{encode_intent, AuditLog, GroupSync, Intent, OutcomeRecord, ANSWER_LOST_VERIFIED};
use super::plan::{patch, replacement, BeforeImage, PlannedAction, Row};
use crate::diff::Comparator;
use crate::document::Doc;
use crate::model::{DriftKind, Key, KeyedDoc};
use crate::source::{
    ConditionalWriter, DocumentSource, ItemOutcome, ItemStatus, JsonWrite, StoredDoc, WriteAction, WriteKind,
};

/// How the outcomes add up.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub applied: u64,
    /// Of the applied: writes whose answer was lost, recognised by reading the document back.
    pub answer_lost: u64,
    pub conflict: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Keys left alone because someone wrote meanwhile, with the reason.
    pub conflicts: Vec<(Value, String)>,
    pub failures: Vec<(Value, String)>,
    /// Actions not attempted because the run was interrupted.
    pub not_started: u64,
}

impl Tally {
    pub fn add(&mut self, key: &Value, outcome: &OutcomeRecord) {
        let reason = || outcome.error.clone().unwrap_or_default();
        match outcome.status.as_str() {
            "applied" => {
                self.applied += 1;
                if outcome.note.as_deref() == Some(ANSWER_LOST_VERIFIED) {
                    self.answer_lost += 1;
                }
            }
            "conflict" => {
                self.conflict += 1;
                self.conflicts.push((key.clone(), reason()));
            }
            "skipped" => self.skipped += 1,
            _ => {
                self.failed += 1;
                self.failures.push((key.clone(), reason()));
            }
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.applied += other.applied;
        self.answer_lost += other.answer_lost;
        self.conflict += other.conflict;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.not_started += other.not_started;
        self.conflicts.extend(other.conflicts);
        self.failures.extend(other.failures);
    }
}

/// An intent whose document is already encoded as JSON: the same bytes go into the audit log and
/// into the bulk body, and the document is never cloned or serialised twice.
#[derive(Debug, Clone)]
pub struct EncodedIntent {
    /// Without its `doc`: that is `doc_json`.
    pub intent: Intent,
    pub doc_json: Option<Vec<u8>>,
}

impl EncodedIntent {
    pub fn of(intent: &Intent) -> EncodedIntent {
        EncodedIntent {
            doc_json: intent
                .doc
                .as_ref()
                .map(|d| serde_json::to_vec(d).expect("a JSON object serializes")),
            intent: Intent {
                doc: None,
                ..intent.clone()
            },
        }
    }

    /// The document, decoded again (only to verify a write whose answer was lost).
    fn doc(&self) -> Option<Doc> {
        self.doc_json.as_ref().and_then(|d| serde_json::from_slice(d).ok())
    }

    /// The write, its document the bytes the log holds.
    pub fn as_write(&self) -> JsonWrite<'_> {
        JsonWrite {
            kind: self.intent.action,
            location: &self.intent.location,
            id: &self.intent.id,
            doc_json: self.doc_json.as_deref(),
            if_version: self.intent.if_version.as_ref(),
        }
    }

    /// The write, document included, for a writer that sends plain actions (reindex's catch-up,
    /// which keeps no audit log).
    pub fn write_action(&self) -> WriteAction {
        WriteAction {
            doc: self.doc(),
            ..self.intent.write_action()
        }
    }
}

/// Sends recorded intents: durable first, then the writes, then the outcomes.
pub struct Executor {
    /// The read model's conditional writes.
    pub writer: Arc<dyn ConditionalWriter>,
    pub audit: Mutex<AuditLog>,
    /// The log's group commit: batches in flight share fsyncs.
    pub durable: Arc<GroupSync>,
    /// Set on SIGINT/SIGTERM: no new batch starts; batches in flight finish and are recorded.
    pub stop: Arc<AtomicBool>,
    pub concurrency: usize,
    /// A progress line on stderr every few seconds (not under `--quiet`).
    pub progress: bool,
}

impl Executor {
    pub fn new(
        writer: Arc<dyn ConditionalWriter>,
        audit: AuditLog,
        stop: Arc<AtomicBool>,
        concurrency: usize,
        progress: bool,
    ) -> Executor {
        Executor {
            writer,
            durable: audit.group_sync(),
            audit: Mutex::new(audit),
            stop,
            concurrency,
            progress,
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn record(&self, outcomes: &[OutcomeRecord]) -> anyhow::Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut audit = self.audit.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(audit.outcomes(outcomes)?)
    }

    /// Writes intents. A request that fails as a whole leaves its intents without outcome and stops
    /// the run: whether it applied is unknown, and `--resume` settles it safely. `resent`: these
    /// intents may have been sent before (resume), so a conflict may be their own earlier write.
    pub async fn write(&self, intents: &[EncodedIntent], resent: bool) -> anyhow::Result<Vec<OutcomeRecord>> {
        if intents.is_empty() {
            return Ok(Vec::new());
        }
        // Outside the log's lock: the log's lines, and the writes from the same document bytes.
        let size: usize = intents
            .iter()
            .map(|i| i.doc_json.as_ref().map_or(0, Vec::len) + 256)
            .sum();
        let mut lines = Vec::with_capacity(size);
        for EncodedIntent { intent, doc_json } in intents {
            encode_intent(intent, doc_json.as_deref(), &mut lines);
        }
        let writes: Vec<JsonWrite<'_>> = intents.iter().map(EncodedIntent::as_write).collect();
        let position = {
            let mut audit = self.audit.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            audit.append_encoded(&lines)?
        };
        drop(lines);
        // Durable before any write goes out. Awaited, so the other batches in flight go on meanwhile,
        // and those that arrive during an fsync share the next one.
        self.durable
            .through(position)
            .await
            .context("cannot fsync the audit log; nothing of this batch was written")?;
        let items = self
            .writer
            .apply_json(&writes)
            .await
            .context("a bulk request failed; its outcome is unknown until the repair is resumed")?;
        let mut records = Vec::with_capacity(items.len());
        for (intent, item) in intents.iter().zip(items) {
            let record = if item.status == ItemStatus::Conflict && (item.answer_lost || resent) {
                self.settle_conflict(intent, item).await
            } else {
                OutcomeRecord::from_item(intent.intent.seq, &item)
            };
            records.push(record);
        }
        self.record(&records)?;
        Ok(records)
    }

    /// A conflict after a lost answer may be this write's own: the request applied, its answer was
    /// lost to a reset connection (or to a crash, on resume), and the attempt sent again conflicts
    /// with the first. When the document now holds exactly what was written (or, for a delete, is
    /// gone), the write applied; anything else is someone else's write, and stays a conflict.
    async fn settle_conflict(&self, encoded: &EncodedIntent, item: ItemOutcome) -> OutcomeRecord {
        let intent = &encoded.intent;
        let as_conflict = |item: &ItemOutcome| OutcomeRecord::from_item(intent.seq, item);
        let place = [(intent.location.clone(), intent.id.clone())];
        let Ok(Some(current)) = self.writer.read_back(&place).await.map(|mut docs| docs.pop()) else {
            return as_conflict(&item);
        };
        let verified = |location: Option<String>, version| OutcomeRecord {
            seq: intent.seq,
            status: "applied".into(),
            result: Some("verified".into()),
            location,
            version,
            error: None,
            note: Some(ANSWER_LOST_VERIFIED.into()),
        };
        if intent.action == WriteKind::Delete {
            // Gone, with no newer write visible: our delete. A document there now is a newer write.
            return if matches!(current, StoredDoc::Absent | StoredDoc::NoLocation(_)) {
                verified(None, None)
            } else {
                as_conflict(&item)
            };
        }
        let StoredDoc::Found {
            location,
            source,
            version,
        } = current
        else {
            return as_conflict(&item);
        };
        let wanted = encoded.doc();
        let holds = match (intent.action, wanted.as_ref()) {
            (WriteKind::Create | WriteKind::Index, Some(w)) => &source == w,
            (WriteKind::Update, Some(w)) => w.iter().all(|(k, v)| source.get(k) == Some(v)),
            _ => false,
        };
        // An index or update must also not be the version it was conditional on.
        let moved = intent.if_version != version;
        if holds && (intent.action == WriteKind::Create || moved) {
            verified(location, version)
        } else {
            as_conflict(&item)
        }
    }

    /// Prepares and writes every planned action, a chunk (read as it is needed: the plan may be a
    /// spool on disk) at a time, with bounded concurrency. `planned`: the actions in all chunks.
    pub async fn run_plan(
        &self,
        repairer: &Repairer<'_>,
        chunks: impl Iterator<Item = std::io::Result<Vec<PlannedAction>>>,
        planned: u64,
    ) -> anyhow::Result<Tally> {
        let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let fail = |e: anyhow::Error| {
            self.stop.store(true, Ordering::SeqCst);
            let mut slot = first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.get_or_insert(e);
        };
        let mut results = futures::stream::iter(chunks)
            .map(|part| async {
                let mut tally = Tally::default();
                let part = match part {
                    Ok(part) => part,
                    Err(e) => {
                        fail(anyhow::Error::new(e).context("cannot read the plan back from its temporary file"));
                        return tally;
                    }
                };
                if self.stopped() {
                    tally.not_started = part.len() as u64;
                    return tally;
                }
                let done = async {
                    let (intents, skipped) = repairer.prepare(&part).await?;
                    self.record(&skipped)?;
                    let outcomes = self.write(&intents, false).await?;
                    anyhow::Ok((intents, skipped, outcomes))
                }
                .await;
                match done {
                    Ok((intents, skipped, outcomes)) => {
                        let keys: HashMap<u64, &Value> = part.iter().map(|a| (a.seq, &a.key)).collect();
                        for o in skipped.iter().chain(&outcomes) {
                            tally.add(keys[&o.seq], o);
                        }
                        debug_assert_eq!(intents.len(), outcomes.len());
                    }
                    Err(e) => {
                        tally.not_started = part.len() as u64;
                        fail(e);
                    }
                }
                tally
            })
            .buffer_unordered(self.concurrency.max(1));
        let mut total = Tally::default();
        let mut last_report = std::time::Instant::now();
        while let Some(t) = results.next().await {
            total.merge(t);
            if self.progress && last_report.elapsed() >= std::time::Duration::from_secs(5) {
                last_report = std::time::Instant::now();
                let done = total.applied + total.conflict + total.failed + total.skipped;
                crate::note!(
                    "recon: repair: {done}/{planned} actions ({} applied, {} conflicts, {} failed)",
                    total.applied,
                    total.conflict,
                    total.failed
                );
            }
        }
        drop(results);
        tokio::task::block_in_place(|| {
            let mut audit = self.audit.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            audit.finish()
        })?;
        if let Some(e) = first_error
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            return Err(e);
        }
        Ok(total)
    }
}

/// Re-verifies planned keys and builds their writes.
pub struct Repairer<'a> {
    pub write_model: &'a dyn DocumentSource,
    pub read_model: &'a dyn DocumentSource,
    pub comparator: &'a Comparator,
    pub ignore: &'a [String],
}

impl Repairer<'_> {
    /// Reads the planned keys again on both sides and turns each action into an intent, or into a
    /// `skipped`/`conflict` outcome when re-verification says the write must not happen.
    pub async fn prepare(&self, part: &[PlannedAction]) -> anyhow::Result<(Vec<EncodedIntent>, Vec<OutcomeRecord>)> {
        // Keys this run just verified on both sides are not read again; a plan from a file is.
        let mut keys: Vec<Key> = part
            .iter()
            .filter(|a| a.verified.is_none())
            .filter_map(PlannedAction::key)
            .collect();
        keys.sort();
        keys.dedup();
        let need_read_model = part.iter().any(|a| a.before.is_none() && a.action != WriteKind::Create);
        let (rows, docs) = if need_read_model {
            tokio::try_join!(self.write_model.lookup(&keys), self.read_model.lookup(&keys))?
        } else {
            (self.write_model.lookup(&keys).await?, Vec::new())
        };
        let rows: HashMap<Key, Row> = rows.into_iter().map(|d| (d.key, Row::Doc(d.doc))).collect();
        let docs: HashMap<String, KeyedDoc> = docs.into_iter().filter_map(|d| Some((d.meta.id.clone()?, d))).collect();
        let mut intents = Vec::new();
        let mut skipped = Vec::new();
        for a in part {
            // A document without a key (`unkeyed`) has no row to look for: only its version decides.
            let key = a.key();
            if key.is_none() && a.drift != DriftKind::Unkeyed {
                skipped.push(OutcomeRecord::skipped(
                    a.seq,
                    format!("not a key: {}", a.key),
                    "invalid",
                ));
                continue;
            }
            let row = match &a.verified {
                Some(v) => v.row.as_ref(),
                None => key.as_ref().and_then(|k| rows.get(k)),
            };
            let before = a
                .before
                .clone()
                .or_else(|| docs.get(&a.id).and_then(|d| BeforeImage::of(d, &a.location)));
            let intent = |doc_json: Option<Vec<u8>>| EncodedIntent {
                intent: Intent {
                    seq: a.seq,
                    action: a.action,
                    key: a.key.clone(),
                    location: a.location.clone(),
                    id: a.id.clone(),
                    if_version: a.if_version.clone(),
                    doc: None,
                    before: before.clone(),
                },
                doc_json,
            };
            match a.action {
                WriteKind::Create => match row {
                    None => skipped.push(OutcomeRecord::skipped(
                        a.seq,
                        "the row was deleted since the plan",
                        "row_gone",
                    )),
                    // A row kept as JSON by the plan spool is written as it is.
                    Some(row) => intents.push(intent(Some(row.json().into_owned()))),
                },
                WriteKind::Delete => {
                    if a.drift == DriftKind::Orphaned && row.is_some() {
                        skipped.push(OutcomeRecord::skipped(
                            a.seq,
                            "the row exists again in the write model",
                            "row_back",
                        ));
                    } else if before.is_none() {
                        skipped.push(conflict(a.seq, "the document is gone"));
                    } else {
                        intents.push(intent(None));
                    }
                }
                WriteKind::Index | WriteKind::Update => {
                    let (Some(row), Some(current)) = (row, before.as_ref()) else {
                        if row.is_none() {
                            skipped.push(OutcomeRecord::skipped(
                                a.seq,
                                "the row was deleted since the plan",
                                "row_gone",
                            ));
                        } else {
                            skipped.push(conflict(a.seq, "the document is gone"));
                        }
                        continue;
                    };
                    let row = row.doc();
                    let row = row.as_ref();
                    if self.comparator.diff(row, &current.source).is_empty() {
                        skipped.push(OutcomeRecord::skipped(a.seq, "already in sync", "in_sync"));
                        continue;
                    }
                    let doc = if a.action == WriteKind::Index {
                        replacement(row, &current.source, self.ignore)
                    } else {
                        // Fields are recomputed from the row read now: the plan's list may be stale.
                        let mut fields: Vec<String> = self
                            .comparator
                            .diff(row, &current.source)
                            .iter()
                            .map(|d| super::plan::top_field(&d.path).to_string())
                            .collect();
                        fields.dedup();
                        patch(row, &fields)
                    };
                    intents.push(intent(Some(
                        serde_json::to_vec(&doc).expect("a JSON object serializes"),
                    )));
                }
            }
        }
        Ok((intents, skipped))
    }
}

fn conflict(seq: u64, reason: &str) -> OutcomeRecord {
    OutcomeRecord {
        status: "conflict".into(),
        ..OutcomeRecord::skipped(seq, reason, "gone")
    }
}

/// Percent-encodes a path segment (ids may hold `/`, `?`, spaces). Used by reindex's requests.
pub fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Version;
    use futures::future::BoxFuture;
    use futures::FutureExt;
    use serde_json::json;

    /// A read model that answers every write with a conflict whose answer was lost, and every read
    /// back with `current`: the trait is all the executor needs.
    struct LostAnswers {
        current: StoredDoc,
    }

    impl ConditionalWriter for LostAnswers {
        fn apply<'a>(&'a self, batch: &'a [WriteAction]) -> BoxFuture<'a, anyhow::Result<Vec<ItemOutcome>>> {
            async move { Ok(batch.iter().map(|_| lost()).collect()) }.boxed()
        }

        fn apply_json<'a>(&'a self, batch: &'a [JsonWrite<'a>]) -> BoxFuture<'a, anyhow::Result<Vec<ItemOutcome>>> {
            async move { Ok(batch.iter().map(|_| lost()).collect()) }.boxed()
        }

        fn read_back<'a>(&'a self, docs: &'a [(String, String)]) -> BoxFuture<'a, anyhow::Result<Vec<StoredDoc>>> {
            async move { Ok(docs.iter().map(|_| self.current.clone()).collect()) }.boxed()
        }

        fn refresh<'a>(&'a self, _: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
            async { Ok(()) }.boxed()
        }

        fn describe_condition(&self, version: &Version) -> String {
            format!("if_version={version}")
        }
    }

    fn lost() -> ItemOutcome {
        ItemOutcome {
            status: ItemStatus::Conflict,
            answer_lost: true,
            ..ItemOutcome::failed("version conflict")
        }
    }

    async fn settled(action: WriteKind, doc: Option<Value>, current: StoredDoc) -> OutcomeRecord {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::create(&dir.path().join("audit.ndjson")).unwrap();
        let executor = Executor::new(
            Arc::new(LostAnswers { current }),
            log,
            Arc::new(AtomicBool::new(false)),
            1,
            false,
        );
        let intent = Intent {
            seq: 1,
            action,
            key: json!(1),
            location: "orders".into(),
            id: "1".into(),
            if_version: Some(Version::new("v3")),
            doc: doc.and_then(|d| d.as_object().cloned()).map(Doc::from),
            before: None,
        };
        let mut records = executor.write(&[EncodedIntent::of(&intent)], false).await.unwrap();
        records.pop().unwrap()
    }

    #[tokio::test]
    async fn a_conflict_after_a_lost_answer_is_ours_only_when_the_document_shows_our_write() {
        let found = |name: &str, version: &str| StoredDoc::Found {
            location: Some("orders-v2".into()),
            source: json!({ "name": name }).as_object().cloned().unwrap().into(),
            version: Some(Version::new(version)),
        };
        // Our replacement is there, at a newer version: it applied.
        let o = settled(WriteKind::Index, Some(json!({"name": "ours"})), found("ours", "v4")).await;
        assert_eq!(
            (o.status.as_str(), o.note.as_deref(), o.version),
            ("applied", Some(ANSWER_LOST_VERIFIED), Some(Version::new("v4")))
        );
        assert_eq!(o.location.as_deref(), Some("orders-v2"));
        // Someone else's document, or ours still at the version the write was conditional on.
        for current in [found("theirs", "v4"), found("ours", "v3")] {
            let o = settled(WriteKind::Index, Some(json!({"name": "ours"})), current).await;
            assert_eq!(o.status, "conflict");
        }
        // A delete: gone, or its whole location gone, is ours; a document there, or no answer, is not.
        for current in [StoredDoc::Absent, StoredDoc::NoLocation("no such index".into())] {
            assert_eq!(settled(WriteKind::Delete, None, current).await.status, "applied");
        }
        for current in [found("theirs", "v4"), StoredDoc::Unreadable("no shard".into())] {
            assert_eq!(settled(WriteKind::Delete, None, current).await.status, "conflict");
        }
    }
}
