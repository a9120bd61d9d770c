//! A Redis read model: one value per document under a key built from a pattern (`order:{}`), either a
//! JSON string or a hash of string fields.
//!
//! Redis has no ordered scan and no snapshot. A scan lists the keys with `SCAN MATCH` (which may return
//! a key more than once), sorts the parsed keys on disk ([`KeySorter`]), then reads the values in key
//! order with pipelined `MGET` / `HGETALL` batches, a few in flight. Keys written during the scan may be
//! seen or not; `--recheck` looks drift up again afterwards.
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

use super::{DocStream, DocumentSource, KeyRange, ReadModel, Scan};
use crate::config::RedisEncoding;
use crate::model::{DocMeta, Key, KeyKind, KeyedDoc, Version};
use crate::scale::keyfile::KeySorter;
use crate::secret::redact_url;

/// The field an undecodable value's document holds instead of its content, saying why.
pub const UNDECODABLE: &str = "(undecodable Redis value)";

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
    /// The write model's key kind: the key part of each Redis key is parsed as one.
    pub key_kind: KeyKind,
    /// Only these top-level fields (and the key field) are kept; None keeps every field.
    pub fields: Option<Vec<String>>,
    /// Values read per `MGET` or pipeline.
    pub batch: usize,
}

/// The read side of one Redis database.
pub struct RedisSource {
    reader: Arc<Reader>,
    glob: String,
    described: String,
}

/// What reading values needs, shared by the batches in flight.
struct Reader {
    conn: redis::aio::MultiplexedConnection,
    prefix: String,
    suffix: String,
    key_field: String,
    kind: KeyKind,
    encoding: RedisEncoding,
    fields: Option<BTreeSet<String>>,
    batch: usize,
    described: String,
}

impl RedisSource {
    pub async fn connect(settings: RedisSettings) -> anyhow::Result<RedisSource> {
        let shown = redact_url(&settings.url);
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| anyhow::anyhow!("redis.url {shown} is not a Redis URL: {}", strip(&e, &settings.url)))?;
        let db = client.get_connection_info().redis_settings().db();
        let described = format!("Redis {shown} db {db} pattern {}", settings.key_pattern);
        let conn = client.get_multiplexed_async_connection().await.map_err(|e| {
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
            conn,
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
            key_field: settings.key_field.clone(),
            kind: settings.key_kind,
            encoding: settings.encoding,
            fields: settings
                .fields
                .map(|f| f.into_iter().chain([settings.key_field]).collect()),
            batch: settings.batch.max(1),
            described: described.clone(),
        };
        Ok(RedisSource {
            reader: Arc::new(reader),
            glob,
            described,
        })
    }

    /// Every Redis key matching the pattern, once per `SCAN` answer (a key may come twice), to `each`.
    async fn scan_names(&self, mut each: impl FnMut(Vec<u8>) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut conn = self.reader.conn.clone();
        let mut cursor: u64 = 0;
        loop {
            let (next, names): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&self.glob)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await
                .with_context(|| format!("{}: SCAN failed", self.described))?;
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

impl Reader {
    /// The key a Redis key name stands for; None when its key part is not one of the key kind (an
    /// integer key must be written canonically: `order:7`, not `order:07`).
    fn parse_name(&self, name: &[u8]) -> Option<Key> {
        let name = std::str::from_utf8(name).ok()?;
        let part = name.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        match self.kind {
            KeyKind::Int => part.parse::<i64>().ok().filter(|i| i.to_string() == part).map(Key::Int),
            KeyKind::Text => Some(Key::Text(part.to_string())),
        }
    }

    fn name_of(&self, key: &Key) -> String {
        format!("{}{}{}", self.prefix, key.doc_id(), self.suffix)
    }

    /// The documents of `keys` (absent ones left out), in the order given.
    async fn read(&self, keys: Vec<Key>) -> anyhow::Result<Vec<KeyedDoc>> {
        let names: Vec<String> = keys.iter().map(|k| self.name_of(k)).collect();
        let mut conn = self.conn.clone();
        let mut docs = Vec::with_capacity(keys.len());
        match self.encoding {
            RedisEncoding::Json => {
                let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(&names)
                    .query_async(&mut conn)
                    .await
                    .with_context(|| format!("{}: MGET failed", self.described))?;
                // MGET answers nil for an absent key and for one holding another type: ask which.
                let nil: Vec<usize> = (0..values.len()).filter(|&i| values[i].is_none()).collect();
                let types = self.types(&names, &nil).await?;
                let mut types = types.into_iter();
                for ((key, name), value) in keys.into_iter().zip(names).zip(values) {
                    match value {
                        Some(bytes) => docs.push(self.decode_json(key, name, &bytes)),
                        None => {
                            let kind = types.next().unwrap_or_default();
                            if kind != "none" {
                                docs.push(undecodable(
                                    key,
                                    name,
                                    format!("a Redis {kind}, not a string (redis.encoding is \"json\")"),
                                ));
                            }
                        }
                    }
                }
            }
            RedisEncoding::Hash => {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for name in &names {
                    pipe.cmd("HGETALL").arg(name);
                }
                let answers: Vec<redis::Value> = pipe
                    .query_async(&mut conn)
                    .await
                    .with_context(|| format!("{}: HGETALL failed", self.described))?;
                for ((key, name), answer) in keys.into_iter().zip(names).zip(answers) {
                    match hash_fields(answer) {
                        Ok(fields) if fields.is_empty() => {}
                        Ok(fields) => docs.push(self.decode_hash(key, name, fields)),
                        Err(e) => docs.push(undecodable(
                            key,
                            name,
                            format!("not a hash (redis.encoding is \"hash\"): {e}"),
                        )),
                    }
                }
            }
        }
        Ok(docs)
    }

    /// `TYPE` of `names[i]` for each `i` of `which`, in one pipeline.
    async fn types(&self, names: &[String], which: &[usize]) -> anyhow::Result<Vec<String>> {
        if which.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for &i in which {
            pipe.cmd("TYPE").arg(&names[i]);
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn)
            .await
            .with_context(|| format!("{}: TYPE failed", self.described))
    }

    fn decode_json(&self, key: Key, name: String, bytes: &[u8]) -> KeyedDoc {
        let version = version_of(bytes);
        let doc = match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(doc)) => doc,
            Ok(other) => return undecodable(key, name, format!("JSON {}, not an object", json_kind(&other))),
            Err(e) => return undecodable(key, name, format!("not JSON: {e}")),
        };
        let named = doc.get(&self.key_field).and_then(Key::from_json);
        self.keyed(key, name, doc, named, version)
    }

