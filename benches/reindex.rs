//! `cargo bench --bench reindex [-- --orders N] [--parallel P]`: how fast is `recon reindex` against
//! the raw work it cannot avoid?
//!
//! Generates N orders (default 1,000,000) in a throwaway PostgreSQL and an alias `orders` over an
//! empty first generation in the emulator, then times, in one run: the projection query exported
//! alone (`psql \copy (…) to /dev/null`), a raw `_bulk` load of the same documents into a fresh
//! index (pre-encoded 1,000-document requests, 3 in flight, refresh off, as recon loads), and
//! `recon reindex --yes` as a separate process (load, catch-up, the verify gate by the load's
//! fingerprints, swap, last pass). Prints the ratio to export + bulk (target <= 1.3), then the same
//! with `--parallel P`, then serially with `--verify full` (the gate that reads the projection again)
//! for comparison. docs/performance.md records the figures.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use elasticsearch::http::Method;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use recon::model::KeyedDoc;
use recon::source::elasticsearch::EsClient;
use recon::source::postgres::{PostgresSettings, PostgresSource};
use recon::source::{DocumentSource, KeyRange};
use recon_es_emulator::{Emulator, EmulatorConfig};
use recon_testkit::pgcluster::PgCluster;
use recon_testkit::shop;

#[path = "support/mod.rs"]
mod support;
use support::{bulk, bulk_index, connect, peak_rss_kib, psql_export, secs};

fn main() -> anyhow::Result<()> {
    let mut orders: u64 = 1_000_000;
    let mut parallel: u64 = 2;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--orders" {
            orders = args.next().context("--orders N")?.parse()?;
        } else if arg == "--parallel" {
            parallel = args.next().context("--parallel P")?.parse()?;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(orders, parallel.max(1)))
}

const MAPPING: &str = r#"{"properties": {"orderId": {"type": "long"}, "orderDate": {"type": "date"}}}"#;

async fn bench(orders: u64, parallel: u64) -> anyhow::Result<()> {
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await??;
    let pg_url = cluster.create_database("bench")?;
    let clock = Instant::now();
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&pg_url).await?;
    sqlx::raw_sql(shop::schema_sql()).execute(&mut conn).await?;
    sqlx::raw_sql(&shop::seed_sql(orders, 7)).execute(&mut conn).await?;
    sqlx::raw_sql("VACUUM ANALYZE").execute(&mut conn).await?;
    eprintln!("seeded {orders} orders in {:.1?}", clock.elapsed());

    let emulator = Emulator::start("127.0.0.1:0", EmulatorConfig::default()).await?;
    let es = EsClient::connect(&connect(&emulator.url())).await?;
    let mapping: serde_json::Value = serde_json::from_str(MAPPING)?;
    es.request_ok(
        Method::Put,
        "/orders-v1",
        &[],
        Some(&json!({"settings": {"number_of_shards": 1}, "mappings": mapping,
                     "aliases": {"orders": {"is_write_index": true}}})),
    )
    .await?;

    // 1. The projection query alone, as psql exports it.
    let export = psql_export(&pg_url, shop::projection_query())?;

    // 2. The same documents, encoded beforehand, bulk-loaded into a fresh index.
    let bodies = encode(&pg_url).await?;
    es.request_ok(
        Method::Put,
        "/raw",
        &[],
        Some(
            &json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
                     "mappings": mapping}),
        ),
    )
    .await?;
    let clock = Instant::now();
    futures::stream::iter(bodies.into_iter().map(|body| bulk(&es, body)))
        .buffer_unordered(3)
        .try_collect::<Vec<()>>()
        .await?;
    es.request_ok(Method::Post, "/raw/_refresh", &[], None).await?;
    let raw_bulk = clock.elapsed();
    es.request_ok(Method::Delete, "/raw", &[], None).await?;

    // 3. recon reindex, as users run it.
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), &pg_url, &emulator.url())?;
    let (reindex, rss_kib, code) = reindex_measured(&config, &[]).await?;
    let raw = export + raw_bulk;
    println!("orders: {orders}");
    println!(
        "psql \\copy export:        {:>8.2} s  ({:.0} rows/s)",
        secs(export),
        orders as f64 / secs(export)
    );
    println!(
        "raw _bulk load:           {:>8.2} s  ({:.0} docs/s)",
        secs(raw_bulk),
        orders as f64 / secs(raw_bulk)
    );
    measured("recon reindex", orders, (reindex, rss_kib, code), raw);

    // 4. The same with --parallel P (the previous generation is deleted by --keep 0 each time, so the
    //    emulator holds at most two copies).
    let p = parallel.to_string();
    let run = reindex_measured(&config, &["--parallel", &p, "--keep", "0"]).await?;
    measured(&format!("recon reindex --parallel {parallel}"), orders, run, raw);

    // 5. Serial again with the gate that reads the projection a second time, for comparison.
    let run = reindex_measured(&config, &["--verify", "full", "--keep", "0"]).await?;
    measured("recon reindex --verify full", orders, run, raw);
    emulator.shutdown().await;
    drop(conn);
    tokio::task::spawn_blocking(move || cluster.stop()).await??;
    Ok(())
}

