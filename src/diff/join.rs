//! The merge join: two key-ordered streams in, one classified key at a time out.
//!
//! Both sides must arrive in ascending [`Key`] order. The join holds at most one look-ahead document
//! per side plus the read model's current key group, so memory stays flat whatever the row count.

use std::collections::BTreeMap;
use std::fmt;

use futures::{Stream, StreamExt};

use super::compare::Comparator;
use crate::model::{Drift, DriftKind, FieldDiff, Key, KeyedDoc, Summary};

/// Which side of the join a document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The source of truth (the expected documents).
    WriteModel,
    /// The projection being checked (the actual documents).
    ReadModel,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::WriteModel => "write model",
            Side::ReadModel => "read model",
        })
    }
}

/// Drift on a write-model row changed at or after `snapshot_ms - grace_ms` is `pending`: the
/// projector may simply not have caught up yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace {
    pub snapshot_ms: i64,
    pub grace_ms: i64,
}

impl Grace {
    fn covers(&self, updated_at_ms: Option<i64>) -> bool {
        updated_at_ms.is_some_and(|t| t >= self.snapshot_ms.saturating_sub(self.grace_ms))
    }
}

/// One key's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Matched(Key),
    Drift(Drift),
}

/// A stream broke the join's contract. The run cannot continue: every verdict after this point
/// would be wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JoinError {
    #[error(
        "{side} stream out of order: key {next} arrived after {previous}; both sides must return keys in \
         ascending order (text keys in byte order, as PostgreSQL's COLLATE \"C\" and an Elasticsearch keyword \
         sort give)"
    )]
    OutOfOrder { side: Side, previous: Key, next: Key },
    #[error("write model returned key {key} twice; the projection query must return one row per document")]
    DuplicateSourceKey { key: Key },
}

/// Merge-joins the write model's stream (`source`) with the read model's (`target`).
pub struct Joiner<S, T> {
    source: S,
    target: T,
    comparator: Comparator,
    grace: Option<Grace>,
    /// Look-ahead: the next document of each side, already order-checked.
    source_next: Option<KeyedDoc>,
    target_next: Option<KeyedDoc>,
    source_done: bool,
    target_done: bool,
    /// The key of the last document pulled from each side, for the order check.
    source_last: Option<Key>,
    target_last: Option<Key>,
    summary: Summary,
    field_counts: BTreeMap<String, u64>,
}

