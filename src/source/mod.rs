//! The two sides of a check, behind one small trait: a sorted stream of keyed documents, plus
//! lookups by key. The diff core only ever sees [`KeyedDoc`]s, so a MongoDB or Redis read model is a
//! new implementation of [`DocumentSource`], nothing more.

pub mod elasticsearch;
pub mod postgres;
pub mod write;

pub use write::{ConditionalWriter, ItemOutcome, ItemStatus, JsonWrite, StoredDoc, WriteAction, WriteKind};

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::model::{Key, KeyedDoc};

/// Documents in ascending key order. A stream that breaks the order is caught by the diff core.
pub type DocStream = BoxStream<'static, anyhow::Result<KeyedDoc>>;

/// Which keys a scan covers: strictly after `after`, up to and including `until`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyRange {
    pub after: Option<Key>,
    pub until: Option<Key>,
}

impl KeyRange {
    pub fn all() -> Self {
        KeyRange::default()
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.after.as_ref().is_none_or(|a| key > a) && self.until.as_ref().is_none_or(|u| key <= u)
    }
}

/// An open scan: the documents, and what is known about them before reading.
pub struct Scan {
    pub docs: DocStream,
    /// Estimated number of documents, for progress bars.
    pub estimate: Option<u64>,
    /// When the snapshot the scan reads was taken, epoch milliseconds UTC (PostgreSQL's `now()` in the
    /// scan's transaction; the PIT's opening time on Elasticsearch).
    pub snapshot_ms: Option<i64>,
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
}
