//! Index expressions (names, wildcards, aliases, date math) and the index administration APIs:
//! create/delete/get/exists, mappings, settings, refresh, open/close, aliases, `_cat/indices`,
//! `_cluster/health`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use super::dates::{now_nanos, resolve_index_date_math};
use super::error::{obj, EsError};
use super::http::{Reply, Req};
use super::mapping::Mapping;
use super::store::{as_bool, as_string, default_routing_shards, parse_time_value, AliasMeta, Index};
use super::Cluster;
use super::Shared;

/// `*` glob match.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            if !rest.starts_with(part) {
                return false;
            }
            rest = &rest[part.len()..];
        } else if i == parts.len() - 1 {
            return rest.len() >= part.len() && rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    rest.is_empty()
}

#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub ignore_unavailable: bool,
    pub allow_no_indices: bool,
    pub open: bool,
    pub closed: bool,
    /// Concrete names that are closed indices raise `index_closed_exception` (search, refresh).
    pub forbid_closed: bool,
    pub aliases: bool,
}

impl Opts {
    pub fn from_req(req: &Req, default_expand: &str, forbid_closed: bool) -> Result<Opts, EsError> {
        let expand = req.param("expand_wildcards").unwrap_or(default_expand);
        let mut open = false;
        let mut closed = false;
        for w in expand.split(',') {
            match w.trim() {
                "open" => open = true,
                "closed" => closed = true,
                "all" => {
                    open = true;
                    closed = true;
                }
                "none" | "hidden" | "" => {}
                other => {
                    return Err(EsError::bad_request(format!(
                        "No enum constant org.elasticsearch.action.support.IndicesOptions.WildcardStates.{}",
                        other.to_uppercase()
                    )))
                }
            }
        }
        Ok(Opts {
            ignore_unavailable: req.flag("ignore_unavailable")?,
            allow_no_indices: req.flag_or("allow_no_indices", true)?,
            open,
            closed,
            forbid_closed,
            aliases: true,
        })
    }
}

impl Cluster {
    /// Indices pointed to by alias `name`.
    pub fn alias_members(&self, name: &str) -> Vec<String> {
        self.indices
            .values()
            .filter(|i| i.aliases.contains_key(name))
            .map(|i| i.name.clone())
            .collect()
    }

    pub fn is_alias(&self, name: &str) -> bool {
        self.indices.values().any(|i| i.aliases.contains_key(name))
    }

    fn all_alias_names(&self) -> BTreeSet<String> {
        self.indices.values().flat_map(|i| i.aliases.keys().cloned()).collect()
    }

    fn state_ok(&self, name: &str, opts: &Opts) -> bool {
        self.indices
            .get(name)
            .map(|i| if i.closed { opts.closed } else { opts.open })
            .unwrap_or(false)
    }

    /// Resolves an index expression to concrete index names, in name order.
    pub fn resolve(&self, expr: Option<&str>, opts: Opts) -> Result<Vec<String>, EsError> {
        let expr = expr.unwrap_or("").trim();
        let mut out: BTreeSet<String> = BTreeSet::new();
        let parts: Vec<&str> = if expr.is_empty() {
            vec![]
        } else {
            expr.split(',').map(str::trim).collect()
        };
        let everything = parts.is_empty() || parts == ["_all"] || parts == ["*"];
        if everything {
            for i in self.indices.values() {
                if (if i.closed { opts.closed } else { opts.open }) && !i.name.starts_with('.') {
                    out.insert(i.name.clone());
                }
            }
        } else {
            for (n, raw) in parts.iter().enumerate() {
                if raw.is_empty() {
                    continue;
                }
                if let Some(excl) = raw.strip_prefix('-').filter(|_| n > 0) {
                    out.retain(|name| !wildcard_match(excl, name));
                    continue;
                }
                let name = resolve_index_date_math(raw, now_nanos());
                if name == "_all" || name.contains('*') {
                    let before = out.len();
                    for i in self.indices.values() {
                        if wildcard_match(&name, &i.name)
                            && self.state_ok(&i.name, &opts)
                            && (!i.name.starts_with('.') || name.starts_with('.'))
                        {
                            if i.closed && opts.forbid_closed {
                                if opts.ignore_unavailable {
                                    continue;
                                }
                                return Err(EsError::index_closed(&i.name, &i.uuid));
                            }
                            out.insert(i.name.clone());
                        }
                    }
                    let matched_indices = out.len() > before;
                    if opts.aliases {
                        for alias in self.all_alias_names() {
                            if wildcard_match(&name, &alias) {
                                for m in self.alias_members(&alias) {
                                    if self.state_ok(&m, &opts) {
                                        out.insert(m);
                                    }
                                }
                            }
                        }
                    }
                    if !matched_indices && out.len() == before && !opts.allow_no_indices {
                        return Err(EsError::index_not_found(&name));
                    }
                    continue;
                }
                if let Some(idx) = self.indices.get(&name) {
                    if idx.closed && opts.forbid_closed {
                        if opts.ignore_unavailable {
                            continue;
                        }
                        return Err(EsError::index_closed(&idx.name, &idx.uuid));
                    }
                    out.insert(name);
                    continue;
                }
                if opts.aliases && self.is_alias(&name) {
                    for m in self.alias_members(&name) {
                        let closed = self.indices[&m].closed;
                        if closed && opts.forbid_closed {
                            if opts.ignore_unavailable {
                                continue;
                            }
                            return Err(EsError::index_closed(&m, &self.indices[&m].uuid));
                        }
                        out.insert(m);
                    }
                    continue;
                }
                if !opts.ignore_unavailable {
                    return Err(EsError::index_not_found(&name));
                }
            }
        }
        if out.is_empty() && !opts.allow_no_indices {
            let shown = if expr.is_empty() { "_all" } else { expr };
            return Err(EsError::index_not_found(shown));
        }
        Ok(out.into_iter().collect())
    }

