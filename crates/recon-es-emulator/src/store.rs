//! The index store: live documents (what GET sees), the searchable snapshot made at each refresh
//! (what search sees), sequence numbers, versions and delete tombstones.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::error::EsError;
use super::mapping::{DocValues, Dv, Mapping};

/// One stored version of a document. Immutable: an update creates a new `Doc`.
#[derive(Debug)]
pub struct Doc {
    pub id: Arc<str>,
    pub source: Bytes,
    pub version: i64,
    pub seq_no: i64,
    pub shard: u32,
    pub values: DocValues,
}

impl Doc {
    pub fn values_of(&self, field: u32) -> impl Iterator<Item = Dv<'_>> + '_ {
        self.values.of(field)
    }
}

/// Parses a document source, with the error Elasticsearch gives for malformed ones.
pub fn parse_source(raw: &[u8], id: &str) -> Result<Map<String, Value>, EsError> {
    serde_json::from_slice::<Map<String, Value>>(raw).map_err(|e| {
        EsError::new(
            400,
            "document_parsing_exception",
            format!("[1:{}] failed to parse: {e}", e.column()),
        )
        .with(
            "caused_by",
            json!({"type": "x_content_parse_exception", "reason": format!("failed to parse document with id '{id}'")}),
        )
    })
}

/// What search sees: documents grouped by shard, in indexing order within a shard.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub docs: Vec<Arc<Doc>>,
    /// Ordinal of the first document of each shard.
    pub shard_starts: Vec<u32>,
    /// Exact-value indexes over `docs`, built on first use. A refresh makes a new snapshot, so they are
    /// never stale and an unrefreshed write is never in them.
    exact: Mutex<HashMap<ExactField, Arc<OnceLock<Arc<ExactIndex>>>>>,
}

/// What an exact-value index is built over: a field's doc values (by source id), or `_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExactField {
    Id,
    Values(u32),
}

/// A value looked up exactly: strings (keyword, text) and integers (longs, dates in the field's unit).
#[derive(Debug, Clone, Copy, Hash)]
pub enum ExactValue<'a> {
    Str(&'a str),
    Long(i64),
}

/// Hashes of a field's values with the ordinals of the documents holding them, sorted: what an inverted
/// index answers for `term`/`terms`/`ids`, in 12 bytes per value. A hash collision only adds a candidate,
/// which the query itself then rejects, so candidates are always a superset of the matches.
#[derive(Debug, Default)]
pub struct ExactIndex {
    entries: Vec<(u64, u32)>,
}

fn exact_hash(v: ExactValue) -> u64 {
    // Fixed keys: the same value hashes alike at build and at lookup.
    BuildHasherDefault::<DefaultHasher>::default().hash_one(v)
}

impl ExactIndex {
    fn build(docs: &[Arc<Doc>], field: ExactField) -> ExactIndex {
        let mut entries = Vec::with_capacity(docs.len());
        for (ord, doc) in docs.iter().enumerate() {
            let ord = ord as u32;
            match field {
                ExactField::Id => entries.push((exact_hash(ExactValue::Str(&doc.id)), ord)),
                ExactField::Values(id) => {
                    for v in doc.values_of(id) {
                        let v = match v {
                            Dv::Str(s) => ExactValue::Str(s),
                            Dv::Long(n) | Dv::Date(n) => ExactValue::Long(n),
                            Dv::Double(_) | Dv::Bool(_) => continue,
                        };
                        entries.push((exact_hash(v), ord));
                    }
                }
            }
        }
        entries.sort_unstable();
        entries.dedup();
        ExactIndex { entries }
    }

    /// Ordinals of the documents that may hold `value`, ascending.
    pub fn lookup(&self, value: ExactValue) -> impl Iterator<Item = u32> + '_ {
        let hash = exact_hash(value);
        let start = self.entries.partition_point(|&(h, _)| h < hash);
        self.entries[start..]
            .iter()
            .take_while(move |&&(h, _)| h == hash)
            .map(|&(_, ord)| ord)
    }
}