impl<S, T> Joiner<S, T>
where
    S: Stream<Item = anyhow::Result<KeyedDoc>> + Unpin,
    T: Stream<Item = anyhow::Result<KeyedDoc>> + Unpin,
{
    pub fn new(source: S, target: T, comparator: Comparator, grace: Option<Grace>) -> Self {
        Joiner {
            source,
            target,
            comparator,
            grace,
            source_next: None,
            target_next: None,
            source_done: false,
            target_done: false,
            source_last: None,
            target_last: None,
            summary: Summary::default(),
            field_counts: BTreeMap::new(),
        }
    }

    /// Next classified key, in key order; None at the end of both streams. A [`JoinError`] (wrapped,
    /// so callers can downcast) stops the join; stream errors are passed through unchanged.
    pub async fn next(&mut self) -> anyhow::Result<Option<Outcome>> {
        self.fill_source().await?;
        self.fill_target().await?;
        let order = match (&self.source_next, &self.target_next) {
            (None, None) => return Ok(None),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(s), Some(t)) => s.key.cmp(&t.key),
        };
        let outcome = match order {
            std::cmp::Ordering::Less => {
                let expected = self.take_source();
                self.missing(expected)
            }
            std::cmp::Ordering::Greater => {
                let group = self.take_target_group().await?;
                self.orphaned(group)
            }
            std::cmp::Ordering::Equal => {
                let expected = self.take_source();
                let group = self.take_target_group().await?;
                self.compare(expected, group)
            }
        };
        match &outcome {
            Outcome::Matched(_) => self.summary.matched += 1,
            Outcome::Drift(drift) => self.count(drift),
        }
        Ok(Some(outcome))
    }

    /// Counts so far: rows and documents consumed, and each verdict.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Per rule path (`products.price`): how many `mismatched` or `duplicate` keys have at least one
    /// difference on that field. Pending drift is not counted: it does not fail the run.
    pub fn field_counts(&self) -> &BTreeMap<String, u64> {
        &self.field_counts
    }

    async fn fill_source(&mut self) -> anyhow::Result<()> {
        if self.source_next.is_some() || self.source_done {
            return Ok(());
        }
        match self.source.next().await {
            None => self.source_done = true,
            Some(item) => {
                let doc = item?;
                if let Some(previous) = &self.source_last {
                    match doc.key.cmp(previous) {
                        std::cmp::Ordering::Greater => {}
                        std::cmp::Ordering::Equal => {
                            return Err(JoinError::DuplicateSourceKey { key: doc.key }.into());
                        }
                        std::cmp::Ordering::Less => {
                            return Err(JoinError::OutOfOrder {
                                side: Side::WriteModel,
                                previous: previous.clone(),
                                next: doc.key,
                            }
                            .into());
                        }
                    }
                }
                self.source_last = Some(doc.key.clone());
                self.source_next = Some(doc);
            }
        }
        Ok(())
    }

    async fn fill_target(&mut self) -> anyhow::Result<()> {
        if self.target_next.is_some() || self.target_done {
            return Ok(());
        }
        match self.target.next().await {
            None => self.target_done = true,
            Some(item) => {
                let doc = item?;
                if let Some(previous) = &self.target_last {
                    // An equal key joins the current group (duplicates are drift, not a broken
                    // stream); a smaller one means the order is wrong.
                    if doc.key < *previous {
                        return Err(JoinError::OutOfOrder {
                            side: Side::ReadModel,
                            previous: previous.clone(),
                            next: doc.key,
                        }
                        .into());
                    }
                }
                if self.target_last.as_ref() != Some(&doc.key) {
                    self.target_last = Some(doc.key.clone());
                }
                self.target_next = Some(doc);
            }
        }
        Ok(())
    }

    fn take_source(&mut self) -> KeyedDoc {
        self.summary.source_rows += 1;
        self.source_next
            .take()
            .expect("take_source follows a successful fill_source")
    }

    /// The look-ahead read-model document and every following one with the same key.
    async fn take_target_group(&mut self) -> anyhow::Result<Vec<KeyedDoc>> {
        let first = self
            .target_next
            .take()
            .expect("take_target_group follows a successful fill_target");
        self.summary.target_docs += 1;
        let mut group = vec![first];
        loop {
            self.fill_target().await?;
            match self.target_next.take() {
                Some(doc) if doc.key == group[0].key => {
                    self.summary.target_docs += 1;
                    group.push(doc);
                }
                other => {
                    self.target_next = other;
                    return Ok(group);
                }
            }
        }
    }

    fn missing(&self, mut expected: KeyedDoc) -> Outcome {
        self.comparator.project(&mut expected.doc);
        let drift = Drift {
            key: expected.key,
            kind: DriftKind::Missing,
            cause: None,
            ids: Vec::new(),
            diffs: Vec::new(),
            expected: Some(expected.doc),
            actual: Vec::new(),
        };
        Outcome::Drift(self.with_grace(drift, expected.meta.updated_at_ms))
    }

    /// Read-model documents without a write-model row. Several documents with that key are all
    /// orphans (not `duplicate`): there is nothing any of them should be kept for.
    fn orphaned(&self, group: Vec<KeyedDoc>) -> Outcome {
        let key = group[0].key.clone();
        Outcome::Drift(Drift {
            ids: ids_of(&group),
            key,
            kind: DriftKind::Orphaned,
            cause: None,
            diffs: Vec::new(),
            expected: None,
            actual: self.projected(group),
        })
    }

    fn compare(&self, mut expected: KeyedDoc, group: Vec<KeyedDoc>) -> Outcome {
        let (kind, diffs) = if let [actual] = group.as_slice() {
            let diffs = self.comparator.diff(&expected.doc, &actual.doc);
            if diffs.is_empty() {
                return Outcome::Matched(expected.key);
            }
            (DriftKind::Mismatched, diffs)
        } else {
            let canonical = &group[compared_duplicate(&expected.key, &group)];
            (
                DriftKind::Duplicate,
                self.comparator.diff(&expected.doc, &canonical.doc),
            )
        };
        self.comparator.project(&mut expected.doc);
        let drift = Drift {
            ids: ids_of(&group),
            key: expected.key,
            kind,
            cause: None,
            diffs,
            expected: Some(expected.doc),
            actual: self.projected(group),
        };
        Outcome::Drift(self.with_grace(drift, expected.meta.updated_at_ms))
    }

    fn with_grace(&self, mut drift: Drift, updated_at_ms: Option<i64>) -> Drift {
        if self.grace.is_some_and(|g| g.covers(updated_at_ms)) {
            drift.cause = Some(drift.kind);
            drift.kind = DriftKind::Pending;
        }
        drift
    }

    fn projected(&self, mut docs: Vec<KeyedDoc>) -> Vec<KeyedDoc> {
        for doc in &mut docs {
            self.comparator.project(&mut doc.doc);
        }
        docs
    }

    fn count(&mut self, drift: &Drift) {
        self.summary.count(drift.kind);
        if matches!(drift.kind, DriftKind::Mismatched | DriftKind::Duplicate) {
            for field in distinct_fields(&drift.diffs) {
                *self.field_counts.entry(field.to_string()).or_default() += 1;
            }
        }
    }
}

