//! `_source` filtering: `false`, include/exclude lists with `*` wildcards, the body and URL forms.

use serde_json::{Map, Value};

use super::error::EsError;
use super::indices::wildcard_match;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceFilter {
    pub fetch: bool,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect(),
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    }
}

impl SourceFilter {
    pub fn all() -> SourceFilter {
        SourceFilter { fetch: true, includes: vec![], excludes: vec![] }
    }

    pub fn is_passthrough(&self) -> bool {
        self.fetch && self.includes.is_empty() && self.excludes.is_empty()
    }

    /// Parses the body form (`_source` in a search body or an mget doc).
    pub fn from_value(v: &Value) -> Result<SourceFilter, EsError> {
        Ok(match v {
            Value::Bool(b) => SourceFilter { fetch: *b, ..SourceFilter::all() },
            Value::String(_) | Value::Array(_) => SourceFilter { fetch: true, includes: list(v), excludes: vec![] },
            Value::Object(o) => {
                for k in o.keys() {
                    if !matches!(k.as_str(), "includes" | "include" | "excludes" | "exclude") {
                        return Err(EsError::parsing(format!("Unknown key for a START_OBJECT in [{k}].")));
                    }
                }
                SourceFilter {
                    fetch: true,
                    includes: o.get("includes").or_else(|| o.get("include")).map(list).unwrap_or_default(),
                    excludes: o.get("excludes").or_else(|| o.get("exclude")).map(list).unwrap_or_default(),
                }
            }
            Value::Null => SourceFilter::all(),
            _ => return Err(EsError::parsing("Expected one of [BOOLEAN, OBJECT, START_ARRAY, VALUE_STRING] but found [VALUE_NUMBER]")),
        })
    }

    /// Parses the URL form (`_source`, `_source_includes`, `_source_excludes`); `None` if absent.
    pub fn from_params(source: Option<&str>, includes: Option<&str>, excludes: Option<&str>) -> Option<SourceFilter> {
        if source.is_none() && includes.is_none() && excludes.is_none() {
            return None;
        }
        let mut f = SourceFilter::all();
        match source {
            Some("false") => f.fetch = false,
            Some("true") | Some("") | None => {}
            Some(list_text) => f.includes = list(&Value::String(list_text.to_string())),
        }
        if let Some(i) = includes {
            f.includes = list(&Value::String(i.to_string()));
            f.fetch = true;
        }
        if let Some(e) = excludes {
            f.excludes = list(&Value::String(e.to_string()));
        }
        Some(f)
    }

    /// Filters a parsed source object.
    pub fn apply(&self, source: &Map<String, Value>) -> Map<String, Value> {
        filter_obj(source, "", &self.includes, &self.excludes)
    }

    /// Filters raw `_source` bytes; passes them through untouched when there is nothing to filter.
    pub fn apply_bytes(&self, raw: &[u8], out: &mut Vec<u8>) {
        if self.is_passthrough() {
            out.extend_from_slice(raw);
            return;
        }
        match serde_json::from_slice::<Map<String, Value>>(raw) {
            Ok(map) => {
                let filtered = self.apply(&map);
                serde_json::to_writer(&mut *out, &filtered).expect("writing to a Vec cannot fail");
            }
            Err(_) => out.extend_from_slice(raw),
        }
    }
}

fn included(path: &str, includes: &[String]) -> bool {
    includes.iter().any(|p| wildcard_match(p, path))
}

fn may_include_below(path: &str, includes: &[String]) -> bool {
    let prefix = format!("{path}.");
    includes.iter().any(|p| p.contains('*') || p.starts_with(&prefix))
}

fn filter_obj(obj: &Map<String, Value>, prefix: &str, includes: &[String], excludes: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in obj {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if excludes.iter().any(|p| wildcard_match(p, &path)) {
            continue;
        }
        let whole = includes.is_empty() || included(&path, includes);
        let inc: &[String] = if whole { &[] } else { includes };
        if !whole && !may_include_below(&path, includes) {
            continue;
        }
        if let Some(filtered) = filter_value(v, &path, inc, excludes, whole) {
            out.insert(k.clone(), filtered);
        }
    }
    out
}

fn filter_value(v: &Value, path: &str, includes: &[String], excludes: &[String], whole: bool) -> Option<Value> {
    match v {
        Value::Object(o) => {
            let f = filter_obj(o, path, includes, excludes);
            if f.is_empty() && !(whole && o.is_empty()) && !(whole && excludes.is_empty()) {
                return None;
            }
            Some(Value::Object(f))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(|i| filter_value(i, path, includes, excludes, whole)).collect();
            if kept.is_empty() && !items.is_empty() {
                return None;
            }
            Some(Value::Array(kept))
        }
        other => whole.then(|| other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn includes_and_excludes() {
        let src = json!({"include": {"field1": "v1", "field2": "v2"}, "count": 1});
        let m = src.as_object().unwrap();
        let f = SourceFilter { fetch: true, includes: vec!["include.field1".into()], excludes: vec![] };
        assert_eq!(Value::Object(f.apply(m)), json!({"include": {"field1": "v1"}}));
        let f = SourceFilter { fetch: true, includes: vec!["include".into()], excludes: vec!["*.field2".into()] };
        assert_eq!(Value::Object(f.apply(m)), json!({"include": {"field1": "v1"}}));
        let f = SourceFilter { fetch: true, includes: vec![], excludes: vec!["count".into()] };
        assert_eq!(Value::Object(f.apply(m)), json!({"include": {"field1": "v1", "field2": "v2"}}));
    }
}
