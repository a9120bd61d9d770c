//! Single-document APIs (index, create, get, delete, update), `_mget` and `_bulk`.

use std::collections::BTreeSet;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::dates::{now_nanos, resolve_index_date_math};
use super::error::{obj, EsError};
use super::faults::RequestFaults;
use super::http::{Reply, Req};
use super::indices::shard_for;
use super::source_filter::SourceFilter;
use super::store::{as_string, Doc, Index, VersionType, WriteCheck, WriteResult, PRIMARY_TERM};
use super::Cluster;
use super::Shared;

#[derive(Clone, Copy, PartialEq)]
enum Refresh {
    No,
    Force,
    WaitFor,
}

fn refresh_policy(v: Option<&str>) -> Result<Refresh, EsError> {
    match v {
        None | Some("false") => Ok(Refresh::No),
        Some("") | Some("true") => Ok(Refresh::Force),
        Some("wait_for") => Ok(Refresh::WaitFor),
        Some(other) => Err(EsError::bad_request(format!("Unknown value for refresh: [{other}]."))),
    }
}

fn num_param(v: Option<String>, name: &str) -> Result<Option<i64>, EsError> {
    v.map(|s| {
        s.parse::<i64>()
            .map_err(|_| EsError::bad_request(format!("Failed to parse [{name}] with value [{s}]")))
    })
    .transpose()
}

fn write_check(get: impl Fn(&str) -> Option<String>, create_only: bool) -> Result<WriteCheck, EsError> {
    let check = WriteCheck {
        create_only,
        if_seq_no: num_param(get("if_seq_no"), "if_seq_no")?,
        if_primary_term: num_param(get("if_primary_term"), "if_primary_term")?,
        version: num_param(get("version"), "version")?,
        version_type: match get("version_type") {
            Some(v) => VersionType::parse(&v)?,
            None => VersionType::Internal,
        },
    };
    check.validate()?;
    Ok(check)
}

fn validate_id(id: &str) -> Result<(), EsError> {
    if id.is_empty() {
        return Err(EsError::bad_request("if _id is specified it must not be empty"));
    }
    if id.len() > 512 {
        return Err(EsError::validation(&[format!(
            "id [{id}] is too long, must be no longer than 512 bytes but was: {}",
            id.len()
        )]));
    }
    Ok(())
}

/// The concrete index a write goes to, auto-creating it when allowed.
fn write_target(c: &mut Cluster, name: &str, require_alias: bool, auto_create: bool) -> Result<String, EsError> {
    let name = resolve_index_date_math(name, now_nanos());
    if require_alias && !c.is_alias(&name) {
        return Err(EsError::new(
            404,
            "index_not_found_exception",
            format!("no such index [{name}] and [require_alias] request flag is [true] and [{name}] is not an alias"),
        )
        .with("index_uuid", "_na_")
        .with("index", name.as_str()));
    }
    match c.write_index(&name)? {
        Some(i) => {
            let idx = &c.indices[&i];
            if idx.closed {
                return Err(EsError::index_closed(&idx.name, &idx.uuid));
            }
            Ok(i)
        }
        None if auto_create => {
            c.create_index(&name, None)?;
            Ok(name)
        }
        None => Err(EsError::index_not_found(&name)),
    }
}

fn write_body(idx: &Index, id: &str, r: &WriteResult, forced: bool) -> Value {
    let mut m = Map::new();
    m.insert("_index".into(), json!(idx.name));
    m.insert("_id".into(), json!(id));
    m.insert("_version".into(), json!(r.version));
    m.insert("result".into(), json!(r.result));
    if forced {
        m.insert("forced_refresh".into(), json!(true));
    }
    if r.result == "noop" {
        m.insert("_shards".into(), json!({"total": 0, "successful": 0, "failed": 0}));
    } else {
        m.insert("_shards".into(), idx.write_shards());
    }
    m.insert("_seq_no".into(), json!(r.seq_no));
    m.insert("_primary_term".into(), json!(PRIMARY_TERM));
    Value::Object(m)
}

