//! Conditional writes to the read model: `_bulk` requests whose every item either applies to the
//! document that was read (`if_seq_no` + `if_primary_term`, `op_type=create`) or conflicts.
//!
//! [`ConditionalWriter`] is the small trait a repair (and later a reindex) writes through, so another
//! read model only needs one more implementation. [`BulkWriter`] is Elasticsearch's: it encodes
//! NDJSON, splits batches by bytes and count ([`split_batches`]), paces documents (`max_rate`), and
//! retries the items a 200 answer rejected with 429, alone, with backoff. Whole-request 429/5xx and
//! connection resets are retried by [`EsClient`]; a conditional item makes such a retry safe: it
//! applies once, and a second time it conflicts.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use elasticsearch::http::Method;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;

use super::client::{api_error, EsClient, RetryPolicy};

/// What one item asks of the read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// `op_type=create`: only if no document has the id.
    Create,
    /// A whole document, only over the version that was read.
    Index,
    /// Some top-level fields (`doc` merge), only over the version that was read.
    Update,
    /// Only the version that was read.
    Delete,
}

impl WriteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::Create => "create",
            WriteKind::Index => "index",
            WriteKind::Update => "update",
            WriteKind::Delete => "delete",
        }
    }
}

/// One conditional write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteAction {
    pub kind: WriteKind,
    pub index: String,
    pub id: String,
    /// The document (create, index) or the partial document (update).
    pub doc: Option<Map<String, Value>>,
    /// The version the write is conditional on (index, update, delete).
    pub if_seq_no: Option<i64>,
    pub if_primary_term: Option<i64>,
}

impl WriteAction {
    /// Appends the action's NDJSON lines to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let doc = self
            .doc
            .as_ref()
            .map(|d| serde_json::to_vec(d).expect("a JSON object serializes"));
        encode_item(self.kind, &self.index, &self.id, self.condition(), doc.as_deref(), out);
    }

    /// The action encoded once, for [`BulkWriter::apply_encoded`].
    pub fn encoded(&self) -> EncodedAction {
        let mut lines = Vec::new();
        self.encode(&mut lines);
        EncodedAction { kind: self.kind, lines }
    }

    /// The encoded size, for batching.
    pub fn encoded_len(&self) -> usize {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.len()
    }

    fn condition(&self) -> Option<(i64, i64)> {
        self.if_seq_no.zip(self.if_primary_term)
    }
}

/// One action's NDJSON lines, encoded once: a request is the concatenation of its items' lines, and
/// items rejected with 429 are sent again from the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedAction {
    pub kind: WriteKind,
    pub lines: Vec<u8>,
}

/// Appends one bulk item to `out`: its action line, conditional on `condition` (`if_seq_no`,
/// `if_primary_term`) unless it is a create, then the document, already encoded as JSON (`doc_json`;
/// an empty object when None), as the body a create or index takes or inside an update's `doc`.
pub fn encode_item(
    kind: WriteKind,
    index: &str,
    id: &str,
    condition: Option<(i64, i64)>,
    doc_json: Option<&[u8]>,
    out: &mut Vec<u8>,
) {
    let mut meta = Map::new();
    meta.insert("_index".into(), Value::String(index.to_string()));
    meta.insert("_id".into(), Value::String(id.to_string()));
    if kind != WriteKind::Create {
        if let Some((seq_no, term)) = condition {
            meta.insert("if_seq_no".into(), Value::from(seq_no));
            meta.insert("if_primary_term".into(), Value::from(term));
        }
    }
    let line = json!({ kind.as_str(): meta });
    serde_json::to_writer(&mut *out, &line).expect("a JSON value serializes");
    out.push(b'\n');
    let doc = doc_json.unwrap_or(b"{}");
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
}

