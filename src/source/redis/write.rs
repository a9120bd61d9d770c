//! Redis's conditional writer: every action one Lua script ([`script::WRITE`]) that reads the key's
//! version token and writes only over the version the plan read (or, for a create, only where the key
//! is absent), atomically. Scripts go out pipelined, a batch at a time, by `EVALSHA`; a server that
//! does not know the script (`NOSCRIPT`: restarted, or flushed) gets it loaded and the same actions
//! again. A batch broken off by a lost connection is sent again on a new one under the one retry
//! policy: an action that applied the first time finds the key holding what it writes and answers
//! `already` (applied); a delete finds its key gone, conflicts and says its answer was lost, so the
//! repair reads it back.
//!
//! What is written: with `encoding = "json"` the document's JSON bytes as they come (an audit log's
//! before-image goes back byte for byte); with `"hash"` one field per top-level field, strings as
//! they are and anything else as its JSON text (`null` leaves the field out). A document that stands
//! for an undecodable value ([`super::UNDECODABLE`]) is written back as the value it holds under
//! [`super::RAW`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::{script, Reader, RedisSettings, RAW, UNDECODABLE};
use crate::config::RedisEncoding;
use crate::model::Version;
use crate::source::{BulkSettings, ConditionalWriter, ItemOutcome, ItemStatus, JsonWrite, StoredDoc, WriteKind};

/// Writes to one Redis database through [`script::WRITE`].
pub struct RedisWriter {
    /// Holds the connection (shared with the reads) and decodes what
    /// [`ConditionalWriter::read_back`] reads as a lookup would.
    reader: Arc<Reader>,
    settings: BulkSettings,
    write_sha: String,
    pace: Option<Mutex<Instant>>,
}

/// One action as the script's arguments, or why it cannot be written.
type Prepared = Result<Vec<Vec<u8>>, String>;

impl RedisWriter {
    /// A writer of its own (an undo): `settings.fields` should be None, so read-backs are whole.
    pub async fn connect(settings: RedisSettings, batching: BulkSettings) -> anyhow::Result<RedisWriter> {
        let (reader, _) = Reader::connect(settings).await?;
        Ok(RedisWriter::new(Arc::new(reader), batching))
    }

    pub(super) fn new(reader: Arc<Reader>, settings: BulkSettings) -> RedisWriter {
        use sha1::Digest;
        let write_sha = super::hex(&sha1::Sha1::digest(script::WRITE.as_bytes()));
        RedisWriter {
            reader,
            pace: settings
                .max_rate
                .filter(|r| *r > 0.0)
                .map(|_| Mutex::new(Instant::now())),
            settings,
            write_sha,
        }
    }

    /// The script's arguments for `write`.
    fn prepare(&self, write: &JsonWrite<'_>) -> Prepared {
        let mut args: Vec<Vec<u8>> = vec![
            write.kind.as_str().into(),
            write
                .if_version
                .map(|v| v.as_str().as_bytes().to_vec())
                .unwrap_or_default(),
        ];
        if write.kind == WriteKind::Delete {
            args.extend([b"string".to_vec(), Vec::new()]);
            return Ok(args);
        }
        let json = write.doc_json.ok_or("a write without a document")?;
        // A before-image of an undecodable value: put the value itself back.
        if contains(json, UNDECODABLE.as_bytes()) {
            let doc: Map<String, Value> =
                serde_json::from_slice(json).map_err(|e| format!("not a JSON object: {e}"))?;
            // (A patch names it too, with null: the field the projection lacks.)
            if doc.get(UNDECODABLE).is_some_and(|v| !v.is_null()) {
                return restore(doc.get(RAW), args);
            }
        }
        match (self.reader.encoding, write.kind) {
            (RedisEncoding::Json, WriteKind::Update) => Err(
                "a JSON string value is written whole; a partial update would decode and re-encode it (repair with \
                 --mode replace)"
                    .into(),
            ),
            (RedisEncoding::Json, _) => {
                args.extend([b"string".to_vec(), json.to_vec()]);
                Ok(args)
            }
            (RedisEncoding::Hash, kind) => {
                let doc: Map<String, Value> =
                    serde_json::from_slice(json).map_err(|e| format!("not a JSON object: {e}"))?;
                let (removed, set): (Vec<_>, Vec<_>) = doc.iter().partition(|(_, v)| v.is_null());
                if set.is_empty() && kind != WriteKind::Update {
                    return Err("a document without fields: a Redis hash cannot be empty".into());
                }
                args.push(b"hash".to_vec());
                let removed: Vec<&String> = if kind == WriteKind::Update {
                    removed.into_iter().map(|(f, _)| f).collect()
                } else {
                    Vec::new()
                };
                args.push(removed.len().to_string().into_bytes());
                args.extend(removed.into_iter().map(|f| f.as_bytes().to_vec()));
                for (field, value) in set {
                    args.push(field.as_bytes().to_vec());
                    args.push(hash_value(value).into_bytes());
                }
                Ok(args)
            }
        }
    }

