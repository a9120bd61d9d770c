//! The two sides of a check, behind small traits: [`DocumentSource`] (a sorted stream of keyed
//! documents, plus lookups by key) for both, [`WriteModel`] for what only the write model does
//! (columns, splitting the key space, estimates, changed keys) and [`ReadModel`] for the read model's
//! optional capabilities (a view shared by parallel ranges, the documents without a key). The engine
//! holds `dyn WriteModel` and `dyn ReadModel`; nothing above `source/` names a connector's type when
//! it scans. The diff core only ever sees [`KeyedDoc`]s.

pub mod elasticsearch;
#[cfg(test)]
pub mod memory;
pub mod postgres;
pub mod preflight;
pub mod redis;
pub mod retry;
pub mod write;

pub use write::{
    BulkSettings, ConditionalWriter, ItemOutcome, ItemStatus, JsonWrite, StoredDoc, WriteAction, WriteKind,
};

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

pub use crate::model::KeyRange;
use crate::model::{DocMeta, Key, KeyKind, KeyedDoc};

/// Documents in ascending key order. A stream that breaks the order is caught by the diff core.
pub type DocStream = BoxStream<'static, anyhow::Result<KeyedDoc>>;

/// An open scan: the documents, and what is known about them before reading.
pub struct Scan {
    pub docs: DocStream,
    /// Estimated number of documents, for progress bars.
    pub estimate: Option<u64>,
    /// When the snapshot the scan reads was taken, epoch milliseconds UTC (PostgreSQL's `now()` in the
    /// scan's transaction; the PIT's opening time on Elasticsearch).
    pub snapshot_ms: Option<i64>,
}

/// A stream of keys in ascending order.
pub type KeyStream = BoxStream<'static, anyhow::Result<Key>>;

/// A consistent view that several range scans of one run share, so a parallel run reads exactly what a
/// serial one would: PostgreSQL's exported snapshot, Elasticsearch's point in time. Opaque to the
/// engine; the source that opened it reads it back with [`SharedView::as_any`].
pub trait SharedView: Send + Sync {
    /// When the view was taken, epoch milliseconds UTC, when the source knows.
    fn snapshot_ms(&self) -> Option<i64>;
    fn as_any(&self) -> &dyn std::any::Any;
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send>;
}

/// One side of a check.
pub trait DocumentSource: Send + Sync {
    /// Opens a consistent snapshot and streams the documents in `range` in ascending key order, with
    /// bounded read-ahead. The stream owns whatever connection it needs.
    fn open_scan(&self, range: KeyRange) -> BoxFuture<'_, anyhow::Result<Scan>>;

    /// The current documents for `keys` (any order; absent keys are left out; the read model may
    /// return several documents for one key).
    fn lookup<'a>(&'a self, keys: &'a [Key]) -> BoxFuture<'a, anyhow::Result<Vec<KeyedDoc>>>;

    /// A one-line description for logs and reports, without secrets.
    fn describe(&self) -> String;

    /// What the side is, in a word, for progress bars and messages ("PostgreSQL", "Redis").
    fn product(&self) -> &'static str;
}

/// The write model: the projection the read model should hold, and what only it can say about the key
/// space.
pub trait WriteModel: DocumentSource {
    /// The kind of key the write model orders by; the read model must sort it alike.
    fn key_kind(&self) -> KeyKind;

    /// The projection's top-level fields, in order.
    fn columns(&self) -> &[String];

    /// `within` cut into at most `n` ranges of about equal row counts (fewer with few distinct keys).
    fn split<'a>(&'a self, within: &'a KeyRange, n: usize) -> BoxFuture<'a, anyhow::Result<Vec<KeyRange>>>;

    /// A cheap estimate of the rows in `range` (for progress bars and sample extrapolation).
    fn estimate<'a>(&'a self, range: &'a KeyRange) -> BoxFuture<'a, Option<u64>>;

    /// The keys of rows changed at or after `since_ms` (epoch milliseconds), in key order.
    fn changed_keys(&self, since_ms: i64) -> anyhow::Result<KeyStream>;

    /// Opens a view several range scans share; it stays valid until dropped.
    fn open_view(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn SharedView>>>;

    /// Like [`DocumentSource::open_scan`], but reading `view` (one this source opened).
    fn open_scan_in<'a>(&'a self, range: KeyRange, view: &'a dyn SharedView) -> BoxFuture<'a, anyhow::Result<Scan>>;
}

/// The read model, with its optional capabilities. The defaults are what a read model without them
/// gets: no shared view (each range scan opens its own), no documents outside the key order.
pub trait ReadModel: DocumentSource {
    /// The kind of key the read model orders by.
    fn key_kind(&self) -> KeyKind;

    /// The key field's type in the read model's own words (`keyword`, `long`), for messages.
    fn key_type(&self) -> String {
        self.key_kind().to_string()
    }

    /// Opens a view several range scans share, when the read model has such a thing.
    fn open_view(&self) -> BoxFuture<'_, anyhow::Result<Option<Box<dyn SharedView>>>> {
        futures::future::ready(Ok(None)).boxed()
    }

    /// Releases a view from [`ReadModel::open_view`] (best effort).
    fn close_view(&self, view: Box<dyn SharedView>) -> BoxFuture<'_, ()> {
        drop(view);
        futures::future::ready(()).boxed()
    }

    /// Like [`DocumentSource::open_scan`], but reading `view` when given.
    fn open_scan_in<'a>(
        &'a self,
        range: KeyRange,
        view: Option<&'a dyn SharedView>,
    ) -> BoxFuture<'a, anyhow::Result<Scan>> {
        let _ = view;
        self.open_scan(range)
    }

    /// Documents the key-ordered scan cannot see because they have no usable key; each with a
    /// placeholder key, named by its id.
    fn open_unkeyed_scan(&self) -> BoxFuture<'_, anyhow::Result<DocStream>> {
        futures::future::ready(Ok(futures::stream::empty().boxed())).boxed()
    }

    /// The id a document of `key` gets when a repair creates it (what [`crate::model::DocMeta::id`]
    /// holds when it is read back).
    fn doc_id(&self, key: &Key) -> String {
        key.doc_id()
    }

    /// A writer that changes this read model only over the version a document was read at, batching
    /// as `batching` says; None for a read model recon cannot write.
    fn conditional_writer(&self, batching: BulkSettings) -> Option<std::sync::Arc<dyn ConditionalWriter>> {
        let _ = batching;
        None
    }

    /// Every field path the read model knows of (its mapping or schema), when it has one: lets
    /// `[compare]` rules name fields only the read model holds.
    fn field_names(&self) -> BoxFuture<'_, Option<BTreeSet<String>>> {
        futures::future::ready(None).boxed()
    }

    /// What a person reads about where one of this read model's documents is and which version it is,
    /// as labelled values in the read model's own words (`recon explain` prints them): only the read
    /// model can unpack its opaque [`crate::model::Version`]. The default names the id, the location and
    /// the version token as they are.
    fn describe_meta(&self, meta: &DocMeta) -> Vec<(String, serde_json::Value)> {
        let mut described = Vec::new();
        if let Some(id) = &meta.id {
            described.push(("id".to_string(), serde_json::Value::from(id.as_str())));
        }
        if let Some(location) = &meta.location {
            described.push(("location".to_string(), serde_json::Value::from(location.as_str())));
        }
        if let Some(version) = &meta.version {
            described.push(("version".to_string(), serde_json::Value::from(version.as_str())));
        }
        described
    }
}
