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
    OutOfOrder {
        side: Side,
        previous: Key,
        next: Key,
    },
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
            // Compare against the document a projector would have written (`_id` = key), so the
            // diffs say what the surviving copy gets wrong.
            let doc_id = expected.key.doc_id();
            let canonical = group
                .iter()
                .find(|d| d.meta.id.as_deref() == Some(doc_id.as_str()))
                .unwrap_or(&group[0]);
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