    /// The concrete index a write to `name` goes to (an index, or an alias's write index).
    pub fn write_index(&self, name: &str) -> Result<Option<String>, EsError> {
        if self.indices.contains_key(name) {
            return Ok(Some(name.to_string()));
        }
        let members: Vec<&Index> = self.indices.values().filter(|i| i.aliases.contains_key(name)).collect();
        if members.is_empty() {
            return Ok(None);
        }
        if let Some(w) = members.iter().find(|i| i.aliases[name].is_write_index == Some(true)) {
            return Ok(Some(w.name.clone()));
        }
        if members.len() == 1 && members[0].aliases[name].is_write_index != Some(false) {
            return Ok(Some(members[0].name.clone()));
        }
        Err(EsError::bad_request(format!(
            "no write index is defined for alias [{name}]. The write index may be explicitly disabled using is_write_index=false or the alias points to multiple indices without one being designated as a write index"
        )))
    }

    /// Creates an index with the given body; used by the create API and by auto-creation on write.
    pub fn create_index(&mut self, name: &str, body: Option<&Value>) -> Result<(), EsError> {
        validate_index_name(name)?;
        if let Some(existing) = self.indices.get(name) {
            return Err(EsError::new(
                400,
                "resource_already_exists_exception",
                format!("index [{}/{}] already exists", name, existing.uuid),
            )
            .with("index_uuid", existing.uuid.clone())
            .with("index", name));
        }
        if self.is_alias(name) {
            return Err(EsError::new(
                400,
                "invalid_index_name_exception",
                format!("Invalid index name [{name}], already exists as alias"),
            )
            .with("index_uuid", "_na_")
            .with("index", name));
        }
        let empty = json!({});
        let body = body.unwrap_or(&empty);
        if let Some(obj) = body.as_object() {
            for k in obj.keys() {
                if !matches!(k.as_str(), "settings" | "mappings" | "aliases") {
                    return Err(EsError::parsing(format!("unknown key [{k}] for create index")));
                }
            }
        }
        let mut settings = BTreeMap::new();
        if let Some(s) = body.get("settings") {
            flatten_settings(s, "", &mut settings);
        }
        let mut settings: BTreeMap<String, String> = settings
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (normalize_key(&k), v)))
            .collect();
        if settings.get("index.soft_deletes.enabled").map(String::as_str) == Some("false") {
            return Err(EsError::bad_request(
                "Creating indices with soft-deletes disabled is no longer supported. Please do not specify a value for setting [index.soft_deletes.enabled].",
            ));
        }
        for (k, v) in &settings {
            validate_setting(k, v)?;
        }
        let uuid = self.new_id(22);
        settings
            .entry("index.number_of_shards".into())
            .or_insert_with(|| "1".into());
        settings
            .entry("index.number_of_replicas".into())
            .or_insert_with(|| "1".into());
        let mapping = match body.get("mappings") {
            Some(m) => Mapping::from_json(m)?,
            None => Mapping::default(),
        };
        let mut aliases = BTreeMap::new();
        if let Some(Value::Object(a)) = body.get("aliases") {
            for (alias, meta) in a {
                let alias = resolve_index_date_math(alias, now_nanos());
                if alias == name || self.indices.contains_key(&alias) {
                    return Err(EsError::new(
                        400,
                        "invalid_alias_name_exception",
                        format!("Invalid alias name [{alias}]: an index or data stream exists with the same name as the alias"),
                    ));
                }
                aliases.insert(alias, AliasMeta::from_json(meta));
            }
        }
        let mut index = Index::new(name.to_string(), uuid, settings, mapping);
        index.aliases = aliases;
        self.indices.insert(name.to_string(), index);
        Ok(())
    }
}

fn validate_index_name(name: &str) -> Result<(), EsError> {
    let bad = |why: &str| {
        Err(EsError::new(
            400,
            "invalid_index_name_exception",
            format!("Invalid index name [{name}], {why}"),
        )
        .with("index_uuid", "_na_")
        .with("index", name))
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name != name.to_lowercase() {
        return bad("must be lowercase");
    }
    if name.starts_with(['_', '-', '+']) {
        return bad("must not start with '_', '-', or '+'");
    }
    if name == "." || name == ".." {
        return bad("must not be '.' or '..'");
    }
    if name.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':']) {
        return bad("must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?]");
    }
    if name.len() > 255 {
        return bad("index name is too long, (256 > 255)");
    }
    Ok(())
}

