//! One run's worth of drift covering every kind and the awkward values a report must survive.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use super::{writer, Format, ReportOptions, RunInfo};
use crate::model::{Drift, DriftKind, FieldDiff, Key, Summary};

pub(super) fn run() -> RunInfo {
    RunInfo {
        name: "orders".into(),
        started_at: Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap(),
        duration: Duration::from_millis(83_250),
        source: "postgres://db.internal:5432/shop (orders)".into(),
        target: "http://es.internal:9200/orders".into(),
        snapshot_ms: Some(1_795_831_200_000),
        grace: Some(Duration::from_secs(300)),
        limit: None,
        allow: 0,
        tool_version: "0.1.0",
        scale: super::ScaleInfo::default(),
    }
}

fn diff(path: &str, field: &str, expected: Option<Value>, actual: Option<Value>) -> FieldDiff {
    FieldDiff {
        path: path.into(),
        field: field.into(),
        expected,
        actual,
    }
}

fn drifted(key: Key, kind: DriftKind, ids: &[&str], diffs: Vec<FieldDiff>) -> Drift {
    Drift {
        key,
        kind,
        cause: None,
        ids: ids.iter().map(|id| id.to_string()).collect(),
        diffs,
        expected: None,
        actual: vec![],
    }
}

/// Drift in key order, as the check would emit it.
pub(super) fn drift() -> Vec<Drift> {
    let exact_price: Value = serde_json::from_str("50.10").unwrap();
    let mut pending = drifted(
        Key::Int(1004),
        DriftKind::Pending,
        &["1004"],
        vec![diff("totalPrice", "totalPrice", Some(json!(120)), Some(json!(100)))],
    );
    pending.cause = Some(DriftKind::Mismatched);
    vec![
        drifted(
            Key::Int(1001),
            DriftKind::Mismatched,
            &["1001"],
            vec![
                diff(
                    "products[sku=SKU-00001].price",
                    "products.price",
                    Some(exact_price),
                    Some(json!(55)),
                ),
                diff(
                    "customerName",
                    "customerName",
                    Some(json!("Zoë <O'Brien> & \"Sons\"\u{1}|`x`")),
                    Some(Value::Null),
                ),
                diff("products[2].name", "products.name", Some(json!("Widget")), None),
            ],
        ),
        drifted(Key::Int(1002), DriftKind::Missing, &[], vec![]),
        drifted(
            Key::Int(1003),
            DriftKind::Duplicate,
            &["1003", "1003-copy"],
            vec![diff(
                "orderDate",
                "orderDate",
                Some(json!("2026-11-01")),
                Some(json!("2026-11-02")),
            )],
        ),
        pending,
        drifted(
            Key::Int(9007199254740993),
            DriftKind::Orphaned,
            &["9007199254740993"],
            vec![],
        ),
        drifted(
            Key::Text("ORD-\u{1b}[31m\n<&>\"".into()),
            DriftKind::Mismatched,
            &["ORD-\u{1b}[31m\n<&>\""],
            vec![diff(
                "products[sku=a|b\\c\n].name",
                "products.name",
                Some(json!("x".repeat(200))),
                Some(json!({"nested": [1, 2, 3]})),
            )],
        ),
    ]
}

pub(super) fn summary() -> Summary {
    Summary {
        source_rows: 1_000_000,
        target_docs: 999_999,
        matched: 999_994,
        missing: 1,
        orphaned: 1,
        mismatched: 2,
        duplicate: 1,
        pending: 1,
        converged: 0,
        unkeyed: 0,
    }
}

/// The counts and run of a resumed check (two snapshots) with `--recheck 30s` in which 3 keys
/// converged (they are counted in `matched` too).
pub(super) fn rechecked() -> (Summary, RunInfo) {
    let summary = Summary {
        matched: 999_994,
        converged: 3,
        ..summary()
    };
    let mut run = run();
    run.scale.recheck = Some(Duration::from_secs(30));
    run.scale.snapshots = 2;
    (summary, run)
}

pub(super) fn fields() -> BTreeMap<String, u64> {
    BTreeMap::from([
        ("customerName".to_string(), 1),
        ("orderDate".to_string(), 1),
        ("products.name".to_string(), 2),
        ("products.price".to_string(), 1),
        ("totalPrice".to_string(), 0),
    ])
}

/// Renders `drift` with `options` into a string, the way `recon check` drives a writer.
pub(super) fn render(options: ReportOptions, drift: &[Drift], summary: &Summary, run: &RunInfo) -> String {
    render_with(options, drift, summary, &fields(), run)
}

pub(super) fn render_with(
    options: ReportOptions,
    drift: &[Drift],
    summary: &Summary,
    fields: &BTreeMap<String, u64>,
    run: &RunInfo,
) -> String {
    let out = SharedBuffer::default();
    let mut report = writer(options, Box::new(out.clone()));
    for d in drift {
        report.drift(d).unwrap();
    }
    report.finish(summary, fields, run).unwrap();
    out.text()
}

pub(super) fn render_all(format: Format) -> String {
    render(ReportOptions::new(format), &drift(), &summary(), &run())
}

/// A `Write` that the test keeps a handle on while the writer owns the other.
#[derive(Clone, Default)]
pub(super) struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    pub(super) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("reports are UTF-8")
    }
}

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
