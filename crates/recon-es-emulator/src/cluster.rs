//! Request/response plumbing, the cluster state and the router from (method, path) to handlers.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use hyper::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::error::EsError;
use super::faults::{FaultSpec, RequestFaults};
use super::search::{Pit, Scroll};
use super::store::Index;
use super::{documents, indices, search, Flavor, Shared};

pub const VERSION: &str = "8.19.0";

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

fn compat_version(header: &str) -> Option<String> {
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

pub struct Cluster {
    pub indices: BTreeMap<String, Index>,
    pub pits: HashMap<String, Pit>,
    pub scrolls: HashMap<String, Scroll>,
    pub cluster_uuid: String,
    pub rng: StdRng,
    pub counter: u64,
}

impl Cluster {
    pub fn new(seed: u64) -> Cluster {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_e1a5);
        let cluster_uuid = random_id(&mut rng, 22);
        Cluster {
            indices: BTreeMap::new(),
            pits: HashMap::new(),
            scrolls: HashMap::new(),
            cluster_uuid,
            rng,
            counter: 0,
        }
    }

    /// A fresh 20-character base64url id, as Elasticsearch generates for documents.
    pub fn new_id(&mut self, len: usize) -> String {
        self.counter += 1;
        random_id(&mut self.rng, len)
    }
}

pub fn random_id(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len).map(|_| ALPHABET[rng.gen_range(0..64)] as char).collect()
}

fn info(sh: &Shared) -> Value {
    let cluster = sh.cluster.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match sh.flavor {
        Flavor::Elasticsearch => json!({
            "name": "emulator-node",
            "cluster_name": "recon-emulator",
            "cluster_uuid": cluster.cluster_uuid,
            "version": {
                "number": VERSION,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0000000000000000000000000000000000000000",
                "build_date": "2025-07-01T00:00:00.000000000Z",
                "build_snapshot": false,
                "lucene_version": "9.12.2",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0"
            },
            "tagline": "You Know, for Search"
        }),
        Flavor::OpenSearch => json!({
            "name": "emulator-node",
            "cluster_name": "recon-emulator",
            "cluster_uuid": cluster.cluster_uuid,
            "version": {
                "distribution": "opensearch",
                "number": "2.19.0",
                "build_type": "tar",
                "build_hash": "0000000000000000000000000000000000000000",
                "build_date": "2025-02-01T00:00:00.000000000Z",
                "build_snapshot": false,
                "lucene_version": "9.12.1",
                "minimum_wire_compatibility_version": "7.10.0",
                "minimum_index_compatibility_version": "7.0.0"
            },
            "tagline": "The OpenSearch Project: https://opensearch.org/"
        }),
    }
}

fn check_media_types(sh: &Shared, req: &Req) -> Result<(), EsError> {
    for header in [req.content_type.as_deref(), req.accept.as_deref()]
        .into_iter()
        .flatten()
    {
        if let Some(v) = compat_version(header) {
            let ok = sh.flavor == Flavor::Elasticsearch && (v == "7" || v == "8");
            if !ok {
                if sh.flavor == Flavor::OpenSearch {
                    return Err(EsError::plain(
                        406,
                        format!("Content-Type header [{header}] is not supported"),
                    ));
                }
                return Err(EsError::new(
                    400,
                    "media_type_header_exception",
                    "Invalid media-type value on headers [Accept, Content-Type]",
                )
                .with(
                    "caused_by",
                    json!({"type": "status_exception", "reason": format!("A compatible version is required on both Content-Type and Accept headers if either one has requested a compatible version. Accept={}, Content-Type={}", req.accept.as_deref().unwrap_or("null"), req.content_type.as_deref().unwrap_or("null"))}),
                ));
            }
        }
    }
    if req.has_body() {
        if let Some(ct) = &req.content_type {
            let base = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            let ok = matches!(
                base.as_str(),
                "application/json"
                    | "application/x-ndjson"
                    | "application/yaml"
                    | "application/vnd.elasticsearch+json"
                    | "application/vnd.elasticsearch+x-ndjson"
                    | "application/smile"
                    | "application/cbor"
            );
            if !ok {
                return Err(EsError::plain(
                    406,
                    format!("Content-Type header [{ct}] is not supported"),
                ));
            }
        }
    }
    Ok(())
}

pub fn dispatch(sh: &Shared, req: &Req, faults: &RequestFaults) -> Reply {
    match check_media_types(sh, req).and_then(|_| route(sh, req, faults)) {
        Ok(r) => r,
        Err(e) => Reply::error(&e),
    }
}

fn method_not_allowed(req: &Req, allowed: &[&str]) -> EsError {
    EsError::plain(
        405,
        format!(
            "Incorrect HTTP method for uri [{}] and method [{}], allowed: [{}]",
            req.uri,
            req.method,
            allowed.join(", ")
        ),
    )
}

