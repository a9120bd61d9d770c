//! Planning a repair, pure: one key's documents on both sides in, the conditional writes that bring
//! the read model back to the projection out. No I/O, so every rule is unit-tested here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diff::Comparator;
use crate::document::{Doc, DocValue};
use crate::model::{DriftKind, Key, KeyedDoc, Version};
use crate::source::WriteKind;

/// How a mismatched document is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairMode {
    /// The whole projected document, keeping the `compare.ignore` fields of the current one.
    Replace,
    /// Only the differing top-level fields (`update` with a partial `doc`).
    Patch,
}

/// A document as it was read before the repair touched it: what an undo restores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeforeImage {
    /// Where the document was ([`crate::model::DocMeta::location`]).
    pub location: String,
    pub source: Doc,
    /// Its version then: what the repair's write was conditional on.
    pub version: Version,
    /// Its bytes, when `source` encoded again would not give them back
    /// ([`crate::model::DocMeta::raw`]): what an undo writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl BeforeImage {
    pub fn of(doc: &KeyedDoc, fallback_location: &str) -> Option<BeforeImage> {
        Some(BeforeImage {
            location: doc
                .meta
                .location
                .clone()
                .unwrap_or_else(|| fallback_location.to_string()),
            source: doc.doc.clone(),
            version: doc.meta.version.clone()?,
            raw: doc.meta.raw.clone(),
        })
    }
}

/// One write a repair intends, with the version it is conditional on. The document itself is built
/// when the write is made, from the row read again then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedAction {
    pub seq: u64,
    /// Why: the drift this action repairs.
    pub drift: DriftKind,
    pub action: WriteKind,
    /// The key as JSON (exact digits).
    pub key: Value,
    /// Where the write goes: the document's location, or the configured name for a create.
    pub location: String,
    pub id: String,
    /// The version the write is conditional on (None for a create).
    #[serde(default)]
    pub if_version: Option<Version>,
    /// For a patch: the top-level fields that differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// The document the plan was made against (not kept in the audit's plan lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<BeforeImage>,
    /// Set when this run just read both sides for this key: the write model's row as read then
    /// (None: the key is absent). A plan read back from a file has none, and is re-read first.
    #[serde(skip)]
    pub verified: Option<Verified>,
}

/// The write model's row as the planning lookup read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub row: Option<Row>,
}

/// A row's projected document: decoded, or as the JSON a plan spool keeps (a create writes those
/// bytes as they are; only a replace or patch needs the document decoded).
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Doc(Doc),
    Json(Vec<u8>),
}

impl Row {
    pub fn doc(&self) -> std::borrow::Cow<'_, Doc> {
        match self {
            Row::Doc(doc) => std::borrow::Cow::Borrowed(doc),
            Row::Json(json) => std::borrow::Cow::Owned(serde_json::from_slice(json).unwrap_or_default()),
        }
    }

    pub fn json(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Row::Doc(doc) => std::borrow::Cow::Owned(serde_json::to_vec(doc).expect("a JSON object serializes")),
            Row::Json(json) => std::borrow::Cow::Borrowed(json),
        }
    }
}

impl PlannedAction {
    pub fn key(&self) -> Option<Key> {
        Key::from_json(&self.key)
    }
}

/// What is known while planning.
pub struct PlanContext<'a> {
    pub comparator: &'a Comparator,
    pub mode: RepairMode,
    /// The configured index or alias: where a missing document is created.
    pub write_index: String,
    /// Rows changed at or after this instant (epoch ms) are left to the projector (`--grace`).
    pub pending_since_ms: Option<i64>,
}

/// One key's verdict at planning time.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPlan {
    /// None: the key is in sync.
    pub drift: Option<DriftKind>,
    /// Without `seq` (0); the caller numbers them.
    pub actions: Vec<PlannedAction>,
}

