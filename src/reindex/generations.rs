//! Generations of an alias: the indices `<alias>-<YYYYMMDDtHHMMSSz>` a reindex creates, what the
//! alias points at, and the body that creates the next one.
//!
//! The timestamp is ISO 8601's basic format in UTC, lowercased because Elasticsearch index names must
//! be lowercase: `orders-20261128t114203z`. Names of one alias sort in creation order.

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDateTime, Utc};
use elasticsearch::http::Method;
use serde_json::{json, Map, Value};

use super::state::ReindexState;
use crate::repair::apply::encode;
use crate::source::elasticsearch::EsClient;

const STAMP: &str = "%Y%m%dt%H%M%Sz";

/// The name of the generation of `alias` created at `at`.
pub fn generation_name(alias: &str, at: DateTime<Utc>) -> String {
    format!("{alias}-{}", at.format(STAMP))
}

/// When the generation `name` of `alias` was created, if `name` is one.
pub fn generation_time(alias: &str, name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix(alias)?.strip_prefix('-')?;
    if stamp.len() != 16 {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, STAMP).ok().map(|t| t.and_utc())
}

/// What `elasticsearch.index` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An alias and the indices it points at (the write index first when there is one).
    Alias { indices: Vec<String> },
    /// A concrete index (refused without `--adopt`).
    Index,
    /// Nothing of that name.
    Missing,
}

/// Resolves `name` to an alias, a concrete index or nothing.
pub async fn resolve(client: &EsClient, name: &str) -> anyhow::Result<Target> {
    let answer = client
        .request(Method::Get, &format!("/_alias/{}", encode(name)), &[], None)
        .await?;
    if answer.status == 200 {
        let mut indices: Vec<(bool, String)> = answer
            .body
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(index, v)| {
                        let write = v["aliases"][name]["is_write_index"] == Value::Bool(true);
                        (!write, index.clone())
                    })
                    .collect()
            })
            .unwrap_or_default();
        indices.sort();
        return Ok(Target::Alias {
            indices: indices.into_iter().map(|(_, i)| i).collect(),
        });
    }
    let index = client
        .request(Method::Get, &format!("/{}/_settings", encode(name)), &[], None)
        .await?;
    Ok(match index.status {
        200 => Target::Index,
        404 => Target::Missing,
        status => bail!("GET /{name}/_settings answered HTTP {status}: {}", index.body),
    })
}

/// One generation as `--list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub index: String,
    pub docs: Option<u64>,
    pub created_ms: Option<i64>,
    /// The alias points at it.
    pub live: bool,
    pub state: Option<ReindexState>,
}

/// Every generation of `alias` (plus whatever index the alias points at), oldest first.
pub async fn list(client: &EsClient, alias: &str) -> anyhow::Result<Vec<Generation>> {
    let behind = match resolve(client, alias).await? {
        Target::Alias { indices } => indices,
        _ => Vec::new(),
    };
    let pattern = format!("{}-*", encode(alias));
    let settings = client
        .request_ok(
            Method::Get,
            &format!("/{pattern}/_settings"),
            &[("flat_settings", "true"), ("allow_no_indices", "true")],
            None,
        )
        .await?;
    let mut names: Vec<String> = settings
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|n| generation_time(alias, n).is_some())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for index in &behind {
        if !names.contains(index) {
            names.push(index.clone());
        }
    }
    names.sort();
    let mut generations = Vec::new();
    for index in names {
        if let Some((docs, created_ms, state)) = describe(client, &index).await? {
            generations.push(Generation {
                live: behind.contains(&index),
                index,
                docs,
                created_ms,
                state,
            });
        }
    }
    // The index a generation was built from is one too, whatever its name (the first one, made by
    // the projector before recon, usually has another).
    let sources: Vec<String> = generations
        .iter()
        .filter_map(|g| g.state.as_ref()?.source_index.clone())
        .collect();
    for index in sources {
        if generations.iter().any(|g| g.index == index) {
            continue;
        }
        if let Some((docs, created_ms, state)) = describe(client, &index).await? {
            generations.push(Generation {
                live: behind.contains(&index),
                index,
                docs,
                created_ms,
                state,
            });
        }
    }
    generations.sort_by(|a, b| (a.created_ms, &a.index).cmp(&(b.created_ms, &b.index)));
    Ok(generations)
}

type Described = (Option<u64>, Option<i64>, Option<ReindexState>);

/// An index's document count, creation time and recon state; None when there is no such index.
async fn describe(client: &EsClient, index: &str) -> anyhow::Result<Option<Described>> {
    let name = encode(index);
    let settings = client
        .request(
            Method::Get,
            &format!("/{name}/_settings"),
            &[("flat_settings", "true")],
            None,
        )
        .await?;
    if settings.status == 404 {
        return Ok(None);
    }
    let settings = settings.body;
    let created_ms = settings[index]["settings"]["index.creation_date"]
        .as_str()
        .and_then(|s| s.parse().ok());
    let count = client
        .request_ok(Method::Get, &format!("/{name}/_count"), &[], None)
        .await?;
    let mappings = client
        .request_ok(Method::Get, &format!("/{name}/_mapping"), &[], None)
        .await?;
    Ok(Some((
        count["count"].as_u64(),
        created_ms,
        ReindexState::from_mappings(&mappings[index]["mappings"]),
    )))
}