impl Snapshot {
    pub fn new(docs: Vec<Arc<Doc>>, shard_starts: Vec<u32>) -> Snapshot {
        Snapshot {
            docs,
            shard_starts,
            exact: Mutex::default(),
        }
    }

    /// The exact-value index of `field` over this snapshot, built on first use (concurrent searches for
    /// the same field wait for one build).
    pub fn exact(&self, field: ExactField) -> Arc<ExactIndex> {
        let cell = self
            .exact
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(field)
            .or_default()
            .clone();
        cell.get_or_init(|| Arc::new(ExactIndex::build(&self.docs, field)))
            .clone()
    }

    /// `_shard_doc`-style position of an ordinal: (shard, doc id within the shard).
    pub fn shard_doc(&self, ord: u32) -> (u32, u32) {
        let shard = self.shard_starts.partition_point(|&s| s <= ord).saturating_sub(1);
        (shard as u32, ord - self.shard_starts.get(shard).copied().unwrap_or(0))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AliasMeta {
    pub filter: Option<Value>,
    pub index_routing: Option<String>,
    pub search_routing: Option<String>,
    pub is_write_index: Option<bool>,
    pub is_hidden: Option<bool>,
}

impl AliasMeta {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(f) = &self.filter {
            m.insert("filter".into(), f.clone());
        }
        if let Some(r) = &self.index_routing {
            m.insert("index_routing".into(), json!(r));
        }
        if let Some(r) = &self.search_routing {
            m.insert("search_routing".into(), json!(r));
        }
        if let Some(w) = self.is_write_index {
            m.insert("is_write_index".into(), json!(w));
        }
        if let Some(h) = self.is_hidden {
            m.insert("is_hidden".into(), json!(h));
        }
        Value::Object(m)
    }

    pub fn from_json(v: &Value) -> AliasMeta {
        let routing = v.get("routing").and_then(as_string);
        AliasMeta {
            filter: v.get("filter").cloned(),
            index_routing: v.get("index_routing").and_then(as_string).or_else(|| routing.clone()),
            search_routing: v.get("search_routing").and_then(as_string).or(routing),
            is_write_index: v.get("is_write_index").and_then(as_bool),
            is_hidden: v.get("is_hidden").and_then(as_bool),
        }
    }
}

pub fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub struct Index {
    pub name: String,
    pub uuid: String,
    pub created_millis: i64,
    /// Flat settings (`index.number_of_shards` → "1"), values as strings like Elasticsearch returns them.
    pub settings: BTreeMap<String, String>,
    pub mapping: Arc<Mapping>,
    pub aliases: BTreeMap<String, AliasMeta>,
    pub closed: bool,
    live: HashMap<Arc<str>, u32>,
    slots: Vec<Option<Arc<Doc>>>,
    tombstones: HashMap<Arc<str>, (i64, i64)>,
    pub next_seq_no: i64,
    pub searchable: Arc<Snapshot>,
    dirty_since: Option<Instant>,
    /// Shards with writes not yet searchable (a forced refresh on write only refreshes its shard).
    dirty_shards: Vec<bool>,
    pub deleted_docs: u64,
}

/// How a write checks the document's current state.
#[derive(Debug, Clone, Default)]
pub struct WriteCheck {
    pub create_only: bool,
    pub if_seq_no: Option<i64>,
    pub if_primary_term: Option<i64>,
    pub version: Option<i64>,
    pub version_type: VersionType,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum VersionType {
    #[default]
    Internal,
    External,
    ExternalGte,
}

impl VersionType {
    pub fn parse(s: &str) -> Result<VersionType, EsError> {
        match s {
            "internal" => Ok(VersionType::Internal),
            "external" => Ok(VersionType::External),
            "external_gte" => Ok(VersionType::ExternalGte),
            "force" => Err(EsError::validation(&[
                "version type [force] may no longer be used".into()
            ])),
            other => Err(EsError::bad_request(format!("No version type match [{other}]"))),
        }
    }
}

impl WriteCheck {
    /// The request-level validation Elasticsearch does before touching a shard.
    pub fn validate(&self) -> Result<(), EsError> {
        let mut problems = Vec::new();
        if self.version.is_some() && self.version_type == VersionType::Internal {
            problems.push(
                "internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead".to_string(),
            );
        }
        if self.if_seq_no.is_some() != self.if_primary_term.is_some() {
            if self.if_seq_no.is_some() {
                problems.push("ifSeqNo is set, but primary term is [0]".to_string());
            } else {
                problems.push("ifPrimaryTerm is set, but seqNo is [-2]".to_string());
            }
        }
        if self.create_only && self.version_type != VersionType::Internal {
            problems.push("create operations only support internal versioning. use index instead".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EsError::validation(&problems))
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriteResult {
    pub version: i64,
    pub seq_no: i64,
    pub result: &'static str,
    pub status: u16,
    pub shard: u32,
}

pub const PRIMARY_TERM: i64 = 1;

impl Index {
    pub fn new(name: String, uuid: String, settings: BTreeMap<String, String>, mapping: Mapping) -> Index {
        let shards = settings
            .get("index.number_of_shards")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1u32);
        Index {
            name,
            uuid,
            created_millis: (super::dates::now_nanos() / 1_000_000) as i64,
            settings,
            mapping: Arc::new(mapping),
            aliases: BTreeMap::new(),
            closed: false,
            live: HashMap::new(),
            slots: Vec::new(),
            tombstones: HashMap::new(),
            next_seq_no: 0,
            searchable: Arc::new(Snapshot::new(Vec::new(), vec![0; shards as usize])),
            dirty_since: None,
            dirty_shards: vec![false; shards.max(1) as usize],
            deleted_docs: 0,
        }
    }

    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }

    pub fn num_shards(&self) -> u32 {
        self.setting("index.number_of_shards")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1)
    }