/// Plans one key from its current row (`expected`) and its current documents (`actual`).
pub fn plan_key(key: &Key, expected: Option<&KeyedDoc>, actual: &[KeyedDoc], cx: &PlanContext<'_>) -> KeyPlan {
    let in_sync = KeyPlan {
        drift: None,
        actions: Vec::new(),
    };
    let id = key.doc_id();
    let action = |drift: DriftKind, kind: WriteKind, doc: Option<&KeyedDoc>| PlannedAction {
        seq: 0,
        drift,
        action: kind,
        key: key.to_json(),
        location: doc
            .and_then(|d| d.meta.location.clone())
            .unwrap_or_else(|| cx.write_index.clone()),
        id: doc.and_then(|d| d.meta.id.clone()).unwrap_or_else(|| id.clone()),
        if_version: doc.and_then(|d| d.meta.version.clone()),
        fields: None,
        before: doc.and_then(|d| BeforeImage::of(d, &cx.write_index)),
        verified: Some(Verified {
            row: expected.map(|e| Row::Doc(e.doc.clone())),
        }),
    };
    let Some(expected) = expected else {
        if actual.is_empty() {
            return in_sync;
        }
        return KeyPlan {
            drift: Some(DriftKind::Orphaned),
            actions: actual
                .iter()
                .map(|d| action(DriftKind::Orphaned, WriteKind::Delete, Some(d)))
                .collect(),
        };
    };
    let pending = |drift: DriftKind| {
        let recent = match (cx.pending_since_ms, expected.meta.updated_at_ms) {
            (Some(since), Some(at)) => at >= since,
            _ => false,
        };
        KeyPlan {
            drift: Some(if recent { DriftKind::Pending } else { drift }),
            actions: Vec::new(),
        }
    };
    if actual.is_empty() {
        let mut plan = pending(DriftKind::Missing);
        if plan.drift == Some(DriftKind::Missing) {
            plan.actions.push(action(DriftKind::Missing, WriteKind::Create, None));
        }
        return plan;
    }
    // The document to keep: the one whose _id is the key, or a lone document under another id.
    let keep = actual
        .iter()
        .position(|d| d.meta.id.as_deref() == Some(id.as_str()))
        .or((actual.len() == 1).then_some(0));
    let drift = if actual.len() > 1 {
        DriftKind::Duplicate
    } else {
        DriftKind::Mismatched
    };
    let mut fix = None;
    match keep {
        None => fix = Some(action(drift, WriteKind::Create, None)),
        Some(i) => {
            let current = &actual[i];
            let diffs = cx.comparator.diff(&expected.doc, &current.doc);
            if !diffs.is_empty() {
                let mut a = match cx.mode {
                    RepairMode::Replace => action(drift, WriteKind::Index, Some(current)),
                    RepairMode::Patch => action(drift, WriteKind::Update, Some(current)),
                };
                if cx.mode == RepairMode::Patch {
                    let mut fields: Vec<String> = diffs.iter().map(|d| top_field(&d.path).to_string()).collect();
                    fields.dedup();
                    a.fields = Some(fields);
                }
                fix = Some(a);
            }
        }
    }
    if fix.is_none() && actual.len() == 1 {
        return in_sync;
    }
    let mut plan = pending(drift);
    if plan.drift == Some(DriftKind::Pending) {
        return plan;
    }
    plan.actions.extend(fix);
    for (i, doc) in actual.iter().enumerate() {
        if Some(i) != keep {
            plan.actions
                .push(action(DriftKind::Duplicate, WriteKind::Delete, Some(doc)));
        }
    }
    plan
}

/// The conditional delete of a read-model document without a key (`unkeyed`): no row can ever match
/// it, so it goes the way of an orphan, by `_id`, only if unchanged since it was read. Its key is
/// `null`; its before-image is what an undo restores.
pub fn unkeyed_delete(doc: &KeyedDoc, seq: u64) -> PlannedAction {
    let location = doc.meta.location.clone().unwrap_or_default();
    PlannedAction {
        seq,
        drift: DriftKind::Unkeyed,
        action: WriteKind::Delete,
        key: Value::Null,
        before: BeforeImage::of(doc, &location),
        location,
        id: doc.meta.id.clone().unwrap_or_default(),
        if_version: doc.meta.version.clone(),
        fields: None,
        verified: Some(Verified { row: None }),
    }
}

/// The top-level field of a diff path: `products[sku=A].price` → `products`.
pub fn top_field(path: &str) -> &str {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    &path[..end]
}

