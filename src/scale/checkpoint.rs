//! `--checkpoint FILE`: the last key fully compared, the counts up to it and, in `FILE.drift`, the
//! drift found up to it, so that `--resume` continues a crashed run after that key (in a new
//! snapshot) and still writes one report for the whole key space.
//!
//! The checkpoint is rewritten atomically (temp file, fsync, rename) every couple of seconds; the drift
//! file is appended to and its length at the checkpoint recorded, so a crash between the two leaves
//! a consistent pair (the drift file is cut back to the recorded length on resume).
//!
//! A parallel run (format 2) records every range's own last key, counts and drift length, with each
//! range's drift in `FILE.drift.<range>`; `--resume` continues every range from its own last key.
//! Serial checkpoints (format 1, which older versions wrote without a `format` field) are still read.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::model::KeyRange;
use crate::model::{Drift, Key, Summary};

/// How often the checkpoint is rewritten while a scan runs.
pub const SAVE_EVERY: Duration = Duration::from_secs(2);

/// What a checkpoint file holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    /// Identifies the run's query, key, index and range: resuming another run's checkpoint is refused.
    pub fingerprint: String,
    /// Every key up to and including this one has been compared.
    pub last_key: Key,
    pub summary: Summary,
    pub fields: BTreeMap<String, u64>,
    /// Bytes of `FILE.drift` that hold the drift up to `last_key`.
    pub drift_bytes: u64,
    /// Snapshots the compared keys span so far.
    pub snapshots: u32,
    pub snapshot_ms: Option<i64>,
}

/// A checkpoint file of either format.
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    /// Format 1: one serial scan.
    Serial(Checkpoint),
    /// Format 2: the ranges of a parallel (or sampled) scan.
    Ranges(RangesCheckpoint),
}

impl Checkpoint {
    /// The serial checkpoint at `path`, or None when there is none (a run that finished removes it).
    pub fn load(path: &Path) -> anyhow::Result<Option<Checkpoint>> {
        match Saved::load(path)? {
            None => Ok(None),
            Some(Saved::Serial(c)) => Ok(Some(c)),
            Some(Saved::Ranges(_)) => bail!(
                "the checkpoint {} records several ranges (a --parallel run), not one serial scan",
                path.display()
            ),
        }
    }
}

impl Saved {
    /// The checkpoint at `path`, or None when there is none.
    pub fn load(path: &Path) -> anyhow::Result<Option<Saved>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read the checkpoint {}", path.display())),
        };
        let not_ours = || format!("{} is not a recon checkpoint", path.display());
        let value: serde_json::Value = serde_json::from_str(&text).with_context(not_ours)?;
        match value.get("format").and_then(serde_json::Value::as_u64) {
            None | Some(1) => Ok(Some(Saved::Serial(
                serde_json::from_value(value).with_context(not_ours)?,
            ))),
            Some(2) => Ok(Some(Saved::Ranges(
                serde_json::from_value(value).with_context(not_ours)?,
            ))),
            Some(n) => bail!(
                "the checkpoint {} has format {n}, newer than this recon reads (1 and 2)",
                path.display()
            ),
        }
    }
}

/// Format 2: a scan over several ranges, each with its own progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RangesCheckpoint {
    /// Always 2.
    pub format: u32,
    pub fingerprint: String,
    /// Snapshots the compared keys span so far.
    pub snapshots: u32,
    pub snapshot_ms: Option<i64>,
    pub ranges: Vec<RangeProgress>,
}

/// One range of a [`RangesCheckpoint`]: its bounds, and how far it got.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RangeProgress {
    pub after: Option<Key>,
    pub until: Option<Key>,
    /// Every key of the range up to and including this one has been compared.
    pub last_key: Option<Key>,
    /// Every key of the range has been compared.
    pub done: bool,
    pub summary: Summary,
    pub fields: BTreeMap<String, u64>,
    /// Bytes of `FILE.drift.<range>` that hold the drift up to `last_key`.
    pub drift_bytes: u64,
}

impl RangeProgress {
    /// What is left of the range to compare.
    pub fn rest(&self) -> KeyRange {
        KeyRange {
            after: self.last_key.clone().or_else(|| self.after.clone()),
            until: self.until.clone(),
        }
    }
}

pub fn range_drift_path(path: &Path, range: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".drift.{range}"));
    PathBuf::from(name)
}

/// Opens a drift file cut back to `bytes` (what the checkpoint vouches for), handing its drift to
/// `replay`, ready to append.
fn open_drift_file(
    drift_path: &Path,
    bytes: u64,
    mut replay: impl FnMut(Drift) -> anyhow::Result<()>,
) -> anyhow::Result<BufWriter<File>> {
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(drift_path)
        .with_context(|| format!("cannot open {}", drift_path.display()))?;
    file.set_len(bytes)
        .with_context(|| format!("cannot cut {} back to the checkpoint", drift_path.display()))?;
    if bytes > 0 {
        let reader = BufReader::new(File::open(drift_path)?);
        for line in reader.lines() {
            replay(super::spool::decode_line(&line?)?)?;
        }
    }
    let mut drift = BufWriter::new(file);
    io::Seek::seek(&mut drift, io::SeekFrom::End(0))?;
    Ok(drift)
}