    async fn pace(&self, docs: usize) {
        let (Some(next), Some(rate)) = (&self.pace, self.settings.max_rate) else {
            return;
        };
        let wait_until = {
            let mut next = next.lock().await;
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(docs as f64 / rate);
            start
        };
        tokio::time::sleep_until(wait_until.into()).await;
    }

    /// Sends one batch of scripts; `NOSCRIPT` answers get the script loaded and are sent again.
    async fn send(&self, names: &[&str], args: &[&Vec<Vec<u8>>]) -> redis::RedisResult<Vec<redis::Value>> {
        let mut conn = self.reader.connection().await?;
        let mut answers: Vec<redis::Value> = self
            .pipeline(names, args, (0..names.len()).collect())
            .query_async(&mut conn)
            .await?;
        let unknown: Vec<usize> = (0..answers.len())
            .filter(|&i| matches!(&answers[i], redis::Value::ServerError(e) if e.code() == "NOSCRIPT"))
            .collect();
        if !unknown.is_empty() {
            let _: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script::WRITE.as_str())
                .query_async(&mut conn)
                .await?;
            let again: Vec<redis::Value> = self
                .pipeline(names, args, unknown.clone())
                .query_async(&mut conn)
                .await?;
            for (i, answer) in unknown.into_iter().zip(again) {
                answers[i] = answer;
            }
        }
        Ok(answers)
    }

    fn pipeline(&self, names: &[&str], args: &[&Vec<Vec<u8>>], which: Vec<usize>) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for i in which {
            pipe.cmd("EVALSHA")
                .arg(&self.write_sha)
                .arg(1)
                .arg(names[i])
                .arg(args[i]);
        }
        pipe
    }

    /// Writes `batch`: the actions that can be written go out in pipelines of at most `max_actions`
    /// actions and `max_bytes` bytes, each retried whole on a new connection after a transient failure.
    async fn apply_all(&self, batch: &[JsonWrite<'_>]) -> anyhow::Result<Vec<ItemOutcome>> {
        let prepared: Vec<Prepared> = batch.iter().map(|w| self.prepare(w)).collect();
        let mut outcomes: Vec<Option<ItemOutcome>> = prepared
            .iter()
            .map(|p| p.as_ref().err().map(|e| ItemOutcome::failed(e.clone())))
            .collect();
        let todo: Vec<usize> = (0..batch.len()).filter(|&i| prepared[i].is_ok()).collect();
        let sizes = todo.iter().map(|&i| {
            prepared[i]
                .as_ref()
                .map_or(0, |a| a.iter().map(Vec::len).sum::<usize>())
        });
        for range in crate::source::write::split_batches(sizes, self.settings.max_bytes, self.settings.max_actions) {
            let part = &todo[range];
            let names: Vec<&str> = part.iter().map(|&i| batch[i].id).collect();
            let args: Vec<&Vec<Vec<u8>>> = part.iter().map(|&i| prepared[i].as_ref().expect("prepared")).collect();
            self.pace(part.len()).await;
            let mut pauses = backon::BackoffBuilder::build(self.settings.item_retry.backoff());
            let mut answer_lost = false;
            let answers = loop {
                match self.send(&names, &args).await {
                    Ok(answers) if answers.len() == part.len() => break answers,
                    Ok(answers) => anyhow::bail!(
                        "Redis answered {} scripts for {} writes; the outcome of this batch is unknown",
                        answers.len(),
                        part.len()
                    ),
                    Err(e) if super::is_transient(&e) => {
                        self.reader.forget_connection().await;
                        // The batch may have reached the server before the connection broke.
                        answer_lost = true;
                        let Some(pause) = pauses.next() else {
                            return Err(anyhow::anyhow!(
                                "lost the connection to {} while writing, and could not reconnect: {e}",
                                self.reader.described
                            ));
                        };
                        tokio::time::sleep(pause).await;
                    }
                    Err(e) => {
                        return Err(anyhow::anyhow!(
                            "{}: the write scripts failed: {e}",
                            self.reader.described
                        ))
                    }
                }
            };
            for (&i, answer) in part.iter().zip(answers) {
                let mut outcome = outcome(batch[i].kind, answer);
                outcome.answer_lost = answer_lost;
                outcomes[i] = Some(outcome);
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| ItemOutcome::failed("no answer")))
            .collect())
    }

    /// The values of `docs` (by Redis key; the location is not Redis's), decoded as a lookup would.
    async fn read_docs(&self, docs: &[(String, String)]) -> anyhow::Result<Vec<StoredDoc>> {
        let mut read = Vec::with_capacity(docs.len());
        for chunk in docs.chunks(self.reader.batch) {
            let names: Vec<&str> = chunk.iter().map(|(_, id)| id.as_str()).collect();
            let peeked = self.reader.peek_all(&names).await?;
            for ((_, name), value) in chunk.iter().zip(peeked) {
                let key = self.reader.parse_name(name.as_bytes());
                let doc = match key {
                    Some(key) => self.reader.decode_peeked(key, name.clone(), value),
                    // Not a key of the pattern (unkeyed): only the value, as the unkeyed scan has it.
                    None => match value.payload {
                        super::Payload::None => None,
                        _ => Some(self.reader.unkeyed(name.clone(), value)),
                    },
                };
                read.push(match doc {
                    Some(doc) => StoredDoc::Found {
                        location: None,
                        source: doc.doc,
                        version: doc.meta.version,
                    },
                    None => StoredDoc::Absent,
                });
            }
        }
        Ok(read)
    }
}

