//! `_search`, `_count`, `_msearch`, point in time, scroll, sorting, `search_after` and slicing.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Map, Value};

use super::dates::{now_nanos, DateFormats, NANOS_PER_MILLI};
use super::documents::lookup_path;
use super::error::EsError;
use super::faults::RequestFaults;
use super::http::{Reply, Req};
use super::indices::Opts;
use super::mapping::{Dv, Kind, Mapping};
use super::query::{compile, Query, QueryContext};
use super::source_filter::SourceFilter;
use super::store::{as_string, murmur3_x86_32, parse_duration, Snapshot, PRIMARY_TERM};
use super::Cluster;
use super::{Flavor, Shared};

/// One index as a search sees it: a frozen snapshot plus what is needed to interpret it.
#[derive(Clone)]
pub struct Target {
    pub name: Arc<str>,
    pub uuid: Arc<str>,
    pub snapshot: Arc<Snapshot>,
    pub mapping: Arc<Mapping>,
    pub shard_base: u32,
    pub num_shards: u32,
    pub max_result_window: usize,
    pub max_terms_count: usize,
    pub max_slices: usize,
    pub alias_filter: Option<Value>,
}

/// Matching documents in result order, with their sort keys.
pub struct Ranked {
    pub hits: Vec<(u32, u32)>,
    pub keys: Vec<Vec<SortVal>>,
}

pub struct Pit {
    pub targets: Arc<Vec<Target>>,
    pub expires: Instant,
    pub keep_alive: Duration,
    pub searches: u64,
    pub created_millis: i64,
    pub cache: Arc<Mutex<HashMap<String, Arc<Ranked>>>>,
}

pub struct Scroll {
    targets: Arc<Vec<Target>>,
    ranked: Arc<Ranked>,
    pos: usize,
    size: usize,
    render: Render,
    sorts: Vec<SortField>,
    expires: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Order {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq)]
enum Missing {
    Last,
    First,
    Value(Value),
}

