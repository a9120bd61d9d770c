//! Scans: a range read in one snapshot by a background task (one streamed query or keyset pages),
//! and the snapshot several parallel scans share.

use std::sync::Arc;

use futures::stream::{self, StreamExt, TryStreamExt};
use sqlx::Postgres;
use tokio::sync::mpsc;

use super::error::{read_error, scan_error, PostgresError};
use super::plan::{bind_key, Plan};
use super::{PostgresSource, ScanMode, STREAM_BATCH};
use crate::model::{DocMeta, DocValue, Key, KeyedDoc};
use crate::source::{KeyRange, Scan};

impl PostgresSource {
    /// Exports the snapshot of a new `REPEATABLE READ, READ ONLY` transaction, which stays open while
    /// the returned value lives, so that scans opened with [`PostgresSource::open_scan_at`] all read
    /// exactly the same data (`pg_export_snapshot()`, as `pg_dump -j` does).
    pub async fn export_snapshot(&self) -> anyhow::Result<SharedSnapshot> {
        let url = &self.settings.url;
        let mut tx = self.pool.begin().await.map_err(|e| read_error(url, e))?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(|e| read_error(url, e))?;
        // This connection only holds the snapshot and stays idle in its transaction for the whole run.
        sqlx::query("SET LOCAL idle_in_transaction_session_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(|e| read_error(url, e))?;
        let (id, snapshot_ms, horizon_ms): (String, i64, i64) = sqlx::query_as(HORIZON_SQL)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| read_error(url, e))?;
        Ok(SharedSnapshot {
            id,
            snapshot_ms,
            horizon_ms,
            _holder: tx,
        })
    }

    /// Like [`DocumentSource::open_scan`](crate::source::DocumentSource::open_scan), but inside
    /// `snapshot` when given (a parallel range), or in a snapshot of its own.
    pub async fn open_scan_at(&self, range: KeyRange, snapshot: Option<&SharedSnapshot>) -> anyhow::Result<Scan> {
        for key in [&range.after, &range.until].into_iter().flatten() {
            self.plan.check_kind(key)?;
        }
        let mut tx = self.pool.begin().await.map_err(|e| read_error(&self.settings.url, e))?;
        // One snapshot for the whole scan; taken by the first query after SET TRANSACTION.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(|e| read_error(&self.settings.url, e))?;
        let snapshot_ms: i64 = match snapshot {
            Some(shared) => {
                // The id is the server's own text (hex and dashes); quoted anyway.
                sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{}'", shared.id.replace('\'', "''")))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| read_error(&self.settings.url, e))?;
                shared.snapshot_ms
            }
            None => sqlx::query_scalar("SELECT floor(extract(epoch FROM now()) * 1000)::int8")
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| read_error(&self.settings.url, e))?,
        };
        // On the pool, not in the snapshot's transaction: a failing EXPLAIN must not abort the scan.
        let estimate = self.estimate(&range).await;

        let (sender, receiver) = mpsc::channel(self.settings.prefetch_pages.max(1));
        let task = ScanTask {
            plan: self.plan.clone(),
            url: self.settings.url.clone(),
            mode: self.settings.scan,
            page_size: self.settings.page_size.max(1),
            probe_nulls: range.after.is_none(),
            after: range.after,
            until: range.until,
            rows_read: 0,
            last_key: None,
        };
        tokio::spawn(task.run(tx, sender));
        let docs = stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|page| (page, receiver))
        })
        .flat_map(|page: anyhow::Result<Vec<KeyedDoc>>| match page {
            Ok(docs) => stream::iter(docs.into_iter().map(Ok)).left_stream(),
            Err(e) => stream::once(async move { Err(e) }).right_stream(),
        })
        .boxed();
        Ok(Scan {
            docs,
            estimate,
            snapshot_ms: Some(snapshot_ms),
        })
    }
}

/// The snapshot's id, its `now()`, and its horizon (see [`SharedSnapshot::horizon_ms`]), epoch ms.
/// `least` skips the NULL of an empty `min`, and pg_stat_activity shows `xact_start` only of the
/// sessions the role may see (its own role's; all with pg_read_all_stats or as a superuser).
const HORIZON_SQL: &str = "SELECT pg_export_snapshot(), floor(extract(epoch FROM now()) * 1000)::int8, \
     floor(extract(epoch FROM least(now(), (SELECT min(xact_start) FROM pg_stat_activity \
     WHERE backend_xid IS NOT NULL AND datname = current_database() AND pid <> pg_backend_pid()))) * 1000)::int8";

