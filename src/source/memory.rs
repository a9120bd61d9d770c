//! An in-memory source: an ordered set of documents with versions, consistent views and injected
//! faults. It is both a [`WriteModel`] and a [`ReadModel`], so the engine's own tests run whole scan
//! plans in milliseconds with no server, and it shows what a connector has to provide: nothing here
//! is Elasticsearch- or PostgreSQL-specific.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::{DocStream, DocumentSource, KeyRange, KeyStream, ReadModel, Scan, SharedView, WriteModel};
use crate::model::{Key, KeyKind, KeyedDoc};

/// Faults a test injects into the scans of a [`MemorySource`].
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// A scan yields this many documents, then an error (a connection lost mid-scan).
    pub fail_after: Option<usize>,
    /// A scan yields its first two documents swapped (a source that breaks key order).
    pub out_of_order: bool,
}

/// Documents in memory, sorted by key (and id). Scans and views read a snapshot taken when they open;
/// writes made later are seen by later scans and by lookups, as on a real source.
pub struct MemorySource {
    name: String,
    kind: KeyKind,
    columns: Vec<String>,
    docs: Mutex<Arc<Vec<KeyedDoc>>>,
    unkeyed: Vec<KeyedDoc>,
    shares_views: bool,
    faults: Faults,
    /// What lookups see instead of the scanned documents: the state a projector reaches right after
    /// a scan (what `--recheck` is for).
    caught_up: Option<Vec<KeyedDoc>>,
}

/// A snapshot of a [`MemorySource`], shared by several range scans.
struct MemoryView {
    docs: Arc<Vec<KeyedDoc>>,
    snapshot_ms: i64,
}

impl SharedView for MemoryView {
    fn snapshot_ms(&self) -> Option<i64> {
        Some(self.snapshot_ms)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

impl MemorySource {
    /// `docs` in any order; `columns` are the fields it says it projects.
    pub fn new(name: &str, kind: KeyKind, columns: &[&str], docs: Vec<KeyedDoc>) -> MemorySource {
        let source = MemorySource {
            name: name.to_string(),
            kind,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            docs: Mutex::new(Arc::new(Vec::new())),
            unkeyed: Vec::new(),
            shares_views: true,
            faults: Faults::default(),
            caught_up: None,
        };
        source.replace_all(docs);
        source
    }

    /// Documents without a usable key (each with a placeholder key and its id).
    pub fn with_unkeyed(mut self, docs: Vec<KeyedDoc>) -> MemorySource {
        self.unkeyed = docs;
        self
    }

    /// A read model without a view shared by range scans (each range scan opens its own).
    pub fn without_shared_views(mut self) -> MemorySource {
        self.shares_views = false;
        self
    }

    /// Lookups see `docs` instead of what the scans read: the read model caught up after the scan.
    pub fn catching_up_to(mut self, docs: Vec<KeyedDoc>) -> MemorySource {
        self.caught_up = Some(docs);
        self
    }

    pub fn with_faults(mut self, faults: Faults) -> MemorySource {
        self.faults = faults;
        self
    }

    /// Replaces every document: what later scans and lookups see.
    pub fn replace_all(&self, mut docs: Vec<KeyedDoc>) {
        docs.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.meta.id.cmp(&b.meta.id)));
        *self.docs.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(docs);
    }

    fn snapshot(&self) -> Arc<Vec<KeyedDoc>> {
        self.docs.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn scan_of(&self, docs: Arc<Vec<KeyedDoc>>, range: &KeyRange) -> Scan {
        let mut picked: Vec<KeyedDoc> = docs.iter().filter(|d| range.contains(&d.key)).cloned().collect();
        if self.faults.out_of_order && picked.len() > 1 {
            picked.swap(0, 1);
        }
        let estimate = Some(picked.len() as u64);
        let mut items: Vec<anyhow::Result<KeyedDoc>> = picked.into_iter().map(Ok).collect();
        if let Some(n) = self.faults.fail_after {
            items.truncate(n);
            items.push(Err(anyhow::anyhow!(
                "{}: connection lost after {n} documents",
                self.name
            )));
        }
        Scan {
            docs: futures::stream::iter(items).boxed(),
            estimate,
            snapshot_ms: Some(now_ms()),
        }
    }

    fn view_of<'a>(&self, view: &'a dyn SharedView) -> anyhow::Result<&'a MemoryView> {
        view.as_any()
            .downcast_ref::<MemoryView>()
            .ok_or_else(|| anyhow::anyhow!("{}: not a view of a memory source", self.name))
    }

    fn new_view(&self) -> MemoryView {
        MemoryView {
            docs: self.snapshot(),
            snapshot_ms: now_ms(),
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl DocumentSource for MemorySource {
    fn open_scan(&self, range: KeyRange) -> BoxFuture<'_, anyhow::Result<Scan>> {
        futures::future::ready(Ok(self.scan_of(self.snapshot(), &range))).boxed()
    }

    fn lookup<'a>(&'a self, keys: &'a [Key]) -> BoxFuture<'a, anyhow::Result<Vec<KeyedDoc>>> {
        let wanted: BTreeSet<&Key> = keys.iter().collect();
        let snapshot = self.snapshot();
        let docs = self.caught_up.as_deref().unwrap_or(&snapshot);
        let found = docs.iter().filter(|d| wanted.contains(&d.key)).cloned().collect();
        futures::future::ready(Ok(found)).boxed()
    }

    fn product(&self) -> &'static str {
        "memory"
    }

    fn describe(&self) -> String {
        format!("memory source {}", self.name)
    }
}