#[derive(Debug, Clone, PartialEq)]
struct SortField {
    field: String,
    order: Order,
    missing: Missing,
    unmapped_type: Option<String>,
    format: Option<String>,
    numeric_type: Option<String>,
    mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SortVal {
    Long(i64),
    Double(f64),
    Str(Box<str>),
    Null,
}

/// How a sort field reads one target: which doc values, and how to turn them into a [`SortVal`].
#[derive(Clone)]
enum Accessor {
    Score,
    Doc,
    ShardDoc,
    Id,
    IndexName,
    Str {
        path: u32,
        ignore_above: Option<usize>,
    },
    Long {
        path: u32,
    },
    Double {
        path: u32,
    },
    /// Dates are stored in the field's unit and sorted in the unit `numeric_type` asks for.
    Date {
        path: u32,
        nanos_stored: bool,
        nanos_out: bool,
    },
    Unmapped,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum SortType {
    Str,
    Long,
    Double,
    Date { nanos: bool },
}

#[derive(Clone, Default)]
struct Render {
    source: SourceFilter,
    seq_no: bool,
    version: bool,
    docvalue_fields: Vec<(String, Option<String>)>,
    sorted: bool,
    rest_total_as_int: bool,
}

fn lock(sh: &Shared) -> std::sync::MutexGuard<'_, Cluster> {
    sh.cluster.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn new_context_id(c: &mut Cluster) -> String {
    let rand = c.new_id(24);
    let raw = format!("{}:{}", c.counter, rand);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn keep_alive(s: &str) -> Result<Duration, EsError> {
    parse_duration(s).ok_or_else(|| {
        EsError::new(400, "parse_exception", format!("failed to parse setting [keep_alive] with value [{s}] as a time value: unit is missing or unrecognized"))
    })
}

fn sweep_expired(c: &mut Cluster) {
    let now = Instant::now();
    c.pits.retain(|_, p| p.expires > now);
    c.scrolls.retain(|_, s| s.expires > now);
}

/// Snapshots the resolved indices for a search (refreshing those whose interval elapsed).
fn gather_targets(c: &mut Cluster, names: &[String], alias_filters: &HashMap<String, Value>) -> Vec<Target> {
    let mut base = 0;
    let mut out = Vec::new();
    for n in names {
        let idx = c.indices.get_mut(n).expect("resolved");
        idx.maybe_scheduled_refresh();
        let shards = idx.num_shards();
        out.push(Target {
            name: Arc::from(idx.name.as_str()),
            uuid: Arc::from(idx.uuid.as_str()),
            snapshot: idx.searchable.clone(),
            mapping: idx.mapping.clone(),
            shard_base: base,
            num_shards: shards,
            max_result_window: idx.setting_u64("index.max_result_window", 10_000) as usize,
            max_terms_count: idx.setting_u64("index.max_terms_count", 65_536) as usize,
            max_slices: idx.setting_u64("index.max_slices_per_scroll", 1024) as usize,
            alias_filter: alias_filters.get(n).cloned(),
        });
        base += shards;
    }
    out
}

/// Alias filters that apply when a search names a filtered alias directly.
fn alias_filters(c: &Cluster, expr: Option<&str>) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for part in expr.unwrap_or("").split(',') {
        for idx in c.indices.values() {
            if let Some(meta) = idx.aliases.get(part.trim()) {
                if let Some(f) = &meta.filter {
                    out.insert(idx.name.clone(), f.clone());
                }
            }
        }
    }
    out
}

/// Replaces terms-lookup specs (`{"index","id","path"}`) with the looked-up values.
fn resolve_terms_lookup(c: &Cluster, q: &mut Value) {
    match q {
        Value::Object(m) => {
            if let Some(Value::Object(terms)) = m.get_mut("terms") {
                for (_, spec) in terms.iter_mut() {
                    if let Value::Object(l) = spec {
                        if let (Some(index), Some(id), Some(path)) = (
                            l.get("index").and_then(Value::as_str),
                            l.get("id").and_then(as_string),
                            l.get("path").and_then(Value::as_str),
                        ) {
                            let values = c
                                .indices
                                .get(index)
                                .and_then(|i| i.get_live(&id))
                                .and_then(|d| serde_json::from_slice::<Map<String, Value>>(&d.source).ok())
                                .and_then(|src| lookup_path(&src, path).cloned())
                                .map(|v| match v {
                                    Value::Array(a) => a,
                                    other => vec![other],
                                })
                                .unwrap_or_default();
                            *spec = Value::Array(values);
                        }
                    }
                }
            }
            for v in m.values_mut() {
                resolve_terms_lookup(c, v);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| resolve_terms_lookup(c, v)),
        _ => {}
    }
}

fn parse_sort(v: &Value) -> Result<Vec<SortField>, EsError> {
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(s) => {
                let (f, o) = match s.split_once(':') {
                    Some((f, o)) => (f.to_string(), Some(o.to_string())),
                    None => (s.clone(), None),
                };
                out.push(sort_field(&f, o.as_deref(), &Map::new())?);
            }
            Value::Object(m) => {
                for (f, spec) in &m {
                    match spec {
                        Value::String(o) => out.push(sort_field(f, Some(o), &Map::new())?),
                        Value::Object(opts) => {
                            out.push(sort_field(f, opts.get("order").and_then(Value::as_str), opts)?)
                        }
                        _ => return Err(EsError::parsing(format!("[{f}] failed to parse field [sort]"))),
                    }
                }
            }
            _ => return Err(EsError::parsing("[sort] failed to parse field")),
        }
    }
    Ok(out)
}

fn sort_field(f: &str, order: Option<&str>, opts: &Map<String, Value>) -> Result<SortField, EsError> {
    let order = match order {
        None => {
            if f == "_score" {
                Order::Desc
            } else {
                Order::Asc
            }
        }
        Some(o) if o.eq_ignore_ascii_case("asc") => Order::Asc,
        Some(o) if o.eq_ignore_ascii_case("desc") => Order::Desc,
        Some(o) => return Err(EsError::bad_request(format!("Unknown SortOrder [{o}]"))),
    };
    let missing = match opts.get("missing") {
        None | Some(Value::Null) => Missing::Last,
        Some(Value::String(s)) if s == "_last" => Missing::Last,
        Some(Value::String(s)) if s == "_first" => Missing::First,
        Some(v) => Missing::Value(v.clone()),
    };
    let s = |k: &str| opts.get(k).and_then(Value::as_str).map(String::from);
    Ok(SortField {
        field: f.to_string(),
        order,
        missing,
        unmapped_type: s("unmapped_type"),
        format: s("format"),
        numeric_type: s("numeric_type"),
        mode: s("mode"),
    })
}

fn sort_error_for(t: &Target, e: EsError) -> EsError {
    e.with("index_uuid", &*t.uuid).with("index", &*t.name)
}

/// How `sf` reads target `t`, and the type its values have.
fn accessor(sf: &SortField, t: &Target, flavor: Flavor) -> Result<(Accessor, Option<SortType>), EsError> {
    match sf.field.as_str() {
        "_score" => return Ok((Accessor::Score, Some(SortType::Double))),
        "_doc" => return Ok((Accessor::Doc, Some(SortType::Long))),
        // OpenSearch knows `_shard_doc` only from 3.3; the 2.x flavor looks it up as an (unmapped) field.
        "_shard_doc" if flavor == Flavor::Elasticsearch => return Ok((Accessor::ShardDoc, Some(SortType::Long))),
        "_id" if flavor == Flavor::Elasticsearch => {
            return Err(EsError::bad_request(
                "Fielddata access on the _id field is disallowed, you can re-enable it by updating the dynamic cluster setting: indices.id_field_data.enabled",
            ))
        }
        "_id" => return Ok((Accessor::Id, Some(SortType::Str))),
        "_index" => return Ok((Accessor::IndexName, Some(SortType::Str))),
        _ => {}
    }
    let Some(def) = t.mapping.field(&sf.field) else {
        return match &sf.unmapped_type {
            Some(ut) => Ok((Accessor::Unmapped, type_of_name(ut))),
            None => Err(sort_error_for(
                t,
                EsError::new(
                    400,
                    "query_shard_exception",
                    format!("No mapping found for [{}] in order to sort on", sf.field),
                ),
            )),
        };
    };
    let path = def.source_id;
    Ok(match def.kind {
        Kind::Keyword => (Accessor::Str { path, ignore_above: def.ignore_above }, Some(SortType::Str)),
        Kind::Text => {
            return Err(EsError::bad_request(format!(
                "Fielddata is disabled on [{f}] in [{i}]. Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [{f}] in order to load field data by uninverting the inverted index. Note that this can use significant memory.",
                f = sf.field,
                i = t.name
            )))
        }
        k if k.is_integer() || k == Kind::Boolean => (Accessor::Long { path }, Some(SortType::Long)),
        Kind::Double | Kind::Float => (Accessor::Double { path }, Some(SortType::Double)),
        Kind::Date | Kind::DateNanos => {
            let stored = def.kind == Kind::DateNanos;
            let out = match sf.numeric_type.as_deref() {
                Some("date_nanos") => true,
                Some("date") => false,
                _ => stored,
            };
            (Accessor::Date { path, nanos_stored: stored, nanos_out: out }, Some(SortType::Date { nanos: out }))
        }
        _ => {
            return Err(EsError::bad_request(format!(
                "Field [{}] of type [{}] does not support sorting",
                sf.field, def.type_name
            )))
        }
    })
}

fn type_of_name(t: &str) -> Option<SortType> {
    Some(match t {
        "keyword" | "text" => SortType::Str,
        "long" | "integer" | "short" | "byte" | "boolean" => SortType::Long,
        "double" | "float" | "half_float" | "scaled_float" => SortType::Double,
        "date" => SortType::Date { nanos: false },
        "date_nanos" => SortType::Date { nanos: true },
        _ => return None,
    })
}

fn pick<T: PartialOrd + Copy>(values: impl Iterator<Item = T>, desc: bool, mode: Option<&str>) -> Option<T> {
    let want_max = match mode {
        Some("max") => true,
        Some("min") => false,
        _ => desc,
    };
    values.fold(None, |acc, v| match acc {
        None => Some(v),
        Some(a) => Some(if (v > a) == want_max && v != a { v } else { a }),
    })
}

fn missing_val(sf: &SortField, ty: Option<SortType>, t: Option<&Target>) -> SortVal {
    match (&sf.missing, ty) {
        (Missing::Value(v), Some(SortType::Str)) | (Missing::Value(v), None) => as_string(v)
            .map(|s| SortVal::Str(s.into_boxed_str()))
            .unwrap_or(SortVal::Null),
        (Missing::Value(v), Some(SortType::Double)) => SortVal::Double(super::mapping::parse_f64(v).unwrap_or(0.0)),
        (Missing::Value(v), Some(SortType::Date { .. })) => {
            let _ = t;
            SortVal::Long(super::mapping::parse_long(v).unwrap_or(0))
        }
        (Missing::Value(v), Some(SortType::Long)) => SortVal::Long(super::mapping::parse_long(v).unwrap_or(0)),
        (m, Some(SortType::Str)) | (m, None) => {
            let _ = m;
            SortVal::Null
        }
        (m, Some(SortType::Double)) => {
            let high = (*m == Missing::Last) == (sf.order == Order::Asc);
            SortVal::Double(if high { f64::INFINITY } else { f64::NEG_INFINITY })
        }
        (m, Some(_)) => {
            let high = (*m == Missing::Last) == (sf.order == Order::Asc);
            SortVal::Long(if high { i64::MAX } else { i64::MIN })
        }
    }
}

fn key_value(sf: &SortField, acc: &Accessor, ty: Option<SortType>, t: &Target, ord: u32) -> SortVal {
    let doc = &t.snapshot.docs[ord as usize];
    let desc = sf.order == Order::Desc;
    let mode = sf.mode.as_deref();
    let v = match acc {
        Accessor::Score => Some(SortVal::Double(1.0)),
        Accessor::Doc => Some(SortVal::Long(ord as i64)),
        Accessor::ShardDoc => {
            let (shard, docid) = t.snapshot.shard_doc(ord);
            Some(SortVal::Long((((t.shard_base + shard) as i64) << 32) | docid as i64))
        }
        Accessor::Id => Some(SortVal::Str(doc.id.to_string().into_boxed_str())),
        Accessor::IndexName => Some(SortVal::Str(t.name.to_string().into_boxed_str())),
        Accessor::Str { path, ignore_above } => {
            let strs = doc.values_of(*path).filter_map(|v| match v {
                Dv::Str(s) if ignore_above.is_none_or(|m| s.chars().count() <= m) => Some(s),
                _ => None,
            });
            pick(strs, desc, mode).map(|s| SortVal::Str(s.into()))
        }
        Accessor::Long { path } => pick(
            doc.values_of(*path).filter_map(|v| match v {
                Dv::Long(n) => Some(n),
                Dv::Bool(b) => Some(b as i64),
                _ => None,
            }),
            desc,
            mode,
        )
        .map(SortVal::Long),
        Accessor::Double { path } => pick(
            doc.values_of(*path).filter_map(|v| match v {
                Dv::Double(f) => Some(f),
                Dv::Long(n) => Some(n as f64),
                _ => None,
            }),
            desc,
            mode,
        )
        .map(SortVal::Double),
        Accessor::Date {
            path,
            nanos_stored,
            nanos_out,
        } => pick(
            doc.values_of(*path).filter_map(|v| match v {
                Dv::Date(n) => Some(n),
                _ => None,
            }),
            desc,
            mode,
        )
        .map(|n| {
            SortVal::Long(match (nanos_stored, nanos_out) {
                (false, true) => n.saturating_mul(1_000_000),
                (true, false) => n.div_euclid(1_000_000),
                _ => n,
            })
        }),
        Accessor::Unmapped => None,
    };
    v.unwrap_or_else(|| missing_val(sf, ty, Some(t)))
}

fn cmp_val(a: &SortVal, b: &SortVal, sf: &SortField) -> Ordering {
    let null_first = sf.missing == Missing::First;
    let natural = match (a, b) {
        (SortVal::Null, SortVal::Null) => return Ordering::Equal,
        (SortVal::Null, _) => return if null_first { Ordering::Less } else { Ordering::Greater },
        (_, SortVal::Null) => return if null_first { Ordering::Greater } else { Ordering::Less },
        (SortVal::Long(x), SortVal::Long(y)) => x.cmp(y),
        (SortVal::Str(x), SortVal::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (SortVal::Double(x), SortVal::Double(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (SortVal::Long(x), SortVal::Double(y)) => (*x as f64).partial_cmp(y).unwrap_or(Ordering::Equal),
        (SortVal::Double(x), SortVal::Long(y)) => x.partial_cmp(&(*y as f64)).unwrap_or(Ordering::Equal),
        (SortVal::Str(_), _) => Ordering::Greater,
        (_, SortVal::Str(_)) => Ordering::Less,
    };
    if sf.order == Order::Desc {
        natural.reverse()
    } else {
        natural
    }
}

fn cmp_keys(a: &[SortVal], b: &[SortVal], sorts: &[SortField]) -> Ordering {
    for ((x, y), sf) in a.iter().zip(b).zip(sorts) {
        let o = cmp_val(x, y, sf);
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn date_parse_error(v: &str, fmt: &str) -> EsError {
    EsError::new(400, "parse_exception", format!("failed to parse date field [{v}] with format [{fmt}]"))
        .with("caused_by", json!({"type": "illegal_argument_exception", "reason": format!("failed to parse date field [{v}] with format [{fmt}]")}))
}

/// Converts a `search_after` entry into a key value comparable with the field's sort values.
fn after_value(v: &Value, sf: &SortField, ty: Option<SortType>, targets: &[Target]) -> Result<SortVal, EsError> {
    if v.is_null() {
        return Ok(SortVal::Null);
    }
    Ok(match ty {
        Some(SortType::Str) | None => SortVal::Str(as_string(v).unwrap_or_default().into_boxed_str()),
        Some(SortType::Long) => SortVal::Long(super::mapping::parse_long(v).ok_or_else(|| {
            EsError::bad_request(format!("Failed to parse search_after value for field [{}].", sf.field))
        })?),
        Some(SortType::Double) => SortVal::Double(super::mapping::parse_f64(v).ok_or_else(|| {
            EsError::bad_request(format!("Failed to parse search_after value for field [{}].", sf.field))
        })?),
        Some(SortType::Date { nanos }) => match v {
            Value::String(s) if s.parse::<i64>().is_err() || sf.format.is_some() => {
                let formats = match &sf.format {
                    Some(f) => DateFormats::parse(f),
                    None => targets
                        .iter()
                        .find_map(|t| t.mapping.field(&sf.field).and_then(|d| d.formats.as_deref().cloned()))
                        .unwrap_or_else(DateFormats::default_date),
                };
                let n = formats.parse_str(s).ok_or_else(|| date_parse_error(s, &formats.text))?;
                SortVal::Long(if nanos {
                    n as i64
                } else {
                    n.div_euclid(NANOS_PER_MILLI) as i64
                })
            }
            other => SortVal::Long(super::mapping::parse_long(other).ok_or_else(|| {
                EsError::bad_request(format!("Failed to parse search_after value for field [{}].", sf.field))
            })?),
        },
    })
}

type Accessors = (Accessor, Option<SortType>);

/// Runs the query over the targets and orders the matches.
fn rank(
    targets: &[Target],
    query: &Option<Value>,
    sorts: &[SortField],
    slice: Option<&Slice>,
    flavor: Flavor,
    failures: &mut Vec<Value>,
) -> Result<Ranked, EsError> {
    rank_with(targets, query, sorts, slice, flavor, failures, true)
}

/// [`rank`], with or without the exact-value indexes (`exact: false` tries every document).
fn rank_with(
    targets: &[Target],
    query: &Option<Value>,
    sorts: &[SortField],
    slice: Option<&Slice>,
    flavor: Flavor,
    failures: &mut Vec<Value>,
    exact: bool,
) -> Result<Ranked, EsError> {
    let now = now_nanos();
    let mut hits: Vec<(u32, u32)> = Vec::new();
    let mut keys: Vec<Vec<SortVal>> = Vec::new();
    let mut first_error: Option<(EsError, String)> = None;
    let mut ok_targets = 0;
    let total_shards: u32 = targets.iter().map(|t| t.num_shards).sum();
    for (ti, t) in targets.iter().enumerate() {
        let ctx = QueryContext {
            mapping: &t.mapping,
            index: &t.name,
            uuid: &t.uuid,
            max_terms_count: t.max_terms_count,
            max_result_window: t.max_result_window,
            now_nanos: now,
        };
        let prepared = (|| -> Result<(Query, Vec<Accessors>), EsError> {
            let mut q = match query {
                Some(q) => compile(q, &ctx)?,
                None => Query::All,
            };
            if let Some(f) = &t.alias_filter {
                q = Query::Bool {
                    must: vec![q, compile(f, &ctx)?],
                    should: vec![],
                    must_not: vec![],
                    min_should: 0,
                };
            }
            let accs = sorts
                .iter()
                .map(|sf| accessor(sf, t, flavor))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((q, accs))
        })();
        let (q, accs) = match prepared {
            Ok(p) => p,
            Err(e) => {
                failures.push(
                    json!({"shard": 0, "index": &*t.name, "node": "emulator-node-id", "reason": e.error_object()}),
                );
                if first_error.is_none() {
                    first_error = Some((e, t.name.to_string()));
                }
                continue;
            }
        };
        ok_targets += 1;
        let all = q.is_all();
        // Exact clauses narrow the documents tried, as an inverted index does; the order tried (and so
        // the answer) is the scan's.
        let candidates = if exact { q.candidates(&t.snapshot) } else { None };
        let tried: Box<dyn Iterator<Item = u32>> = match candidates {
            Some(ords) => Box::new(ords.into_iter()),
            None => Box::new(0..t.snapshot.docs.len() as u32),
        };
        for ord in tried {
            let doc = &t.snapshot.docs[ord as usize];
            if let Some(s) = slice {
                if !s.contains(t, ord, total_shards, doc) {
                    continue;
                }
            }
            if !all && !q.matches(doc, &t.name) {
                continue;
            }
            hits.push((ti as u32, ord));
            if !sorts.is_empty() {
                keys.push(
                    sorts
                        .iter()
                        .zip(&accs)
                        .map(|(sf, (a, ty))| key_value(sf, a, *ty, t, ord))
                        .collect(),
                );
            }
        }
    }
    if ok_targets == 0 {
        if let Some((e, index)) = first_error {
            return Err(e.all_shards_failed(&index));
        }
    }
    if !sorts.is_empty() {
        let mut order: Vec<usize> = (0..hits.len()).collect();
        order.sort_by(|&a, &b| cmp_keys(&keys[a], &keys[b], sorts));
        let mut new_keys = Vec::with_capacity(keys.len());
        let mut new_hits = Vec::with_capacity(hits.len());
        let mut keys_opt: Vec<Option<Vec<SortVal>>> = keys.into_iter().map(Some).collect();
        for i in order {
            new_hits.push(hits[i]);
            new_keys.push(keys_opt[i].take().expect("each key moved once"));
        }
        return Ok(Ranked {
            hits: new_hits,
            keys: new_keys,
        });
    }
    Ok(Ranked { hits, keys })
}

#[derive(Clone, Debug, PartialEq)]
struct Slice {
    id: u32,
    max: u32,
    pit: bool,
}

impl Slice {
    /// Elasticsearch's split: whole shards when there are at least as many shards as slices,
    /// otherwise doc-level slicing inside each shard.
    fn contains(&self, t: &Target, ord: u32, total_shards: u32, doc: &super::store::Doc) -> bool {
        let (shard, docid) = t.snapshot.shard_doc(ord);
        let g = t.shard_base + shard;
        if total_shards >= self.max {
            return g % self.max == self.id;
        }
        if self.id % total_shards != g {
            return false;
        }
        let sub = self.id / total_shards;
        let mut n_in_shard = self.max / total_shards;
        if self.max % total_shards > g {
            n_in_shard += 1;
        }
        if self.pit {
            let start = t.snapshot.shard_starts.get(shard as usize).copied().unwrap_or(0);
            let end = t
                .snapshot
                .shard_starts
                .get(shard as usize + 1)
                .copied()
                .unwrap_or(t.snapshot.docs.len() as u32);
            let n = (end - start) as u64;
            let lo = n * sub as u64 / n_in_shard as u64;
            let hi = n * (sub as u64 + 1) / n_in_shard as u64;
            (docid as u64) >= lo && (docid as u64) < hi
        } else {
            (murmur3_x86_32(doc.id.as_bytes(), 7919).rem_euclid(n_in_shard as i32)) as u32 == sub
        }
    }
}

/// A parsed search request.
struct SearchSpec {
    query: Option<Value>,
    size: usize,
    from: i64,
    sorts: Vec<SortField>,
    search_after: Option<Vec<Value>>,
    track: Track,
    render: Render,
    pit: Option<(String, Option<String>)>,
    slice: Option<Slice>,
    scroll: Option<Duration>,
    stored_fields_only: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Track {
    Exact,
    Off,
    UpTo(u64),
}

const BODY_KEYS: &[&str] = &[
    "query",
    "size",
    "from",
    "sort",
    "search_after",
    "_source",
    "track_total_hits",
    "seq_no_primary_term",
    "version",
    "pit",
    "slice",
    "docvalue_fields",
    "stored_fields",
    "timeout",
    "track_scores",
    "explain",
    "min_score",
    "post_filter",
    "fields",
    "highlight",
    "terminate_after",
    "profile",
    "stats",
    "ext",
    "runtime_mappings",
    "indices_boost",
    "aggs",
    "aggregations",
    "_source_includes",
    "_source_excludes",
];

fn token_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "START_OBJECT",
        Value::Array(_) => "START_ARRAY",
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Null => "VALUE_NULL",
    }
}

fn parse_usize(v: &Value, name: &str) -> Result<i64, EsError> {
    super::mapping::parse_long(v).ok_or_else(|| EsError::parsing(format!("[{name}] failed to parse field")))
}

fn parse_spec(params: &HashMap<String, String>, body: Option<&Value>) -> Result<SearchSpec, EsError> {
    let empty = Map::new();
    let b = match body {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(EsError::parsing("request body must be an object")),
        None => &empty,
    };
    for (k, v) in b {
        if !BODY_KEYS.contains(&k.as_str()) {
            return Err(EsError::parsing(format!(
                "Unknown key for a {} in [{k}].",
                token_name(v)
            )));
        }
    }
    let p = |k: &str| params.get(k).map(String::as_str);
    let size = match (p("size"), b.get("size")) {
        (Some(s), _) => s
            .parse::<i64>()
            .map_err(|_| EsError::bad_request(format!("Failed to parse int parameter [size] with value [{s}]")))?,
        (None, Some(v)) => parse_usize(v, "size")?,
        _ => 10,
    };
    if size < 0 {
        return Err(EsError::bad_request(format!(
            "[size] parameter cannot be negative, found [{size}]"
        )));
    }
    let from = match (p("from"), b.get("from")) {
        (Some(s), _) => s
            .parse::<i64>()
            .map_err(|_| EsError::bad_request(format!("Failed to parse int parameter [from] with value [{s}]")))?,
        (None, Some(v)) => parse_usize(v, "from")?,
        _ => 0,
    };
    let sorts = match (p("sort"), b.get("sort")) {
        (Some(s), _) => parse_sort(&Value::Array(
            s.split(',').map(|x| Value::String(x.to_string())).collect(),
        ))?,
        (None, Some(v)) => parse_sort(v)?,
        _ => vec![],
    };
    let rest_total_as_int = matches!(p("rest_total_hits_as_int"), Some("true") | Some(""));
    let track_raw = p("track_total_hits")
        .map(|s| Value::String(s.to_string()))
        .or_else(|| b.get("track_total_hits").cloned());
    let track = match &track_raw {
        None => {
            if rest_total_as_int {
                Track::Exact
            } else {
                Track::UpTo(10_000)
            }
        }
        Some(v) => match as_string(v).as_deref() {
            Some("true") => Track::Exact,
            Some("false") => Track::Off,
            Some(n) => {
                let n: i64 = n
                    .parse()
                    .map_err(|_| EsError::bad_request(format!("Failed to parse track_total_hits [{n}]")))?;
                if n < -1 {
                    return Err(EsError::validation(&[format!(
                        "[track_total_hits] parameter must be positive or equals to -1, got {n}"
                    )]));
                }
                if n == -1 {
                    Track::Off
                } else if n == i32::MAX as i64 {
                    Track::Exact
                } else {
                    Track::UpTo(n as u64)
                }
            }
            None => Track::UpTo(10_000),
        },
    };
    if rest_total_as_int {
        if let Track::UpTo(n) = track {
            return Err(EsError::validation(&[format!(
                "[rest_total_hits_as_int] cannot be used if the tracking of total hits is not accurate, got {n}"
            )]));
        }
    }
    let mut source = match b.get("_source") {
        Some(v) => SourceFilter::from_value(v)?,
        None => SourceFilter::all(),
    };
    if let Some(f) = SourceFilter::from_params(p("_source"), p("_source_includes"), p("_source_excludes")) {
        source = f;
    }
    let stored_fields: Option<Vec<String>> = match (p("stored_fields"), b.get("stored_fields")) {
        (Some(s), _) => Some(s.split(',').map(String::from).collect()),
        (None, Some(Value::Array(a))) => Some(a.iter().filter_map(as_string).collect()),
        (None, Some(Value::String(s))) => Some(vec![s.clone()]),
        _ => None,
    };
    let mut stored_fields_only = false;
    if let Some(sf) = &stored_fields {
        if !sf.iter().any(|f| f == "_source") && b.get("_source").is_none() {
            source.fetch = false;
            stored_fields_only = true;
        }
    }
    let docvalue_fields = match (p("docvalue_fields"), b.get("docvalue_fields")) {
        (Some(s), _) => s.split(',').map(|f| (f.to_string(), None)).collect(),
        (None, Some(Value::Array(a))) => a
            .iter()
            .map(|v| match v {
                Value::Object(o) => (
                    o.get("field").and_then(Value::as_str).unwrap_or("").to_string(),
                    o.get("format").and_then(Value::as_str).map(String::from),
                ),
                other => (as_string(other).unwrap_or_default(), None),
            })
            .collect(),
        _ => vec![],
    };
    let bool_opt = |k: &str| -> bool {
        match p(k) {
            Some(v) => v == "true" || v.is_empty(),
            None => b.get(k).and_then(Value::as_bool).unwrap_or(false),
        }
    };
    let pit = match b.get("pit") {
        Some(Value::Object(o)) => Some((
            o.get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| EsError::parsing("[pit] requires [id]"))?
                .to_string(),
            o.get("keep_alive").and_then(Value::as_str).map(String::from),
        )),
        Some(_) => return Err(EsError::parsing("[pit] must be an object")),
        None => None,
    };
    let slice = match b.get("slice") {
        Some(Value::Object(o)) => {
            let id = o
                .get("id")
                .and_then(super::mapping::parse_long)
                .ok_or_else(|| EsError::parsing("[slice] requires [id]"))?;
            let max = o
                .get("max")
                .and_then(super::mapping::parse_long)
                .ok_or_else(|| EsError::parsing("[slice] requires [max]"))?;
            if max <= 1 {
                return Err(EsError::bad_request("max must be greater than 1"));
            }
            if id < 0 || id >= max {
                return Err(EsError::bad_request("id must be lower than max"));
            }
            Some(Slice {
                id: id as u32,
                max: max as u32,
                pit: pit.is_some(),
            })
        }
        _ => None,
    };
    let scroll = match p("scroll") {
        Some(s) => Some(keep_alive(s)?),
        None => None,
    };
    let query = match p("q") {
        Some(q) => Some(lucene_query(q)?),
        None => b.get("query").cloned(),
    };
    Ok(SearchSpec {
        query,
        size: size as usize,
        from,
        sorts,
        search_after: match b.get("search_after") {
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(EsError::parsing("[search_after] must be an array")),
            None => None,
        },
        track,
        render: Render {
            source,
            seq_no: bool_opt("seq_no_primary_term"),
            version: bool_opt("version"),
            docvalue_fields,
            sorted: false,
            rest_total_as_int,
        },
        pit,
        slice,
        scroll,
        stored_fields_only,
    })
}

/// The `q=` URL parameter, for the forms clients actually send: `*`, `field:value`, `field:"a b"`.
fn lucene_query(q: &str) -> Result<Value, EsError> {
    let q = q.trim();
    if q.is_empty() || q == "*" || q == "*:*" {
        return Ok(json!({"match_all": {}}));
    }
    match q.split_once(':') {
        Some((field, value)) if !field.is_empty() && !field.contains(' ') => {
            let value = value.trim().trim_matches('"');
            if value == "*" {
                return Ok(json!({"exists": {"field": field}}));
            }
            Ok(json!({"match": {field: {"query": value, "operator": "and"}}}))
        }
        _ => Err(EsError::bad_request(format!(
            "the emulator supports q=*, q=field:value and q=field:\"phrase\" only, got [{q}]"
        ))),
    }
}

fn format_decimal(v: f64, pattern: &str) -> String {
    let decimals = pattern.split_once('.').map(|(_, d)| d.len()).unwrap_or(0);
    format!("{v:.decimals$}")
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

fn write_sort_val(out: &mut Vec<u8>, v: &SortVal, sf: &SortField, ty: Option<SortType>) {
    match v {
        SortVal::Null => out.extend_from_slice(b"null"),
        SortVal::Str(s) => write_json_str(out, s),
        SortVal::Long(n) => {
            if let (Some(fmt), Some(SortType::Date { nanos })) = (&sf.format, ty) {
                let ns = if nanos {
                    *n as i128
                } else {
                    *n as i128 * NANOS_PER_MILLI
                };
                write_json_str(out, &DateFormats::parse(fmt).format(ns));
            } else {
                let _ = write!(out, "{n}");
            }
        }
        SortVal::Double(f) => {
            if f.is_finite() {
                let _ = write!(
                    out,
                    "{}",
                    serde_json::Number::from_f64(*f)
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "0".into())
                );
            } else {
                write_json_str(out, if *f > 0.0 { "Infinity" } else { "-Infinity" });
            }
        }
    }
}

fn docvalue_json(t: &Target, doc: &super::store::Doc, field: &str, format: Option<&str>) -> Option<Value> {
    let def = t.mapping.field(field)?;
    let vals: Vec<Value> = doc
        .values_of(def.source_id)
        .filter_map(|v| match (v, def.kind) {
            (Dv::Str(s), Kind::Keyword) => {
                if def.ignore_above.is_some_and(|m| s.chars().count() > m) {
                    None
                } else {
                    Some(json!(s))
                }
            }
            (Dv::Str(_), _) => None,
            (Dv::Long(n), _) => Some(match format {
                Some(f) => json!(format_decimal(n as f64, f)),
                None => json!(n),
            }),
            (Dv::Double(f), _) => Some(match format {
                Some(p) => json!(format_decimal(f, p)),
                None => json!(f),
            }),
            (Dv::Bool(b), _) => Some(json!(b)),
            (Dv::Date(n), k) => {
                let ns = if k == Kind::DateNanos {
                    n as i128
                } else {
                    n as i128 * NANOS_PER_MILLI
                };
                let fmts = match format {
                    Some(f) => DateFormats::parse(f),
                    None => def
                        .formats
                        .as_deref()
                        .cloned()
                        .unwrap_or_else(DateFormats::default_date),
                };
                Some(json!(fmts.format(ns)))
            }
        })
        .collect();
    if vals.is_empty() {
        None
    } else {
        let mut sorted = vals;
        sorted.sort_by_cached_key(|v| v.to_string());
        Some(Value::Array(sorted))
    }
}

struct Page<'a> {
    targets: &'a [Target],
    ranked: &'a Ranked,
    start: usize,
    end: usize,
    sorts: &'a [SortField],
    types: Vec<Option<SortType>>,
    total: Option<(u64, &'static str)>,
    render: &'a Render,
    pit_id: Option<&'a str>,
    scroll_id: Option<&'a str>,
    shards: (u32, u32, Vec<Value>),
    started: Instant,
}

/// Renders a search response. Hits are rendered first so `took` covers the whole request.
fn render_page(p: &Page) -> Vec<u8> {
    let mut hits = Vec::with_capacity(256 + (p.end - p.start) * 800);
    render_hits(p, &mut hits);
    let mut out = Vec::with_capacity(hits.len() + 512);
    out.extend_from_slice(b"{");
    if let Some(id) = p.pit_id {
        out.extend_from_slice(b"\"pit_id\":");
        write_json_str(&mut out, id);
        out.push(b',');
    }
    if let Some(id) = p.scroll_id {
        out.extend_from_slice(b"\"_scroll_id\":");
        write_json_str(&mut out, id);
        out.push(b',');
    }
    let (total_shards, failed, failures) = &p.shards;
    let _ = write!(
        out,
        "\"took\":{},\"timed_out\":false,\"_shards\":{{\"total\":{},\"successful\":{},\"skipped\":0,\"failed\":{}",
        p.started.elapsed().as_millis(),
        total_shards,
        total_shards - failed,
        failed
    );
    if !failures.is_empty() {
        out.extend_from_slice(b",\"failures\":");
        serde_json::to_writer(&mut out, failures).expect("vec");
    }
    out.extend_from_slice(b"},");
    out.extend_from_slice(&hits);
    out
}

fn render_hits(p: &Page, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\"hits\":{");
    match (p.total, p.render.rest_total_as_int) {
        (Some((n, _)), true) => {
            let _ = write!(out, "\"total\":{n},");
        }
        (None, true) => out.extend_from_slice(b"\"total\":-1,"),
        (Some((n, rel)), false) => {
            let _ = write!(out, "\"total\":{{\"value\":{n},\"relation\":\"{rel}\"}},");
        }
        (None, false) => {}
    }
    let scored = !p.render.sorted;
    if scored && p.end > p.start {
        out.extend_from_slice(b"\"max_score\":1.0,\"hits\":[");
    } else {
        out.extend_from_slice(b"\"max_score\":null,\"hits\":[");
    }
    for i in p.start..p.end {
        if i > p.start {
            out.push(b',');
        }
        let (ti, ord) = p.ranked.hits[i];
        let t = &p.targets[ti as usize];
        let doc = &t.snapshot.docs[ord as usize];
        out.extend_from_slice(b"{\"_index\":");
        write_json_str(out, &t.name);
        out.extend_from_slice(b",\"_id\":");
        write_json_str(out, &doc.id);
        out.extend_from_slice(if scored {
            b",\"_score\":1.0" as &[u8]
        } else {
            b",\"_score\":null"
        });
        if p.render.version {
            let _ = write!(out, ",\"_version\":{}", doc.version);
        }
        if p.render.seq_no {
            let _ = write!(out, ",\"_seq_no\":{},\"_primary_term\":{}", doc.seq_no, PRIMARY_TERM);
        }
        if p.render.source.fetch {
            out.extend_from_slice(b",\"_source\":");
            p.render.source.apply_bytes(&doc.source, out);
        }
        if !p.render.docvalue_fields.is_empty() {
            let mut fields = Map::new();
            for (f, fmt) in &p.render.docvalue_fields {
                if let Some(v) = docvalue_json(t, doc, f, fmt.as_deref()) {
                    fields.insert(f.clone(), v);
                }
            }
            if !fields.is_empty() {
                out.extend_from_slice(b",\"fields\":");
                serde_json::to_writer(&mut *out, &fields).expect("vec");
            }
        }
        if !p.sorts.is_empty() {
            out.extend_from_slice(b",\"sort\":[");
            for (j, (v, sf)) in p.ranked.keys[i].iter().zip(p.sorts).enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                write_sort_val(out, v, sf, p.types[j]);
            }
            out.push(b']');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}}");
}

fn sort_types(sorts: &[SortField], targets: &[Target], flavor: Flavor) -> Vec<Option<SortType>> {
    sorts
        .iter()
        .map(|sf| {
            targets
                .iter()
                .find_map(|t| accessor(sf, t, flavor).ok().and_then(|(_, ty)| ty))
        })
        .collect()
}

fn total_of(track: Track, n: usize) -> Option<(u64, &'static str)> {
    match track {
        Track::Exact => Some((n as u64, "eq")),
        Track::Off => None,
        Track::UpTo(limit) => {
            if n as u64 > limit {
                Some((limit, "gte"))
            } else {
                Some((n as u64, "eq"))
            }
        }
    }
}

/// Executes one search request and returns the response body.
fn execute(
    sh: &Shared,
    index: Option<&str>,
    params: &HashMap<String, String>,
    body: Option<Value>,
    faults: &RequestFaults,
    opts: Opts,
) -> Result<Vec<u8>, EsError> {
    let started = Instant::now();
    let mut spec = parse_spec(params, body.as_ref())?;
    let flavor = sh.flavor;
    let mut problems = Vec::new();
    if spec.pit.is_some() && index.is_some() {
        problems.push(
            "[indices] cannot be used with point in time. Do not specify any index with point in time.".to_string(),
        );
    }
    if spec.scroll.is_some() {
        if matches!(params.get("request_cache").map(String::as_str), Some("true")) {
            problems.push("[request_cache] cannot be used in a scroll context".into());
        }
        if spec.size == 0 {
            problems.push("[size] cannot be [0] in a scroll context".into());
        }
        if spec.pit.is_some() {
            problems.push("using [point in time] is not allowed in a scroll context".into());
        }
        if spec.search_after.is_some() {
            problems.push("[search_after] cannot be used in a scroll context".into());
        }
    }
    if spec.search_after.is_some() && spec.from != 0 && spec.from != -1 {
        problems.push("[from] parameter must be set to 0 when [search_after] is used".into());
    }
    if flavor == Flavor::Elasticsearch && spec.pit.is_none() && spec.sorts.iter().any(|s| s.field == "_shard_doc") {
        problems.push("[_shard_doc] sort field cannot be used without [point in time]".into());
    }
    if !problems.is_empty() {
        return Err(EsError::validation(&problems));
    }
    let from = spec.from.max(0) as usize;

    // Collect the targets (and the PIT's sort cache) under the lock, then work on snapshots.
    let (targets, cache, pit_id) = {
        let mut c = lock(sh);
        sweep_expired(&mut c);
        if let Some(q) = spec.query.as_mut() {
            resolve_terms_lookup(&c, q);
        }
        match &spec.pit {
            Some((id, ka)) => {
                let expire_after = sh
                    .faults
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pit_expire_after();
                let Some(pit) = c.pits.get_mut(id) else {
                    return Err(EsError::search_context_missing(id));
                };
                pit.searches += 1;
                if expire_after.is_some_and(|n| pit.searches > n) {
                    c.pits.remove(id);
                    return Err(EsError::search_context_missing(id));
                }
                if let Some(ka) = ka {
                    pit.keep_alive = keep_alive(ka)?;
                }
                pit.expires = Instant::now() + pit.keep_alive;
                (pit.targets.clone(), Some(pit.cache.clone()), Some(id.clone()))
            }
            None => {
                let names = c.resolve(index, opts)?;
                let filters = alias_filters(&c, index);
                (Arc::new(gather_targets(&mut c, &names, &filters)), None, None)
            }
        }
    };

    if let Some(s) = &spec.slice {
        if spec.scroll.is_some() {
            let limit = targets.iter().map(|t| t.max_slices).min().unwrap_or(1024);
            if s.max as usize > limit {
                return Err(EsError::bad_request(format!(
                    "The number of slices [{}] is too large. It must be less than [{limit}]. This limit can be set by changing the [index.max_slices_per_scroll] index level setting.",
                    s.max
                )));
            }
        }
    }
    // The implicit tiebreaker of SearchRequest: only with a PIT, a sort, and a compatible search_after.
    if spec.pit.is_some()
        && flavor == Flavor::Elasticsearch
        && !spec.sorts.is_empty()
        && spec.sorts.last().is_some_and(|s| s.field != "_shard_doc")
        && spec
            .search_after
            .as_ref()
            .is_none_or(|a| a.len() == spec.sorts.len() + 1)
    {
        spec.sorts.push(SortField {
            field: "_shard_doc".into(),
            order: Order::Asc,
            missing: Missing::Last,
            unmapped_type: Some("long".into()),
            format: None,
            numeric_type: None,
            mode: None,
        });
    }
    let effective_sorts: Vec<SortField> = if spec.sorts.is_empty() && spec.search_after.is_some() {
        vec![sort_field("_score", None, &Map::new())?]
    } else {
        spec.sorts.clone()
    };
    if let Some(after) = &spec.search_after {
        if after.len() != effective_sorts.len() {
            return Err(EsError::bad_request(format!(
                "search_after has {} value(s) but sort has {}.",
                after.len(),
                effective_sorts.len()
            )));
        }
    }
    spec.render.sorted = !spec.sorts.is_empty();

    let mut failures = Vec::new();
    let ranked: Arc<Ranked> = match &cache {
        Some(cache) => {
            let key = serde_json::to_string(&json!([
                spec.query,
                format!("{:?}", effective_sorts),
                format!("{:?}", spec.slice)
            ]))
            .unwrap_or_default();
            let hit = cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&key)
                .cloned();
            match hit {
                Some(r) => r,
                None => {
                    let r = Arc::new(rank(
                        &targets,
                        &spec.query,
                        &effective_sorts,
                        spec.slice.as_ref(),
                        flavor,
                        &mut failures,
                    )?);
                    let mut c = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if c.len() >= 8 {
                        c.clear();
                    }
                    c.insert(key, r.clone());
                    r
                }
            }
        }
        None => Arc::new(rank(
            &targets,
            &spec.query,
            &effective_sorts,
            spec.slice.as_ref(),
            flavor,
            &mut failures,
        )?),
    };
    let window = targets.iter().map(|t| t.max_result_window).min().unwrap_or(10_000);
    if spec.scroll.is_none() && from + spec.size > window {
        let e = EsError::bad_request(format!(
            "Result window is too large, from + size must be less than or equal to: [{window}] but was [{}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.",
            from + spec.size
        ));
        return Err(e.all_shards_failed(targets.first().map(|t| &*t.name).unwrap_or("")));
    }

    let types = sort_types(&effective_sorts, &targets, flavor);
    let total_matches = ranked.hits.len();

    let start = match &spec.search_after {
        Some(after) => {
            let after: Vec<SortVal> = after
                .iter()
                .zip(&effective_sorts)
                .zip(&types)
                .map(|((v, sf), ty)| after_value(v, sf, *ty, &targets))
                .collect::<Result<_, _>>()?;
            ranked
                .keys
                .partition_point(|k| cmp_keys(k, &after, &effective_sorts) != Ordering::Greater)
        }
        None => from,
    }
    .min(total_matches);
    let end = (start + spec.size).min(total_matches);

    let real_shards: u32 = targets.iter().map(|t| t.num_shards).sum();
    let failed_shards = failures.len() as u32 + faults.shard_failures;
    let mut failure_list = failures;
    for i in 0..faults.shard_failures {
        failure_list.push(json!({
            "shard": real_shards + i,
            "index": targets.first().map(|t| t.name.to_string()),
            "node": "emulator-node-id",
            "reason": {"type": "node_disconnected_exception", "reason": "[emulator-node][127.0.0.1:9300][indices:data/read/search[phase/query]] disconnected (injected fault)"}
        }));
    }
    let shards = (real_shards + faults.shard_failures, failed_shards, failure_list);

    let track = if spec.scroll.is_some() {
        Track::Exact
    } else {
        spec.track
    };
    let mut scroll_id = None;
    if let Some(ka) = spec.scroll {
        let mut c = lock(sh);
        let id = new_context_id(&mut c);
        c.scrolls.insert(
            id.clone(),
            Scroll {
                targets: targets.clone(),
                ranked: ranked.clone(),
                pos: end,
                size: spec.size,
                render: spec.render.clone(),
                sorts: spec.sorts.clone(),
                expires: Instant::now() + ka,
            },
        );
        scroll_id = Some(id);
    }
    let _ = spec.stored_fields_only;
    let page = Page {
        targets: &targets,
        ranked: &ranked,
        start,
        end,
        sorts: &spec.sorts,
        types,
        total: total_of(track, total_matches),
        render: &spec.render,
        pit_id: pit_id.as_deref(),
        scroll_id: scroll_id.as_deref(),
        shards,
        started,
    };
    let shown_sorts = &spec.sorts;
    if ranked.keys.is_empty() || shown_sorts.is_empty() {
        return Ok(render_page(&Page { sorts: &[], ..page }));
    }
    Ok(render_page(&page))
}

fn body_with_params(req: &Req) -> Result<Option<Value>, EsError> {
    req.json()
}

pub fn search(sh: &Shared, req: &Req, index: Option<&str>, faults: &RequestFaults) -> Result<Reply, EsError> {
    let body = body_with_params(req)?;
    let opts = Opts::from_req(req, "open", true)?;
    let bytes = execute(sh, index, &req.params, body, faults, opts)?;
    Ok(Reply::raw(200, bytes))
}

pub fn count(sh: &Shared, req: &Req, index: Option<&str>, faults: &RequestFaults) -> Result<Reply, EsError> {
    if let Some(t) = req.param("terminate_after") {
        if t.parse::<i64>().map(|n| n <= 0).unwrap_or(true) {
            return Err(EsError::bad_request("terminateAfter must be > 0"));
        }
    }
    let body = req.json()?;
    if let Some(Value::Object(m)) = &body {
        for (k, v) in m {
            if k != "query" {
                return Err(EsError::parsing(format!("request does not support [{k}]"))
                    .with("line", 1)
                    .with("col", 2)
                    .with("token", token_name(v)));
            }
        }
    }
    let query = body.as_ref().and_then(|b| b.get("query")).cloned();
    let opts = Opts::from_req(req, "open", true)?;
    let targets = {
        let mut c = lock(sh);
        let names = c.resolve(index, opts)?;
        let filters = alias_filters(&c, index);
        let mut q = query.clone();
        if let Some(q) = q.as_mut() {
            resolve_terms_lookup(&c, q);
        }
        (gather_targets(&mut c, &names, &filters), q)
    };
    let mut failures = Vec::new();
    let ranked = rank(&targets.0, &targets.1, &[], None, sh.flavor, &mut failures)?;
    let shards: u32 = targets.0.iter().map(|t| t.num_shards).sum::<u32>() + faults.shard_failures;
    let failed = faults.shard_failures + failures.len() as u32;
    Ok(Reply::ok(json!({
        "count": ranked.hits.len(),
        "_shards": {"total": shards, "successful": shards - failed, "skipped": 0, "failed": failed}
    })))
}

pub fn msearch(sh: &Shared, req: &Req, index: Option<&str>, faults: &RequestFaults) -> Result<Reply, EsError> {
    let started = Instant::now();
    let lines: Vec<&[u8]> = req
        .body
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let header: Value = serde_json::from_slice(lines[i])
            .map_err(|e| EsError::parsing(format!("failed to parse msearch header: {e}")))?;
        let body: Value = match lines.get(i + 1) {
            Some(l) => {
                serde_json::from_slice(l).map_err(|e| EsError::parsing(format!("failed to parse msearch body: {e}")))?
            }
            None => json!({}),
        };
        i += 2;
        pairs.push((header, body));
    }
    let mut problems = Vec::new();
    for (h, b) in &pairs {
        if b.get("pit").is_some() && (h.get("index").is_some() || index.is_some()) {
            problems.push(
                "[indices] cannot be used with point in time. Do not specify any index with point in time.".to_string(),
            );
        }
    }
    if !problems.is_empty() {
        return Err(EsError::validation(&problems));
    }
    let mut out = Vec::new();
    let _ = write!(out, "{{\"took\":0,\"responses\":[");
    for (n, (h, b)) in pairs.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let idx = h
            .get("index")
            .map(|v| match v {
                Value::Array(a) => a.iter().filter_map(as_string).collect::<Vec<_>>().join(","),
                other => as_string(other).unwrap_or_default(),
            })
            .or_else(|| index.map(String::from));
        let mut params = HashMap::new();
        if let Some(Value::Object(m)) = Some(&h) {
            for (k, v) in m {
                if k != "index" {
                    if let Some(s) = as_string(v) {
                        params.insert(k.clone(), s);
                    }
                }
            }
        }
        for k in ["rest_total_hits_as_int"] {
            if let Some(v) = req.param(k) {
                params.insert(k.to_string(), v.to_string());
            }
        }
        let mut opts = Opts::from_req(req, "open", true)?;
        if let Some(v) = params.get("ignore_unavailable") {
            opts.ignore_unavailable = v == "true";
        }
        match execute(sh, idx.as_deref(), &params, Some(b), faults, opts) {
            Ok(mut bytes) => {
                bytes.pop();
                bytes.extend_from_slice(b",\"status\":200}");
                out.extend_from_slice(&bytes);
            }
            Err(e) => {
                let mut body = e.body.clone();
                if let Value::Object(m) = &mut body {
                    m.insert("status".into(), json!(e.status));
                }
                serde_json::to_writer(&mut out, &body).expect("vec");
            }
        }
    }
    out.extend_from_slice(b"]}");
    let took = started.elapsed().as_millis();
    let mut fixed = format!("{{\"took\":{took},").into_bytes();
    fixed.extend_from_slice(&out[b"{\"took\":0,".len()..]);
    Ok(Reply::raw(200, fixed))
}