    fn decode_hash(&self, key: Key, name: String, mut fields: Vec<(String, String)>) -> KeyedDoc {
        fields.sort();
        let mut bytes = Vec::new();
        for (field, value) in &fields {
            for part in [field, value] {
                bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
                bytes.extend_from_slice(part.as_bytes());
            }
        }
        let version = version_of(&bytes);
        let doc: Map<String, Value> = fields.into_iter().map(|(f, v)| (f, Value::String(v))).collect();
        let named = doc.get(&self.key_field).and_then(|v| match (self.kind, v) {
            (KeyKind::Int, Value::String(s)) => s.parse::<i64>().ok().map(Key::Int),
            (KeyKind::Text, Value::String(s)) => Some(Key::Text(s.clone())),
            _ => None,
        });
        self.keyed(key, name, doc, named, version)
    }

    /// The document, when its key field names the key of its Redis key; kept to the compared fields.
    fn keyed(
        &self,
        key: Key,
        name: String,
        mut doc: Map<String, Value>,
        named: Option<Key>,
        version: Version,
    ) -> KeyedDoc {
        match (doc.get(&self.key_field), named) {
            (None, _) => return undecodable(key, name, format!("no key field {:?}", self.key_field)),
            (Some(_), Some(named)) if named == key => {}
            (Some(value), _) => {
                return undecodable(
                    key,
                    name,
                    format!(
                        "key field {:?} is {value}, not the key of its Redis key",
                        self.key_field
                    ),
                )
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
                version: Some(version),
                ..DocMeta::default()
            },
        }
    }
}

/// A document standing for a value that could not be decoded: only [`UNDECODABLE`], saying why.
fn undecodable(key: Key, name: String, why: String) -> KeyedDoc {
    let mut doc = Map::new();
    doc.insert(UNDECODABLE.to_string(), Value::String(why));
    KeyedDoc {
        key,
        doc,
        meta: DocMeta {
            id: Some(name),
            ..DocMeta::default()
        },
    }
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

/// The version token of a value: its hash, so a later write can check the value is unchanged.
fn version_of(bytes: &[u8]) -> Version {
    Version::new(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes)))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
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
            let reader = self.reader.clone();
            let mut sorter = KeySorter::default();
            self.scan_names(|name| match reader.parse_name(&name) {
                Some(key) if range.contains(&key) => sorter.push(key),
                _ => Ok(()),
            })
            .await?;
            let keys = sorter.finish()?;
            let estimate = Some(keys.len());
            let (tx, rx) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<Key>>>(IN_FLIGHT);
            let batch = reader.batch;
            tokio::task::spawn_blocking(move || {
                let chunks = match keys.chunks(batch) {
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
            let docs: DocStream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
                .map(move |chunk| {
                    let reader = reader.clone();
                    async move { reader.read(chunk?).await }
                })
                .buffered(IN_FLIGHT)
                .map_ok(|docs| futures::stream::iter(docs.into_iter().map(Ok)))
                .try_flatten()
                .boxed();
            Ok(Scan {
                docs,
                estimate,
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

    fn describe(&self) -> String {
        self.described.clone()
    }
}

impl ReadModel for RedisSource {
    fn key_kind(&self) -> KeyKind {
        self.reader.kind
    }

    fn key_type(&self) -> String {
        format!("{} (parsed from the Redis key)", self.reader.kind)
    }

    /// The Redis key, and the version as what it is: a hash of the stored value.
    fn describe_meta(&self, meta: &DocMeta) -> Vec<(String, Value)> {
        let mut described = Vec::new();
        if let Some(name) = &meta.id {
            described.push(("redis key".to_string(), Value::from(name.as_str())));
        }
        if let Some(version) = &meta.version {
            described.push(("value hash".to_string(), Value::from(format!("xxh3 {version}"))));
        }
        described
    }

    /// The Redis keys matching the pattern whose key part is not a key of the write model's kind.
    fn open_unkeyed_scan(&self) -> BoxFuture<'_, anyhow::Result<DocStream>> {
        async move {
            let mut names = BTreeSet::new();
            let reader = self.reader.clone();
            self.scan_names(|name| {
                if reader.parse_name(&name).is_none() {
                    names.insert(String::from_utf8_lossy(&name).into_owned());
                }
                Ok(())
            })
            .await?;
            let kind = reader.kind;
            let docs = names.into_iter().map(move |name| {
                let mut doc = Map::new();
                doc.insert(
                    UNDECODABLE.to_string(),
                    Value::String(format!("the Redis key's key part is not an {kind} key")),
                );
                Ok(KeyedDoc {
                    key: Key::Text(String::new()),
                    doc,
                    meta: DocMeta {
                        id: Some(name),
                        ..DocMeta::default()
                    },
                })
            });
            Ok(futures::stream::iter(docs).boxed())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
