//! PostgreSQL for tests: a fresh database per test, on the server named by `RECON_TEST_DATABASE_URL`
//! when set, else on one throwaway cluster per test binary.
//!
//! The cluster is started lazily, once, by whichever test gets there first, and lives in a static. It
//! must not depend on a tokio runtime (each `#[tokio::test]` has its own, which dies with the test), so
//! [`PgCluster`] is synchronous; sqlx connections are made per call, in the calling test's runtime, and
//! never shared between tests. Statics are never dropped: the cluster dies with the process (see
//! `recon_testkit::pgcluster`) and its directory is removed by the next run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use recon::source::postgres::PostgresSettings;
use recon_testkit::pgcluster::PgCluster;
use sqlx::{Connection, Executor, PgConnection};

/// Set to a superuser URL to run the suite against an existing server instead of a throwaway cluster.
pub const DATABASE_URL_ENV: &str = "RECON_TEST_DATABASE_URL";

/// A database of its own for one test. Dropping it leaves the database in place (a throwaway cluster
/// disappears at exit anyway).
#[derive(Debug, Clone)]
pub struct TestDb {
    pub url: String,
    pub name: String,
    /// URL of the server's `postgres` database, as a superuser.
    pub admin_url: String,
}

impl TestDb {
    /// Runs one or more `;`-separated statements (simple query protocol); panics with the SQL on error.
    pub async fn execute(&self, sql: &str) {
        let mut conn = self.connect().await;
        if let Err(e) = sqlx::raw_sql(sql).execute(&mut conn).await {
            panic!("fixture SQL failed on {}: {e}\n{sql}", self.name);
        }
        let _ = conn.close().await;
    }

    /// A fresh connection to this database.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url))
    }

    /// Source settings for `query` keyed by `key`, with the default page size and read-ahead.
    pub fn settings(&self, query: &str, key: &str) -> PostgresSettings {
        PostgresSettings::new(&self.url, query, key)
    }

    /// This database's URL with another user and password.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        let mut url = url::Url::parse(&self.url).expect("test URLs parse");
        url.set_username(user).expect("URL has a host");
        url.set_password(Some(password)).expect("URL has a host");
        url.to_string()
    }
}

/// The shop's schema (see `recon_testkit::shop`).
pub fn shop_schema_sql() -> &'static str {
    recon_testkit::shop::schema_sql()
}

/// The shop's projection query: one row per order (see `recon_testkit::shop`).
pub fn shop_projection_query() -> &'static str {
    recon_testkit::shop::projection_query()
}

/// A fresh database holding the shop schema and `orders` deterministic orders.
pub async fn shop_database(orders: u64, seed: u64) -> TestDb {
    let db = test_database().await;
    db.execute(shop_schema_sql()).await;
    db.execute(&recon_testkit::shop::seed_sql(orders, seed)).await;
    db
}

/// A fresh, empty database with a name no other test (or earlier run) uses.
pub async fn test_database() -> TestDb {
    let admin_url = tokio::task::spawn_blocking(server_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "recon_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"));
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
    let _ = conn.close().await;
    let mut url = url::Url::parse(&admin_url).expect("the test server URL parses");
    url.set_path(&format!("/{name}"));
    TestDb {
        url: url.to_string(),
        name,
        admin_url,
    }
}

/// Whether the tests run against the throwaway cluster (whose authentication rules they know).
pub fn on_throwaway_cluster() -> bool {
    std::env::var(DATABASE_URL_ENV).map_or(true, |v| v.is_empty())
}

fn server_url() -> String {
    if let Ok(url) = std::env::var(DATABASE_URL_ENV) {
        if !url.is_empty() {
            return url;
        }
    }
    static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(|| PgCluster::start().map_err(|e| format!("{e:#}"))) {
        Ok(cluster) => cluster.url(),
        Err(e) => panic!("cannot start a throwaway PostgreSQL for the tests (or set {DATABASE_URL_ENV}): {e}"),
    }
}