pub fn open_pit(sh: &Shared, req: &Req, index: &str) -> Result<Reply, EsError> {
    let ka = req
        .param("keep_alive")
        .ok_or_else(|| EsError::validation(&["[keep_alive] is not specified".into()]))?;
    let ka = keep_alive(ka)?;
    let opts = Opts::from_req(req, "open", true)?;
    let mut c = lock(sh);
    sweep_expired(&mut c);
    let names = c.resolve(Some(index), opts)?;
    let filters = alias_filters(&c, Some(index));
    let targets = gather_targets(&mut c, &names, &filters);
    let shards: u32 = targets.iter().map(|t| t.num_shards).sum();
    let id = new_context_id(&mut c);
    let created = (now_nanos() / NANOS_PER_MILLI) as i64;
    c.pits.insert(
        id.clone(),
        Pit {
            targets: Arc::new(targets),
            expires: Instant::now() + ka,
            keep_alive: ka,
            searches: 0,
            created_millis: created,
            cache: Arc::new(Mutex::new(HashMap::new())),
        },
    );
    let shards_json = json!({"total": shards, "successful": shards, "skipped": 0, "failed": 0});
    Ok(Reply::ok(match sh.flavor {
        Flavor::Elasticsearch => json!({"id": id, "_shards": shards_json}),
        Flavor::OpenSearch => {
            json!({"pit_id": id, "_shards": shards_json, "creation_time": created})
        }
    }))
}

