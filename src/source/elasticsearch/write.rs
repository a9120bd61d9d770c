//! Conditional writes to the read model: `_bulk` requests whose every item either applies to the
//! document that was read (`if_seq_no` + `if_primary_term`, `op_type=create`) or conflicts.
//!
//! [`ConditionalWriter`] (in [`crate::source::write`]) is the trait repair, undo and reindex write
//! through; [`BulkWriter`] is Elasticsearch's implementation. Its version token ([`version`]) is
//! `_seq_no` and `_primary_term` as `SEQ_NO:PRIMARY_TERM`, decoded again into `if_seq_no` and
//! `if_primary_term` when a write names it. Documents are read back with `_mget`, made visible with
//! `_refresh`.
//!
//! [`BulkWriter`] encodes NDJSON, splits batches by bytes and count ([`split_batches`]), paces
//! documents (`max_rate`), and retries the items a 200 answer rejected with 429, alone, with backoff.
//! Whole-request 429/5xx and connection resets are retried by [`EsClient`]; a conditional item makes
//! such a retry safe: it applies once, and a second time it conflicts.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use elasticsearch::http::Method;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;

use super::client::{api_error, EsClient};
use crate::model::Version;
// The writer's vocabulary is the read model's trait's; re-exported so `write::WriteKind` and the
// rest keep their paths.
pub use crate::source::write::{
    ConditionalWriter, ItemOutcome, ItemStatus, JsonWrite, StoredDoc, WriteAction, WriteKind,
};

/// Elasticsearch's version token: `_seq_no` and `_primary_term`, as the text `SEQ_NO:PRIMARY_TERM`.
pub fn version(seq_no: i64, primary_term: i64) -> Version {
    Version::new(format!("{seq_no}:{primary_term}"))
}

/// Both, when present: the version of a hit or of a write's answer.
pub fn version_of(seq_no: Option<i64>, primary_term: Option<i64>) -> Option<Version> {
    Some(version(seq_no?, primary_term?))
}

/// `_seq_no` and `_primary_term` out of a token [`version`] made; None for any other text.
pub fn decode_version(version: &Version) -> Option<(i64, i64)> {
    let (seq_no, term) = version.as_str().split_once(':')?;
    Some((seq_no.parse().ok()?, term.parse().ok()?))
}

fn condition(version: Option<&Version>) -> anyhow::Result<Option<(i64, i64)>> {
    version
        .map(|v| {
            decode_version(v).with_context(|| {
                format!(
                    "version {:?} is not an Elasticsearch version (SEQ_NO:PRIMARY_TERM); was the plan or \
                     audit log written against another read model, or edited?",
                    v.as_str()
                )
            })
        })
        .transpose()
}

impl WriteAction {
    /// Appends the action's `_bulk` NDJSON lines to `out`. Fails on a version Elasticsearch did not
    /// hand out.
    pub fn encode(&self, out: &mut Vec<u8>) -> anyhow::Result<()> {
        let doc = self
            .doc
            .as_ref()
            .map(|d| serde_json::to_vec(d).expect("a JSON object serializes"));
        encode_write(&self.as_json(doc.as_deref()), out)
    }

    /// The action encoded once, for [`BulkWriter::apply_encoded`].
    pub fn encoded(&self) -> anyhow::Result<EncodedAction> {
        let mut lines = Vec::new();
        self.encode(&mut lines)?;
        Ok(EncodedAction { kind: self.kind, lines })
    }

    /// The encoded size, for batching.
    pub fn encoded_len(&self) -> usize {
        let mut out = Vec::new();
        let _ = self.encode(&mut out);
        out.len()
    }
}

/// One action's NDJSON lines, encoded once: a request is the concatenation of its items' lines, and
/// items rejected with 429 are sent again from the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedAction {
    pub kind: WriteKind,
    pub lines: Vec<u8>,
}

