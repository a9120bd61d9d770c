//! `cargo bench --bench check [-- --orders N] [--parallel P] [--runs R] [--only flat|recheck|rss|hold]`: how
//! fast is `recon check` against the raw exports?
//!
//! Generates N orders (default 1,000,000) in a throwaway PostgreSQL, projects them into the emulator,
//! then times, in one run: the projection query exported alone (`psql \copy (…) to /dev/null`), the
//! index scanned alone (PIT + search_after, the same pages recon reads), and `recon check` itself as a
//! separate process, which reports its own peak RSS (VmHWM) at exit. Then the same with P-fold parallelism (P
//! concurrent `\copy`s of key ranges, P PIT slices, `recon check --parallel P`), the flat projection
//! form serially and in parallel, and `--recheck` over 10,000 drifted keys. Prints the figures;
//! docs/performance.md records them. `--only recheck` runs step 6 alone (and times the drifted keys'
//! lookups alone, with `--keys-file`); `--only rss` runs the serial check alone, for its peak RSS;
//! `--only hold` only seeds and loads, prints the URLs and two configs, and keeps both servers up until
//! stdin closes (for profiling `recon check` by hand). `--only flat` prints the flat form's table (issue 16):
//! psql `\copy` of the flat projection (recon's own ORDER BY), the index scan alone, `recon check` flat
//! serial and `--parallel P`, the JSON form serial, with recon's own CPU (user + sys of the recon
//! process, from `getrusage(RUSAGE_CHILDREN)` around it) per order and its peak RSS; `--runs R` repeats
//! each recon run R times. On a shared machine one binary's figures from different hours do not compare:
//! `--baseline PATH` runs another recon binary (say, a copy of the last commit's) beside each run of this
//! one, alternating, so that both see the same load.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use elasticsearch::http::Method;
use futures::TryStreamExt;
use serde_json::json;

use recon::model::KeyedDoc;
use recon::source::elasticsearch::{ElasticsearchSettings, ElasticsearchSource, EsClient};
use recon::source::postgres::{PostgresSettings, PostgresSource};
use recon::source::{DocumentSource, KeyRange};
use recon_es_emulator::{Emulator, EmulatorConfig};
use recon_testkit::pgcluster::PgCluster;
use recon_testkit::shop;

#[path = "support/mod.rs"]
mod support;
use support::{bulk, bulk_index, connect, peak_rss_kib, psql_export, secs, which_psql};

fn main() -> anyhow::Result<()> {
    let mut orders: u64 = 1_000_000;
    let mut parallel: u64 = 2;
    let mut only: Option<String> = None;
    let mut runs: u64 = 1;
    let mut baseline: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--orders" {
            orders = args.next().context("--orders N")?.parse()?;
        } else if arg == "--parallel" {
            parallel = args.next().context("--parallel P")?.parse()?;
        } else if arg == "--baseline" {
            baseline = Some(args.next().context("--baseline PATH")?);
        } else if arg == "--runs" {
            runs = args.next().context("--runs R")?.parse()?;
        } else if arg == "--only" {
            let part = args.next().context("--only flat|recheck|rss|hold")?;
            if !matches!(part.as_str(), "flat" | "recheck" | "rss" | "hold") {
                bail!(
                    "--only takes flat (the flat form's table), recheck (step 6), rss (the serial check's peak RSS) \
                     or hold (servers only)"
                );
            }
            only = Some(part);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(orders, parallel.max(1), runs.max(1), baseline, only.as_deref()))
}

