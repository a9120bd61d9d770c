//! A Redis read model: one value per document under a key built from a pattern (`order:{}`), either a
//! JSON string or a hash of string fields.
//!
//! Redis has no ordered scan and no snapshot. A scan lists the keys with `SCAN MATCH` (which may return
//! a key more than once), sorts the parsed keys on disk ([`KeySorter`]), then reads the values in key
//! order with pipelined `MGET` / `HGETALL` batches, a few in flight. Keys written during the scan may be
//! seen or not; `--recheck` looks drift up again afterwards. The ranges of a parallel check share one
//! listing ([`ReadModel::open_view`]), each reading its part of the sorted file.
//!
//! Nothing is skipped silently: a Redis key matching the pattern whose key part does not parse as the
//! write model's key kind comes out of [`ReadModel::open_unkeyed_scan`] (drift `unkeyed`, id = the
//! Redis key); a value that cannot be decoded (not JSON, not an object, the wrong Redis type, the key
//! field absent or naming another key) comes out as a document holding only [`UNDECODABLE`], so the
//! check reports it as `mismatched` (or `orphaned` without a row), with the Redis key as its id.

pub mod preflight;

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use serde_json::{Map, Value};

use super::{BulkSettings, ConditionalWriter, DocStream, DocumentSource, KeyRange, ReadModel, Scan, SharedView};
use crate::config::RedisEncoding;
use crate::model::{Doc, DocMeta, DocValue, Key, KeyKind, KeyedDoc, Version};
use crate::scale::keyfile::{KeyFile, KeySorter};
use crate::secret::redact_url;
use crate::source::retry::RetryPolicy;

mod script;
pub mod write;

/// The field an undecodable value's document holds instead of its content, saying why.
pub const UNDECODABLE: &str = "(undecodable Redis value)";
/// Beside [`UNDECODABLE`], in a whole document (a repair's lookups, a writer's read-backs): the value
/// as Redis holds it (`{"string": …}`, `{"hex": …}`, `{"hash": {…}}`, or for another type
/// `{"dump": …, "type": …}`, its `DUMP` serialization), so that an undo puts back
/// exactly what a repair overwrote or deleted.
pub const RAW: &str = "(Redis value)";

/// How long an answer may take. The client's default (half a second) would call a pipeline of a
/// thousand large values or write scripts lost on a busy server, and a retried write whose first
/// attempt is still running races itself; a hung server is still noticed, and retried.
const RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn connection_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
}

/// Keys asked for a `SCAN` call (a hint to the server).
const SCAN_COUNT: usize = 1000;
/// Batches of values being read at once.
const IN_FLIGHT: usize = 3;

/// What a [`RedisSource`] reads.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// The document field holding the key.
    pub key_field: String,
    /// The Redis key of a document; `{}` is the key.
    pub key_pattern: String,
    pub encoding: RedisEncoding,
    /// The write model's key kind: the key part of each Redis key is parsed as one. None only for
    /// a writer that never reads the write model (an undo): key parts are then taken as text.
    pub key_kind: Option<KeyKind>,
    /// Only these top-level fields (and the key field) are kept; None keeps every field.
    pub fields: Option<Vec<String>>,
    /// Values read per `MGET` or pipeline.
    pub batch: usize,
}

/// The read side of one Redis database.
pub struct RedisSource {
    reader: Arc<Reader>,
    kind: KeyKind,
    glob: String,
    described: String,
}

/// What reading values needs, shared by the batches in flight.
struct Reader {
    client: redis::Client,
    /// The connection reads (and writes) go through; None after it broke, until the next use.
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    prefix: String,
    suffix: String,
    key_field: String,
    /// None for a writer that never reads the write model (an undo).
    kind: Option<KeyKind>,
    encoding: RedisEncoding,
    fields: Option<BTreeSet<String>>,
    batch: usize,
    described: String,
}

impl Reader {
    /// Connects as `settings` say: the reader, and the `SCAN MATCH` pattern.
    async fn connect(settings: RedisSettings) -> anyhow::Result<(Reader, String)> {
        let shown = redact_url(&settings.url);
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| anyhow::anyhow!("redis.url {shown} is not a Redis URL: {}", strip(&e, &settings.url)))?;
        let db = client.get_connection_info().redis_settings().db();
        let described = format!("Redis {shown} db {db} pattern {}", settings.key_pattern);
        let conn = client.get_multiplexed_async_connection_with_config(&connection_config()).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to {described}: {}; check redis.url (or REDIS_URL / --redis-url) and that the server runs",
                strip(&e, &settings.url)
            )
        })?;
        let (prefix, suffix) = settings
            .key_pattern
            .split_once("{}")
            .context("redis.key_pattern must hold {} where the key goes")?;
        let glob = format!("{}*{}", glob_escape(prefix), glob_escape(suffix));
        let reader = Reader {
            client: client.clone(),
            conn: tokio::sync::Mutex::new(Some(conn)),
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
            key_field: settings.key_field.clone(),
            kind: settings.key_kind,
            encoding: settings.encoding,
            fields: settings
                .fields
                .map(|f| f.into_iter().chain([settings.key_field]).collect()),
            batch: settings.batch.max(1),
            described,
        };
        Ok((reader, glob))
    }
}