/// Writes `value` to `path` atomically (temp file next to it, fsync, rename).
fn save_atomically(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write a checkpoint next to {}", path.display()))?;
    serde_json::to_writer(&mut tmp, value)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write the checkpoint {}", path.display()))?;
    Ok(())
}

/// Keeps a format-2 checkpoint up to date while the ranges of a parallel scan run; shared by the range
/// workers, each of which reports its own progress.
pub struct RangesCheckpointWriter {
    path: PathBuf,
    state: Mutex<RangesCheckpoint>,
}

impl RangesCheckpointWriter {
    /// Starts a checkpoint over `ranges`, or continues `resumed` (whose ranges are kept: statistics may
    /// have changed since, and the ranges must stay those the saved progress refers to).
    pub fn open(
        path: &Path,
        fingerprint: String,
        ranges: &[KeyRange],
        resumed: Option<RangesCheckpoint>,
        snapshot_ms: Option<i64>,
    ) -> anyhow::Result<RangesCheckpointWriter> {
        let state = match resumed {
            Some(c) => {
                if c.fingerprint != fingerprint {
                    bail!(
                        "the checkpoint {} belongs to another run (different query, key, index or range); \
                         remove it or use another --checkpoint file",
                        path.display()
                    );
                }
                RangesCheckpoint {
                    snapshots: c.snapshots + 1,
                    snapshot_ms: c.snapshot_ms.or(snapshot_ms),
                    ..c
                }
            }
            None => RangesCheckpoint {
                format: 2,
                fingerprint,
                snapshots: 1,
                snapshot_ms,
                ranges: ranges
                    .iter()
                    .map(|r| RangeProgress {
                        after: r.after.clone(),
                        until: r.until.clone(),
                        last_key: None,
                        done: false,
                        summary: Summary::default(),
                        fields: BTreeMap::new(),
                        drift_bytes: 0,
                    })
                    .collect(),
            },
        };
        // Saved at once: a crash before the first range reports still pins the ranges.
        save_atomically(path, &state)?;
        Ok(RangesCheckpointWriter {
            path: path.to_path_buf(),
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RangesCheckpoint> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every range's saved progress, in range order.
    pub fn ranges(&self) -> Vec<RangeProgress> {
        self.lock().ranges.clone()
    }

    pub fn snapshots(&self) -> u32 {
        self.lock().snapshots
    }

    /// The earliest snapshot the compared data comes from.
    pub fn snapshot_ms(&self) -> Option<i64> {
        self.lock().snapshot_ms
    }

    /// Range `index`'s drift file, with the drift it already holds handed to `replay`.
    pub fn range_log(&self, index: usize, replay: impl FnMut(Drift) -> anyhow::Result<()>) -> anyhow::Result<RangeLog> {
        let bytes = self.lock().ranges[index].drift_bytes;
        let file = open_drift_file(&range_drift_path(&self.path, index), bytes, replay)?;
        Ok(RangeLog {
            file,
            bytes,
            last_save: Instant::now(),
        })
    }

    /// Records range `index`'s progress (its log synced first) and rewrites the checkpoint. `summary`
    /// and `fields` cover the whole range so far, earlier runs included.
    pub fn save_range(
        &self,
        index: usize,
        log: &mut RangeLog,
        last_key: Option<&Key>,
        summary: &Summary,
        fields: &BTreeMap<String, u64>,
        done: bool,
    ) -> anyhow::Result<()> {
        log.file.flush()?;
        log.file.get_ref().sync_data()?;
        log.last_save = Instant::now();
        let mut state = self.lock();
        let range = &mut state.ranges[index];
        if let Some(key) = last_key {
            range.last_key = Some(key.clone());
        }
        range.done = done;
        range.summary = summary.clone();
        range.fields = fields.clone();
        range.drift_bytes = log.bytes;
        save_atomically(&self.path, &*state)
    }

    /// The run finished: nothing is left to resume.
    pub fn finish(self) -> anyhow::Result<()> {
        let state = self
            .state
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let drift_files = (0..state.ranges.len()).map(|i| range_drift_path(&self.path, i));
        for path in drift_files.chain([self.path.clone()]) {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
            }
        }
        Ok(())
    }
}

/// One range's drift file during a parallel scan with a checkpoint.
pub struct RangeLog {
    file: BufWriter<File>,
    bytes: u64,
    last_save: Instant,
}

impl RangeLog {
    pub fn drift(&mut self, drift: &Drift) -> anyhow::Result<()> {
        let line = super::spool::encode_line(drift)?;
        self.file.write_all(line.as_bytes())?;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Whether this range's progress is due to be saved again.
    pub fn due(&self) -> bool {
        self.last_save.elapsed() >= SAVE_EVERY
    }
}

pub fn drift_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".drift");
    PathBuf::from(name)
}

/// Keeps the checkpoint and its drift file up to date during a scan.
pub struct CheckpointWriter {
    path: PathBuf,
    fingerprint: String,
    drift: BufWriter<File>,
    drift_bytes: u64,
    base_summary: Summary,
    base_fields: BTreeMap<String, u64>,
    snapshots: u32,
    snapshot_ms: Option<i64>,
    last_save: Instant,
}

impl CheckpointWriter {
    /// Starts a fresh checkpoint, or continues `resumed` (whose drift is handed to `replay` first).
    pub fn open(
        path: &Path,
        fingerprint: String,
        resumed: Option<&Checkpoint>,
        snapshot_ms: Option<i64>,
        mut replay: impl FnMut(Drift) -> anyhow::Result<()>,
    ) -> anyhow::Result<CheckpointWriter> {
        let drift_path = drift_path(path);
        let (drift_bytes, base_summary, base_fields, snapshots) = match resumed {
            None => (0, Summary::default(), BTreeMap::new(), 1),
            Some(c) => {
                if c.fingerprint != fingerprint {
                    bail!(
                        "the checkpoint {} belongs to another run (different query, key, index or range); \
                         remove it or use another --checkpoint file",
                        path.display()
                    );
                }
                (c.drift_bytes, c.summary.clone(), c.fields.clone(), c.snapshots + 1)
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&drift_path)
            .with_context(|| format!("cannot open {}", drift_path.display()))?;
        file.set_len(drift_bytes)
            .with_context(|| format!("cannot cut {} back to the checkpoint", drift_path.display()))?;
        if drift_bytes > 0 {
            let reader = BufReader::new(File::open(&drift_path)?);
            for line in reader.lines() {
                let stored = super::spool::decode_line(&line?)?;
                replay(stored)?;
            }
        }
        let mut drift = BufWriter::new(file);
        io::Seek::seek(&mut drift, io::SeekFrom::End(0))?;
        Ok(CheckpointWriter {
            path: path.to_path_buf(),
            fingerprint,
            drift,
            drift_bytes,
            base_summary,
            base_fields,
            snapshots,
            snapshot_ms: resumed.and_then(|c| c.snapshot_ms).or(snapshot_ms),
            last_save: Instant::now(),
        })
    }

    /// Counts and fields recorded by the run(s) this one continues.
    pub fn base(&self) -> (&Summary, &BTreeMap<String, u64>) {
        (&self.base_summary, &self.base_fields)
    }

    pub fn snapshots(&self) -> u32 {
        self.snapshots
    }

    /// Records the snapshot of a fresh run (a resumed one keeps its first).
    pub fn note_snapshot(&mut self, snapshot_ms: Option<i64>) {
        self.snapshot_ms = self.snapshot_ms.or(snapshot_ms);
    }

    /// The earliest snapshot the compared data comes from.
    pub fn snapshot_ms(&self) -> Option<i64> {
        self.snapshot_ms
    }

    pub fn drift(&mut self, drift: &Drift) -> anyhow::Result<()> {
        let line = super::spool::encode_line(drift)?;
        self.drift.write_all(line.as_bytes())?;
        self.drift_bytes += line.len() as u64;
        Ok(())
    }

    /// Saves when the last save is older than [`SAVE_EVERY`] (or `force`). `summary` and `fields` are
    /// this run's counts so far, `last_key` the last key they cover.
    pub fn maybe_save(
        &mut self,
        last_key: &Key,
        summary: &Summary,
        fields: &BTreeMap<String, u64>,
        force: bool,
    ) -> anyhow::Result<()> {
        if !force && self.last_save.elapsed() < SAVE_EVERY {
            return Ok(());
        }
        self.drift.flush()?;
        self.drift.get_ref().sync_data()?;
        let mut total = self.base_summary.clone();
        total += summary;
        let mut all_fields = self.base_fields.clone();
        for (field, n) in fields {
            *all_fields.entry(field.clone()).or_default() += n;
        }
        let checkpoint = Checkpoint {
            fingerprint: self.fingerprint.clone(),
            last_key: last_key.clone(),
            summary: total,
            fields: all_fields,
            drift_bytes: self.drift_bytes,
            snapshots: self.snapshots,
            snapshot_ms: self.snapshot_ms,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write a checkpoint next to {}", self.path.display()))?;
        serde_json::to_writer(&mut tmp, &checkpoint)?;
        tmp.as_file().sync_data()?;
        tmp.persist(&self.path)
            .with_context(|| format!("cannot write the checkpoint {}", self.path.display()))?;
        self.last_save = Instant::now();
        Ok(())
    }

    /// The run finished: nothing is left to resume.
    pub fn finish(self) -> anyhow::Result<()> {
        drop(self.drift);
        for path in [self.path.clone(), drift_path(&self.path)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
            }
        }
        Ok(())
    }
}

/// A stable fingerprint of what a run compares (FNV-1a: the same on every build and platform).
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0u8]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}