/// A write-model snapshot shared by several scans; see [`PostgresSource::export_snapshot`]. The
/// exporting transaction stays open (and the snapshot importable) until this is dropped.
pub struct SharedSnapshot {
    id: String,
    snapshot_ms: i64,
    horizon_ms: i64,
    _holder: sqlx::Transaction<'static, Postgres>,
}

impl SharedSnapshot {
    /// When the snapshot was taken (the exporting transaction's `now()`), epoch milliseconds.
    pub fn snapshot_ms(&self) -> i64 {
        self.snapshot_ms
    }

    /// The earliest `updated_at` a row missing from this snapshot can carry, epoch milliseconds: the
    /// snapshot's `now()`, or the start of the oldest transaction that was writing when it was taken,
    /// if earlier. Such a transaction commits after the snapshot, and a row it stamps with `now()`
    /// carries its start, however long ago that was: a catch-up from the horizon finds it, a catch-up
    /// from `now()` minus a margin only if it started within the margin.
    pub fn horizon_ms(&self) -> i64 {
        self.horizon_ms
    }
}

/// Reads pages in a background task, ahead of the consumer by at most the channel's capacity.
struct ScanTask {
    plan: Arc<Plan>,
    url: String,
    mode: ScanMode,
    /// Documents per message to the consumer (and rows per keyset page).
    page_size: usize,
    after: Option<Key>,
    until: Option<Key>,
    rows_read: u64,
    last_key: Option<Key>,
    /// Look for NULL keys after the last page: pages after the first (`key > last`) skip them.
    probe_nulls: bool,
}

type PageSender = mpsc::Sender<anyhow::Result<Vec<KeyedDoc>>>;

impl ScanTask {
    fn read_error(&self, error: sqlx::Error) -> PostgresError {
        scan_error(&self.url, self.rows_read, error)
    }

    async fn run(self, tx: sqlx::Transaction<'static, Postgres>, sender: PageSender) {
        match self.mode {
            ScanMode::Stream => self.run_stream(tx, sender).await,
            ScanMode::Pages => self.run_pages(tx, sender).await,
        }
    }

    /// One query for the whole range, both bounds in SQL; rows are decoded as they arrive and handed
    /// on in batches. The channel's bound is the read-ahead: when the consumer falls behind, the
    /// socket fills and the server waits.
    async fn run_stream(mut self, mut tx: sqlx::Transaction<'static, Postgres>, sender: PageSender) {
        let result = self.stream(&mut tx, &sender).await;
        let result = match result {
            // Without bounds the query itself returns NULL keys (last, in ascending order) and decoding
            // them fails; a range ending at a key (`key <= $1`) leaves them out, so look for them.
            Ok(true) if self.probe_nulls && self.until.is_some() => self.find_null_keys(&mut tx).await.map(|()| true),
            other => other,
        };
        if let Err(e) = result {
            let _ = sender.send(Err(e)).await;
        }
    }

