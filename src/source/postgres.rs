//! The write model as a [`DocumentSource`]: the rows of a user-supplied projection query, one document
//! per row, in key order inside one `REPEATABLE READ` snapshot. A range is read as one ordered query whose
//! rows are streamed as the server produces them ([`ScanMode::Stream`], the default), or as keyset pages
//! ([`ScanMode::Pages`]).
//!
//! Text keys are compared and ordered with `COLLATE "C"` (byte order). On a column with a linguistic
//! collation no ordinary index serves that order, so the query sorts: create an index on
//! `(key COLLATE "C")` (or use a `C`-collated column) for large tables, especially with keyset pages.
//! Integer and uuid keys use their plain index.
//!
//! A row whose key is NULL fails the scan. A streamed range without bounds returns such rows (last) and
//! fails on them; a range bounded by keys (`key > last`, `key <= until`) leaves them out, so a scan from
//! the start ends with a probe for NULL keys in the same snapshot, when the planner expects it to be cheap
//! (an index on the key column); where it would be a full extra pass it is skipped, and such NULL keys go
//! unseen: make the key column NOT NULL.
//!
//! Values are decoded from PostgreSQL's binary wire format directly (sqlx asks for binary results), with
//! a decoder chosen once per column at connect time. That keeps exact digits (numeric, int8 above 2^53,
//! numbers inside jsonb) and renders instants the same way whatever the session's time zone.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde_json::{Map, Number, Value};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgValueFormat};
use sqlx::query::Query;
use sqlx::{Column, Executor, Postgres, Row, Statement, ValueRef};
use tokio::sync::mpsc;

use crate::model::{DocMeta, Key, KeyedDoc};
use crate::source::{DocumentSource, KeyRange, Scan};

pub const DEFAULT_PAGE_SIZE: usize = 5000;
pub const DEFAULT_PREFETCH_PAGES: usize = 2;
/// Documents per batch handed on by a streamed scan (fewer when `page_size` is smaller): the read-ahead
/// is a few batches, and a streamed query gains nothing from larger ones.
const STREAM_BATCH: usize = 1000;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keys per `= ANY($1)` lookup query.
const LOOKUP_BATCH: usize = 1000;
/// Connections: one per open scan, the rest for lookups and estimates.
const MAX_CONNECTIONS: u32 = 8;

/// Where and what to read. `query` is any `SELECT` producing one row per document; `key` names the
/// column identifying it; `updated_at` names a timestamp column feeding [`DocMeta::updated_at_ms`].
#[derive(Clone)]
pub struct PostgresSettings {
    pub url: String,
    pub query: String,
    pub key: String,
    pub updated_at: Option<String>,
    pub page_size: usize,
    pub prefetch_pages: usize,
    pub connect_timeout: Duration,
    /// Pool size: one connection per concurrent scan, plus lookups, estimates and a shared snapshot.
    pub max_connections: u32,
    /// One ordered query per range, or keyset pages.
    pub scan: ScanMode,
}

/// How a range is read. Both read one snapshot and give the same documents in the same order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanMode {
    /// One `ORDER BY key` query per range, streamed as the server produces it (as `pg_dump` reads a
    /// table): the planner picks one plan for the whole range, hash and merge joins included, and
    /// sorts at most once. The first row may take a while when that plan sorts.
    #[default]
    Stream,
    /// Keyset pages of `page_size` rows (`key > last ORDER BY key LIMIT n`): short statements that start
    /// at once, but each page is planned and joined anew, and a query whose ordered plan must sort
    /// (joins the planner cannot drive from the key's index) sorts the rest of the range for every page.
    Pages,
}

impl PostgresSettings {
    /// Settings with the default page size, read-ahead and connect timeout.
    pub fn new(url: impl Into<String>, query: impl Into<String>, key: impl Into<String>) -> Self {
        PostgresSettings {
            url: url.into(),
            query: query.into(),
            key: key.into(),
            updated_at: None,
            page_size: DEFAULT_PAGE_SIZE,
            prefetch_pages: DEFAULT_PREFETCH_PAGES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            scan: ScanMode::default(),
        }
    }
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &redact_url(&self.url))
            .field("query", &self.query)
            .field("key", &self.key)
            .field("updated_at", &self.updated_at)
            .field("page_size", &self.page_size)
            .field("scan", &self.scan)
            .field("prefetch_pages", &self.prefetch_pages)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

pub use crate::model::KeyKind;
pub use crate::secret::redact_url;

/// Everything that can go wrong reading the write model. URLs in messages are always redacted.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("postgres.url {url} is not a valid PostgreSQL URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach PostgreSQL at {url}: {reason} (is the server running, and are host and port in postgres.url right?)")]
    Unreachable { url: String, reason: String },
    #[error("PostgreSQL at {url} rejected the login: {reason} (check the user and password of postgres.url)")]
    Authentication { url: String, reason: String },
    #[error("PostgreSQL at {url}: {reason} (check the database name in postgres.url)")]
    NoDatabase { url: String, reason: String },
    #[error("PostgreSQL at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("postgres.query failed: {reason} (check postgres.query)")]
    Query { reason: String },
    #[error("postgres.query returns column {column:?} more than once; give each column a distinct name")]
    DuplicateColumn { column: String },
    #[error("key column {key:?} is not a column of postgres.query; its columns are: {columns}")]
    UnknownKey { key: String, columns: String },
    #[error(
        "key column {key:?} has type {type_name}, which cannot be a key (supported: smallint, integer, bigint, \
         text, varchar, char, uuid); cast it in postgres.query"
    )]
    UnsupportedKeyType { key: String, type_name: String },
    #[error("updated_at column {column:?} is not a column of postgres.query; its columns are: {columns}")]
    UnknownUpdatedAt { column: String, columns: String },
    #[error("updated_at column {column:?} has type {type_name}; it must be timestamptz or timestamp")]
    UpdatedAtType { column: String, type_name: String },
    #[error(
        "column {column:?} has type {type_name}, which recon cannot turn into JSON; cast it in postgres.query \
         (e.g. \"{column}\"::text)"
    )]
    UnsupportedType { column: String, type_name: String },
    #[error("row {row} of the scan has a NULL key column {key:?}; every row needs a key")]
    NullKey { row: u64, key: String },
    #[error("postgres.query returns rows whose key column {key:?} is NULL; every row needs a key")]
    NullKeys { key: String },
    #[error("key {key} appears more than once in postgres.query's result; the key column must be unique")]
    DuplicateKey { key: Key },
    #[error("a {got:?} key was given for a source whose key column {key:?} is {expected:?}")]
    KeyKindMismatch {
        key: String,
        expected: KeyKind,
        got: KeyKind,
    },
    #[error("cannot decode column {column:?}: {reason}")]
    Decode { column: String, reason: String },
    #[error("reading the write model failed: {reason}")]
    Read { reason: String },
    #[error(
        "lost the connection to PostgreSQL at {url} in the middle of the scan, after {read}: {reason} (the \
         server restarted or shut down, an administrator ended the session, e.g. with pg_terminate_backend, or \
         the network dropped it; run again)"
    )]
    LostMidScan { url: String, read: String, reason: String },
}