/// Index settings (flat keys) a create request accepts, copied from an existing index: what ES
/// computes or fixes itself (uuid, creation date, version, name), per-node allocation, resize
/// bookkeeping and write blocks are left out.
pub fn copyable_settings(flat: &Map<String, Value>) -> Map<String, Value> {
    const DROPPED: &[&str] = &[
        "index.uuid",
        "index.creation_date",
        "index.creation_date_string",
        "index.provided_name",
        "index.history_uuid",
        "index.verified_before_close",
        "index.frozen",
        "index.search.throttled",
        "index.hidden",
    ];
    const DROPPED_PREFIXES: &[&str] = &[
        "index.version.",
        "index.routing.",
        "index.resize.",
        "index.blocks.",
        "index.shrink.",
        "index.store.snapshot.",
        "index.lifecycle.indexing_complete",
        "index.downsample.",
    ];
    flat.iter()
        .filter(|(k, _)| k.starts_with("index."))
        .filter(|(k, _)| !DROPPED.contains(&k.as_str()))
        .filter(|(k, _)| !DROPPED_PREFIXES.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The settings the load turns off, and the values to restore afterwards (`null`: the default).
pub const LOAD_SETTINGS: [(&str, &str); 2] = [("index.refresh_interval", "-1"), ("index.number_of_replicas", "0")];

/// The create body of a new generation: `settings` with refresh and replicas off, `mappings` with
/// recon's state in `_meta`. Returns the body and the values to restore after the load.
pub fn create_body(
    settings: &Map<String, Value>,
    mappings: &Value,
    state_meta: Value,
) -> anyhow::Result<(Value, Map<String, Value>)> {
    let mut settings = settings.clone();
    let mut restore = Map::new();
    for (key, load_value) in LOAD_SETTINGS {
        restore.insert(key.to_string(), settings.get(key).cloned().unwrap_or(Value::Null));
        settings.insert(key.to_string(), Value::String(load_value.to_string()));
    }
    let mut mappings = match mappings {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => bail!("the mappings must be a JSON object, not {other}"),
    };
    // The index's own `_meta` keys (a schema version, an owner) are kept beside recon's.
    let mut meta = match mappings.remove("_meta") {
        Some(Value::Object(meta)) => meta,
        _ => Map::new(),
    };
    if let Value::Object(state) = state_meta {
        meta.extend(state);
    }
    mappings.insert("_meta".into(), Value::Object(meta));
    Ok((json!({"settings": settings, "mappings": mappings}), restore))
}

/// Flat settings and mappings of an existing index.
pub async fn settings_and_mappings(client: &EsClient, index: &str) -> anyhow::Result<(Map<String, Value>, Value)> {
    let name = encode(index);
    let settings = client
        .request_ok(
            Method::Get,
            &format!("/{name}/_settings"),
            &[("flat_settings", "true")],
            None,
        )
        .await?;
    let flat = settings[index]["settings"]
        .as_object()
        .cloned()
        .with_context(|| format!("GET /{index}/_settings answered without settings: {settings}"))?;
    let mappings = client
        .request_ok(Method::Get, &format!("/{name}/_mapping"), &[], None)
        .await?;
    let mut mappings = mappings[index]["mappings"].clone();
    // The source's own recon state is not the new generation's; the rest of its `_meta` is.
    if let Some(m) = mappings.as_object_mut() {
        if let Some(Value::Object(meta)) = m.get_mut("_meta") {
            meta.remove("recon");
            if meta.is_empty() {
                m.remove("_meta");
            }
        }
    }
    Ok((flat, mappings))
}

/// `--mapping FILE`: the `mappings` object, or a create body with `mappings` (and `settings`, whose
/// flat `index.*` keys then override the copied ones).
pub fn read_mapping_file(path: &std::path::Path) -> anyhow::Result<(Value, Map<String, Value>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read --mapping {}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("--mapping {} is not JSON", path.display()))?;
    let Some(object) = value.as_object() else {
        bail!("--mapping {} must hold a JSON object", path.display());
    };
    if let Some(mappings) = object.get("mappings") {
        let mut settings = Map::new();
        if let Some(Value::Object(s)) = object.get("settings") {
            flatten("", s, &mut settings);
        }
        let settings = settings
            .into_iter()
            .map(|(k, v)| {
                let k = if k.starts_with("index.") {
                    k
                } else {
                    format!("index.{k}")
                };
                (k, v)
            })
            .collect();
        return Ok((mappings.clone(), settings));
    }
    Ok((value, Map::new()))
}

fn flatten(prefix: &str, object: &Map<String, Value>, out: &mut Map<String, Value>) {
    for (k, v) in object {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) => flatten(&key, inner, out),
            Value::Number(n) => {
                out.insert(key, Value::String(n.to_string()));
            }
            Value::Bool(b) => {
                out.insert(key, Value::String(b.to_string()));
            }
            other => {
                out.insert(key, other.clone());
            }
        }
    }
}

