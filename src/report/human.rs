//! What table and markdown share: the bounded sample of drifted keys and the wording of a run.
//!
//! Keys and values come from the databases, so anything shown to a person is defused first: control
//! characters (a key holding `ESC[2J` would otherwise clear the terminal) and bidirectional overrides
//! (which make text read differently than it is) are shown as escapes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::{Listing, RunInfo};
use crate::model::{Drift, DriftKind, Summary};
use crate::plural::plural;

/// Diff rows shown per key; the rest are counted in a "… more" row.
pub(super) const DIFFS_PER_KEY: usize = 5;
/// Widest a key, path or value gets before it is cut with an ellipsis.
pub(super) const VALUE_WIDTH: usize = 40;
pub(super) const PATH_WIDTH: usize = 60;

/// The first drifted keys (at most `size`, and never past `--limit`), plus the count of all.
pub(super) struct Sample {
    size: usize,
    listing: Listing,
    pub(super) drift: Vec<Drift>,
}

impl Sample {
    pub(super) fn new(size: usize, listing: Listing) -> Self {
        Sample {
            size,
            listing,
            drift: Vec::new(),
        }
    }

    pub(super) fn offer(&mut self, drift: &Drift) {
        if self.listing.admit() && self.drift.len() < self.size {
            // The documents are never shown; keep the sample small.
            self.drift.push(Drift {
                expected: None,
                actual: Vec::new(),
                ..drift.clone()
            });
        }
    }

    /// All drifted keys reported to the writer.
    pub(super) fn seen(&self) -> u64 {
        self.listing.seen
    }
}

/// One row of the sample: a drifted key's field, or the key itself when it has no diffs.
pub(super) struct SampleRow {
    pub kind: String,
    pub key: String,
    pub path: String,
    pub expected: String,
    pub actual: String,
    pub failing: bool,
}

pub(super) fn sample_rows(drift: &[Drift]) -> Vec<SampleRow> {
    let mut rows = Vec::new();
    for d in drift {
        let kind = match (d.kind, d.cause) {
            (DriftKind::Pending, Some(cause)) => format!("pending ({})", cause.as_str()),
            (DriftKind::Duplicate, _) => format!("duplicate ×{}", d.ids.len()),
            (kind, _) => kind.as_str().to_string(),
        };
        let key = match d.kind {
            DriftKind::Unkeyed => clip(&defuse(&format!("(no key) _id {}", d.ids.join(", "))), VALUE_WIDTH),
            _ => clip(&defuse(&d.key.to_string()), VALUE_WIDTH),
        };
        let failing = d.kind != DriftKind::Pending;
        let row = |path: String, expected: String, actual: String| SampleRow {
            kind: kind.clone(),
            key: key.clone(),
            path,
            expected,
            actual,
            failing,
        };
        if d.diffs.is_empty() {
            let (expected, actual) = match d.kind {
                DriftKind::Missing => ("(document)", "(absent)"),
                DriftKind::Orphaned | DriftKind::Unkeyed => ("(absent)", "(document)"),
                _ => ("", ""),
            };
            rows.push(row(String::new(), expected.into(), actual.into()));
            continue;
        }
        for diff in d.diffs.iter().take(DIFFS_PER_KEY) {
            rows.push(row(
                clip(&defuse(&diff.path), PATH_WIDTH),
                value_text(diff.expected.as_ref()),
                value_text(diff.actual.as_ref()),
            ));
        }
        if d.diffs.len() > DIFFS_PER_KEY {
            let more = d.diffs.len() - DIFFS_PER_KEY;
            rows.push(row(
                format!("… {}", plural(more, "more field", "more fields")),
                String::new(),
                String::new(),
            ));
        }
    }
    rows
}

/// A side's value as compact JSON, or `(absent)` when the field is not there at all.
pub(super) fn value_text(value: Option<&Value>) -> String {
    match value {
        None => "(absent)".into(),
        Some(value) => clip(&defuse(&value.to_string()), VALUE_WIDTH),
    }
}

/// Replaces control characters and bidirectional formatting characters with visible escapes.
pub(super) fn defuse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Cuts `text` to `width` characters, the last being an ellipsis when anything was cut.
pub(super) fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(width.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

/// The one-sentence outcome, e.g. "5 failing keys (allowed: 0)".
pub(super) fn verdict_text(summary: &Summary, run: &RunInfo) -> String {
    let failing = summary.failing();
    let mut text = if run.in_sync(summary) {
        if failing == 0 {
            "in sync".to_string()
        } else {
            format!(
                "in sync: {} within --allow {}",
                plural(failing, "failing key", "failing keys"),
                run.allow
            )
        }
    } else {
        format!(
            "drift: {} (allowed: {})",
            plural(failing, "failing key", "failing keys"),
            run.allow
        )
    };
    if summary.pending > 0 {
        let _ = write!(text, "; {} pending", summary.pending);
        if let Some(grace) = run.grace {
            let _ = write!(text, " within the {} grace period", humantime::format_duration(grace));
        }
    }
    if summary.converged > 0 {
        let _ = write!(text, "; {} converged", summary.converged);
        if let Some(wait) = run.scale.recheck {
            let _ = write!(text, " during the {} recheck", humantime::format_duration(wait));
        }
    }
    text
}

/// Count rows of the summary, in reading order: what was read, then what was found. `converged` (keys
/// that drifted in the scan and agreed at the recheck, counted in `matched` too) only when the run
/// rechecked.
pub(super) fn count_rows(summary: &Summary, run: &RunInfo) -> Vec<(&'static str, u64, bool)> {
    let mut rows = vec![
        ("source rows", summary.source_rows, false),
        ("target docs", summary.target_docs, false),
        ("matched", summary.matched, false),
        ("missing", summary.missing, true),
        ("orphaned", summary.orphaned, true),
        ("mismatched", summary.mismatched, true),
        ("duplicate", summary.duplicate, true),
        ("pending", summary.pending, false),
    ];
    // Rare, so shown only when there are some: documents in the read model that no key names.
    if summary.unkeyed > 0 {
        rows.insert(7, ("unkeyed", summary.unkeyed, true));
    }
    if run.scale.recheck.is_some() || summary.converged > 0 {
        rows.push(("converged", summary.converged, false));
    }
    rows
}

/// Fields with at least one mismatch, most mismatched first (ties by name).
pub(super) fn fields_by_count(fields: &BTreeMap<String, u64>) -> Vec<(&str, u64)> {
    let mut sorted: Vec<(&str, u64)> = fields
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(field, count)| (field.as_str(), *count))
        .collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    sorted
}