async fn bench(
    orders: u64,
    parallel: u64,
    runs: u64,
    baseline: Option<String>,
    only: Option<&str>,
) -> anyhow::Result<()> {
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

    let dir = tempfile::tempdir()?;
    let config = write_config(
        dir.path(),
        "recon.toml",
        &pg_url,
        shop::projection_query(),
        &emulator.url(),
    )?;
    let flat_config = write_config(
        dir.path(),
        "flat.toml",
        &pg_url,
        shop::flat_projection_query(),
        &emulator.url(),
    )?;
    let p = parallel.to_string();
    if only == Some("hold") {
        println!("holding: postgres {pg_url}\nholding: elasticsearch {}", emulator.url());
        println!(
            "holding: config {}\nholding: flat config {}",
            config.display(),
            flat_config.display()
        );
        println!("holding until stdin closes");
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await??;
    }
    if only == Some("rss") {
        let run = check_measured(&config, &[]).await?;
        println!(
            "orders: {orders}; recon check (JSON form, serial) {:.2} s, exit {}, peak RSS {:.1} MB",
            secs(run.wall),
            run.code,
            run.rss_mb()
        );
    }
    if only == Some("flat") {
        let bins = Binaries {
            current: env!("CARGO_BIN_EXE_recon").to_string(),
            baseline,
        };
        flat_table(
            orders,
            parallel,
            runs,
            &bins,
            &pg_url,
            &emulator.url(),
            &config,
            &flat_config,
        )
        .await?;
    }
    if only.is_none() {
        // 1. The projection query alone, as psql exports it.
        let pg_export = psql_export(&pg_url, shop::projection_query())?;

        // 2. The index alone, through the same PIT + search_after pages recon reads.
        let es_scan = index_scan(&emulator.url()).await?;

        // 3. recon check, as users run it.
        let run = check_measured(&config, &[]).await?;
        let (check, rss_kib, code) = (run.wall, run.rss_kib, run.code);

        let slower = pg_export.max(es_scan);
        println!("orders: {orders}");
        println!(
            "psql \\copy export:        {:>8.2} s  ({:.0} rows/s)",
            secs(pg_export),
            orders as f64 / secs(pg_export)
        );
        println!(
            "index scan (PIT pages):   {:>8.2} s  ({:.0} docs/s)",
            secs(es_scan),
            orders as f64 / secs(es_scan)
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
            "recon check peak RSS:     {:>8.1} MB (target <= 128), recon's own CPU {:.2} s",
            rss_kib as f64 / 1024.0,
            secs(run.cpu)
        );

        // 4. The same with P-fold parallelism on both sides.
        let pg_export_p = psql_export_ranges(&pg_url, shop::projection_query(), "", orders, parallel)?;
        let clock = Instant::now();
        let sliced = sliced_scan(&es, parallel).await?;
        let es_scan_p = clock.elapsed();
        let run_p = check_measured(&config, &["--parallel", &p]).await?;
        let (check_p, rss_p, code_p) = (run_p.wall, run_p.rss_kib, run_p.code);
        let slower_p = pg_export_p.max(es_scan_p);
        println!(
            "psql \\copy ×{parallel} ranges:     {:>8.2} s  ({:.0} rows/s)",
            secs(pg_export_p),
            orders as f64 / secs(pg_export_p)
        );
        println!(
            "PIT scan ×{parallel} slices:      {:>8.2} s  ({:.0} docs/s, {sliced} docs)",
            secs(es_scan_p),
            sliced as f64 / secs(es_scan_p)
        );
        println!(
            "recon check --parallel {parallel}: {:>8.2} s  ({:.0} keys/s), exit {code_p}, peak RSS {:.1} MB",
            secs(check_p),
            orders as f64 / secs(check_p),
            rss_p as f64 / 1024.0
        );
        println!(
            "parallel check / slower parallel export: {:>5.2} (target <= 1.2)",
            secs(check_p) / secs(slower_p)
        );

        // 5. The flat projection form, serial and parallel.
        let run_flat = check_measured(&flat_config, &[]).await?;
        let run_flat_p = check_measured(&flat_config, &["--parallel", &p]).await?;
        let (flat, flat_p) = (run_flat.wall, run_flat_p.wall);
        println!(
            "recon check, flat form:   {:>8.2} s  ({:.0} docs/s), exit {}, peak RSS {:.1} MB, CPU {:.2} s",
            secs(flat),
            orders as f64 / secs(flat),
            run_flat.code,
            run_flat.rss_mb(),
            secs(run_flat.cpu)
        );
        println!(
            "flat form --parallel {parallel}:   {:>8.2} s  ({:.0} docs/s), exit {}, peak RSS {:.1} MB, CPU {:.2} s",
            secs(flat_p),
            orders as f64 / secs(flat_p),
            run_flat_p.code,
            run_flat_p.rss_mb(),
            secs(run_flat_p.cpu)
        );
        println!(
            "flat / JSON docs/s:       {:>8.2}   (target >= 1.5; parallel: {:.2})",
            secs(check) / secs(flat),
            secs(check_p) / secs(flat_p)
        );
    }

    if only.is_none() || only == Some("recheck") {
        // 6. --recheck over 10,000 drifted keys (order dates moved in the write model).
        let every = (orders / 10_000).max(1);
        sqlx::raw_sql(&format!(
            "UPDATE orders SET order_date = order_date + interval '1 day' WHERE id % {every} = 0"
        ))
        .execute(&mut conn)
        .await?;
        let plain_run = check_measured(&flat_config, &["--parallel", &p]).await?;
        let (plain, code_plain) = (plain_run.wall, plain_run.code);
        // Not quiet: recon's last stderr line says how long the recheck itself took.
        let re_run = check_measured_with(&flat_config, &["--parallel", &p, "--recheck", "1s"], false).await?;
        let (rechecked, rss_re, code_re) = (re_run.wall, re_run.rss_kib, re_run.code);
        println!(
        "drifted keys: {}; check {:.2} s (exit {code_plain}), with --recheck 1s {:.2} s (exit {code_re}, peak RSS {:.1} MB)",
        orders / every,
        secs(plain),
        secs(rechecked),
        rss_re as f64 / 1024.0
    );
        println!(
            "recheck cost beyond the wait: {:>5.2} s (target < 2)",
            secs(rechecked) - secs(plain) - 1.0
        );
        // What the recheck reads, alone: both sides looked up by the drifted keys, 1,000 per request. The
        // difference of two full runs above carries both scans' noise; this does not.
        let keys_file = dir.path().join("drifted.keys");
        let keys: Vec<String> = (1..=orders / every).map(|i| (i * every).to_string()).collect();
        std::fs::write(&keys_file, keys.join("\n"))?;
        let keys_arg = keys_file.to_str().context("utf-8 path")?;
        let keys_run = check_measured(&flat_config, &["--keys-file", keys_arg]).await?;
        let (looked_up, code_keys) = (keys_run.wall, keys_run.code);
        println!(
            "the drifted keys looked up alone (--keys-file): {:.2} s (exit {code_keys})",
            secs(looked_up)
        );
    }
    emulator.shutdown().await;
    drop(conn);
    tokio::task::spawn_blocking(move || cluster.stop()).await??;
    Ok(())
}

