//! The write-ahead audit log: NDJSON, append-only, the source of truth for `--resume` and `undo`.
//!
//! A run writes a `header`, then its whole plan (`plan` lines, without documents), then for each bulk
//! request every `intent` with its before-image, fsynced before the request is sent, then each item's
//! `outcome`. A crash between an intent and its outcome leaves an intent without outcome: resume sends
//! it again, and since every write is conditional it either applies now or conflicts, never twice.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::plan::{BeforeImage, PlannedAction};
use crate::source::elasticsearch::write::{ItemOutcome, ItemStatus, WriteAction, WriteKind};

pub const AUDIT_SCHEMA: &str = "recon.audit/v1";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot write the audit log {path}: {source}; nothing was written to the read model")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot append to the audit log {path}: {source}")]
    Append { path: PathBuf, source: std::io::Error },
    #[error("cannot read the audit log {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: not an audit record: {detail}")]
    Invalid { path: PathBuf, line: usize, detail: String },
}

/// The first line: what the run was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub schema: String,
    /// `repair` or `undo`.
    pub command: String,
    pub started_at: String,
    pub config: Option<String>,
    pub index: String,
    pub mode: Option<String>,
    pub tool_version: String,
}

/// A write about to be sent, with what it overwrites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub seq: u64,
    pub action: WriteKind,
    pub key: Value,
    pub index: String,
    pub id: String,
    #[serde(default)]
    pub if_seq_no: Option<i64>,
    #[serde(default)]
    pub if_primary_term: Option<i64>,
    #[serde(default)]
    pub doc: Option<Map<String, Value>>,
    #[serde(default)]
    pub before: Option<BeforeImage>,
}

impl Intent {
    pub fn write_action(&self) -> WriteAction {
        WriteAction {
            kind: self.action,
            index: self.index.clone(),
            id: self.id.clone(),
            doc: self.doc.clone(),
            if_seq_no: self.if_seq_no,
            if_primary_term: self.if_primary_term,
        }
    }
}

/// How an action ended. `skipped` actions were never sent (re-verification said no).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    pub seq: u64,
    /// `applied`, `conflict`, `failed` or `skipped`.
    pub status: String,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub seq_no: Option<i64>,
    #[serde(default)]
    pub primary_term: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
}

impl OutcomeRecord {
    pub fn from_item(seq: u64, item: &ItemOutcome) -> OutcomeRecord {
        OutcomeRecord {
            seq,
            status: match item.status {
                ItemStatus::Applied => "applied",
                ItemStatus::Conflict => "conflict",
                ItemStatus::Failed => "failed",
            }
            .to_string(),
            result: item.result.clone(),
            index: item.index.clone(),
            seq_no: item.seq_no,
            primary_term: item.primary_term,
            error: item.error.clone(),
        }
    }

    pub fn skipped(seq: u64, reason: impl Into<String>, result: &str) -> OutcomeRecord {
        OutcomeRecord {
            seq,
            status: "skipped".into(),
            result: Some(result.into()),
            index: None,
            seq_no: None,
            primary_term: None,
            error: Some(reason.into()),
        }
    }
}

#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    record: &'a T,
}

/// An open audit log, appended to and synced to disk in batches.
pub struct AuditLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl AuditLog {
    /// Creates a new log; an existing file is never overwritten.
    pub fn create(path: &Path) -> Result<AuditLog, AuditError> {
        AuditLog::open(path, OpenOptions::new().write(true).create_new(true))
    }

    /// Opens an existing log to go on appending (`--resume`).
    pub fn append_to(path: &Path) -> Result<AuditLog, AuditError> {
        AuditLog::open(path, OpenOptions::new().append(true))
    }