/// The write model: a connection pool plus the per-column decoding plan learnt at connect time.
pub struct PostgresSource {
    pool: PgPool,
    plan: Arc<Plan>,
    settings: PostgresSettings,
}

impl PostgresSource {
    /// Connects, checks the query (by preparing it) and decides how to decode every column. Fails with
    /// a [`PostgresError`] saying what to fix.
    pub async fn connect(settings: PostgresSettings) -> anyhow::Result<PostgresSource> {
        let url = redact_url(&settings.url);
        let options = PgConnectOptions::from_str(&settings.url)
            .map_err(|e| PostgresError::InvalidUrl {
                url: url.clone(),
                reason: redact_message(&e.to_string(), &settings.url),
            })?
            .application_name("recon");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(2))
            .min_connections(0)
            .acquire_timeout(settings.connect_timeout)
            .connect_with(options);
        let pool = match tokio::time::timeout(settings.connect_timeout, pool).await {
            Ok(Ok(pool)) => pool,
            Ok(Err(e)) => return Err(connect_error(&url, &settings.url, e).into()),
            Err(_) => {
                return Err(PostgresError::Unreachable {
                    url,
                    reason: format!(
                        "no connection within {}",
                        humantime::format_duration(settings.connect_timeout)
                    ),
                }
                .into())
            }
        };
        let plan = Plan::learn(&pool, &settings).await?;
        Ok(PostgresSource {
            pool,
            plan: Arc::new(plan),
            settings,
        })
    }

    pub fn key_kind(&self) -> KeyKind {
        self.plan.key_kind
    }

    /// The query's column names, in order (also the order of every document's fields).
    /// In the flat form, `products[].sku` columns show as one `products` field.
    pub fn columns(&self) -> &[String] {
        &self.plan.fields
    }

    /// Whether the query is in the flat form (one row per child, `array[].field` columns).
    pub fn is_flat(&self) -> bool {
        self.plan.flat.is_some()
    }

    async fn open_scan_inner(&self, range: KeyRange) -> anyhow::Result<Scan> {
        self.open_scan_at(range, None).await
    }

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

    /// Like [`DocumentSource::open_scan`], but inside `snapshot` when given (a parallel range), or in a
    /// snapshot of its own.
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

    /// The planner's row estimate for the range: cheap, approximate, None when unavailable.
    pub async fn estimate(&self, range: &KeyRange) -> Option<u64> {
        let sql = format!(
            "EXPLAIN (FORMAT JSON) {}",
            self.plan.range_sql(range.after.is_some(), range.until.is_some(), None)
        );
        let mut query = sqlx::query_scalar::<_, sqlx::types::JsonValue>(&sql);
        for key in [&range.after, &range.until].into_iter().flatten() {
            query = match key {
                Key::Int(i) => query.bind(*i),
                Key::Text(s) => query.bind(s.clone()),
            };
        }
        let plan = query.fetch_one(&self.pool).await.ok()?;
        let rows = plan.get(0)?.get("Plan")?.get("Plan Rows")?.as_f64()?;
        Some(rows.max(0.0).round() as u64)
    }

    async fn lookup_inner(&self, keys: &[Key]) -> anyhow::Result<Vec<KeyedDoc>> {
        let url = &self.settings.url;
        let mut docs = Vec::new();
        if keys.is_empty() {
            return Ok(docs);
        }
        let wanted: HashSet<&Key> = keys.iter().collect();
        // One round trip fewer than BEGIN + SET TRANSACTION: lookups come in many small batches.
        let mut tx = self
            .pool
            .begin_with("BEGIN READ ONLY")
            .await
            .map_err(|e| read_error(url, e))?;
        for batch in keys.chunks(LOOKUP_BATCH) {
            let query = sqlx::query(&self.plan.lookup_sql);
            // Keys of the other kind, or text that is no uuid, cannot match any row.
            let rows = match self.plan.key_kind {
                KeyKind::Int => {
                    let ints: Vec<i64> = batch
                        .iter()
                        .filter_map(|k| if let Key::Int(i) = k { Some(*i) } else { None })
                        .collect();
                    query.bind(ints).fetch_all(&mut *tx).await
                }
                KeyKind::Text => {
                    let texts: Vec<String> = batch
                        .iter()
                        .filter_map(|k| if let Key::Text(s) = k { Some(s.clone()) } else { None })
                        .filter(|s| self.plan.key_scalar != Scalar::Uuid || uuid::Uuid::parse_str(s).is_ok())
                        .collect();
                    query.bind(texts).fetch_all(&mut *tx).await
                }
            }
            .map_err(|e| read_error(url, e))?;
            match &self.plan.flat {
                None => {
                    for (i, row) in rows.iter().enumerate() {
                        let doc = self.plan.decode_row(row, i as u64 + 1)?;
                        if wanted.contains(&doc.key) {
                            docs.push(doc);
                        }
                    }
                }
                Some(flat) => {
                    // Rows arrive in no particular order; group them by key.
                    let mut groups: std::collections::BTreeMap<Key, (Vec<Vec<Value>>, Option<i64>)> =
                        std::collections::BTreeMap::new();
                    for (i, row) in rows.iter().enumerate() {
                        let (key, values, updated_at_ms) = self.plan.decode_values(row, i as u64 + 1)?;
                        if wanted.contains(&key) {
                            let group = groups.entry(key).or_default();
                            group.0.push(values);
                            group.1 = group.1.max(updated_at_ms);
                        }
                    }
                    for (key, (mut values, updated_at_ms)) in groups {
                        self.plan.sort_children(&mut values);
                        docs.push(KeyedDoc {
                            key,
                            doc: flat.nest(&values),
                            meta: DocMeta {
                                updated_at_ms,
                                ..DocMeta::default()
                            },
                        });
                    }
                }
            }
        }
        tx.rollback().await.map_err(|e| read_error(url, e))?;
        Ok(docs)
    }
}

impl PostgresSource {
    /// Splits `within` into at most `n` contiguous ranges of about equal rows. Integer keys: boundaries
    /// found by bisecting the planner's row estimates (the key column's statistics), or of equal width
    /// between the smallest and largest key when the estimates say nothing or `n` is large. Text keys:
    /// quantiles of a deterministic hash sample of the keys (one pass over the key column). The same
    /// data and statistics give the same ranges, which shards on different machines rely on.
    pub async fn split(&self, within: &KeyRange, n: usize) -> anyhow::Result<Vec<KeyRange>> {
        use crate::scale::plan;
        if n <= 1 {
            return Ok(vec![within.clone()]);
        }
        let bounds = match self.plan.key_kind {
            KeyKind::Int => {
                let (Some(Key::Int(lo)), Some(Key::Int(hi))) =
                    (self.edge_key(within, false).await?, self.edge_key(within, true).await?)
                else {
                    return Ok(vec![within.clone()]);
                };
                match self.estimate(within).await.filter(|&t| t > 0 && n <= 64) {
                    Some(total) => {
                        let mut bounds = Vec::with_capacity(n - 1);
                        for i in 1..n {
                            let target = total as f64 * i as f64 / n as f64;
                            bounds.push(Key::Int(self.bisect(within, lo, hi, target).await));
                        }
                        bounds
                    }
                    None => plan::uniform_int_bounds(lo, hi, n),
                }
            }
            KeyKind::Text => {
                let total = self.estimate(within).await.unwrap_or(100_000).max(1);
                let modulus = (total / (n as u64 * 200)).max(1);
                let mut sample = self.hash_sample(within, modulus).await?;
                sample.sort();
                plan::sample_bounds(&sample, n)
            }
        };
        Ok(plan::ranges_from_bounds(within, bounds))
    }