    /// Streams the range; `Ok(false)` when the consumer went away.
    async fn stream(
        &mut self,
        tx: &mut sqlx::Transaction<'static, Postgres>,
        sender: &PageSender,
    ) -> anyhow::Result<bool> {
        let plan = self.plan.clone();
        // A long scan is one long statement: lift a statement_timeout meant for the application
        // (pg_dump does the same). LOCAL: it ends with this read-only transaction.
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut **tx)
            .await
            .map_err(|e| self.read_error(e))?;
        let sql = plan.range_sql(self.after.is_some(), self.until.is_some(), None);
        let mut query = sqlx::query(&sql);
        for key in [&self.after, &self.until].into_iter().flatten() {
            query = bind_key(query, key);
        }
        let mut rows = query.fetch(&mut **tx);
        let batch_size = self.page_size.min(STREAM_BATCH);
        let mut batch = Vec::with_capacity(batch_size);
        // Flat form: the rows of the key being read, nested once the next key shows; the vectors of
        // rows already nested are reused for the next rows.
        let mut group: Option<FlatGroup> = None;
        let mut spare: Vec<Vec<DocValue>> = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(|e| self.read_error(e))? {
            self.rows_read += 1;
            if let Some(flat) = plan.flat.as_ref() {
                let mut values = spare.pop().unwrap_or_default();
                let (key, updated_at_ms) =
                    plan.decode_values_into(&row, self.rows_read, group.as_ref().map(|g| &g.key), &mut values)?;
                match group.as_mut() {
                    Some(g) if g.key == key => {
                        g.updated_at_ms = g.updated_at_ms.max(updated_at_ms);
                        g.rows.push(values);
                        continue;
                    }
                    _ => {}
                }
                let next = FlatGroup {
                    key,
                    rows: vec![values],
                    updated_at_ms,
                };
                if let Some(done) = group.replace(next) {
                    batch.push(done.nest(flat, &mut spare));
                }
            } else {
                let doc = plan.decode_row(&row, self.rows_read)?;
                if self.last_key.as_ref() == Some(&doc.key) {
                    return Err(PostgresError::DuplicateKey { key: doc.key }.into());
                }
                self.last_key = Some(doc.key.clone());
                batch.push(doc);
            }
            if batch.len() >= batch_size {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                if sender.send(Ok(full)).await.is_err() {
                    return Ok(false);
                }
            }
        }
        drop(rows);
        if let (Some(done), Some(flat)) = (group, plan.flat.as_ref()) {
            batch.push(done.nest(flat, &mut spare));
        }
        if !batch.is_empty() && sender.send(Ok(batch)).await.is_err() {
            return Ok(false);
        }
        Ok(true)
    }

    async fn run_pages(mut self, mut tx: sqlx::Transaction<'static, Postgres>, sender: PageSender) {
        loop {
            let (mut page, last) = match self.next_page(&mut tx).await {
                Ok((docs, last)) => (Ok(docs), last),
                Err(e) => (Err(e), true),
            };
            if last && page.is_ok() && self.probe_nulls {
                if let Err(e) = self.find_null_keys(&mut tx).await {
                    // The page's documents first, then the error that ends the stream.
                    if sender.send(page).await.is_err() {
                        return;
                    }
                    page = Err(e);
                }
            }
            if sender.send(page).await.is_err() || last {
                // Receiver gone or scan done; dropping the transaction rolls it back (read only anyway).
                return;
            }
        }
    }

    async fn find_null_keys(&self, tx: &mut sqlx::Transaction<'static, Postgres>) -> anyhow::Result<()> {
        let Some(probe) = self.plan.null_probe.as_deref() else {
            return Ok(());
        };
        let found: bool = sqlx::query_scalar(probe)
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| self.read_error(e))?;
        if found {
            return Err(PostgresError::NullKeys {
                key: self.plan.key_name.clone(),
            }
            .into());
        }
        Ok(())
    }

    /// The next page of documents, and whether it is the last.
    async fn next_page(
        &mut self,
        tx: &mut sqlx::Transaction<'static, Postgres>,
    ) -> anyhow::Result<(Vec<KeyedDoc>, bool)> {
        if self.plan.flat.is_some() {
            return self.next_flat_page(tx).await;
        }
        let plan = self.plan.clone();
        // The upper bound is applied here, not in SQL: with both bounds the planner may expect a small
        // range and hash-join and sort all of it for every page, where `key > $1 … LIMIT` streams in
        // index order. At most one page beyond the range is read.
        let sql = plan.page_sql(self.after.is_some(), false);
        let mut query = sqlx::query(sql);
        if let Some(key) = &self.after {
            query = bind_key(query, key);
        }
        // Rows are decoded as they arrive, while the server still produces the rest of the page.
        let mut rows = query.fetch(&mut **tx);
        let mut docs = Vec::with_capacity(self.page_size);
        let mut beyond = false;
        while let Some(row) = rows.try_next().await.map_err(|e| self.read_error(e))? {
            self.rows_read += 1;
            let doc = plan.decode_row(&row, self.rows_read)?;
            if self.until.as_ref().is_some_and(|u| doc.key > *u) {
                beyond = true;
                break;
            }
            if self.last_key.as_ref() == Some(&doc.key) {
                return Err(PostgresError::DuplicateKey { key: doc.key }.into());
            }
            self.last_key = Some(doc.key.clone());
            docs.push(doc);
        }
        drop(rows);
        self.after = docs.last().map(|d| d.key.clone()).or(self.after.take());
        let last = beyond || docs.len() < self.page_size;
        Ok((docs, last))
    }

    /// Flat form: a page of rows, grouped by key. A full page may end inside a key, so its last key is
    /// left for the next page (which starts after the last complete key); a page holding a single key
    /// is completed by reading just that key.
    async fn next_flat_page(
        &mut self,
        tx: &mut sqlx::Transaction<'static, Postgres>,
    ) -> anyhow::Result<(Vec<KeyedDoc>, bool)> {
        let plan = self.plan.clone();
        // As in `next_page`, the upper bound is applied here rather than in SQL.
        let after = self.after.clone();
        let mut rows = self
            .flat_rows(tx, plan.page_sql(after.is_some(), false), after.as_ref(), None)
            .await?;
        let fetched = rows.len();
        if let Some(until) = &self.until {
            // Rows come in key order: every key up to `until` is complete once a later one shows.
            rows.retain(|r| r.0 <= *until);
        }
        let beyond = rows.len() < fetched;
        let full = !beyond && fetched >= self.page_size;
        if full {
            let last_key = rows.last().map(|r| r.0.clone()).expect("a full page has rows");
            if rows.first().map(|r| &r.0) == Some(&last_key) {
                // One key fills the page: read all of it, bounded above by that key.
                let sql = plan.range_sql(after.is_some(), true, None);
                rows = self.flat_rows(tx, &sql, after.as_ref(), Some(&last_key)).await?;
            } else {
                while rows.last().is_some_and(|r| r.0 == last_key) {
                    rows.pop();
                }
            }
        }
        let flat = plan.flat.as_ref().expect("flat plan");
        let mut docs = Vec::new();
        let mut start = 0;
        while start < rows.len() {
            let key = rows[start].0.clone();
            let mut end = start;
            let mut updated_at_ms = None;
            while end < rows.len() && rows[end].0 == key {
                updated_at_ms = updated_at_ms.max(rows[end].2);
                end += 1;
            }
            let mut values: Vec<Vec<DocValue>> =
                rows[start..end].iter_mut().map(|r| std::mem::take(&mut r.1)).collect();
            docs.push(KeyedDoc {
                key,
                doc: flat.nest(&mut values),
                meta: DocMeta {
                    updated_at_ms,
                    ..DocMeta::default()
                },
            });
            start = end;
        }
        self.after = docs.last().map(|d| d.key.clone()).or(self.after.take());
        Ok((docs, !full))
    }

    async fn flat_rows(
        &mut self,
        tx: &mut sqlx::Transaction<'static, Postgres>,
        sql: &str,
        after: Option<&Key>,
        until: Option<&Key>,
    ) -> anyhow::Result<Vec<(Key, Vec<DocValue>, Option<i64>)>> {
        let mut query = sqlx::query(sql);
        for key in [after, until].into_iter().flatten() {
            query = bind_key(query, key);
        }
        let mut stream = query.fetch(&mut **tx);
        let mut rows: Vec<(Key, Vec<DocValue>, Option<i64>)> = Vec::with_capacity(self.page_size);
        while let Some(row) = stream.try_next().await.map_err(|e| self.read_error(e))? {
            self.rows_read += 1;
            let continuing = rows.last().map(|r| &r.0);
            let decoded = self.plan.decode_values(&row, self.rows_read, continuing)?;
            rows.push(decoded);
        }
        Ok(rows)
    }
}

/// The rows of one key in the flat form, as they arrive.
struct FlatGroup {
    key: Key,
    rows: Vec<Vec<DocValue>>,
    updated_at_ms: Option<i64>,
}

impl FlatGroup {
    /// The key's document; the emptied row vectors go to `spare`.
    fn nest(mut self, flat: &super::flat::FlatShape, spare: &mut Vec<Vec<DocValue>>) -> KeyedDoc {
        let doc = flat.nest(&mut self.rows);
        // A handful covers the next keys; a key of many rows does not leave them all behind.
        spare.extend(self.rows.drain(..).take(16usize.saturating_sub(spare.len())));
        KeyedDoc {
            key: self.key,
            doc,
            meta: DocMeta {
                updated_at_ms: self.updated_at_ms,
                ..DocMeta::default()
            },
        }
    }
}