impl ConditionalWriter for RedisWriter {
    fn apply_json<'a>(&'a self, batch: &'a [JsonWrite<'a>]) -> BoxFuture<'a, anyhow::Result<Vec<ItemOutcome>>> {
        self.apply_all(batch).boxed()
    }

    fn read_back<'a>(&'a self, docs: &'a [(String, String)]) -> BoxFuture<'a, anyhow::Result<Vec<StoredDoc>>> {
        self.read_docs(docs).boxed()
    }

    /// Redis has nothing to refresh: a write is seen by the next read.
    fn refresh<'a>(&'a self, _location: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        futures::future::ready(Ok(())).boxed()
    }

    fn describe_condition(&self, version: &Version) -> String {
        match version.as_str().strip_prefix("type:") {
            Some(kind) => format!("if the value is still a {kind}"),
            None => format!("if sha1={}", version.as_str()),
        }
    }

    fn partial_updates(&self) -> bool {
        self.reader.encoding == RedisEncoding::Hash
    }
}

/// The arguments that put back an undecodable value from its [`RAW`] form.
fn restore(raw: Option<&Value>, mut args: Vec<Vec<u8>>) -> Prepared {
    let raw =
        raw.ok_or("recon could not read the value when the repair did (a hash with a field that is not UTF-8, or an answer it did not understand), so it kept no copy to put back")?;
    // The whole value goes back, never a part of it.
    if args[0] == b"update" {
        args[0] = b"index".to_vec();
    }
    if let Some(text) = raw.get("string").and_then(Value::as_str) {
        args.extend([b"string".to_vec(), text.as_bytes().to_vec()]);
    } else if let Some(hex) = raw.get("hex").and_then(Value::as_str) {
        args.extend([
            b"string".to_vec(),
            unhex(hex).ok_or("a stored value whose hex is damaged")?,
        ]);
    } else if let Some(dump) = raw.get("dump").and_then(Value::as_str) {
        args.extend([
            b"dump".to_vec(),
            unhex(dump).ok_or("a stored value whose DUMP hex is damaged")?,
        ]);
    } else if let Some(fields) = raw.get("hash").and_then(Value::as_object) {
        args.extend([b"hash".to_vec(), b"0".to_vec()]);
        for (field, value) in fields {
            args.push(field.as_bytes().to_vec());
            args.push(
                value
                    .as_str()
                    .ok_or("a stored hash with a value that is not a string")?
                    .as_bytes()
                    .to_vec(),
            );
        }
    } else {
        return Err(format!("{RAW} holds no value recon wrote: {raw}"));
    }
    Ok(args)
}

/// A hash field's value: a string as it is, anything else as its JSON text (numbers keep their digits).
fn hash_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One script's answer as an outcome.
fn outcome(kind: WriteKind, answer: redis::Value) -> ItemOutcome {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let parts = match answer {
        redis::Value::Array(parts) => parts,
        redis::Value::ServerError(e) => return ItemOutcome::failed(format!("Redis refused the write: {e}")),
        other => return ItemOutcome::failed(format!("an answer recon does not know: {other:?}")),
    };
    let word = parts.first().and_then(text).unwrap_or_default();
    let second = parts.get(1).and_then(text);
    match word.as_str() {
        "conflict" => ItemOutcome {
            status: ItemStatus::Conflict,
            result: Some("conflict".into()),
            location: None,
            version: None,
            error: second,
            answer_lost: false,
        },
        "created" | "updated" | "deleted" | "already" => ItemOutcome {
            status: ItemStatus::Applied,
            result: Some(word),
            location: None,
            version: second.filter(|_| kind != WriteKind::Delete).map(Version::new),
            error: None,
            answer_lost: false,
        },
        _ => ItemOutcome::failed(format!("an answer recon does not know: {parts:?}")),
    }
}
