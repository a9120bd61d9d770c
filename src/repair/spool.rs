//! Drifted keys and planned actions parked in anonymous temp files, so that a repair's memory stays
//! flat however much drift there is: the check's keys go to a [`KeySpool`], are planned a chunk at a
//! time into a [`PlanSpool`] (counted as they go, so the caps are checked before any write), and the
//! plan is read back a chunk at a time to be logged, applied and re-checked. Both files vanish with
//! the process.
//!
//! A planned action is two lines: the action (as the audit's plan lines, with its before-image), then
//! the row it was verified against, as the JSON the create will send (`null`: the row is absent, `-`:
//! not verified by this run). A create is then written from those bytes without decoding them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

use serde_json::Value;

use super::plan::{PlannedAction, Row, Verified};
use crate::model::{DriftKind, Key};
use crate::source::WriteKind;

/// How many planned actions the plan summary shows.
const SAMPLE: usize = 10;

/// Keys in arrival order, one JSON value a line.
pub struct KeySpool {
    file: BufWriter<File>,
    len: u64,
}

impl KeySpool {
    pub fn new() -> io::Result<KeySpool> {
        Ok(KeySpool {
            file: BufWriter::with_capacity(1 << 16, tempfile::tempfile()?),
            len: 0,
        })
    }

    pub fn push(&mut self, key: &Key) -> io::Result<()> {
        serde_json::to_writer(&mut self.file, key)?;
        self.file.write_all(b"\n")?;
        self.len += 1;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys again, `size` at a time, in the order they came.
    pub fn chunks(self, size: usize) -> io::Result<KeyChunks> {
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(KeyChunks {
            reader: BufReader::with_capacity(1 << 16, file),
            size: size.max(1),
        })
    }
}

pub struct KeyChunks {
    reader: BufReader<File>,
    size: usize,
}

impl Iterator for KeyChunks {
    type Item = io::Result<Vec<Key>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut keys = Vec::with_capacity(self.size);
        let mut line = String::new();
        while keys.len() < self.size {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => match serde_json::from_str(line.trim_end()) {
                    Ok(key) => keys.push(key),
                    Err(e) => return Some(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
                },
                Err(e) => return Some(Err(e)),
            }
        }
        (!keys.is_empty()).then_some(Ok(keys))
    }
}

/// Planned actions on disk, with what the plan summary and the caps need counted on the way in.
pub struct PlanSpool {
    file: BufWriter<File>,
    len: u64,
    keys: u64,
    deletes: u64,
    last_key: Option<Value>,
    counts: BTreeMap<(DriftKind, WriteKind), u64>,
    sample: Vec<PlannedAction>,
}

impl PlanSpool {
    pub fn new() -> io::Result<PlanSpool> {
        Ok(PlanSpool {
            file: BufWriter::with_capacity(1 << 20, tempfile::tempfile()?),
            len: 0,
            keys: 0,
            deletes: 0,
            last_key: None,
            counts: BTreeMap::new(),
            sample: Vec::new(),
        })
    }

    /// Appends one action. A key's actions come together (they are planned together), so keys are
    /// counted as they change.
    pub fn push(&mut self, action: &PlannedAction) -> io::Result<()> {
        serde_json::to_writer(&mut self.file, action)?;
        self.file.write_all(b"\n")?;
        match action.verified.as_ref().map(|v| v.row.as_ref()) {
            None => self.file.write_all(b"-")?,
            Some(None) => self.file.write_all(b"null")?,
            Some(Some(row)) => self.file.write_all(&row.json())?,
        }
        self.file.write_all(b"\n")?;
        self.len += 1;
        if self.last_key.as_ref() != Some(&action.key) {
            self.keys += 1;
            self.last_key = Some(action.key.clone());
        }
        if action.action == WriteKind::Delete {
            self.deletes += 1;
        }
        *self.counts.entry((action.drift, action.action)).or_insert(0) += 1;
        if self.sample.len() < SAMPLE {
            self.sample.push(PlannedAction {
                verified: None,
                ..action.clone()
            });
        }
        Ok(())
    }