    /// The smallest integer key `v` in `lo..=hi` whose range `(after, v]` is estimated to hold at least
    /// `target` rows.
    async fn bisect(&self, within: &KeyRange, mut lo: i64, mut hi: i64, target: f64) -> i64 {
        for _ in 0..64 {
            if lo >= hi {
                break;
            }
            let mid = lo + ((hi as i128 - lo as i128) / 2) as i64;
            let range = KeyRange {
                after: within.after.clone(),
                until: Some(Key::Int(mid)),
            };
            let rows = self.estimate(&range).await.unwrap_or(0) as f64;
            if rows >= target {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        hi
    }

    /// The first (or last) key in `range`; None when it is empty.
    async fn edge_key(&self, range: &KeyRange, last: bool) -> anyhow::Result<Option<Key>> {
        let sql = self
            .plan
            .key_sql(range, if last { "DESC LIMIT 1" } else { "LIMIT 1" }, None);
        let mut query = sqlx::query(&sql);
        for key in [&range.after, &range.until].into_iter().flatten() {
            query = bind_key(query, key);
        }
        let row = query
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| read_error(&self.settings.url, e))?;
        row.map(|r| self.plan.decode_key_only(&r))
            .transpose()
            .map_err(Into::into)
    }

    async fn hash_sample(&self, range: &KeyRange, modulus: u64) -> anyhow::Result<Vec<Key>> {
        let filter = format!(
            "abs(hashtext(recon_q.{}::text)::int8) % {modulus} = 0",
            quote_ident(&self.plan.key_name)
        );
        let sql = self.plan.key_sql(range, "", Some(&filter));
        let mut query = sqlx::query(&sql);
        for key in [&range.after, &range.until].into_iter().flatten() {
            query = bind_key(query, key);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(|e| read_error(&self.settings.url, e))?;
        rows.iter()
            .map(|r| self.plan.decode_key_only(r).map_err(Into::into))
            .collect()
    }

    /// Keys of the rows whose `updated_at` column is at or after `since_ms` (epoch milliseconds), in
    /// key order, each once, read in one snapshot and streamed like [`PostgresSource::key_stream`].
    /// Needs `updated_at`.
    pub fn changed_key_stream(&self, since_ms: i64) -> anyhow::Result<BoxStream<'static, anyhow::Result<Key>>> {
        let Some(index) = self.plan.updated_at_index else {
            anyhow::bail!("--since needs postgres.updated_at: the column with each row's last change");
        };
        let column = quote_ident(&self.plan.names[index]);
        // Compare in the column's own type: a timestamp without time zone is taken as UTC.
        let bound = match self.plan.decoders[index] {
            Decoder::Scalar(Scalar::Timestamp) => "(to_timestamp($FILTER::int8 / 1000.0) AT TIME ZONE 'UTC')",
            _ => "to_timestamp($FILTER::int8 / 1000.0)",
        };
        Ok(self.keys_where(
            KeyRange::all(),
            Some((format!("recon_q.{column} >= {bound}"), since_ms)),
        ))
    }

    /// Every key of the projection in `range` now, ascending, each once (a flat-form key's rows give
    /// one key): the projection query reduced to its key column, which PostgreSQL plans without the
    /// joins and aggregates the other columns need (a LATERAL whose columns go unused is not run at all).
    pub fn key_stream(&self, range: KeyRange) -> BoxStream<'static, anyhow::Result<Key>> {
        self.keys_where(range, None)
    }

    /// Keys in `range` of the rows passing `filter` (SQL over `recon_q` with one `int8` parameter
    /// written `$FILTER`), streamed by a background task out of one read-only transaction; the
    /// channel bounds its read-ahead.
    fn keys_where(&self, range: KeyRange, filter: Option<(String, i64)>) -> BoxStream<'static, anyhow::Result<Key>> {
        let (sender, receiver) = mpsc::channel::<anyhow::Result<Vec<Key>>>(2);
        let plan = self.plan.clone();
        let pool = self.pool.clone();
        let url = self.settings.url.clone();
        tokio::spawn(async move {
            let result: anyhow::Result<()> = async {
                let mut tx = pool.begin().await.map_err(|e| read_error(&url, e))?;
                for statement in [
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                    "SET LOCAL statement_timeout = 0",
                ] {
                    sqlx::query(statement)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| read_error(&url, e))?;
                }
                for key in [&range.after, &range.until].into_iter().flatten() {
                    plan.check_kind(key)?;
                }
                let bounds = [&range.after, &range.until].into_iter().flatten().count();
                let filter = filter.map(|(sql, value)| (sql.replace("$FILTER", &format!("${}", bounds + 1)), value));
                let sql = plan.key_sql(&range, "", filter.as_ref().map(|(sql, _)| sql.as_str()));
                let mut query = sqlx::query(&sql);
                for key in [&range.after, &range.until].into_iter().flatten() {
                    query = bind_key(query, key);
                }
                if let Some((_, value)) = filter {
                    query = query.bind(value);
                }
                let mut rows = query.fetch(&mut *tx);
                let mut batch = Vec::with_capacity(STREAM_BATCH);
                let mut last: Option<Key> = None;
                let mut rows_read = 0;
                while let Some(row) = rows.try_next().await.map_err(|e| scan_error(&url, rows_read, e))? {
                    rows_read += 1;
                    let key = plan.decode_key_only(&row)?;
                    if last.as_ref() == Some(&key) {
                        continue;
                    }
                    last = Some(key.clone());
                    batch.push(key);
                    if batch.len() >= STREAM_BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(STREAM_BATCH));
                        if sender.send(Ok(full)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = sender.send(Ok(batch)).await;
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                let _ = sender.send(Err(e)).await;
            }
        });
        stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|batch| (batch, receiver))
        })
        .flat_map(|batch: anyhow::Result<Vec<Key>>| match batch {
            Ok(keys) => stream::iter(keys.into_iter().map(Ok)).left_stream(),
            Err(e) => stream::once(async move { Err(e) }).right_stream(),
        })
        .boxed()
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

