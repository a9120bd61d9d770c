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
        Value::String(s) => s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    }
}

impl SourceFilter {
    pub fn all() -> SourceFilter {
        SourceFilter {
            fetch: true,
            includes: vec![],
            excludes: vec![],
        }
    }

    pub fn is_passthrough(&self) -> bool {
        self.fetch && self.includes.is_empty() && self.excludes.is_empty()
    }

    /// Parses the body form (`_source` in a search body or an mget doc).
    pub fn from_value(v: &Value) -> Result<SourceFilter, EsError> {
        Ok(match v {
            Value::Bool(b) => SourceFilter {
                fetch: *b,
                ..SourceFilter::all()
            },
            Value::String(_) | Value::Array(_) => SourceFilter {
                fetch: true,
                includes: list(v),
                excludes: vec![],
            },
            Value::Object(o) => {
                for k in o.keys() {
                    if !matches!(k.as_str(), "includes" | "include" | "excludes" | "exclude") {
                        return Err(EsError::parsing(format!("Unknown key for a START_OBJECT in [{k}].")));
                    }
                }
                SourceFilter {
                    fetch: true,
                    includes: o
                        .get("includes")
                        .or_else(|| o.get("include"))
                        .map(list)
                        .unwrap_or_default(),
                    excludes: o
                        .get("excludes")
                        .or_else(|| o.get("exclude"))
                        .map(list)
                        .unwrap_or_default(),
                }
            }
            Value::Null => SourceFilter::all(),
            _ => {
                return Err(EsError::parsing(
                    "Expected one of [BOOLEAN, OBJECT, START_ARRAY, VALUE_STRING] but found [VALUE_NUMBER]",
                ))
            }
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

    /// Filters raw `_source` bytes; passes them through untouched when there is nothing to filter,
    /// and copies whole top-level fields without parsing them when the filter allows.
    pub fn apply_bytes(&self, raw: &[u8], out: &mut Vec<u8>) {
        if self.is_passthrough() {
            out.extend_from_slice(raw);
            return;
        }
        if self.apply_top_level(raw, out) {
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

impl SourceFilter {
    /// The fast path: walks the top-level fields of the raw object, copying kept fields verbatim
    /// and filtering only the fields a pattern reaches into. Returns false (writing nothing) if the
    /// source has a shape the scanner does not handle.
    fn apply_top_level(&self, raw: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(fields) = top_level_fields(raw) else {
            return false;
        };
        let start = out.len();
        out.push(b'{');
        let mut first = true;
        for (key_raw, key, value) in fields {
            let touches_exclude = self
                .excludes
                .iter()
                .any(|p| p.contains('*') || p == key || p.starts_with(&format!("{key}.")));
            let whole = self.includes.is_empty() || included(key, &self.includes);
            if whole && !touches_exclude {
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(&raw[key_raw.clone()]);
                out.push(b':');
                out.extend_from_slice(&raw[value]);
                continue;
            }
            if !whole && !may_include_below(key, &self.includes) {
                continue;
            }
            let Ok(v) = serde_json::from_slice::<Value>(&raw[value]) else {
                out.truncate(start);
                return false;
            };
            if self.excludes.iter().any(|p| wildcard_match(p, key)) {
                continue;
            }
            let inc: &[String] = if whole { &[] } else { &self.includes };
            if let Some(filtered) = filter_value(&v, key, inc, &self.excludes, whole) {
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(&raw[key_raw]);
                out.push(b':');
                serde_json::to_writer(&mut *out, &filtered).expect("writing to a Vec cannot fail");
            }
        }
        out.push(b'}');
        true
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Index just past the string starting at `i` (which must be a quote); `None` if unterminated.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']') && !b[j].is_ascii_whitespace() {
                j += 1;
            }
            Some(j)
        }
    }
}

type FieldSpan<'a> = (std::ops::Range<usize>, &'a str, std::ops::Range<usize>);

/// The top-level fields of a JSON object: (raw key span with quotes, key, value span). Keys with
/// escapes are not handled (`None`), so the caller falls back to a full parse.
fn top_level_fields(b: &[u8]) -> Option<Vec<FieldSpan<'_>>> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut out = Vec::new();
    if b.get(i) == Some(&b'}') {
        return Some(out);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(b, i)?;
        let key_bytes = &b[i + 1..key_end - 1];
        if key_bytes.contains(&b'\\') {
            return None;
        }
        let key = std::str::from_utf8(key_bytes).ok()?;
        let key_span = i..key_end;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let v_end = skip_value(b, i)?;
        out.push((key_span, key, i..v_end));
        i = skip_ws(b, v_end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(out),
            _ => return None,
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
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
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
            let kept: Vec<Value> = items
                .iter()
                .filter_map(|i| filter_value(i, path, includes, excludes, whole))
                .collect();
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
        let f = SourceFilter {
            fetch: true,
            includes: vec!["include.field1".into()],
            excludes: vec![],
        };
        assert_eq!(Value::Object(f.apply(m)), json!({"include": {"field1": "v1"}}));
        let f = SourceFilter {
            fetch: true,
            includes: vec!["include".into()],
            excludes: vec!["*.field2".into()],
        };
        assert_eq!(Value::Object(f.apply(m)), json!({"include": {"field1": "v1"}}));
        let f = SourceFilter {
            fetch: true,
            includes: vec![],
            excludes: vec!["count".into()],
        };
        assert_eq!(
            Value::Object(f.apply(m)),
            json!({"include": {"field1": "v1", "field2": "v2"}})
        );
    }

    #[test]
    fn raw_fast_path_matches_the_tree_filter() {
        let raw = br#"{"a": {"x": 1, "y": "}\"{"}, "b": [1, {"c": 2}], "big": 72057594037927936, "s": "t"}"#;
        let src: Map<String, Value> = serde_json::from_slice(raw).unwrap();
        let filters = [
            SourceFilter {
                fetch: true,
                includes: vec!["a".into(), "big".into()],
                excludes: vec![],
            },
            SourceFilter {
                fetch: true,
                includes: vec!["a.y".into(), "s".into()],
                excludes: vec![],
            },
            SourceFilter {
                fetch: true,
                includes: vec![],
                excludes: vec!["*.x".into(), "b".into()],
            },
            SourceFilter {
                fetch: true,
                includes: vec!["b.c".into()],
                excludes: vec![],
            },
        ];
        for f in filters {
            let mut out = Vec::new();
            assert!(f.apply_top_level(raw, &mut out), "{f:?}");
            let fast: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(fast, Value::Object(f.apply(&src)), "{f:?}");
        }
        let mut out = Vec::new();
        SourceFilter {
            fetch: true,
            includes: vec!["big".into()],
            excludes: vec![],
        }
        .apply_bytes(raw, &mut out);
        assert_eq!(out, br#"{"big":72057594037927936}"#);
    }
}
