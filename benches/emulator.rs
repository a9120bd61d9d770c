//! Throughput of the Elasticsearch-API emulator over HTTP: `_bulk` ingest, then a point-in-time scan
//! sorted by a long key with `search_after` pages of 1,000, as recon's check does. Prints docs/s and
//! the process's RSS (VmRSS/VmHWM) before and after. Run with `cargo bench --bench emulator`;
//! `EMULATOR_BENCH_DOCS` overrides the document count (default 200,000).

use std::time::Instant;

use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_TYPE};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use recon_es_emulator::{Emulator, EmulatorConfig};
use serde_json::{json, Value};

const INDEX: &str = "bench-orders";
const BATCH: usize = 5_000;
const PAGE: usize = 1_000;

fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!("VmRSS {} / VmHWM {}", field("VmRSS:"), field("VmHWM:"))
}

/// A denormalized order of roughly 700 bytes.
fn order(i: u64) -> String {
    let products: Vec<Value> = (0..6)
        .map(|p| json!({"name": format!("product-{:05}-{p}-widget-deluxe-edition", (i * 7 + p) % 10_000), "price": format!("{}.{:02}", 10 + (i + p) % 990, (i * 13 + p) % 100)}))
        .collect();
    json!({
        "orderId": 9_007_199_254_740_993u64 + i,
        "orderKey": format!("order-{:010}", i * 7_919 % 1_000_000_007),
        "customerName": format!("Customer {:08} of the bench suite", i * 31 % 100_000_000),
        "products": products,
        "totalPrice": format!("{}.{:02}", 100 + i % 9_000, i % 100),
        "orderDate": format!("2024-{:02}-{:02}T{:02}:{:02}:00Z", 1 + i % 12, 1 + i % 28, i % 24, i % 60),
        "note": "x".repeat(120),
    })
    .to_string()
}

async fn send_raw(client: &Elasticsearch, method: Method, path: &str, body: Option<String>) -> bytes::Bytes {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let response = client
        .send(method, path, headers, None::<&()>, body, None)
        .await
        .expect("request reaches the emulator");
    let status = response.status_code();
    let bytes = response.bytes().await.expect("response body");
    assert!(
        status.is_success(),
        "{path}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    bytes
}

async fn send(client: &Elasticsearch, method: Method, path: &str, body: Option<String>) -> Value {
    serde_json::from_slice(&send_raw(client, method, path, body).await).expect("JSON response")
}

/// What a scanning client needs from a page: every hit's `_source` is read (not kept) and the last
/// hit's sort values become the next `search_after`.
#[derive(serde::Deserialize)]
struct SearchPage {
    took: u64,
    hits: PageHits,
}

#[derive(serde::Deserialize)]
struct PageHits {
    hits: Vec<PageHit>,
}

#[derive(serde::Deserialize)]
struct PageHit {
    #[serde(rename = "_source")]
    _source: serde::de::IgnoredAny,
    sort: Value,
}

#[derive(serde::Deserialize)]
struct BulkSummary {
    took: u64,
    errors: bool,
}

/// Scans the whole index through a point in time sorted by `key`, pages of [`PAGE`].
async fn scan(client: &Elasticsearch, docs: u64, key: &str) {
    let pit = send(client, Method::Post, &format!("/{INDEX}/_pit?keep_alive=5m"), None).await;
    let pit_id = pit["id"].as_str().expect("pit id").to_string();
    let started = Instant::now();
    let mut seen = 0u64;
    let mut took_ms = 0u64;
    let mut after: Option<Value> = None;
    loop {
        let mut body = json!({
            "size": PAGE,
            "pit": {"id": pit_id, "keep_alive": "5m"},
            "sort": [{key: "asc"}],
            "_source": {"includes": ["orderId", "customerName", "products", "totalPrice", "orderDate"]},
            "seq_no_primary_term": true,
            "track_total_hits": false
        });
        if let Some(a) = &after {
            body["search_after"] = a.clone();
        }
        let bytes = send_raw(client, Method::Post, "/_search", Some(body.to_string())).await;
        let page: SearchPage = serde_json::from_slice(&bytes).expect("search response");
        took_ms += page.took;
        let hits = page.hits.hits;
        if hits.is_empty() {
            break;
        }
        seen += hits.len() as u64;
        after = hits.last().map(|h| h.sort.clone());
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(seen, docs);
    println!(
        "PIT scan sorted by {key} (pages of {PAGE}, _source includes, seq_no_primary_term): {:.0} docs/s end to end ({secs:.2} s), {:.0} docs/s inside the emulator (sum of `took`); {}",
        seen as f64 / secs,
        seen as f64 / (took_ms.max(1) as f64 / 1000.0),
        memory()
    );
    send(client, Method::Delete, "/_pit", Some(json!({"id": pit_id}).to_string())).await;
}

fn main() {
    let docs: u64 = std::env::var("EMULATOR_BENCH_DOCS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        println!("start: {}", memory());
        let emulator = Emulator::start("127.0.0.1:0", EmulatorConfig::default()).await.expect("emulator starts");
        let transport = TransportBuilder::new(SingleNodeConnectionPool::new(emulator.url().parse().expect("url")))
            .disable_proxy()
            .build()
            .expect("transport");
        let client = Elasticsearch::new(transport);
        send(
            &client,
            Method::Put,
            &format!("/{INDEX}"),
            Some(
                json!({
                    "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
                    "mappings": {"properties": {
                        "orderId": {"type": "long"}, "orderKey": {"type": "keyword"}, "customerName": {"type": "keyword"},
                        "products": {"properties": {"name": {"type": "keyword"}, "price": {"type": "keyword"}}},
                        "totalPrice": {"type": "keyword"}, "orderDate": {"type": "date"}, "note": {"type": "keyword"}
                    }}
                })
                .to_string(),
            ),
        )
        .await;

        // Each batch is built outside the timed section so the figure is the emulator's ingest rate.
        let mut raw_bytes = 0usize;
        let mut timed = std::time::Duration::ZERO;
        let mut took_ms = 0u64;
        let mut i = 0;
        while i < docs {
            let mut body = String::with_capacity(BATCH * 800);
            for _ in 0..BATCH.min((docs - i) as usize) {
                let src = order(i);
                raw_bytes += src.len();
                body.push_str(&format!("{{\"index\":{{\"_index\":\"{INDEX}\",\"_id\":\"{i}\"}}}}\n"));
                body.push_str(&src);
                body.push('\n');
                i += 1;
            }
            let started = Instant::now();
            let bytes = send_raw(&client, Method::Post, "/_bulk", Some(body)).await;
            let summary: BulkSummary = serde_json::from_slice(&bytes).expect("bulk response");
            timed += started.elapsed();
            took_ms += summary.took;
            assert!(!summary.errors);
        }
        let secs = timed.as_secs_f64();
        println!(
            "{docs} docs, {:.0} bytes of _source per doc, {:.1} MiB of _source in total",
            raw_bytes as f64 / docs as f64,
            raw_bytes as f64 / 1048576.0
        );
        println!(
            "bulk ingest ({BATCH} docs per request): {:.0} docs/s end to end ({secs:.2} s), {:.0} docs/s inside the emulator (sum of `took`); {}",
            docs as f64 / secs,
            docs as f64 / (took_ms.max(1) as f64 / 1000.0),
            memory()
        );
        send(&client, Method::Post, &format!("/{INDEX}/_refresh"), None).await;

        for key in ["orderId", "orderKey"] {
            scan(&client, docs, key).await;
        }
        emulator.shutdown().await;
    });
}