/// The projection as `_bulk` bodies of 1,000 `index` actions each (what recon's load sends).
async fn encode(pg_url: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let source = PostgresSource::connect(PostgresSettings::new(pg_url, shop::projection_query(), "orderId")).await?;
    let mut docs = source.open_scan(KeyRange::all()).await?.docs;
    let mut bodies = Vec::new();
    let mut body = Vec::with_capacity(1 << 20);
    let mut n = 0;
    while let Some(KeyedDoc { key, doc, .. }) = docs.try_next().await? {
        bulk_index(&mut body, "raw", &key.doc_id(), &doc)?;
        n += 1;
        if n == 1000 {
            bodies.push(std::mem::replace(&mut body, Vec::with_capacity(1 << 20)));
            n = 0;
        }
    }
    if !body.is_empty() {
        bodies.push(body);
    }
    Ok(bodies)
}

fn write_config(dir: &std::path::Path, pg_url: &str, es_url: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("recon.toml");
    std::fs::write(
        &path,
        format!(
            "[postgres]\nurl = \"{pg_url}\"\nquery = '''{}'''\nkey = \"orderId\"\nupdated_at = \"updatedAt\"\n\
             [elasticsearch]\nurl = \"{es_url}\"\nindex = \"orders\"\n[compare]\nignore = [\"updatedAt\"]\n\
             [compare.fields]\nproducts = {{ as = \"set\", key = \"sku\" }}\n",
            shop::projection_query()
        ),
    )?;
    Ok(path)
}

/// `recon reindex --yes` with `config` and `extra` flags as a separate process: wall time, peak RSS
/// (recon's own VmHWM, see benches/check.rs), exit code.
async fn reindex_measured(config: &std::path::Path, extra: &[&str]) -> anyhow::Result<(Duration, i64, i32)> {
    let binary = env!("CARGO_BIN_EXE_recon");
    let mut args: Vec<String> = ["reindex", "--yes", "--format", "json", "--config"]
        .map(String::from)
        .to_vec();
    args.push(config.to_str().context("utf-8 path")?.to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        let rss_file = tempfile::NamedTempFile::new()?;
        let clock = Instant::now();
        let out = Command::new(binary)
            .args(&args)
            .env("RECON_PEAK_RSS_FILE", rss_file.path())
            .stdin(std::process::Stdio::null())
            .output()?;
        let elapsed = clock.elapsed();
        eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
        // recon's own account of its stages (load time, each pass), for docs/performance.md.
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr
            .lines()
            .filter(|l| !out.status.success() || !l.starts_with("plan") && !l.starts_with("  "))
        {
            eprintln!("  {line}");
        }
        anyhow::Ok((elapsed, peak_rss_kib(rss_file.path())?, out.status.code().unwrap_or(-1)))
    })
    .await?
}

/// Prints one reindex run (wall time, peak RSS, exit code) and its ratio to export + bulk.
fn measured(what: &str, orders: u64, (took, rss_kib, code): (Duration, i64, i32), raw: Duration) {
    println!(
        "{what}: {:.2} s  ({:.0} docs/s), exit {code}, peak RSS {:.1} MB",
        secs(took),
        orders as f64 / secs(took),
        rss_kib as f64 / 1024.0
    );
    println!(
        "  {what} / (export + bulk): {:.2}   (target <= 1.3)",
        secs(took) / secs(raw)
    );
}