/// The search contexts a point in time or scroll holds: one per shard of every index it spans.
fn context_count(targets: &[Target]) -> u32 {
    targets.iter().map(|t| t.num_shards).sum()
}

fn ids_from(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split(',').map(String::from).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(as_string).collect(),
        _ => vec![],
    }
}

pub fn close_pit(sh: &Shared, req: &Req, all: bool) -> Result<Reply, EsError> {
    let body = req.json()?.unwrap_or_else(|| json!({}));
    let mut c = lock(sh);
    sweep_expired(&mut c);
    match sh.flavor {
        Flavor::Elasticsearch => {
            let id = body
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| EsError::validation(&["no pit id specified".into()]))?;
            // One search context per shard is freed; `succeeded` says every context the id names
            // was (ClosePointInTimeResponse), so an unknown or closed id is a 404 that did not succeed.
            Ok(match c.pits.remove(id) {
                Some(pit) => Reply::ok(json!({"succeeded": true, "num_freed": context_count(&pit.targets)})),
                None => Reply::json(404, &json!({"succeeded": false, "num_freed": 0})),
            })
        }
        Flavor::OpenSearch => {
            let ids: Vec<String> = if all {
                c.pits.keys().cloned().collect()
            } else {
                ids_from(body.get("pit_id"))
            };
            // OpenSearch counts a context that is already gone as freed, and always answers 200.
            let pits: Vec<Value> = ids
                .into_iter()
                .map(|id| {
                    c.pits.remove(&id);
                    json!({"pit_id": id, "successful": true})
                })
                .collect();
            Ok(Reply::ok(json!({"pits": pits})))
        }
    }
}

