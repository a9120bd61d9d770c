//! `recon doctor`'s checks of the write model, in order, each only when the one before passed: the
//! server answers, the login is accepted, the projection plans, its key column is usable, the key is
//! unique in a sample, a snapshot can be exported (`--parallel`), and the planner's row estimate.
//! Nothing here reads the whole projection: the sample is `LIMIT`ed and runs under a statement timeout.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;

use super::error::{query_error, PostgresError};
use super::plan::{quote_ident, Plan};
use super::{connect_pool, probe_connection, redact_url, PostgresSettings, PostgresSource};
use crate::source::preflight::{Check, Checklist};

/// Rows of the projection read to look for repeated keys.
pub const KEY_SAMPLE: usize = 10_000;
/// How long the sample may take before it is given up (it is a hint, not a proof).
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);

pub const REACHABLE: &str = "postgres.reachable";
pub const LOGIN: &str = "postgres.login";
pub const QUERY: &str = "postgres.query";
pub const KEY: &str = "postgres.key";
pub const KEY_UNIQUE: &str = "postgres.key_unique";
pub const SNAPSHOT: &str = "postgres.snapshot";
pub const ESTIMATE: &str = "postgres.estimate";

/// The write model's checks, and the connected source when the projection and its key are usable (its
/// key kind and columns are what the read model's checks compare against).
pub async fn preflight(settings: PostgresSettings, list: &mut Checklist) -> Option<PostgresSource> {
    let url = redact_url(&settings.url);
    let connected = match probe_connection(&settings).await {
        Ok(()) => connect_pool(&settings).await,
        Err(e) => Err(e),
    };
    let pool = match connected {
        Ok(pool) => {
            list.push(Check::ok(REACHABLE, format!("{url} answers")));
            list.push(Check::ok(LOGIN, "login accepted"));
            pool
        }
        Err(e) => {
            let (reachable, reason) = match &e {
                PostgresError::Authentication { reason, .. } | PostgresError::NoDatabase { reason, .. } => {
                    (true, reason.clone())
                }
                PostgresError::Connect { reason, .. } => (true, reason.clone()),
                PostgresError::Unreachable { reason, .. } | PostgresError::InvalidUrl { reason, .. } => {
                    (false, reason.clone())
                }
                other => (false, other.to_string()),
            };
            let fix = match &e {
                PostgresError::Authentication { .. } => {
                    "check the user and password in postgres.url (or DATABASE_URL / --pg-url), and that \
                     pg_hba.conf lets this user in from here"
                }
                PostgresError::NoDatabase { .. } => "check the database name in postgres.url",
                PostgresError::InvalidUrl { .. } => "write postgres.url as postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                PostgresError::Connect { .. } => "check postgres.url and the server's log",
                _ => "check host and port in postgres.url (or DATABASE_URL / --pg-url) and that the server runs",
            };
            if reachable {
                list.push(Check::ok(REACHABLE, format!("{url} answers")));
                list.push(Check::fail(LOGIN, reason, fix));
                list.skip(&[QUERY, KEY, KEY_UNIQUE, SNAPSHOT, ESTIMATE], LOGIN);
            } else {
                list.push(Check::fail(REACHABLE, format!("{url}: {reason}"), fix));
                list.skip(&[LOGIN, QUERY, KEY, KEY_UNIQUE, SNAPSHOT, ESTIMATE], REACHABLE);
            }
            return None;
        }
    };

    // EXPLAIN plans the projection without running it; its top node's rows are the estimate.
    let query = settings.query.trim().trim_end_matches(';').trim_end().to_string();
    let explain = format!("EXPLAIN (FORMAT JSON) SELECT * FROM ({query}\n) AS recon_q");
    let estimate = match sqlx::query_scalar::<_, sqlx::types::JsonValue>(&explain)
        .fetch_one(&pool)
        .await
    {
        Ok(plan) => plan
            .get(0)
            .and_then(|p| p.get("Plan"))
            .and_then(|p| p.get("Plan Rows"))
            .and_then(|r| r.as_f64())
            .map(|r| r.max(0.0).round() as u64),
        Err(e) => {
            let reason = match query_error(&settings.url, e) {
                PostgresError::Query { reason } => reason,
                other => other.to_string(),
            };
            list.push(Check::fail(
                QUERY,
                format!("postgres.query does not plan: {reason}"),
                "fix postgres.query; try it in psql as EXPLAIN <query>",
            ));
            list.skip(&[KEY, KEY_UNIQUE, SNAPSHOT, ESTIMATE], QUERY);
            return None;
        }
    };
    let plan = match Plan::learn(&pool, &settings).await {
        Ok(plan) => {
            list.push(Check::ok(QUERY, format!("plans; columns: {}", plan.fields.join(", "))));
            plan
        }
        Err(
            e @ (PostgresError::UnknownKey { .. }
            | PostgresError::UnsupportedKeyType { .. }
            | PostgresError::UnknownUpdatedAt { .. }
            | PostgresError::UpdatedAtType { .. }),
        ) => {
            list.push(Check::ok(QUERY, "plans"));
            let fix = match &e {
                PostgresError::UnknownKey { .. } => {
                    "set postgres.key to the column naming a document, or add it to postgres.query"
                }
                PostgresError::UnsupportedKeyType { .. } => "cast the key column to bigint or text in postgres.query",
                _ => "fix postgres.updated_at: it names a timestamptz column of postgres.query",
            };
            list.push(Check::fail(KEY, e.to_string(), fix));
            list.skip(&[KEY_UNIQUE, SNAPSHOT, ESTIMATE], KEY);
            return None;
        }
        Err(e) => {
            list.push(Check::fail(QUERY, e.to_string(), "fix postgres.query"));
            list.skip(&[KEY, KEY_UNIQUE, SNAPSHOT, ESTIMATE], QUERY);
            return None;
        }
    };
    let key_type = match plan.key_kind {
        crate::model::KeyKind::Int => "an integer",
        crate::model::KeyKind::Text => "a text",
    };
    list.push(Check::ok(KEY, format!("{:?} is {key_type} key", settings.key)));
    let source = PostgresSource {
        pool,
        plan: Arc::new(plan),
        settings,
    };

    list.push(source.key_sample().await);

    list.push(match source.export_snapshot().await {
        Ok(snapshot) => {
            drop(snapshot);
            Check::ok(
                SNAPSHOT,
                "pg_export_snapshot() allowed in a REPEATABLE READ, READ ONLY transaction",
            )
        }
        Err(e) => Check::fail(
            SNAPSHOT,
            format!("pg_export_snapshot() refused: {e:#}"),
            "check --parallel N needs an exported snapshot: connect directly (a pooler in transaction mode \
             cannot share one) or run without --parallel",
        ),
    });
    list.push(match estimate {
        Some(rows) => Check::ok(
            ESTIMATE,
            format!("about {rows} rows (planner estimate; ANALYZE keeps it fresh)"),
        ),
        None => Check::ok(ESTIMATE, "no estimate from the planner"),
    });
    Some(source)
}

