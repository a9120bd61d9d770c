//! A reindex's progress, kept where it survives the process: in the new index's mapping `_meta`
//! (`{"recon": {...}}`, see `crate::source::elasticsearch::rebuild`). Every save writes the complete
//! state.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::Key;
use crate::source::elasticsearch::{rebuild, EsClient};
use crate::source::KeyRange;

/// Where a generation is in its life. Everything but `Live` and `Retired` is an unfinished reindex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Created; the projection is being loaded.
    Loading,
    /// Loaded; rows changed since the watermark are being re-projected and the index checked.
    CatchingUp,
    /// The verify gate refused the swap: kept for inspection.
    VerifyFailed,
    /// The alias was moved to it; the last conditional catch-up pass has not finished.
    Swapped,
    /// Behind the alias, complete.
    Live,
    /// Was live; the alias moved on (a newer generation or a rollback).
    Retired,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::CatchingUp => "catching_up",
            Phase::VerifyFailed => "verify_failed",
            Phase::Swapped => "swapped",
            Phase::Live => "live",
            Phase::Retired => "retired",
        }
    }

    /// A reindex that did not finish: to be resumed or discarded.
    pub fn unfinished(self) -> bool {
        !matches!(self, Phase::Live | Phase::Retired)
    }
}

/// One key range of the load, and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeProgress {
    pub after: Option<Key>,
    pub until: Option<Key>,
    /// The last key whose document is written (every key before it in the range is too).
    pub last_key: Option<Key>,
    pub done: bool,
}

impl RangeProgress {
    pub fn of(range: &KeyRange) -> RangeProgress {
        RangeProgress {
            after: range.after.clone(),
            until: range.until.clone(),
            last_key: None,
            done: false,
        }
    }

    /// The whole range.
    pub fn range(&self) -> KeyRange {
        KeyRange {
            after: self.after.clone(),
            until: self.until.clone(),
        }
    }

    /// What is left to load.
    pub fn remaining(&self) -> KeyRange {
        KeyRange {
            after: self.last_key.clone().or_else(|| self.after.clone()),
            until: self.until.clone(),
        }
    }
}

/// `_meta.recon` of a generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReindexState {
    pub phase: Phase,
    /// The load snapshot's start (PostgreSQL `now()`), RFC 3339 UTC with milliseconds.
    pub watermark: Option<String>,
    pub watermark_ms: Option<i64>,
    /// Rows changed at or after this instant (minus the margin) are re-projected by the next pass.
    #[serde(default)]
    pub caught_up_ms: Option<i64>,
    #[serde(default)]
    pub ranges: Vec<RangeProgress>,
    /// The index the alias pointed at when the reindex started (None: a fresh alias).
    pub source_index: Option<String>,
    pub alias: String,
    /// The alias replaces a concrete index of the same name (`--adopt`).
    #[serde(default)]
    pub adopt: bool,
    pub started_at: String,
    /// Settings turned off for the load, with the values to restore (`null`: the default).
    #[serde(default)]
    pub restore: Map<String, Value>,
    #[serde(default)]
    pub tool_version: String,
    /// A random token naming this run's scratch files on the machine that runs it (the load's
    /// fingerprints); None in states written before there were any.
    #[serde(default)]
    pub scratch: Option<String>,
}

impl ReindexState {
    /// The whole `_meta` object this state is saved as.
    pub fn to_meta(&self) -> Value {
        rebuild::state_meta(self)
    }

    /// Reads `_meta.recon` out of an index's `mappings`; None when the index is not recon's.
    pub fn from_mappings(mappings: &Value) -> Option<ReindexState> {
        rebuild::state_in_mappings(mappings)
    }

    /// The last key loaded in each range, for messages.
    pub fn loaded_upto(&self) -> String {
        let keys: Vec<String> = self
            .ranges
            .iter()
            .map(|r| match (&r.last_key, r.done) {
                (_, true) => "done".to_string(),
                (Some(k), false) => format!("after {k}"),
                (None, false) => "not started".to_string(),
            })
            .collect();
        keys.join(", ")
    }
}

/// Saves `state` as the index's recon state (the index's other `_meta` keys are kept).
pub async fn save(client: &EsClient, index: &str, state: &ReindexState) -> anyhow::Result<()> {
    rebuild::save_state(client, index, state).await
}

/// The index's recon state, if it has one.
pub async fn load(client: &EsClient, index: &str) -> anyhow::Result<Option<ReindexState>> {
    rebuild::load_state(client, index).await
}

/// Sets only the phase of an index's state (rollback, retirement); an index without state is left alone.
pub async fn set_phase(client: &EsClient, index: &str, phase: Phase) -> anyhow::Result<()> {
    if let Some(mut state) = load(client, index).await? {
        state.phase = phase;
        save(client, index, &state).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> ReindexState {
        ReindexState {
            phase: Phase::Loading,
            watermark: Some("2026-11-28T11:42:03.123Z".into()),
            watermark_ms: Some(1_795_000_000_123),
            caught_up_ms: None,
            ranges: vec![
                RangeProgress {
                    after: None,
                    until: Some(Key::Int(9007199254740993)),
                    last_key: Some(Key::Int(17)),
                    done: false,
                },
                RangeProgress {
                    after: Some(Key::Int(9007199254740993)),
                    until: None,
                    last_key: None,
                    done: true,
                },
            ],
            source_index: Some("orders-20261101t000000z".into()),
            alias: "orders".into(),
            adopt: false,
            scratch: Some("5f2c9a".into()),
            started_at: "2026-11-28T11:42:03Z".into(),
            restore: serde_json::from_str(r#"{"index.refresh_interval": null, "index.number_of_replicas": "1"}"#)
                .unwrap(),
            tool_version: "0.1.0".into(),
        }
    }

    #[test]
    fn state_round_trips_through_meta_with_exact_keys() {
        let s = state();
        let mappings = json!({"_meta": s.to_meta(), "properties": {}});
        let text = serde_json::to_string(&mappings).unwrap();
        assert!(text.contains("9007199254740993"), "{text}");
        assert!(text.contains(r#""phase":"loading""#), "{text}");
        let back = ReindexState::from_mappings(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(ReindexState::from_mappings(&json!({"properties": {}})), None);
        assert_eq!(ReindexState::from_mappings(&json!({"_meta": {"other": 1}})), None);
    }

    #[test]
    fn remaining_range_starts_after_the_last_loaded_key() {
        let s = state();
        assert_eq!(
            s.ranges[0].remaining(),
            KeyRange {
                after: Some(Key::Int(17)),
                until: Some(Key::Int(9007199254740993))
            }
        );
        assert_eq!(s.ranges[1].remaining().after, Some(Key::Int(9007199254740993)));
        assert_eq!(s.loaded_upto(), "after 17, done");
        assert!(Phase::Swapped.unfinished() && Phase::VerifyFailed.unfinished());
        assert!(!Phase::Live.unfinished() && !Phase::Retired.unfinished());
    }
}
