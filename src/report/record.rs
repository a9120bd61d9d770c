//! The `recon.check/v2` JSON shapes shared by json, ndjson and the spool: a drift record, the summary
//! header and the run object.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use super::{Listing, RunInfo, SCHEMA};
use crate::model::{Drift, DriftKind, Summary};

/// A drift record as written: borrowed from the [`Drift`], compact (no documents; ids say enough).
#[derive(Serialize)]
pub(super) struct DriftOut<'a> {
    key: Value,
    kind: DriftKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<DriftKind>,
    ids: &'a [String],
    diffs: Vec<DiffOut<'a>>,
}

#[derive(Serialize)]
struct DiffOut<'a> {
    path: &'a str,
    // `Some(Value::Null)` serializes as null, `None` (field absent on that side) is left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actual: Option<&'a Value>,
}

impl<'a> DriftOut<'a> {
    pub(super) fn new(drift: &'a Drift) -> Self {
        DriftOut {
            key: drift.key_json(),
            kind: drift.kind,
            cause: drift.cause,
            ids: &drift.ids,
            diffs: drift
                .diffs
                .iter()
                .map(|diff| DiffOut {
                    path: &diff.path,
                    expected: diff.expected.as_ref(),
                    actual: diff.actual.as_ref(),
                })
                .collect(),
        }
    }
}

/// A drift record read back from the spool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(super) struct DriftIn {
    pub key: Value,
    pub kind: DriftKind,
    #[serde(default)]
    pub cause: Option<DriftKind>,
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub diffs: Vec<DiffIn>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(super) struct DiffIn {
    pub path: String,
    #[serde(default, deserialize_with = "present")]
    pub expected: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub actual: Option<Value>,
}

/// A member that is there is `Some`, even when it is null; only an absent member (serde's `default`)
/// is `None`. Plain `Option<Value>` would turn null into "absent".
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

pub(super) fn verdict(summary: &Summary, run: &RunInfo) -> &'static str {
    if run.in_sync(summary) {
        "in_sync"
    } else {
        "drift"
    }
}

pub(super) fn run_object(run: &RunInfo) -> Value {
    json!({
        "name": run.name,
        "started_at": run.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "duration_ms": duration_ms(run.duration),
        "source": run.source,
        "target": run.target,
        "snapshot_ms": run.snapshot_ms,
        "grace_ms": run.grace.map(duration_ms),
        "limit": run.limit,
        "allow": run.allow,
        "tool_version": run.tool_version,
        "recheck_ms": run.scale.recheck.map(duration_ms),
        "snapshots": run.scale.snapshots,
        "parallel": run.scale.parallel,
        "targeted": run.scale.targeted.as_ref().map(|t| match t {
            super::Targeted::Keys(keys) => json!({"keys": keys}),
            super::Targeted::Since { since_ms, keys } => json!({"since_ms": since_ms, "keys": keys}),
        }),
        "shard": run.scale.shard.as_ref().map(|s| json!({
            "index": s.index,
            "count": s.count,
            "after": s.after.as_ref().map(crate::model::Key::to_json),
            "until": s.until.as_ref().map(crate::model::Key::to_json),
        })),
        "sample": run.scale.sample.as_ref().map(|s| json!({
            "fraction": s.fraction,
            "seed": s.seed,
            "ranges": s.ranges,
            "of_ranges": s.of_ranges,
            "rows_fraction": s.rows_fraction,
            "estimated_failing": s.estimated_failing,
        })),
    })
}

fn duration_ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The members of a report that come before the drift list, in document order.
pub(super) fn header(
    summary: &Summary,
    fields: &BTreeMap<String, u64>,
    run: &RunInfo,
    listing: &Listing,
) -> Map<String, Value> {
    let mut header = Map::new();
    header.insert("schema".into(), SCHEMA.into());
    header.insert("verdict".into(), verdict(summary, run).into());
    header.insert("failing".into(), summary.failing().into());
    header.insert(
        "summary".into(),
        serde_json::to_value(summary).expect("Summary serializes"),
    );
    header.insert("fields".into(), fields_object(fields));
    header.insert("run".into(), run_object(run));
    header.insert("listed".into(), listing.listed.into());
    header.insert("truncated".into(), listing.truncated().into());
    header
}

fn fields_object(fields: &BTreeMap<String, u64>) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|(field, count)| (field.clone(), Value::from(*count)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FieldDiff, Key};

    fn mismatch(expected: Option<Value>, actual: Option<Value>) -> Drift {
        Drift {
            key: Key::Int(9007199254740993),
            kind: DriftKind::Mismatched,
            cause: None,
            ids: vec!["9007199254740993".into()],
            diffs: vec![FieldDiff {
                path: "customerName".into(),
                field: "customerName".into(),
                expected,
                actual,
            }],
            expected: None,
            actual: vec![],
        }
    }

    #[test]
    fn absent_values_are_omitted_and_null_stays_null_both_ways() {
        let drift = mismatch(None, Some(Value::Null));
        let line = serde_json::to_string(&DriftOut::new(&drift)).unwrap();
        assert_eq!(
            line,
            r#"{"key":9007199254740993,"kind":"mismatched","ids":["9007199254740993"],"diffs":[{"path":"customerName","actual":null}]}"#
        );
        let back: DriftIn = serde_json::from_str(&line).unwrap();
        assert_eq!(back.diffs[0].expected, None);
        assert_eq!(back.diffs[0].actual, Some(Value::Null));
        assert_eq!(back.key.to_string(), "9007199254740993");
    }

    #[test]
    fn numbers_keep_their_exact_digits() {
        let price: Value = serde_json::from_str("50.10").unwrap();
        let drift = mismatch(Some(price), Some(json!(12345678901234567890u64)));
        let line = serde_json::to_string(&DriftOut::new(&drift)).unwrap();
        assert!(
            line.contains(r#""expected":50.10,"actual":12345678901234567890"#),
            "{line}"
        );
    }

    #[test]
    fn pending_drift_names_its_cause() {
        let mut drift = mismatch(Some(json!(1)), Some(json!(2)));
        drift.kind = DriftKind::Pending;
        drift.cause = Some(DriftKind::Mismatched);
        let value = serde_json::to_value(DriftOut::new(&drift)).unwrap();
        assert_eq!(value["kind"], "pending");
        assert_eq!(value["cause"], "mismatched");
    }
}