/// Flattens `{"index":{"refresh_interval":"1s"}}` to `index.refresh_interval` → "1s"; `None` = reset.
fn flatten_settings(v: &Value, prefix: &str, out: &mut BTreeMap<String, Option<String>>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_settings(val, &key, out);
            }
        }
        Value::Null => {
            out.insert(prefix.to_string(), None);
        }
        Value::Array(items) => {
            let joined: Vec<String> = items.iter().filter_map(as_string).collect();
            out.insert(prefix.to_string(), Some(joined.join(",")));
        }
        other => {
            out.insert(prefix.to_string(), as_string(other));
        }
    }
}

fn normalize_key(k: &str) -> String {
    let k = k.strip_prefix("settings.").unwrap_or(k);
    if k.starts_with("index.") {
        k.to_string()
    } else {
        format!("index.{k}")
    }
}

const KNOWN_SETTINGS: &[&str] = &[
    "number_of_shards",
    "number_of_replicas",
    "refresh_interval",
    "max_result_window",
    "max_terms_count",
    "max_slices_per_scroll",
    "number_of_routing_shards",
    "routing_partition_size",
    "codec",
    "mode",
    "hidden",
    "auto_expand_replicas",
    "gc_deletes",
    "priority",
    "default_pipeline",
    "final_pipeline",
    "max_inner_result_window",
    "max_docvalue_fields_search",
    "max_script_fields",
    "max_ngram_diff",
    "max_shingle_diff",
    "max_refresh_listeners",
    "max_rescore_window",
    "max_regex_length",
    "load_fixed_bitset_filters_eagerly",
    "uuid",
    "creation_date",
    "provided_name",
    "format",
    "verified_before_close",
    "look_ahead_time",
    "look_back_time",
];
const KNOWN_PREFIXES: &[&str] = &[
    "routing.",
    "translog.",
    "query_string.",
    "soft_deletes.",
    "blocks.",
    "analysis.",
    "mapping.",
    "sort.",
    "search.",
    "write.",
    "lifecycle.",
    "requests.",
    "shard.",
    "similarity.",
    "store.",
    "merge.",
    "unassigned.",
    "indexing.",
    "highlight.",
    "version.",
    "queries.",
    "time_series.",
    "routing_path",
    "allocation.",
    "plugin.",
    "frozen.",
    "fast_refresh",
];
/// Settings that can only change on a closed index.
const STATIC_SETTINGS: &[&str] = &[
    "codec",
    "number_of_routing_shards",
    "mode",
    "routing_partition_size",
    "soft_deletes.enabled",
    "store.type",
    "sort.field",
];
const FINAL_SETTINGS: &[&str] = &[
    "number_of_shards",
    "uuid",
    "creation_date",
    "provided_name",
    "version.created",
];

fn validate_setting(key: &str, value: &str) -> Result<(), EsError> {
    let short = key.strip_prefix("index.").unwrap_or(key);
    if !(KNOWN_SETTINGS.contains(&short) || KNOWN_PREFIXES.iter().any(|p| short.starts_with(p))) {
        return Err(EsError::bad_request(format!(
            "unknown setting [{key}] please check that any required plugins are installed, or check the breaking changes documentation for removed settings"
        )));
    }
    match short {
        "refresh_interval" => {
            parse_time_value(value, key)?;
        }
        "number_of_shards"
        | "number_of_replicas"
        | "max_result_window"
        | "max_terms_count"
        | "max_slices_per_scroll"
        | "number_of_routing_shards" => {
            let n: i64 = value
                .parse()
                .map_err(|_| EsError::bad_request(format!("Failed to parse value [{value}] for setting [{key}]")))?;
            let min = if short == "number_of_replicas" { 0 } else { 1 };
            if n < min {
                return Err(EsError::bad_request(format!(
                    "Failed to parse value [{value}] for setting [{key}] must be >= {min}"
                )));
            }
        }
        _ => {}
    }
    Ok(())
}

fn settings_json(index: &Index, flat: bool, name_filter: Option<&str>) -> Value {
    let mut all: BTreeMap<String, String> = index.settings.clone();
    all.insert("index.uuid".into(), index.uuid.clone());
    all.insert("index.provided_name".into(), index.name.clone());
    all.insert("index.creation_date".into(), index.created_millis.to_string());
    all.insert("index.version.created".into(), "8536000".into());
    all.entry("index.routing.allocation.include._tier_preference".into())
        .or_insert_with(|| "data_content".into());
    if let Some(filter) = name_filter.filter(|f| *f != "_all") {
        let pats: Vec<&str> = filter.split(',').collect();
        all.retain(|k, _| pats.iter().any(|p| wildcard_match(p, k)));
    }
    if flat {
        return Value::Object(all.into_iter().map(|(k, v)| (k, Value::String(v))).collect());
    }
    let mut root = Map::new();
    for (k, v) in all {
        let parts: Vec<&str> = k.split('.').collect();
        let mut cur = &mut root;
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                cur.insert(p.to_string(), Value::String(v.clone()));
            } else {
                let e = cur.entry(p.to_string()).or_insert_with(|| json!({}));
                if !e.is_object() {
                    *e = json!({});
                }
                cur = e.as_object_mut().expect("object");
            }
        }
    }
    Value::Object(root)
}