fn lock(sh: &Shared) -> std::sync::MutexGuard<'_, Cluster> {
    sh.cluster.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn index_doc(sh: &Shared, req: &Req, index: &str, id: Option<&str>, create: bool) -> Result<Reply, EsError> {
    let create = create
        || match req.param("op_type") {
            Some("create") => true,
            Some("index") | None => false,
            Some(other) => {
                return Err(EsError::bad_request(format!(
                    "opType must be 'create' or 'index', found: [{other}]"
                )))
            }
        };
    let check = write_check(|k| req.param(k).map(String::from), create)?;
    let refresh = refresh_policy(req.param("refresh"))?;
    if !req.has_body() {
        return Err(EsError::validation(&[
            "source is missing".into(),
            "content type is missing".into(),
        ]));
    }
    let mut c = lock(sh);
    let id = match id {
        Some(id) => {
            validate_id(id)?;
            id.to_string()
        }
        None => c.new_id(20),
    };
    let target = write_target(&mut c, index, req.flag("require_alias")?, true)?;
    let idx = c.indices.get_mut(&target).expect("resolved");
    let shard = shard_for(idx, &id);
    let r = idx.index_doc(&id, Bytes::copy_from_slice(trim_body(&req.body)), None, &check, shard)?;
    if refresh != Refresh::No {
        idx.refresh_shard(r.shard);
    }
    Ok(Reply::json(
        r.status,
        &write_body(idx, &id, &r, refresh == Refresh::Force),
    ))
}

fn trim_body(b: &[u8]) -> &[u8] {
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map(|p| p + 1)
        .unwrap_or(0);
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(end);
    &b[start..end]
}

pub fn delete_doc(sh: &Shared, req: &Req, index: &str, id: &str) -> Result<Reply, EsError> {
    let check = write_check(|k| req.param(k).map(String::from), false)?;
    let refresh = refresh_policy(req.param("refresh"))?;
    let mut c = lock(sh);
    let target = write_target(&mut c, index, false, false)?;
    let idx = c.indices.get_mut(&target).expect("resolved");
    let shard = shard_for(idx, id);
    let r = idx.delete_doc(id, &check, shard)?;
    if refresh != Refresh::No {
        idx.refresh_shard(r.shard);
    }
    Ok(Reply::json(
        r.status,
        &write_body(idx, id, &r, refresh == Refresh::Force),
    ))
}

/// Renders a stored document the way GET and mget do.
fn get_body(idx: &Index, id: &str, doc: Option<&Doc>, filter: &SourceFilter, stored: &[String]) -> Value {
    let Some(doc) = doc else {
        return json!({"_index": idx.name, "_id": id, "found": false});
    };
    let mut m = Map::new();
    m.insert("_index".into(), json!(idx.name));
    m.insert("_id".into(), json!(id));
    m.insert("_version".into(), json!(doc.version));
    m.insert("_seq_no".into(), json!(doc.seq_no));
    m.insert("_primary_term".into(), json!(PRIMARY_TERM));
    m.insert("found".into(), json!(true));
    let source: Option<Map<String, Value>> = serde_json::from_slice(&doc.source).ok();
    if filter.fetch {
        if let Some(src) = &source {
            m.insert("_source".into(), Value::Object(filter.apply(src)));
        }
    }
    if !stored.is_empty() {
        let mut fields = Map::new();
        for f in stored {
            if let Some(def) = idx.mapping.field(f).filter(|d| d.store) {
                if let Some(v) = source.as_ref().and_then(|s| lookup_path(s, &def.source_path)) {
                    let arr = match v {
                        Value::Array(a) => a.clone(),
                        other => vec![other.clone()],
                    };
                    fields.insert(f.clone(), Value::Array(arr));
                }
            }
        }
        if !fields.is_empty() {
            m.insert("fields".into(), Value::Object(fields));
        }
    }
    Value::Object(m)
}

