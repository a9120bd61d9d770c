//! The query DSL subset: match_all, match_none, ids, term, terms, range, bool, match, exists, prefix,
//! constant_score. A query is compiled once per index (field types differ between indices) into
//! predicates over doc values.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::dates::{date_math, DateFormats, NANOS_PER_MILLI};
use super::error::EsError;
use super::mapping::{parse_f64, parse_long, Dv, FieldDef, Kind, Mapping};
use super::store::{as_string, Doc, ExactField, ExactValue, Snapshot};

/// What a compiled query needs to know about the index it runs on.
pub struct QueryContext<'a> {
    pub mapping: &'a Mapping,
    pub index: &'a str,
    pub uuid: &'a str,
    pub max_terms_count: usize,
    pub max_result_window: usize,
    pub now_nanos: i128,
}

#[derive(Debug, Clone)]
pub enum Query {
    All,
    None,
    Ids(HashSet<String>),
    Index(Vec<String>),
    Leaf {
        field: u32,
        pred: Pred,
    },
    Bool {
        must: Vec<Query>,
        should: Vec<Query>,
        must_not: Vec<Query>,
        min_should: usize,
    },
}

#[derive(Debug, Clone)]
pub enum Pred {
    StrIn {
        values: HashSet<String>,
        ignore_above: Option<usize>,
        case_insensitive: bool,
    },
    Tokens {
        tokens: Vec<String>,
        all: bool,
    },
    Prefix {
        prefix: String,
        case_insensitive: bool,
    },
    LongIn(HashSet<i64>),
    DoubleIn(Vec<f64>),
    Bool(bool),
    LongRange {
        lo: i64,
        hi: i64,
    },
    DoubleRange {
        lo: f64,
        lo_incl: bool,
        hi: f64,
        hi_incl: bool,
    },
    StrRange {
        lo: Option<(String, bool)>,
        hi: Option<(String, bool)>,
    },
    Exists,
}

fn shard_error(ctx: &QueryContext, reason: String) -> EsError {
    EsError::new(400, "query_shard_exception", reason)
        .with("index_uuid", ctx.uuid)
        .with("index", ctx.index)
}

fn parse_err(reason: impl Into<String>) -> EsError {
    EsError::parsing(reason)
}

/// Splits text the way the standard analyzer roughly does: alphanumeric runs, lowercased.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Returns the single `{field: spec}` entry of a leaf query, ignoring `boost`/`_name`.
fn single_field<'v>(name: &str, body: &'v Value) -> Result<(&'v String, &'v Value), EsError> {
    let obj = body
        .as_object()
        .ok_or_else(|| parse_err(format!("[{name}] query malformed, no start_object after query name")))?;
    obj.iter()
        .find(|(k, _)| !matches!(k.as_str(), "boost" | "_name" | "format"))
        .ok_or_else(|| parse_err(format!("[{name}] query doesn't support multiple fields, found none")))
}