/// Appends one bulk item to `out`: its action line, conditional on the write's version (`if_seq_no`,
/// `if_primary_term`) unless it is a create, then the document, already encoded as JSON (an empty
/// object when None), as the body a create or index takes or inside an update's `doc`.
pub fn encode_write(write: &JsonWrite<'_>, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let kind = write.kind;
    let mut meta = Map::new();
    meta.insert("_index".into(), Value::String(write.location.to_string()));
    meta.insert("_id".into(), Value::String(write.id.to_string()));
    if kind != WriteKind::Create {
        if let Some((seq_no, term)) = condition(write.if_version)? {
            meta.insert("if_seq_no".into(), Value::from(seq_no));
            meta.insert("if_primary_term".into(), Value::from(term));
        }
    }
    let line = json!({ kind.as_str(): meta });
    serde_json::to_writer(&mut *out, &line).expect("a JSON value serializes");
    out.push(b'\n');
    let doc = write.doc_json.unwrap_or(b"{}");
    match kind {
        WriteKind::Create | WriteKind::Index => {
            out.extend_from_slice(doc);
            out.push(b'\n');
        }
        WriteKind::Update => {
            out.extend_from_slice(b"{\"doc\":");
            out.extend_from_slice(doc);
            out.extend_from_slice(b"}\n");
        }
        WriteKind::Delete => {}
    }
    Ok(())
}

pub use crate::source::write::BulkSettings;

// Shared with the other connectors; re-exported so `write::split_batches` keeps its path.
pub use crate::source::write::split_batches;

/// Paces documents: each reservation of `n` documents moves the next free slot `n / rate` seconds on.
#[derive(Debug)]
struct Pacer {
    rate: f64,
    next: Mutex<Instant>,
}

impl Pacer {
    async fn reserve(&self, docs: usize) {
        let wait_until = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(docs as f64 / self.rate);
            start
        };
        tokio::time::sleep_until(wait_until.into()).await;
    }
}

/// Elasticsearch's conditional writer over `_bulk`.
#[derive(Clone)]
pub struct BulkWriter {
    client: EsClient,
    settings: BulkSettings,
    pacer: Option<Arc<Pacer>>,
}

impl BulkWriter {
    pub fn new(client: EsClient, settings: BulkSettings) -> BulkWriter {
        let pacer = settings.max_rate.filter(|r| *r > 0.0).map(|rate| {
            Arc::new(Pacer {
                rate,
                next: Mutex::new(Instant::now()),
            })
        });
        BulkWriter {
            client,
            settings,
            pacer,
        }
    }

    pub fn settings(&self) -> &BulkSettings {
        &self.settings
    }

    /// Ranges of `actions` that each fit one request.
    pub fn batches(&self, actions: &[WriteAction]) -> Vec<Range<usize>> {
        split_batches(
            actions.iter().map(WriteAction::encoded_len),
            self.settings.max_bytes,
            self.settings.max_actions,
        )
    }

    /// Ranges of encoded `actions` that each fit one request.
    pub fn batches_encoded(&self, actions: &[EncodedAction]) -> Vec<Range<usize>> {
        split_batches(
            actions.iter().map(|a| a.lines.len()),
            self.settings.max_bytes,
            self.settings.max_actions,
        )
    }

    /// Sends the `todo` items of `batch` as one request: the items of the answer, and whether an
    /// attempt's answer was lost on the way.
    async fn send(&self, batch: &[EncodedAction], todo: &[usize]) -> anyhow::Result<(Vec<BulkItem>, bool)> {
        let mut body = Vec::with_capacity(todo.iter().map(|&i| batch[i].lines.len()).sum());
        for &i in todo {
            body.extend_from_slice(&batch[i].lines);
        }
        if let Some(pacer) = &self.pacer {
            pacer.reserve(todo.len()).await;
        }
        let (response, answer_lost) = self
            .client
            .request_raw_noting_lost(Method::Post, "/_bulk", &[("refresh", "false")], Some(body))
            .await;
        let response = response?;
        if response.status >= 400 {
            let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            return Err(api_error(Method::Post, "/_bulk", response.status, body).into());
        }
        // Read into its own types, not a `Value`: an answer holds an object per item, and only a few
        // of their fields matter.
        let items = serde_json::from_slice::<BulkAnswer>(&response.body)
            .map_err(|e| anyhow::anyhow!("_bulk answered something that is not a bulk answer: {e}"))?
            .items;
        if items.len() != todo.len() {
            anyhow::bail!(
                "_bulk answered {} items for {} actions; the outcome of this batch is unknown",
                items.len(),
                todo.len()
            );
        }
        Ok((items, answer_lost))
    }