pub fn list_pits(sh: &Shared) -> Result<Reply, EsError> {
    let mut c = lock(sh);
    sweep_expired(&mut c);
    let pits: Vec<Value> = c
        .pits
        .iter()
        .map(|(id, p)| json!({"pit_id": id, "creation_time": p.created_millis, "keep_alive": p.keep_alive.as_millis() as u64}))
        .collect();
    Ok(Reply::ok(json!({"pits": pits})))
}

pub fn scroll(sh: &Shared, req: &Req, path_id: Option<&str>, faults: &RequestFaults) -> Result<Reply, EsError> {
    let started = Instant::now();
    let body = req.json()?;
    let id = body
        .as_ref()
        .and_then(|b| b.get("scroll_id"))
        .and_then(as_string)
        .or_else(|| req.param("scroll_id").map(String::from))
        .or_else(|| path_id.map(String::from))
        .ok_or_else(|| EsError::validation(&["scrollId is missing".into()]))?;
    let ka = body
        .as_ref()
        .and_then(|b| b.get("scroll"))
        .and_then(as_string)
        .or_else(|| req.param("scroll").map(String::from));
    let rest_total_as_int = req.flag("rest_total_hits_as_int")?;
    let (targets, ranked, start, end, mut render, sorts) = {
        let mut c = lock(sh);
        sweep_expired(&mut c);
        let Some(s) = c.scrolls.get_mut(&id) else {
            return Err(EsError::search_context_missing(&id));
        };
        if let Some(ka) = ka {
            s.expires = Instant::now() + keep_alive(&ka)?;
        }
        let start = s.pos.min(s.ranked.hits.len());
        let end = (start + s.size).min(s.ranked.hits.len());
        s.pos = end;
        (
            s.targets.clone(),
            s.ranked.clone(),
            start,
            end,
            s.render.clone(),
            s.sorts.clone(),
        )
    };
    render.rest_total_as_int = rest_total_as_int;
    let types = sort_types(&sorts, &targets, sh.flavor);
    let real_shards: u32 = targets.iter().map(|t| t.num_shards).sum();
    let page = Page {
        targets: &targets,
        ranked: &ranked,
        start,
        end,
        sorts: if ranked.keys.is_empty() { &[] } else { &sorts },
        types,
        total: Some((ranked.hits.len() as u64, "eq")),
        render: &render,
        pit_id: None,
        scroll_id: Some(&id),
        shards: (real_shards + faults.shard_failures, faults.shard_failures, vec![]),
        started,
    };
    Ok(Reply::raw(200, render_page(&page)))
}