impl RedisSource {
    pub async fn connect(settings: RedisSettings) -> anyhow::Result<RedisSource> {
        let kind = settings
            .key_kind
            .context("a Redis read model needs the write model's key kind")?;
        let (reader, glob) = Reader::connect(settings).await?;
        Ok(RedisSource {
            described: reader.described.clone(),
            reader: Arc::new(reader),
            kind,
            glob,
        })
    }

    /// Every Redis key matching the pattern, once per `SCAN` answer (a key may come twice), to `each`.
    async fn scan_names(&self, mut each: impl FnMut(Vec<u8>) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut conn = self
            .reader
            .connection()
            .await
            .map_err(|e| self.reader.lost(e, "SCAN"))?;
        let mut cursor: u64 = 0;
        let mut listed = 0u64;
        loop {
            let (next, names): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&self.glob)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await
                .map_err(|e| {
                    // A cursor is the server's: a restarted server may walk its keys otherwise.
                    anyhow::anyhow!(
                        "{:#}, while listing the keys (after {listed}); nothing is reported from a partial \
                         listing: run the check again",
                        self.reader.lost(e, "SCAN")
                    )
                })?;
            listed += names.len() as u64;
            for name in names {
                each(name)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

impl RedisSource {
    /// The keys of the pattern in `range`, listed once and sorted on disk, each once.
    async fn list_keys(&self, range: &KeyRange) -> anyhow::Result<KeyFile> {
        let mut sorter = KeySorter::default();
        self.scan_names(|name| match self.reader.parse_name(&name) {
            Some(key) if range.contains(&key) => sorter.push(key),
            _ => Ok(()),
        })
        .await?;
        sorter.finish()
    }

    /// The documents of the keys of `keys` in `range` (`total` of them), in key order.
    fn read_keys(&self, keys: Arc<KeyFile>, range: KeyRange, total: u64) -> DocStream {
        let reader = self.reader.clone();
        in_batches(keys, range, total, reader.batch, move |chunk| {
            let reader = reader.clone();
            async move { reader.read(chunk).await }
        })
    }
}

/// The keys of the pattern listed once for every range of a parallel check: one `SCAN` of the
/// keyspace instead of one per range, and every range reads the same key list.
struct ListedKeys {
    keys: Arc<KeyFile>,
    /// When the listing started, epoch milliseconds UTC.
    listed_ms: i64,
}

impl SharedView for ListedKeys {
    fn snapshot_ms(&self) -> Option<i64> {
        Some(self.listed_ms)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

impl Reader {
    /// The key a Redis key name stands for; None when its key part is not one of the key kind (an
    /// integer key must be written canonically: `order:7`, not `order:07`). Without a known key kind
    /// (an undo, which never reads the write model) the key part is taken as text.
    fn parse_name(&self, name: &[u8]) -> Option<Key> {
        let name = std::str::from_utf8(name).ok()?;
        let part = name.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        match self.kind {
            Some(KeyKind::Int) => part.parse::<i64>().ok().filter(|i| i.to_string() == part).map(Key::Int),
            Some(KeyKind::Text) | None => Some(Key::Text(part.to_string())),
        }
    }

    fn name_of(&self, key: &Key) -> String {
        format!("{}{}{}", self.prefix, key.doc_id(), self.suffix)
    }

    /// Whole documents: every field, and an undecodable value's content beside the reason.
    fn whole(&self) -> bool {
        self.fields.is_none()
    }

    /// The connection, connecting again when the last one broke.
    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&connection_config())
            .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Drops a connection that broke: the next use connects again.
    async fn forget_connection(&self) {
        *self.conn.lock().await = None;
    }

    /// Runs a read (`command`, for messages) on the connection, again on a new connection after a
    /// lost one under the one retry policy: reading a value twice changes nothing.
    async fn retrying<T, F, Fut>(&self, command: &str, mut read: F) -> anyhow::Result<T>
    where
        F: FnMut(redis::aio::MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let mut pauses = backon::BackoffBuilder::build(RetryPolicy::default().backoff());
        loop {
            let answer = match self.connection().await {
                Ok(conn) => read(conn).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(value) => return Ok(value),
                Err(e) if is_transient(&e) => {
                    self.forget_connection().await;
                    match pauses.next() {
                        Some(pause) => tokio::time::sleep(pause).await,
                        None => return Err(self.lost(e, command)),
                    }
                }
                Err(e) => return Err(self.lost(e, command)),
            }
        }
    }

    /// [`peek`] of `names`, retried as [`Reader::retrying`] says.
    async fn peek_all(&self, names: &[&str]) -> anyhow::Result<Vec<Peeked>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        self.retrying("EVAL", |mut conn| async move {
            peek(&mut conn, names.iter().copied(), self.whole()).await
        })
        .await
    }

    /// The documents of `keys` (absent ones left out), in the order given.
    async fn read(&self, keys: Vec<Key>) -> anyhow::Result<Vec<KeyedDoc>> {
        let names: Vec<String> = keys.iter().map(|k| self.name_of(k)).collect();
        let mut docs = Vec::with_capacity(keys.len());
        match self.encoding {
            RedisEncoding::Json => {
                let values: Vec<Option<Vec<u8>>> = self
                    .retrying("MGET", |mut conn| {
                        let names = &names;
                        async move { redis::cmd("MGET").arg(names).query_async(&mut conn).await }
                    })
                    .await?;
                // MGET answers nil for an absent key and for one holding another type: look closer.
                let nil: Vec<&str> = (0..values.len())
                    .filter(|&i| values[i].is_none())
                    .map(|i| names[i].as_str())
                    .collect();
                let mut peeked = self.peek_all(&nil).await?.into_iter();
                for ((key, name), value) in keys.into_iter().zip(names).zip(values) {
                    match value {
                        Some(bytes) => docs.push(self.decode_json(key, name, &bytes)),
                        None => docs.extend(self.decode_peeked(key, name, peeked.next().unwrap_or_default())),
                    }
                }
            }
            RedisEncoding::Hash => {
                let answers: Vec<redis::Value> = self
                    .retrying("HGETALL", |mut conn| {
                        let mut pipe = redis::pipe();
                        pipe.ignore_errors();
                        for name in &names {
                            pipe.cmd("HGETALL").arg(name);
                        }
                        async move { pipe.query_async(&mut conn).await }
                    })
                    .await?;
                let answers: Vec<Result<Vec<(String, String)>, String>> =
                    answers.into_iter().map(hash_fields).collect();
                // A key holding another type answers WRONGTYPE: look closer.
                let wrong: Vec<&str> = (0..answers.len())
                    .filter(|&i| answers[i].is_err())
                    .map(|i| names[i].as_str())
                    .collect();
                let mut peeked = self.peek_all(&wrong).await?.into_iter();
                for ((key, name), answer) in keys.into_iter().zip(names.iter().cloned()).zip(answers) {
                    match answer {
                        Ok(fields) if fields.is_empty() => {}
                        Ok(fields) => docs.push(self.decode_hash(key, name, fields)),
                        Err(_) => docs.extend(self.decode_peeked(key, name, peeked.next().unwrap_or_default())),
                    }
                }
            }
        }
        Ok(docs)
    }

    /// A read that failed: a lost connection says so (a scan cannot go on without it), anything else
    /// names the command.
    fn lost(&self, e: redis::RedisError, command: &str) -> anyhow::Error {
        if is_transient(&e) {
            anyhow::anyhow!("lost the connection to {} ({command}: {e})", self.described)
        } else {
            anyhow::anyhow!("{}: {command} failed: {e}", self.described)
        }
    }

    /// The document of a value [`peek`] read: what a scan or lookup would make of it (None: absent).
    fn decode_peeked(&self, key: Key, name: String, value: Peeked) -> Option<KeyedDoc> {
        let version = value.token.clone().map(Version::new);
        match value.payload {
            Payload::None => None,
            Payload::String(bytes) => Some(match self.encoding {
                RedisEncoding::Json => self.decode_json(key, name, &bytes),
                RedisEncoding::Hash => self.undecodable(
                    key,
                    name,
                    "a Redis string, not a hash (redis.encoding is \"hash\")".into(),
                    version,
                    Some(raw_string(&bytes)),
                ),
            }),
            Payload::Hash(fields) => Some(match self.encoding {
                RedisEncoding::Hash => self.decode_hash(key, name, fields),
                RedisEncoding::Json => {
                    let raw = raw_hash(&fields);
                    self.undecodable(
                        key,
                        name,
                        "a Redis hash, not a string (redis.encoding is \"json\")".into(),
                        version,
                        Some(raw),
                    )
                }
            }),
            Payload::Dump { kind, bytes } => {
                let why = self.wrong_type(&kind);
                Some(self.undecodable(key, name, why, version, Some(raw_dump(&kind, &bytes))))
            }
            Payload::Other(kind) => Some(self.undecodable(key, name, self.wrong_type(&kind), version, None)),
        }
    }

    /// Why a value of another Redis type is undecodable.
    fn wrong_type(&self, kind: &str) -> String {
        let wanted = match self.encoding {
            RedisEncoding::Json => "a string (redis.encoding is \"json\")",
            RedisEncoding::Hash => "a hash (redis.encoding is \"hash\")",
        };
        format!("a Redis {kind}, not {wanted}")
    }

    fn decode_json(&self, key: Key, name: String, bytes: &[u8]) -> KeyedDoc {
        // The token is only written against: a check, which never writes, skips the hashing.
        let version = self.whole().then(|| string_version(bytes));
        let raw = || Some(raw_string(bytes));
        let doc = match serde_json::from_slice::<DocValue>(bytes) {
            Ok(DocValue::Object(doc)) => doc,
            Ok(other) => {
                let why = format!("JSON {}, not an object", json_kind(&other));
                return self.undecodable(key, name, why, version, raw());
            }
            Err(e) => return self.undecodable(key, name, format!("not JSON: {e}"), version, raw()),
        };
        let named = doc.get(&self.key_field).and_then(Key::from_doc);
        // A whole document keeps the value's bytes when encoding the document again would not give
        // them back (another projector's whitespace or escapes): an undo writes those.
        let exact = (self.whole() && serde_json::to_vec(&doc).ok().as_deref() != Some(bytes))
            .then(|| std::str::from_utf8(bytes).ok())
            .flatten();
        let mut keyed = self.keyed(key, name, doc, named, version, raw);
        if !keyed.doc.contains_key(UNDECODABLE) {
            keyed.meta.raw = exact.map(str::to_string);
        }
        keyed
    }

    fn decode_hash(&self, key: Key, name: String, fields: Vec<(String, String)>) -> KeyedDoc {
        let version = self.whole().then(|| hash_version(&fields));
        let doc: Doc = fields
            .iter()
            .map(|(f, v)| (f.as_str(), DocValue::from(v.as_str())))
            .collect();
        let named = doc.get(&self.key_field).and_then(|v| match (self.kind, v) {
            (Some(KeyKind::Int), DocValue::String(s)) => s.parse::<i64>().ok().map(Key::Int),
            (_, DocValue::String(s)) => Some(Key::Text(s.to_string())),
            _ => None,
        });
        self.keyed(key, name, doc, named, version, || Some(raw_hash(&fields)))
    }

    /// The document, when its key field names the key of its Redis key; kept to the compared fields.
    fn keyed(
        &self,
        key: Key,
        name: String,
        mut doc: Doc,
        named: Option<Key>,
        version: Option<Version>,
        raw: impl FnOnce() -> Option<Value>,
    ) -> KeyedDoc {
        let names_the_key = match (&named, self.kind) {
            (Some(named), Some(_)) => *named == key,
            // The key kind unknown: the key field must spell the key part exactly.
            (Some(named), None) => self.name_of(named) == name,
            (None, _) => false,
        };
        match doc.get(&self.key_field) {
            None => {
                let why = format!("no key field {:?}", self.key_field);
                return self.undecodable(key, name, why, version, raw());
            }
            Some(_) if names_the_key => {}
            Some(value) => {
                let why = format!(
                    "key field {:?} is {value}, not the key of its Redis key",
                    self.key_field
                );
                return self.undecodable(key, name, why, version, raw());
            }
        }
        if let Some(fields) = &self.fields {
            doc.retain(|f, _| fields.contains(f));
        }
        KeyedDoc {
            key,
            doc,
            meta: DocMeta {
                id: Some(name),
                version,
                ..DocMeta::default()
            },
        }
    }

    /// The document of a Redis key whose key part is no key of the key kind (drift `unkeyed`).
    fn unkeyed(&self, name: String, value: Peeked) -> KeyedDoc {
        let why = match self.kind {
            Some(kind) => format!("the Redis key's key part is not an {kind} key"),
            None => "the Redis key's key part is not a key".to_string(),
        };
        let version = value.token.map(Version::new);
        let raw = match value.payload {
            Payload::String(bytes) => Some(raw_string(&bytes)),
            Payload::Hash(fields) => Some(raw_hash(&fields)),
            Payload::Dump { kind, bytes } => Some(raw_dump(&kind, &bytes)),
            Payload::None | Payload::Other(_) => None,
        };
        self.undecodable(Key::Text(String::new()), name, why, version, raw)
    }

    /// A document standing for a value that could not be decoded: [`UNDECODABLE`], saying why. In a
    /// whole document the value itself goes under [`RAW`] (a string, a hash, or another type's `DUMP`), and
    /// [`UNDECODABLE`] only points at it: why a value is undecodable can depend on the key kind, which
    /// an undo's read-backs do not know, and a before-image must read back the same. The reason is in
    /// the metadata either way (`DocMeta::undecodable`), which `recon explain` shows.
    fn undecodable(
        &self,
        key: Key,
        name: String,
        why: String,
        version: Option<Version>,
        raw: Option<Value>,
    ) -> KeyedDoc {
        let mut doc = Doc::new();
        match raw.filter(|_| self.whole()) {
            Some(raw) => {
                doc.insert(UNDECODABLE, format!("held as it is under {RAW:?}"));
                doc.insert(RAW, DocValue::from(raw));
            }
            None => {
                doc.insert(UNDECODABLE, why.as_str());
            }
        }
        KeyedDoc {
            key,
            doc,
            meta: DocMeta {
                id: Some(name),
                version,
                undecodable: Some(why),
                ..DocMeta::default()
            },
        }
    }
}

/// A value as [`PEEK`] read it.
#[derive(Debug, Default)]
struct Peeked {
    /// Its version token (None: the key is absent).
    token: Option<String>,
    payload: Payload,
}

#[derive(Debug, Default)]
enum Payload {
    #[default]
    None,
    String(Vec<u8>),
    Hash(Vec<(String, String)>),
    /// Another Redis type (list, set, …) with its `DUMP` serialization (read for whole documents only).
    Dump {
        kind: String,
        bytes: Vec<u8>,
    },
    /// Another Redis type (list, set, …), by name; a hash with a field that is not UTF-8 too.
    Other(String),
}

/// Every value of `names`, with its type and version token, in one pipeline of [`PEEK`] scripts:
/// the token is the one the writer's script checks, computed by the same Lua code. With `dump`, a
/// value of another type comes with its `DUMP` serialization (and a token computed from it).
async fn peek<'a>(
    conn: &mut redis::aio::MultiplexedConnection,
    names: impl Iterator<Item = &'a str>,
    dump: bool,
) -> redis::RedisResult<Vec<Peeked>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut n = 0;
    for name in names {
        pipe.cmd("EVAL")
            .arg(script::PEEK.as_str())
            .arg(1)
            .arg(name)
            .arg(if dump { "1" } else { "0" });
        n += 1;
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let answers: Vec<redis::Value> = pipe.query_async(conn).await?;
    Ok(answers.into_iter().map(peeked).collect())
}

/// One answer of [`PEEK`]: `{type, token, value}`.
fn peeked(answer: redis::Value) -> Peeked {
    let redis::Value::Array(mut parts) = answer else {
        return Peeked {
            token: None,
            payload: Payload::Other(format!("value recon could not read ({answer:?})")),
        };
    };
    parts.resize(3, redis::Value::Nil);
    let value = parts.pop().unwrap_or(redis::Value::Nil);
    let token = match parts.pop() {
        Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
        Some(redis::Value::SimpleString(s)) => Some(s),
        _ => None,
    };
    let kind = match parts.pop() {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        Some(redis::Value::SimpleString(s)) => s,
        _ => String::new(),
    };
    let payload = match (kind.as_str(), value) {
        ("none", _) => Payload::None,
        ("string", redis::Value::BulkString(bytes)) => Payload::String(bytes),
        ("hash", value) => match hash_fields(value) {
            Ok(fields) => Payload::Hash(fields),
            Err(_) => Payload::Other("hash with a field or value that is not UTF-8".into()),
        },
        (other, redis::Value::BulkString(bytes)) => Payload::Dump {
            kind: other.to_string(),
            bytes,
        },
        (other, _) => Payload::Other(other.to_string()),
    };
    Peeked { token, payload }
}

/// The field/value pairs of an `HGETALL` answer (RESP2 flat array or RESP3 map); an error reply
/// (WRONGTYPE) as its message.
fn hash_fields(answer: redis::Value) -> Result<Vec<(String, String)>, String> {
    let text = |v: redis::Value| -> Result<String, String> {
        match v {
            redis::Value::BulkString(b) => String::from_utf8(b).map_err(|_| "a field that is not UTF-8".to_string()),
            redis::Value::SimpleString(s) => Ok(s),
            other => Err(format!("unexpected answer {other:?}")),
        }
    };
    match answer {
        redis::Value::Array(items) => {
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(f), Some(v)) = (items.next(), items.next()) {
                pairs.push((text(f)?, text(v)?));
            }
            Ok(pairs)
        }
        redis::Value::Map(items) => items.into_iter().map(|(f, v)| Ok((text(f)?, text(v)?))).collect(),
        redis::Value::Nil => Ok(Vec::new()),
        redis::Value::ServerError(e) => Err(e.to_string()),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// The version token of a string value: the SHA-1 of its bytes, in hex. Lua computes the same with
/// `redis.sha1hex`, so the writer's script checks a token recon handed out without sending the value.
pub fn string_version(bytes: &[u8]) -> Version {
    Version::new(sha1_hex(bytes))
}

/// The version token of a hash: the SHA-1 of its fields sorted by their bytes, each field and value
/// written as `LENGTH:BYTES` (so no two hashes share an encoding), as the scripts compute it.
pub fn hash_version(fields: &[(String, String)]) -> Version {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut bytes = Vec::new();
    for (field, value) in sorted {
        for part in [field, value] {
            bytes.extend_from_slice(part.len().to_string().as_bytes());
            bytes.push(b':');
            bytes.extend_from_slice(part.as_bytes());
        }
    }
    Version::new(sha1_hex(&bytes))
}

fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest;
    hex(&sha1::Sha1::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A string value as [`RAW`] holds it: the text, or its bytes in hex when it is not UTF-8.
fn raw_string(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::json!({ "string": text }),
        Err(_) => serde_json::json!({ "hex": hex(bytes) }),
    }
}

/// A value of another type as [`RAW`] holds it: its type, and its `DUMP` serialization in hex (what an
/// undo `RESTORE`s).
fn raw_dump(kind: &str, bytes: &[u8]) -> Value {
    serde_json::json!({ "dump": hex(bytes), "type": kind })
}

fn raw_hash(fields: &[(String, String)]) -> Value {
    let fields: Map<String, Value> = fields
        .iter()
        .map(|(f, v)| (f.clone(), Value::String(v.clone())))
        .collect();
    serde_json::json!({ "hash": fields })
}

/// A broken or refused connection, a timeout, an answer cut off mid-frame (the client reads a
/// parse error then), a server still loading its data after a restart: worth another attempt on a
/// new connection. Not a failed authentication: trying again would not change the password.
pub(crate) fn is_transient(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            redis::ErrorKind::Parse | redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
        )
}

fn json_kind(value: &DocValue) -> &'static str {
    match value {
        DocValue::Null => "null",
        DocValue::Bool(_) => "boolean",
        DocValue::Number(_) => "number",
        DocValue::String(_) => "string",
        DocValue::Array(_) => "array",
        DocValue::Object(_) => "object",
    }
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A client error's message with the URL's password removed, should it quote the URL.
fn strip(error: &redis::RedisError, url: &str) -> String {
    let message = error.to_string();
    match url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_string)) {
        Some(password) if !password.is_empty() => message.replace(&password, "***"),
        _ => message,
    }
}