    fn open(path: &Path, options: &OpenOptions) -> Result<AuditLog, AuditError> {
        let file = options.open(path).map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn line<T: Serialize>(&mut self, kind: &str, record: &T) -> Result<(), AuditError> {
        let append = |source| AuditError::Append {
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut self.out, &Tagged { kind, record }).map_err(|e| append(e.into()))?;
        self.out.write_all(b"\n").map_err(append)
    }

    pub fn header(&mut self, header: &Header) -> Result<(), AuditError> {
        self.line("header", header)?;
        self.sync()
    }

    /// The plan, without documents or before-images: resume needs only what is left to do.
    pub fn plan(&mut self, actions: &[PlannedAction]) -> Result<(), AuditError> {
        for a in actions {
            let light = PlannedAction {
                before: None,
                ..a.clone()
            };
            self.line("plan", &light)?;
        }
        self.sync()
    }

    /// Appends intents and makes them durable: only then may the writes go out.
    pub fn intents(&mut self, intents: &[Intent]) -> Result<(), AuditError> {
        self.append_intents(intents)?
            .sync_data()
            .map_err(|source| AuditError::Append {
                path: self.path.clone(),
                source,
            })
    }

    /// Appends intents and hands them to the operating system; the caller makes them durable with
    /// the returned handle's `sync_data` before sending the writes. Concurrent batches sync outside
    /// the log's lock, so their fsyncs overlap (the filesystem commits them together).
    pub fn append_intents(&mut self, intents: &[Intent]) -> Result<File, AuditError> {
        for intent in intents {
            self.line("intent", intent)?;
        }
        let append = |source| AuditError::Append {
            path: self.path.clone(),
            source,
        };
        self.out.flush().map_err(append)?;
        self.out.get_ref().try_clone().map_err(append)
    }

    /// Appends outcomes, handed to the operating system but not fsynced: the next batch's intents
    /// (or [`finish`](Self::finish)) make them durable. Losing one to a power cut is safe: resume sends
    /// its intent again, which conflicts with itself and is recognised as applied.
    pub fn outcomes(&mut self, outcomes: &[OutcomeRecord]) -> Result<(), AuditError> {
        for outcome in outcomes {
            self.line("outcome", outcome)?;
        }
        self.out.flush().map_err(|source| AuditError::Append {
            path: self.path.clone(),
            source,
        })
    }

    /// Makes everything appended so far durable.
    pub fn finish(&mut self) -> Result<(), AuditError> {
        self.sync()
    }

    pub fn note(&mut self, kind: &str, data: &Value) -> Result<(), AuditError> {
        self.line(kind, data)?;
        self.sync()
    }

    fn sync(&mut self) -> Result<(), AuditError> {
        let append = |source| AuditError::Append {
            path: self.path.clone(),
            source,
        };
        self.out.flush().map_err(append)?;
        self.out.get_ref().sync_data().map_err(append)
    }
}

/// A log read back.
#[derive(Debug, Default)]
pub struct AuditContents {
    pub header: Option<Header>,
    pub plan: Vec<PlannedAction>,
    pub intents: BTreeMap<u64, Intent>,
    /// The last outcome recorded for each seq.
    pub outcomes: BTreeMap<u64, OutcomeRecord>,
}

/// Reads a log. A torn last line (the process died while writing it) is ignored: its action has no
/// durable record, exactly as if the write had not been attempted.
pub fn read(path: &Path) -> Result<AuditContents, AuditError> {
    let file = File::open(path).map_err(|source| AuditError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|source| AuditError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let mut contents = AuditContents::default();
    let last = lines.len();
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let invalid = |detail: String| AuditError::Invalid {
            path: path.to_path_buf(),
            line: n + 1,
            detail,
        };
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if n + 1 == last => break,
            Err(e) => return Err(invalid(e.to_string())),
        };
        let kind = value["type"].as_str().unwrap_or_default().to_string();
        let parse_err = |e: serde_json::Error| invalid(format!("{kind}: {e}"));
        match kind.as_str() {
            "header" if contents.header.is_none() => {
                contents.header = Some(serde_json::from_value(value).map_err(parse_err)?)
            }
            "plan" => contents.plan.push(serde_json::from_value(value).map_err(parse_err)?),
            "intent" => {
                let intent: Intent = serde_json::from_value(value).map_err(parse_err)?;
                contents.intents.insert(intent.seq, intent);
            }
            "outcome" => {
                let outcome: OutcomeRecord = serde_json::from_value(value).map_err(parse_err)?;
                contents.outcomes.insert(outcome.seq, outcome);
            }
            // Later headers (resume), notes and unknown types are for people.
            _ => {}
        }
    }
    Ok(contents)
}

/// The default log name, in the current directory: `recon-repair-20261128T093000Z.ndjson`, with
/// `-2`, `-3`… when runs start within the same second.
pub fn default_path(command: &str) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut path = PathBuf::from(format!("recon-{command}-{stamp}.ndjson"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = PathBuf::from(format!("recon-{command}-{stamp}-{n}.ndjson"));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DriftKind;
    use serde_json::json;

    #[test]
    fn a_log_reads_back_with_the_last_outcome_per_action_and_a_torn_tail_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.ndjson");
        let mut log = AuditLog::create(&path).unwrap();
        log.header(&Header {
            schema: AUDIT_SCHEMA.into(),
            command: "repair".into(),
            started_at: "2026-11-28T00:00:00Z".into(),
            config: Some("recon.toml".into()),
            index: "orders".into(),
            mode: Some("replace".into()),
            tool_version: "0".into(),
        })
        .unwrap();
        log.plan(&[PlannedAction {
            seq: 1,
            drift: DriftKind::Missing,
            action: WriteKind::Create,
            key: json!(9007199254740993i64),
            index: "orders".into(),
            id: "9007199254740993".into(),
            if_seq_no: None,
            if_primary_term: None,
            fields: None,
            before: None,
            verified: None,
        }])
        .unwrap();
        let intent = Intent {
            seq: 1,
            action: WriteKind::Create,
            key: json!(9007199254740993i64),
            index: "orders".into(),
            id: "9007199254740993".into(),
            if_seq_no: None,
            if_primary_term: None,
            doc: serde_json::from_str(r#"{"totalPrice": 10.50}"#).unwrap(),
            before: None,
        };
        log.intents(std::slice::from_ref(&intent)).unwrap();
        log.outcomes(&[OutcomeRecord::skipped(1, "first", "x")]).unwrap();
        log.outcomes(&[OutcomeRecord::skipped(1, "second", "y")]).unwrap();
        drop(log);
        assert!(AuditLog::create(&path).is_err(), "an existing log is never overwritten");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"type\":\"outcome\",\"seq\":2,").unwrap();
        let contents = read(&path).unwrap();
        assert_eq!(contents.header.unwrap().index, "orders");
        assert_eq!(contents.plan[0].key.to_string(), "9007199254740993");
        assert_eq!(contents.intents[&1], intent);
        assert_eq!(
            contents.intents[&1].doc.as_ref().unwrap()["totalPrice"].to_string(),
            "10.50"
        );
        assert_eq!(contents.outcomes[&1].error.as_deref(), Some("second"));
        assert!(!contents.outcomes.contains_key(&2));
    }
}
