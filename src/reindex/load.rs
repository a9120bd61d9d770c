//! Loading the projection into the new generation: every range of the key space streamed out of one
//! PostgreSQL snapshot in key order and written with plain `index` actions (`_id` = key) through the
//! bulk writer, a bounded number of requests in flight. After each batch the range's last written
//! key is noted; every few batches the state is saved in `_meta`, so a killed load resumes after it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::Mutex;

use super::fingerprints::{range_file, FingerprintWriter, Fingerprints, Keep, PushError};
use super::state::{self, ReindexState};
use crate::diff::Comparator;
use crate::model::Key;
use crate::source::elasticsearch::write::{
    BulkWriter, ConditionalWriter, ItemOutcome, ItemStatus, WriteAction, WriteKind,
};
use crate::source::elasticsearch::EsClient;
use crate::source::postgres::{PostgresSource, SharedSnapshot};
use crate::source::KeyRange;

/// Save the state at least this often while loading…
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// …and at least every this many batches of a range.
const SAVE_EVERY_BATCHES: u64 = 50;

/// What the load writes with, and where its state lives.
pub struct Loader<'a> {
    pub write_model: &'a PostgresSource,
    pub writer: BulkWriter,
    pub client: EsClient,
    pub index: String,
    /// Bulk requests in flight per range.
    pub in_flight: usize,
    pub progress: bool,
    /// Test hook: exit hard after this many batches (`RECON_REINDEX_FAIL_AFTER=batches:N`).
    pub fail_after_batches: Option<u64>,
    /// Keep the fingerprint of every document sent, as this comparator sees it, for the verify gate,
    /// one file per range in this directory (where an interrupted load left them, they are resumed).
    pub fingerprint: Option<(Comparator, PathBuf)>,
}

/// What a load did.
#[derive(Debug, Default)]
pub struct Loaded {
    pub docs: u64,
    /// Documents Elasticsearch refused (after retries); the verify gate sees them as missing.
    pub failed: u64,
    pub failures: Vec<String>,
    /// The fingerprints of every document loaded, when asked for: None when a resumed load found no
    /// files of the interrupted one (another machine, a reboot).
    pub fingerprints: Option<Fingerprints>,
}

/// A bulk request on its own task, aborted if the load stops before its answer is read.
struct Request(tokio::task::JoinHandle<anyhow::Result<Answered>>);