pub fn lookup_path<'a>(src: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = src.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match src.get(head)? {
        Value::Object(inner) => lookup_path(inner, rest),
        _ => None,
    }
}

fn list_param(v: Option<&str>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// Resolves the single index a GET-style read addresses (an index or a one-index alias).
fn read_index(c: &Cluster, name: &str) -> Result<String, EsError> {
    let name = resolve_index_date_math(name, now_nanos());
    if c.indices.contains_key(&name) {
        let idx = &c.indices[&name];
        if idx.closed {
            return Err(EsError::index_closed(&idx.name, &idx.uuid));
        }
        return Ok(name);
    }
    let members = c.alias_members(&name);
    match members.len() {
        0 => Err(EsError::index_not_found(&name)),
        1 => Ok(members[0].clone()),
        _ => Err(EsError::bad_request(format!(
            "alias [{name}] has more than one index associated with it [{}], can't execute a single index op",
            members.join(", ")
        ))),
    }
}

pub fn get_doc(sh: &Shared, req: &Req, index: &str, id: &str, source_only: bool) -> Result<Reply, EsError> {
    let mut c = lock(sh);
    let target = read_index(&c, index)?;
    let idx = c.indices.get_mut(&target).expect("resolved");
    if req.flag("refresh")? {
        idx.refresh();
    }
    let realtime = req.flag_or("realtime", true)?;
    if !realtime {
        idx.maybe_scheduled_refresh();
    }
    let doc = if realtime {
        idx.get_live(id).cloned()
    } else {
        idx.get_searchable(id)
    };
    if let (Some(d), Some(v)) = (&doc, num_param(req.param("version").map(String::from), "version")?) {
        if d.version != v {
            return Err(EsError::new(
                409,
                "version_conflict_engine_exception",
                format!(
                    "[{id}]: version conflict, current version [{}] is different than the one provided [{v}]",
                    d.version
                ),
            )
            .on_shard(&idx.name, &idx.uuid));
        }
    }
    let filter = SourceFilter::from_params(
        req.param("_source"),
        req.param("_source_includes"),
        req.param("_source_excludes"),
    )
    .unwrap_or_else(SourceFilter::all);
    let stored = list_param(req.param("stored_fields"));
    let filter = if !stored.is_empty() && req.param("_source").is_none() && req.param("_source_includes").is_none() {
        SourceFilter { fetch: false, ..filter }
    } else {
        filter
    };
    let body = get_body(idx, id, doc.as_deref(), &filter, &stored);
    let found = doc.is_some();
    if source_only {
        return match body.get("_source") {
            Some(s) if found => Ok(Reply::ok(s.clone())),
            _ => Err(EsError::new(
                404,
                "resource_not_found_exception",
                format!("Document not found [{}]/[{id}]", idx.name),
            )),
        };
    }
    Ok(Reply::json(if found { 200 } else { 404 }, &body))
}

/// One `_mget` entry: index, id, `_source` override, stored fields.
type MgetSpec = (Option<String>, String, Option<Value>, Vec<String>);

pub fn mget(sh: &Shared, req: &Req, index: Option<&str>) -> Result<Reply, EsError> {
    let body = req.json()?.unwrap_or_else(|| json!({}));
    let default_filter = SourceFilter::from_params(
        req.param("_source"),
        req.param("_source_includes"),
        req.param("_source_excludes"),
    );
    let default_stored = list_param(req.param("stored_fields"));
    let mut specs: Vec<MgetSpec> = Vec::new();
    if let Some(Value::Array(docs)) = body.get("docs") {
        for d in docs {
            let id = d.get("_id").and_then(as_string).unwrap_or_default();
            let idx = d.get("_index").and_then(as_string).or_else(|| index.map(String::from));
            let stored = match d.get("stored_fields") {
                Some(Value::Array(a)) => a.iter().filter_map(as_string).collect(),
                Some(Value::String(s)) => list_param(Some(s)),
                _ => default_stored.clone(),
            };
            specs.push((idx, id, d.get("_source").cloned(), stored));
        }
    } else if let Some(Value::Array(ids)) = body.get("ids") {
        for id in ids {
            specs.push((
                index.map(String::from),
                as_string(id).unwrap_or_default(),
                None,
                default_stored.clone(),
            ));
        }
    }
    if specs.is_empty() {
        return Err(EsError::validation(&["no documents to get".into()]));
    }
    let realtime = req.flag_or("realtime", true)?;
    let mut c = lock(sh);
    if req.flag("refresh")? {
        let names: BTreeSet<String> = specs.iter().filter_map(|s| s.0.clone()).collect();
        for n in names {
            if let Ok(t) = read_index(&c, &n) {
                c.indices.get_mut(&t).expect("resolved").refresh();
            }
        }
    }
    let mut out = Vec::new();
    for (idx_name, id, source, stored) in specs {
        let Some(idx_name) = idx_name else {
            out.push(json!({"_index": null, "_id": id, "error": EsError::validation(&["index is missing".into()]).error_object()}));
            continue;
        };
        let target = match read_index(&c, &idx_name) {
            Ok(t) => t,
            Err(e) => {
                out.push(json!({"_index": idx_name, "_id": id, "error": e.error_object()}));
                continue;
            }
        };
        let idx = &c.indices[&target];
        let filter = match &source {
            Some(v) => SourceFilter::from_value(v)?,
            None => default_filter.clone().unwrap_or_else(|| {
                if stored.is_empty() {
                    SourceFilter::all()
                } else {
                    SourceFilter {
                        fetch: false,
                        ..SourceFilter::all()
                    }
                }
            }),
        };
        let doc = if realtime {
            idx.get_live(&id).cloned()
        } else {
            idx.get_searchable(&id)
        };
        out.push(get_body(idx, &id, doc.as_deref(), &filter, &stored));
    }
    Ok(Reply::ok(json!({"docs": out})))
}

/// Deep-merges `patch` into `target`; objects merge, everything else is replaced.
fn merge_into(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match (target.get_mut(k), v) {
            (Some(Value::Object(t)), Value::Object(p)) => merge_into(t, p),
            _ => {
                target.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Applies an update request body; returns the write result and the new source.
fn apply_update(
    idx: &mut Index,
    id: &str,
    body: &Value,
    check: &WriteCheck,
) -> Result<(WriteResult, Map<String, Value>), EsError> {
    if body.get("script").is_some() {
        return Err(EsError::bad_request(
            "scripted updates are not supported by the emulator",
        ));
    }
    let doc = body.get("doc").and_then(Value::as_object);
    let existing = idx.get_live(id).cloned();
    let shard = shard_for(idx, id);
    match existing {
        None => {
            let upsert = if body.get("doc_as_upsert").and_then(Value::as_bool).unwrap_or(false) {
                doc.cloned()
            } else {
                body.get("upsert").and_then(Value::as_object).cloned()
            };
            let Some(new_source) = upsert else {
                return Err(
                    EsError::new(404, "document_missing_exception", format!("[{id}]: document missing"))
                        .on_shard(&idx.name, &idx.uuid),
                );
            };
            let raw = serde_json::to_vec(&new_source).expect("serializing a Map cannot fail");
            let create = WriteCheck {
                create_only: false,
                ..check.clone()
            };
            let r = idx.index_doc(id, Bytes::from(raw), Some(&new_source), &create, shard)?;
            Ok((r, new_source))
        }
        Some(current) => {
            let mut source: Map<String, Value> = serde_json::from_slice(&current.source).unwrap_or_default();
            let before = source.clone();
            if let Some(d) = doc {
                merge_into(&mut source, d);
            } else if body.get("upsert").is_none() {
                return Err(EsError::validation(&["script or doc is missing".into()]));
            }
            if body.get("detect_noop").and_then(Value::as_bool).unwrap_or(true) && before == source {
                if let (Some(seq), Some(term)) = (check.if_seq_no, check.if_primary_term) {
                    if seq != current.seq_no || term != PRIMARY_TERM {
                        return Err(EsError::new(
                            409,
                            "version_conflict_engine_exception",
                            format!(
                                "[{id}]: version conflict, required seqNo [{seq}], primary term [{term}]. current document has seqNo [{}] and primary term [{PRIMARY_TERM}]",
                                current.seq_no
                            ),
                        )
                        .on_shard(&idx.name, &idx.uuid));
                    }
                }
                return Ok((
                    WriteResult {
                        version: current.version,
                        seq_no: current.seq_no,
                        result: "noop",
                        status: 200,
                        shard,
                    },
                    source,
                ));
            }
            let raw = serde_json::to_vec(&source).expect("serializing a Map cannot fail");
            let r = idx.index_doc(id, Bytes::from(raw), Some(&source), check, shard)?;
            Ok((r, source))
        }
    }
}

pub fn update_doc(sh: &Shared, req: &Req, index: &str, id: &str) -> Result<Reply, EsError> {
    let body = req
        .json()?
        .ok_or_else(|| EsError::validation(&["script or doc is missing".into()]))?;
    let check = write_check(|k| req.param(k).map(String::from), false)?;
    let refresh = refresh_policy(req.param("refresh"))?;
    let filter = match body.get("_source") {
        Some(v) => Some(SourceFilter::from_value(v)?),
        None => SourceFilter::from_params(
            req.param("_source"),
            req.param("_source_includes"),
            req.param("_source_excludes"),
        ),
    };
    let mut c = lock(sh);
    let target = write_target(&mut c, index, req.flag("require_alias")?, true)?;
    let idx = c.indices.get_mut(&target).expect("resolved");
    let (r, source) = apply_update(idx, id, &body, &check)?;
    if refresh != Refresh::No {
        idx.refresh_shard(r.shard);
    }
    let mut out = write_body(idx, id, &r, refresh == Refresh::Force);
    if let Some(f) = filter.filter(|f| f.fetch) {
        out.as_object_mut().expect("object").insert(
            "get".into(),
            json!({"_seq_no": r.seq_no, "_primary_term": PRIMARY_TERM, "found": true, "_source": f.apply(&source)}),
        );
    }
    Ok(Reply::json(r.status, &out))
}

/// A successful bulk item: concrete index, id, result, optional `get`, replica count.
type BulkOk = (String, String, WriteResult, Option<Value>, u32);

struct BulkItem {
    op: &'static str,
    meta: Map<String, Value>,
    source: Option<(usize, usize)>,
}

const META_KEYS: &[&str] = &[
    "_index",
    "_id",
    "routing",
    "if_seq_no",
    "if_primary_term",
    "version",
    "version_type",
    "require_alias",
    "op_type",
    "retry_on_conflict",
    "_source",
    "pipeline",
    "dynamic_templates",
    "require_data_stream",
    "list_executed_pipelines",
];

fn malformed(line: usize, what: String) -> EsError {
    EsError::bad_request(format!("Malformed action/metadata line [{line}], {what}"))
}

fn parse_bulk(body: &[u8]) -> Result<Vec<BulkItem>, EsError> {
    if !body.is_empty() && body.last() != Some(&b'\n') {
        return Err(EsError::bad_request(
            "The bulk request must be terminated by a newline [\\n]",
        ));
    }
    let mut lines: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            let mut end = i;
            if end > start && body[end - 1] == b'\r' {
                end -= 1;
            }
            lines.push((start, end));
            start = i + 1;
        }
    }
    let mut items = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (s, e) = lines[i];
        let line_no = i + 1;
        i += 1;
        let text = &body[s..e];
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let action: Value = serde_json::from_slice(text)
            .map_err(|err| malformed(line_no, format!("expected START_OBJECT but found [{err}]")))?;
        let Some(obj) = action.as_object() else {
            return Err(malformed(
                line_no,
                "expected START_OBJECT but found [VALUE_STRING]".into(),
            ));
        };
        let Some((op, meta)) = obj.iter().next() else {
            return Err(malformed(line_no, "expected FIELD_NAME but found [END_OBJECT]".into()));
        };
        let op: &'static str = match op.as_str() {
            "index" => "index",
            "create" => "create",
            "update" => "update",
            "delete" => "delete",
            other => {
                return Err(malformed(
                    line_no,
                    format!("expected field [create], [delete], [index] or [update] but found [{other}]"),
                ))
            }
        };
        let Some(meta) = meta.as_object() else {
            return Err(malformed(
                line_no,
                "expected START_OBJECT but found [VALUE_STRING]".into(),
            ));
        };
        for k in meta.keys() {
            if !META_KEYS.contains(&k.as_str()) {
                return Err(EsError::bad_request(format!(
                    "Action/metadata line [{line_no}] contains an unknown parameter [{k}]"
                )));
            }
        }
        let source = if op == "delete" {
            None
        } else {
            if i >= lines.len() {
                return Err(EsError::validation(&["no requests added".into()]));
            }
            let src = lines[i];
            i += 1;
            Some(src)
        };
        items.push(BulkItem {
            op,
            meta: meta.clone(),
            source,
        });
    }
    Ok(items)
}