    /// Writes actions encoded beforehand (one request; split with [`batches_encoded`](Self::batches_encoded)):
    /// one outcome per action, in order.
    pub async fn apply_encoded(&self, batch: &[EncodedAction]) -> anyhow::Result<Vec<ItemOutcome>> {
        let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; batch.len()];
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        let mut pauses = backon::BackoffBuilder::build(self.settings.item_retry.backoff());
        let mut attempt = 0usize;
        // Sticky: an item rejected with 429 by the answered attempt may have applied in an earlier
        // attempt whose answer was lost, and then conflict with itself in a later round.
        let mut answer_lost = false;
        while !todo.is_empty() {
            let (items, lost) = self.send(batch, &todo).await?;
            answer_lost |= lost;
            let mut rejected = Vec::new();
            for (&i, item) in todo.iter().zip(&items) {
                match read_item(batch[i].kind, item) {
                    ItemReading::Done(mut outcome) => {
                        outcome.answer_lost = answer_lost;
                        outcomes[i] = Some(outcome)
                    }
                    ItemReading::Rejected(reason) => {
                        outcomes[i] = Some(ItemOutcome::failed(format!(
                            "rejected with 429 after {} attempts: {reason}",
                            attempt + 1
                        )));
                        rejected.push(i);
                    }
                }
            }
            attempt += 1;
            if rejected.is_empty() {
                break;
            }
            // The one retry policy's schedule, jitter included: a storm of clients retrying in step
            // would be rejected in step.
            let Some(pause) = pauses.next() else {
                break;
            };
            crate::source::retry::log_retry(
                "POST /_bulk",
                &format!(
                    "{} rejected with 429",
                    crate::plural::plural(rejected.len(), "item", "items")
                ),
                attempt,
                self.settings.item_retry.max_retries + 1,
                pause,
            );
            tokio::time::sleep(pause).await;
            todo = rejected;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| ItemOutcome::failed("no answer")))
            .collect())
    }

    /// Encodes `batch`, splits it into requests and sends them one after the other.
    async fn apply_all(&self, batch: &[JsonWrite<'_>]) -> anyhow::Result<Vec<ItemOutcome>> {
        let mut encoded = Vec::with_capacity(batch.len());
        for write in batch {
            let mut lines = Vec::with_capacity(write.doc_json.map_or(0, <[u8]>::len) + 128);
            encode_write(write, &mut lines).with_context(|| format!("cannot write _id {}", write.id))?;
            encoded.push(EncodedAction {
                kind: write.kind,
                lines,
            });
        }
        let mut outcomes = Vec::with_capacity(encoded.len());
        for range in self.batches_encoded(&encoded) {
            outcomes.extend(self.apply_encoded(&encoded[range]).await?);
        }
        Ok(outcomes)
    }

    /// The documents, by `_mget`, a thousand per request.
    async fn read_docs(&self, docs: &[(String, String)]) -> anyhow::Result<Vec<StoredDoc>> {
        let mut read = Vec::with_capacity(docs.len());
        for chunk in docs.chunks(1000) {
            let wanted: Vec<Value> = chunk
                .iter()
                .map(|(index, id)| json!({"_index": index, "_id": id}))
                .collect();
            let body = self
                .client
                .request_ok(Method::Post, "/_mget", &[], Some(&json!({ "docs": wanted })))
                .await
                .context("cannot read the documents back")?;
            let answers = body["docs"]
                .as_array()
                .filter(|a| a.len() == chunk.len())
                .with_context(|| format!("_mget of {} documents did not answer for each", chunk.len()))?;
            read.extend(answers.iter().map(stored_doc));
        }
        Ok(read)
    }

    async fn refresh_index(&self, index: &str) -> anyhow::Result<()> {
        let path = format!("/{}/_refresh", super::encode(index));
        self.client.request_ok(Method::Post, &path, &[], None).await?;
        Ok(())
    }
}

/// One `_mget` entry: a get result, or an error (a missing index).
fn stored_doc(entry: &Value) -> StoredDoc {
    if let Some(error) = entry.get("error") {
        let reason = error["reason"]
            .as_str()
            .map_or_else(|| error.to_string(), str::to_string);
        return match error["type"].as_str() {
            Some("index_not_found_exception") => StoredDoc::NoLocation(reason),
            _ => StoredDoc::Unreadable(reason),
        };
    }
    if entry["found"] != Value::Bool(true) {
        return StoredDoc::Absent;
    }
    StoredDoc::Found {
        location: entry["_index"].as_str().map(str::to_string),
        source: entry["_source"].as_object().cloned().unwrap_or_default().into(),
        version: version_of(entry["_seq_no"].as_i64(), entry["_primary_term"].as_i64()),
    }
}