    pub fn num_replicas(&self) -> u32 {
        self.setting("index.number_of_replicas")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1)
    }

    pub fn setting_u64(&self, key: &str, default: u64) -> u64 {
        self.setting(key).and_then(|s| s.parse().ok()).unwrap_or(default)
    }

    pub fn write_shards(&self) -> Value {
        json!({"total": 1 + self.num_replicas(), "successful": 1, "failed": 0})
    }

    pub fn get_live(&self, id: &str) -> Option<&Arc<Doc>> {
        self.live.get(id).and_then(|&slot| self.slots[slot as usize].as_ref())
    }

    pub fn get_searchable(&self, id: &str) -> Option<Arc<Doc>> {
        self.searchable.docs.iter().find(|d| &*d.id == id).cloned()
    }

    pub fn live_docs(&self) -> impl Iterator<Item = &Arc<Doc>> {
        self.slots.iter().flatten()
    }

    /// The refresh interval; `None` means never (`-1`).
    pub fn refresh_interval(&self) -> Option<Duration> {
        match self.setting("index.refresh_interval") {
            None => Some(Duration::from_secs(1)),
            Some(s) => parse_duration(s),
        }
    }

    /// Makes pending writes searchable if the refresh interval elapsed since the first of them.
    pub fn maybe_scheduled_refresh(&mut self) {
        if let (Some(since), Some(interval)) = (self.dirty_since, self.refresh_interval()) {
            if since.elapsed() >= interval {
                self.refresh();
            }
        }
    }

