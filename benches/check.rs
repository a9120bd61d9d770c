//! `cargo bench --bench check [-- --orders N]`: how fast is `recon check` against the raw exports?
//!
//! Generates N orders (default 1,000,000) in a throwaway PostgreSQL, projects them into the emulator,
//! then times, in one run: the projection query exported alone (`psql \copy (…) to /dev/null`), the
//! index scanned alone (PIT + search_after, the same pages recon reads), and `recon check` itself as a
//! separate process, which writes its own peak RSS (VmHWM) to a file at exit: wait4's ru_maxrss would
//! report the bench's own (the emulator's) through fork. Prints the figures; docs/performance.md
//! records them.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use elasticsearch::http::Method;
use futures::TryStreamExt;
use serde_json::json;

use recon::emulator::{Emulator, EmulatorConfig};
use recon::model::KeyedDoc;
use recon::pgcluster::PgCluster;
use recon::shop;
use recon::source::elasticsearch::{ConnectSettings, ElasticsearchSettings, ElasticsearchSource, EsClient};
use recon::source::postgres::{PostgresSettings, PostgresSource};
use recon::source::{DocumentSource, KeyRange};

fn main() -> anyhow::Result<()> {
    let mut orders: u64 = 1_000_000;
    let mut hold = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--orders" => orders = args.next().context("--orders N")?.parse()?,
            // Keep both servers up after loading, for profiling `recon check` by hand.
            "--hold" => hold = true,
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(orders, hold))
}

async fn bench(orders: u64, hold: bool) -> anyhow::Result<()> {
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await??;
    let pg_url = cluster.create_database("bench")?;
    let clock = Instant::now();
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&pg_url).await?;
    sqlx::raw_sql(shop::schema_sql()).execute(&mut conn).await?;
    sqlx::raw_sql(&shop::seed_sql(orders, 7)).execute(&mut conn).await?;
    eprintln!("seeded {orders} orders in {:.1?}", clock.elapsed());

    let emulator = Emulator::start("127.0.0.1:0", EmulatorConfig::default()).await?;
    let es = EsClient::connect(&connect(&emulator.url())).await?;
    es.request_ok(
        Method::Put,
        "/orders",
        &[],
        Some(&json!({"settings": {"number_of_shards": 1, "refresh_interval": "-1"},
                     "mappings": {"properties": {"orderId": {"type": "long"}}}})),
    )
    .await?;
    let clock = Instant::now();
    let loaded = load(&pg_url, &es).await?;
    es.request_ok(Method::Post, "/orders/_refresh", &[], None).await?;
    eprintln!(
        "projected {loaded} documents into the emulator in {:.1?}",
        clock.elapsed()
    );

    // 1. The projection query alone, as psql exports it.
    let psql = which_psql();
    let copy = format!("\\copy ({}) to /dev/null", shop::projection_query().replace('\n', " "));
    let clock = Instant::now();
    let status = Command::new(&psql)
        .args(["-X", "-q", "-d", &pg_url, "-c", &copy])
        .status()?;
    let pg_export = clock.elapsed();
    if !status.success() {
        bail!("psql \\copy failed");
    }

    // 2. The index alone, through the same PIT + search_after pages recon reads.
    let source = ElasticsearchSource::connect(ElasticsearchSettings {
        connect: connect(&emulator.url()),
        index: "orders".into(),
        key_field: "orderId".into(),
        page_size: 1000,
        keep_alive: "5m".into(),
        source_includes: Some(
            ["orderId", "customerName", "products", "totalPrice", "orderDate"]
                .map(String::from)
                .to_vec(),
        ),
        source_excludes: Vec::new(),
        prefetch_pages: 2,
    })
    .await?;
    let clock = Instant::now();
    let scanned = source
        .open_scan(KeyRange::all())
        .await?
        .docs
        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
        .await?;
    let es_scan = clock.elapsed();

    // 3. recon check, as users run it.
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("recon.toml");
    std::fs::write(
        &config,
        format!(
            "[postgres]\nurl = \"{pg_url}\"\nquery = '''{}'''\nkey = \"orderId\"\nupdated_at = \"updatedAt\"\n\
             [elasticsearch]\nurl = \"{}\"\nindex = \"orders\"\n[compare]\nignore = [\"updatedAt\"]\n",
            shop::projection_query(),
            emulator.url()
        ),
    )?;
    if hold {
        eprintln!(
            "holding: recon check --config {} (press Enter to stop)",
            config.display()
        );
        let mut line = String::new();
        tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await??;
    }
    let binary = env!("CARGO_BIN_EXE_recon");
    let (check, rss_kib, code) = tokio::task::spawn_blocking(move || {
        run_measured(Command::new(binary).args([
            "check",
            "--quiet",
            "--format",
            "json",
            "--output",
            "/dev/null",
            "--config",
            config.to_str().expect("utf-8 path"),
        ]))
    })
    .await??;

    let slower = pg_export.max(es_scan);
    println!("orders: {orders}, documents scanned alone: {scanned}");
    println!(
        "psql \\copy export:        {:>8.2} s  ({:.0} rows/s)",
        secs(pg_export),
        orders as f64 / secs(pg_export)
    );
    println!(
        "index scan (PIT pages):   {:>8.2} s  ({:.0} docs/s)",
        secs(es_scan),
        scanned as f64 / secs(es_scan)
    );
    println!(
        "recon check:              {:>8.2} s  ({:.0} keys/s), exit {code}",
        secs(check),
        orders as f64 / secs(check)
    );
    println!(
        "check / slower export:    {:>8.2}   (target <= 1.25)",
        secs(check) / secs(slower)
    );
    println!(
        "recon check peak RSS:     {:>8.1} MB (target <= 128)",
        rss_kib as f64 / 1024.0
    );
    emulator.shutdown().await;
    drop(conn);
    tokio::task::spawn_blocking(move || cluster.stop()).await??;
    Ok(())
}