impl ConditionalWriter for BulkWriter {
    fn apply_json<'a>(&'a self, batch: &'a [JsonWrite<'a>]) -> BoxFuture<'a, anyhow::Result<Vec<ItemOutcome>>> {
        self.apply_all(batch).boxed()
    }

    fn read_back<'a>(&'a self, docs: &'a [(String, String)]) -> BoxFuture<'a, anyhow::Result<Vec<StoredDoc>>> {
        self.read_docs(docs).boxed()
    }

    fn refresh<'a>(&'a self, location: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        self.refresh_index(location).boxed()
    }

    fn describe_condition(&self, version: &Version) -> String {
        match decode_version(version) {
            Some((seq_no, term)) => format!("if_seq_no={seq_no} if_primary_term={term}"),
            None => format!("if_version={version}"),
        }
    }
}

enum ItemReading {
    Done(ItemOutcome),
    Rejected(String),
}

/// The part of a bulk answer recon reads.
#[derive(Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    items: Vec<BulkItem>,
}

/// One item: `{"create": {"status": 201, "result": "created", ...}}`, whatever the operation.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum BulkItem {
    Create(ItemAnswer),
    Index(ItemAnswer),
    Update(ItemAnswer),
    Delete(ItemAnswer),
}

#[derive(Deserialize, Default)]
struct ItemAnswer {
    #[serde(default)]
    status: u64,
    #[serde(default)]
    result: Option<String>,
    #[serde(default, rename = "_index")]
    index: Option<String>,
    #[serde(default, rename = "_seq_no")]
    seq_no: Option<i64>,
    #[serde(default, rename = "_primary_term")]
    primary_term: Option<i64>,
    #[serde(default)]
    error: Option<Value>,
}

