//! `cargo bench --bench check_redis [-- --orders N]`: how fast is `recon check` against a Redis read
//! model, against the raw exports?
//!
//! Generates N orders (default 200,000) in a throwaway PostgreSQL, projects them into a throwaway
//! redis-server as one JSON string per order (`order:{id}`), then times, in one run: the projection
//! query exported alone (`psql \copy (…) to /dev/null`), a plain `SCAN MATCH` + pipelined `MGET` of
//! every value (what reading Redis costs at the least), and `recon check` itself as a separate process,
//! which reports its own peak RSS (VmHWM) at exit. The target (issue 12): the check within 1.3× the
//! slower export, peak RSS under 128 MB, and flat from 200,000 to 1,000,000 keys (run it again with
//! `--orders 1000000` and compare). docs/performance.md records the figures.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::TryStreamExt;

use recon::model::KeyedDoc;
use recon::source::postgres::{PostgresSettings, PostgresSource};
use recon::source::{DocumentSource, KeyRange};
use recon_testkit::pgcluster::PgCluster;
use recon_testkit::redis_server::RedisServer;
use recon_testkit::shop;

#[path = "support/mod.rs"]
mod support;
use support::{peak_rss_kib, psql_export, secs};

fn main() -> anyhow::Result<()> {
    let mut orders: u64 = 200_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--orders" {
            orders = args.next().context("--orders N")?.parse()?;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(orders))
}

async fn bench(orders: u64) -> anyhow::Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await??;
    let pg_url = cluster.create_database("bench")?;
    let clock = Instant::now();
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&pg_url).await?;
    sqlx::raw_sql(shop::schema_sql()).execute(&mut conn).await?;
    sqlx::raw_sql(&shop::seed_sql(orders, 7)).execute(&mut conn).await?;
    eprintln!("seeded {orders} orders in {:.1?}", clock.elapsed());

    let client = redis::Client::open(redis.url())?;
    let mut redis_conn = client.get_multiplexed_async_connection().await?;
    let clock = Instant::now();
    let loaded = load(&pg_url, &mut redis_conn).await?;
    eprintln!("projected {loaded} values into Redis in {:.1?}", clock.elapsed());

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("recon.toml");
    std::fs::write(
        &config,
        format!(
            "[postgres]\nurl = \"{pg_url}\"\nquery = '''{}'''\nkey = \"orderId\"\nupdated_at = \"updatedAt\"\n\
             [redis]\nurl = \"{}\"\nkey_pattern = \"order:{{}}\"\nencoding = \"json\"\n\
             [compare]\nignore = [\"updatedAt\"]\n[compare.fields]\nproducts = {{ as = \"set\", key = \"sku\" }}\n",
            shop::projection_query(),
            redis.url()
        ),
    )?;

    // 1. The projection query alone, as psql exports it.
    let pg_export = psql_export(&pg_url, shop::projection_query())?;

    // 2. Redis alone: every key listed with SCAN MATCH, every value read with pipelined MGETs of 1,000
    // (what recon reads, without sorting the keys or decoding the values).
    let clock = Instant::now();
    let (keys, bytes) = scan_and_mget(&mut redis_conn).await?;
    let redis_read = clock.elapsed();

    // 3. recon check, as users run it.
    let (check, rss_kib, code) = check_measured(&config).await?;

    let slower = pg_export.max(redis_read);
    println!(
        "orders: {orders}, Redis keys read alone: {keys} ({:.1} MB of values)",
        bytes as f64 / 1e6
    );
    println!(
        "psql \\copy export:        {:>8.2} s  ({:.0} rows/s)",
        secs(pg_export),
        orders as f64 / secs(pg_export)
    );
    println!(
        "SCAN + MGET:              {:>8.2} s  ({:.0} keys/s)",
        secs(redis_read),
        keys as f64 / secs(redis_read)
    );
    println!(
        "recon check:              {:>8.2} s  ({:.0} keys/s), exit {code}",
        secs(check),
        orders as f64 / secs(check)
    );
    println!(
        "check / slower export:    {:>8.2}   (target <= 1.3)",
        secs(check) / secs(slower)
    );
    println!(
        "recon check peak RSS:     {:>8.1} MB (target < 128, flat in the number of keys)",
        rss_kib as f64 / 1024.0
    );

    drop(conn);
    tokio::task::spawn_blocking(move || cluster.stop()).await??;
    redis.stop();
    Ok(())
}

/// Plays the projector: every row of the projection query becomes a JSON string under `order:{id}`.
async fn load(pg_url: &str, redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let source = PostgresSource::connect(PostgresSettings::new(pg_url, shop::projection_query(), "orderId")).await?;
    let mut docs = source.open_scan(KeyRange::all()).await?.docs;
    let mut pipe = redis::pipe();
    let mut pending = 0;
    let mut count = 0;
    while let Some(KeyedDoc { key, mut doc, .. }) = docs.try_next().await? {
        doc.remove("updatedAt");
        pipe.cmd("SET")
            .arg(format!("order:{}", key.doc_id()))
            .arg(serde_json::to_vec(&doc)?)
            .ignore();
        pending += 1;
        count += 1;
        if pending == 5000 {
            let () = std::mem::replace(&mut pipe, redis::pipe()).query_async(redis).await?;
            pending = 0;
        }
    }
    // Redis refuses an empty pipeline ("empty command"): the last batch may have been full.
    if pending > 0 {
        let () = pipe.query_async(redis).await?;
    }
    Ok(count)
}

/// Every key matching `order:*` by SCAN, and every value by MGET in batches of 1,000: keys listed and
/// value bytes read.
async fn scan_and_mget(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<(u64, u64)> {
    let mut cursor: u64 = 0;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(1000);
    let (mut keys, mut bytes) = (0u64, 0u64);
    loop {
        let (next, names): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("order:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        for name in names {
            keys += 1;
            batch.push(name);
            if batch.len() == 1000 {
                bytes += mget(redis, std::mem::take(&mut batch)).await?;
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    if !batch.is_empty() {
        bytes += mget(redis, batch).await?;
    }
    // SCAN may list a key twice: `keys` counts what it listed, as recon's own listing does.
    Ok((keys, bytes))
}

async fn mget(redis: &mut redis::aio::MultiplexedConnection, names: Vec<Vec<u8>>) -> anyhow::Result<u64> {
    let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(names).query_async(redis).await?;
    Ok(values.iter().flatten().map(|v| v.len() as u64).sum())
}

/// `recon check` with `config` as a separate process: wall time, peak RSS, exit code.
async fn check_measured(config: &std::path::Path) -> anyhow::Result<(Duration, i64, i32)> {
    let binary = env!("CARGO_BIN_EXE_recon");
    let output = config.with_extension("report.json");
    let args: Vec<String> = vec![
        "check".into(),
        "--quiet".into(),
        "--format".into(),
        "json".into(),
        "--output".into(),
        output.to_str().context("utf-8 path")?.to_string(),
        "--config".into(),
        config.to_str().context("utf-8 path")?.to_string(),
    ];
    tokio::task::spawn_blocking(move || {
        let rss_file = tempfile::NamedTempFile::new()?;
        let clock = Instant::now();
        let status = Command::new(binary)
            .args(&args)
            .env("RECON_PEAK_RSS_FILE", rss_file.path())
            .status()?;
        let elapsed = clock.elapsed();
        anyhow::Ok((elapsed, peak_rss_kib(rss_file.path())?, status.code().unwrap_or(-1)))
    })
    .await?
}