fn connect(url: &str) -> ConnectSettings {
    ConnectSettings {
        timeout: Duration::from_secs(120),
        ..ConnectSettings::new(url)
    }
}

/// Plays the projector: every row of the projection query becomes a document.
async fn load(pg_url: &str, es: &EsClient) -> anyhow::Result<u64> {
    let source = PostgresSource::connect(PostgresSettings::new(pg_url, shop::projection_query(), "orderId")).await?;
    let mut docs = source.open_scan(KeyRange::all()).await?.docs;
    let mut body = Vec::with_capacity(8 << 20);
    let mut count = 0;
    while let Some(KeyedDoc { key, doc, .. }) = docs.try_next().await? {
        body.extend_from_slice(
            json!({"index": {"_index": "orders", "_id": key.doc_id()}})
                .to_string()
                .as_bytes(),
        );
        body.push(b'\n');
        body.extend_from_slice(serde_json::to_string(&doc)?.as_bytes());
        body.push(b'\n');
        count += 1;
        if body.len() >= 5 << 20 {
            bulk(es, std::mem::replace(&mut body, Vec::with_capacity(8 << 20))).await?;
        }
    }
    bulk(es, body).await?;
    Ok(count)
}

async fn bulk(es: &EsClient, body: Vec<u8>) -> anyhow::Result<()> {
    if body.is_empty() {
        return Ok(());
    }
    let answer = es.request_bytes(Method::Post, "/_bulk", &[], Some(body)).await?;
    if answer.body["errors"].as_bool() != Some(false) {
        bail!(
            "bulk load failed: {}",
            answer.body.to_string().chars().take(500).collect::<String>()
        );
    }
    Ok(())
}

/// Runs a command to its end; returns its wall time, peak RSS in KiB and exit code. The peak comes from
/// the child itself (`RECON_PEAK_RSS_FILE`, VmHWM after exec): wait4's ru_maxrss would report this bench
/// process's own peak, which a child inherits through fork and exec.
fn run_measured(command: &mut Command) -> anyhow::Result<(Duration, i64, i32)> {
    let rss_file = tempfile::NamedTempFile::new()?;
    let clock = Instant::now();
    let status = command.env("RECON_PEAK_RSS_FILE", rss_file.path()).status()?;
    let elapsed = clock.elapsed();
    let rss_kib = std::fs::read_to_string(rss_file.path())?
        .trim()
        .parse()
        .context("peak RSS file")?;
    Ok((elapsed, rss_kib, status.code().unwrap_or(-1)))
}

fn which_psql() -> String {
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin/psql"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "psql".into())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
