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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::plan::{BeforeImage, PlannedAction};
use crate::document::Doc;
use crate::model::Version;
use crate::source::{ItemOutcome, ItemStatus, WriteAction, WriteKind};

/// The log this recon writes: versions as the read model's opaque tokens (`if_version`, `version`)
/// and documents' places as `location`. Logs of older recons (`recon.audit/v1`, Elasticsearch's
/// versions spelled out) are read too: see [`read`].
pub const AUDIT_SCHEMA: &str = "recon.audit/v2";

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
    /// How many `plan` lines follow. A log with fewer was cut off while its plan was being written
    /// (before any intent). Absent in logs of older recons and of undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<u64>,
}

/// A write about to be sent, with what it overwrites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub seq: u64,
    pub action: WriteKind,
    pub key: Value,
    pub location: String,
    pub id: String,
    #[serde(default)]
    pub if_version: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<Doc>,
    #[serde(default)]
    pub before: Option<BeforeImage>,
}

/// An intent's line without its document, borrowed: [`encode_intent`] splices in the document's
/// bytes, encoded once for both the log and the bulk body.
#[derive(Serialize)]
struct IntentLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    action: WriteKind,
    key: &'a Value,
    location: &'a str,
    id: &'a str,
    if_version: &'a Option<Version>,
    before: &'a Option<BeforeImage>,
}

/// Appends `intent`'s log line to `out`, its document given as JSON bytes (`doc_json`, the encoding
/// of `intent.doc`). Reads back as the same [`Intent`].
pub fn encode_intent(intent: &Intent, doc_json: Option<&[u8]>, out: &mut Vec<u8>) {
    let line = IntentLine {
        kind: "intent",
        seq: intent.seq,
        action: intent.action,
        key: &intent.key,
        location: &intent.location,
        id: &intent.id,
        if_version: &intent.if_version,
        before: &intent.before,
    };
    serde_json::to_writer(&mut *out, &line).expect("an intent serializes");
    if let Some(doc) = doc_json {
        // `{...}` becomes `{...,"doc":DOC}`.
        out.pop();
        out.extend_from_slice(b",\"doc\":");
        out.extend_from_slice(doc);
        out.push(b'}');
    }
    out.push(b'\n');
}

impl Intent {
    pub fn write_action(&self) -> WriteAction {
        WriteAction {
            kind: self.action,
            location: self.location.clone(),
            id: self.id.clone(),
            doc: self.doc.clone(),
            if_version: self.if_version.clone(),
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
    /// Where the document is after the write.
    #[serde(default)]
    pub location: Option<String>,
    /// The version the write produced.
    #[serde(default)]
    pub version: Option<Version>,
    #[serde(default)]
    pub error: Option<String>,
    /// How the outcome was established when the answer did not say it (`applied, answer lost; verified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The note of a write whose answer was lost and whose effect was then read back.
pub const ANSWER_LOST_VERIFIED: &str = "applied, answer lost; verified";

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
            location: item.location.clone(),
            version: item.version.clone(),
            error: item.error.clone(),
            note: None,
        }
    }

    pub fn skipped(seq: u64, reason: impl Into<String>, result: &str) -> OutcomeRecord {
        OutcomeRecord {
            seq,
            status: "skipped".into(),
            result: Some(result.into()),
            location: None,
            version: None,
            error: Some(reason.into()),
            note: None,
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
    /// Bytes handed to the operating system so far (what [`GroupSync`] makes durable).
    appended: Arc<AtomicU64>,
    sync: Arc<GroupSync>,
}

/// Group commit: whoever needs the log durable up to a point waits for one fsync that covers it;
/// batches appended while an fsync runs share the next one instead of queueing one each.
pub struct GroupSync {
    path: PathBuf,
    file: Arc<File>,
    appended: Arc<AtomicU64>,
    /// How far the log is known durable.
    synced: tokio::sync::Mutex<u64>,
    fsyncs: AtomicU64,
}

impl GroupSync {
    /// Returns once every byte appended up to `position` is on disk.
    pub async fn through(&self, position: u64) -> Result<(), AuditError> {
        let mut synced = self.synced.lock().await;
        if *synced >= position {
            return Ok(());
        }
        // Everything appended by now, including batches that arrived while the last fsync ran.
        let target = self.appended.load(Ordering::Acquire);
        let file = self.file.clone();
        let append = |source| AuditError::Append {
            path: self.path.clone(),
            source,
        };
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|e| append(std::io::Error::other(e)))?
            .map_err(append)?;
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        *synced = target;
        Ok(())
    }

    /// The fsyncs made through this group so far.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }
}

impl AuditLog {
    /// Creates a new log; an existing file is never overwritten.
    pub fn create(path: &Path) -> Result<AuditLog, AuditError> {
        AuditLog::open(path, OpenOptions::new().write(true).create_new(true))
    }

