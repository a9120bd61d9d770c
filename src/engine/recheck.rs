//! `--recheck`: the answer to drift seen while writes were in flight.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;

use super::connect::Sides;
use super::pass::{grace_at, tally, Pass, LOOKUPS_IN_FLIGHT, LOOKUP_BATCH};
use super::scope::ScanScope;
use crate::diff::{Comparator, Joiner, Outcome as KeyOutcome};
use crate::model::{Drift, Key};
use crate::progress::ProgressMode;
use crate::scale::spool::DriftSpool;

/// `--recheck`: waits, then reads every parked drifted key again from both sides (PostgreSQL in a
/// fresh transaction, Elasticsearch by key) and compares once more. Keys that now agree, or are gone
/// from both sides, are converged; the rest is handed over with its fresh evidence. True when
/// interrupted.
pub(super) async fn recheck(
    sides: &Sides,
    comparator: &Comparator,
    scope: &ScanScope,
    wait: Duration,
    spools: Vec<DriftSpool>,
    pass: &mut Pass,
    on_drift: &mut impl FnMut(&Drift) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let parked: u64 = spools.iter().map(DriftSpool::len).sum();
    if parked == 0 {
        return Ok(false);
    }
    if scope.progress != ProgressMode::Off {
        crate::note!(
            "recon: scan done; rechecking {parked} drifted keys in {}",
            humantime::format_duration(wait)
        );
    }
    // One listener for the wait and the lookups: a signal that comes while a batch is being compared
    // is seen at the next batch.
    let stop = super::interrupted();
    tokio::pin!(stop);
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = &mut stop => return Ok(true),
    }
    let grace = grace_at(scope.grace, Some(chrono::Utc::now().timestamp_millis()));
    let started = Instant::now();
    let converged_before = pass.summary.converged;
    // Batches of parked drift in key order, read from the temp files as the lookups need them.
    let mut spools = spools.into_iter();
    let mut replay: Option<crate::scale::spool::DriftReplay> = None;
    let batches = std::iter::from_fn(move || loop {
        let current = match &mut replay {
            Some(current) => current,
            None => match spools.next()?.replay() {
                Ok(opened) => replay.insert(opened),
                Err(e) => return Some(Err(e)),
            },
        };
        match current.next_batch(LOOKUP_BATCH) {
            Ok(batch) if batch.is_empty() => replay = None,
            found => return Some(found),
        }
    });
    // A few batches in flight hide the round trips; `buffered` hands them back in key order.
    let mut looked_up = futures::stream::iter(batches)
        .map(|batch| async move {
            let batch = batch.context("cannot read back the parked drift")?;
            let keys: Vec<Key> = batch.iter().map(|d| d.key.clone()).collect();
            let (expected, actual) = tokio::try_join!(sides.write_model.lookup(&keys), sides.read_model.lookup(&keys))?;
            Ok::<_, anyhow::Error>((batch, expected, actual))
        })
        .buffered(LOOKUPS_IN_FLIGHT);
    loop {
        let looked_up = tokio::select! {
            next = looked_up.next() => next,
            _ = &mut stop => return Ok(true),
        };
        let Some(looked_up) = looked_up else { break };
        let (batch, mut expected, mut actual) = looked_up?;
        expected.sort_by(|a, b| a.key.cmp(&b.key));
        actual.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.meta.id.cmp(&b.meta.id)));
        let mut joiner = Joiner::new(
            futures::stream::iter(expected.into_iter().map(Ok)),
            futures::stream::iter(actual.into_iter().map(Ok)),
            comparator.clone(),
            grace,
        );
        let mut still: BTreeMap<Key, Drift> = BTreeMap::new();
        while let Some(outcome) = joiner.next().await? {
            if let KeyOutcome::Drift(drift) = outcome {
                still.insert(drift.key.clone(), drift);
            }
        }
        for old in batch {
            tally(&mut pass.summary, &mut pass.fields, &old, false);
            match still.remove(&old.key) {
                Some(drift) => {
                    tally(&mut pass.summary, &mut pass.fields, &drift, true);
                    on_drift(&drift)?;
                }
                None => {
                    pass.summary.converged += 1;
                    pass.summary.matched += 1;
                }
            }
        }
    }
    if scope.progress != ProgressMode::Off {
        crate::note!(
            "recon: rechecked {} in {:.2} s; {} converged",
            crate::plural::plural(parked, "key", "keys"),
            started.elapsed().as_secs_f64(),
            pass.summary.converged - converged_before
        );
    }
    Ok(false)
}
