//! Generations of an alias: the indices `<alias>-<YYYYMMDDtHHMMSSz>` a reindex creates, what the
//! alias points at, and the `--mapping` file that shapes the next one (the calls that create, describe
//! and swap generations are in `crate::source::elasticsearch::rebuild`).
//!
//! The timestamp is ISO 8601's basic format in UTC, lowercased because Elasticsearch index names must
//! be lowercase: `orders-20261128t114203z`. Names of one alias sort in creation order.

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::state::ReindexState;
pub use crate::source::elasticsearch::admin::{resolve, Target};
use crate::source::elasticsearch::rebuild::{self, Described};
use crate::source::elasticsearch::{admin, EsClient};

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
    let mut names: Vec<String> = admin::indices_named_like(client, &format!("{alias}-"))
        .await?
        .into_iter()
        .filter(|n| generation_time(alias, n).is_some())
        .collect();
    for index in &behind {
        if !names.contains(index) {
            names.push(index.clone());
        }
    }
    names.sort();
    let mut generations = Vec::new();
    for index in names {
        if let Some(Described {
            docs,
            created_ms,
            state,
        }) = rebuild::describe(client, &index).await?
        {
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
        if let Some(Described {
            docs,
            created_ms,
            state,
        }) = rebuild::describe(client, &index).await?
        {
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
}
