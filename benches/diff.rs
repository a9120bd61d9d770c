//! Throughput of the pure diff core: `cargo bench --bench diff`.
//!
//! Plain timing loops (no harness dependency): the numbers are for comparing changes on one machine,
//! not absolute claims.

use std::hint::black_box;
use std::time::Instant;

use futures::stream;
use recon::config::CompareConfig;
use recon::diff::{Comparator, Joiner};
use recon::model::{Doc, DocMeta, DocValue, Key, KeyedDoc};

fn order(id: i64, price_text: &str, date: &str) -> Doc {
    let products: Vec<String> = (0..5)
        .map(|p| format!(r#"{{"sku": "SKU-{id:05}-{p}", "name": "Product {p}", "price": {price_text}}}"#))
        .collect();
    let text = format!(
        r#"{{"orderId": {id}, "customerName": "Customer {id}", "products": [{}], "totalPrice": 1000.50,
            "orderDate": "{date}", "status": "shipped", "indexedAt": "2024-01-01T00:00:00Z"}}"#,
        products.join(",")
    );
    serde_json::from_str(&text).unwrap()
}

fn time<F: FnMut()>(label: &str, iterations: u64, mut f: F) {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let elapsed = start.elapsed();
    let per = elapsed.as_nanos() as f64 / iterations as f64;
    println!("{label:<58} {per:>9.0} ns/iter  ({:.0}/s)", 1e9 / per);
}

fn main() {
    let plain = Comparator::new(&CompareConfig::default()).unwrap();
    let ruled: CompareConfig = toml::from_str(
        r#"ignore = ["indexedAt"]
           [fields.orderDate]
           as = "instant"
           [fields.totalPrice]
           as = "number"
           tolerance = 0.005
           [fields.products]
           as = "set"
           key = "sku""#,
    )
    .unwrap();
    let ruled = Comparator::new(&ruled).unwrap();

    let expected = order(42, "12.50", "2024-01-01T10:00:00Z");
    let same = expected.clone();
    let equivalent = order(42, "12.5", "2024-01-01T11:00:00+01:00");
    let different = order(42, "13.5", "2024-01-02T10:00:00Z");

    let n = 1_000_000;
    time("diff, identical text, default rules", n, || {
        black_box(plain.diff(black_box(&expected), black_box(&same)));
    });
    time("diff, identical text, instant/number/set rules", n, || {
        black_box(ruled.diff(black_box(&expected), black_box(&same)));
    });
    time("diff, equal values written differently, rules", n, || {
        black_box(ruled.diff(black_box(&expected), black_box(&equivalent)));
    });
    time("diff, 6 differences, rules", n, || {
        black_box(ruled.diff(black_box(&expected), black_box(&different)));
    });
    // A wide document, and the same fields in the opposite order on the other side.
    let wide = |reversed: bool| -> Doc {
        let mut fields: Vec<(String, DocValue)> = (0..200)
            .map(|i| (format!("attribute_{i:03}"), DocValue::from(format!("value {i}"))))
            .collect();
        if reversed {
            fields.reverse();
        }
        fields.into_iter().collect()
    };
    let (wide_expected, wide_same, wide_reversed) = (wide(false), wide(false), wide(true));
    time("diff, 200 fields, same order", n / 10, || {
        black_box(plain.diff(black_box(&wide_expected), black_box(&wide_same)));
    });
    time("diff, 200 fields, other side in reverse order", n / 10, || {
        black_box(plain.diff(black_box(&wide_expected), black_box(&wide_reversed)));
    });

    let rows = 1_000_000i64;
    let docs = |id: bool| -> Vec<anyhow::Result<KeyedDoc>> {
        (0..rows)
            .map(|i| {
                let meta = DocMeta {
                    id: id.then(|| i.to_string()),
                    ..DocMeta::default()
                };
                Ok(KeyedDoc {
                    key: Key::Int(i),
                    doc: expected.clone(),
                    meta,
                })
            })
            .collect()
    };
    // Baseline: what freeing the documents alone costs, which the join pays for every key too.
    let (source, target) = (docs(false), docs(true));
    let start = Instant::now();
    drop(black_box((source, target)));
    println!(
        "{:<58} {:>9.0} ns/key",
        "baseline: drop both sides' documents",
        start.elapsed().as_nanos() as f64 / rows as f64
    );

    let (source, target) = (docs(false), docs(true));
    let start = Instant::now();
    let mut joiner = Joiner::new(stream::iter(source), stream::iter(target), ruled.clone(), None);
    futures::executor::block_on(async {
        while let Some(outcome) = joiner.next().await.unwrap() {
            black_box(outcome);
        }
    });
    let elapsed = start.elapsed();
    println!(
        "{:<58} {:>9.0} ns/key    ({:.0} keys/s, matched {})",
        "merge join, 1M matching keys, rules",
        elapsed.as_nanos() as f64 / rows as f64,
        rows as f64 / elapsed.as_secs_f64(),
        joiner.summary().matched
    );
}