/// "recon 0.1.0 · started … · took … · source → target · snapshot …" as separate parts.
pub(super) fn run_parts(run: &RunInfo) -> Vec<String> {
    let mut parts = vec![
        format!("recon {}", run.tool_version),
        format!(
            "started {}",
            run.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        format!("took {}", humantime::format_duration(whole_millis(run.duration))),
        format!("{} → {}", defuse(&run.source), defuse(&run.target)),
    ];
    if let Some(snapshot) = run.snapshot_ms.and_then(chrono::DateTime::from_timestamp_millis) {
        parts.push(format!(
            "snapshot {}",
            snapshot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    // A resumed run (or merged shards): keys were compared as of different snapshots.
    if run.scale.snapshots > 1 {
        parts.push(format!("spans {} snapshots", run.scale.snapshots));
    }
    parts
}

/// The sample heading: how much of the drift is shown and why not all of it.
pub(super) fn sample_caption(sample: &Sample) -> String {
    let shown = sample.drift.len() as u64;
    let seen = sample.seen();
    let mut caption = if shown == seen {
        plural(seen, "drifted key", "drifted keys")
    } else {
        format!("first {shown} of {seen} drifted keys")
    };
    if sample.listing.truncated() {
        caption.push_str(" (listing truncated by --limit)");
    }
    if shown < seen || sample.listing.truncated() {
        // Say how to see the rest: the counts are complete, the listing is not.
        caption.push_str("; --limit N shows more, --format json lists every key");
    }
    caption
}

fn whole_millis(duration: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    #[test]
    fn defuse_makes_terminal_and_bidi_controls_visible() {
        assert_eq!(defuse("a\u{1b}[2Jb\n\t"), "a\\u{1b}[2Jb\\u{a}\\u{9}");
        assert_eq!(defuse("x\u{202E}y\u{85}"), "x\\u{202e}y\\u{85}");
        assert_eq!(defuse("Zoë ✓ 注文"), "Zoë ✓ 注文");
    }

    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(clip("ééééé", 5), "ééééé");
        assert_eq!(clip("éééééé", 5), "éééé…");
        assert_eq!(clip("abc", 0), "…");
    }

    #[test]
    fn sample_stops_at_its_size_and_at_the_limit_but_counts_everything() {
        let drift = fixtures::drift();
        let mut sample = Sample::new(2, Listing::new(None));
        drift.iter().for_each(|d| sample.offer(d));
        assert_eq!(sample.drift.len(), 2);
        assert_eq!(sample.seen(), drift.len() as u64);
        assert!(sample.drift.iter().all(|d| d.expected.is_none() && d.actual.is_empty()));

        let mut limited = Sample::new(10, Listing::new(Some(1)));
        drift.iter().for_each(|d| limited.offer(d));
        assert_eq!(limited.drift.len(), 1);
        // The caption says how to see the rest (issue 14: the listing stopped with no hint).
        assert_eq!(
            sample_caption(&limited),
            "first 1 of 6 drifted keys (listing truncated by --limit); --limit N shows more, --format json \
             lists every key"
        );
        assert!(sample_caption(&sample).starts_with("first 2 of 6 drifted keys; --limit N shows more"));
    }

    #[test]
    fn a_key_with_many_diffs_shows_a_bounded_number_of_rows() {
        let mut drift = fixtures::drift().remove(0);
        let diff = drift.diffs[0].clone();
        drift.diffs = vec![diff; DIFFS_PER_KEY + 3];
        let rows = sample_rows(&[drift]);
        assert_eq!(rows.len(), DIFFS_PER_KEY + 1);
        assert_eq!(rows[DIFFS_PER_KEY].path, "… 3 more fields");
    }

    #[test]
    fn fields_sort_by_count_then_name_and_skip_zero() {
        let fields = fixtures::fields();
        let sorted = fields_by_count(&fields);
        assert_eq!(
            sorted,
            [
                ("products.name", 2),
                ("customerName", 1),
                ("orderDate", 1),
                ("products.price", 1)
            ]
        );
    }

    #[test]
    fn verdict_names_allowance_and_pending() {
        let mut run = fixtures::run();
        let summary = fixtures::summary();
        assert_eq!(
            verdict_text(&summary, &run),
            "drift: 5 failing keys (allowed: 0); 1 pending within the 5m grace period"
        );
        run.allow = 5;
        run.grace = None;
        assert_eq!(
            verdict_text(&summary, &run),
            "in sync: 5 failing keys within --allow 5; 1 pending"
        );
        assert_eq!(verdict_text(&Summary::default(), &run), "in sync");
    }
}
