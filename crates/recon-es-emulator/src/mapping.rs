//! Index mappings: the JSON tree Elasticsearch returns, a flat field table for queries and sorts,
//! dynamic mapping of new fields, and extraction of doc values from a document's `_source`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::dates::{DateFormats, NANOS_PER_MILLI};
use super::error::EsError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Keyword,
    Text,
    Long,
    Integer,
    Short,
    Byte,
    Double,
    Float,
    Date,
    DateNanos,
    Boolean,
    Other,
}

impl Kind {
    fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "keyword" | "constant_keyword" | "wildcard" => Kind::Keyword,
            "text" | "match_only_text" => Kind::Text,
            "long" | "unsigned_long" => Kind::Long,
            "integer" => Kind::Integer,
            "short" => Kind::Short,
            "byte" => Kind::Byte,
            "double" | "scaled_float" => Kind::Double,
            "float" | "half_float" => Kind::Float,
            "date" => Kind::Date,
            "date_nanos" => Kind::DateNanos,
            "boolean" => Kind::Boolean,
            "object" | "nested" => return None,
            _ => Kind::Other,
        })
    }

    pub fn is_integer(self) -> bool {
        matches!(self, Kind::Long | Kind::Integer | Kind::Short | Kind::Byte)
    }

    pub fn is_date(self) -> bool {
        matches!(self, Kind::Date | Kind::DateNanos)
    }
}

/// A field as queries and sorts see it. Multi-fields (`name.keyword`) read the values of their parent.
#[derive(Debug, Clone)]
pub struct FieldDef {
    pub kind: Kind,
    pub type_name: String,
    pub source_path: Arc<str>,
    /// Interned id of `source_path`, the key of this field's values in [`DocValues`].
    pub source_id: u32,
    pub ignore_above: Option<usize>,
    pub formats: Option<Arc<DateFormats>>,
    pub store: bool,
}

/// A doc value as read back from a document's compact [`DocValues`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dv<'a> {
    Str(&'a str),
    Long(i64),
    Double(f64),
    Bool(bool),
    /// Epoch millis for `date`, epoch nanos for `date_nanos`.
    Date(i64),
}

/// Typed doc values of one document, extracted at index time with the mapping in force then, and
/// packed into a single allocation: `(varint field id, tag, payload)*`.
#[derive(Debug, Default)]
pub struct DocValues(Box<[u8]>);

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while *pos < b.len() {
        let byte = b[*pos];
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            break;
        }
        shift += 7;
    }
    v
}