/// How one item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Written (or, for a delete, the document is gone by this request).
    Applied,
    /// Someone wrote meanwhile (409, or a delete that found no document): left alone.
    Conflict,
    /// Any other error, or 429 after every retry.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemOutcome {
    pub status: ItemStatus,
    /// Elasticsearch's `result` (`created`, `updated`, `deleted`, `noop`, `not_found`).
    pub result: Option<String>,
    /// The concrete index that holds the document now.
    pub index: Option<String>,
    /// The version the write produced: what an undo makes its own write conditional on.
    pub seq_no: Option<i64>,
    pub primary_term: Option<i64>,
    pub error: Option<String>,
    /// The request was sent more than once because an attempt broke off after it may have reached
    /// the read model (a reset connection): a conflict may then be this item's own earlier attempt.
    #[serde(default)]
    pub answer_lost: bool,
}

impl ItemOutcome {
    pub fn failed(error: impl Into<String>) -> ItemOutcome {
        ItemOutcome {
            status: ItemStatus::Failed,
            result: None,
            index: None,
            seq_no: None,
            primary_term: None,
            error: Some(error.into()),
            answer_lost: false,
        }
    }
}

/// Writes batches of conditional actions; one outcome per action, in order.
pub trait ConditionalWriter: Send + Sync {
    fn apply<'a>(&'a self, batch: &'a [WriteAction]) -> BoxFuture<'a, anyhow::Result<Vec<ItemOutcome>>>;
}

#[derive(Debug, Clone)]
pub struct BulkSettings {
    /// Most encoded bytes per `_bulk` request.
    pub max_bytes: usize,
    /// Most actions per `_bulk` request.
    pub max_actions: usize,
    /// Documents per second across every request of this writer; None is unpaced.
    pub max_rate: Option<f64>,
    /// Backoff for items rejected with 429 inside a 200 answer.
    pub item_retry: RetryPolicy,
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings {
            max_bytes: 5 * 1024 * 1024,
            max_actions: 1000,
            max_rate: None,
            item_retry: RetryPolicy::default(),
        }
    }
}

/// Splits actions into consecutive ranges of at most `max_actions` actions and, unless one action
/// alone is larger, at most `max_bytes` encoded bytes.
pub fn split_batches(
    sizes: impl IntoIterator<Item = usize>,
    max_bytes: usize,
    max_actions: usize,
) -> Vec<Range<usize>> {
    let mut batches = Vec::new();
    let (mut start, mut bytes, mut n) = (0usize, 0usize, 0usize);
    for (i, size) in sizes.into_iter().enumerate() {
        if n > 0 && (n >= max_actions.max(1) || bytes + size > max_bytes) {
            batches.push(start..i);
            start = i;
            bytes = 0;
            n = 0;
        }
        bytes += size;
        n += 1;
    }
    if n > 0 {
        batches.push(start..start + n);
    }
    batches
}

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
            tokio::time::sleep(pause).await;
            todo = rejected;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| ItemOutcome::failed("no answer")))
            .collect())
    }

    async fn apply_batch(&self, batch: &[WriteAction]) -> anyhow::Result<Vec<ItemOutcome>> {
        let encoded: Vec<EncodedAction> = batch.iter().map(WriteAction::encoded).collect();
        self.apply_encoded(&encoded).await
    }
}

impl ConditionalWriter for BulkWriter {
    fn apply<'a>(&'a self, batch: &'a [WriteAction]) -> BoxFuture<'a, anyhow::Result<Vec<ItemOutcome>>> {
        self.apply_batch(batch).boxed()
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
        index: body.index.clone(),
        seq_no: body.seq_no,
        primary_term: body.primary_term,
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
            index: "orders".into(),
            id: "7".into(),
            doc: serde_json::from_str(r#"{"orderId": 7, "totalPrice": 10.50}"#).unwrap(),
            if_seq_no: Some(3),
            if_primary_term: Some(1),
        }
    }

    fn encoded(a: &WriteAction) -> String {
        let mut out = Vec::new();
        a.encode(&mut out);
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
                assert_eq!((o.seq_no, o.primary_term), (Some(12), Some(1)));
                assert_eq!(o.index.as_deref(), Some("orders-1"));
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