/// Reads one item of a bulk answer.
fn read_item(kind: WriteKind, item: &BulkItem) -> ItemReading {
    let (BulkItem::Create(body) | BulkItem::Index(body) | BulkItem::Update(body) | BulkItem::Delete(body)) = item;
    let status = body.status;
    let reason = || {
        let error = body.error.as_ref().unwrap_or(&Value::Null);
        match (error["type"].as_str(), error["reason"].as_str()) {
            (Some(t), Some(r)) => format!("{t}: {r}"),
            _ => format!("HTTP {status}: {error}"),
        }
    };
    let outcome = |status: ItemStatus, error: Option<String>| ItemOutcome {
        status,
        result: body.result.clone(),
        location: body.index.clone(),
        version: version_of(body.seq_no, body.primary_term),
        error,
        answer_lost: false,
    };
    match status {
        200..=299 => ItemReading::Done(outcome(ItemStatus::Applied, None)),
        // A conditional delete of a document that is gone: someone deleted it meanwhile.
        404 if kind == WriteKind::Delete => ItemReading::Done(outcome(
            ItemStatus::Conflict,
            Some("the document was already gone".into()),
        )),
        409 => ItemReading::Done(outcome(ItemStatus::Conflict, Some(reason()))),
        429 => ItemReading::Rejected(reason()),
        _ => ItemReading::Done(outcome(ItemStatus::Failed, Some(reason()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(kind: WriteKind) -> WriteAction {
        WriteAction {
            kind,
            location: "orders".into(),
            id: "7".into(),
            doc: serde_json::from_str(r#"{"orderId": 7, "totalPrice": 10.50}"#).unwrap(),
            if_version: Some(version(3, 1)),
        }
    }

    fn encoded(a: &WriteAction) -> String {
        let mut out = Vec::new();
        a.encode(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn actions_encode_as_bulk_lines_with_their_conditions() {
        assert_eq!(
            encoded(&action(WriteKind::Create)),
            "{\"create\":{\"_index\":\"orders\",\"_id\":\"7\"}}\n{\"orderId\":7,\"totalPrice\":10.50}\n"
        );
        assert_eq!(
            encoded(&action(WriteKind::Index)),
            "{\"index\":{\"_index\":\"orders\",\"_id\":\"7\",\"if_seq_no\":3,\"if_primary_term\":1}}\n\
             {\"orderId\":7,\"totalPrice\":10.50}\n"
        );
        assert_eq!(
            encoded(&action(WriteKind::Update)),
            "{\"update\":{\"_index\":\"orders\",\"_id\":\"7\",\"if_seq_no\":3,\"if_primary_term\":1}}\n\
             {\"doc\":{\"orderId\":7,\"totalPrice\":10.50}}\n"
        );
        assert_eq!(
            encoded(&action(WriteKind::Delete)),
            "{\"delete\":{\"_index\":\"orders\",\"_id\":\"7\",\"if_seq_no\":3,\"if_primary_term\":1}}\n"
        );
    }

    #[test]
    fn versions_are_seq_no_and_primary_term_and_nothing_else_is_written() {
        assert_eq!(version(41, 3).as_str(), "41:3");
        assert_eq!(decode_version(&version(41, 3)), Some((41, 3)));
        for other in ["", "41", "41:", "a:1", "41:3:1"] {
            assert_eq!(decode_version(&Version::new(other)), None, "{other:?}");
        }
        let foreign = WriteAction {
            if_version: Some(Version::new("etag-7")),
            ..action(WriteKind::Index)
        };
        let e = foreign.encode(&mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("\"etag-7\" is not an Elasticsearch version"), "{e}");
        // A create names no version, whatever it carries.
        let create = WriteAction {
            kind: WriteKind::Create,
            ..foreign
        };
        assert!(create.encode(&mut Vec::new()).is_ok());
    }

    #[test]
    fn mget_entries_read_as_found_absent_or_unreadable() {
        let found = json!({"_index": "orders-1", "_id": "7", "_seq_no": 4, "_primary_term": 2, "found": true,
            "_source": {"orderId": 7}});
        assert_eq!(
            stored_doc(&found),
            StoredDoc::Found {
                location: Some("orders-1".into()),
                source: json!({"orderId": 7}).as_object().unwrap().clone().into(),
                version: Some(version(4, 2)),
            }
        );
        assert_eq!(
            stored_doc(&json!({"_index": "o", "_id": "7", "found": false})),
            StoredDoc::Absent
        );
        let missing = json!({"_index": "o", "_id": "7", "error": {"type": "index_not_found_exception",
            "reason": "no such index [o]"}});
        assert_eq!(stored_doc(&missing), StoredDoc::NoLocation("no such index [o]".into()));
        let broken = json!({"_index": "o", "_id": "7", "error": {"type": "no_shard_available_action_exception",
            "reason": "no shard"}});
        assert_eq!(stored_doc(&broken), StoredDoc::Unreadable("no shard".into()));
    }

    #[test]
    fn batches_split_by_count_and_bytes() {
        assert_eq!(split_batches([10, 10, 10, 10, 10], 1000, 2), vec![0..2, 2..4, 4..5]);
        assert_eq!(split_batches([10, 10, 10, 10], 25, 100), vec![0..2, 2..4]);
        // One action larger than the limit still goes, alone.
        assert_eq!(split_batches([10, 50, 10], 25, 100), vec![0..1, 1..2, 2..3]);
        assert!(split_batches([], 25, 100).is_empty());
    }

    fn item(answer: Value) -> BulkItem {
        serde_json::from_value(answer).unwrap()
    }

    #[test]
    fn items_read_as_applied_conflict_rejected_or_failed() {
        let created = json!({"create": {"_index": "orders-1", "_id": "7", "status": 201, "result": "created",
            "_seq_no": 12, "_primary_term": 1}});
        match read_item(WriteKind::Create, &item(created)) {
            ItemReading::Done(o) => {
                assert_eq!(o.status, ItemStatus::Applied);
                assert_eq!(o.version, Some(version(12, 1)));
                assert_eq!(o.location.as_deref(), Some("orders-1"));
            }
            ItemReading::Rejected(_) => panic!("not rejected"),
        }
        let conflict = json!({"index": {"status": 409, "error": {"type": "version_conflict_engine_exception",
            "reason": "required seqNo [3]"}}});
        assert!(matches!(
            read_item(WriteKind::Index, &item(conflict)),
            ItemReading::Done(ItemOutcome {
                status: ItemStatus::Conflict,
                ..
            })
        ));
        let gone = json!({"delete": {"status": 404, "result": "not_found"}});
        assert!(matches!(
            read_item(WriteKind::Delete, &item(gone)),
            ItemReading::Done(ItemOutcome {
                status: ItemStatus::Conflict,
                ..
            })
        ));
        let rejected = json!({"index": {"status": 429, "error": {"type": "es_rejected_execution_exception",
            "reason": "queue full"}}});
        assert!(matches!(
            read_item(WriteKind::Index, &item(rejected)),
            ItemReading::Rejected(_)
        ));
        let bad = json!({"index": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "x"}}});
        assert!(matches!(
            read_item(WriteKind::Index, &item(bad)),
            ItemReading::Done(ItemOutcome {
                status: ItemStatus::Failed,
                ..
            })
        ));
    }
}