/// Which of several read-model documents with one key a duplicate's differences are of: the document
/// a projector would have written (`_id` = key), so the diffs say what the surviving copy gets wrong;
/// else the first.
pub fn compared_duplicate(key: &Key, group: &[KeyedDoc]) -> usize {
    let doc_id = key.doc_id();
    group
        .iter()
        .position(|d| d.meta.id.as_deref() == Some(doc_id.as_str()))
        .unwrap_or(0)
}

/// The `_id`s of a key group; a document without one (not expected from a read model) is listed
/// under the `_id` a projector would give it.
fn ids_of(group: &[KeyedDoc]) -> Vec<String> {
    group
        .iter()
        .map(|d| d.meta.id.clone().unwrap_or_else(|| d.key.doc_id()))
        .collect()
}

fn distinct_fields(diffs: &[FieldDiff]) -> Vec<&str> {
    let mut fields: Vec<&str> = diffs.iter().map(|d| d.field.as_str()).collect();
    fields.sort_unstable();
    fields.dedup();
    fields
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use futures::stream;
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::config::CompareConfig;
    use crate::model::DocMeta;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// A write-model row.
    fn row(key: Key, doc: Value) -> KeyedDoc {
        KeyedDoc {
            key,
            doc: object(doc).into(),
            meta: DocMeta::default(),
        }
    }

    fn row_updated(key: Key, doc: Value, updated_at_ms: i64) -> KeyedDoc {
        KeyedDoc {
            meta: DocMeta {
                updated_at_ms: Some(updated_at_ms),
                ..DocMeta::default()
            },
            ..row(key, doc)
        }
    }

    /// A read-model document with its `_id`.
    fn hit(key: Key, id: &str, doc: Value) -> KeyedDoc {
        KeyedDoc {
            key,
            doc: object(doc).into(),
            meta: DocMeta {
                id: Some(id.to_string()),
                ..DocMeta::default()
            },
        }
    }

    fn int(i: i64) -> Key {
        Key::Int(i)
    }

    fn text(s: &str) -> Key {
        Key::Text(s.to_string())
    }

    type DocStream = stream::Iter<std::vec::IntoIter<anyhow::Result<KeyedDoc>>>;

    fn docs(items: Vec<KeyedDoc>) -> DocStream {
        stream::iter(items.into_iter().map(Ok).collect::<Vec<_>>())
    }

    fn joiner(source: Vec<KeyedDoc>, target: Vec<KeyedDoc>, grace: Option<Grace>) -> Joiner<DocStream, DocStream> {
        joiner_with(CompareConfig::default(), source, target, grace)
    }

    fn joiner_with(
        cfg: CompareConfig,
        source: Vec<KeyedDoc>,
        target: Vec<KeyedDoc>,
        grace: Option<Grace>,
    ) -> Joiner<DocStream, DocStream> {
        Joiner::new(docs(source), docs(target), Comparator::new(&cfg).unwrap(), grace)
    }

    async fn drain<S, T>(joiner: &mut Joiner<S, T>) -> anyhow::Result<Vec<Outcome>>
    where
        S: Stream<Item = anyhow::Result<KeyedDoc>> + Unpin,
        T: Stream<Item = anyhow::Result<KeyedDoc>> + Unpin,
    {
        let mut outcomes = Vec::new();
        while let Some(outcome) = joiner.next().await? {
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// (key, kind) per outcome; `None` for matched.
    fn verdicts(outcomes: &[Outcome]) -> Vec<(Key, Option<DriftKind>)> {
        outcomes
            .iter()
            .map(|o| match o {
                Outcome::Matched(key) => (key.clone(), None),
                Outcome::Drift(d) => (d.key.clone(), Some(d.kind)),
            })
            .collect()
    }

    fn drift(outcome: &Outcome) -> &Drift {
        match outcome {
            Outcome::Drift(d) => d,
            Outcome::Matched(key) => panic!("{key} matched"),
        }
    }

    #[tokio::test]
    async fn classifies_every_kind_in_key_order() {
        let source = vec![
            row(int(1), json!({"n": 1})),
            row(int(2), json!({"n": 2, "name": "a"})),
            row(int(3), json!({"n": 3})),
            row(int(5), json!({"n": 5})),
            row(int(7), json!({"n": 7})),
        ];
        let target = vec![
            hit(int(1), "1", json!({"n": 1.0})),
            hit(int(2), "2", json!({"n": 2, "name": "b"})),
            hit(int(4), "4", json!({"n": 4})),
            hit(int(5), "5", json!({"n": 5})),
            hit(int(5), "5-copy", json!({"n": 5})),
            hit(int(6), "6", json!({"n": 6})),
            hit(int(6), "6-copy", json!({"n": 6})),
        ];
        let mut j = joiner(source, target, None);
        let outcomes = drain(&mut j).await.unwrap();
        assert_eq!(
            verdicts(&outcomes),
            [
                (int(1), None),
                (int(2), Some(DriftKind::Mismatched)),
                (int(3), Some(DriftKind::Missing)),
                (int(4), Some(DriftKind::Orphaned)),
                (int(5), Some(DriftKind::Duplicate)),
                (int(6), Some(DriftKind::Orphaned)),
                (int(7), Some(DriftKind::Missing)),
            ]
        );

        let mismatched = drift(&outcomes[1]);
        assert_eq!(mismatched.ids, ["2"]);
        assert_eq!(mismatched.diffs.len(), 1);
        assert_eq!(mismatched.diffs[0].path, "name");
        assert_eq!(mismatched.expected, Some(object(json!({"n": 2, "name": "a"})).into()));
        assert_eq!(mismatched.actual.len(), 1);
        assert_eq!(mismatched.cause, None);

        let missing = drift(&outcomes[2]);
        assert!(missing.ids.is_empty() && missing.actual.is_empty() && missing.diffs.is_empty());
        assert_eq!(missing.expected, Some(object(json!({"n": 3})).into()));

        let orphaned = drift(&outcomes[3]);
        assert_eq!(orphaned.ids, ["4"]);
        assert_eq!(orphaned.expected, None);
        assert_eq!(orphaned.actual[0].doc, object(json!({"n": 4})));

        let duplicate = drift(&outcomes[4]);
        assert_eq!(duplicate.ids, ["5", "5-copy"]);
        assert!(duplicate.diffs.is_empty());
        assert_eq!(duplicate.actual.len(), 2);

        // Several orphans with one key are all orphans.
        assert_eq!(drift(&outcomes[5]).ids, ["6", "6-copy"]);

        let expected_summary = Summary {
            source_rows: 5,
            target_docs: 7,
            matched: 1,
            missing: 2,
            orphaned: 2,
            mismatched: 1,
            duplicate: 1,
            pending: 0,
            converged: 0,
            unkeyed: 0,
        };
        assert_eq!(j.summary(), &expected_summary);
        assert_eq!(j.field_counts(), &BTreeMap::from([("name".to_string(), 1)]));
    }

    #[tokio::test]
    async fn empty_sides() {
        let mut j = joiner(vec![], vec![], None);
        assert_eq!(j.next().await.unwrap(), None);
        assert_eq!(j.next().await.unwrap(), None, "stays at the end");
        assert_eq!(j.summary(), &Summary::default());

        let mut j = joiner(vec![row(int(1), json!({})), row(int(2), json!({}))], vec![], None);
        let outcomes = drain(&mut j).await.unwrap();
        assert_eq!(
            verdicts(&outcomes),
            [(int(1), Some(DriftKind::Missing)), (int(2), Some(DriftKind::Missing))]
        );
        assert_eq!((j.summary().source_rows, j.summary().missing), (2, 2));

        let mut j = joiner(
            vec![],
            vec![hit(int(1), "1", json!({})), hit(int(1), "1b", json!({}))],
            None,
        );
        let outcomes = drain(&mut j).await.unwrap();
        assert_eq!(verdicts(&outcomes), [(int(1), Some(DriftKind::Orphaned))]);
        assert_eq!((j.summary().target_docs, j.summary().orphaned), (2, 1));
    }

    #[tokio::test]
    async fn interleavings_with_one_side_exhausted_first() {
        // Source ends before target and vice versa, with gaps on both sides.
        let source = vec![row(int(2), json!({})), row(int(4), json!({})), row(int(6), json!({}))];
        let target = vec![
            hit(int(1), "1", json!({})),
            hit(int(4), "4", json!({})),
            hit(int(9), "9", json!({})),
        ];
        let outcomes = drain(&mut joiner(source, target, None)).await.unwrap();
        assert_eq!(
            verdicts(&outcomes),
            [
                (int(1), Some(DriftKind::Orphaned)),
                (int(2), Some(DriftKind::Missing)),
                (int(4), None),
                (int(6), Some(DriftKind::Missing)),
                (int(9), Some(DriftKind::Orphaned)),
            ]
        );
    }

    #[tokio::test]
    async fn duplicates_diff_against_the_document_whose_id_is_the_key() {
        let source = vec![row(int(5), json!({"n": 5}))];
        let target = vec![hit(int(5), "stray", json!({"n": 5})), hit(int(5), "5", json!({"n": 6}))];
        let outcomes = drain(&mut joiner(source, target, None)).await.unwrap();
        let d = drift(&outcomes[0]);
        assert_eq!(d.kind, DriftKind::Duplicate);
        assert_eq!(d.ids, ["stray", "5"]);
        assert_eq!(d.diffs.len(), 1);
        assert_eq!(d.diffs[0].actual, Some(json!(6)));

        // Without a document at the key's `_id`, the first one is compared.
        let source = vec![row(int(5), json!({"n": 5}))];
        let target = vec![hit(int(5), "a", json!({"n": 7})), hit(int(5), "b", json!({"n": 5}))];
        let mut j = joiner(source, target, None);
        let outcomes = drain(&mut j).await.unwrap();
        assert_eq!(drift(&outcomes[0]).diffs[0].actual, Some(json!(7)));
        assert_eq!(j.field_counts(), &BTreeMap::from([("n".to_string(), 1)]));
    }

    #[tokio::test]
    async fn grace_turns_recent_drift_into_pending() {
        let grace = Grace {
            snapshot_ms: 10_000,
            grace_ms: 1_000,
        };
        let source = vec![
            row_updated(int(1), json!({"n": 1}), 9_000), // on the boundary: pending
            row_updated(int(2), json!({"n": 2}), 8_999), // just outside: mismatched
            row_updated(int(3), json!({"n": 3}), 9_500), // recent and missing: pending
            row(int(4), json!({"n": 4})),                // no updated_at: never pending
            row_updated(int(5), json!({"n": 5}), 9_999), // recent but equal: matched
            row_updated(int(6), json!({"n": 6}), 9_999), // recent duplicate: pending
        ];
        let target = vec![
            hit(int(1), "1", json!({"n": 0})),
            hit(int(2), "2", json!({"n": 0})),
            hit(int(4), "4", json!({"n": 0})),
            hit(int(5), "5", json!({"n": 5})),
            hit(int(6), "6", json!({"n": 6})),
            hit(int(6), "6b", json!({"n": 6})),
            hit(int(7), "7", json!({"n": 7})), // orphaned: no row, so no grace
        ];
        let mut j = joiner(source, target, Some(grace));
        let outcomes = drain(&mut j).await.unwrap();
        assert_eq!(
            verdicts(&outcomes),
            [
                (int(1), Some(DriftKind::Pending)),
                (int(2), Some(DriftKind::Mismatched)),
                (int(3), Some(DriftKind::Pending)),
                (int(4), Some(DriftKind::Mismatched)),
                (int(5), None),
                (int(6), Some(DriftKind::Pending)),
                (int(7), Some(DriftKind::Orphaned)),
            ]
        );
        assert_eq!(drift(&outcomes[0]).cause, Some(DriftKind::Mismatched));
        assert_eq!(drift(&outcomes[0]).diffs.len(), 1, "pending drift keeps its evidence");
        assert_eq!(drift(&outcomes[2]).cause, Some(DriftKind::Missing));
        assert_eq!(drift(&outcomes[5]).cause, Some(DriftKind::Duplicate));
        let s = j.summary();
        assert_eq!(
            (s.pending, s.mismatched, s.missing, s.orphaned, s.matched),
            (3, 2, 0, 1, 1)
        );
        assert_eq!(s.failing(), 3);
        // Only the two failing mismatches count per field.
        assert_eq!(j.field_counts(), &BTreeMap::from([("n".to_string(), 2)]));

        // Without a grace period the same rows all fail.
        let outcomes = drain(&mut joiner(
            vec![row_updated(int(1), json!({"n": 1}), 9_999)],
            vec![hit(int(1), "1", json!({"n": 0}))],
            None,
        ))
        .await
        .unwrap();
        assert_eq!(drift(&outcomes[0]).kind, DriftKind::Mismatched);
    }

    fn join_error(err: anyhow::Error) -> JoinError {
        err.downcast::<JoinError>().expect("a JoinError")
    }

    #[tokio::test]
    async fn out_of_order_write_model_stops_the_join() {
        let source = vec![row(int(1), json!({})), row(int(3), json!({})), row(int(2), json!({}))];
        let target = vec![hit(int(1), "1", json!({})), hit(int(3), "3", json!({}))];
        let mut j = joiner(source, target, None);
        assert_eq!(j.next().await.unwrap(), Some(Outcome::Matched(int(1))));
        assert_eq!(j.next().await.unwrap(), Some(Outcome::Matched(int(3))));
        let err = j.next().await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("write model stream out of order: key 2 arrived after 3;"),
            "{err}"
        );
        assert_eq!(
            join_error(err),
            JoinError::OutOfOrder {
                side: Side::WriteModel,
                previous: int(3),
                next: int(2)
            }
        );
    }

    #[tokio::test]
    async fn out_of_order_read_model_stops_the_join() {
        // A key repeated after another key is out of order, not a duplicate.
        let source = vec![row(int(1), json!({})), row(int(2), json!({}))];
        let target = vec![
            hit(int(1), "1", json!({})),
            hit(int(2), "2", json!({})),
            hit(int(1), "1b", json!({})),
        ];
        let err = drain(&mut joiner(source, target, None)).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("read model stream out of order: key 1 arrived after 2;"),
            "{err}"
        );
        assert_eq!(
            join_error(err),
            JoinError::OutOfOrder {
                side: Side::ReadModel,
                previous: int(2),
                next: int(1)
            }
        );
    }

    #[tokio::test]
    async fn repeated_write_model_key_is_an_error() {
        let source = vec![row(int(1), json!({})), row(int(1), json!({}))];
        let err = drain(&mut joiner(source, vec![], None)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "write model returned key 1 twice; the projection query must return one row per document"
        );
        assert_eq!(join_error(err), JoinError::DuplicateSourceKey { key: int(1) });
    }

    #[tokio::test]
    async fn stream_errors_pass_through_unchanged() {
        let target = stream::iter(vec![
            Ok(hit(int(1), "1", json!({}))),
            Err(anyhow::anyhow!("read model page failed")),
        ]);
        let mut j = Joiner::new(
            docs(vec![row(int(1), json!({}))]),
            target,
            Comparator::new(&CompareConfig::default()).unwrap(),
            None,
        );
        let err = j.next().await.unwrap_err();
        assert_eq!(err.to_string(), "read model page failed");
        assert!(err.downcast_ref::<JoinError>().is_none());
    }

    #[tokio::test]
    async fn integer_keys_above_2_pow_53_stay_distinct() {
        let source = vec![
            row(int(9_007_199_254_740_992), json!({})),
            row(int(9_007_199_254_740_993), json!({})),
        ];
        let target = vec![hit(int(9_007_199_254_740_993), "9007199254740993", json!({}))];
        let outcomes = drain(&mut joiner(source, target, None)).await.unwrap();
        assert_eq!(
            verdicts(&outcomes),
            [
                (int(9_007_199_254_740_992), Some(DriftKind::Missing)),
                (int(9_007_199_254_740_993), None)
            ]
        );
    }

    #[tokio::test]
    async fn text_keys_join_in_utf8_byte_order() {
        // Byte order: "Z" < "a" < "é" < U+FF5E < U+1F600 (UTF-16 order would put the emoji first).
        let keys = ["Z", "a", "é", "\u{FF5E}", "\u{1F600}"];
        let source: Vec<_> = keys.iter().map(|k| row(text(k), json!({"k": k}))).collect();
        let target: Vec<_> = keys
            .iter()
            .filter(|k| **k != "é")
            .map(|k| hit(text(k), k, json!({"k": k})))
            .collect();
        let outcomes = drain(&mut joiner(source, target, None)).await.unwrap();
        assert_eq!(
            verdicts(&outcomes),
            [
                (text("Z"), None),
                (text("a"), None),
                (text("é"), Some(DriftKind::Missing)),
                (text("\u{FF5E}"), None),
                (text("\u{1F600}"), None),
            ]
        );

        // A read model sorted by UTF-16 code units is caught, not silently mis-joined.
        let source = vec![row(text("\u{FF5E}"), json!({})), row(text("\u{1F600}"), json!({}))];
        let target = vec![
            hit(text("\u{1F600}"), "\u{1F600}", json!({})),
            hit(text("\u{FF5E}"), "\u{FF5E}", json!({})),
        ];
        let err = drain(&mut joiner(source, target, None)).await.unwrap_err();
        assert_eq!(
            join_error(err),
            JoinError::OutOfOrder {
                side: Side::ReadModel,
                previous: text("\u{1F600}"),
                next: text("\u{FF5E}")
            }
        );
    }

    #[tokio::test]
    async fn field_counts_count_keys_not_diffs() {
        let source = vec![
            row(int(1), json!({"products": [{"price": 1}, {"price": 2}], "total": 3})),
            row(int(2), json!({"products": [{"price": 1}], "total": 1})),
        ];
        let target = vec![
            hit(
                int(1),
                "1",
                json!({"products": [{"price": 9}, {"price": 9}], "total": 3}),
            ),
            hit(int(2), "2", json!({"products": [{"price": 9}], "total": 9})),
        ];
        let mut j = joiner(source, target, None);
        let outcomes = drain(&mut j).await.unwrap();
        assert_eq!(drift(&outcomes[0]).diffs.len(), 2);
        assert_eq!(
            j.field_counts(),
            &BTreeMap::from([("products.price".to_string(), 2), ("total".to_string(), 1)])
        );
    }

    #[tokio::test]
    async fn evidence_is_projected() {
        let cfg = CompareConfig {
            ignore: vec!["indexedAt".to_string()],
            ..CompareConfig::default()
        };
        let source = vec![row(int(1), json!({"n": 1})), row(int(2), json!({"n": 2}))];
        let target = vec![
            hit(int(1), "1", json!({"n": 1, "indexedAt": "x"})),
            hit(int(2), "2", json!({"n": 3, "indexedAt": "y"})),
        ];
        let mut j = joiner_with(cfg, source, target, None);
        let outcomes = drain(&mut j).await.unwrap();
        assert_eq!(outcomes[0], Outcome::Matched(int(1)));
        assert_eq!(drift(&outcomes[1]).actual[0].doc, object(json!({"n": 3})));
    }

    /// Counts how many items a stream has handed out.
    fn counted(items: Vec<KeyedDoc>, pulled: Arc<AtomicUsize>) -> impl Stream<Item = anyhow::Result<KeyedDoc>> + Unpin {
        stream::iter(items).map(move |doc| {
            pulled.fetch_add(1, Ordering::SeqCst);
            Ok(doc)
        })
    }

    #[tokio::test]
    async fn reads_at_most_one_document_ahead_per_side() {
        let source_pulled = Arc::new(AtomicUsize::new(0));
        let target_pulled = Arc::new(AtomicUsize::new(0));
        let source: Vec<_> = (0..100).map(|i| row(int(i), json!({"n": i}))).collect();
        let target: Vec<_> = (0..100).map(|i| hit(int(i), &i.to_string(), json!({"n": i}))).collect();
        let mut j = Joiner::new(
            counted(source, source_pulled.clone()),
            counted(target, target_pulled.clone()),
            Comparator::new(&CompareConfig::default()).unwrap(),
            None,
        );
        for consumed in 1..=100 {
            assert_eq!(
                j.next().await.unwrap(),
                Some(Outcome::Matched(int(consumed as i64 - 1)))
            );
            assert!(source_pulled.load(Ordering::SeqCst) <= consumed + 1);
            assert!(target_pulled.load(Ordering::SeqCst) <= consumed + 1);
        }
        assert_eq!(j.next().await.unwrap(), None);
        assert_eq!(j.summary().matched, 100);
    }
}