/// The document a replace writes: the projection, with the ignored paths taken from the current
/// document (kept when there, left out when not).
pub fn replacement(projection: &Doc, current: &Doc, ignore: &[String]) -> Doc {
    let mut doc = projection.clone();
    for path in ignore {
        let segments: Vec<&str> = path.split('.').collect();
        remove_path(&mut doc, &segments);
        if let Some(value) = get_path(current, &segments) {
            insert_path(&mut doc, &segments, value.clone());
        }
    }
    doc
}

/// The partial document a patch writes: the projection's value of each differing top-level field
/// (`null` for a field the projection no longer has: a partial update cannot remove a field).
pub fn patch(projection: &Doc, fields: &[String]) -> Doc {
    fields
        .iter()
        .map(|f| (f.as_str(), projection.get(f).cloned().unwrap_or(DocValue::Null)))
        .collect()
}

fn get_path<'a>(doc: &'a Doc, path: &[&str]) -> Option<&'a DocValue> {
    let (first, rest) = path.split_first()?;
    let value = doc.get(first)?;
    if rest.is_empty() {
        return Some(value);
    }
    get_path(value.as_object()?, rest)
}

fn remove_path(doc: &mut Doc, path: &[&str]) {
    match path {
        [] => {}
        [last] => {
            doc.remove(last);
        }
        [first, rest @ ..] => {
            if let Some(DocValue::Object(inner)) = doc.get_mut(first) {
                remove_path(inner, rest);
            }
        }
    }
}

