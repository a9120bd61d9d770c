//! Catching the new generation up with the write model after the load, and checking it.
//!
//! Two kinds of writes, both through the bulk writer:
//! - [`CatchUp::reproject`]: plain writes of the current rows of keys changed since a watermark
//!   (`index`, or `delete` when the row is gone). Only while the index is not live: nobody else writes it.
//! - [`CatchUp::repair`]: repair's own planning and preparation ([`plan_key`], [`Repairer::prepare`]),
//!   written conditionally (`op_type=create`, `if_seq_no`/`if_primary_term`). A conflict means someone
//!   else (the projector, once the alias points here) wrote meanwhile: the key is left to them.

use std::collections::HashMap;

use anyhow::Context;
use elasticsearch::http::Method;

use crate::diff::Comparator;
use crate::model::{Key, KeyedDoc};
use crate::repair::apply::EncodedIntent;
use crate::repair::apply::{encode, Repairer};
use crate::repair::plan::{plan_key, PlanContext, RepairMode};
use crate::scale::keyfile::KeyFile;
use crate::source::elasticsearch::write::{BulkWriter, ConditionalWriter, ItemStatus, WriteAction, WriteKind};
use crate::source::elasticsearch::ElasticsearchSource;
use crate::source::postgres::PostgresSource;
use crate::source::DocumentSource;

/// Keys looked up and written per round.
const CHUNK: usize = 1000;

/// How a pass's writes ended.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Written {
    pub applied: u64,
    /// Someone else wrote the document meanwhile (left alone), or a delete found it gone.
    pub conflicts: u64,
    /// Nothing to do once re-read (already in sync, row gone since).
    pub skipped: u64,
    pub failed: u64,
    pub failures: Vec<String>,
}

impl Written {
    fn add(&mut self, id: &str, status: ItemStatus, error: Option<&str>) {
        match status {
            ItemStatus::Applied => self.applied += 1,
            ItemStatus::Conflict => self.conflicts += 1,
            ItemStatus::Failed => {
                self.failed += 1;
                if self.failures.len() < 10 {
                    self.failures.push(format!("_id {id}: {}", error.unwrap_or_default()));
                }
            }
        }
    }

    pub fn merge(&mut self, other: Written) {
        self.applied += other.applied;
        self.conflicts += other.conflicts;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.failures.extend(other.failures);
        self.failures.truncate(10);
    }
}

/// The new generation, the write model, and how to write the one from the other.
pub struct CatchUp<'a> {
    pub write_model: &'a PostgresSource,
    /// The new generation by its concrete name, whole `_source`s (before-images and replacements).
    pub generation: &'a ElasticsearchSource,
    pub comparator: &'a Comparator,
    pub ignore: &'a [String],
    pub writer: &'a BulkWriter,
    pub index: &'a str,
}

impl CatchUp<'_> {
    /// Makes searches see every write so far (the load ran with refresh off).
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let path = format!("/{}/_refresh", encode(self.index));
        self.generation
            .client()
            .request_ok(Method::Post, &path, &[], None)
            .await?;
        Ok(())
    }

    /// The keys of the rows with `updated_at` at or after `since_ms`, parked on disk.
    pub async fn changed_since(&self, since_ms: i64) -> anyhow::Result<KeyFile> {
        KeyFile::from_stream(self.write_model.changed_key_stream(since_ms)?).await
    }

    /// [`CatchUp::reproject`] of every key in the file, a chunk at a time.
    pub async fn reproject_all(&self, keys: &KeyFile) -> anyhow::Result<Written> {
        let mut written = Written::default();
        for chunk in keys.chunks(CHUNK)? {
            written.merge(self.reproject(&chunk?).await?);
        }
        Ok(written)
    }

    /// [`CatchUp::repair`] of every key in the file, a chunk at a time.
    pub async fn repair_all(&self, keys: &KeyFile) -> anyhow::Result<Written> {
        let mut written = Written::default();
        for chunk in keys.chunks(CHUNK)? {
            written.merge(self.repair(&chunk?).await?);
        }
        Ok(written)
    }

    /// Plain writes of the current rows of `keys`: `index` for a row, `delete` for a key whose row is gone.
    pub async fn reproject(&self, keys: &[Key]) -> anyhow::Result<Written> {
        let mut written = Written::default();
        for chunk in keys.chunks(CHUNK) {
            let rows: HashMap<Key, KeyedDoc> = self
                .write_model
                .lookup(chunk)
                .await?
                .into_iter()
                .map(|d| (d.key.clone(), d))
                .collect();
            let actions: Vec<WriteAction> = chunk
                .iter()
                .map(|key| WriteAction {
                    kind: if rows.contains_key(key) {
                        WriteKind::Index
                    } else {
                        WriteKind::Delete
                    },
                    location: self.index.to_string(),
                    id: key.doc_id(),
                    doc: rows.get(key).map(|d| d.doc.clone()),
                    if_version: None,
                })
                .collect();
            written.merge(self.send(&actions).await?);
        }
        Ok(written)
    }

    /// Conditional repair of `keys`: each is read on the new generation first, then in the write
    /// model, so a document the projector writes after our read conflicts, and one it wrote before
    /// comes from a row our read already sees.
    pub async fn repair(&self, keys: &[Key]) -> anyhow::Result<Written> {
        let cx = PlanContext {
            comparator: self.comparator,
            mode: RepairMode::Replace,
            write_index: self.index.to_string(),
            pending_since_ms: None,
        };
        let repairer = Repairer {
            write_model: self.write_model,
            read_model: self.generation,
            comparator: self.comparator,
            ignore: self.ignore,
        };
        let mut written = Written::default();
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        for chunk in keys.chunks(CHUNK) {
            let docs = self.generation.lookup(chunk).await?;
            let rows = self.write_model.lookup(chunk).await?;
            let mut rows: HashMap<Key, KeyedDoc> = rows.into_iter().map(|d| (d.key.clone(), d)).collect();
            let mut by_key: HashMap<Key, Vec<KeyedDoc>> = HashMap::new();
            for d in docs {
                by_key.entry(d.key.clone()).or_default().push(d);
            }
            let mut actions = Vec::new();
            for key in chunk {
                let actual = by_key.remove(key).unwrap_or_default();
                let mut plan = plan_key(key, rows.remove(key).as_ref(), &actual, &cx).actions;
                for a in &mut plan {
                    a.seq = actions.len() as u64 + 1;
                    actions.push(a.clone());
                }
            }
            let (intents, skipped) = repairer.prepare(&actions).await?;
            written.skipped += skipped.iter().filter(|o| o.status != "conflict").count() as u64;
            written.conflicts += skipped.iter().filter(|o| o.status == "conflict").count() as u64;
            let writes: Vec<WriteAction> = intents.iter().map(EncodedIntent::write_action).collect();
            written.merge(self.send(&writes).await?);
        }
        Ok(written)
    }

    async fn send(&self, actions: &[WriteAction]) -> anyhow::Result<Written> {
        let mut written = Written::default();
        for range in self.writer.batches(actions) {
            let batch = &actions[range];
            let outcomes = self
                .writer
                .apply(batch)
                .await
                .context("a bulk request to the new generation failed")?;
            for (a, o) in batch.iter().zip(outcomes) {
                written.add(&a.id, o.status, o.error.as_deref());
            }
        }
        Ok(written)
    }
}