pub fn compile(q: &Value, ctx: &QueryContext) -> Result<Query, EsError> {
    let obj = q
        .as_object()
        .ok_or_else(|| parse_err("query malformed, must start with start_object"))?;
    let Some((name, body)) = obj.iter().next() else {
        return Ok(Query::All);
    };
    if obj.len() > 1 {
        return Err(parse_err(format!(
            "[{name}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]"
        )));
    }
    match name.as_str() {
        "match_all" => Ok(Query::All),
        "match_none" => Ok(Query::None),
        "ids" => {
            let values = body.get("values").and_then(Value::as_array).cloned().unwrap_or_default();
            if values.len() > ctx.max_result_window {
                return Err(shard_error(
                    ctx,
                    format!("failed to create query: Too many ids specified, allowed max result window is [{}]", ctx.max_result_window),
                ));
            }
            Ok(Query::Ids(values.iter().filter_map(as_string).collect()))
        }
        "term" => {
            let (field, spec) = single_field(name, body)?;
            let (value, ci) = match spec {
                Value::Object(o) => (
                    o.get("value").cloned().ok_or_else(|| parse_err("[term] query does not support [value] missing"))?,
                    o.get("case_insensitive").and_then(Value::as_bool).unwrap_or(false),
                ),
                v => (v.clone(), false),
            };
            term_query(field, &[value], ci, ctx)
        }
        "terms" => {
            let (field, spec) = single_field(name, body)?;
            let values = spec.as_array().cloned().ok_or_else(|| parse_err("[terms] query does not support lookup here"))?;
            if values.len() > ctx.max_terms_count {
                return Err(EsError::bad_request(format!(
                    "The number of terms [{}] used in the Terms Query request has exceeded the allowed maximum of [{}]. This maximum can be set by changing the [index.max_terms_count] index level setting.",
                    values.len(),
                    ctx.max_terms_count
                )));
            }
            term_query(field, &values, false, ctx)
        }
        "match" | "match_phrase" | "match_bool_prefix" | "match_phrase_prefix" => {
            let (field, spec) = single_field(name, body)?;
            let (text, all) = match spec {
                Value::Object(o) => (
                    o.get("query").cloned().unwrap_or(Value::Null),
                    name == "match_phrase" || o.get("operator").and_then(Value::as_str).map(|s| s.eq_ignore_ascii_case("and")).unwrap_or(false),
                ),
                v => (v.clone(), name == "match_phrase"),
            };
            match_query(field, &text, all, ctx)
        }
        "range" => {
            let (field, spec) = single_field(name, body)?;
            range_query(field, spec, ctx)
        }
        "exists" => {
            let field = body.get("field").and_then(Value::as_str).ok_or_else(|| parse_err("[exists] must be provided with a [field]"))?;
            Ok(match field {
                "_id" | "_index" => Query::All,
                f => match ctx.mapping.field(f) {
                    Some(def) => Query::Leaf { field: def.source_id, pred: Pred::Exists },
                    None if ctx.mapping.field_names().any(|n| n.starts_with(&format!("{f}."))) => {
                        let shoulds = ctx
                            .mapping
                            .field_names()
                            .filter(|n| n.starts_with(&format!("{f}.")))
                            .filter_map(|n| ctx.mapping.field(n))
                            .map(|d| Query::Leaf { field: d.source_id, pred: Pred::Exists })
                            .collect();
                        Query::Bool { must: vec![], should: shoulds, must_not: vec![], min_should: 1 }
                    }
                    None => Query::None,
                },
            })
        }
        "prefix" => {
            let (field, spec) = single_field(name, body)?;
            let (value, ci) = match spec {
                Value::Object(o) => (
                    o.get("value").and_then(as_string).unwrap_or_default(),
                    o.get("case_insensitive").and_then(Value::as_bool).unwrap_or(false),
                ),
                v => (as_string(v).unwrap_or_default(), false),
            };
            Ok(match field.as_str() {
                "_id" => Query::Ids(HashSet::new()),
                f => match ctx.mapping.field(f) {
                    Some(def) => Query::Leaf { field: def.source_id, pred: Pred::Prefix { prefix: value, case_insensitive: ci } },
                    None => Query::None,
                },
            })
        }
        "constant_score" => {
            let filter = body.get("filter").ok_or_else(|| parse_err("[constant_score] requires a 'filter' element"))?;
            compile(filter, ctx)
        }
        "bool" => {
            let clauses = |key: &str| -> Result<Vec<Query>, EsError> {
                match body.get(key) {
                    None | Some(Value::Null) => Ok(vec![]),
                    Some(Value::Array(items)) => items.iter().map(|i| compile(i, ctx)).collect(),
                    Some(single) => Ok(vec![compile(single, ctx)?]),
                }
            };
            if let Some(obj) = body.as_object() {
                for k in obj.keys() {
                    if !matches!(k.as_str(), "must" | "filter" | "should" | "must_not" | "minimum_should_match" | "boost" | "_name" | "adjust_pure_negative") {
                        return Err(parse_err(format!("[bool] query does not support [{k}]")));
                    }
                }
            }
            let mut must = clauses("must")?;
            must.extend(clauses("filter")?);
            let should = clauses("should")?;
            let must_not = clauses("must_not")?;
            let min_should = match body.get("minimum_should_match") {
                Some(v) => parse_min_should(v, should.len()),
                None if must.is_empty() && !should.is_empty() => 1,
                None => 0,
            };
            Ok(Query::Bool { must, should, must_not, min_should })
        }
        other => Err(parse_err(format!("unknown query [{other}]"))
            .with("caused_by", serde_json::json!({"type": "named_object_not_found_exception", "reason": format!("[1:1] unknown field [{other}]")}))),
    }
}