    /// Opens an existing log to go on appending (`--resume`). A run cut off while writing leaves
    /// its last line unfinished: that line is ended here, so the next record starts a line of its
    /// own instead of being glued to the torn bytes (which would make both unreadable).
    pub fn append_to(path: &Path) -> Result<AuditLog, AuditError> {
        let mut log = AuditLog::open(path, OpenOptions::new().read(true).append(true))?;
        if !ends_a_line(log.out.get_ref()).map_err(|source| AuditError::Read {
            path: path.to_path_buf(),
            source,
        })? {
            log.write(b"\n")?;
        }
        Ok(log)
    }

    /// Opens a log as [`open`](Self::open) does.
    fn open(path: &Path, options: &OpenOptions) -> Result<AuditLog, AuditError> {
        let open = |source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = options.open(path).map_err(open)?;
        let appended = Arc::new(AtomicU64::new(0));
        let sync = Arc::new(GroupSync {
            path: path.to_path_buf(),
            file: Arc::new(file.try_clone().map_err(open)?),
            appended: appended.clone(),
            synced: tokio::sync::Mutex::new(0),
            fsyncs: AtomicU64::new(0),
        });
        Ok(AuditLog {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            appended,
            sync,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The log's group commit, shared by the batches in flight.
    pub fn group_sync(&self) -> Arc<GroupSync> {
        self.sync.clone()
    }

    fn line<T: Serialize>(&mut self, kind: &str, record: &T) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(&Tagged { kind, record }).map_err(|e| AuditError::Append {
            path: self.path.clone(),
            source: e.into(),
        })?;
        line.push(b'\n');
        self.write(&line)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        self.out.write_all(bytes).map_err(|source| AuditError::Append {
            path: self.path.clone(),
            source,
        })?;
        self.appended.fetch_add(bytes.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), AuditError> {
        self.out.flush().map_err(|source| AuditError::Append {
            path: self.path.clone(),
            source,
        })
    }

    /// Appends lines encoded beforehand ([`encode_intent`]) and hands them to the operating system:
    /// the position to make durable with [`GroupSync::through`] before their writes go out.
    pub fn append_encoded(&mut self, lines: &[u8]) -> Result<u64, AuditError> {
        self.write(lines)?;
        self.flush()?;
        Ok(self.appended.load(Ordering::Acquire))
    }

    pub fn header(&mut self, header: &Header) -> Result<(), AuditError> {
        self.line("header", header)?;
        self.sync()
    }

    /// The plan, without documents or before-images: resume needs only what is left to do.
    /// Appended a chunk at a time; made durable by [`finish`](Self::finish) (or the first intents).
    pub fn plan(&mut self, actions: &[PlannedAction]) -> Result<(), AuditError> {
        for a in actions {
            let light = PlannedAction {
                before: None,
                verified: None,
                ..a.clone()
            };
            self.line("plan", &light)?;
        }
        Ok(())
    }

    /// Appends intents and makes them durable: only then may the writes go out.
    pub fn intents(&mut self, intents: &[Intent]) -> Result<(), AuditError> {
        for intent in intents {
            self.line("intent", intent)?;
        }
        self.sync()
    }

    /// Appends outcomes, handed to the operating system but not fsynced: the next batch's intents
    /// (or [`finish`](Self::finish)) make them durable. Losing one to a power cut is safe: resume sends
    /// its intent again, which conflicts with itself and is recognised as applied.
    pub fn outcomes(&mut self, outcomes: &[OutcomeRecord]) -> Result<(), AuditError> {
        let mut lines = Vec::with_capacity(outcomes.len() * 160);
        for record in outcomes {
            serde_json::to_writer(
                &mut lines,
                &Tagged {
                    kind: "outcome",
                    record,
                },
            )
            .map_err(|e| AuditError::Append {
                path: self.path.clone(),
                source: e.into(),
            })?;
            lines.push(b'\n');
        }
        self.write(&lines)?;
        self.flush()
    }

    /// Makes everything appended so far durable.
    pub fn finish(&mut self) -> Result<(), AuditError> {
        self.sync()
    }

    /// Appends records of one type, handed to the operating system but not fsynced: [`finish`](Self::finish)
    /// makes them durable.
    pub fn records<T: Serialize>(&mut self, kind: &str, records: &[T]) -> Result<(), AuditError> {
        for record in records {
            self.line(kind, record)?;
        }
        self.flush()
    }

    pub fn note(&mut self, kind: &str, data: &Value) -> Result<(), AuditError> {
        self.line(kind, data)?;
        self.sync()
    }

    fn sync(&mut self) -> Result<(), AuditError> {
        self.flush()?;
        self.out.get_ref().sync_data().map_err(|source| AuditError::Append {
            path: self.path.clone(),
            source,
        })
    }
}

/// Whether `file` is empty or its last byte ends a line.
fn ends_a_line(file: &File) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

/// The record after the header of a repair through the projector (`command: "reproject"`): how its
/// requests went out. Its plan is `request` records, its intents `publish` records, its outcomes the
/// same `outcome` records (`confirmed`, `returned`, `nacked`, `failed`, `skipped`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReprojectRecord {
    /// `amqp`, `http` or `ndjson`.
    pub via: String,
    /// The run's id: every message's `correlation_id`, and the stem of its `message_id`.
    pub run: String,
    /// Where the messages went, without secrets.
    pub target: String,
}

/// One planned re-projection request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub seq: u64,
    pub key: Value,
    /// The drift the plan saw.
    pub kind: crate::model::DriftKind,
}

/// A message about to be published, durable before it goes out: a resume publishes it again, as it
/// was (same `message_id`), when no outcome follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishRecord {
    pub seq: u64,
    pub key: Value,
    pub kind: crate::model::DriftKind,
    pub message: crate::publish::Message,
}

/// The record types of a repair through the projector.
pub const REPROJECT: &str = "reproject";
pub const REQUEST: &str = "request";
pub const PUBLISH: &str = "publish";

/// A log read back.
#[derive(Debug, Default)]
pub struct AuditContents {
    pub header: Option<Header>,
    pub plan: Vec<PlannedAction>,
    /// A repair through the projector: how, its requests and the messages published.
    pub reproject: Option<ReprojectRecord>,
    pub requests: Vec<RequestRecord>,
    /// The last `publish` record of each seq.
    pub published: BTreeMap<u64, PublishRecord>,
    pub intents: BTreeMap<u64, Intent>,
    /// The last outcome recorded for each seq.
    pub outcomes: BTreeMap<u64, OutcomeRecord>,
    /// Lines (1-based) cut off by a run that stopped while writing them, skipped.
    pub torn: Vec<usize>,
    /// The last line, when it is such a torn line (nothing was appended after it yet).
    pub torn_tail: Option<usize>,
}

impl AuditContents {
    /// Says on stderr which lines of `path` were skipped, and why that loses nothing.
    pub fn warn_torn(&self, path: &Path) {
        for line in &self.torn {
            crate::note!(
                "recon: warning: {}:{line}: skipped a line cut off when the run writing it stopped; no write \
                 went out for it (a write is sent only once its intent is on disk whole)",
                path.display()
            );
        }
    }
}

/// The record type of a resume, and the field in which it names the torn line it ended.
const RESUME: &str = "resume";
pub const TORN_LINE: &str = "torn_line";

/// Reads a log.
///
/// A run that stops while writing (killed, or the disk full) leaves its last line torn. Such a line
/// never held an intent whose write went out: a write is sent only after its whole intent line is on
/// disk (fsynced), so a line cut short was not (a torn outcome only loses the outcome, which resume
/// settles by sending its intent again). A torn line is skipped (listed in [`AuditContents::torn`])
/// where a cut-off run leaves it, and only there:
/// - as the last line;
/// - ended by a later `--resume` and followed by its `resume` record, which names the line;
/// - with the `resume` record of an older recon glued straight after the torn bytes (that resume saw
///   the torn line as the last one and ignored it, as this one does).
///
/// Anything else that does not parse is damage, and refused.
///
/// Records of `recon.audit/v1` logs read as v2, one by one (see `add`): undo and `--resume` take
/// the logs older recons wrote, and a v1 log that a resume appended v2 records to.
pub fn read(path: &Path) -> Result<AuditContents, AuditError> {
    let file = File::open(path).map_err(|source| AuditError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let mut contents = AuditContents::default();
    // An unparsable line that ends with a newline: torn only if a resume record naming it follows.
    let mut ended: Option<(usize, String)> = None;
    let mut bytes = Vec::new();
    let mut n = 0;
    loop {
        bytes.clear();
        let read = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|source| AuditError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            break;
        }
        n += 1;
        let terminated = bytes.last() == Some(&b'\n');
        let line = bytes.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let invalid = |line: usize, detail: String| AuditError::Invalid {
            path: path.to_path_buf(),
            line,
            detail,
        };
        let value = match serde_json::from_slice::<Value>(line) {
            Ok(value) => value,
            Err(e) => {
                if let Some((line, detail)) = ended.take() {
                    return Err(invalid(line, detail));
                }
                if let Some((record, resume)) = glued_resume(line) {
                    match serde_json::from_slice::<Value>(record) {
                        // The whole record made it; only its newline was lost. The older resume read
                        // it (as the last line), so it counts.
                        Ok(value) => add(&mut contents, value).map_err(|d| invalid(n, d))?,
                        Err(_) => contents.torn.push(n),
                    }
                    add(&mut contents, resume).map_err(|d| invalid(n, d))?;
                } else if terminated {
                    ended = Some((n, e.to_string()));
                } else {
                    contents.torn.push(n);
                    contents.torn_tail = Some(n);
                }
                continue;
            }
        };
        if let Some((line, detail)) = ended.take() {
            let names_it = value["type"] == RESUME && value[TORN_LINE].as_u64() == Some(line as u64);
            if !names_it {
                return Err(invalid(
                    line,
                    format!(
                        "{detail} (a line is skipped as torn only when it is the last one or a resume record \
                         naming it follows)"
                    ),
                ));
            }
            contents.torn.push(line);
        }
        add(&mut contents, value).map_err(|d| invalid(n, d))?;
    }
    if let Some((line, _)) = ended {
        // A torn line ended by a resume that stopped before its record (written before any write):
        // still the last thing in the log.
        contents.torn.push(line);
        contents.torn_tail = Some(line);
    }
    Ok(contents)
}

/// `TORN{"type":"resume",…}`: the record an older recon's `--resume` appended straight after a torn
/// last line. Split into the torn bytes and the resume record; None when the line is not that.
fn glued_resume(line: &[u8]) -> Option<(&[u8], Value)> {
    const START: &[u8] = br#"{"type":"resume""#;
    // The resume record is the end of the line; inside JSON strings a quote is escaped, so the
    // unescaped text can only start a record (or an object of a document, which then cannot run to
    // the end of the line as one resume record).
    let at = line.windows(START.len()).rposition(|w| w == START)?;
    if at == 0 {
        return None;
    }
    let resume: Value = serde_json::from_slice(&line[at..]).ok()?;
    (resume["type"] == RESUME).then_some((&line[..at], resume))
}

/// Adds one record to `contents`; the error says what is wrong with it. A record of a v1 log (or one
/// a v1 log's resume appended) reads as v2: v1 logs only ever held Elasticsearch's versions, which
/// its module turns into tokens.
fn add(contents: &mut AuditContents, mut value: Value) -> Result<(), String> {
    let kind = value["type"].as_str().unwrap_or_default().to_string();
    if matches!(kind.as_str(), "plan" | "intent" | "outcome") {
        crate::source::elasticsearch::audit_v1::upgrade(&mut value);
    }
    let parse_err = |e: serde_json::Error| format!("{kind}: {e}");
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
        REPROJECT if contents.reproject.is_none() => {
            contents.reproject = Some(serde_json::from_value(value).map_err(parse_err)?)
        }
        REQUEST => contents
            .requests
            .push(serde_json::from_value(value).map_err(parse_err)?),
        PUBLISH => {
            let record: PublishRecord = serde_json::from_value(value).map_err(parse_err)?;
            contents.published.insert(record.seq, record);
        }
        // Later headers (resume), notes and unknown types are for people.
        _ => {}
    }
    Ok(())
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
            actions: Some(1),
        })
        .unwrap();
        log.plan(&[PlannedAction {
            seq: 1,
            drift: DriftKind::Missing,
            action: WriteKind::Create,
            key: json!(9007199254740993i64),
            location: "orders".into(),
            id: "9007199254740993".into(),
            if_version: None,
            fields: None,
            before: None,
            verified: None,
        }])
        .unwrap();
        let intent = Intent {
            seq: 1,
            action: WriteKind::Create,
            key: json!(9007199254740993i64),
            location: "orders".into(),
            id: "9007199254740993".into(),
            if_version: None,
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

    #[tokio::test]
    async fn encoded_intents_read_back_whole_and_are_durable_through_one_group_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.ndjson");
        let mut log = AuditLog::create(&path).unwrap();
        let sync = log.group_sync();
        let doc_text = r#"{"orderId":9007199254740993,"totalPrice":10.50,"note":"a\nb"}"#;
        let create = Intent {
            seq: 1,
            action: WriteKind::Create,
            key: json!(9007199254740993i64),
            location: "orders".into(),
            id: "9007199254740993".into(),
            if_version: None,
            doc: None,
            before: None,
        };
        let delete = Intent {
            seq: 2,
            action: WriteKind::Delete,
            before: Some(BeforeImage {
                location: "orders-v1".into(),
                source: serde_json::from_str(r#"{"orderId": 2}"#).unwrap(),
                version: Version::new("v4"),
                raw: None,
            }),
            if_version: Some(Version::new("v4")),
            ..create.clone()
        };
        let mut lines = Vec::new();
        encode_intent(&create, Some(doc_text.as_bytes()), &mut lines);
        encode_intent(&delete, None, &mut lines);
        let first = log.append_encoded(&lines).unwrap();
        let second = log.append_encoded(&lines[..0]).unwrap();
        assert_eq!((first, second), (lines.len() as u64, lines.len() as u64));
        sync.through(first).await.unwrap();
        sync.through(second).await.unwrap();
        assert_eq!(sync.fsyncs(), 1, "a position already durable needs no second fsync");
        drop(log);
        let contents = read(&path).unwrap();
        let read_back = &contents.intents[&1];
        assert_eq!(
            read_back.doc.as_ref().unwrap(),
            &serde_json::from_str::<Doc>(doc_text).unwrap()
        );
        assert_eq!(read_back.doc.as_ref().unwrap()["totalPrice"].to_string(), "10.50");
        assert_eq!(
            Intent {
                doc: None,
                ..read_back.clone()
            },
            create
        );
        assert_eq!(contents.intents[&2], delete);
    }

    const HEADER: &str = r#"{"type":"header","schema":"recon.audit/v2","command":"repair","started_at":"t","config":null,"index":"orders","mode":null,"tool_version":"0"}"#;
    const INTENT_1: &str = r#"{"type":"intent","seq":1,"action":"delete","key":1,"location":"orders","id":"1","if_version":"v3","before":{"location":"orders","source":{"name":"José"},"version":"v3"}}"#;
    const OUTCOME_1: &str = r#"{"type":"outcome","seq":1,"status":"applied","result":"deleted","location":"orders","version":"v4","error":null}"#;
    const OUTCOME_2: &str = r#"{"type":"outcome","seq":2,"status":"applied","result":"deleted","location":"orders","version":"v5","error":null}"#;
    const INTENT_2: &str = r#"{"type":"intent","seq":2,"action":"delete","key":2,"location":"orders","id":"2","if_version":"v3","before":{"location":"orders","source":{"name":"Zoë"},"version":"v3"}}"#;
    const OLD_RESUME: &str = r#"{"type":"resume","started_at":"2026-11-28T09:30:00.000Z"}"#;

    fn read_bytes(bytes: &[u8]) -> Result<AuditContents, AuditError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.ndjson");
        std::fs::write(&path, bytes).unwrap();
        read(&path)
    }

    /// `INTENT_2` cut inside "Zoë": the torn bytes are not even UTF-8.
    fn torn_intent() -> &'static [u8] {
        let at = INTENT_2.find('ë').unwrap() + 1;
        &INTENT_2.as_bytes()[..at]
    }

    fn log(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_reported() {
        let bytes = log(&[HEADER.as_bytes(), b"\n", INTENT_1.as_bytes(), b"\n", torn_intent()]);
        let contents = read_bytes(&bytes).unwrap();
        assert_eq!(contents.intents.keys().collect::<Vec<_>>(), [&1]);
        assert_eq!((contents.torn.as_slice(), contents.torn_tail), (&[3][..], Some(3)));
    }

    #[test]
    fn a_torn_line_with_an_older_resume_record_glued_on_is_skipped_and_the_rest_read() {
        // An older recon's resume appended its record straight after the torn bytes, then sent the
        // intent without outcome again.
        let bytes = log(&[
            HEADER.as_bytes(),
            b"\n",
            INTENT_1.as_bytes(),
            b"\n",
            torn_intent(),
            OLD_RESUME.as_bytes(),
            b"\n",
            OUTCOME_1.as_bytes(),
            b"\n",
        ]);
        let contents = read_bytes(&bytes).unwrap();
        assert_eq!((contents.torn.as_slice(), contents.torn_tail), (&[3][..], None));
        assert_eq!(contents.intents.keys().collect::<Vec<_>>(), [&1]);
        assert_eq!(contents.outcomes.keys().collect::<Vec<_>>(), [&1]);

        // Only the newline was lost: the record is whole, and the older resume read it.
        let bytes = log(&[
            HEADER.as_bytes(),
            b"\n",
            INTENT_1.as_bytes(),
            b"\n",
            INTENT_2.as_bytes(),
            OLD_RESUME.as_bytes(),
            b"\n",
            OUTCOME_2.as_bytes(),
            b"\n",
        ]);
        let contents = read_bytes(&bytes).unwrap();
        assert!(contents.torn.is_empty());
        assert_eq!(contents.intents.keys().collect::<Vec<_>>(), [&1, &2]);
        assert_eq!(contents.outcomes.keys().collect::<Vec<_>>(), [&2]);
    }

    #[test]
    fn a_torn_line_ended_by_resume_needs_the_resume_record_naming_it() {
        let resume = |line: usize| format!(r#"{{"type":"resume","started_at":"t","torn_line":{line}}}"#);
        let ended = |next: &str| {
            log(&[
                HEADER.as_bytes(),
                b"\n",
                INTENT_1.as_bytes(),
                b"\n",
                torn_intent(),
                b"\n",
                next.as_bytes(),
                b"\n",
                OUTCOME_1.as_bytes(),
                b"\n",
            ])
        };
        let contents = read_bytes(&ended(&resume(3))).unwrap();
        assert_eq!((contents.torn.as_slice(), contents.torn_tail), (&[3][..], None));
        assert_eq!(contents.outcomes.keys().collect::<Vec<_>>(), [&1]);
        // Damage in the middle of a log is refused with its line: a resume naming another line, or
        // none at all, does not vouch for it.
        for next in [resume(2), OLD_RESUME.to_string(), OUTCOME_2.to_string()] {
            let e = read_bytes(&ended(&next)).unwrap_err().to_string();
            assert!(e.contains("audit.ndjson:3: not an audit record"), "{e}");
            assert!(e.contains("the last one or a resume record naming it follows"), "{e}");
        }
    }

    #[test]
    fn appending_to_a_log_with_a_torn_tail_starts_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.ndjson");
        std::fs::write(&path, log(&[HEADER.as_bytes(), b"\n", torn_intent()])).unwrap();
        let contents = read(&path).unwrap();
        let mut log = AuditLog::append_to(&path).unwrap();
        log.note("resume", &json!({"started_at": "t", TORN_LINE: contents.torn_tail}))
            .unwrap();
        log.outcomes(&[OutcomeRecord::skipped(1, "x", "y")]).unwrap();
        drop(log);
        let text = std::fs::read(&path).unwrap();
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        assert_eq!(lines[1], torn_intent());
        assert_eq!(
            serde_json::from_slice::<Value>(lines[2]).unwrap(),
            json!({"type": "resume", "started_at": "t", "torn_line": 2})
        );
        let contents = read(&path).unwrap();
        assert_eq!((contents.torn.as_slice(), contents.torn_tail), (&[2][..], None));
        assert!(contents.outcomes.contains_key(&1));
        // A log that ends a line is appended to as it is.
        let before = std::fs::read(&path).unwrap();
        drop(AuditLog::append_to(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