fn route(sh: &Shared, req: &Req, faults: &RequestFaults) -> Result<Reply, EsError> {
    use Method as M;
    let m = &req.method;
    let s: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let is = |allowed: &[Method]| allowed.contains(m);
    macro_rules! allow {
        ($names:expr, $methods:expr) => {
            if !is(&$methods) {
                return Err(method_not_allowed(req, &$names));
            }
        };
    }
    let os = sh.flavor == Flavor::OpenSearch;
    match s.as_slice() {
        [] => {
            allow!(["GET", "HEAD"], [M::GET, M::HEAD]);
            Ok(Reply::ok(info(sh)))
        }
        ["_emulator", "faults"] => admin_faults(sh, req),
        ["_capabilities"] => {
            let supported = req.param("path") == Some("/_cluster/health")
                && req.param("capabilities") == Some("unassigned_pri_shard_count");
            Ok(Reply::ok(json!({"supported": supported})))
        }
        ["_bulk"] => {
            allow!(["POST", "PUT"], [M::POST, M::PUT]);
            documents::bulk(sh, req, None, faults)
        }
        [index, "_bulk"] => {
            allow!(["POST", "PUT"], [M::POST, M::PUT]);
            documents::bulk(sh, req, Some(index), faults)
        }
        ["_search"] => {
            allow!(["GET", "POST"], [M::GET, M::POST]);
            search::search(sh, req, None, faults)
        }
        ["_search", "scroll"] | ["_search", "scroll", _] => {
            let id = s.get(2).copied();
            if *m == M::DELETE {
                search::clear_scroll(sh, req, id)
            } else {
                allow!(["GET", "POST", "DELETE"], [M::GET, M::POST]);
                search::scroll(sh, req, id, faults)
            }
        }
        ["_search", "point_in_time"] if os => {
            allow!(["DELETE"], [M::DELETE]);
            search::close_pit(sh, req, false)
        }
        ["_search", "point_in_time", "_all"] if os => {
            allow!(["GET", "DELETE"], [M::GET, M::DELETE]);
            if *m == M::GET {
                search::list_pits(sh)
            } else {
                search::close_pit(sh, req, true)
            }
        }
        [index, "_search", "point_in_time"] if os => {
            allow!(["POST"], [M::POST]);
            search::open_pit(sh, req, index)
        }
        [index, "_search"] => {
            allow!(["GET", "POST"], [M::GET, M::POST]);
            search::search(sh, req, Some(index), faults)
        }
        ["_msearch"] => {
            allow!(["GET", "POST"], [M::GET, M::POST]);
            search::msearch(sh, req, None, faults)
        }
        [index, "_msearch"] => {
            allow!(["GET", "POST"], [M::GET, M::POST]);
            search::msearch(sh, req, Some(index), faults)
        }
        ["_count"] => {
            allow!(["GET", "POST"], [M::GET, M::POST]);
            search::count(sh, req, None, faults)
        }
        [index, "_count"] => {
            allow!(["GET", "POST"], [M::GET, M::POST]);
            search::count(sh, req, Some(index), faults)
        }
        ["_pit"] if !os => {
            allow!(["DELETE"], [M::DELETE]);
            search::close_pit(sh, req, false)
        }
        [index, "_pit"] if !os => {
            allow!(["POST"], [M::POST]);
            search::open_pit(sh, req, index)
        }
        ["_mget"] => {
            allow!(["GET", "POST"], [M::GET, M::POST]);
            documents::mget(sh, req, None)
        }
        [index, "_mget"] => {
            allow!(["GET", "POST"], [M::GET, M::POST]);
            documents::mget(sh, req, Some(index))
        }
        ["_refresh"] => {
            allow!(["GET", "POST"], [M::GET, M::POST]);
            indices::refresh(sh, req, None)
        }
        [index, "_refresh"] => {
            allow!(["GET", "POST"], [M::GET, M::POST]);
            indices::refresh(sh, req, Some(index))
        }
        ["_alias"] | ["_aliases"] if *m == M::GET => indices::get_alias(sh, req, None, None),
        ["_aliases"] => {
            allow!(["POST", "GET"], [M::POST]);
            indices::update_aliases(sh, req)
        }
        ["_alias"] => Err(method_not_allowed(req, &["GET"])),
        ["_alias", name] | ["_aliases", name] => match *m {
            M::GET => indices::get_alias(sh, req, None, Some(name)),
            M::HEAD => indices::exists_alias(sh, req, None, name),
            _ => Err(method_not_allowed(req, &["GET", "HEAD"])),
        },
        [index, "_alias"] | [index, "_aliases"] => {
            allow!(["GET"], [M::GET]);
            indices::get_alias(sh, req, Some(index), None)
        }
        [index, "_alias", name] | [index, "_aliases", name] => match *m {
            M::GET => indices::get_alias(sh, req, Some(index), Some(name)),
            M::HEAD => indices::exists_alias(sh, req, Some(index), name),
            M::PUT | M::POST => indices::put_alias(sh, req, index, name),
            M::DELETE => indices::delete_alias(sh, req, index, name),
            _ => Err(method_not_allowed(req, &["GET", "HEAD", "PUT", "POST", "DELETE"])),
        },
        ["_mapping"] => {
            allow!(["GET"], [M::GET]);
            indices::get_mapping(sh, req, None)
        }
        [index, "_mapping"] => match *m {
            M::GET => indices::get_mapping(sh, req, Some(index)),
            M::PUT | M::POST => indices::put_mapping(sh, req, index),
            _ => Err(method_not_allowed(req, &["GET", "PUT", "POST"])),
        },
        ["_settings"] => match *m {
            M::GET => indices::get_settings(sh, req, None, None),
            M::PUT => indices::put_settings(sh, req, None),
            _ => Err(method_not_allowed(req, &["GET", "PUT"])),
        },
        ["_settings", name] => {
            allow!(["GET"], [M::GET]);
            indices::get_settings(sh, req, None, Some(name))
        }
        [index, "_settings"] => match *m {
            M::GET => indices::get_settings(sh, req, Some(index), None),
            M::PUT => indices::put_settings(sh, req, Some(index)),
            _ => Err(method_not_allowed(req, &["GET", "PUT"])),
        },
        [index, "_settings", name] => {
            allow!(["GET"], [M::GET]);
            indices::get_settings(sh, req, Some(index), Some(name))
        }
        ["_cat", "indices"] => {
            allow!(["GET"], [M::GET]);
            indices::cat_indices(sh, req, None)
        }
        ["_cat", "indices", index] => {
            allow!(["GET"], [M::GET]);
            indices::cat_indices(sh, req, Some(index))
        }
        ["_cluster", "health"] => {
            allow!(["GET"], [M::GET]);
            indices::health(sh, req, None)
        }
        ["_cluster", "health", index] => {
            allow!(["GET"], [M::GET]);
            indices::health(sh, req, Some(index))
        }
        [index, "_close"] => {
            allow!(["POST"], [M::POST]);
            indices::open_close(sh, req, index, true)
        }
        [index, "_open"] => {
            allow!(["POST"], [M::POST]);
            indices::open_close(sh, req, index, false)
        }
        [index, "_doc"] => {
            allow!(["POST"], [M::POST]);
            documents::index_doc(sh, req, index, None, false)
        }
        [index, "_doc", id] => match *m {
            M::PUT | M::POST => documents::index_doc(sh, req, index, Some(id), false),
            M::GET | M::HEAD => documents::get_doc(sh, req, index, id, false),
            M::DELETE => documents::delete_doc(sh, req, index, id),
            _ => Err(method_not_allowed(req, &["GET", "HEAD", "PUT", "POST", "DELETE"])),
        },
        [index, "_create", id] => {
            allow!(["PUT", "POST"], [M::PUT, M::POST]);
            documents::index_doc(sh, req, index, Some(id), true)
        }
        [index, "_update", id] => {
            allow!(["POST"], [M::POST]);
            documents::update_doc(sh, req, index, id)
        }
        [index, "_source", id] => {
            allow!(["GET", "HEAD"], [M::GET, M::HEAD]);
            documents::get_doc(sh, req, index, id, true)
        }
        [index] if !index.starts_with('_') || *index == "_all" => match *m {
            M::PUT => indices::create_index(sh, req, index),
            M::DELETE => indices::delete_index(sh, req, index),
            M::GET => indices::get_index(sh, req, index),
            M::HEAD => indices::exists_index(sh, req, index),
            _ => Err(method_not_allowed(req, &["GET", "HEAD", "PUT", "DELETE"])),
        },
        _ => Err(EsError::plain(
            400,
            format!("no handler found for uri [{}] and method [{}]", req.uri, req.method),
        )),
    }
}

fn admin_faults(sh: &Shared, req: &Req) -> Result<Reply, EsError> {
    let mut faults = sh.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match req.method {
        Method::GET => {}
        Method::DELETE => faults.set(FaultSpec::default()),
        Method::PUT | Method::POST => {
            let spec = match req.json() {
                Ok(Some(v)) => FaultSpec::from_json(&v),
                Ok(None) => Ok(FaultSpec::default()),
                Err(_) => std::str::from_utf8(&req.body)
                    .map_err(|e| e.to_string())
                    .and_then(|s| s.trim().parse()),
            }
            .map_err(|e| EsError::bad_request(format!("invalid fault spec: {e}")))?;
            faults.set(spec);
        }
        _ => return Err(method_not_allowed(req, &["GET", "PUT", "POST", "DELETE"])),
    }
    Ok(Reply::ok(faults.spec.to_json()))
}