fn encode(out: &mut Vec<u8>, field: u32, v: Dv) {
    put_varint(out, field as u64);
    match v {
        Dv::Str(s) => {
            out.push(0);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Dv::Long(n) => {
            out.push(1);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Dv::Double(f) => {
            out.push(2);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Dv::Bool(b) => {
            out.push(3);
            out.push(b as u8);
        }
        Dv::Date(n) => {
            out.push(4);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

impl DocValues {
    pub fn iter(&self) -> impl Iterator<Item = (u32, Dv<'_>)> + '_ {
        let b = &self.0;
        let mut pos = 0;
        std::iter::from_fn(move || {
            if pos >= b.len() {
                return None;
            }
            let field = get_varint(b, &mut pos) as u32;
            let tag = b[pos];
            pos += 1;
            let eight = |pos: &mut usize| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[*pos..*pos + 8]);
                *pos += 8;
                a
            };
            let v = match tag {
                0 => {
                    let len = get_varint(b, &mut pos) as usize;
                    let s = std::str::from_utf8(&b[pos..pos + len]).unwrap_or("");
                    pos += len;
                    Dv::Str(s)
                }
                1 => Dv::Long(i64::from_le_bytes(eight(&mut pos))),
                2 => Dv::Double(f64::from_le_bytes(eight(&mut pos))),
                3 => {
                    pos += 1;
                    Dv::Bool(b[pos - 1] != 0)
                }
                _ => Dv::Date(i64::from_le_bytes(eight(&mut pos))),
            };
            Some((field, v))
        })
    }

    pub fn of(&self, field: u32) -> impl Iterator<Item = Dv<'_>> + '_ {
        self.iter().filter(move |(f, _)| *f == field).map(|(_, v)| v)
    }
}

/// A JSON leaf as the extractors see it, before the mapping types it.
#[derive(Clone, Copy)]
enum Leaf<'a> {
    Str(&'a str),
    /// A number's exact decimal text.
    Num(&'a str),
    Bool(bool),
}

#[derive(Debug, Clone)]
pub struct Mapping {
    root: Map<String, Value>,
    fields: HashMap<String, Arc<FieldDef>>,
    /// Source paths interned to ids; append-only so ids stay valid for documents already stored.
    path_ids: HashMap<Arc<str>, u32>,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            root: Map::new(),
            fields: HashMap::new(),
            path_ids: HashMap::new(),
        }
    }
}

fn mapping_error(reason: String) -> EsError {
    EsError::new(400, "mapper_parsing_exception", reason.clone()).with(
        "caused_by",
        json!({"type": "illegal_argument_exception", "reason": reason}),
    )
}

impl Mapping {
    pub fn from_json(v: &Value) -> Result<Mapping, EsError> {
        let mut m = Mapping::default();
        m.merge(v)?;
        Ok(m)
    }

    /// Merges an explicit mapping (create index or PUT _mapping) into this one.
    pub fn merge(&mut self, v: &Value) -> Result<(), EsError> {
        let Some(obj) = v.as_object() else {
            return Err(mapping_error("mapping must be an object".into()));
        };
        // Typed mappings ({"_doc": {...}}) are unwrapped.
        let obj = match obj.get("_doc").and_then(Value::as_object) {
            Some(inner) if obj.len() == 1 => inner,
            _ => obj,
        };
        for (k, val) in obj {
            if k == "properties" {
                let props = self.root.entry("properties").or_insert_with(|| json!({}));
                merge_properties(props, val)?;
            } else {
                self.root.insert(k.clone(), val.clone());
            }
        }
        self.rebuild();
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.root.clone())
    }

    pub fn field(&self, name: &str) -> Option<&Arc<FieldDef>> {
        self.fields.get(name)
    }

    pub fn field_names(&self) -> impl Iterator<Item = &String> {
        self.fields.keys()
    }

    fn rebuild(&mut self) {
        self.fields.clear();
        if let Some(Value::Object(props)) = self.root.get("properties") {
            let props = props.clone();
            collect_fields(&props, "", &mut self.fields, &mut self.path_ids);
        }
    }

    fn dynamic_mode(&self) -> &str {
        match self.root.get("dynamic") {
            Some(Value::Bool(false)) => "false",
            Some(Value::String(s)) => s.as_str(),
            _ => "true",
        }
    }

    /// Adds mappings for fields of `doc` not mapped yet; returns whether anything changed.
    pub fn apply_dynamic(&mut self, doc: &Map<String, Value>) -> Result<bool, EsError> {
        let mode = self.dynamic_mode().to_string();
        let mut additions: Vec<(String, Value)> = Vec::new();
        self.find_unmapped(doc, "", &mut additions, &mode)?;
        if additions.is_empty() {
            return Ok(false);
        }
        let props = self.root.entry("properties").or_insert_with(|| json!({}));
        for (path, def) in additions {
            insert_path(props, &path, def);
        }
        self.rebuild();
        Ok(true)
    }

    fn find_unmapped(
        &self,
        obj: &Map<String, Value>,
        prefix: &str,
        out: &mut Vec<(String, Value)>,
        mode: &str,
    ) -> Result<(), EsError> {
        for (k, v) in obj {
            if k.is_empty() {
                return Err(EsError::new(
                    400,
                    "document_parsing_exception",
                    "field name cannot be an empty string",
                ));
            }
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if self.fields.contains_key(&path) || out.iter().any(|(p, _)| *p == path) {
                if let Value::Object(inner) = v {
                    self.find_unmapped(inner, &path, out, mode)?;
                }
                continue;
            }
            let sample = match v {
                Value::Array(items) => items.iter().find(|x| !x.is_null()),
                Value::Null => None,
                other => Some(other),
            };
            let Some(sample) = sample else { continue };
            if mode == "false" {
                continue;
            }
            if mode == "strict" {
                let parent = if prefix.is_empty() { "_doc" } else { prefix };
                return Err(EsError::new(
                    400,
                    "strict_dynamic_mapping_exception",
                    format!(
                        "[1:2] mapping set to strict, dynamic introduction of [{k}] within [{parent}] is not allowed"
                    ),
                ));
            }
            match sample {
                Value::Object(inner) => {
                    if !self.is_object_path(&path) {
                        out.push((path.clone(), json!({"properties": {}})));
                    }
                    self.find_unmapped(inner, &path, out, mode)?;
                }
                Value::Bool(_) => out.push((path, json!({"type": "boolean"}))),
                Value::Number(n) => {
                    let t = if n.is_i64() || n.is_u64() { "long" } else { "float" };
                    out.push((path, json!({"type": t})));
                }
                Value::String(s) => {
                    if DateFormats::default_date().parse_str(s).is_some() && looks_like_date(s) {
                        out.push((path, json!({"type": "date"})));
                    } else {
                        out.push((
                            path,
                            json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}),
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn is_object_path(&self, path: &str) -> bool {
        let mut cur = self.root.get("properties");
        for part in path.split('.') {
            match cur.and_then(|p| p.get(part)) {
                Some(node) => cur = node.get("properties"),
                None => return false,
            }
        }
        cur.is_some()
    }

    /// Extracts typed doc values of all mapped leaf fields of `doc`.
    pub fn extract(&self, doc: &Map<String, Value>, id: &str) -> Result<DocValues, EsError> {
        let mut out = Vec::new();
        let mut path = String::new();
        self.extract_obj(doc, &mut path, &mut out, id)?;
        Ok(DocValues(out.into_boxed_slice()))
    }

    fn extract_obj(
        &self,
        obj: &Map<String, Value>,
        path: &mut String,
        out: &mut Vec<u8>,
        id: &str,
    ) -> Result<(), EsError> {
        for (k, v) in obj {
            let len = path.len();
            if len > 0 {
                path.push('.');
            }
            path.push_str(k);
            self.extract_value(v, path, out, id)?;
            path.truncate(len);
        }
        Ok(())
    }

    fn extract_value(&self, v: &Value, path: &mut String, out: &mut Vec<u8>, id: &str) -> Result<(), EsError> {
        match v {
            Value::Object(inner) => self.extract_obj(inner, path, out, id),
            Value::Array(items) => {
                for item in items {
                    self.extract_value(item, path, out, id)?;
                }
                Ok(())
            }
            Value::Null => Ok(()),
            leaf => {
                let Some(def) = self.fields.get(path.as_str()) else {
                    return Ok(());
                };
                let text;
                let l = match leaf {
                    Value::String(s) => Leaf::Str(s),
                    Value::Bool(b) => Leaf::Bool(*b),
                    Value::Number(n) => {
                        text = n.to_string();
                        Leaf::Num(&text)
                    }
                    _ => return Ok(()),
                };
                encode_leaf(def, l, out).map_err(|_| parse_failure(path, &def.type_name, leaf, id))
            }
        }
    }

    /// Extracts doc values straight from raw JSON without building a tree. `None` when the document
    /// needs the slow path: a field not mapped yet (dynamic mapping), a value that does not parse, or
    /// invalid JSON (the slow path reports the precise error).
    pub fn extract_raw(&self, raw: &[u8]) -> Option<DocValues> {
        use serde::de::DeserializeSeed;
        let mut walker = Walker {
            mapping: self,
            path: String::new(),
            out: Vec::with_capacity(raw.len() / 2),
            miss: false,
        };
        let mut de = serde_json::Deserializer::from_slice(raw);
        RootSeed(&mut walker).deserialize(&mut de).ok()?;
        de.end().ok()?;
        if walker.miss {
            return None;
        }
        Some(DocValues(walker.out.into_boxed_slice()))
    }
}

struct Walker<'m> {
    mapping: &'m Mapping,
    path: String,
    out: Vec<u8>,
    miss: bool,
}

impl Walker<'_> {
    fn leaf(&mut self, l: Leaf) {
        match self.mapping.fields.get(self.path.as_str()) {
            Some(def) => {
                if encode_leaf(def, l, &mut self.out).is_err() {
                    self.miss = true;
                }
            }
            None => self.miss = true,
        }
    }
}

/// The top level must be an object.
struct RootSeed<'w, 'm>(&'w mut Walker<'m>);

impl<'de> serde::de::DeserializeSeed<'de> for RootSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(ValueSeed(self.0))
    }
}

struct ValueSeed<'w, 'm>(&'w mut Walker<'m>);

impl<'de> serde::de::DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// A map key or string borrowed from the input when possible.
struct StrSeed;

impl<'de> serde::de::DeserializeSeed<'de> for StrSeed {
    type Value = std::borrow::Cow<'de, str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StrSeed {
    type Value = std::borrow::Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v))
    }
}

impl<'de> serde::de::Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.leaf(Leaf::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.leaf(Leaf::Num(&v.to_string()));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.leaf(Leaf::Num(&v.to_string()));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.leaf(Leaf::Num(&v.to_string()));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.leaf(Leaf::Str(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(ValueSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let w = self.0;
        let mut empty = true;
        while let Some(key) = map.next_key_seed(StrSeed)? {
            if empty && key == "$serde_json::private::Number" {
                // arbitrary_precision hands numbers over as a map holding their exact text.
                let text = map.next_value_seed(StrSeed)?;
                w.leaf(Leaf::Num(&text));
                return Ok(());
            }
            empty = false;
            let len = w.path.len();
            if len > 0 {
                w.path.push('.');
            }
            w.path.push_str(&key);
            map.next_value_seed(ValueSeed(&mut *w))?;
            w.path.truncate(len);
        }
        if empty && !w.path.is_empty() && !w.mapping.is_object_path(&w.path) {
            w.miss = true;
        }
        Ok(())
    }
}