impl DocumentSource for PostgresSource {
    fn open_scan(&self, range: KeyRange) -> BoxFuture<'_, anyhow::Result<Scan>> {
        Box::pin(self.open_scan_inner(range))
    }

    fn lookup<'a>(&'a self, keys: &'a [Key]) -> BoxFuture<'a, anyhow::Result<Vec<KeyedDoc>>> {
        Box::pin(self.lookup_inner(keys))
    }

    fn describe(&self) -> String {
        format!(
            "PostgreSQL {} (key {:?})",
            redact_url(&self.settings.url),
            self.settings.key
        )
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
        // Flat form: the rows of the key being read, nested once the next key shows.
        let mut group: Option<FlatGroup> = None;
        while let Some(row) = rows.try_next().await.map_err(|e| self.read_error(e))? {
            self.rows_read += 1;
            if let Some(flat) = plan.flat.as_ref() {
                let (key, values, updated_at_ms) = plan.decode_values(&row, self.rows_read)?;
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
                    batch.push(done.nest(flat));
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
            batch.push(done.nest(flat));
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
            let values: Vec<Vec<Value>> = rows[start..end].iter_mut().map(|r| std::mem::take(&mut r.1)).collect();
            docs.push(KeyedDoc {
                key,
                doc: flat.nest(&values),
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
    ) -> anyhow::Result<Vec<(Key, Vec<Value>, Option<i64>)>> {
        let mut query = sqlx::query(sql);
        for key in [after, until].into_iter().flatten() {
            query = bind_key(query, key);
        }
        let mut stream = query.fetch(&mut **tx);
        let mut rows = Vec::with_capacity(self.page_size);
        while let Some(row) = stream.try_next().await.map_err(|e| self.read_error(e))? {
            self.rows_read += 1;
            rows.push(self.plan.decode_values(&row, self.rows_read)?);
        }
        Ok(rows)
    }
}

/// The rows of one key in the flat form, as they arrive.
struct FlatGroup {
    key: Key,
    rows: Vec<Vec<Value>>,
    updated_at_ms: Option<i64>,
}

impl FlatGroup {
    fn nest(self, flat: &crate::scale::flat::FlatShape) -> KeyedDoc {
        KeyedDoc {
            key: self.key,
            doc: flat.nest(&self.rows),
            meta: DocMeta {
                updated_at_ms: self.updated_at_ms,
                ..DocMeta::default()
            },
        }
    }
}

fn bind_key<'q>(query: Query<'q, Postgres, PgArguments>, key: &Key) -> Query<'q, Postgres, PgArguments> {
    match key {
        Key::Int(i) => query.bind(*i),
        Key::Text(s) => query.bind(s.clone()),
    }
}

/// How to read one column's binary value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Uuid,
    TimestampTz,
    Timestamp,
    Date,
    Json,
    Jsonb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    Scalar(Scalar),
    Array(Scalar),
}

/// Built-in types by OID (stable across servers, see pg_type.dat); anything else (domains, citext) is
/// resolved through pg_type.
fn builtin_decoder(oid: u32) -> Option<Decoder> {
    use Scalar::*;
    let scalar = |s| Some(Decoder::Scalar(s));
    let array = |s| Some(Decoder::Array(s));
    match oid {
        16 => scalar(Bool),
        21 => scalar(Int2),
        23 => scalar(Int4),
        20 => scalar(Int8),
        700 => scalar(Float4),
        701 => scalar(Float8),
        1700 => scalar(Numeric),
        25 | 1043 | 1042 | 19 => scalar(Text),
        2950 => scalar(Uuid),
        1184 => scalar(TimestampTz),
        1114 => scalar(Timestamp),
        1082 => scalar(Date),
        114 => scalar(Json),
        3802 => scalar(Jsonb),
        1000 => array(Bool),
        1005 => array(Int2),
        1007 => array(Int4),
        1016 => array(Int8),
        1021 => array(Float4),
        1022 => array(Float8),
        1231 => array(Numeric),
        1009 | 1015 | 1014 | 1003 => array(Text),
        2951 => array(Uuid),
        1185 => array(TimestampTz),
        1115 => array(Timestamp),
        1182 => array(Date),
        199 => array(Json),
        3807 => array(Jsonb),
        _ => None,
    }
}

/// Resolves a non-built-in type: a domain decodes as its base type, citext as text, an array of such a
/// type as an array of its element.
async fn resolve_decoder(pool: &PgPool, oid: u32) -> Result<Option<Decoder>, sqlx::Error> {
    let mut oid = oid;
    let mut array = false;
    // Bounded: domains over domains over arrays of domains...
    for _ in 0..8 {
        if let Some(decoder) = builtin_decoder(oid) {
            return Ok(match (array, decoder) {
                (false, d) => Some(d),
                (true, Decoder::Scalar(s)) => Some(Decoder::Array(s)),
                (true, Decoder::Array(_)) => None,
            });
        }
        let row: Option<(String, String, i64, i64, String)> = sqlx::query_as(
            "SELECT typname::text, typtype::text, typbasetype::int8, typelem::int8, typcategory::text \
             FROM pg_type WHERE oid = $1::int8::oid",
        )
        .bind(oid as i64)
        .fetch_optional(pool)
        .await?;
        let Some((name, kind, base, elem, category)) = row else {
            return Ok(None);
        };
        if name == "citext" {
            return Ok(Some(if array {
                Decoder::Array(Scalar::Text)
            } else {
                Decoder::Scalar(Scalar::Text)
            }));
        }
        if kind == "d" {
            oid = base as u32;
        } else if category == "A" && elem != 0 && !array {
            array = true;
            oid = elem as u32;
        } else {
            return Ok(None);
        }
    }
    Ok(None)
}

/// The per-query decisions made once at connect: SQL text of every page shape, and how to decode each
/// column.
struct Plan {
    names: Vec<String>,
    /// The document's field names: `names`, or in the flat form the nested fields.
    fields: Vec<String>,
    /// The flat form's nesting, when any column is named `array[].field`.
    flat: Option<crate::scale::flat::FlatShape>,
    /// Flat form: how a key's rows are ordered (after the key), so arrays come out alike every time.
    child_order: String,
    decoders: Vec<Decoder>,
    key_name: String,
    key_index: usize,
    key_kind: KeyKind,
    key_scalar: Scalar,
    updated_at_index: Option<usize>,
    /// Page queries indexed by (has lower bound, has upper bound).
    pages: [String; 4],
    null_probe: Option<String>,
    lookup_sql: String,
    query: String,
    key_expr: String,
    key_param_type: &'static str,
    page_size: usize,
}