fn aliases_json(index: &Index, names: Option<&[String]>) -> Value {
    let mut m = Map::new();
    for (a, meta) in &index.aliases {
        if names.is_none_or(|ns| ns.iter().any(|n| n == "_all" || wildcard_match(n, a))) {
            m.insert(a.clone(), meta.to_json());
        }
    }
    Value::Object(m)
}

fn lock(sh: &Shared) -> std::sync::MutexGuard<'_, Cluster> {
    sh.cluster.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn create_index(sh: &Shared, req: &Req, name: &str) -> Result<Reply, EsError> {
    let body = req.json()?;
    let name = resolve_index_date_math(name, now_nanos());
    lock(sh).create_index(&name, body.as_ref())?;
    Ok(Reply::ok(
        json!({"acknowledged": true, "shards_acknowledged": true, "index": name}),
    ))
}

pub fn delete_index(sh: &Shared, req: &Req, expr: &str) -> Result<Reply, EsError> {
    let mut c = lock(sh);
    let mut opts = Opts::from_req(req, "open,closed", false)?;
    opts.aliases = false;
    let ignore = opts.ignore_unavailable;
    let mut names = BTreeSet::new();
    for part in expr.split(',').map(str::trim) {
        let part = resolve_index_date_math(part, now_nanos());
        if part.contains('*') || part == "_all" {
            names.extend(c.resolve(Some(&part), opts)?);
            continue;
        }
        if c.indices.contains_key(&part) {
            names.insert(part);
        } else if c.is_alias(&part) {
            if !ignore {
                return Err(EsError::bad_request(format!(
                    "The provided expression [{part}] matches an alias, specify the corresponding concrete indices instead."
                )));
            }
        } else if !ignore {
            return Err(EsError::index_not_found(&part));
        }
    }
    if names.is_empty() && !opts.allow_no_indices {
        return Err(EsError::index_not_found(expr));
    }
    for n in names {
        c.indices.remove(&n);
    }
    Ok(Reply::ok(json!({"acknowledged": true})))
}

pub fn get_index(sh: &Shared, req: &Req, expr: &str) -> Result<Reply, EsError> {
    let c = lock(sh);
    let opts = Opts::from_req(req, "open", false)?;
    let names = c.resolve(Some(expr), opts)?;
    let flat = req.flag("flat_settings")?;
    let mut out = Map::new();
    for n in names {
        let i = &c.indices[&n];
        out.insert(
            n.clone(),
            json!({"aliases": aliases_json(i, None), "mappings": i.mapping.to_json(), "settings": settings_json(i, flat, None)}),
        );
    }
    Ok(Reply::ok(Value::Object(out)))
}

pub fn exists_index(sh: &Shared, req: &Req, expr: &str) -> Result<Reply, EsError> {
    let c = lock(sh);
    let opts = Opts::from_req(req, "open", false)?;
    match c.resolve(
        Some(expr),
        Opts {
            allow_no_indices: opts.allow_no_indices && expr.contains('*'),
            ..opts
        },
    ) {
        Ok(_) => Ok(Reply::empty(200)),
        Err(_) => Ok(Reply::empty(404)),
    }
}

pub fn get_mapping(sh: &Shared, req: &Req, expr: Option<&str>) -> Result<Reply, EsError> {
    let c = lock(sh);
    let names = c.resolve(expr, Opts::from_req(req, "open", false)?)?;
    let mut out = Map::new();
    for n in names {
        out.insert(n.clone(), json!({"mappings": c.indices[&n].mapping.to_json()}));
    }
    Ok(Reply::ok(Value::Object(out)))
}

pub fn put_mapping(sh: &Shared, req: &Req, expr: &str) -> Result<Reply, EsError> {
    let body = req
        .json()?
        .ok_or_else(|| EsError::validation(&["mapping source is required".into()]))?;
    let mut c = lock(sh);
    let names = c.resolve(Some(expr), Opts::from_req(req, "open", false)?)?;
    for n in &names {
        let idx = c.indices.get_mut(n).expect("resolved");
        let mut m = (*idx.mapping).clone();
        m.merge(&body)?;
        idx.mapping = std::sync::Arc::new(m);
    }
    Ok(Reply::ok(json!({"acknowledged": true})))
}

pub fn get_settings(sh: &Shared, req: &Req, expr: Option<&str>, name: Option<&str>) -> Result<Reply, EsError> {
    let c = lock(sh);
    let names = c.resolve(expr, Opts::from_req(req, "all", false)?)?;
    let flat = req.flag("flat_settings")?;
    let mut out = Map::new();
    for n in names {
        let s = settings_json(&c.indices[&n], flat, name);
        if name.is_some() && s.as_object().is_some_and(Map::is_empty) {
            continue;
        }
        out.insert(n.clone(), json!({"settings": s}));
    }
    Ok(Reply::ok(Value::Object(out)))
}