/// Types one leaf with its field's mapping and appends it to the encoded doc values.
fn encode_leaf(def: &FieldDef, l: Leaf, out: &mut Vec<u8>) -> Result<(), ()> {
    let id = def.source_id;
    match def.kind {
        Kind::Keyword | Kind::Text => match l {
            Leaf::Str(s) | Leaf::Num(s) => encode(out, id, Dv::Str(s)),
            Leaf::Bool(b) => encode(out, id, Dv::Str(if b { "true" } else { "false" })),
        },
        k if k.is_integer() => {
            let n = match l {
                Leaf::Str(s) | Leaf::Num(s) => s.parse::<i64>().ok().or_else(|| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .map(|f| f.trunc() as i64)
                }),
                Leaf::Bool(_) => None,
            };
            encode(out, id, Dv::Long(n.ok_or(())?));
        }
        Kind::Double | Kind::Float => {
            let f = match l {
                Leaf::Str(s) | Leaf::Num(s) => s.parse::<f64>().map_err(|_| ())?,
                Leaf::Bool(_) => return Err(()),
            };
            encode(
                out,
                id,
                Dv::Double(if def.kind == Kind::Float { f as f32 as f64 } else { f }),
            );
        }
        Kind::Boolean => {
            let b = match l {
                Leaf::Bool(b) => b,
                Leaf::Str("true") => true,
                Leaf::Str("false") | Leaf::Str("") => false,
                _ => return Err(()),
            };
            encode(out, id, Dv::Bool(b));
        }
        Kind::Date | Kind::DateNanos => {
            let default_formats;
            let formats = match &def.formats {
                Some(f) => &**f,
                None => {
                    default_formats = DateFormats::default_date();
                    &default_formats
                }
            };
            let nanos = match l {
                Leaf::Str(s) => formats.parse_str(s).ok_or(())?,
                Leaf::Num(s) => formats.parse_number(s.parse::<f64>().map_err(|_| ())?).ok_or(())?,
                Leaf::Bool(_) => return Err(()),
            };
            let v = if def.kind == Kind::Date {
                nanos.div_euclid(NANOS_PER_MILLI) as i64
            } else {
                nanos as i64
            };
            encode(out, id, Dv::Date(v));
        }
        _ => {}
    }
    Ok(())
}

