//! Conditional writes to a read model, behind one trait: what a repair, an undo (and a reindex's
//! catch-up) write through, so another read model needs only one more implementation.
//!
//! Every write names the [`Version`] of the document it expects, or is a create that applies only
//! where no document is; a write over anything else conflicts and is left alone. The version is
//! opaque here: only the read model that handed it out knows what it means.

use std::ops::Range;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::document::Doc;
use crate::model::Version;
use crate::source::retry::RetryPolicy;

/// What one write asks of the read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// Only if no document has the id.
    Create,
    /// A whole document, only over the version that was read.
    Index,
    /// Some top-level fields (merged into the document), only over the version that was read.
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
    /// Where the document goes or is ([`crate::model::DocMeta::location`], or the configured name).
    pub location: String,
    pub id: String,
    /// The document (create, index) or the partial document (update).
    pub doc: Option<Doc>,
    /// The version the write is conditional on (index, update, delete); None writes unconditionally.
    pub if_version: Option<Version>,
}

/// A write whose document is already JSON: the bytes an audit log holds go out as they are, never
/// decoded or encoded again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JsonWrite<'a> {
    pub kind: WriteKind,
    pub location: &'a str,
    pub id: &'a str,
    /// A JSON object: the document, or the partial document of an update.
    pub doc_json: Option<&'a [u8]>,
    pub if_version: Option<&'a Version>,
}

impl WriteAction {
    /// The action with its document encoded into `doc_json` (which must outlive the borrow).
    pub fn as_json<'a>(&'a self, doc_json: Option<&'a [u8]>) -> JsonWrite<'a> {
        JsonWrite {
            kind: self.kind,
            location: &self.location,
            id: &self.id,
            doc_json,
            if_version: self.if_version.as_ref(),
        }
    }
}

/// How one write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Written (or, for a delete, the document is gone by this write).
    Applied,
    /// Someone wrote meanwhile (another version, or a delete that found no document): left alone.
    Conflict,
    /// Any other error, or rejected for load after every retry.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemOutcome {
    pub status: ItemStatus,
    /// The read model's word for what happened (`created`, `updated`, `deleted`, `noop`, `not_found`).
    pub result: Option<String>,
    /// Where the document is now.
    pub location: Option<String>,
    /// The version the write produced: what an undo makes its own write conditional on.
    pub version: Option<Version>,
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
            location: None,
            version: None,
            error: Some(error.into()),
            answer_lost: false,
        }
    }
}

/// A document read back by id, as it is now (real time, not as the last refresh left it).
#[derive(Debug, Clone, PartialEq)]
pub enum StoredDoc {
    Found {
        location: Option<String>,
        source: Doc,
        version: Option<Version>,
    },
    /// No document has the id.
    Absent,
    /// The location itself does not exist (a deleted index): no document is there, yet nothing
    /// shows it as it was either.
    NoLocation(String),
    /// The read model could not say: nothing is known.
    Unreadable(String),
}

impl StoredDoc {
    pub fn source(&self) -> Option<&Doc> {
        match self {
            StoredDoc::Found { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A read model's conditional writes: batches of actions, documents read back by id, and writes
/// made visible to searches.
pub trait ConditionalWriter: Send + Sync {
    /// Writes `batch`, split into requests as the read model needs: one outcome per action, in
    /// order. An error means a request failed as a whole and the outcome of its writes is unknown.
    /// Each document is encoded once and the batch goes out as [`apply_json`](Self::apply_json).
    fn apply<'a>(&'a self, batch: &'a [WriteAction]) -> BoxFuture<'a, anyhow::Result<Vec<ItemOutcome>>> {
        Box::pin(async move {
            let docs: Vec<Option<Vec<u8>>> = batch
                .iter()
                .map(|a| {
                    a.doc
                        .as_ref()
                        .map(|d| serde_json::to_vec(d).expect("a JSON object serializes"))
                })
                .collect();
            let writes: Vec<JsonWrite<'_>> = batch.iter().zip(&docs).map(|(a, d)| a.as_json(d.as_deref())).collect();
            self.apply_json(&writes).await
        })
    }

    /// [`apply`](Self::apply) for documents already encoded as JSON.
    fn apply_json<'a>(&'a self, batch: &'a [JsonWrite<'a>]) -> BoxFuture<'a, anyhow::Result<Vec<ItemOutcome>>>;

    /// The documents `(location, id)` as they are now, one answer each, in order.
    fn read_back<'a>(&'a self, docs: &'a [(String, String)]) -> BoxFuture<'a, anyhow::Result<Vec<StoredDoc>>>;

    /// Makes every write so far to `location` visible to searches (the next scan or lookup).
    fn refresh<'a>(&'a self, location: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;

    /// How a plan shows a write conditional on `version`, in the read model's own words.
    fn describe_condition(&self, version: &Version) -> String;

    /// Whether an `update` (some top-level fields merged in) is written as such; a writer that can
    /// only write whole documents says no, and a repair then plans `index` writes instead.
    fn partial_updates(&self) -> bool {
        true
    }
}

/// How a conditional writer batches and paces its writes.
#[derive(Debug, Clone)]
pub struct BulkSettings {
    /// Most encoded bytes per request.
    pub max_bytes: usize,
    /// Most actions per request.
    pub max_actions: usize,
    /// Documents per second across every request of this writer; None is unpaced.
    pub max_rate: Option<f64>,
    /// Backoff for items the read model rejected as overloaded (429 inside a 200 answer on Elasticsearch).
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
