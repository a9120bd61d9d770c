//! `cargo bench --bench repair [-- --orders N] [--runs R]`: is `recon repair` as fast as raw `_bulk`?
//!
//! Generates N orders (default 100,000) in a throwaway PostgreSQL and an empty read model, then times,
//! in one run: the same N projected documents sent as plain `_bulk` creates (batches of 1,000, read
//! from PostgreSQL beforehand, so only the writes are timed), and `recon repair --apply --yes` as a
//! separate process creating all N missing documents (check, re-verification, audit log with fsyncs,
//! conditional bulk writes, refresh and re-check included). Prints the figures; docs/performance.md
//! records them. Target: repair throughput >= 0.8x raw `_bulk`. `--runs R` repeats both measurements R
//! times on fresh indices (the machine is shared: one run says little).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use elasticsearch::http::Method;
use futures::TryStreamExt;
use serde_json::json;

use recon::source::elasticsearch::EsClient;
use recon::source::postgres::{PostgresSettings, PostgresSource};
use recon::source::{DocumentSource, KeyRange};
use recon_es_emulator::{Emulator, EmulatorConfig};
use recon_testkit::pgcluster::PgCluster;
use recon_testkit::shop;

#[path = "support/mod.rs"]
mod support;
use support::{connect, peak_rss_kib, secs};

fn main() -> anyhow::Result<()> {
    let mut orders: u64 = 100_000;
    let mut runs: u32 = 1;
    let mut extra: Vec<String> = Vec::new();
    let mut audit_dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--orders" {
            orders = args.next().context("--orders N")?.parse()?;
        } else if arg == "--runs" {
            runs = args.next().context("--runs R")?.parse()?;
        } else if arg == "--repair-args" {
            // The rest goes to `recon repair` (e.g. --concurrency 1, --batch-size 5000); `cargo bench`
            // appends its own --bench.
            extra = args.by_ref().filter(|a| a != "--bench").collect();
        } else if arg == "--audit-dir" {
            // Where the audit logs go (e.g. /dev/shm, to see what the fsyncs cost).
            audit_dir = Some(PathBuf::from(args.next().context("--audit-dir DIR")?));
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(orders, runs.max(1), &extra, audit_dir))
}

async fn bench(orders: u64, runs: u32, extra: &[String], audit_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await??;
    let pg_url = cluster.create_database("bench")?;
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&pg_url).await?;
    sqlx::raw_sql(shop::schema_sql()).execute(&mut conn).await?;
    sqlx::raw_sql(&shop::seed_sql(orders, 7)).execute(&mut conn).await?;

    let emulator = Emulator::start("127.0.0.1:0", EmulatorConfig::default()).await?;
    let es = EsClient::connect(&connect(&emulator.url())).await?;
    let source = PostgresSource::connect(PostgresSettings::new(&pg_url, shop::projection_query(), "orderId")).await?;
    let docs: Vec<_> = source.open_scan(KeyRange::all()).await?.docs.try_collect().await?;
    for run in 1..=runs {
        if runs > 1 {
            println!("run {run} of {runs}");
        }
        for index in ["raw", "orders"] {
            es.request(Method::Delete, &format!("/{index}"), &[], None).await?;
            es.request_ok(
                Method::Put,
                &format!("/{index}"),
                &[],
                Some(&json!({"settings": {"number_of_shards": 1},
                             "mappings": {"properties": {"orderId": {"type": "long"}}}})),
            )
            .await?;
        }
        let mut extra = extra.to_vec();
        if let Some(dir) = &audit_dir {
            let path = dir.join(format!("recon-bench-audit-{}-{run}.ndjson", std::process::id()));
            let _ = std::fs::remove_file(&path);
            extra.extend(["--audit".to_string(), path.display().to_string()]);
        }
        one_run(orders, &pg_url, &emulator.url(), &es, &docs, &extra).await?;
    }
    emulator.shutdown().await;
    drop(conn);
    tokio::task::spawn_blocking(move || cluster.stop()).await??;
    Ok(())
}