pub fn put_settings(sh: &Shared, req: &Req, expr: Option<&str>) -> Result<Reply, EsError> {
    let body = req
        .json()?
        .ok_or_else(|| EsError::validation(&["no settings to update".into()]))?;
    let body = body.get("settings").cloned().unwrap_or(body);
    let mut flat = BTreeMap::new();
    flatten_settings(&body, "", &mut flat);
    let flat: BTreeMap<String, Option<String>> = flat.into_iter().map(|(k, v)| (normalize_key(&k), v)).collect();
    for (k, v) in &flat {
        if let Some(v) = v {
            validate_setting(k, v)?;
        } else {
            validate_setting(k, "1")?;
        }
    }
    let preserve = req.flag("preserve_existing")?;
    let mut c = lock(sh);
    let names = c.resolve(expr, Opts::from_req(req, "open", false)?)?;
    for n in &names {
        let idx = &c.indices[n];
        for k in flat.keys() {
            let short = k.strip_prefix("index.").unwrap_or(k);
            if FINAL_SETTINGS.contains(&short) {
                return Err(EsError::bad_request(format!("final {n} setting [{k}], not updateable")));
            }
            if STATIC_SETTINGS.contains(&short) && !idx.closed && !req.flag("reopen")? {
                return Err(EsError::bad_request(format!(
                    "Can't update non dynamic settings [[{k}]] for open indices [[{n}/{}]]",
                    idx.uuid
                )));
            }
        }
    }
    for n in &names {
        let idx = c.indices.get_mut(n).expect("resolved");
        for (k, v) in &flat {
            match v {
                Some(v) => {
                    if preserve && idx.settings.contains_key(k) {
                        continue;
                    }
                    idx.settings.insert(k.clone(), v.clone());
                }
                None => {
                    if k != "index.number_of_replicas" {
                        idx.settings.remove(k);
                    } else {
                        idx.settings.insert(k.clone(), "1".into());
                    }
                }
            }
        }
        // A changed refresh interval applies to writes already pending.
        idx.maybe_scheduled_refresh();
    }
    Ok(Reply::ok(json!({"acknowledged": true})))
}

fn shards_summary(total: u64, successful: u64) -> Value {
    json!({"total": total, "successful": successful, "failed": 0})
}

pub fn refresh(sh: &Shared, req: &Req, expr: Option<&str>) -> Result<Reply, EsError> {
    let mut c = lock(sh);
    let names = c.resolve(expr, Opts::from_req(req, "open", true)?)?;
    let (mut total, mut ok) = (0u64, 0u64);
    for n in names {
        let idx = c.indices.get_mut(&n).expect("resolved");
        idx.refresh();
        total += (idx.num_shards() * (1 + idx.num_replicas())) as u64;
        ok += idx.num_shards() as u64;
    }
    Ok(Reply::ok(json!({"_shards": shards_summary(total, ok)})))
}

pub fn open_close(sh: &Shared, req: &Req, expr: &str, close: bool) -> Result<Reply, EsError> {
    let mut c = lock(sh);
    let names = c.resolve(
        Some(expr),
        Opts::from_req(req, if close { "open" } else { "closed" }, false)?,
    )?;
    let mut indices = Map::new();
    for n in &names {
        let idx = c.indices.get_mut(n).expect("resolved");
        idx.refresh();
        idx.closed = close;
        indices.insert(n.clone(), json!({"closed": true}));
    }
    if close {
        Ok(Reply::ok(
            json!({"acknowledged": true, "shards_acknowledged": true, "indices": indices}),
        ))
    } else {
        Ok(Reply::ok(json!({"acknowledged": true, "shards_acknowledged": true})))
    }
}

/// Shared by GET `_alias` variants: (index → matching aliases), plus the names that matched nothing.
fn alias_view(
    c: &Cluster,
    req: &Req,
    expr: Option<&str>,
    names: Option<&str>,
) -> Result<(Map<String, Value>, Vec<String>), EsError> {
    let opts = Opts::from_req(req, "all", false)?;
    let indices = c.resolve(
        expr,
        Opts {
            aliases: expr.is_some(),
            ..opts
        },
    )?;
    let requested: Option<Vec<String>> = names.map(|n| {
        n.split(',')
            .map(|s| resolve_index_date_math(s.trim(), now_nanos()))
            .collect()
    });
    let mut out = Map::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for n in &indices {
        let idx = &c.indices[n];
        let aliases = aliases_json(idx, requested.as_deref());
        if let Value::Object(m) = &aliases {
            seen.extend(m.keys().cloned());
        }
        let wants_all = requested.is_none()
            || expr.is_some()
                && requested
                    .as_ref()
                    .is_some_and(|r| r.iter().any(|x| x == "_all" || x == "*"));
        if aliases.as_object().is_some_and(|m| !m.is_empty()) || (requested.is_none()) || (wants_all && expr.is_some())
        {
            out.insert(n.clone(), json!({"aliases": aliases}));
        }
    }
    let missing = requested
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r != "_all" && !r.contains('*') && !seen.contains(r))
        .collect();
    Ok((out, missing))
}

