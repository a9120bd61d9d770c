//! Drift parked in an anonymous temp file, whole (evidence documents included), so that a run can
//! hold millions of drifted keys until a recheck or until parallel ranges are replayed in key order
//! without holding them in memory. One JSON line per drift; the file vanishes with the process.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::Doc;
use crate::model::{DocMeta, Drift, DriftKind, FieldDiff, Key, KeyedDoc};

/// A [`Drift`] as stored: the same content, with the fields serde skips on the report side.
#[derive(Serialize, Deserialize)]
struct Stored {
    key: Key,
    kind: DriftKind,
    cause: Option<DriftKind>,
    ids: Vec<String>,
    diffs: Vec<StoredDiff>,
    expected: Option<Doc>,
    actual: Vec<StoredDoc>,
}

#[derive(Serialize, Deserialize)]
struct StoredDiff {
    path: String,
    field: String,
    expected: Option<Value>,
    actual: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct StoredDoc {
    key: Key,
    doc: Doc,
    meta: DocMeta,
}

impl Stored {
    fn new(drift: &Drift) -> Stored {
        Stored {
            key: drift.key.clone(),
            kind: drift.kind,
            cause: drift.cause,
            ids: drift.ids.clone(),
            diffs: drift
                .diffs
                .iter()
                .map(|d| StoredDiff {
                    path: d.path.clone(),
                    field: d.field.clone(),
                    expected: d.expected.clone(),
                    actual: d.actual.clone(),
                })
                .collect(),
            expected: drift.expected.clone(),
            actual: drift
                .actual
                .iter()
                .map(|d| StoredDoc {
                    key: d.key.clone(),
                    doc: d.doc.clone(),
                    meta: d.meta.clone(),
                })
                .collect(),
        }
    }

    fn into_drift(self) -> Drift {
        Drift {
            key: self.key,
            kind: self.kind,
            cause: self.cause,
            ids: self.ids,
            diffs: self
                .diffs
                .into_iter()
                .map(|d| FieldDiff {
                    path: d.path,
                    field: d.field,
                    expected: d.expected,
                    actual: d.actual,
                })
                .collect(),
            expected: self.expected,
            actual: self
                .actual
                .into_iter()
                .map(|d| KeyedDoc {
                    key: d.key,
                    doc: d.doc,
                    meta: d.meta,
                })
                .collect(),
        }
    }
}

/// One drift as one line of text (with its newline), as the spool stores it.
pub fn encode_line(drift: &Drift) -> io::Result<String> {
    let mut line = serde_json::to_string(&Stored::new(drift))?;
    line.push('\n');
    Ok(line)
}

/// The drift of one line written by [`encode_line`].
pub fn decode_line(line: &str) -> io::Result<Drift> {
    let stored: Stored = serde_json::from_str(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(stored.into_drift())
}

/// Drift written in arrival order, read back in the same order.
pub struct DriftSpool {
    file: BufWriter<File>,
    len: u64,
}

impl DriftSpool {
    pub fn new() -> io::Result<DriftSpool> {
        Ok(DriftSpool {
            file: BufWriter::with_capacity(64 * 1024, tempfile::tempfile()?),
            len: 0,
        })
    }

    pub fn push(&mut self, drift: &Drift) -> io::Result<()> {
        serde_json::to_writer(&mut self.file, &Stored::new(drift))?;
        self.len += 1;
        self.file.write_all(b"\n")
    }

    /// Drifted keys pushed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn replay(self) -> io::Result<DriftReplay> {
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(DriftReplay {
            reader: BufReader::with_capacity(64 * 1024, file),
            line: String::new(),
        })
    }
}

pub struct DriftReplay {
    reader: BufReader<File>,
    line: String,
}

impl DriftReplay {
    pub fn next_drift(&mut self) -> io::Result<Option<Drift>> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Ok(None);
        }
        let stored: Stored =
            serde_json::from_str(&self.line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(Some(stored.into_drift()))
    }

    /// Up to `n` drifts, fewer only at the end.
    pub fn next_batch(&mut self, n: usize) -> io::Result<Vec<Drift>> {
        let mut batch = Vec::with_capacity(n.min(4096));
        while batch.len() < n {
            match self.next_drift()? {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drift_comes_back_whole_with_exact_numbers() {
        let price: Value = serde_json::from_str("50.10").unwrap();
        let drift = Drift {
            key: Key::Int(9007199254740993),
            kind: DriftKind::Pending,
            cause: Some(DriftKind::Mismatched),
            ids: vec!["9007199254740993".into()],
            diffs: vec![FieldDiff {
                path: "products[sku=A].price".into(),
                field: "products.price".into(),
                expected: Some(price),
                actual: None,
            }],
            expected: Some(json!({"a": null}).as_object().unwrap().clone().into()),
            actual: vec![KeyedDoc {
                key: Key::Int(9007199254740993),
                doc: Doc::new(),
                meta: DocMeta {
                    id: Some("x".into()),
                    version: Some(crate::model::Version::new("v3")),
                    ..DocMeta::default()
                },
            }],
        };
        let mut spool = DriftSpool::new().unwrap();
        spool.push(&drift).unwrap();
        spool.push(&drift).unwrap();
        assert_eq!(spool.len(), 2);
        let mut replay = spool.replay().unwrap();
        let back = replay.next_batch(10).unwrap();
        assert_eq!(back, vec![drift.clone(), drift]);
        assert_eq!(back[0].diffs[0].expected.as_ref().unwrap().to_string(), "50.10");
        assert!(replay.next_drift().unwrap().is_none());
    }
}