fn write_config(
    dir: &std::path::Path,
    name: &str,
    pg_url: &str,
    query: &str,
    es_url: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "[postgres]\nurl = \"{pg_url}\"\nquery = '''{query}'''\nkey = \"orderId\"\nupdated_at = \"updatedAt\"\n\
             [elasticsearch]\nurl = \"{es_url}\"\nindex = \"orders\"\n[compare]\nignore = [\"updatedAt\"]\n\
             [compare.fields]\nproducts = {{ as = \"set\", key = \"sku\" }}\n"
        ),
    )?;
    Ok(path)
}

/// The recon binaries a table compares: this build's, and optionally another one run beside it.
struct Binaries {
    current: String,
    baseline: Option<String>,
}

/// The issue-16 table: the flat form against PostgreSQL's own export of the same rows, in one run.
#[allow(clippy::too_many_arguments)]
async fn flat_table(
    orders: u64,
    parallel: u64,
    runs: u64,
    bins: &Binaries,
    pg_url: &str,
    es_url: &str,
    config: &std::path::Path,
    flat_config: &std::path::Path,
) -> anyhow::Result<()> {
    // The flat projection as recon reads it: ordered by key, then by the child columns.
    let ordered = format!("SELECT * FROM ({}) q {FLAT_ORDER}", shop::flat_projection_query());
    let flat_export = psql_export(pg_url, &ordered)?;
    // What `--parallel P` asks of PostgreSQL: P key ranges of the same ordered query at once.
    let flat_export_p = psql_export_ranges(pg_url, shop::flat_projection_query(), FLAT_ORDER, orders, parallel)?;
    let json_export = psql_export(pg_url, shop::projection_query())?;
    let es_scan = index_scan(es_url).await?;
    let p = parallel.to_string();
    let per_order = |run: &Measured| secs(run.cpu) * 1e6 / orders as f64;
    println!("orders: {orders}");
    println!("| what | wall | recon's own CPU | CPU per order | peak RSS | exit |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| psql `\\copy` of the flat projection (ORDER BY key, children) | {:.2} s | | | | |",
        secs(flat_export)
    );
    println!(
        "| psql `\\copy` of the flat projection, {parallel} key ranges at once | {:.2} s | | | | |",
        secs(flat_export_p)
    );
    println!(
        "| psql `\\copy` of the JSON projection | {:.2} s | | | | |",
        secs(json_export)
    );
    println!("| index scan alone (PIT pages) | {:.2} s | | | | |", secs(es_scan));
    let (mut flat_walls, mut parallel_walls) = (Vec::new(), Vec::new());
    for (what, cfg, extra) in [
        ("`recon check`, flat, serial", flat_config, vec![]),
        (
            "`recon check`, flat, `--parallel`",
            flat_config,
            vec!["--parallel", p.as_str()],
        ),
        ("`recon check`, JSON, serial", config, vec![]),
    ] {
        for _ in 0..runs {
            let run = check_measured_bin(&bins.current, cfg, &extra, true).await?;
            if cfg == flat_config {
                match extra.is_empty() {
                    true => flat_walls.push(secs(run.wall)),
                    false => parallel_walls.push(secs(run.wall)),
                }
            }
            let row = |label: &str, run: &Measured| {
                println!(
                    "| {what}{label} | {:.2} s | {:.2} s | {:.1} µs | {:.1} MB | {} |",
                    secs(run.wall),
                    secs(run.cpu),
                    per_order(run),
                    run.rss_mb(),
                    run.code
                )
            };
            row("", &run);
            if let Some(baseline) = &bins.baseline {
                row(" (baseline)", &check_measured_bin(baseline, cfg, &extra, true).await?);
            }
        }
    }
    let range = |walls: &[f64], export: Duration| {
        let best = walls.iter().cloned().fold(f64::INFINITY, f64::min);
        let worst = walls.iter().cloned().fold(0.0, f64::max);
        format!("{:.2}–{:.2}", best / secs(export), worst / secs(export))
    };
    println!(
        "flat serial / psql \\copy of the flat projection: {} (target <= 1.5)",
        range(&flat_walls, flat_export)
    );
    println!(
        "flat --parallel {parallel} / psql \\copy of {parallel} ranges at once: {}",
        range(&parallel_walls, flat_export_p)
    );
    Ok(())
}

