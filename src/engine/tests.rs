//! The engine's scan plans against in-memory sides: every plan, fault and capability in milliseconds,
//! with no server. That these pass through `dyn WriteModel`/`dyn ReadModel` alone is the proof that
//! the traits are enough.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{scan, ScanScope, Scanned, Sides};
use crate::diff::Comparator;
use crate::model::{DocMeta, Drift, DriftKind, Key, KeyKind, KeyedDoc, Summary};
use crate::progress::ProgressMode;
use crate::scale::keyfile::KeyFile;
use crate::source::memory::{Faults, MemorySource};
use crate::source::KeyRange;

const COLUMNS: [&str; 2] = ["id", "name"];

fn doc(key: i64, id: Option<&str>, name: &str) -> KeyedDoc {
    let Value::Object(doc) = json!({"id": key, "name": name}) else {
        unreachable!()
    };
    KeyedDoc {
        key: Key::Int(key),
        doc: doc.into(),
        meta: DocMeta {
            id: id.map(str::to_string),
            ..DocMeta::default()
        },
    }
}

/// Rows 1..=12 named `n{k}`.
fn rows() -> Vec<KeyedDoc> {
    (1..=12).map(|k| doc(k, None, &format!("n{k}"))).collect()
}

/// The read model in sync with [`rows`].
fn in_sync() -> Vec<KeyedDoc> {
    (1..=12)
        .map(|k| doc(k, Some(&k.to_string()), &format!("n{k}")))
        .collect()
}

/// One drift of each kind: 3 missing, 5 mismatched, 7 duplicated, 20 orphaned.
fn drifted() -> Vec<KeyedDoc> {
    let mut docs: Vec<KeyedDoc> = in_sync().into_iter().filter(|d| d.key != Key::Int(3)).collect();
    docs.iter_mut()
        .find(|d| d.key == Key::Int(5))
        .unwrap()
        .doc
        .insert("name", "stale");
    docs.push(doc(7, Some("7-copy"), "n7"));
    docs.push(doc(20, Some("20"), "ghost"));
    docs
}

fn sides(write_model: MemorySource, read_model: MemorySource) -> Sides {
    Sides {
        write_model: Box::new(write_model),
        read_model: Box::new(read_model),
    }
}

fn memory(docs: Vec<KeyedDoc>) -> MemorySource {
    MemorySource::new("test", KeyKind::Int, &COLUMNS, docs)
}

fn scope() -> ScanScope {
    ScanScope::serial(KeyRange::all(), None, ProgressMode::Off)
}

async fn run(sides: &Sides, scope: &ScanScope) -> anyhow::Result<(Scanned, Vec<Drift>)> {
    let comparator = Comparator::new(&serde_json::from_value(json!({})).unwrap()).unwrap();
    let mut found = Vec::new();
    let scanned = scan(sides, comparator, scope, |d| {
        found.push(d.clone());
        Ok(())
    })
    .await?;
    Ok((scanned, found))
}

fn kinds(drift: &[Drift]) -> Vec<(Key, DriftKind)> {
    drift.iter().map(|d| (d.key.clone(), d.kind)).collect()
}

fn every_kind() -> Vec<(Key, DriftKind)> {
    vec![
        (Key::Int(3), DriftKind::Missing),
        (Key::Int(5), DriftKind::Mismatched),
        (Key::Int(7), DriftKind::Duplicate),
        (Key::Int(20), DriftKind::Orphaned),
    ]
}

#[tokio::test]
async fn a_serial_scan_finds_every_kind_in_key_order() {
    let (scanned, drift) = run(&sides(memory(rows()), memory(drifted())), &scope()).await.unwrap();
    assert_eq!(kinds(&drift), every_kind());
    assert_eq!(
        scanned.summary,
        Summary {
            source_rows: 12,
            target_docs: 13,
            matched: 9,
            missing: 1,
            orphaned: 1,
            mismatched: 1,
            duplicate: 1,
            ..Summary::default()
        }
    );
    assert_eq!(drift[1].diffs[0].path, "name");
    assert!(!scanned.interrupted);
}

#[tokio::test]
async fn parallel_ranges_find_what_a_serial_scan_finds_with_or_without_a_shared_view() {
    let serial = run(&sides(memory(rows()), memory(drifted())), &scope()).await.unwrap();
    for read_model in [memory(drifted()), memory(drifted()).without_shared_views()] {
        let mut parallel = scope();
        parallel.parallel = 3;
        let (scanned, drift) = run(&sides(memory(rows()), read_model), &parallel).await.unwrap();
        assert_eq!(kinds(&drift), every_kind());
        assert_eq!(scanned.summary, serial.0.summary);
    }
}