    /// Makes the pending writes of one shard searchable, as a write's `refresh=true` does.
    pub fn refresh_shard(&mut self, shard: u32) {
        let shards = self.dirty_shards.len();
        if shards <= 1 {
            return self.refresh();
        }
        let shard = (shard as usize).min(shards - 1);
        if !self.dirty_shards[shard] {
            return;
        }
        let old = self.searchable.clone();
        let mut docs = Vec::with_capacity(self.live.len());
        let mut shard_starts = vec![0u32; shards];
        for (i, start) in shard_starts.iter_mut().enumerate() {
            *start = docs.len() as u32;
            if i == shard {
                docs.extend(self.slots.iter().flatten().filter(|d| d.shard as usize == i).cloned());
            } else {
                let lo = old.shard_starts.get(i).copied().unwrap_or(0) as usize;
                let hi = old.shard_starts.get(i + 1).copied().unwrap_or(old.docs.len() as u32) as usize;
                docs.extend(old.docs[lo..hi].iter().cloned());
            }
        }
        self.searchable = Arc::new(Snapshot::new(docs, shard_starts));
        self.dirty_shards[shard] = false;
        if !self.dirty_shards.iter().any(|&d| d) {
            self.dirty_since = None;
        }
    }

    pub fn refresh(&mut self) {
        if self.dirty_since.is_none() {
            return;
        }
        self.dirty_since = None;
        self.dirty_shards.iter_mut().for_each(|d| *d = false);
        let shards = self.num_shards() as usize;
        let mut docs: Vec<Arc<Doc>> = Vec::with_capacity(self.live.len());
        let mut shard_starts = vec![0u32; shards.max(1)];
        if shards <= 1 {
            docs.extend(self.slots.iter().flatten().cloned());
        } else {
            let mut per: Vec<Vec<Arc<Doc>>> = vec![Vec::new(); shards];
            for d in self.slots.iter().flatten() {
                per[(d.shard as usize).min(shards - 1)].push(d.clone());
            }
            for (i, p) in per.into_iter().enumerate() {
                shard_starts[i] = docs.len() as u32;
                docs.extend(p);
            }
        }
        self.searchable = Arc::new(Snapshot::new(docs, shard_starts));
        // Compact the slot table when more than half of it is holes left by updates and deletes.
        if self.slots.len() > 1024 && self.live.len() * 2 < self.slots.len() {
            let mut slots = Vec::with_capacity(self.live.len());
            for d in self.slots.drain(..).flatten() {
                self.live.insert(d.id.clone(), slots.len() as u32);
                slots.push(Some(d));
            }
            self.slots = slots;
        }
    }

    fn mark_dirty(&mut self, shard: u32) {
        let n = self.dirty_shards.len();
        self.dirty_shards[(shard as usize).min(n - 1)] = true;
        if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
    }

    /// Current version and seq_no of `id`, live or tombstoned.
    fn current(&self, id: &str) -> Option<(i64, i64, bool)> {
        if let Some(d) = self.get_live(id) {
            return Some((d.version, d.seq_no, true));
        }
        self.tombstones.get(id).map(|&(v, s)| (v, s, false))
    }

    fn conflict(&self, id: &str, reason: String) -> EsError {
        EsError::new(409, "version_conflict_engine_exception", format!("[{id}]: {reason}"))
            .on_shard(&self.name, &self.uuid)
    }

    /// Checks a write against the document's current state; returns the version the write will get.
    fn check(&self, id: &str, check: &WriteCheck, is_delete: bool) -> Result<i64, EsError> {
        let current = self.current(id);
        let live = current.filter(|c| c.2);
        if let (Some(seq), Some(term)) = (check.if_seq_no, check.if_primary_term) {
            match live {
                None => {
                    return Err(self.conflict(
                        id,
                        format!("version conflict, required seqNo [{seq}], primary term [{term}] but no document was found"),
                    ))
                }
                Some((_, cur_seq, _)) if cur_seq != seq || term != PRIMARY_TERM => {
                    return Err(self.conflict(
                        id,
                        format!(
                            "version conflict, required seqNo [{seq}], primary term [{term}]. current document has seqNo [{cur_seq}] and primary term [{PRIMARY_TERM}]"
                        ),
                    ))
                }
                _ => {}
            }
        }
        if check.create_only {
            if let Some((v, _, _)) = live {
                return Err(self.conflict(
                    id,
                    format!("version conflict, document already exists (current version [{v}])"),
                ));
            }
        }
        match (check.version_type, check.version) {
            (VersionType::External, Some(n)) => {
                if let Some((cur, _, _)) = current {
                    if n <= cur {
                        return Err(self.conflict(
                            id,
                            format!("version conflict, current version [{cur}] is higher or equal to the one provided [{n}]"),
                        ));
                    }
                }
                Ok(n)
            }
            (VersionType::ExternalGte, Some(n)) => {
                if let Some((cur, _, _)) = current {
                    if n < cur {
                        return Err(self.conflict(
                            id,
                            format!("version conflict, current version [{cur}] is higher than the one provided [{n}]"),
                        ));
                    }
                }
                Ok(n)
            }
            _ => {
                let _ = is_delete;
                Ok(match current {
                    Some((v, _, true)) => v + 1,
                    Some((v, _, false)) => v + 1,
                    None => 1,
                })
            }
        }
    }