impl WriteModel for MemorySource {
    fn key_kind(&self) -> KeyKind {
        self.kind
    }

    fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Cuts the distinct keys of `within` into `n` runs of about equal length.
    fn split<'a>(&'a self, within: &'a KeyRange, n: usize) -> BoxFuture<'a, anyhow::Result<Vec<KeyRange>>> {
        let keys: Vec<Key> = self
            .snapshot()
            .iter()
            .map(|d| d.key.clone())
            .filter(|k| within.contains(k))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let n = n.clamp(1, keys.len().max(1));
        let mut ranges = Vec::with_capacity(n);
        let mut after = within.after.clone();
        for i in 1..n {
            let until = keys[i * keys.len() / n - 1].clone();
            ranges.push(KeyRange {
                after: after.clone(),
                until: Some(until.clone()),
            });
            after = Some(until);
        }
        ranges.push(KeyRange {
            after,
            until: within.until.clone(),
        });
        futures::future::ready(Ok(ranges)).boxed()
    }

    fn estimate<'a>(&'a self, range: &'a KeyRange) -> BoxFuture<'a, Option<u64>> {
        let n = self.snapshot().iter().filter(|d| range.contains(&d.key)).count();
        futures::future::ready(Some(n as u64)).boxed()
    }

    fn changed_keys(&self, since_ms: i64) -> anyhow::Result<KeyStream> {
        let keys: BTreeSet<Key> = self
            .snapshot()
            .iter()
            .filter(|d| d.meta.updated_at_ms.is_some_and(|at| at >= since_ms))
            .map(|d| d.key.clone())
            .collect();
        Ok(futures::stream::iter(keys.into_iter().map(Ok)).boxed())
    }

    fn open_view(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn SharedView>>> {
        futures::future::ready(Ok(Box::new(self.new_view()) as Box<dyn SharedView>)).boxed()
    }

    fn open_scan_in<'a>(&'a self, range: KeyRange, view: &'a dyn SharedView) -> BoxFuture<'a, anyhow::Result<Scan>> {
        let scan = self.view_of(view).map(|v| self.scan_of(v.docs.clone(), &range));
        futures::future::ready(scan).boxed()
    }
}

impl ReadModel for MemorySource {
    fn key_kind(&self) -> KeyKind {
        self.kind
    }

    fn open_view(&self) -> BoxFuture<'_, anyhow::Result<Option<Box<dyn SharedView>>>> {
        let view = self
            .shares_views
            .then(|| Box::new(self.new_view()) as Box<dyn SharedView>);
        futures::future::ready(Ok(view)).boxed()
    }

    fn open_scan_in<'a>(
        &'a self,
        range: KeyRange,
        view: Option<&'a dyn SharedView>,
    ) -> BoxFuture<'a, anyhow::Result<Scan>> {
        let scan = match view {
            Some(view) => self.view_of(view).map(|v| self.scan_of(v.docs.clone(), &range)),
            None => Ok(self.scan_of(self.snapshot(), &range)),
        };
        futures::future::ready(scan).boxed()
    }

    fn open_unkeyed_scan(&self) -> BoxFuture<'_, anyhow::Result<DocStream>> {
        let docs: DocStream = futures::stream::iter(self.unkeyed.clone().into_iter().map(Ok)).boxed();
        futures::future::ready(Ok(docs)).boxed()
    }

    fn field_names(&self) -> BoxFuture<'_, Option<BTreeSet<String>>> {
        futures::future::ready(Some(self.columns.iter().cloned().collect())).boxed()
    }
}