fn insert_path(doc: &mut Doc, path: &[&str], value: DocValue) {
    match path {
        [] => {}
        [last] => {
            doc.insert(*last, value);
        }
        [first, rest @ ..] => {
            if !doc.contains_key(first) {
                doc.insert(*first, DocValue::Object(Doc::new()));
            }
            if let Some(DocValue::Object(inner)) = doc.get_mut(first) {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// Counts per (drift, action), for the plan's summary.
pub fn counts(actions: &[PlannedAction]) -> BTreeMap<(DriftKind, WriteKind), u64> {
    let mut counts = BTreeMap::new();
    for a in actions {
        *counts.entry((a.drift, a.action)).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CompareConfig;
    use crate::model::DocMeta;
    use serde_json::json;

    /// A version token as a read model hands it out: opaque here.
    fn v(n: i64) -> Version {
        Version::new(format!("v{n}"))
    }

    fn doc(id: &str, version: i64, body: Value) -> KeyedDoc {
        KeyedDoc {
            key: Key::Int(1),
            doc: body.as_object().unwrap().clone().into(),
            meta: DocMeta {
                id: Some(id.into()),
                location: Some("orders-v1".into()),
                version: Some(v(version)),
                ..DocMeta::default()
            },
        }
    }

    fn row(body: Value) -> KeyedDoc {
        KeyedDoc {
            key: Key::Int(1),
            doc: body.as_object().unwrap().clone().into(),
            meta: DocMeta::default(),
        }
    }

    fn plan(mode: RepairMode, expected: Option<&KeyedDoc>, actual: &[KeyedDoc]) -> KeyPlan {
        let comparator = Comparator::new(&CompareConfig {
            ignore: vec!["indexedAt".into()],
            ..CompareConfig::default()
        })
        .unwrap();
        let cx = PlanContext {
            comparator: &comparator,
            mode,
            write_index: "orders".into(),
            pending_since_ms: None,
        };
        plan_key(&Key::Int(1), expected, actual, &cx)
    }

    #[test]
    fn missing_is_created_through_the_configured_index() {
        let p = plan(RepairMode::Replace, Some(&row(json!({"orderId": 1}))), &[]);
        assert_eq!(p.drift, Some(DriftKind::Missing));
        assert_eq!(p.actions.len(), 1);
        let a = &p.actions[0];
        assert_eq!(
            (a.action, a.location.as_str(), a.id.as_str()),
            (WriteKind::Create, "orders", "1")
        );
        assert_eq!((a.if_version.as_ref(), a.before.as_ref()), (None, None));
    }

    #[test]
    fn orphans_are_deleted_on_the_version_read() {
        let p = plan(RepairMode::Replace, None, &[doc("1", 7, json!({"orderId": 1}))]);
        assert_eq!(p.drift, Some(DriftKind::Orphaned));
        let a = &p.actions[0];
        assert_eq!((a.action, a.if_version.clone()), (WriteKind::Delete, Some(v(7))));
        assert_eq!(a.location, "orders-v1");
        assert_eq!(a.before.as_ref().unwrap().version, v(7));
        assert!(plan(RepairMode::Replace, None, &[]).drift.is_none());
    }

    #[test]
    fn mismatched_is_replaced_or_patched_conditionally() {
        let expected = row(json!({"orderId": 1, "customerName": "Zoë", "products": [{"price": 2}]}));
        let actual = doc(
            "1",
            4,
            json!({"orderId": 1, "customerName": "Zoe", "products": [{"price": 3}], "indexedAt": "x"}),
        );
        let p = plan(RepairMode::Replace, Some(&expected), std::slice::from_ref(&actual));
        assert_eq!(p.drift, Some(DriftKind::Mismatched));
        assert_eq!(
            (p.actions[0].action, p.actions[0].if_version.clone()),
            (WriteKind::Index, Some(v(4)))
        );
        let p = plan(RepairMode::Patch, Some(&expected), std::slice::from_ref(&actual));
        assert_eq!(p.actions[0].action, WriteKind::Update);
        assert_eq!(
            p.actions[0].fields,
            Some(vec!["customerName".to_string(), "products".to_string()])
        );
        // Equal under the rules (the ignored field differs): nothing to do.
        let same = doc(
            "1",
            4,
            json!({"orderId": 1, "customerName": "Zoë", "products": [{"price": 2}]}),
        );
        assert!(plan(RepairMode::Replace, Some(&expected), &[same]).actions.is_empty());
    }

    #[test]
    fn duplicates_keep_the_document_whose_id_is_the_key() {
        let expected = row(json!({"orderId": 1}));
        let p = plan(
            RepairMode::Replace,
            Some(&expected),
            &[
                doc("1-retry", 2, json!({"orderId": 1})),
                doc("1", 3, json!({"orderId": 1})),
            ],
        );
        assert_eq!(p.drift, Some(DriftKind::Duplicate));
        assert_eq!(p.actions.len(), 1);
        assert_eq!(
            (p.actions[0].action, p.actions[0].id.as_str()),
            (WriteKind::Delete, "1-retry")
        );
        // No document under the key's id: create it, delete the others.
        let p = plan(
            RepairMode::Replace,
            Some(&expected),
            &[doc("a", 2, json!({"orderId": 1})), doc("b", 3, json!({"orderId": 1}))],
        );
        let kinds: Vec<(WriteKind, &str)> = p.actions.iter().map(|a| (a.action, a.id.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (WriteKind::Create, "1"),
                (WriteKind::Delete, "a"),
                (WriteKind::Delete, "b")
            ]
        );
    }

    #[test]
    fn recent_rows_are_left_pending() {
        let comparator = Comparator::new(&CompareConfig::default()).unwrap();
        let cx = PlanContext {
            comparator: &comparator,
            mode: RepairMode::Replace,
            write_index: "orders".into(),
            pending_since_ms: Some(1000),
        };
        let mut expected = row(json!({"orderId": 1}));
        expected.meta.updated_at_ms = Some(1500);
        let p = plan_key(&Key::Int(1), Some(&expected), &[], &cx);
        assert_eq!((p.drift, p.actions.len()), (Some(DriftKind::Pending), 0));
    }

    #[test]
    fn a_replacement_keeps_ignored_fields_of_the_current_document() {
        let projection: Doc = json!({"orderId": 1, "updatedAt": "new", "meta": {"a": 1}})
            .as_object()
            .unwrap()
            .clone()
            .into();
        let current: Doc = json!({"orderId": 1, "indexedAt": "t0", "meta": {"a": 0, "seen": 5}})
            .as_object()
            .unwrap()
            .clone()
            .into();
        let doc = replacement(
            &projection,
            &current,
            &["indexedAt".into(), "updatedAt".into(), "meta.seen".into()],
        );
        assert_eq!(
            Value::from(doc),
            json!({"orderId": 1, "meta": {"a": 1, "seen": 5}, "indexedAt": "t0"})
        );
        assert_eq!(top_field("products[sku=A].price"), "products");
        assert_eq!(top_field("customer.name"), "customer");
        assert_eq!(
            Value::from(patch(&projection, &["updatedAt".into(), "gone".into()])),
            json!({"updatedAt": "new", "gone": null})
        );
    }
}