    /// Indexes (creates or replaces) a document. `parsed` is the source as a tree when the caller
    /// already has one; otherwise doc values come straight from the raw bytes when possible.
    pub fn index_doc(
        &mut self,
        id: &str,
        source: Bytes,
        parsed: Option<&Map<String, Value>>,
        check: &WriteCheck,
        routing_shard: u32,
    ) -> Result<WriteResult, EsError> {
        let version = self.check(id, check, false)?;
        let fast = if parsed.is_none() {
            self.mapping.extract_raw(&source)
        } else {
            None
        };
        let values = match fast {
            Some(v) => v,
            None => {
                let owned;
                let map = match parsed {
                    Some(m) => m,
                    None => {
                        owned = parse_source(&source, id)?;
                        &owned
                    }
                };
                if self.mapping.apply_dynamic_needed(map) {
                    let mut m = (*self.mapping).clone();
                    m.apply_dynamic(map)?;
                    self.mapping = Arc::new(m);
                }
                self.mapping.extract(map, id)?
            }
        };
        let existed = self.get_live(id).is_some();
        let seq_no = self.next_seq_no;
        self.next_seq_no += 1;
        let id: Arc<str> = Arc::from(id);
        let doc = Arc::new(Doc {
            id: id.clone(),
            source,
            version,
            seq_no,
            shard: routing_shard,
            values,
        });
        if let Some(old) = self.live.remove(&id) {
            self.slots[old as usize] = None;
            self.deleted_docs += 1;
        }
        self.tombstones.remove(&id);
        self.live.insert(id, self.slots.len() as u32);
        self.slots.push(Some(doc));
        self.mark_dirty(routing_shard);
        Ok(WriteResult {
            version,
            seq_no,
            result: if existed { "updated" } else { "created" },
            status: if existed { 200 } else { 201 },
            shard: routing_shard,
        })
    }

    pub fn delete_doc(&mut self, id: &str, check: &WriteCheck, routing_shard: u32) -> Result<WriteResult, EsError> {
        let version = self.check(id, check, true)?;
        let seq_no = self.next_seq_no;
        self.next_seq_no += 1;
        let id: Arc<str> = Arc::from(id);
        let found = match self.live.remove(&id) {
            Some(slot) => {
                self.slots[slot as usize] = None;
                self.deleted_docs += 1;
                self.mark_dirty(routing_shard);
                true
            }
            None => false,
        };
        self.tombstones.insert(id, (version, seq_no));
        Ok(WriteResult {
            version,
            seq_no,
            result: if found { "deleted" } else { "not_found" },
            status: if found { 200 } else { 404 },
            shard: routing_shard,
        })
    }
}

impl Mapping {
    /// Cheap pre-check so documents that only use mapped fields skip cloning the mapping.
    pub fn apply_dynamic_needed(&self, doc: &Map<String, Value>) -> bool {
        fn walk(m: &Mapping, obj: &Map<String, Value>, prefix: &str) -> bool {
            for (k, v) in obj {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    Value::Object(inner) => {
                        if walk(m, inner, &path) {
                            return true;
                        }
                        if inner.is_empty() {
                            return true;
                        }
                    }
                    Value::Null => {}
                    Value::Array(items) => {
                        for item in items {
                            match item {
                                Value::Object(inner) => {
                                    if walk(m, inner, &path) {
                                        return true;
                                    }
                                }
                                Value::Null => {}
                                _ => {
                                    if m.field(&path).is_none() {
                                        return true;
                                    }
                                }
                            }
                        }
                    }
                    _ => {
                        if m.field(&path).is_none() {
                            return true;
                        }
                    }
                }
            }
            false
        }
        walk(self, doc, "")
    }
}

