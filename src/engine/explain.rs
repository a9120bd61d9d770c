//! `recon explain`: the named keys looked up on both sides (the write model in a read-only
//! transaction of its own), judged by the same join and comparator as a check, and laid out side by
//! side ([`crate::diff::Explanation`]).

use std::collections::{BTreeMap, BTreeSet};

use futures::stream;

use super::Sides;
use crate::diff::{compared_duplicate, ActualDoc, Comparator, Explanation, Joiner, Outcome, Verdict};
use crate::document::Doc;
use crate::model::{Key, KeyedDoc};

/// Explains `keys` (any order, repeats allowed), in key order. `compared` are the top-level fields a
/// check compares of a read-model document ([`super::connect::compared_fields`]): the read model is
/// read whole, and judged on those fields only, so the verdict is the one a check gives.
pub async fn explain(
    sides: &Sides,
    comparator: &Comparator,
    compared: &BTreeSet<String>,
    keys: &[Key],
) -> anyhow::Result<Vec<Explanation>> {
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    let (mut expected, mut actual) = tokio::try_join!(sides.write_model.lookup(&keys), sides.read_model.lookup(&keys))?;
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    actual.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.meta.id.cmp(&b.meta.id)));
    let compared_view = |doc: &KeyedDoc| {
        let mut view = doc.clone();
        view.doc.retain(|field, _| compared.contains(field));
        view
    };

    // The verdicts: the join of a check, over exactly these documents.
    let mut joiner = Joiner::new(
        stream::iter(expected.clone().into_iter().map(Ok)),
        stream::iter(actual.iter().map(compared_view).map(Ok).collect::<Vec<_>>()),
        comparator.clone(),
        None,
    );
    let mut verdicts = BTreeMap::new();
    while let Some(outcome) = joiner.next().await? {
        match outcome {
            Outcome::Matched(key) => {
                verdicts.insert(key, (Verdict::InSync, Vec::new()));
            }
            Outcome::Drift(drift) => {
                verdicts.insert(drift.key, (Verdict::Drift(drift.kind), drift.diffs));
            }
        }
    }

    let mut rows_of: BTreeMap<Key, KeyedDoc> = expected.into_iter().map(|d| (d.key.clone(), d)).collect();
    let mut docs_of: BTreeMap<Key, Vec<KeyedDoc>> = BTreeMap::new();
    for doc in actual {
        docs_of.entry(doc.key.clone()).or_default().push(doc);
    }
    let mut explained = Vec::with_capacity(keys.len());
    for key in keys {
        let expected = rows_of.remove(&key);
        let docs = docs_of.remove(&key).unwrap_or_default();
        let (verdict, diffs) = verdicts.remove(&key).unwrap_or((Verdict::Absent, Vec::new()));
        let compared_index = (expected.is_some() && !docs.is_empty()).then(|| compared_duplicate(&key, &docs));
        // Each document's own differences, for the view: a duplicate's copies may differ apart.
        let per_doc: Vec<Vec<crate::model::FieldDiff>> = docs
            .iter()
            .map(|doc| match &expected {
                Some(row) => comparator.diff(&row.doc, &compared_view(doc).doc),
                None => Vec::new(),
            })
            .collect();
        let columns: Vec<(&Doc, &[crate::model::FieldDiff])> = docs
            .iter()
            .zip(&per_doc)
            .map(|(doc, diffs)| (&doc.doc, diffs.as_slice()))
            .collect();
        let is_compared = |field: &str| compared.contains(field);
        let rows = comparator.side_by_side(expected.as_ref().map(|row| &row.doc), &columns, &is_compared);
        let differences = diffs
            .into_iter()
            .map(|diff| {
                let rule = comparator.rule_name(&diff.field);
                (diff, rule)
            })
            .collect();
        let actual = docs
            .into_iter()
            .enumerate()
            .map(|(i, doc)| ActualDoc {
                metadata: sides.read_model.describe_meta(&doc.meta),
                compared: compared_index == Some(i),
                doc,
            })
            .collect();
        explained.push(Explanation {
            key,
            verdict,
            differences,
            expected,
            actual,
            rows,
        });
    }
    Ok(explained)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::diff::NOT_COMPARED;
    use crate::model::{DocMeta, DriftKind, KeyKind};
    use crate::source::memory::MemorySource;

    fn doc(key: i64, id: Option<&str>, body: Value) -> KeyedDoc {
        KeyedDoc {
            key: Key::Int(key),
            doc: body.as_object().unwrap().clone().into(),
            meta: DocMeta {
                id: id.map(str::to_string),
                ..DocMeta::default()
            },
        }
    }

    /// 1 in sync (with a stamp the projection does not produce), 2 mismatched, 3 missing, 4 duplicated
    /// under a second id that sorts first, 5 orphaned.
    fn sides() -> Sides {
        let rows = (1..=4)
            .map(|k| doc(k, None, json!({"id": k, "name": format!("n{k}")})))
            .collect();
        let docs = vec![
            doc(1, Some("1"), json!({"id": 1, "name": "n1", "stamp": "2026-01-01"})),
            doc(2, Some("2"), json!({"id": 2, "name": "stale"})),
            doc(4, Some("4"), json!({"id": 4, "name": "n4"})),
            doc(4, Some("0-copy"), json!({"id": 4, "name": "copy"})),
            doc(5, Some("5"), json!({"id": 5, "name": "ghost"})),
        ];
        Sides {
            write_model: Box::new(MemorySource::new("pg", KeyKind::Int, &["id", "name"], rows)),
            read_model: Box::new(MemorySource::new("rm", KeyKind::Int, &["id", "name"], docs)),
        }
    }

    #[tokio::test]
    async fn each_key_gets_a_checks_verdict_judged_on_the_compared_fields_only() {
        let sides = sides();
        let comparator = Comparator::new(&crate::config::CompareConfig::default()).unwrap();
        let compared: BTreeSet<String> = ["id", "name"].map(String::from).into();
        let keys: Vec<Key> = [6, 5, 4, 3, 2, 1, 2].map(Key::Int).to_vec();
        let explained = explain(&sides, &comparator, &compared, &keys).await.unwrap();
        let verdicts: Vec<(Key, Verdict)> = explained.iter().map(|e| (e.key.clone(), e.verdict)).collect();
        assert_eq!(
            verdicts,
            vec![
                (Key::Int(1), Verdict::InSync),
                (Key::Int(2), Verdict::Drift(DriftKind::Mismatched)),
                (Key::Int(3), Verdict::Drift(DriftKind::Missing)),
                (Key::Int(4), Verdict::Drift(DriftKind::Duplicate)),
                (Key::Int(5), Verdict::Drift(DriftKind::Orphaned)),
                (Key::Int(6), Verdict::Absent),
            ]
        );
        // The stamp is shown (the document is whole) but not compared.
        let one = &explained[0];
        assert_eq!(one.actual[0].doc.doc["stamp"], "2026-01-01");
        let stamp = one.rows.iter().find(|r| r.path == "stamp").unwrap();
        assert_eq!(
            (stamp.rule.as_str(), stamp.differs.clone()),
            (NOT_COMPARED, vec![false])
        );
        // 2: the difference with its rule.
        let two = &explained[1];
        assert_eq!(two.differences.len(), 1);
        assert_eq!(
            (two.differences[0].0.path.as_str(), two.differences[0].1.as_str()),
            ("name", "exact")
        );
        // 4: the copy sorts first, but the differences are of the document whose id is the key: none.
        let four = &explained[3];
        let ids: Vec<(Option<&str>, bool)> = four
            .actual
            .iter()
            .map(|a| (a.doc.meta.id.as_deref(), a.compared))
            .collect();
        assert_eq!(ids, [(Some("0-copy"), false), (Some("4"), true)]);
        assert!(four.differences.is_empty());
        let name = four.rows.iter().find(|r| r.path == "name").unwrap();
        assert_eq!(name.differs, [true, false], "each copy marked on its own");
        // The metadata is the read model's description of each document.
        assert_eq!(four.actual[1].metadata[0], ("id".to_string(), json!("4")));
        // 5: no row, the document as it is.
        assert!(explained[4].expected.is_none() && explained[4].differences.is_empty());
    }
}