/// The index read alone, through the same PIT + search_after pages recon reads.
async fn index_scan(es_url: &str) -> anyhow::Result<Duration> {
    let source = ElasticsearchSource::connect(ElasticsearchSettings {
        connect: connect(es_url),
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
    source
        .open_scan(KeyRange::all())
        .await?
        .docs
        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
        .await?;
    Ok(clock.elapsed())
}

/// One recon run as measured: wall time, recon's own CPU (user + sys), peak RSS, exit code.
struct Measured {
    wall: Duration,
    cpu: Duration,
    rss_kib: i64,
    code: i32,
}

impl Measured {
    fn rss_mb(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// `recon check` with `config` and `extra` flags as a separate process.
async fn check_measured(config: &std::path::Path, extra: &[&str]) -> anyhow::Result<Measured> {
    check_measured_with(config, extra, true).await
}

/// [`check_measured`], with recon's progress lines on stderr unless `quiet`.
async fn check_measured_with(config: &std::path::Path, extra: &[&str], quiet: bool) -> anyhow::Result<Measured> {
    check_measured_bin(env!("CARGO_BIN_EXE_recon"), config, extra, quiet).await
}

/// [`check_measured_with`] of the recon binary at `binary`.
async fn check_measured_bin(
    binary: &str,
    config: &std::path::Path,
    extra: &[&str],
    quiet: bool,
) -> anyhow::Result<Measured> {
    let binary = binary.to_string();
    // A real file next to the config: --output renames over its target, which must not be a device.
    let output = config.with_extension("report.json");
    let mut args: Vec<String> = ["check", "--format", "json", "--output"].map(String::from).to_vec();
    if quiet {
        args.insert(1, "--quiet".into());
    }
    args.push(output.to_str().context("utf-8 path")?.to_string());
    args.push("--config".into());
    args.push(config.to_str().context("utf-8 path")?.to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || run_measured(&binary, &args)).await?
}

/// recon's `ORDER BY` of the flat projection: the key, then the child columns.
const FLAT_ORDER: &str =
    "ORDER BY \"orderId\", \"products[].sku\" COLLATE \"C\", \"products[].name\" COLLATE \"C\", \"products[].price\"";

/// `query` exported by `parts` concurrent `psql \copy`s of contiguous id ranges, each ordered by
/// `order` (an `ORDER BY` clause, or nothing): the raw way to read the projection in parallel.
fn psql_export_ranges(pg_url: &str, query: &str, order: &str, orders: u64, parts: u64) -> anyhow::Result<Duration> {
    let clock = Instant::now();
    let mut exports = Vec::new();
    for (after, until) in id_ranges(orders, parts) {
        let copy = format!(
            "\\copy (SELECT * FROM ({}) q WHERE \"orderId\" > {after} AND \"orderId\" <= {until} {order}) to /dev/null",
            query.replace('\n', " ")
        );
        exports.push(
            Command::new(which_psql())
                .args(["-X", "-q", "-d", pg_url, "-c", &copy])
                .spawn()?,
        );
    }
    for mut export in exports {
        if !export.wait()?.success() {
            bail!("psql \\copy of a range failed");
        }
    }
    Ok(clock.elapsed())
}

/// `parts` contiguous ranges `(after, until]` of the ids 1..=orders.
fn id_ranges(orders: u64, parts: u64) -> Vec<(u64, u64)> {
    (0..parts)
        .map(|i| (orders * i / parts, orders * (i + 1) / parts))
        .collect()
}

/// The index read by `slices` concurrent PIT slices (the raw way to read an index in parallel).
async fn sliced_scan(es: &EsClient, slices: u64) -> anyhow::Result<u64> {
    let pit = es
        .request_ok(Method::Post, "/orders/_pit", &[("keep_alive", "5m")], None)
        .await?["id"]
        .as_str()
        .context("no PIT id")?
        .to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..slices {
        let es = es.clone();
        let pit = pit.clone();
        tasks.spawn(async move {
            let mut count = 0u64;
            let mut after: Option<serde_json::Value> = None;
            loop {
                let mut body = json!({
                    "size": 1000,
                    "pit": {"id": pit, "keep_alive": "5m"},
                    "sort": [{"orderId": "asc"}],
                    "_source": ["orderId", "customerName", "products", "totalPrice", "orderDate"],
                    "track_total_hits": false,
                });
                if slices > 1 {
                    body["slice"] = json!({"id": id, "max": slices});
                }
                if let Some(a) = after.take() {
                    body["search_after"] = a;
                }
                let answer = es.request_ok(Method::Post, "/_search", &[], Some(&body)).await?;
                let hits = answer["hits"]["hits"].as_array().cloned().unwrap_or_default();
                count += hits.len() as u64;
                if hits.len() < 1000 {
                    return anyhow::Ok(count);
                }
                after = hits.last().map(|h| h["sort"].clone());
            }
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done??;
    }
    let _ = es
        .request(Method::Delete, "/_pit", &[], Some(&json!({"id": pit})))
        .await;
    Ok(total)
}

/// Plays the projector: every row of the projection query becomes a document.
async fn load(pg_url: &str, es: &EsClient) -> anyhow::Result<u64> {
    let source = PostgresSource::connect(PostgresSettings::new(pg_url, shop::projection_query(), "orderId")).await?;
    let mut docs = source.open_scan(KeyRange::all()).await?.docs;
    let mut body = Vec::with_capacity(8 << 20);
    let mut count = 0;
    while let Some(KeyedDoc { key, doc, .. }) = docs.try_next().await? {
        bulk_index(&mut body, "orders", &key.doc_id(), &doc)?;
        count += 1;
        if body.len() >= 5 << 20 {
            bulk(es, std::mem::replace(&mut body, Vec::with_capacity(8 << 20))).await?;
        }
    }
    bulk(es, body).await?;
    Ok(count)
}

/// Runs a program to its end; returns its wall time, its own CPU time, peak RSS in KiB (recon's own,
/// see [`peak_rss_kib`]) and exit code.
fn run_measured(program: &str, args: &[String]) -> anyhow::Result<Measured> {
    let rss_file = tempfile::NamedTempFile::new()?;
    // The CPU of the children waited for in between: only this one (runs are sequential, and the
    // PostgreSQL servers are not the bench's children once started).
    let before = children_cpu();
    let clock = Instant::now();
    let status = Command::new(program)
        .args(args)
        .env("RECON_PEAK_RSS_FILE", rss_file.path())
        .status()?;
    let wall = clock.elapsed();
    let cpu = children_cpu().saturating_sub(before);
    Ok(Measured {
        wall,
        cpu,
        rss_kib: peak_rss_kib(rss_file.path())?,
        code: status.code().unwrap_or(-1),
    })
}

/// User + system time of every child this process has waited for.
fn children_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}