async fn one_run(
    orders: u64,
    pg_url: &str,
    es_url: &str,
    es: &EsClient,
    docs: &[recon::model::KeyedDoc],
    extra: &[String],
) -> anyhow::Result<()> {
    // 1. Raw _bulk: the projected documents, encoded beforehand, sent in batches of 1,000 creates.
    let mut bodies = Vec::new();
    for chunk in docs.chunks(1000) {
        let mut body = Vec::with_capacity(chunk.len() * 400);
        for d in chunk {
            serde_json::to_writer(&mut body, &json!({"create": {"_index": "raw", "_id": d.key.doc_id()}}))?;
            body.push(b'\n');
            serde_json::to_writer(&mut body, &d.doc)?;
            body.push(b'\n');
        }
        bodies.push(body);
    }
    let clock = Instant::now();
    for body in bodies {
        let answer = es
            .request_bytes(Method::Post, "/_bulk", &[("refresh", "false")], Some(body))
            .await?;
        if answer.body["errors"].as_bool() != Some(false) {
            bail!("raw bulk failed");
        }
    }
    let raw = clock.elapsed();

    // 2. recon repair, as users run it: every document is missing.
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("recon.toml");
    std::fs::write(
        &config,
        format!(
            "[postgres]\nurl = \"{pg_url}\"\nquery = '''{}'''\nkey = \"orderId\"\nupdated_at = \"updatedAt\"\n\
             [elasticsearch]\nurl = \"{}\"\nindex = \"orders\"\n[compare]\nignore = [\"updatedAt\"]\n",
            shop::projection_query(),
            es_url
        ),
    )?;
    let binary = env!("CARGO_BIN_EXE_recon");
    let cap = orders.to_string();
    let repair_dir = dir.path().to_path_buf();
    let extra = extra.to_vec();
    // Peak RSS from recon itself: a child inherits this process's high-water mark (the emulator's).
    let rss_file = tempfile::NamedTempFile::new()?;
    let rss_path = rss_file.path().to_path_buf();
    let (repair, output) = tokio::task::spawn_blocking(move || {
        let clock = Instant::now();
        let output = Command::new(binary)
            .current_dir(&repair_dir)
            .args(["repair", "--quiet", "--verbose", "--apply", "--yes", "--format", "json"])
            .args(["--max-changes", &cap, "--config", config.to_str().expect("utf-8 path")])
            .args(&extra)
            .env("RECON_PEAK_RSS_FILE", &rss_path)
            .output();
        (clock.elapsed(), output)
    })
    .await?;
    let output = output?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() != Some(0) {
        bail!(
            "recon repair failed: {stderr}\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    let applied = stderr
        .lines()
        .find_map(|l| l.split_once("recon: debug: applied ").map(|(_, rest)| rest))
        .and_then(|l| l.split(" in ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|s| s.parse::<f64>().ok())
        .context("no apply timing on stderr")?;
    let count = es.request_ok(Method::Get, "/orders/_count", &[], None).await?;

    let n = orders as f64;
    println!("orders: {orders}, documents in the repaired index: {}", count["count"]);
    println!(
        "raw _bulk (creates, 1,000/request):  {:>7.2} s  ({:.0} docs/s)",
        secs(raw),
        n / secs(raw)
    );
    println!(
        "recon repair, apply phase:           {:>7.2} s  ({:.0} docs/s)  ratio {:.2} (target >= 0.8)",
        applied,
        n / applied,
        secs(raw) / applied
    );
    println!(
        "recon repair, whole run:             {:>7.2} s  ({:.0} docs/s)  ratio {:.2}",
        secs(repair),
        n / secs(repair),
        secs(raw) / secs(repair)
    );
    let rss_mb = peak_rss_kib(rss_file.path())? as f64 / 1024.0;
    println!("recon repair, peak RSS:              {rss_mb:>7.1} MB");
    for line in stderr
        .lines()
        .filter(|l| l.starts_with("recon: ") && !l.contains("(from "))
    {
        println!("  {line}");
    }
    Ok(())
}