pub fn clear_scroll(sh: &Shared, req: &Req, path_id: Option<&str>) -> Result<Reply, EsError> {
    let body = req.json()?;
    let mut ids = ids_from(body.as_ref().and_then(|b| b.get("scroll_id")));
    if ids.is_empty() {
        ids = ids_from(req.param("scroll_id").map(|s| Value::String(s.to_string())).as_ref());
    }
    if ids.is_empty() {
        if let Some(p) = path_id {
            ids = p.split(',').map(String::from).collect();
        }
    }
    let mut c = lock(sh);
    sweep_expired(&mut c);
    // Freed contexts are counted per shard, as for a point in time.
    let freed: u32 = if ids.iter().any(|i| i == "_all") {
        c.scrolls.drain().map(|(_, s)| context_count(&s.targets)).sum()
    } else {
        ids.iter()
            .filter_map(|id| c.scrolls.remove(id))
            .map(|s| context_count(&s.targets))
            .sum()
    };
    let status = if freed == 0 && !ids.is_empty() { 404 } else { 200 };
    Ok(Reply::json(status, &json!({"succeeded": true, "num_freed": freed})))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::super::store::{Index, WriteCheck};
    use super::*;

    fn target(index: &Index) -> Target {
        Target {
            name: Arc::from(index.name.as_str()),
            uuid: Arc::from(index.uuid.as_str()),
            snapshot: index.searchable.clone(),
            mapping: index.mapping.clone(),
            shard_base: 0,
            num_shards: index.num_shards(),
            max_result_window: 10_000,
            max_terms_count: 65_536,
            max_slices: 1024,
            alias_filter: None,
        }
    }

    fn put(index: &mut Index, id: &str, doc: Value) {
        let shard = super::super::store::routing_shard(id, index.num_shards(), 640);
        index
            .index_doc(id, Bytes::from(doc.to_string()), None, &WriteCheck::default(), shard)
            .unwrap();
    }

    /// Matches of `query` as ids in result order, with and without the exact-value indexes; both must agree.
    fn both(targets: &[Target], query: Value, sort: Value) -> Vec<String> {
        answer(targets, query, sort).expect("the query is valid")
    }

    /// [`both`], for queries that may fail (both paths must fail alike).
    fn answer(targets: &[Target], query: Value, sort: Value) -> Result<Vec<String>, String> {
        let sorts = parse_sort(&sort).unwrap();
        let query = Some(query);
        let run = |exact| {
            let r = rank_with(
                targets,
                &query,
                &sorts,
                None,
                Flavor::Elasticsearch,
                &mut Vec::new(),
                exact,
            )
            .map_err(|e| e.error_object().to_string())?;
            let ids: Vec<String> = r
                .hits
                .iter()
                .map(|&(t, ord)| targets[t as usize].snapshot.docs[ord as usize].id.to_string())
                .collect();
            Ok::<_, String>((ids, r.keys))
        };
        let scanned = run(false);
        let indexed = run(true);
        assert_eq!(indexed, scanned, "{query:?}");
        indexed.map(|(ids, _)| ids)
    }

    #[test]
    fn exact_value_indexes_answer_as_the_scan_does() {
        let mapping = Mapping::from_json(&json!({"properties": {
            "orderId": {"type": "long"},
            "sku": {"type": "keyword", "ignore_above": 5},
            "customerName": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
            "orderDate": {"type": "date"},
            "price": {"type": "double"},
        }}))
        .unwrap();
        let settings = BTreeMap::from([("index.number_of_shards".to_string(), "2".to_string())]);
        let mut index = Index::new("orders".into(), "uuid".into(), settings, mapping);
        for i in 0..40 {
            let mut doc = json!({"orderId": i % 30, "customerName": format!("Ada {}", i % 7), "price": i as f64 / 2.0});
            if i % 3 != 0 {
                doc["sku"] = json!(["AB", format!("S{i}"), "TOOLONG"]);
            }
            if i % 5 == 0 {
                doc["orderDate"] = json!(format!("2026-11-{:02}", 1 + i % 28));
            }
            put(&mut index, &i.to_string(), doc);
        }
        index.refresh();
        // Written after the refresh: invisible to search on both paths.
        put(
            &mut index,
            "late",
            json!({"orderId": 3, "sku": "AB", "customerName": "Ada 3"}),
        );
        let targets = vec![target(&index)];
        let by_key = json!([{"orderId": "asc"}, {"_shard_doc": "asc"}]);

        let failed = answer(&targets, json!({"terms": {"orderId": [3, "x"]}}), by_key.clone());
        assert!(failed.is_err(), "a value that is no number fails the query: {failed:?}");
        let found = both(&targets, json!({"terms": {"orderId": [3, "4", 35]}}), by_key.clone());
        assert_eq!(found, ["3", "33", "4", "34"]);
        assert!(!found.contains(&"late".to_string()));
        assert_eq!(
            both(&targets, json!({"term": {"orderId": "3.0"}}), by_key.clone()),
            ["3", "33"]
        );
        assert_eq!(both(&targets, json!({"term": {"sku": "AB"}}), by_key.clone()).len(), 26);
        assert!(both(&targets, json!({"term": {"sku": "TOOLONG"}}), by_key.clone()).is_empty());
        assert_eq!(
            both(&targets, json!({"terms": {"sku": ["S1", "S2", "S3"]}}), by_key.clone()),
            ["1", "2"]
        );
        assert_eq!(
            both(
                &targets,
                json!({"term": {"customerName.keyword": "Ada 3"}}),
                by_key.clone()
            ),
            ["31", "3", "38", "10", "17", "24"]
        );
        assert_eq!(
            both(&targets, json!({"term": {"customerName": "Ada 3"}}), by_key.clone()).len(),
            6
        );
        assert!(both(&targets, json!({"term": {"missing": 1}}), by_key.clone()).is_empty());
        assert_eq!(
            both(&targets, json!({"term": {"orderDate": "2026-11-06"}}), by_key.clone()),
            ["5"]
        );
        assert_eq!(
            both(
                &targets,
                json!({"ids": {"values": ["7", "late", "nope"]}}),
                by_key.clone()
            ),
            ["7"]
        );
        assert_eq!(both(&targets, json!({"term": {"_id": "8"}}), by_key.clone()), ["8"]);
        assert_eq!(both(&targets, json!({"term": {"price": 2}}), by_key.clone()), ["4"]);
        let bool_query = json!({"bool": {
            "filter": [{"terms": {"orderId": [1, 2, 3, 4]}}, {"range": {"orderId": {"gt": 1}}}],
            "must_not": [{"term": {"customerName.keyword": "Ada 4"}}],
        }});
        assert_eq!(both(&targets, bool_query, by_key.clone()), ["2", "3", "33", "34"]);
        let should = json!({"bool": {"should": [{"term": {"orderId": 1}}, {"term": {"sku": "S2"}}]}});
        assert_eq!(both(&targets, should, by_key.clone()), ["31", "1", "2"]);
        // No sort: the scan's order (shard, then indexing order) is kept.
        let unsorted = both(&targets, json!({"terms": {"orderId": [0, 1]}}), json!([]));
        assert_eq!(unsorted.len(), 4);
    }
}