impl DocumentSource for RedisSource {
    fn open_scan(&self, range: KeyRange) -> BoxFuture<'_, anyhow::Result<Scan>> {
        async move {
            let keys = Arc::new(self.list_keys(&range).await?);
            let total = keys.len();
            Ok(Scan {
                docs: self.read_keys(keys, KeyRange::all(), total),
                estimate: Some(total),
                snapshot_ms: Some(chrono::Utc::now().timestamp_millis()),
            })
        }
        .boxed()
    }

    fn lookup<'a>(&'a self, keys: &'a [Key]) -> BoxFuture<'a, anyhow::Result<Vec<KeyedDoc>>> {
        async move {
            let mut found = Vec::new();
            for chunk in keys.chunks(self.reader.batch) {
                found.extend(self.reader.read(chunk.to_vec()).await?);
            }
            Ok(found)
        }
        .boxed()
    }

    fn product(&self) -> &'static str {
        "Redis"
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}

impl ReadModel for RedisSource {
    fn key_kind(&self) -> KeyKind {
        self.kind
    }

    fn key_type(&self) -> String {
        format!("{} (parsed from the Redis key)", self.kind)
    }

    /// The Redis key: `key_pattern` with the key in it.
    fn doc_id(&self, key: &Key) -> String {
        self.reader.name_of(key)
    }