/// Parses Elasticsearch time values (`1m`, `30s`, `500ms`, `-1`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "-1" {
        return None;
    }
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "nanos" => n / 1e9,
        "micros" => n / 1e6,
        "ms" | "" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// Validates a time value, distinguishing "never" (-1) from malformed input.
pub fn parse_time_value(s: &str, setting: &str) -> Result<Option<Duration>, EsError> {
    if s.trim() == "-1" {
        return Ok(None);
    }
    parse_duration(s).map(Some).ok_or_else(|| {
        EsError::new(
            400,
            "illegal_argument_exception",
            format!(
                "failed to parse setting [{setting}] with value [{s}] as a time value: unit is missing or unrecognized"
            ),
        )
    })
}

/// Elasticsearch's shard routing: murmur3 over the UTF-16 code units of the routing value.
pub fn routing_shard(id: &str, num_shards: u32, routing_num_shards: u32) -> u32 {
    if num_shards <= 1 {
        return 0;
    }
    let mut bytes = Vec::with_capacity(id.len() * 2);
    for unit in id.encode_utf16() {
        bytes.push(unit as u8);
        bytes.push((unit >> 8) as u8);
    }
    let hash = murmur3_x86_32(&bytes, 0);
    let factor = (routing_num_shards / num_shards).max(1);
    ((hash.rem_euclid(routing_num_shards as i32)) as u32) / factor
}

/// Default `index.number_of_routing_shards`, as `MetadataCreateIndexService.calculateNumRoutingShards`.
pub fn default_routing_shards(num_shards: u32) -> u32 {
    let log2_num = 32 - (num_shards.max(1) - 1).leading_zeros();
    let splits = (10i32 - log2_num as i32).max(1);
    num_shards << splits
}

pub fn murmur3_x86_32(data: &[u8], seed: u32) -> i32 {
    let c1: u32 = 0xcc9e2d51;
    let c2: u32 = 0x1b873593;
    let mut h1 = seed;
    let chunks = data.len() / 4;
    for i in 0..chunks {
        let mut k1 = u32::from_le_bytes([data[i * 4], data[i * 4 + 1], data[i * 4 + 2], data[i * 4 + 3]]);
        k1 = k1.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
        h1 ^= k1;
        h1 = h1.rotate_left(13).wrapping_mul(5).wrapping_add(0xe6546b64);
    }
    let tail = &data[chunks * 4..];
    let mut k1: u32 = 0;
    if tail.len() >= 3 {
        k1 ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        k1 ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        k1 ^= tail[0] as u32;
        k1 = k1.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
        h1 ^= k1;
    }
    h1 ^= data.len() as u32;
    h1 ^= h1 >> 16;
    h1 = h1.wrapping_mul(0x85ebca6b);
    h1 ^= h1 >> 13;
    h1 = h1.wrapping_mul(0xc2b2ae35);
    h1 ^= h1 >> 16;
    h1 as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("-1"), None);
    }

    #[test]
    fn routing_matches_elasticsearch_for_five_shards() {
        // From scroll/12_slices.yml: with 5 shards ids 2,3,4 land on even shards, id 1 on an odd one.
        let shard = |id| routing_shard(id, 5, 5);
        assert_eq!(shard("1") % 2, 1);
        for id in ["2", "3", "4"] {
            assert_eq!(shard(id) % 2, 0, "{id}");
        }
        assert_eq!(default_routing_shards(5), 640);
    }
}
