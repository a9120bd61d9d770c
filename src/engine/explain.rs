//! `recon explain`: the named keys looked up on both sides (the write model in a read-only
//! transaction of its own), judged by the same join and comparator as a check, and laid out side by
//! side ([`crate::diff::Explanation`]).

use std::collections::{BTreeMap, BTreeSet};

use futures::stream;

use super::Sides;
use crate::diff::{compared_duplicate, ActualDoc, Comparator, Explanation, Joiner, Outcome, Verdict};
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
        let columns: Vec<(&serde_json::Map<String, serde_json::Value>, &[crate::model::FieldDiff])> = docs
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
