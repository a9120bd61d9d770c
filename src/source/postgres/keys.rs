//! Key-only reads: a range split into parallel ranges of about equal rows, and streams of keys.

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use tokio::sync::mpsc;

use super::decode::{Decoder, Scalar};
use super::error::{read_error, scan_error};
use super::plan::{bind_key, quote_ident};
use super::{KeyKind, PostgresSource, STREAM_BATCH};
use crate::model::Key;
use crate::source::KeyRange;

impl PostgresSource {
    /// Splits `within` into at most `n` contiguous ranges of about equal rows. Integer keys: boundaries
    /// found by bisecting the planner's row estimates (the key column's statistics) over the range's
    /// span, or of equal width between the smallest and largest key when the estimates say nothing or
    /// `n` is large. Text keys:
    /// quantiles of a deterministic hash sample of the keys (one pass over the key column). The same
    /// data and statistics give the same ranges, which shards on different machines rely on.
    pub async fn split(&self, within: &KeyRange, n: usize) -> anyhow::Result<Vec<KeyRange>> {
        use crate::scale::plan;
        if n <= 1 {
            return Ok(vec![within.clone()]);
        }
        let bounds = match self.plan.key_kind {
            KeyKind::Int => match self.estimate(within).await.filter(|&t| t > 0 && n <= 64) {
                // Bisecting the estimates needs no edge keys: over the range's whole span it takes at
                // most 64 EXPLAINs a bound (about a millisecond each), where reading the first and the
                // last key of a projection can cost a pass over it (0.3 s for the example shop's flat
                // query at 200,000 orders, growing with the table).
                Some(total) => {
                    let lo = match &within.after {
                        Some(Key::Int(after)) => after.saturating_add(1),
                        _ => i64::MIN,
                    };
                    let hi = match &within.until {
                        Some(Key::Int(until)) => *until,
                        _ => i64::MAX,
                    };
                    let mut bounds = Vec::with_capacity(n - 1);
                    for i in 1..n {
                        let target = total as f64 * i as f64 / n as f64;
                        bounds.push(Key::Int(self.bisect(within, lo, hi, target).await));
                    }
                    bounds
                }
                None => {
                    let (Some(Key::Int(lo)), Some(Key::Int(hi))) =
                        (self.edge_key(within, false).await?, self.edge_key(within, true).await?)
                    else {
                        return Ok(vec![within.clone()]);
                    };
                    plan::uniform_int_bounds(lo, hi, n)
                }
            },
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