#[tokio::test]
async fn a_targeted_run_reads_only_its_keys() {
    let mut targeted = scope();
    let keys = KeyFile::sort([3, 5, 6].map(|k| Ok(Key::Int(k))).into_iter()).unwrap();
    targeted.keys = Some(Arc::new(keys));
    let read_model = memory(drifted()).with_unkeyed(vec![doc(0, Some("no-key"), "x")]);
    let (scanned, drift) = run(&sides(memory(rows()), read_model), &targeted).await.unwrap();
    assert_eq!(
        kinds(&drift),
        [(Key::Int(3), DriftKind::Missing), (Key::Int(5), DriftKind::Mismatched)],
        "the orphan and the unkeyed document are outside the keys asked for"
    );
    assert_eq!((scanned.summary.source_rows, scanned.summary.target_docs), (3, 2));
}

#[tokio::test]
async fn documents_without_a_key_come_last_and_fail_the_run() {
    let read_model = memory(in_sync()).with_unkeyed(vec![doc(0, Some("no-key"), "x")]);
    let (scanned, drift) = run(&sides(memory(rows()), read_model), &scope()).await.unwrap();
    assert_eq!(drift.len(), 1);
    assert_eq!(
        (drift[0].kind, drift[0].ids.clone()),
        (DriftKind::Unkeyed, vec!["no-key".to_string()])
    );
    assert_eq!(drift[0].key_json(), Value::Null);
    assert_eq!((scanned.summary.unkeyed, scanned.summary.target_docs), (1, 13));
    assert_eq!(scanned.summary.failing(), 1);
}

#[tokio::test]
async fn a_source_lost_mid_scan_stops_the_run() {
    for parallel in [1, 3] {
        let read_model = memory(in_sync()).with_faults(Faults {
            fail_after: Some(4),
            ..Faults::default()
        });
        let mut scope = scope();
        scope.parallel = parallel;
        let e = run(&sides(memory(rows()), read_model), &scope).await.unwrap_err();
        assert!(format!("{e:#}").contains("connection lost"), "{e:#}");
    }
}

#[tokio::test]
async fn a_source_out_of_key_order_stops_the_run() {
    let write_model = memory(rows()).with_faults(Faults {
        out_of_order: true,
        ..Faults::default()
    });
    let e = run(&sides(write_model, memory(in_sync())), &scope()).await.unwrap_err();
    assert!(format!("{e:#}").contains("order"), "{e:#}");
}

#[tokio::test]
async fn a_recheck_keeps_only_what_still_drifts() {
    // By the recheck the projector fixed key 5 and deleted the orphan; 3 is still missing and 7 still
    // duplicated.
    let mut caught_up = drifted();
    caught_up.retain(|d| d.key != Key::Int(20));
    caught_up
        .iter_mut()
        .find(|d| d.key == Key::Int(5))
        .unwrap()
        .doc
        .insert("name", "n5");
    let read_model = memory(drifted()).catching_up_to(caught_up);
    let mut rechecked = scope();
    rechecked.recheck = Some(Duration::ZERO);
    let (scanned, drift) = run(&sides(memory(rows()), read_model), &rechecked).await.unwrap();
    assert_eq!(
        kinds(&drift),
        [(Key::Int(3), DriftKind::Missing), (Key::Int(7), DriftKind::Duplicate)]
    );
    assert_eq!(scanned.summary.converged, 2);
    assert_eq!((scanned.summary.mismatched, scanned.summary.orphaned), (0, 0));
}

#[tokio::test]
async fn a_shard_and_a_sample_cover_their_part_of_the_key_space() {
    let mut shard = scope();
    shard.shard = Some("1/2".parse().unwrap());
    let (first, drift) = run(&sides(memory(rows()), memory(drifted())), &shard).await.unwrap();
    assert_eq!(kinds(&drift), every_kind()[..2].to_vec(), "keys 1..=6");
    shard.shard = Some("2/2".parse().unwrap());
    let (second, drift) = run(&sides(memory(rows()), memory(drifted())), &shard).await.unwrap();
    assert_eq!(
        kinds(&drift),
        every_kind()[2..].to_vec(),
        "keys 7.. and the orphan past the last row"
    );
    assert_eq!(first.summary.source_rows + second.summary.source_rows, 12);

    let mut sample = scope();
    sample.sample = Some((0.5, 7));
    let (scanned, _) = run(&sides(memory(rows()), memory(drifted())), &sample).await.unwrap();
    let info = scanned.sample.unwrap();
    assert!(info.ranges < info.of_ranges, "{info:?}");
    assert!(scanned.summary.source_rows < 12, "{:?}", scanned.summary);
}