impl Plan {
    async fn learn(pool: &PgPool, settings: &PostgresSettings) -> Result<Plan, PostgresError> {
        let query = settings.query.trim().trim_end_matches(';').trim_end().to_string();
        let probe = format!("SELECT * FROM ({query}\n) AS recon_q");
        let mut conn = pool.acquire().await.map_err(|e| read_error(&settings.url, e))?;
        let statement = conn.prepare(&probe).await.map_err(|e| query_error(&settings.url, e))?;
        let mut names = Vec::new();
        let mut oids = Vec::new();
        for column in statement.columns() {
            let name = column.name().to_string();
            if names.contains(&name) {
                return Err(PostgresError::DuplicateColumn { column: name });
            }
            names.push(name);
            oids.push(column.type_info().oid().map(|o| o.0).unwrap_or(0));
        }
        drop(conn);
        let type_name = |oid: u32| async move {
            sqlx::query_scalar::<_, String>("SELECT format_type($1::int8::oid, NULL)")
                .bind(oid as i64)
                .fetch_one(pool)
                .await
                .unwrap_or_else(|_| format!("oid {oid}"))
        };
        let mut decoders = Vec::with_capacity(names.len());
        for (name, &oid) in names.iter().zip(&oids) {
            let decoder = match builtin_decoder(oid) {
                Some(d) => Some(d),
                None => resolve_decoder(pool, oid)
                    .await
                    .map_err(|e| read_error(&settings.url, e))?,
            };
            match decoder {
                Some(d) => decoders.push(d),
                None => {
                    return Err(PostgresError::UnsupportedType {
                        column: name.clone(),
                        type_name: type_name(oid).await,
                    })
                }
            }
        }
        let listed = || names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
        let key_index = names
            .iter()
            .position(|n| *n == settings.key)
            .ok_or_else(|| PostgresError::UnknownKey {
                key: settings.key.clone(),
                columns: listed(),
            })?;
        let (key_kind, key_scalar) = match decoders[key_index] {
            Decoder::Scalar(s @ (Scalar::Int2 | Scalar::Int4 | Scalar::Int8)) => (KeyKind::Int, s),
            Decoder::Scalar(s @ (Scalar::Text | Scalar::Uuid)) => (KeyKind::Text, s),
            _ => {
                return Err(PostgresError::UnsupportedKeyType {
                    key: settings.key.clone(),
                    type_name: type_name(oids[key_index]).await,
                })
            }
        };
        let updated_at_index = match &settings.updated_at {
            None => None,
            Some(column) => {
                let index = names
                    .iter()
                    .position(|n| n == column)
                    .ok_or_else(|| PostgresError::UnknownUpdatedAt {
                        column: column.clone(),
                        columns: listed(),
                    })?;
                if !matches!(
                    decoders[index],
                    Decoder::Scalar(Scalar::TimestampTz | Scalar::Timestamp)
                ) {
                    return Err(PostgresError::UpdatedAtType {
                        column: column.clone(),
                        type_name: type_name(oids[index]).await,
                    });
                }
                Some(index)
            }
        };
        let key_column = format!("recon_q.{}", quote_ident(&settings.key));
        // Text keys compare and sort by bytes (COLLATE "C"), like Rust strings and Elasticsearch keywords.
        // uuid keeps its own order: its bytes sort exactly like its lowercase hex text, and comparing
        // natively lets an index on the column serve the ORDER BY.
        let (key_expr, key_param_type) = match key_scalar {
            Scalar::Text => (format!("{key_column} COLLATE \"C\""), "text"),
            Scalar::Uuid => (key_column, "uuid"),
            _ => (key_column, "int8"),
        };
        // Equality needs no COLLATE "C" (deterministic collations compare bytes for equality), and
        // without it an index on the column serves the lookup. A nondeterministic collation may
        // match more rows; lookup keeps only the exact keys asked for.
        let lookup_sql = format!(
            "SELECT * FROM ({query}\n) AS recon_q WHERE recon_q.{} = ANY($1::{key_param_type}[])",
            quote_ident(&settings.key)
        );
        let flat = crate::scale::flat::FlatShape::of(&names);
        let fields = flat.as_ref().map_or_else(|| names.clone(), |f| f.field_names());
        let child_order: String = flat
            .as_ref()
            .map(|f| {
                f.array_columns()
                    .into_iter()
                    .map(|c| {
                        let collate = if decoders[c] == Decoder::Scalar(Scalar::Text) {
                            " COLLATE \"C\""
                        } else {
                            ""
                        };
                        format!(", recon_q.{}{collate}", quote_ident(&names[c]))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut plan = Plan {
            fields,
            flat,
            child_order,
            names,
            decoders,
            key_name: settings.key.clone(),
            key_index,
            key_kind,
            key_scalar,
            updated_at_index,
            pages: Default::default(),
            null_probe: None,
            lookup_sql,
            query,
            key_expr,
            key_param_type,
            page_size: settings.page_size.max(1),
        };
        plan.pages = [
            plan.range_sql(false, false, Some(plan.page_size)),
            plan.range_sql(false, true, Some(plan.page_size)),
            plan.range_sql(true, false, Some(plan.page_size)),
            plan.range_sql(true, true, Some(plan.page_size)),
        ];
        plan.null_probe = plan.cheap_null_probe(pool).await;
        Ok(plan)
    }

    /// A query telling whether any row has a NULL key, when the planner expects it to cost no more
    /// than a couple of pages (an index on the key column makes it a single probe); None otherwise,
    /// as a full extra pass over the query would double the cost of every scan.
    async fn cheap_null_probe(&self, pool: &PgPool) -> Option<String> {
        let probe = format!(
            "SELECT EXISTS (SELECT 1 FROM ({}\n) AS recon_q WHERE recon_q.{} IS NULL)",
            self.query,
            quote_ident(&self.key_name)
        );
        let page_cost = explain_cost(pool, &self.pages[0]).await?;
        let probe_cost = explain_cost(pool, &probe).await?;
        (probe_cost <= 2.0 * page_cost + 100.0).then_some(probe)
    }

    fn range_sql(&self, after: bool, until: bool, limit: Option<usize>) -> String {
        let mut sql = format!("SELECT * FROM ({}\n) AS recon_q", self.query);
        let mut param = 0;
        let mut conditions = Vec::new();
        if after {
            param += 1;
            conditions.push(format!("{} > ${param}::{}", self.key_expr, self.key_param_type));
        }
        if until {
            param += 1;
            conditions.push(format!("{} <= ${param}::{}", self.key_expr, self.key_param_type));
        }
        if !conditions.is_empty() {
            let _ = write!(sql, " WHERE {}", conditions.join(" AND "));
        }
        let _ = write!(sql, " ORDER BY {}{}", self.key_expr, self.child_order);
        if let Some(limit) = limit {
            let _ = write!(sql, " LIMIT {limit}");
        }
        sql
    }

    /// `SELECT key FROM (query) WHERE range [AND extra] ORDER BY key <tail>`; range bounds are $1, $2.
    fn key_sql(&self, range: &KeyRange, tail: &str, extra: Option<&str>) -> String {
        let mut conditions = Vec::new();
        let mut param = 0;
        if range.after.is_some() {
            param += 1;
            conditions.push(format!("{} > ${param}::{}", self.key_expr, self.key_param_type));
        }
        if range.until.is_some() {
            param += 1;
            conditions.push(format!("{} <= ${param}::{}", self.key_expr, self.key_param_type));
        }
        conditions.push(format!("recon_q.{} IS NOT NULL", quote_ident(&self.key_name)));
        if let Some(extra) = extra {
            conditions.push(extra.to_string());
        }
        format!(
            "SELECT recon_q.{} FROM ({}\n) AS recon_q WHERE {} ORDER BY {} {tail}",
            quote_ident(&self.key_name),
            self.query,
            conditions.join(" AND "),
            self.key_expr
        )
    }

    /// The key of a row holding only the key column.
    fn decode_key_only(&self, row: &PgRow) -> Result<Key, PostgresError> {
        let decode = |reason: String| PostgresError::Decode {
            column: self.key_name.clone(),
            reason,
        };
        let raw = row.try_get_raw(0).map_err(|e| decode(e.to_string()))?;
        let bytes = raw.as_bytes().map_err(|e| decode(e.to_string()))?;
        decode_key(self.key_scalar, bytes).map_err(decode)
    }

    fn page_sql(&self, after: bool, until: bool) -> &str {
        &self.pages[usize::from(after) * 2 + usize::from(until)]
    }

    fn check_kind(&self, key: &Key) -> Result<(), PostgresError> {
        let got = match key {
            Key::Int(_) => KeyKind::Int,
            Key::Text(_) => KeyKind::Text,
        };
        if got != self.key_kind {
            return Err(PostgresError::KeyKindMismatch {
                key: self.key_name.clone(),
                expected: self.key_kind,
                got,
            });
        }
        Ok(())
    }

    /// A row as its key, its values in column order and its `updated_at` (flat form).
    fn decode_values(&self, row: &PgRow, row_number: u64) -> Result<(Key, Vec<Value>, Option<i64>), PostgresError> {
        // Straight into a vector: no map, no column names copied, for each of a key's rows.
        let mut values = Vec::with_capacity(self.names.len());
        let (key, updated_at_ms) = self.decode_cells(row, row_number, |_, value| values.push(value))?;
        Ok((key, values, updated_at_ms))
    }

    /// Orders one key's rows as the scan's ORDER BY does, for lookups (which have no ORDER BY).
    fn sort_children(&self, rows: &mut [Vec<Value>]) {
        let Some(flat) = &self.flat else { return };
        let columns = flat.array_columns();
        rows.sort_by(|a, b| {
            for &c in &columns {
                let order = compare_cells(&a[c], &b[c]);
                if order != std::cmp::Ordering::Equal {
                    return order;
                }
            }
            std::cmp::Ordering::Equal
        });
    }

    /// `row_number` (1-based, within the scan) only names the row in errors.
    fn decode_row(&self, row: &PgRow, row_number: u64) -> Result<KeyedDoc, PostgresError> {
        let mut doc = Map::with_capacity(self.names.len());
        let (key, updated_at_ms) = self.decode_cells(row, row_number, |index, value| {
            doc.insert(self.names[index].clone(), value);
        })?;
        Ok(KeyedDoc {
            key,
            doc,
            meta: DocMeta {
                updated_at_ms,
                ..DocMeta::default()
            },
        })
    }

    /// Decodes every column of `row` into `sink(column index, value)`; returns the row's key and
    /// `updated_at`.
    fn decode_cells(
        &self,
        row: &PgRow,
        row_number: u64,
        mut sink: impl FnMut(usize, Value),
    ) -> Result<(Key, Option<i64>), PostgresError> {
        let mut key = None;
        let mut updated_at_ms = None;
        for (index, (name, decoder)) in self.names.iter().zip(&self.decoders).enumerate() {
            let raw = row.try_get_raw(index).map_err(|e| PostgresError::Decode {
                column: name.clone(),
                reason: e.to_string(),
            })?;
            let value = if raw.is_null() {
                Value::Null
            } else {
                // sqlx requests binary results for prepared queries; the decoders rely on it.
                if raw.format() != PgValueFormat::Binary {
                    return Err(PostgresError::Decode {
                        column: name.clone(),
                        reason: "value arrived in text format, expected binary".into(),
                    });
                }
                let bytes = raw.as_bytes().map_err(|e| PostgresError::Decode {
                    column: name.clone(),
                    reason: e.to_string(),
                })?;
                if index == self.key_index {
                    key = Some(
                        decode_key(self.key_scalar, bytes).map_err(|reason| PostgresError::Decode {
                            column: name.clone(),
                            reason,
                        })?,
                    );
                }
                if Some(index) == self.updated_at_index {
                    updated_at_ms = micros_to_epoch_ms(read_i64(bytes).map_err(|reason| PostgresError::Decode {
                        column: name.clone(),
                        reason,
                    })?);
                }
                decode_value(*decoder, bytes).map_err(|reason| PostgresError::Decode {
                    column: name.clone(),
                    reason,
                })?
            };
            sink(index, value);
        }
        let key = key.ok_or_else(|| PostgresError::NullKey {
            row: row_number,
            key: self.key_name.clone(),
        })?;
        Ok((key, updated_at_ms))
    }
}

/// PostgreSQL's ORDER BY on child columns: text in byte order (`COLLATE "C"`), numbers by value,
/// NULLs last.
fn compare_cells(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Number(x), Value::Number(y)) => {
            let big = |n: &Number| bigdecimal::BigDecimal::from_str(&n.to_string()).ok();
            match (big(x), big(y)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => Ordering::Equal,
            }
        }
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// The planner's total cost for `sql` (which must take no parameters).
async fn explain_cost(pool: &PgPool, sql: &str) -> Option<f64> {
    let plan: sqlx::types::JsonValue = sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {sql}"))
        .fetch_one(pool)
        .await
        .ok()?;
    plan.get(0)?.get("Plan")?.get("Total Cost")?.as_f64()
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn decode_key(scalar: Scalar, bytes: &[u8]) -> Result<Key, String> {
    Ok(match scalar {
        Scalar::Int2 => Key::Int(i64::from(i16::from_be_bytes(fixed(bytes)?))),
        Scalar::Int4 => Key::Int(i64::from(i32::from_be_bytes(fixed(bytes)?))),
        Scalar::Int8 => Key::Int(i64::from_be_bytes(fixed(bytes)?)),
        Scalar::Uuid => Key::Text(uuid::Uuid::from_bytes(fixed(bytes)?).hyphenated().to_string()),
        _ => Key::Text(text(bytes)?.to_string()),
    })
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

fn micros_to_epoch_ms(pg_micros: i64) -> Option<i64> {
    // i64::MIN/MAX are -infinity/infinity.
    if pg_micros == i64::MIN || pg_micros == i64::MAX {
        return None;
    }
    Some((pg_micros + PG_EPOCH_MICROS).div_euclid(1000))
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()))
}

fn read_i64(bytes: &[u8]) -> Result<i64, String> {
    Ok(i64::from_be_bytes(fixed(bytes)?))
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8: {e}"))
}

/// One binary value as the JSON a projector would send.
fn decode_value(decoder: Decoder, bytes: &[u8]) -> Result<Value, String> {
    match decoder {
        Decoder::Scalar(scalar) => decode_scalar(scalar, bytes),
        Decoder::Array(element) => decode_array(element, bytes),
    }
}

fn decode_scalar(scalar: Scalar, bytes: &[u8]) -> Result<Value, String> {
    Ok(match scalar {
        Scalar::Bool => Value::Bool(fixed::<1>(bytes)?[0] != 0),
        Scalar::Int2 => Value::from(i16::from_be_bytes(fixed(bytes)?)),
        Scalar::Int4 => Value::from(i32::from_be_bytes(fixed(bytes)?)),
        Scalar::Int8 => Value::from(i64::from_be_bytes(fixed(bytes)?)),
        Scalar::Float4 => {
            let f = f32::from_be_bytes(fixed(bytes)?);
            // The shortest digits that round-trip as f32, not the widened f64's.
            if f.is_finite() {
                Value::Number(Number::from_str(&format!("{f:?}")).map_err(|e| e.to_string())?)
            } else {
                Value::String(non_finite(f64::from(f)))
            }
        }
        Scalar::Float8 => {
            let f = f64::from_be_bytes(fixed(bytes)?);
            Number::from_f64(f).map_or_else(|| Value::String(non_finite(f)), Value::Number)
        }
        Scalar::Numeric => numeric_value(bytes)?,
        Scalar::Text => Value::String(text(bytes)?.to_string()),
        Scalar::Uuid => Value::String(uuid::Uuid::from_bytes(fixed(bytes)?).hyphenated().to_string()),
        Scalar::TimestampTz => Value::String(format_timestamp(read_i64(bytes)?, true)),
        Scalar::Timestamp => Value::String(format_timestamp(read_i64(bytes)?, false)),
        Scalar::Date => Value::String(format_date(i32::from_be_bytes(fixed(bytes)?))),
        Scalar::Json => serde_json::from_slice(bytes).map_err(|e| format!("invalid json: {e}"))?,
        Scalar::Jsonb => match bytes.split_first() {
            Some((1, json)) => serde_json::from_slice(json).map_err(|e| format!("invalid jsonb: {e}"))?,
            _ => return Err("unknown jsonb binary format version".into()),
        },
    })
}

fn non_finite(f: f64) -> String {
    // PostgreSQL's own spelling.
    if f.is_nan() {
        "NaN".into()
    } else if f > 0.0 {
        "Infinity".into()
    } else {
        "-Infinity".into()
    }
}

/// A binary array (any number of dimensions) as nested JSON arrays.
fn decode_array(element: Scalar, bytes: &[u8]) -> Result<Value, String> {
    let mut reader = Reader { bytes, at: 0 };
    let dimensions = reader.i32()?;
    let _has_nulls = reader.i32()?;
    let _element_oid = reader.i32()?;
    if dimensions == 0 {
        return Ok(Value::Array(Vec::new()));
    }
    let mut lengths = Vec::with_capacity(dimensions as usize);
    for _ in 0..dimensions {
        lengths.push(usize::try_from(reader.i32()?).map_err(|_| "negative array length")?);
        let _lower_bound = reader.i32()?;
    }
    let array = read_dimension(element, &mut reader, &lengths)?;
    if reader.at != bytes.len() {
        return Err("trailing bytes after array".into());
    }
    Ok(array)
}

fn read_dimension(element: Scalar, reader: &mut Reader<'_>, lengths: &[usize]) -> Result<Value, String> {
    let (&length, inner) = lengths.split_first().expect("at least one dimension");
    let mut items = Vec::with_capacity(length);
    for _ in 0..length {
        if inner.is_empty() {
            let len = reader.i32()?;
            items.push(if len < 0 {
                Value::Null
            } else {
                decode_scalar(element, reader.take(len as usize)?)?
            });
        } else {
            items.push(read_dimension(element, reader, inner)?);
        }
    }
    Ok(Value::Array(items))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or("value ends early")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(fixed(self.take(4)?)?))
    }

    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(fixed(self.take(2)?)?))
    }
}

