//! Helpers the benchmarks share (each bench is its own binary and includes this module): how they reach
//! the emulator, find psql, load documents and read recon's own peak RSS.

// Not every bench uses every helper.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use elasticsearch::http::Method;
use recon::source::elasticsearch::{ConnectSettings, EsClient, RetryPolicy};

/// Settings for the in-process emulator: no credentials, a generous timeout for large bulk requests.
pub fn connect(url: &str) -> ConnectSettings {
    ConnectSettings {
        url: url.to_string(),
        username: None,
        password: None,
        api_key: None,
        ca_cert: None,
        insecure: false,
        timeout: Duration::from_secs(120),
        retry: RetryPolicy::default(),
    }
}

/// psql of the highest PostgreSQL version installed (Debian layout), else the one on PATH.
pub fn which_psql() -> String {
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

/// How long `psql` takes to export `query` to /dev/null (`\copy`, text format): the projection's
/// raw cost, the figure the benches measure recon against.
pub fn psql_export(pg_url: &str, query: &str) -> anyhow::Result<Duration> {
    let copy = format!("\\copy ({}) to /dev/null", query.replace('\n', " "));
    let clock = std::time::Instant::now();
    let status = std::process::Command::new(which_psql())
        .args(["-X", "-q", "-d", pg_url, "-c", &copy])
        .status()?;
    let took = clock.elapsed();
    if !status.success() {
        bail!("psql \\copy failed");
    }
    Ok(took)
}

/// Appends one `index` action with its document to a `_bulk` body.
pub fn bulk_index(body: &mut Vec<u8>, index: &str, id: &str, doc: &impl serde::Serialize) -> anyhow::Result<()> {
    body.extend_from_slice(
        serde_json::json!({"index": {"_index": index, "_id": id}})
            .to_string()
            .as_bytes(),
    );
    body.push(b'\n');
    serde_json::to_writer(&mut *body, doc)?;
    body.push(b'\n');
    Ok(())
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Sends one `_bulk` body (nothing when empty); any item error fails the bench.
pub async fn bulk(es: &EsClient, body: Vec<u8>) -> anyhow::Result<()> {
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

/// The peak RSS (KiB) recon wrote at exit to the file named by `RECON_PEAK_RSS_FILE`: its own VmHWM,
/// counted from its own exec. wait4's ru_maxrss cannot tell it: a child inherits its parent's
/// high-water mark (here the emulator's index) through fork and exec.
pub fn peak_rss_kib(file: &Path) -> anyhow::Result<i64> {
    std::fs::read_to_string(file)?
        .trim()
        .parse()
        .context("recon wrote no peak RSS")
}