fn parse_min_should(v: &Value, n: usize) -> usize {
    let s = as_string(v).unwrap_or_default();
    if let Some(p) = s.strip_suffix('%') {
        let pct: i64 = p.parse().unwrap_or(0);
        let k = (n as i64 * pct.abs() / 100) as usize;
        return if pct < 0 { n - k } else { k };
    }
    let k: i64 = s.parse().unwrap_or(0);
    if k < 0 {
        n.saturating_sub((-k) as usize)
    } else {
        k as usize
    }
}

fn term_query(field: &str, values: &[Value], ci: bool, ctx: &QueryContext) -> Result<Query, EsError> {
    match field {
        "_id" => return Ok(Query::Ids(values.iter().filter_map(as_string).collect())),
        "_index" => return Ok(Query::Index(values.iter().filter_map(as_string).collect())),
        _ => {}
    }
    let Some(def) = ctx.mapping.field(field) else {
        return Ok(Query::None);
    };
    let pred = leaf_pred(def, values, ci, field, ctx)?;
    Ok(Query::Leaf {
        field: def.source_id,
        pred,
    })
}

fn leaf_pred(def: &FieldDef, values: &[Value], ci: bool, field: &str, ctx: &QueryContext) -> Result<Pred, EsError> {
    Ok(match def.kind {
        Kind::Keyword => Pred::StrIn {
            values: values
                .iter()
                .filter_map(as_string)
                .map(|s| if ci { s.to_lowercase() } else { s })
                .collect(),
            ignore_above: def.ignore_above,
            case_insensitive: ci,
        },
        Kind::Text => Pred::StrIn {
            values: values.iter().filter_map(as_string).collect(),
            ignore_above: None,
            case_insensitive: ci,
        },
        k if k.is_integer() => Pred::LongIn(
            values
                .iter()
                .map(|v| parse_long(v).ok_or_else(|| number_error(v, ctx)))
                .collect::<Result<_, _>>()?,
        ),
        Kind::Double | Kind::Float => Pred::DoubleIn(
            values
                .iter()
                .map(|v| {
                    parse_f64(v)
                        .map(|f| if def.kind == Kind::Float { f as f32 as f64 } else { f })
                        .ok_or_else(|| number_error(v, ctx))
                })
                .collect::<Result<_, _>>()?,
        ),
        Kind::Boolean => Pred::Bool(values.first().and_then(super::store::as_bool).unwrap_or(false)),
        Kind::Date | Kind::DateNanos => {
            let mut set = HashSet::new();
            for v in values {
                set.insert(date_value(def, v, ctx.now_nanos, field, None)?);
            }
            Pred::LongIn(set)
        }
        _ => Pred::Exists,
    })
}

fn number_error(v: &Value, ctx: &QueryContext) -> EsError {
    let s = as_string(v).unwrap_or_default();
    EsError::new(
        400,
        "query_shard_exception",
        format!("failed to create query: For input string: \"{s}\""),
    )
    .with("index_uuid", ctx.uuid)
    .with("index", ctx.index)
}