fn item_error(op: &str, index: &str, id: Option<&str>, e: &EsError) -> Value {
    let mut m = Map::new();
    m.insert("_index".into(), json!(index));
    m.insert("_id".into(), id.map(Value::from).unwrap_or(Value::Null));
    m.insert("status".into(), json!(e.status));
    m.insert("error".into(), e.error_object());
    obj(vec![(op, Value::Object(m))])
}

pub fn bulk(sh: &Shared, req: &Req, path_index: Option<&str>, faults: &RequestFaults) -> Result<Reply, EsError> {
    let started = std::time::Instant::now();
    let refresh = refresh_policy(req.param("refresh"))?;
    let items = parse_bulk(&req.body)?;
    if items.is_empty() {
        return Err(EsError::validation(&["no requests added".into()]));
    }
    let rejected: Vec<bool> = if faults.item_reject > 0.0 {
        let mut f = sh.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        items.iter().map(|_| f.roll(faults.item_reject)).collect()
    } else {
        vec![false; items.len()]
    };
    let default_require_alias = req.flag("require_alias")?;
    let default_filter = SourceFilter::from_params(
        req.param("_source"),
        req.param("_source_includes"),
        req.param("_source_excludes"),
    );
    let mut c = lock(sh);
    let mut touched: BTreeSet<(String, u32)> = BTreeSet::new();
    let mut out: Vec<u8> = Vec::with_capacity(items.len() * 160);
    let mut errors = false;
    for (n, item) in items.iter().enumerate() {
        let meta = &item.meta;
        let mut op = item.op;
        if op == "index" && meta.get("op_type").and_then(Value::as_str) == Some("create") {
            op = "create";
        }
        let index_name = meta
            .get("_index")
            .and_then(as_string)
            .or_else(|| path_index.map(String::from));
        let id = meta.get("_id").and_then(as_string);
        let early = match &index_name {
            None => Some(item_error(
                op,
                "",
                id.as_deref(),
                &EsError::validation(&["index is missing".into()]),
            )),
            Some(name) if rejected[n] => Some(item_error(op, name, id.as_deref(), &EsError::rejected("write"))),
            _ => None,
        };
        if let Some(item) = early {
            errors = true;
            if n > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &item).expect("vec");
            continue;
        }
        let index_name = index_name.expect("checked above");
        let result = (|| -> Result<BulkOk, EsError> {
            let get = |k: &str| meta.get(k).and_then(as_string);
            let check = write_check(get, op == "create")?;
            let require_alias = meta
                .get("require_alias")
                .and_then(super::store::as_bool)
                .unwrap_or(default_require_alias);
            let target = write_target(&mut c, &index_name, require_alias, op != "delete")?;
            let id = match (&id, op) {
                (Some(id), _) => {
                    validate_id(id)?;
                    id.clone()
                }
                (None, "index" | "create") => c.new_id(20),
                (None, _) => return Err(EsError::validation(&["id is missing".into()])),
            };
            let idx = c.indices.get_mut(&target).expect("resolved");
            let key = (target.clone(), shard_for(idx, &id));
            if !touched.contains(&key) {
                touched.insert(key);
            }
            let raw = item.source.map(|(s, e)| &req.body[s..e]).unwrap_or(&[]);
            let (r, get) = match op {
                "delete" => {
                    let shard = shard_for(idx, &id);
                    (idx.delete_doc(&id, &check, shard)?, None)
                }
                "update" => {
                    let body: Value = serde_json::from_slice(raw)
                        .map_err(|e| EsError::parsing(format!("failed to parse update request: {e}")))?;
                    let filter = match body.get("_source").or_else(|| meta.get("_source")) {
                        Some(v) => Some(SourceFilter::from_value(v)?),
                        None => default_filter.clone(),
                    };
                    let (r, source) = apply_update(idx, &id, &body, &check)?;
                    let get = filter.filter(|f| f.fetch).map(|f| {
                        json!({"_seq_no": r.seq_no, "_primary_term": PRIMARY_TERM, "found": true, "_source": f.apply(&source)})
                    });
                    (r, get)
                }
                _ => {
                    let shard = shard_for(idx, &id);
                    (
                        idx.index_doc(&id, Bytes::copy_from_slice(trim_body(raw)), None, &check, shard)?,
                        None,
                    )
                }
            };
            let replicas = idx.num_replicas();
            Ok((target, id, r, get, replicas))
        })();
        if n > 0 {
            out.push(b',');
        }
        match result {
            Ok((target, id, r, get, replicas)) => write_item(
                &mut out,
                op,
                &target,
                &id,
                &r,
                replicas,
                refresh == Refresh::Force,
                get.as_ref(),
            ),
            Err(e) => {
                errors = true;
                serde_json::to_writer(&mut out, &item_error(op, &index_name, id.as_deref(), &e)).expect("vec");
            }
        }
    }
    if refresh != Refresh::No {
        for (t, shard) in &touched {
            if let Some(idx) = c.indices.get_mut(t) {
                idx.refresh_shard(*shard);
            }
        }
    }
    drop(c);
    let took = started.elapsed().as_millis() as u64;
    let mut body = format!("{{\"errors\":{errors},\"took\":{took},\"items\":[").into_bytes();
    body.extend_from_slice(&out);
    body.extend_from_slice(b"]}");
    Ok(Reply::raw(200, body))
}