pub fn get_alias(sh: &Shared, req: &Req, expr: Option<&str>, names: Option<&str>) -> Result<Reply, EsError> {
    let c = lock(sh);
    let (mut out, mut missing) = alias_view(&c, req, expr, names)?;
    if missing.is_empty() {
        return Ok(Reply::ok(Value::Object(out)));
    }
    missing.sort();
    let msg = if missing.len() == 1 {
        format!("alias [{}] missing", missing[0])
    } else {
        format!("aliases [{}] missing", missing.join(","))
    };
    let mut body = Map::new();
    body.insert("error".into(), json!(msg));
    body.insert("status".into(), json!(404));
    body.append(&mut out);
    Ok(Reply::json(404, &Value::Object(body)))
}

pub fn exists_alias(sh: &Shared, req: &Req, expr: Option<&str>, names: &str) -> Result<Reply, EsError> {
    let c = lock(sh);
    let found = match alias_view(&c, req, expr, Some(names)) {
        Ok((out, missing)) => missing.is_empty() && !out.is_empty(),
        Err(_) => false,
    };
    Ok(Reply::empty(if found { 200 } else { 404 }))
}

pub fn put_alias(sh: &Shared, req: &Req, expr: &str, name: &str) -> Result<Reply, EsError> {
    let body = req.json()?.unwrap_or_else(|| json!({}));
    let mut action = body.as_object().cloned().unwrap_or_default();
    action.insert("index".into(), json!(expr));
    action.insert("alias".into(), json!(name));
    apply_alias_actions(sh, &[json!({"add": Value::Object(action)})])
}

pub fn delete_alias(sh: &Shared, _req: &Req, expr: &str, name: &str) -> Result<Reply, EsError> {
    apply_alias_actions(
        sh,
        &[json!({"remove": {"index": expr, "alias": name, "must_exist": true}})],
    )
}

pub fn update_aliases(sh: &Shared, req: &Req) -> Result<Reply, EsError> {
    let body = req
        .json()?
        .ok_or_else(|| EsError::validation(&["At least one action must be defined".into()]))?;
    let actions = body
        .get("actions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if actions.is_empty() {
        return Err(EsError::validation(&["At least one action must be defined".into()]));
    }
    apply_alias_actions(sh, &actions)
}

fn names_of(action: &Map<String, Value>, one: &str, many: &str) -> Vec<String> {
    let mut out = Vec::new();
    for key in [one, many] {
        match action.get(key) {
            Some(Value::String(s)) => out.extend(s.split(',').map(|x| resolve_index_date_math(x.trim(), now_nanos()))),
            Some(Value::Array(a)) => out.extend(
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|x| resolve_index_date_math(x, now_nanos())),
            ),
            _ => {}
        }
    }
    out
}

/// Applies alias actions atomically: all of them are checked against a copy, then committed.
fn apply_alias_actions(sh: &Shared, actions: &[Value]) -> Result<Reply, EsError> {
    let mut c = lock(sh);
    let mut aliases: HashMap<String, BTreeMap<String, AliasMeta>> =
        c.indices.iter().map(|(n, i)| (n.clone(), i.aliases.clone())).collect();
    let mut removed: BTreeSet<String> = BTreeSet::new();
    let all_opts = Opts {
        ignore_unavailable: false,
        allow_no_indices: false,
        open: true,
        closed: true,
        forbid_closed: false,
        aliases: false,
    };
    for action in actions {
        let Some((kind, body)) = action.as_object().and_then(|o| o.iter().next()) else {
            return Err(EsError::parsing("[aliases] failed to parse field [actions]"));
        };
        let body = body.as_object().cloned().unwrap_or_default();
        let index_exprs = names_of(&body, "index", "indices");
        if index_exprs.is_empty() {
            return Err(EsError::validation(&["One of [index] or [indices] is required".into()]));
        }
        let mut targets = Vec::new();
        for e in &index_exprs {
            targets.extend(c.resolve(Some(e), all_opts)?);
        }
        targets.retain(|t| !removed.contains(t));
        match kind.as_str() {
            "add" => {
                let names = names_of(&body, "alias", "aliases");
                if names.is_empty() {
                    return Err(EsError::validation(&["One of [alias] or [aliases] is required".into()]));
                }
                let meta = AliasMeta::from_json(&Value::Object(body.clone()));
                for t in &targets {
                    for a in &names {
                        aliases.get_mut(t).expect("resolved").insert(a.clone(), meta.clone());
                    }
                }
            }
            "remove" => {
                let names = names_of(&body, "alias", "aliases");
                let must_exist = body.get("must_exist").and_then(as_bool);
                let mut any = false;
                for t in &targets {
                    let m = aliases.get_mut(t).expect("resolved");
                    for a in &names {
                        let before = m.len();
                        m.retain(|k, _| !(a == "_all" || wildcard_match(a, k)));
                        any |= m.len() != before;
                    }
                }
                if !any && must_exist != Some(false) {
                    return Err(EsError::new(
                        404,
                        "aliases_not_found_exception",
                        format!("aliases [{}] missing", names.join(",")),
                    )
                    .with("resource.type", "aliases")
                    .with("resource.id", names.join(",")));
                }
            }
            "remove_index" => {
                for e in &index_exprs {
                    if !e.contains('*') && c.is_alias(e) && !c.indices.contains_key(e) {
                        return Err(EsError::bad_request(format!(
                            "The provided expression [{e}] matches an alias, specify the corresponding concrete indices instead."
                        )));
                    }
                }
                removed.extend(targets.iter().cloned());
            }
            other => return Err(EsError::parsing(format!("[alias_action] unknown field [{other}]"))),
        }
    }
    // Validate the end state: alias names must not collide with surviving indices; one write index each.
    let mut writers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (idx, m) in &aliases {
        if removed.contains(idx) {
            continue;
        }
        for (a, meta) in m {
            if c.indices.contains_key(a) && !removed.contains(a) {
                return Err(EsError::new(
                    400,
                    "invalid_alias_name_exception",
                    format!("Invalid alias name [{a}]: an index or data stream exists with the same name as the alias"),
                ));
            }
            if meta.is_write_index == Some(true) {
                writers.entry(a.clone()).or_default().push(idx.clone());
            }
        }
    }
    if let Some((a, idxs)) = writers.iter().find(|(_, v)| v.len() > 1) {
        return Err(EsError::new(
            400,
            "illegal_state_exception",
            format!("alias [{a}] has more than one write index [{}]", idxs.join(",")),
        ));
    }
    for r in &removed {
        c.indices.remove(r);
    }
    for (idx, m) in aliases {
        if let Some(i) = c.indices.get_mut(&idx) {
            i.aliases = m;
        }
    }
    Ok(Reply::ok(json!({"acknowledged": true, "errors": false})))
}

