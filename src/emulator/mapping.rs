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
    pub ignore_above: Option<usize>,
    pub formats: Option<Arc<DateFormats>>,
    pub store: bool,
}

/// A doc value extracted at index time, typed by the mapping in force then.
#[derive(Debug, Clone, PartialEq)]
pub enum Dv {
    Str(Box<str>),
    Long(i64),
    Double(f64),
    Bool(bool),
    /// Epoch millis for `date`, epoch nanos for `date_nanos`.
    Date(i64),
}

#[derive(Debug, Clone)]
pub struct Mapping {
    root: Map<String, Value>,
    fields: HashMap<String, Arc<FieldDef>>,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping { root: Map::new(), fields: HashMap::new() }
    }
}

fn mapping_error(reason: String) -> EsError {
    EsError::new(400, "mapper_parsing_exception", reason.clone())
        .with("caused_by", json!({"type": "illegal_argument_exception", "reason": reason}))
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
            collect_fields(&props, "", &mut self.fields);
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
                return Err(EsError::new(400, "document_parsing_exception", "field name cannot be an empty string"));
            }
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
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
                    format!("[1:2] mapping set to strict, dynamic introduction of [{k}] within [{parent}] is not allowed"),
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
    pub fn extract(&self, doc: &Map<String, Value>, id: &str) -> Result<Vec<(Arc<str>, Dv)>, EsError> {
        let mut out = Vec::new();
        self.extract_obj(doc, "", &mut out, id)?;
        Ok(out)
    }

    fn extract_obj(
        &self,
        obj: &Map<String, Value>,
        prefix: &str,
        out: &mut Vec<(Arc<str>, Dv)>,
        id: &str,
    ) -> Result<(), EsError> {
        for (k, v) in obj {
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            self.extract_value(v, &path, out, id)?;
        }
        Ok(())
    }

    fn extract_value(&self, v: &Value, path: &str, out: &mut Vec<(Arc<str>, Dv)>, id: &str) -> Result<(), EsError> {
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
                let Some(def) = self.fields.get(path) else { return Ok(()) };
                if let Some(dv) = typed_value(def, leaf).map_err(|_| parse_failure(path, &def.type_name, leaf, id))? {
                    out.push((def.source_path.clone(), dv));
                }
                Ok(())
            }
        }
    }
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

/// Converts a JSON leaf into the doc value a field of this type stores; `Err` when it cannot parse.
pub fn typed_value(def: &FieldDef, v: &Value) -> Result<Option<Dv>, ()> {
    Ok(match def.kind {
        Kind::Keyword | Kind::Text => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(()),
            };
            Some(Dv::Str(s.into_boxed_str()))
        }
        k if k.is_integer() => Some(Dv::Long(parse_long(v).ok_or(())?)),
        Kind::Double => Some(Dv::Double(parse_f64(v).ok_or(())?)),
        Kind::Float => Some(Dv::Double(parse_f64(v).ok_or(())? as f32 as f64)),
        Kind::Boolean => Some(Dv::Bool(match v {
            Value::Bool(b) => *b,
            Value::String(s) if s == "true" => true,
            Value::String(s) if s == "false" || s.is_empty() => false,
            _ => return Err(()),
        })),
        Kind::Date | Kind::DateNanos => {
            let formats = def.formats.clone().unwrap_or_else(|| Arc::new(DateFormats::default_date()));
            let nanos = match v {
                Value::String(s) => formats.parse_str(s).ok_or(())?,
                Value::Number(n) => formats.parse_number(n.as_f64().ok_or(())?).ok_or(())?,
                _ => return Err(()),
            };
            Some(Dv::Date(if def.kind == Kind::Date {
                nanos.div_euclid(NANOS_PER_MILLI) as i64
            } else {
                nanos as i64
            }))
        }
        _ => None,
    })
}

pub fn parse_long(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.is_finite()).then_some(f.trunc() as i64)
        }),
        Value::String(s) => s.parse::<i64>().ok().or_else(|| s.parse::<f64>().ok().map(|f| f.trunc() as i64)),
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
            return Err(EsError::new(400, "illegal_argument_exception", "field name cannot be an empty string"));
        }
        let Some(def_obj) = def.as_object() else {
            return Err(mapping_error(format!("Expected map for property [fields] on field [{name}] but got a class java.lang.String")));
        };
        if let Some(Value::String(t)) = def_obj.get("type") {
            if Kind::from_name(t) == Some(Kind::Other) && !KNOWN_OTHER_TYPES.contains(&t.as_str()) {
                return Err(mapping_error(format!("No handler for type [{t}] declared on field [{name}]")));
            }
        }
        // Dotted names expand into objects, as Elasticsearch does.
        if name.contains('.') {
            insert_path(target, name, def.clone());
            continue;
        }
        let slot = target.as_object_mut().expect("properties is an object").entry(name.clone()).or_insert_with(|| json!({}));
        for (k, v) in def_obj {
            if k == "properties" {
                let inner = slot.as_object_mut().expect("object").entry("properties").or_insert_with(|| json!({}));
                merge_properties(inner, v)?;
            } else {
                slot.as_object_mut().expect("object").insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

const KNOWN_OTHER_TYPES: &[&str] = &[
    "binary", "ip", "geo_point", "geo_shape", "dense_vector", "sparse_vector", "flattened", "alias",
    "integer_range", "long_range", "date_range", "ip_range", "version", "semantic_text", "rank_feature",
    "rank_features", "completion", "search_as_you_type", "token_count", "histogram", "point", "shape",
    "murmur3", "annotated_text", "percolator", "join", "unsigned_long", "counted_keyword", "float_range",
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
            node.as_object_mut().expect("object").insert("properties".into(), json!({}));
        }
        cur = node.get_mut("properties").expect("just inserted");
    }
}

fn collect_fields(props: &Map<String, Value>, prefix: &str, out: &mut HashMap<String, Arc<FieldDef>>) {
    for (name, def) in props {
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        if let Some(Value::Object(inner)) = def.get("properties") {
            collect_fields(inner, &path, out);
        }
        let type_name = def.get("type").and_then(Value::as_str).unwrap_or("object");
        let Some(kind) = Kind::from_name(type_name) else { continue };
        let source: Arc<str> = Arc::from(path.as_str());
        let field = make_def(kind, type_name, source.clone(), def);
        out.insert(path.clone(), Arc::new(field));
        if let Some(Value::Object(multi)) = def.get("fields") {
            for (sub, sub_def) in multi {
                let t = sub_def.get("type").and_then(Value::as_str).unwrap_or("keyword");
                if let Some(k) = Kind::from_name(t) {
                    out.insert(format!("{path}.{sub}"), Arc::new(make_def(k, t, source.clone(), sub_def)));
                }
            }
        }
    }
}

fn make_def(kind: Kind, type_name: &str, source_path: Arc<str>, def: &Value) -> FieldDef {
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
        ignore_above: def.get("ignore_above").and_then(Value::as_u64).map(|n| n as usize),
        formats,
        store: def.get("store").map(|v| v == &json!(true) || v == &json!("true")).unwrap_or(false),
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
        assert!(values.contains(&(Arc::from("n"), Dv::Long(9007199254740993))));
    }
}
