//! What the scan plans and the recheck share: where drift goes, what a pass found, how drift is
//! counted, and the sizes of lookups.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;

use crate::diff::Grace;
use crate::model::{Drift, DriftKind, Summary};
use crate::progress::Counters;
use crate::scale::spool::DriftSpool;

/// Keys per lookup round trip in targeted runs and rechecks.
pub(super) const LOOKUP_BATCH: usize = 1000;
/// Lookup batches in flight at once per side in targeted runs and rechecks: enough to hide the round
/// trips, few enough that only a few batches of keys and documents are held at a time.
pub(super) const LOOKUPS_IN_FLIGHT: usize = 4;

/// Where a pass puts drift: straight to the caller, or into a temp file to be handed over later.
pub(super) enum Sink<'a> {
    Direct(&'a mut (dyn FnMut(&Drift) -> anyhow::Result<()> + 'a)),
    Spool(DriftSpool),
}

impl Sink<'_> {
    pub(super) fn take(&mut self, drift: &Drift) -> anyhow::Result<()> {
        match self {
            Sink::Direct(f) => f(drift),
            Sink::Spool(spool) => spool.push(drift).context("cannot park drift in a temp file"),
        }
    }
}

/// What a pass over the key space found before any recheck.
pub(super) struct Pass {
    pub(super) summary: Summary,
    pub(super) fields: BTreeMap<String, u64>,
    pub(super) snapshot_ms: Option<i64>,
    /// Drift not yet handed over, in key order.
    pub(super) spools: Vec<DriftSpool>,
    pub(super) interrupted: bool,
}

impl Pass {
    pub(super) fn with_sink(mut self, sink: Sink<'_>) -> Pass {
        if let Sink::Spool(spool) = sink {
            self.spools.push(spool);
        }
        self
    }
}

pub(super) fn grace_at(grace: Option<Duration>, snapshot_ms: Option<i64>) -> Option<Grace> {
    match (grace, snapshot_ms) {
        (Some(g), Some(snapshot_ms)) => Some(Grace {
            snapshot_ms,
            grace_ms: g.as_millis() as i64,
        }),
        _ => None,
    }
}

pub(super) fn counted(
    docs: crate::source::DocStream,
    counter: Arc<Counters>,
    source: bool,
) -> crate::source::DocStream {
    docs.inspect(move |_| {
        let c = if source {
            &counter.source_rows
        } else {
            &counter.target_docs
        };
        c.fetch_add(1, Ordering::Relaxed);
    })
    .boxed()
}

/// Counts `drift` in (`up`) or out of the verdict counts and per-field counts, as the join does.
pub(super) fn tally(summary: &mut Summary, fields: &mut BTreeMap<String, u64>, drift: &Drift, up: bool) {
    let step = |n: &mut u64| *n = if up { *n + 1 } else { n.saturating_sub(1) };
    match drift.kind {
        DriftKind::Missing => step(&mut summary.missing),
        DriftKind::Orphaned => step(&mut summary.orphaned),
        DriftKind::Mismatched => step(&mut summary.mismatched),
        DriftKind::Duplicate => step(&mut summary.duplicate),
        DriftKind::Pending => step(&mut summary.pending),
        DriftKind::Unkeyed => step(&mut summary.unkeyed),
    }
    if matches!(drift.kind, DriftKind::Mismatched | DriftKind::Duplicate) {
        let distinct: BTreeSet<&str> = drift.diffs.iter().map(|d| d.field.as_str()).collect();
        for field in distinct {
            let n = fields.entry(field.to_string()).or_default();
            step(n);
            if *n == 0 {
                fields.remove(field);
            }
        }
    }
}