fn human_bytes(b: u64) -> String {
    let units = ["b", "kb", "mb", "gb", "tb"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}b")
    } else {
        let s = format!("{v:.1}");
        format!("{}{}", s.trim_end_matches(".0"), units[u])
    }
}

pub fn cat_indices(sh: &Shared, req: &Req, expr: Option<&str>) -> Result<Reply, EsError> {
    let mut c = lock(sh);
    let names = c.resolve(expr, Opts::from_req(req, "all", false)?)?;
    let bytes = req.param("bytes");
    let mut rows: Vec<Vec<(&'static str, String)>> = Vec::new();
    for n in names {
        let idx = c.indices.get_mut(&n).expect("resolved");
        idx.maybe_scheduled_refresh();
        let size: u64 = idx.live_docs().map(|d| d.source.len() as u64).sum();
        let size_text = if bytes == Some("b") {
            size.to_string()
        } else {
            human_bytes(size)
        };
        let health = if idx.num_replicas() > 0 { "yellow" } else { "green" };
        let closed = idx.closed;
        rows.push(vec![
            ("health", health.to_string()),
            ("status", if closed { "close" } else { "open" }.to_string()),
            ("index", idx.name.clone()),
            ("uuid", idx.uuid.clone()),
            ("pri", idx.num_shards().to_string()),
            ("rep", idx.num_replicas().to_string()),
            ("docs.count", idx.searchable.docs.len().to_string()),
            ("docs.deleted", idx.deleted_docs.to_string()),
            ("store.size", size_text.clone()),
            ("pri.store.size", size_text.clone()),
            ("dataset.size", size_text),
        ]);
    }
    let aliases: &[(&str, &str)] = &[
        ("h", "health"),
        ("s", "status"),
        ("i", "index"),
        ("idx", "index"),
        ("id", "uuid"),
        ("p", "pri"),
        ("shards.primary", "pri"),
        ("r", "rep"),
        ("shards.replica", "rep"),
        ("dc", "docs.count"),
        ("docsCount", "docs.count"),
        ("dd", "docs.deleted"),
        ("ss", "store.size"),
        ("storeSize", "store.size"),
        ("pss", "pri.store.size"),
    ];
    let columns: Vec<&str> = match req.param("h") {
        Some(h) => h
            .split(',')
            .map(str::trim)
            .map(|c| {
                aliases
                    .iter()
                    .find(|(a, _)| *a == c)
                    .map(|(_, full)| *full)
                    .unwrap_or(c)
            })
            .collect(),
        None => rows
            .first()
            .map(|r| r.iter().map(|(k, _)| *k).collect())
            .unwrap_or_else(|| {
                vec![
                    "health",
                    "status",
                    "index",
                    "uuid",
                    "pri",
                    "rep",
                    "docs.count",
                    "docs.deleted",
                    "store.size",
                    "pri.store.size",
                    "dataset.size",
                ]
            }),
    };
    if let Some(sort) = req.param("s") {
        let (key, desc) = match sort.split_once(':') {
            Some((k, d)) => (k.to_string(), d == "desc"),
            None => (sort.to_string(), false),
        };
        let key = aliases
            .iter()
            .find(|(a, _)| *a == key)
            .map(|(_, f)| f.to_string())
            .unwrap_or(key);
        rows.sort_by(|a, b| {
            let get = |r: &Vec<(&str, String)>| {
                r.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let (x, y) = (get(a), get(b));
            let ord = match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(p), Ok(q)) => p.partial_cmp(&q).unwrap_or(std::cmp::Ordering::Equal),
                _ => x.cmp(&y),
            };
            if desc {
                ord.reverse()
            } else {
                ord
            }
        });
    }
    let pick = |r: &Vec<(&str, String)>, col: &str| r.iter().find(|(k, _)| *k == col).map(|(_, v)| v.clone());
    // `format` wins; without it the Accept header decides, as in Elasticsearch's cat handlers.
    let wants_json = match req.param("format") {
        Some(f) => f == "json",
        None => req
            .accept
            .as_deref()
            .is_some_and(|a| a.contains("json") && !a.contains("text/plain")),
    };
    if wants_json {
        let arr: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut m = Map::new();
                for col in &columns {
                    m.insert(col.to_string(), pick(r, col).map(Value::String).unwrap_or(Value::Null));
                }
                Value::Object(m)
            })
            .collect();
        return Ok(Reply::ok(Value::Array(arr)));
    }
    let mut table: Vec<Vec<String>> = Vec::new();
    if req.flag("v")? {
        table.push(columns.iter().map(|c| c.to_string()).collect());
    }
    for r in &rows {
        table.push(columns.iter().map(|c| pick(r, c).unwrap_or_default()).collect());
    }
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| table.iter().map(|row| row[i].chars().count()).max().unwrap_or(0))
        .collect();
    let numeric = |col: &str| {
        matches!(
            col,
            "pri" | "rep" | "docs.count" | "docs.deleted" | "store.size" | "pri.store.size" | "dataset.size"
        )
    };
    let mut text = String::new();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if numeric(columns[i]) {
                    format!("{cell:>w$}", w = widths[i])
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        text.push_str(cells.join(" ").trim_end());
        text.push('\n');
    }
    Ok(Reply::text(200, text))
}