/// Generations of one alias by creation time, newest first, for `--keep` and `--rollback` (an index
/// that predates recon's naming sorts by its creation date like the others).
pub fn newest_first(generations: &[Generation]) -> Vec<&Generation> {
    let mut sorted: Vec<&Generation> = generations.iter().collect();
    sorted.sort_by(|a, b| (b.created_ms, &b.index).cmp(&(a.created_ms, &a.index)));
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names_are_lowercase_sortable_utc() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T11:42:03.999Z")
            .unwrap()
            .to_utc();
        let name = generation_name("orders", at);
        assert_eq!(name, "orders-20261128t114203z");
        assert_eq!(name, name.to_lowercase());
        assert_eq!(
            generation_time("orders", &name),
            Some(DateTime::parse_from_rfc3339("2026-11-28T11:42:03Z").unwrap().to_utc())
        );
        let later = generation_name("orders", at + chrono::Duration::seconds(1));
        assert!(later > name);
        assert_eq!(generation_time("orders", "orders-archive"), None);
        assert_eq!(generation_time("orders", "orders-v2-20261128t114203z"), None);
        assert!(generation_time("orders-v2", "orders-v2-20261128t114203z").is_some());
        assert_eq!(generation_time("order", "orders-20261128t114203z"), None);
    }

    #[test]
    fn settings_copy_keeps_what_create_accepts() {
        let flat: Map<String, Value> = serde_json::from_value(json!({
            "index.number_of_shards": "3",
            "index.number_of_replicas": "1",
            "index.refresh_interval": "30s",
            "index.analysis.analyzer.folded.type": "custom",
            "index.uuid": "x1",
            "index.creation_date": "1795000000000",
            "index.provided_name": "orders-1",
            "index.version.created": "8536000",
            "index.routing.allocation.include._tier_preference": "data_content",
            "index.blocks.write": "true",
            "index.resize.source.uuid": "y"
        }))
        .unwrap();
        let copied = copyable_settings(&flat);
        let keys: Vec<&str> = copied.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "index.number_of_shards",
                "index.number_of_replicas",
                "index.refresh_interval",
                "index.analysis.analyzer.folded.type"
            ]
        );
    }

    #[test]
    fn mapping_file_is_the_mappings_or_a_create_body() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.json");
        std::fs::write(&plain, r#"{"properties": {"orderId": {"type": "long"}}}"#).unwrap();
        let (mappings, settings) = read_mapping_file(&plain).unwrap();
        assert_eq!(mappings["properties"]["orderId"]["type"], "long");
        assert!(settings.is_empty());
        let body = dir.path().join("body.json");
        std::fs::write(
            &body,
            r#"{"settings": {"number_of_shards": 3, "index": {"refresh_interval": "5s"}},
                "mappings": {"dynamic": "strict", "properties": {}}}"#,
        )
        .unwrap();
        let (mappings, settings) = read_mapping_file(&body).unwrap();
        assert_eq!(mappings["dynamic"], "strict");
        assert_eq!(settings["index.number_of_shards"], "3");
        assert_eq!(settings["index.refresh_interval"], "5s");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "[1]").unwrap();
        assert!(read_mapping_file(&bad).is_err());
    }

    #[test]
    fn create_body_turns_refresh_and_replicas_off_and_remembers_them() {
        let settings: Map<String, Value> =
            serde_json::from_value(json!({"index.number_of_shards": "1", "index.number_of_replicas": "2"})).unwrap();
        let (body, restore) = create_body(
            &settings,
            &json!({"properties": {"orderId": {"type": "long"}}}),
            json!({"recon": {"phase": "loading"}}),
        )
        .unwrap();
        assert_eq!(body["settings"]["index.refresh_interval"], "-1");
        assert_eq!(body["settings"]["index.number_of_replicas"], "0");
        assert_eq!(body["settings"]["index.number_of_shards"], "1");
        assert_eq!(body["mappings"]["_meta"]["recon"]["phase"], "loading");
        // The index's own _meta keys stay beside recon's.
        let owned = json!({"_meta": {"owner": "team-x"}, "properties": {}});
        let (with_meta, _) = create_body(&Map::new(), &owned, json!({"recon": {"phase": "loading"}})).unwrap();
        assert_eq!(
            with_meta["mappings"]["_meta"],
            json!({"owner": "team-x", "recon": {"phase": "loading"}})
        );
        assert_eq!(body["mappings"]["properties"]["orderId"]["type"], "long");
        assert_eq!(restore["index.refresh_interval"], Value::Null);
        assert_eq!(restore["index.number_of_replicas"], "2");
    }
}