/// numeric as a JSON number with exactly PostgreSQL's digits (its display scale included: `12.50`
/// stays `12.50`); NaN and ±Infinity become strings.
fn numeric_value(bytes: &[u8]) -> Result<Value, String> {
    let text = numeric_text(bytes)?;
    if matches!(text.as_str(), "NaN" | "Infinity" | "-Infinity") {
        return Ok(Value::String(text));
    }
    Number::from_str(&text)
        .map(Value::Number)
        .map_err(|e| format!("numeric {text}: {e}"))
}

/// The binary numeric format: ndigits, weight (of the first base-10000 digit), sign, display scale,
/// then the base-10000 digits.
fn numeric_text(bytes: &[u8]) -> Result<String, String> {
    let mut reader = Reader { bytes, at: 0 };
    let ndigits = reader.i16()?;
    let weight = i32::from(reader.i16()?);
    let sign = reader.i16()? as u16;
    let dscale = reader.i16()?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        other => return Err(format!("unknown numeric sign {other:#x}")),
    }
    let digits = (0..ndigits.max(0))
        .map(|_| reader.i16())
        .collect::<Result<Vec<_>, _>>()?;
    // digits[k] carries weight `weight - k`.
    let digit = |k: i32| {
        if k >= 0 && (k as usize) < digits.len() {
            digits[k as usize]
        } else {
            0
        }
    };
    let mut out = String::with_capacity(digits.len() * 4 + 4);
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for k in 0..=weight {
            if k == 0 {
                let _ = write!(out, "{}", digit(k));
            } else {
                let _ = write!(out, "{:04}", digit(k));
            }
        }
    }
    let dscale = usize::try_from(dscale).map_err(|_| "negative numeric scale")?;
    if dscale > 0 {
        out.push('.');
        let start = out.len();
        let mut k = weight + 1;
        while out.len() - start < dscale {
            let _ = write!(out, "{:04}", digit(k));
            k += 1;
        }
        out.truncate(start + dscale);
    }
    Ok(out)
}

