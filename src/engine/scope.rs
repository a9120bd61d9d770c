//! What a scan covers and how it behaves: the plan's description, built by the commands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::model::KeyRange;
use crate::progress::ProgressMode;
use crate::scale::keyfile::KeyFile;
use crate::scale::plan::Shard;

/// Which keys one scan covers and how it behaves.
#[derive(Debug, Clone)]
pub struct ScanScope {
    pub range: KeyRange,
    pub grace: Option<Duration>,
    pub progress: ProgressMode,
    /// Only these keys, looked up on both sides instead of scanned.
    pub keys: Option<Arc<KeyFile>>,
    /// Concurrent range scans; more than one shares one snapshot and one point in time.
    pub parallel: usize,
    /// Only the K-th of N ranges of `range`.
    pub shard: Option<Shard>,
    /// A seeded subset of ranges covering about this fraction of the rows: (fraction, seed).
    pub sample: Option<(f64, u64)>,
    /// Wait this long after the scan, then read every drifted key again and keep what still drifts.
    pub recheck: Option<Duration>,
    /// Record progress for `--resume` (serial scans only).
    pub checkpoint: Option<CheckpointSpec>,
}

/// Where a run records its progress, and whether it continues from there.
#[derive(Debug, Clone)]
pub struct CheckpointSpec {
    pub path: PathBuf,
    pub resume: bool,
    /// What the run compares; a checkpoint of another run is refused.
    pub fingerprint: String,
}

impl ScanScope {
    /// One serial scan of `range` in one snapshot.
    pub fn serial(range: KeyRange, grace: Option<Duration>, progress: ProgressMode) -> ScanScope {
        ScanScope {
            range,
            grace,
            progress,
            keys: None,
            parallel: 1,
            shard: None,
            sample: None,
            recheck: None,
            checkpoint: None,
        }
    }
}
