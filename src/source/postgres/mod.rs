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

mod decode;
mod error;
mod flat;
pub mod introspect;
mod keys;
mod model;
mod plan;
pub mod preflight;
mod scan;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions as _;

use crate::model::{DocMeta, DocValue, Key, KeyedDoc};
use crate::source::{DocumentSource, KeyRange, Scan};
use decode::Scalar;
use error::{connect_error, read_error, redact_message};
use plan::Plan;

pub use error::PostgresError;
pub use scan::SharedSnapshot;

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
        // One connection first, alone: the pool retries a refused connection until its acquire timeout,
        // which turned "connection refused" into a 10 s wait and a "pool timed out"; this says the cause
        // at once.
        probe_connection(&settings).await?;
        let pool = connect_pool(&settings).await?;
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
                    let mut groups: std::collections::BTreeMap<Key, (Vec<Vec<DocValue>>, Option<i64>)> =
                        std::collections::BTreeMap::new();
                    for (i, row) in rows.iter().enumerate() {
                        let (key, values, updated_at_ms) = self.plan.decode_values(row, i as u64 + 1, None)?;
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
                            doc: flat.nest(&mut values),
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

/// How recon connects to `settings.url`.
fn connect_options(settings: &PostgresSettings, url: &str) -> Result<PgConnectOptions, PostgresError> {
    Ok(PgConnectOptions::from_str(&settings.url)
        .map_err(|e| PostgresError::InvalidUrl {
            url: url.to_string(),
            reason: redact_message(&e.to_string(), &settings.url),
        })?
        .application_name("recon")
        // A scan is one long statement by design: sqlx's default warning for statements over 1 s would
        // show on every run. Debug, for RECON_LOG=sqlx=debug.
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1)))
}

/// One connection to `settings.url`, made and closed: says at once why a server cannot be reached
/// (a refused connection, a refused login), where a pool keeps retrying until its acquire timeout and
/// then reports only that it timed out.
pub(crate) async fn probe_connection(settings: &PostgresSettings) -> Result<(), PostgresError> {
    use sqlx::Connection;
    let url = redact_url(&settings.url);
    let options = connect_options(settings, &url)?;
    match tokio::time::timeout(settings.connect_timeout, sqlx::PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(connect_error(&url, &settings.url, e)),
        Err(_) => Err(PostgresError::Unreachable {
            url,
            reason: format!(
                "no connection within {}",
                humantime::format_duration(settings.connect_timeout)
            ),
        }),
    }
}

/// A pool for `settings.url`, with one connection made: an unreachable server, a refused login or a
/// missing database fails here, each with its own [`PostgresError`].
async fn connect_pool(settings: &PostgresSettings) -> Result<PgPool, PostgresError> {
    let url = redact_url(&settings.url);
    let options = connect_options(settings, &url)?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections.max(2))
        .min_connections(0)
        .acquire_timeout(settings.connect_timeout)
        .connect_with(options);
    let pool = match tokio::time::timeout(settings.connect_timeout, pool).await {
        Ok(Ok(pool)) => pool,
        Ok(Err(e)) => return Err(connect_error(&url, &settings.url, e)),
        Err(_) => {
            return Err(PostgresError::Unreachable {
                url,
                reason: format!(
                    "no connection within {}",
                    humantime::format_duration(settings.connect_timeout)
                ),
            })
        }
    };
    Ok(pool)
}

impl DocumentSource for PostgresSource {
    fn open_scan(&self, range: KeyRange) -> BoxFuture<'_, anyhow::Result<Scan>> {
        Box::pin(self.open_scan_inner(range))
    }

    fn lookup<'a>(&'a self, keys: &'a [Key]) -> BoxFuture<'a, anyhow::Result<Vec<KeyedDoc>>> {
        Box::pin(self.lookup_inner(keys))
    }

    fn product(&self) -> &'static str {
        "PostgreSQL"
    }

    fn describe(&self) -> String {
        format!(
            "PostgreSQL {} (key {:?})",
            redact_url(&self.settings.url),
            self.settings.key
        )
    }
}
