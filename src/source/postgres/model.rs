//! PostgreSQL as the [`WriteModel`]: the trait's methods, each the source's own.

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{PostgresSource, SharedSnapshot};
use crate::model::KeyKind;
use crate::source::{KeyRange, KeyStream, Scan, SharedView, WriteModel};

impl SharedView for SharedSnapshot {
    fn snapshot_ms(&self) -> Option<i64> {
        Some(SharedSnapshot::snapshot_ms(self))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

impl WriteModel for PostgresSource {
    fn key_kind(&self) -> KeyKind {
        PostgresSource::key_kind(self)
    }

    fn columns(&self) -> &[String] {
        PostgresSource::columns(self)
    }

    fn split<'a>(&'a self, within: &'a KeyRange, n: usize) -> BoxFuture<'a, anyhow::Result<Vec<KeyRange>>> {
        PostgresSource::split(self, within, n).boxed()
    }

    fn estimate<'a>(&'a self, range: &'a KeyRange) -> BoxFuture<'a, Option<u64>> {
        PostgresSource::estimate(self, range).boxed()
    }

    fn changed_keys(&self, since_ms: i64) -> anyhow::Result<KeyStream> {
        self.changed_key_stream(since_ms)
    }

    fn open_view(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn SharedView>>> {
        async move { Ok(Box::new(self.export_snapshot().await?) as Box<dyn SharedView>) }.boxed()
    }

    fn open_scan_in<'a>(&'a self, range: KeyRange, view: &'a dyn SharedView) -> BoxFuture<'a, anyhow::Result<Scan>> {
        async move {
            let snapshot = view
                .as_any()
                .downcast_ref::<SharedSnapshot>()
                .ok_or_else(|| anyhow::anyhow!("not a PostgreSQL snapshot: a view of another source"))?;
            self.open_scan_at(range, Some(snapshot)).await
        }
        .boxed()
    }
}