/// A date query value as the field's unit (millis or nanos).
fn date_value(def: &FieldDef, v: &Value, now: i128, field: &str, format: Option<&str>) -> Result<i64, EsError> {
    let formats = match format {
        Some(f) => Arc::new(DateFormats::parse(f)),
        None => def
            .formats
            .clone()
            .unwrap_or_else(|| Arc::new(DateFormats::default_date())),
    };
    let nanos = match v {
        Value::Number(n) => formats.parse_number(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => date_math(s, &formats, now),
        _ => None,
    }
    .ok_or_else(|| {
        EsError::new(
            400,
            "parse_exception",
            format!(
                "failed to parse date field [{}] with format [{}]",
                as_string(v).unwrap_or_default(),
                formats.text
            ),
        )
        .with("field", field)
    })?;
    Ok(if def.kind == Kind::DateNanos {
        nanos as i64
    } else {
        nanos.div_euclid(NANOS_PER_MILLI) as i64
    })
}

fn match_query(field: &str, text: &Value, all: bool, ctx: &QueryContext) -> Result<Query, EsError> {
    match field {
        "_id" | "_index" => return term_query(field, std::slice::from_ref(text), false, ctx),
        _ => {}
    }
    let Some(def) = ctx.mapping.field(field) else {
        return Ok(Query::None);
    };
    if def.kind == Kind::Text {
        let tokens = tokenize(&as_string(text).unwrap_or_default());
        if tokens.is_empty() {
            return Ok(Query::None);
        }
        return Ok(Query::Leaf {
            field: def.source_id,
            pred: Pred::Tokens { tokens, all },
        });
    }
    term_query(field, std::slice::from_ref(text), false, ctx)
}

fn range_query(field: &str, spec: &Value, ctx: &QueryContext) -> Result<Query, EsError> {
    let get = |k: &str| spec.get(k).filter(|v| !v.is_null());
    let mut lo = get("gte").map(|v| (v, true)).or_else(|| get("gt").map(|v| (v, false)));
    let mut hi = get("lte").map(|v| (v, true)).or_else(|| get("lt").map(|v| (v, false)));
    if lo.is_none() {
        if let Some(v) = get("from") {
            lo = Some((v, spec.get("include_lower").and_then(Value::as_bool).unwrap_or(true)));
        }
    }
    if hi.is_none() {
        if let Some(v) = get("to") {
            hi = Some((v, spec.get("include_upper").and_then(Value::as_bool).unwrap_or(true)));
        }
    }
    let format = spec.get("format").and_then(Value::as_str);
    if field == "_id" {
        return Ok(Query::None);
    }
    let Some(def) = ctx.mapping.field(field) else {
        return Ok(Query::None);
    };
    let pred = match def.kind {
        Kind::Keyword | Kind::Text => Pred::StrRange {
            lo: lo.map(|(v, i)| (as_string(v).unwrap_or_default(), i)),
            hi: hi.map(|(v, i)| (as_string(v).unwrap_or_default(), i)),
        },
        k if k.is_integer() || k.is_date() => {
            let conv = |v: &Value| -> Result<i64, EsError> {
                if k.is_date() {
                    date_value(def, v, ctx.now_nanos, field, format)
                } else {
                    parse_long(v).ok_or_else(|| number_error(v, ctx))
                }
            };
            let lo_v = match lo {
                None => i64::MIN,
                Some((v, true)) => conv(v)?,
                Some((v, false)) => conv(v)?.saturating_add(1),
            };
            let hi_v = match hi {
                None => i64::MAX,
                Some((v, true)) => conv(v)?,
                Some((v, false)) => conv(v)?.saturating_sub(1),
            };
            Pred::LongRange { lo: lo_v, hi: hi_v }
        }
        Kind::Double | Kind::Float => {
            let conv = |v: &Value| parse_f64(v).ok_or_else(|| number_error(v, ctx));
            Pred::DoubleRange {
                lo: lo.map(|(v, _)| conv(v)).transpose()?.unwrap_or(f64::NEG_INFINITY),
                lo_incl: lo.map(|(_, i)| i).unwrap_or(true),
                hi: hi.map(|(v, _)| conv(v)).transpose()?.unwrap_or(f64::INFINITY),
                hi_incl: hi.map(|(_, i)| i).unwrap_or(true),
            }
        }
        _ => Pred::Exists,
    };
    Ok(Query::Leaf {
        field: def.source_id,
        pred,
    })
}

impl Query {
    pub fn is_all(&self) -> bool {
        matches!(self, Query::All)
    }

    /// The ordinals of `snapshot` that may match, ascending and distinct, from its exact-value indexes
    /// (as an inverted index answers `term`, `terms` and `ids`); `None` when nothing in the query narrows
    /// the documents that way and every document must be tried. Always a superset of the matches: the
    /// caller still runs [`Query::matches`] on each, so the answer is the scan's, only cheaper.
    pub fn candidates(&self, snapshot: &Snapshot) -> Option<Vec<u32>> {
        let mut ords: Vec<u32> = match self {
            Query::None => Vec::new(),
            Query::Ids(ids) => {
                let index = snapshot.exact(ExactField::Id);
                ids.iter().flat_map(|id| index.lookup(ExactValue::Str(id))).collect()
            }
            Query::Leaf {
                field,
                pred:
                    Pred::StrIn {
                        values,
                        case_insensitive: false,
                        ..
                    },
            } => {
                let index = snapshot.exact(ExactField::Values(*field));
                values.iter().flat_map(|v| index.lookup(ExactValue::Str(v))).collect()
            }
            Query::Leaf {
                field,
                pred: Pred::LongIn(values),
            } => {
                let index = snapshot.exact(ExactField::Values(*field));
                values.iter().flat_map(|&n| index.lookup(ExactValue::Long(n))).collect()
            }
            // Every `must`/`filter` clause must match: the narrowest one bounds the matches.
            Query::Bool { must, .. } => return must.iter().filter_map(|q| q.candidates(snapshot)).min_by_key(Vec::len),
            _ => return None,
        };
        ords.sort_unstable();
        ords.dedup();
        Some(ords)
    }

    pub fn matches(&self, doc: &Doc, index: &str) -> bool {
        match self {
            Query::All => true,
            Query::None => false,
            Query::Ids(ids) => ids.contains(&*doc.id),
            Query::Index(names) => names
                .iter()
                .any(|n| n == index || super::indices::wildcard_match(n, index)),
            Query::Leaf { field, pred } => pred.matches(doc.values_of(*field)),
            Query::Bool {
                must,
                should,
                must_not,
                min_should,
            } => {
                must.iter().all(|q| q.matches(doc, index))
                    && !must_not.iter().any(|q| q.matches(doc, index))
                    && (*min_should == 0 || should.iter().filter(|q| q.matches(doc, index)).count() >= *min_should)
            }
        }
    }
}

impl Pred {
    fn matches<'a>(&self, mut values: impl Iterator<Item = Dv<'a>>) -> bool {
        match self {
            Pred::Exists => values.next().is_some(),
            Pred::Tokens { tokens, all } => {
                let mut seen = vec![false; tokens.len()];
                for v in values {
                    if let Dv::Str(s) = v {
                        for t in tokenize(s) {
                            for (i, q) in tokens.iter().enumerate() {
                                if *q == t {
                                    seen[i] = true;
                                }
                            }
                        }
                    }
                }
                if *all {
                    seen.iter().all(|&b| b)
                } else {
                    seen.iter().any(|&b| b)
                }
            }
            _ => values.any(|v| self.matches_one(&v)),
        }
    }

    fn matches_one(&self, v: &Dv) -> bool {
        match (self, v) {
            (
                Pred::StrIn {
                    values,
                    ignore_above,
                    case_insensitive,
                },
                Dv::Str(s),
            ) => {
                if ignore_above.is_some_and(|max| s.chars().count() > max) {
                    return false;
                }
                if *case_insensitive {
                    values.contains(&s.to_lowercase())
                } else {
                    values.contains(*s)
                }
            }
            (
                Pred::Prefix {
                    prefix,
                    case_insensitive,
                },
                Dv::Str(s),
            ) => {
                if *case_insensitive {
                    s.to_lowercase().starts_with(&prefix.to_lowercase())
                } else {
                    s.starts_with(prefix.as_str())
                }
            }
            (Pred::LongIn(set), Dv::Long(n) | Dv::Date(n)) => set.contains(n),
            (Pred::DoubleIn(set), Dv::Double(f)) => set.contains(f),
            (Pred::DoubleIn(set), Dv::Long(n)) => set.contains(&(*n as f64)),
            (Pred::Bool(b), Dv::Bool(x)) => b == x,
            (Pred::LongRange { lo, hi }, Dv::Long(n) | Dv::Date(n)) => lo <= n && n <= hi,
            (
                Pred::DoubleRange {
                    lo,
                    lo_incl,
                    hi,
                    hi_incl,
                },
                Dv::Double(f),
            ) => (if *lo_incl { f >= lo } else { f > lo }) && (if *hi_incl { f <= hi } else { f < hi }),
            (Pred::StrRange { lo, hi }, Dv::Str(s)) => {
                let s: &str = s;
                lo.as_ref()
                    .is_none_or(|(l, incl)| if *incl { s >= l.as_str() } else { s > l.as_str() })
                    && hi
                        .as_ref()
                        .is_none_or(|(h, incl)| if *incl { s <= h.as_str() } else { s < h.as_str() })
            }
            _ => false,
        }
    }
}