impl PostgresSource {
    /// The key repeated (or NULL) among the first [`KEY_SAMPLE`] rows of the projection: a proof of
    /// trouble when found, a hint when not. The flat form repeats keys by design and is not sampled.
    async fn key_sample(&self) -> Check {
        if self.plan.flat.is_some() {
            return Check::ok(KEY_UNIQUE, "flat form: one row per child, keys repeat by design");
        }
        let key = quote_ident(&self.settings.key);
        let sql = format!(
            "SELECT k::text AS k, count(*) AS n FROM (SELECT recon_q.{key} AS k FROM ({}\n) AS recon_q LIMIT \
             {KEY_SAMPLE}) AS recon_s GROUP BY k HAVING count(*) > 1 OR k IS NULL ORDER BY count(*) DESC LIMIT 3",
            self.plan.query
        );
        let sampled = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
            sqlx::query(&format!("SET LOCAL statement_timeout = {}", SAMPLE_TIMEOUT.as_millis()))
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query(&sql).fetch_all(&mut *tx).await?;
            let _ = tx.rollback().await;
            Ok::<_, sqlx::Error>(rows)
        };
        match sampled.await {
            Ok(rows) if rows.is_empty() => {
                Check::ok(KEY_UNIQUE, format!("no key repeats among the first {KEY_SAMPLE} rows"))
            }
            Ok(rows) => {
                let found: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        let key: Option<String> = r.try_get("k").ok().flatten();
                        let n: i64 = r.try_get("n").unwrap_or(0);
                        match key {
                            Some(k) => format!("{k} ({n} rows)"),
                            None => format!("NULL ({n} rows)"),
                        }
                    })
                    .collect();
                Check::fail(
                    KEY_UNIQUE,
                    format!(
                        "postgres.key {:?} is not unique among the first {KEY_SAMPLE} rows: {}",
                        self.settings.key,
                        found.join(", ")
                    ),
                    "one row per document: fix the joins of postgres.query (aggregate child rows with \
                     json_agg, or use the flat form `products[].sku`), or choose a unique, NOT NULL key column",
                )
            }
            Err(e) => Check::skipped(
                KEY_UNIQUE,
                format!("the sample did not finish within {}s: {e}", SAMPLE_TIMEOUT.as_secs()),
            ),
        }
    }
}
