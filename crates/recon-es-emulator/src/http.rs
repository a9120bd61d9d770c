//! Requests and replies as the handlers see them: decoded once, rendered once.

use std::collections::HashMap;

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use super::error::EsError;

/// A request, decoded once.
pub struct Req {
    pub method: Method,
    pub path: String,
    /// The path with its `?query`, as error messages quote it.
    pub uri: String,
    pub segs: Vec<String>,
    pub params: HashMap<String, String>,
    pub body: Bytes,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    /// The `Authorization` header, for the optional security layer.
    pub authorization: Option<String>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Req {
    pub fn new(parts: &hyper::http::request::Parts, body: Bytes) -> Req {
        let path = parts.uri.path().to_string();
        let segs = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
        let params = parts
            .uri
            .query()
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(String::from);
        let uri = parts
            .uri
            .path_and_query()
            .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
        Req {
            method: parts.method.clone(),
            path,
            uri,
            segs,
            params,
            body,
            content_type: header("content-type"),
            accept: header("accept"),
            authorization: header("authorization"),
        }
    }

    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }

    /// A boolean query parameter: present with no value or "true" means true.
    pub fn flag(&self, k: &str) -> Result<bool, EsError> {
        match self.param(k) {
            None | Some("false") => Ok(false),
            Some("") | Some("true") => Ok(true),
            Some(other) => Err(EsError::bad_request(format!(
                "Failed to parse value [{other}] as only [true] or [false] are allowed."
            ))),
        }
    }

    pub fn flag_or(&self, k: &str, default: bool) -> Result<bool, EsError> {
        if self.param(k).is_none() {
            Ok(default)
        } else {
            self.flag(k)
        }
    }

    pub fn has_body(&self) -> bool {
        !self.body.iter().all(u8::is_ascii_whitespace)
    }

    /// The body parsed as JSON, or `None` when empty.
    pub fn json(&self) -> Result<Option<Value>, EsError> {
        if !self.has_body() {
            return Ok(None);
        }
        serde_json::from_slice(&self.body).map(Some).map_err(|e| {
            EsError::new(
                400,
                "x_content_parse_exception",
                format!("[{}:{}] {}", e.line(), e.column(), e),
            )
        })
    }
}

pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Reply {
        Reply::raw(status, serde_json::to_vec(v).expect("serializing a Value cannot fail"))
    }

    pub fn ok(v: Value) -> Reply {
        Reply::json(200, &v)
    }

    pub fn raw(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            body: Bytes::from(body),
            content_type: "application/json",
            headers: Vec::new(),
        }
    }

    pub fn text(status: u16, body: String) -> Reply {
        Reply {
            status,
            body: Bytes::from(body),
            content_type: "text/plain; charset=UTF-8",
            headers: Vec::new(),
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: Bytes::new(),
            content_type: "application/json",
            headers: Vec::new(),
        }
    }

    pub fn error(e: &EsError) -> Reply {
        Reply::json(e.status, &e.body)
    }
}

/// The content type a response carries, echoing the versioned media type a client asked for.
pub fn response_content_type(parts: &hyper::http::request::Parts, default: &'static str) -> String {
    if default != "application/json" {
        return default.to_string();
    }
    let accept = parts.headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("application/yaml") {
        return "application/yaml".to_string();
    }
    if let Some(v) = compat_version(accept) {
        return format!("application/vnd.elasticsearch+json;compatible-with={v}");
    }
    "application/json".to_string()
}

pub fn compat_version(header: &str) -> Option<String> {
    if !header.contains("vnd.elasticsearch+") {
        return None;
    }
    let idx = header.find("compatible-with=")?;
    Some(
        header[idx + "compatible-with=".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect(),
    )
}

/// Endpoint kind used by fault targeting (`only=`).
pub fn endpoint_kind(req: &Req) -> &'static str {
    let s: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    if s.first() == Some(&"_emulator") {
        return "emulator";
    }
    if s.contains(&"_bulk") {
        "bulk"
    } else if s.contains(&"point_in_time") || s.contains(&"_pit") {
        "pit"
    } else if s.contains(&"scroll") {
        "scroll"
    } else if s.contains(&"_search") || s.contains(&"_msearch") {
        "search"
    } else if s.contains(&"_count") {
        "count"
    } else if s.contains(&"_mget") {
        "mget"
    } else if s.contains(&"_doc") || s.contains(&"_create") || s.contains(&"_update") || s.contains(&"_source") {
        if req.method == Method::GET || req.method == Method::HEAD {
            "get"
        } else {
            "doc"
        }
    } else {
        "admin"
    }
}