impl Drop for Request {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One batch written: its actions, their outcomes, and the last key in it.
struct Answered {
    actions: Vec<WriteAction>,
    outcomes: Vec<ItemOutcome>,
    last: Option<Key>,
}

struct Shared {
    state: Mutex<ReindexState>,
    saved_at: std::sync::Mutex<Instant>,
    written: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Loader<'_> {
    /// Loads every range of `state` not yet done, concurrently, inside `snapshot`. The state is saved
    /// with every range done when this returns Ok.
    pub async fn load(&self, state: ReindexState, snapshot: &SharedSnapshot) -> anyhow::Result<(ReindexState, Loaded)> {
        let todo: Vec<usize> = (0..state.ranges.len()).filter(|i| !state.ranges[*i].done).collect();
        let mut writers = self.fingerprint_writers(&state)?;
        let comparator = self.fingerprint.as_ref().map(|(c, _)| c).filter(|_| writers.is_some());
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            saved_at: std::sync::Mutex::new(Instant::now()),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            failures: std::sync::Mutex::new(Vec::new()),
        });
        let clock = Instant::now();
        let ticker = self.progress.then(|| {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let n = shared.written.load(Ordering::Relaxed);
                    crate::note!(
                        "recon: reindex: loaded {} ({:.0}/s)",
                        crate::plural::plural(n, "document", "documents"),
                        n as f64 / clock.elapsed().as_secs_f64()
                    );
                }
            })
        });
        let mut taken: Vec<Option<FingerprintWriter>> = todo
            .iter()
            .map(|&i| writers.as_mut().and_then(|w| w[i].take()))
            .collect();
        let result = futures::future::try_join_all(
            todo.iter()
                .zip(taken.iter_mut())
                .map(|(&i, writer)| self.load_range(&shared, i, snapshot, comparator, writer.take())),
        )
        .await;
        if let Some(t) = ticker {
            t.abort();
        }
        // In range order, as try_join_all returns them; the ranges done before join them in place.
        let loaded = result?;
        let fingerprints = match writers {
            Some(mut writers) => {
                for (&i, writer) in todo.iter().zip(loaded) {
                    writers[i] = writer;
                }
                let state = shared.state.lock().await;
                let parts: Option<Vec<(KeyRange, FingerprintWriter)>> = writers
                    .into_iter()
                    .zip(&state.ranges)
                    .map(|(writer, r)| writer.map(|w| (r.range(), w)))
                    .collect();
                parts.map(Fingerprints::new).transpose()?
            }
            None => None,
        };
        // Read out, not unwrapped: the aborted ticker may still hold its clone for a moment.
        let state = shared.state.lock().await.clone();
        state::save(&self.client, &self.index, &state).await?;
        let loaded = Loaded {
            docs: shared.written.load(Ordering::Relaxed),
            failed: shared.failed.load(Ordering::Relaxed),
            failures: shared
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            fingerprints,
        };
        Ok((state, loaded))
    }

    /// One fingerprint writer per range, where the load is asked to keep them: fresh for a range not
    /// started, what an interrupted load left for the others; None when any of those is missing.
    fn fingerprint_writers(&self, state: &ReindexState) -> anyhow::Result<Option<Vec<Option<FingerprintWriter>>>> {
        let Some((_, dir)) = &self.fingerprint else {
            return Ok(None);
        };
        let mut writers = Vec::with_capacity(state.ranges.len());
        for (i, r) in state.ranges.iter().enumerate() {
            let path = range_file(dir, i);
            let writer = match (r.done, &r.last_key) {
                (false, None) => FingerprintWriter::create(&path).map(Some),
                (false, Some(last)) => FingerprintWriter::resume(&path, Keep::UpTo(Some(last))),
                (true, _) => FingerprintWriter::resume(&path, Keep::All),
            };
            match writer {
                Ok(Some(writer)) => writers.push(Some(writer)),
                Ok(None) => return Ok(None),
                Err(e) => {
                    warn_without_fingerprints(&PushError::Io(e));
                    return Ok(None);
                }
            }
        }
        Ok(Some(writers))
    }

    async fn load_range(
        &self,
        shared: &Shared,
        i: usize,
        snapshot: &SharedSnapshot,
        comparator: Option<&Comparator>,
        mut fingerprints: Option<FingerprintWriter>,
    ) -> anyhow::Result<Option<FingerprintWriter>> {
        let range = shared.state.lock().await.ranges[i].remaining();
        let scan = self.write_model.open_scan_at(range, Some(snapshot)).await?;
        let mut docs = scan.docs;
        let max_actions = self.writer.settings().max_actions.max(1);
        let max_bytes = self.writer.settings().max_bytes.max(1);
        let mut in_flight: VecDeque<Request> = VecDeque::new();
        let mut batch: Vec<WriteAction> = Vec::with_capacity(max_actions);
        let mut bytes = 0usize;
        let mut batches = 0u64;
        let mut last_key: Option<Key> = None;
        loop {
            let next = docs.next().await.transpose()?;
            let end = next.is_none();
            if let Some(doc) = next {
                last_key = Some(doc.key.clone());
                if let (Some(writer), Some(comparator)) = (fingerprints.as_mut(), comparator) {
                    match writer.push(&doc.key, comparator.fingerprint(&doc.doc)) {
                        Ok(()) => {}
                        Err(e @ PushError::OutOfOrder { .. }) => return Err(e.into()),
                        Err(e) => {
                            warn_without_fingerprints(&e);
                            fingerprints = None;
                        }
                    }
                }
                let action = WriteAction {
                    kind: WriteKind::Index,
                    location: self.index.clone(),
                    id: doc.key.doc_id(),
                    doc: Some(doc.doc),
                    if_version: None,
                };
                bytes += action.encoded_len();
                batch.push(action);
            }
            if !batch.is_empty() && (end || batch.len() >= max_actions || bytes >= max_bytes) {
                let actions = std::mem::replace(&mut batch, Vec::with_capacity(max_actions));
                bytes = 0;
                let last = last_key.clone();
                let writer = self.writer.clone();
                // A task of its own: the request goes out now and proceeds while the next batch is read.
                in_flight.push_back(Request(tokio::spawn(async move {
                    let outcomes = writer.apply(&actions).await?;
                    anyhow::Ok(Answered {
                        actions,
                        outcomes,
                        last,
                    })
                })));
            }
            // In order: when a batch's answer comes out, every batch before it has been written.
            while in_flight.len() >= self.in_flight.max(1) || (end && !in_flight.is_empty()) {
                let mut request = in_flight.pop_front().expect("not empty");
                let answered = (&mut request.0).await.context("a bulk request's task failed")??;
                batches += 1;
                let last_batch = end && in_flight.is_empty();
                // Every pair up to the batch's last key is in the file before that key is saved.
                if let Some(Err(e)) = fingerprints.as_mut().map(FingerprintWriter::flush) {
                    warn_without_fingerprints(&e.into());
                    fingerprints = None;
                }
                self.settle(shared, i, answered, batches, last_batch).await?;
            }
            if end {
                break;
            }
        }
        let mut state = shared.state.lock().await;
        state.ranges[i].done = true;
        Ok(fingerprints)
    }

    /// Counts one batch's outcomes, notes the range's last key and saves the state when due.
    async fn settle(
        &self,
        shared: &Shared,
        i: usize,
        answered: Answered,
        batches: u64,
        last_batch: bool,
    ) -> anyhow::Result<()> {
        let Answered {
            actions,
            outcomes,
            last,
        } = answered;
        let mut failed = 0;
        for (a, o) in actions.iter().zip(outcomes) {
            if o.status != ItemStatus::Applied {
                failed += 1;
                let mut failures = shared
                    .failures
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if failures.len() < 10 {
                    failures.push(format!("_id {}: {}", a.id, o.error.clone().unwrap_or_default()));
                }
            }
        }
        shared
            .written
            .fetch_add(actions.len() as u64 - failed, Ordering::Relaxed);
        shared.failed.fetch_add(failed, Ordering::Relaxed);
        let total = shared.batches.fetch_add(1, Ordering::Relaxed) + 1;
        let mut state = shared.state.lock().await;
        if last.is_some() {
            state.ranges[i].last_key = last;
        }
        if last_batch {
            state.ranges[i].done = true;
        }
        let due = {
            let saved_at = shared
                .saved_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            saved_at.elapsed() >= SAVE_EVERY
        } || batches % SAVE_EVERY_BATCHES == 0
            || last_batch
            || self.fail_after_batches.is_some_and(|n| total >= n);
        if due {
            // Saved under the lock: saves never overtake each other.
            state::save(&self.client, &self.index, &state)
                .await
                .context("cannot save the load's progress in _meta")?;
            *shared
                .saved_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        }
        if self.fail_after_batches.is_some_and(|n| total >= n) {
            crate::note!("recon: RECON_REINDEX_FAIL_AFTER=batches:{total}: exiting hard (test hook)");
            std::process::abort();
        }
        Ok(())
    }
}

/// A fingerprint file could not be written (a full disk, say): the load goes on without them, and
/// the verify gate checks in full.
fn warn_without_fingerprints(e: &PushError) {
    crate::note!("recon: warning: {e}; the load goes on, and the verify gate will check in full");
}