    /// Conditional writes by Lua script, whole documents read back (see [`write`]).
    fn conditional_writer(&self, batching: BulkSettings) -> Option<Arc<dyn ConditionalWriter>> {
        Some(Arc::new(write::RedisWriter::new(self.reader.clone(), batching)))
    }

    /// Lists the keys once for all the ranges of a parallel check (see [`ListedKeys`]); the default
    /// `close_view` drops the file, which scans still reading it keep open until they end.
    fn open_view(&self) -> BoxFuture<'_, anyhow::Result<Option<Box<dyn SharedView>>>> {
        async move {
            let listed_ms = chrono::Utc::now().timestamp_millis();
            let keys = Arc::new(self.list_keys(&KeyRange::all()).await?);
            Ok(Some(Box::new(ListedKeys { keys, listed_ms }) as Box<dyn SharedView>))
        }
        .boxed()
    }

    /// The keys of `range` from the shared listing (when given), then their values as
    /// [`DocumentSource::open_scan`] reads them.
    fn open_scan_in<'a>(
        &'a self,
        range: KeyRange,
        view: Option<&'a dyn SharedView>,
    ) -> BoxFuture<'a, anyhow::Result<Scan>> {
        async move {
            let Some(view) = view else {
                return self.open_scan(range).await;
            };
            let listed = view
                .as_any()
                .downcast_ref::<ListedKeys>()
                .context("not a listing of Redis keys: a view of another source")?;
            let keys = listed.keys.clone();
            let total = {
                let (keys, range) = (keys.clone(), range.clone());
                tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
                    let mut n = 0;
                    for key in keys.keys_in(&range)? {
                        key?;
                        n += 1;
                    }
                    Ok(n)
                })
                .await?
                .context("cannot read the listed Redis keys back from their temp file")?
            };
            Ok(Scan {
                docs: self.read_keys(keys, range, total),
                estimate: Some(total),
                snapshot_ms: Some(listed.listed_ms),
            })
        }
        .boxed()
    }

    /// The Redis key, and the version as what it is: the SHA-1 of the stored value (script.rs).
    fn describe_meta(&self, meta: &DocMeta) -> Vec<(String, Value)> {
        let mut described = Vec::new();
        if let Some(name) = &meta.id {
            described.push(("redis key".to_string(), Value::from(name.as_str())));
        }
        if let Some(version) = &meta.version {
            described.push(("value hash".to_string(), Value::from(format!("sha1 {version}"))));
        }
        if let Some(why) = &meta.undecodable {
            described.push(("undecodable".to_string(), Value::from(why.as_str())));
        }
        described
    }

    /// The Redis keys matching the pattern whose key part is not a key of the write model's kind,
    /// sorted on disk as the keys of a scan are (there may be as many of them as keys), then read in
    /// batches, a few in flight.
    fn open_unkeyed_scan(&self) -> BoxFuture<'_, anyhow::Result<DocStream>> {
        async move {
            let reader = self.reader.clone();
            let mut sorter = KeySorter::default();
            self.scan_names(|name| match reader.parse_name(&name) {
                None => match String::from_utf8(name) {
                    Ok(name) => sorter.push(Key::Text(name)),
                    // Read back under a lossy name, its value would be found absent and the key never
                    // reported: stop rather than skip it silently.
                    Err(e) => anyhow::bail!(
                        "the Redis key {} matches redis.key_pattern but is not UTF-8 text, which recon \
                         cannot name in a report or read back: rename or delete it (nothing was reported)",
                        escaped_name(e.as_bytes())
                    ),
                },
                Some(_) => Ok(()),
            })
            .await?;
            let names = Arc::new(sorter.finish()?);
            let total = names.len();
            // Their values too, read as a lookup reads them: a repair deletes them only while they
            // are unchanged (the version token), and an undo puts back what was there.
            Ok(in_batches(names, KeyRange::all(), total, reader.batch, move |chunk| {
                let reader = reader.clone();
                async move {
                    let names: Vec<String> = chunk.into_iter().map(|name| name.doc_id()).collect();
                    let peeked = reader
                        .peek_all(&names.iter().map(String::as_str).collect::<Vec<_>>())
                        .await?;
                    Ok(names
                        .into_iter()
                        .zip(peeked)
                        .filter(|(_, value)| !matches!(value.payload, Payload::None))
                        .map(|(name, value)| reader.unkeyed(name, value))
                        .collect())
                }
            }))
        }
        .boxed()
    }
}