pub fn health(sh: &Shared, req: &Req, expr: Option<&str>) -> Result<Reply, EsError> {
    let c = lock(sh);
    let names = c.resolve(
        expr,
        Opts {
            allow_no_indices: true,
            ..Opts::from_req(req, "all", false)?
        },
    )?;
    let (mut primaries, mut unassigned) = (0u64, 0u64);
    let mut worst = 0u8;
    let mut per_index = Map::new();
    let level = req.param("level").unwrap_or("cluster");
    for n in &names {
        let i = &c.indices[n];
        let shards = i.num_shards() as u64;
        let replicas = i.num_replicas() as u64;
        primaries += shards;
        unassigned += shards * replicas;
        let status = if replicas > 0 { 1 } else { 0 };
        worst = worst.max(status);
        if level != "cluster" {
            let mut entry = obj(vec![
                ("status", json!(["green", "yellow", "red"][status as usize])),
                ("number_of_shards", json!(shards)),
                ("number_of_replicas", json!(replicas)),
                ("active_primary_shards", json!(shards)),
                ("active_shards", json!(shards)),
                ("relocating_shards", json!(0)),
                ("initializing_shards", json!(0)),
                ("unassigned_shards", json!(shards * replicas)),
                ("unassigned_primary_shards", json!(0)),
            ]);
            if level == "shards" {
                let mut sm = Map::new();
                let shard_status = ["green", "yellow"][status as usize];
                for s in 0..shards {
                    sm.insert(
                        s.to_string(),
                        json!({"status": shard_status, "primary_active": true, "active_shards": 1, "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": replicas, "unassigned_primary_shards": 0}),
                    );
                }
                entry
                    .as_object_mut()
                    .expect("object")
                    .insert("shards".into(), Value::Object(sm));
            }
            per_index.insert(n.clone(), entry);
        }
    }
    let status_name = ["green", "yellow", "red"][worst as usize];
    let wanted = req.param("wait_for_status").map(|s| match s {
        "green" => 0u8,
        "yellow" => 1,
        _ => 2,
    });
    let timed_out = wanted.is_some_and(|w| worst > w);
    let pct = if primaries + unassigned == 0 {
        100.0
    } else {
        primaries as f64 * 100.0 / (primaries + unassigned) as f64
    };
    let mut body = obj(vec![
        ("cluster_name", json!("recon-emulator")),
        ("status", json!(status_name)),
        ("timed_out", json!(timed_out)),
        ("number_of_nodes", json!(1)),
        ("number_of_data_nodes", json!(1)),
        ("active_primary_shards", json!(primaries)),
        ("active_shards", json!(primaries)),
        ("relocating_shards", json!(0)),
        ("initializing_shards", json!(0)),
        ("unassigned_shards", json!(unassigned)),
        ("unassigned_primary_shards", json!(0)),
        ("delayed_unassigned_shards", json!(0)),
        ("number_of_pending_tasks", json!(0)),
        ("number_of_in_flight_fetch", json!(0)),
        ("task_max_waiting_in_queue_millis", json!(0)),
        ("active_shards_percent_as_number", json!(pct)),
    ]);
    if level != "cluster" {
        body.as_object_mut()
            .expect("object")
            .insert("indices".into(), Value::Object(per_index));
    }
    Ok(Reply::json(if timed_out { 408 } else { 200 }, &body))
}

/// Routing shard of a new document in `index`.
pub fn shard_for(index: &Index, id: &str) -> u32 {
    let shards = index.num_shards();
    let routing = index.setting_u64("index.number_of_routing_shards", default_routing_shards(shards) as u64) as u32;
    super::store::routing_shard(id, shards, routing)
}
