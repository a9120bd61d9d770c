//! The router: from (method, path) to the handlers, plus the cluster's own endpoints (info,
//! fault administration). The handlers know the request and reply types (`http`) and the state
//! (`Cluster`, at the crate root), never the router.

use hyper::Method;
use serde_json::{json, Value};

use super::error::EsError;
use super::faults::{FaultSpec, RequestFaults};
use super::http::{compat_version, Reply, Req};
use super::{documents, indices, search, Flavor, Shared};

pub const VERSION: &str = "8.19.0";

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

pub fn dispatch(sh: &Shared, req: &Req, faults: &RequestFaults, user: Option<&crate::User>) -> Reply {
    // With security on, the `_security` handlers answer for the authenticated user; with it off they
    // do not exist (Elasticsearch registers none), and the router answers as for any unknown path.
    if let Some(user) = user {
        let s: Vec<&str> = req.segs.iter().map(String::as_str).collect();
        match s.as_slice() {
            ["_security", "user", "_has_privileges"] | ["_security", "user", _, "_has_privileges"] => {
                if req.method != Method::GET && req.method != Method::POST {
                    return Reply::error(&method_not_allowed(req, &["GET", "POST"]));
                }
                return crate::security::has_privileges(user, req).unwrap_or_else(|e| Reply::error(&e));
            }
            ["_security", "_authenticate"] => return crate::security::authenticate_reply(user),
            _ => {}
        }
    }
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