fn looks_like_date(s: &str) -> bool {
    // Dynamic date detection uses strict_date_optional_time, which needs at least yyyy-MM-dd.
    s.len() >= 10 && s.as_bytes()[4] == b'-'
}

fn parse_failure(path: &str, type_name: &str, v: &Value, id: &str) -> EsError {
    let preview = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    EsError::new(
        400,
        "document_parsing_exception",
        format!(
            "[1:2] failed to parse field [{path}] of type [{type_name}] in document with id '{id}'. Preview of field's value: '{preview}'"
        ),
    )
}

pub fn parse_long(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.is_finite()).then_some(f.trunc() as i64)
        }),
        Value::String(s) => s
            .parse::<i64>()
            .ok()
            .or_else(|| s.parse::<f64>().ok().map(|f| f.trunc() as i64)),
        _ => None,
    }
}

pub fn parse_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn merge_properties(target: &mut Value, props: &Value) -> Result<(), EsError> {
    let Some(props) = props.as_object() else {
        return Err(mapping_error("[properties] must be an object".into()));
    };
    for (name, def) in props {
        if name.is_empty() {
            return Err(EsError::new(
                400,
                "illegal_argument_exception",
                "field name cannot be an empty string",
            ));
        }
        let Some(def_obj) = def.as_object() else {
            return Err(mapping_error(format!(
                "Expected map for property [fields] on field [{name}] but got a class java.lang.String"
            )));
        };
        if let Some(Value::String(t)) = def_obj.get("type") {
            if Kind::from_name(t) == Some(Kind::Other) && !KNOWN_OTHER_TYPES.contains(&t.as_str()) {
                return Err(mapping_error(format!(
                    "No handler for type [{t}] declared on field [{name}]"
                )));
            }
        }
        // Dotted names expand into objects, as Elasticsearch does.
        if name.contains('.') {
            insert_path(target, name, def.clone());
            continue;
        }
        let slot = target
            .as_object_mut()
            .expect("properties is an object")
            .entry(name.clone())
            .or_insert_with(|| json!({}));
        for (k, v) in def_obj {
            if k == "properties" {
                let inner = slot
                    .as_object_mut()
                    .expect("object")
                    .entry("properties")
                    .or_insert_with(|| json!({}));
                merge_properties(inner, v)?;
            } else {
                slot.as_object_mut().expect("object").insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

const KNOWN_OTHER_TYPES: &[&str] = &[
    "binary",
    "ip",
    "geo_point",
    "geo_shape",
    "dense_vector",
    "sparse_vector",
    "flattened",
    "alias",
    "integer_range",
    "long_range",
    "date_range",
    "ip_range",
    "version",
    "semantic_text",
    "rank_feature",
    "rank_features",
    "completion",
    "search_as_you_type",
    "token_count",
    "histogram",
    "point",
    "shape",
    "murmur3",
    "annotated_text",
    "percolator",
    "join",
    "unsigned_long",
    "counted_keyword",
    "float_range",
    "double_range",
];

fn insert_path(props: &mut Value, path: &str, def: Value) {
    let mut cur = props;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let map = cur.as_object_mut().expect("properties object");
        if i + 1 == parts.len() {
            map.insert(part.to_string(), def);
            return;
        }
        let node = map.entry(part.to_string()).or_insert_with(|| json!({"properties": {}}));
        if node.get("properties").is_none() {
            node.as_object_mut()
                .expect("object")
                .insert("properties".into(), json!({}));
        }
        cur = node.get_mut("properties").expect("just inserted");
    }
}

fn intern(ids: &mut HashMap<Arc<str>, u32>, path: &str) -> (Arc<str>, u32) {
    if let Some((k, v)) = ids.get_key_value(path) {
        return (k.clone(), *v);
    }
    let key: Arc<str> = Arc::from(path);
    let id = ids.len() as u32;
    ids.insert(key.clone(), id);
    (key, id)
}

fn collect_fields(
    props: &Map<String, Value>,
    prefix: &str,
    out: &mut HashMap<String, Arc<FieldDef>>,
    ids: &mut HashMap<Arc<str>, u32>,
) {
    for (name, def) in props {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let Some(Value::Object(inner)) = def.get("properties") {
            collect_fields(inner, &path, out, ids);
        }
        let type_name = def.get("type").and_then(Value::as_str).unwrap_or("object");
        let Some(kind) = Kind::from_name(type_name) else {
            continue;
        };
        let (source, source_id) = intern(ids, &path);
        let field = make_def(kind, type_name, source.clone(), source_id, def);
        out.insert(path.clone(), Arc::new(field));
        if let Some(Value::Object(multi)) = def.get("fields") {
            for (sub, sub_def) in multi {
                let t = sub_def.get("type").and_then(Value::as_str).unwrap_or("keyword");
                if let Some(k) = Kind::from_name(t) {
                    out.insert(
                        format!("{path}.{sub}"),
                        Arc::new(make_def(k, t, source.clone(), source_id, sub_def)),
                    );
                }
            }
        }
    }
}

fn make_def(kind: Kind, type_name: &str, source_path: Arc<str>, source_id: u32, def: &Value) -> FieldDef {
    let formats = kind.is_date().then(|| {
        Arc::new(match def.get("format").and_then(Value::as_str) {
            Some(f) => DateFormats::parse(f),
            None => DateFormats::default_date(),
        })
    });
    FieldDef {
        kind,
        type_name: type_name.to_string(),
        source_path,
        source_id,
        ignore_above: def.get("ignore_above").and_then(Value::as_u64).map(|n| n as usize),
        formats,
        store: def
            .get("store")
            .map(|v| v == &json!(true) || v == &json!("true"))
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_strings_get_keyword_subfield_and_dates_are_detected() {
        let mut m = Mapping::default();
        let doc = json!({"name": "x", "n": 9007199254740993i64, "when": "2020-01-02T03:04:05Z", "o": {"b": true}});
        assert!(m.apply_dynamic(doc.as_object().unwrap()).unwrap());
        assert_eq!(m.field("name").unwrap().kind, Kind::Text);
        assert_eq!(m.field("name.keyword").unwrap().kind, Kind::Keyword);
        assert_eq!(m.field("when").unwrap().kind, Kind::Date);
        assert_eq!(m.field("o.b").unwrap().kind, Kind::Boolean);
        let values = m.extract(doc.as_object().unwrap(), "1").unwrap();
        let n = m.field("n").unwrap().source_id;
        assert_eq!(values.of(n).collect::<Vec<_>>(), vec![Dv::Long(9007199254740993)]);
        let raw = serde_json::to_vec(&doc).unwrap();
        let fast = m.extract_raw(&raw).expect("all fields mapped");
        assert_eq!(fast.iter().collect::<Vec<_>>(), values.iter().collect::<Vec<_>>());
        assert!(m.extract_raw(br#"{"unmapped": 1}"#).is_none());
    }
}