/// RFC 3339; UTC with `Z` for timestamptz, no zone for timestamp; fractional seconds only when not
/// zero, without trailing zeros.
fn format_timestamp(pg_micros: i64, utc: bool) -> String {
    match pg_micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let Some(instant) = pg_micros
        .checked_add(PG_EPOCH_MICROS)
        .and_then(DateTime::from_timestamp_micros)
    else {
        return format!("out of range timestamp {pg_micros}");
    };
    let mut out = String::with_capacity(27);
    if (0..=9999).contains(&instant.year()) {
        // By hand: chrono's strftime parser cost 7% of a whole check run (perf).
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            instant.year(),
            instant.month(),
            instant.day(),
            instant.hour(),
            instant.minute(),
            instant.second()
        );
    } else {
        let _ = write!(out, "{}", instant.format("%Y-%m-%dT%H:%M:%S"));
    }
    let micros = instant.timestamp_subsec_micros();
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
        let trimmed = out.trim_end_matches('0').len();
        out.truncate(trimmed);
    }
    if utc {
        out.push('Z');
    }
    out
}

fn format_date(pg_days: i32) -> String {
    match pg_days {
        i32::MAX => return "infinity".into(),
        i32::MIN => return "-infinity".into(),
        _ => {}
    }
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date");
    match epoch.checked_add_signed(chrono::Duration::days(i64::from(pg_days))) {
        Some(date) => date.format("%Y-%m-%d").to_string(),
        None => format!("out of range date {pg_days}"),
    }
}

/// Removes the URL's password from a message that may quote it (e.g. a URL parse error).
fn redact_message(message: &str, raw_url: &str) -> String {
    let password = url::Url::parse(raw_url)
        .ok()
        .and_then(|u| u.password().map(str::to_string));
    match password {
        Some(p) if !p.is_empty() => message.replace(&p, "***"),
        _ => message.to_string(),
    }
}

fn connect_error(url: &str, raw_url: &str, error: sqlx::Error) -> PostgresError {
    let url = url.to_string();
    let reason = redact_message(&error.to_string(), raw_url);
    match &error {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01" | "28000") => PostgresError::Authentication {
                url,
                reason: db.message().to_string(),
            },
            Some("3D000") => PostgresError::NoDatabase {
                url,
                reason: db.message().to_string(),
            },
            _ => PostgresError::Connect { url, reason },
        },
        sqlx::Error::Io(e) => PostgresError::Unreachable {
            url,
            reason: e.to_string(),
        },
        sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => PostgresError::Unreachable { url, reason },
        sqlx::Error::Configuration(_) => PostgresError::InvalidUrl { url, reason },
        _ => PostgresError::Connect { url, reason },
    }
}

fn query_error(raw_url: &str, error: sqlx::Error) -> PostgresError {
    match &error {
        sqlx::Error::Database(db) => PostgresError::Query {
            reason: db.message().to_string(),
        },
        _ => read_error(raw_url, error),
    }
}