/// The documents `read` makes of the keys of `keys` in `range` (`total` of them), `batch` keys at a
/// time, in order: the keys come off the disk a few batches ahead, and [`IN_FLIGHT`] batches are read
/// at once, so memory holds a few batches whatever the number of keys.
fn in_batches<F, Fut>(keys: Arc<KeyFile>, range: KeyRange, total: u64, batch: usize, read: F) -> DocStream
where
    F: Fn(Vec<Key>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Vec<KeyedDoc>>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<Key>>>(IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let chunks = match keys.chunks_in(&range, batch) {
            Ok(chunks) => chunks,
            Err(e) => {
                let _ = tx.blocking_send(Err(e.into()));
                return;
            }
        };
        for chunk in chunks {
            if tx.blocking_send(chunk.map_err(Into::into)).is_err() {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
        .map(move |chunk| {
            let read = chunk.map(|chunk| {
                let n = chunk.len() as u64;
                read(chunk).map(move |docs| docs.map(|docs| (n, docs)))
            });
            async move { read?.await }
        })
        .buffered(IN_FLIGHT)
        // How far the read got, should it stop: the report is never made of a partial read.
        .scan(0u64, move |done, read| {
            let read = match read {
                Ok((n, docs)) => {
                    *done += n;
                    Ok(docs)
                }
                Err(e) => Err(anyhow::anyhow!(
                    "{e:#}, after {done} of {total} keys were read; nothing is reported from a partial \
                     read: run the check again"
                )),
            };
            futures::future::ready(Some(read))
        })
        .map_ok(|docs| futures::stream::iter(docs.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// A Redis key name as `redis-cli` shows it: printable ASCII as it is, every other byte `\xHH`.
fn escaped_name(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_tokens_are_what_the_scripts_compute() {
        // A string's: the SHA-1 of its bytes, as `redis.sha1hex` gives it.
        assert_eq!(
            string_version(b"abc").as_str(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        // A hash's: its fields in byte order, each field and value as LENGTH:BYTES, whatever order
        // HGETALL answered in.
        let fields = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect()
        };
        let token = hash_version(&fields(&[("b", "22"), ("a", "1"), ("Z", "")]));
        assert_eq!(token.as_str(), sha1_hex(b"1:Z0:1:a1:11:b2:22"));
        assert_eq!(token, hash_version(&fields(&[("a", "1"), ("Z", ""), ("b", "22")])));
        // Field boundaries count: moving a byte from a value to the next field changes the token.
        assert_ne!(
            hash_version(&fields(&[("a", "1b"), ("c", "")])),
            hash_version(&fields(&[("a", "1"), ("bc", "")]))
        );
    }

    #[test]
    fn lost_connections_and_cut_answers_are_retried_a_wrong_password_is_not() {
        let io = |kind| redis::RedisError::from(std::io::Error::from(kind));
        assert!(is_transient(&io(std::io::ErrorKind::ConnectionReset)));
        assert!(is_transient(&io(std::io::ErrorKind::ConnectionRefused)));
        // An answer cut off mid-frame reads as a parse error.
        assert!(is_transient(&redis::RedisError::from((redis::ErrorKind::Parse, "cut"))));
        assert!(!is_transient(&redis::RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "WRONGPASS"
        ))));
        assert!(!is_transient(&redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "not a string"
        ))));
    }

    #[test]
    fn glob_characters_of_the_pattern_are_escaped() {
        assert_eq!(glob_escape("order[eu]:*?\\"), "order\\[eu\\]:\\*\\?\\\\");
    }

    #[test]
    fn hash_answers_in_either_protocol_become_pairs() {
        let b = |s: &str| redis::Value::BulkString(s.as_bytes().to_vec());
        let resp2 = redis::Value::Array(vec![b("a"), b("1"), b("b"), b("2")]);
        assert_eq!(
            hash_fields(resp2).unwrap(),
            vec![("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]
        );
        let resp3 = redis::Value::Map(vec![(b("a"), b("1"))]);
        assert_eq!(hash_fields(resp3).unwrap(), vec![("a".to_string(), "1".to_string())]);
        assert!(hash_fields(redis::Value::Int(3)).is_err());
    }
}

/// Against a throwaway `redis-server` (the system's binary, as the integration tests use).
#[cfg(test)]
mod server_tests {
    use super::*;
    use recon_testkit::redis_server::RedisServer;

    /// How many times the server ran `command` since its statistics were last reset.
    async fn calls(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
        let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
            .unwrap_or(0)
    }

    async fn source(server: &RedisServer, batch: usize) -> RedisSource {
        RedisSource::connect(RedisSettings {
            url: server.url(),
            key_field: "orderId".into(),
            key_pattern: "order:{}".into(),
            encoding: RedisEncoding::Json,
            key_kind: Some(KeyKind::Int),
            fields: None,
            batch,
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unkeyed_names_are_sorted_on_disk_and_their_values_read_batch_by_batch() {
        let server = tokio::task::spawn_blocking(RedisServer::start).await.unwrap().unwrap();
        let mut conn = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        // 5,000 names whose key part is no integer, written in reverse order, beside keyed ones.
        let mut names: Vec<String> = (0..5000).map(|i| format!("order:x{i:05}")).collect();
        let mut pipe = redis::pipe();
        for name in names.iter().rev() {
            pipe.cmd("SET").arg(name).arg("{}").ignore();
        }
        for i in 1..=50 {
            pipe.cmd("SET").arg(format!("order:{i}")).arg("{}").ignore();
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
        let source = source(&server, 100).await;
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut conn)
            .await
            .unwrap();

        let mut docs = source.open_unkeyed_scan().await.unwrap();
        // The names are listed, but no value is read before the stream is asked for one ...
        assert_eq!(calls(&mut conn, "eval").await, 0);
        let first = docs.next().await.unwrap().unwrap();
        assert_eq!(first.meta.id.as_deref(), Some("order:x00000"));
        // ... and then only a few batches of them (one peek script per name).
        let read = calls(&mut conn, "eval").await;
        assert!((100..=IN_FLIGHT as u64 * 100).contains(&read), "{read} values read");
        let mut seen = vec![first.meta.id.unwrap()];
        while let Some(doc) = docs.next().await {
            let doc = doc.unwrap();
            assert!(doc.doc.contains_key(RAW), "{doc:?}");
            seen.push(doc.meta.id.unwrap());
        }
        // Every one, once, in order.
        names.sort();
        assert_eq!(seen, names);
        assert_eq!(calls(&mut conn, "eval").await, 5000);
    }
}