/// Writes one successful bulk item without building a JSON tree (bulk responses are large).
#[allow(clippy::too_many_arguments)]
fn write_item(
    out: &mut Vec<u8>,
    op: &str,
    index: &str,
    id: &str,
    r: &WriteResult,
    replicas: u32,
    forced: bool,
    get: Option<&Value>,
) {
    use std::io::Write;
    let _ = write!(out, "{{\"{op}\":{{\"_index\":");
    serde_json::to_writer(&mut *out, index).expect("vec");
    out.extend_from_slice(b",\"_id\":");
    serde_json::to_writer(&mut *out, id).expect("vec");
    let _ = write!(out, ",\"_version\":{},\"result\":\"{}\",", r.version, r.result);
    if forced {
        out.extend_from_slice(b"\"forced_refresh\":true,");
    }
    if r.result == "noop" {
        out.extend_from_slice(b"\"_shards\":{\"total\":0,\"successful\":0,\"failed\":0},");
    } else {
        let _ = write!(
            out,
            "\"_shards\":{{\"total\":{},\"successful\":1,\"failed\":0}},",
            1 + replicas
        );
    }
    let _ = write!(
        out,
        "\"_seq_no\":{},\"_primary_term\":{PRIMARY_TERM},\"status\":{}",
        r.seq_no, r.status
    );
    if let Some(g) = get {
        out.extend_from_slice(b",\"get\":");
        serde_json::to_writer(&mut *out, g).expect("vec");
    }
    out.extend_from_slice(b"}}");
}