    /// Actions planned.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys with at least one action.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    pub fn deletes(&self) -> u64 {
        self.deletes
    }

    pub fn counts(&self) -> &BTreeMap<(DriftKind, WriteKind), u64> {
        &self.counts
    }

    /// The first few actions, for the plan summary.
    pub fn sample(&self) -> &[PlannedAction] {
        &self.sample
    }

    /// Reads the plan from its start, `size` actions at a time. One reader at a time: it shares the
    /// spool's file position.
    pub fn read(&mut self, size: usize) -> io::Result<PlanChunks> {
        self.file.flush()?;
        let mut file = self.file.get_ref().try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        Ok(PlanChunks {
            reader: BufReader::with_capacity(1 << 20, file),
            size: size.max(1),
        })
    }
}

pub struct PlanChunks {
    reader: BufReader<File>,
    size: usize,
}

impl PlanChunks {
    fn next_action(&mut self, line: &mut Vec<u8>) -> io::Result<Option<PlannedAction>> {
        let invalid = |e: serde_json::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        line.clear();
        if self.reader.read_until(b'\n', line)? == 0 {
            return Ok(None);
        }
        let mut action: PlannedAction = serde_json::from_slice(line).map_err(invalid)?;
        line.clear();
        self.reader.read_until(b'\n', line)?;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        action.verified = match line.as_slice() {
            b"-" => None,
            b"null" => Some(Verified { row: None }),
            json => Some(Verified {
                row: Some(Row::Json(json.to_vec())),
            }),
        };
        Ok(Some(action))
    }
}

impl Iterator for PlanChunks {
    type Item = io::Result<Vec<PlannedAction>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut actions = Vec::with_capacity(self.size.min(4096));
        let mut line = Vec::new();
        while actions.len() < self.size {
            match self.next_action(&mut line) {
                Ok(Some(action)) => actions.push(action),
                Ok(None) => break,
                Err(e) => return Some(Err(e)),
            }
        }
        (!actions.is_empty()).then_some(Ok(actions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(seq: u64, key: i64, kind: WriteKind, row: Option<Option<&str>>) -> PlannedAction {
        PlannedAction {
            seq,
            drift: if kind == WriteKind::Delete {
                DriftKind::Orphaned
            } else {
                DriftKind::Missing
            },
            action: kind,
            key: json!(key),
            location: "orders".into(),
            id: key.to_string(),
            if_version: None,
            fields: None,
            before: None,
            verified: row.map(|r| Verified {
                row: r.map(|text| Row::Doc(serde_json::from_str(text).unwrap())),
            }),
        }
    }

    #[test]
    fn a_plan_reads_back_in_chunks_with_its_rows_as_json_and_is_counted() {
        let mut spool = PlanSpool::new().unwrap();
        let actions = vec![
            action(
                1,
                1,
                WriteKind::Create,
                Some(Some(r#"{"orderId":1,"totalPrice":10.50}"#)),
            ),
            action(2, 2, WriteKind::Delete, Some(None)),
            action(3, 2, WriteKind::Delete, None),
        ];
        for a in &actions {
            spool.push(a).unwrap();
        }
        assert_eq!((spool.len(), spool.keys(), spool.deletes()), (3, 2, 2));
        assert_eq!(spool.counts()[&(DriftKind::Orphaned, WriteKind::Delete)], 2);
        assert_eq!(spool.sample().len(), 3);
        for _ in 0..2 {
            let chunks: Vec<Vec<PlannedAction>> = spool.read(2).unwrap().map(Result::unwrap).collect();
            assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
            let back: Vec<PlannedAction> = chunks.into_iter().flatten().collect();
            let row = back[0].verified.as_ref().unwrap().row.as_ref().unwrap();
            assert_eq!(&*row.json(), br#"{"orderId":1,"totalPrice":10.50}"#);
            assert_eq!(back[1].verified, Some(Verified { row: None }));
            assert_eq!(back[2].verified, None);
            assert_eq!(back[2].seq, 3);
        }
    }

    #[test]
    fn keys_read_back_in_chunks_in_arrival_order() {
        let mut spool = KeySpool::new().unwrap();
        for k in [Key::Int(3), Key::Text("a b".into()), Key::Int(9007199254740993)] {
            spool.push(&k).unwrap();
        }
        assert_eq!(spool.len(), 3);
        let chunks: Vec<Vec<Key>> = spool.chunks(2).unwrap().map(Result::unwrap).collect();
        assert_eq!(
            chunks,
            vec![
                vec![Key::Int(3), Key::Text("a b".into())],
                vec![Key::Int(9007199254740993)]
            ]
        );
    }
}