/// The connection is gone: reset or closed under us, or the server ended the session (admin_shutdown,
/// crash_shutdown, cannot_connect_now, or any connection exception).
fn lost_connection(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// A failed read of a scan that has received `rows_read` rows: once rows have arrived, a lost connection
/// is not a server that cannot be reached.
fn scan_error(raw_url: &str, rows_read: u64, error: sqlx::Error) -> PostgresError {
    if rows_read > 0 && lost_connection(&error) {
        PostgresError::LostMidScan {
            url: redact_url(raw_url),
            read: crate::plural::plural(rows_read, "row", "rows"),
            reason: redact_message(&error.to_string(), raw_url),
        }
    } else {
        read_error(raw_url, error)
    }
}

fn read_error(raw_url: &str, error: sqlx::Error) -> PostgresError {
    match &error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
            connect_error(&redact_url(raw_url), raw_url, error)
        }
        _ => PostgresError::Read {
            reason: redact_message(&error.to_string(), raw_url),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_or_an_ended_session_is_a_lost_connection_and_a_query_error_is_not() {
        let reset = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(lost_connection(&reset));
        assert!(lost_connection(&sqlx::Error::WorkerCrashed));
        assert!(!lost_connection(&sqlx::Error::RowNotFound));
        assert!(!lost_connection(&sqlx::Error::Protocol("unexpected message".into())));
    }

    #[test]
    fn redact_url_hides_passwords_everywhere() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(redact_url("postgres://app@db/shop"), "postgres://app@db/shop");
        let with_param = redact_url("postgres://db/shop?user=app&password=s3cret&sslmode=require");
        assert!(!with_param.contains("s3cret"), "{with_param}");
        assert!(with_param.contains("sslmode=require"), "{with_param}");
        let broken = redact_url("postgres://app:s3cret@[bad/shop");
        assert!(!broken.contains("s3cret"), "{broken}");
        assert_eq!(
            redact_message("bad url postgres://a:pw9@x", "postgres://a:pw9@x"),
            "bad url postgres://a:***@x"
        );
    }

    fn numeric_bytes(ndigits: &[i16], weight: i16, sign: u16, dscale: i16) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(ndigits.len() as i16).to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        for d in ndigits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numeric_keeps_exact_digits_and_scale() {
        // 12345678901234567890.10 = 1234 5678 9012 3456 7890 . 1000
        let bytes = numeric_bytes(&[1234, 5678, 9012, 3456, 7890, 1000], 4, 0, 2);
        assert_eq!(numeric_text(&bytes).unwrap(), "12345678901234567890.10");
        assert_eq!(numeric_value(&bytes).unwrap().to_string(), "12345678901234567890.10");
        // -0.0005 with scale 4: digit 5 at weight -1 (0.0005 = 5 * 10000^-1).
        assert_eq!(numeric_text(&numeric_bytes(&[5], -1, 0x4000, 4)).unwrap(), "-0.0005");
        // 0.00000001: one digit 1 at weight -2 (0.0000 0001).
        assert_eq!(numeric_text(&numeric_bytes(&[1], -2, 0, 8)).unwrap(), "0.00000001");
        // 10000 (trailing zero groups are not stored): digit 1 at weight 1.
        assert_eq!(numeric_text(&numeric_bytes(&[1], 1, 0, 0)).unwrap(), "10000");
        assert_eq!(numeric_text(&numeric_bytes(&[], 0, 0, 2)).unwrap(), "0.00");
        assert_eq!(
            numeric_value(&numeric_bytes(&[], 0, 0xC000, 0)).unwrap(),
            Value::String("NaN".into())
        );
        assert_eq!(
            numeric_value(&numeric_bytes(&[], 0, 0xF000, 0)).unwrap(),
            Value::String("-Infinity".into())
        );
    }

    #[test]
    fn timestamps_render_utc_with_fraction_only_when_present() {
        let micros = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros() - PG_EPOCH_MICROS;
        assert_eq!(
            format_timestamp(micros("2024-03-01T10:00:00Z"), true),
            "2024-03-01T10:00:00Z"
        );
        assert_eq!(
            format_timestamp(micros("2024-03-01T11:00:00.123456+01:00"), true),
            "2024-03-01T10:00:00.123456Z"
        );
        assert_eq!(
            format_timestamp(micros("2024-03-01T10:00:00.5Z"), false),
            "2024-03-01T10:00:00.5"
        );
        assert_eq!(
            format_timestamp(micros("1999-12-31T23:59:59.999Z"), true),
            "1999-12-31T23:59:59.999Z"
        );
        assert_eq!(format_timestamp(i64::MAX, true), "infinity");
        // The hand-written fast path agrees with chrono's strftime, and years beyond four digits use it.
        for text in [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.000001Z",
            "2024-02-29T00:00:00.1Z",
        ] {
            let pg = micros(text);
            let instant = DateTime::from_timestamp_micros(pg + PG_EPOCH_MICROS).unwrap();
            assert!(format_timestamp(pg, true).starts_with(&instant.format("%Y-%m-%dT%H:%M:%S").to_string()));
        }
        let far = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
            .unwrap()
            .timestamp_micros()
            - PG_EPOCH_MICROS
            + 86_400_000_000;
        assert_eq!(format_timestamp(far, true), "+10000-01-01T23:59:59Z");
        assert_eq!(micros_to_epoch_ms(micros("1970-01-01T00:00:00.0015Z")), Some(1));
        assert_eq!(micros_to_epoch_ms(micros("1969-12-31T23:59:59.9995Z")), Some(-1));
        assert_eq!(format_date(0), "2000-01-01");
        assert_eq!(format_date(-1), "1999-12-31");
        assert_eq!(format_date(i32::MIN), "-infinity");
    }

    #[test]
    fn floats_use_shortest_round_trip_digits() {
        let f4 = decode_scalar(Scalar::Float4, &0.1f32.to_be_bytes()).unwrap();
        assert_eq!(f4.to_string(), "0.1");
        let f8 = decode_scalar(Scalar::Float8, &0.1f64.to_be_bytes()).unwrap();
        assert_eq!(f8.to_string(), "0.1");
        let nan = decode_scalar(Scalar::Float8, &f64::NAN.to_be_bytes()).unwrap();
        assert_eq!(nan, Value::String("NaN".into()));
    }

    #[test]
    fn arrays_nest_by_dimension_and_keep_nulls() {
        // int4[][] {{1,NULL},{3,4}}
        let mut bytes = Vec::new();
        for v in [2i32, 1, 23, 2, 1, 2, 1] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        for element in [Some(1i32), None, Some(3), Some(4)] {
            match element {
                Some(v) => {
                    bytes.extend_from_slice(&4i32.to_be_bytes());
                    bytes.extend_from_slice(&v.to_be_bytes());
                }
                None => bytes.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        assert_eq!(
            decode_array(Scalar::Int4, &bytes).unwrap(),
            serde_json::json!([[1, null], [3, 4]])
        );
        let empty = [0i32, 0, 23].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<_>>();
        assert_eq!(decode_array(Scalar::Int4, &empty).unwrap(), serde_json::json!([]));
        assert!(decode_array(Scalar::Int4, &bytes[..bytes.len() - 2]).is_err());
    }
}
