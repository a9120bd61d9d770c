//! What `recon reindex` needs from an Elasticsearch read model: a generation created with the source
//! index's settings and mappings (refresh and replicas off for the load) and the reindex's state kept
//! in its mapping `_meta`, plain writes to load it, the alias swapped to it atomically, settings
//! restored, old generations described and deleted. The orchestration (what to build, when to swap)
//! is in `crate::reindex`; the calls it makes are here.

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::admin;
use super::wire::{AliasAction, CreateIndex, UpdateAliases};
use super::write::{WriteAction, WriteKind};
use super::EsClient;
use crate::document::Doc;

/// The `_meta` key a generation's reindex state is kept under.
pub const STATE_KEY: &str = "recon";

/// How the swap is described to people.
pub const SWAP_CALL: &str = admin::ATOMIC_ALIAS_UPDATE;

/// The `_meta` object holding `state` (and nothing else).
pub fn state_meta<T: Serialize>(state: &T) -> Value {
    json!({ STATE_KEY: state })
}

/// The reindex state in an index's `mappings`; None when the index is not recon's.
pub fn state_in_mappings<T: DeserializeOwned>(mappings: &Value) -> Option<T> {
    serde_json::from_value(mappings.get("_meta")?.get(STATE_KEY)?.clone()).ok()
}

/// Saves `state` in the index's `_meta`, whole (its other `_meta` keys are kept).
pub async fn save_state<T: Serialize>(client: &EsClient, index: &str, state: &T) -> anyhow::Result<()> {
    admin::put_meta(client, index, STATE_KEY, serde_json::to_value(state)?).await
}

/// The index's reindex state, if it has one.
pub async fn load_state<T: DeserializeOwned>(client: &EsClient, index: &str) -> anyhow::Result<Option<T>> {
    Ok(state_in_mappings(&admin::mappings(client, index).await?))
}

/// One index as a generation listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Described<T> {
    pub docs: Option<u64>,
    /// `index.creation_date`, epoch milliseconds.
    pub created_ms: Option<i64>,
    pub state: Option<T>,
}

/// An index's document count, creation time and reindex state; None when there is no such index.
pub async fn describe<T: DeserializeOwned>(client: &EsClient, index: &str) -> anyhow::Result<Option<Described<T>>> {
    let Some(settings) = admin::flat_settings(client, index).await? else {
        return Ok(None);
    };
    let created_ms = settings["index.creation_date"].as_str().and_then(|s| s.parse().ok());
    let docs = admin::count(client, index).await?;
    let mappings = admin::mappings(client, index).await?;
    Ok(Some(Described {
        docs,
        created_ms,
        state: state_in_mappings(&mappings),
    }))
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
) -> anyhow::Result<(CreateIndex, Map<String, Value>)> {
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
    let body = CreateIndex {
        settings,
        mappings,
        aliases: Map::new(),
    };
    Ok((body, restore))
}

/// Creates the generation `index` with `settings` (flat keys) and `mappings`, refresh and replicas
/// off for the load and `state` in its `_meta`. Returns the settings to restore after the load.
pub async fn create_generation<T: Serialize>(
    client: &EsClient,
    index: &str,
    settings: &Map<String, Value>,
    mappings: &Value,
    state: &T,
) -> anyhow::Result<Map<String, Value>> {
    let (body, restore) = create_body(settings, mappings, state_meta(state))?;
    admin::create_index(client, index, &body)
        .await
        .with_context(|| format!("cannot create {index}"))?;
    Ok(restore)
}

/// Flat settings and mappings of an existing index, to build the next generation from: its own reindex
/// state is not the new generation's, the rest of its `_meta` is.
pub async fn settings_and_mappings(client: &EsClient, index: &str) -> anyhow::Result<(Map<String, Value>, Value)> {
    let flat = admin::flat_settings(client, index)
        .await?
        .with_context(|| format!("no index named {index} to copy the settings from"))?;
    let mut mappings = admin::mappings(client, index).await?;
    if let Some(m) = mappings.as_object_mut() {
        if let Some(Value::Object(meta)) = m.get_mut("_meta") {
            meta.remove(STATE_KEY);
            if meta.is_empty() {
                m.remove("_meta");
            }
        }
    }
    Ok((flat, mappings))
}

/// Restores the settings the load turned off (`null` resets to the default).
pub async fn restore_settings(client: &EsClient, index: &str, restore: &Map<String, Value>) -> anyhow::Result<()> {
    if restore.is_empty() {
        return Ok(());
    }
    admin::put_settings(client, index, restore).await
}

/// A plain (unconditional) write of the document `id` in `index`: the load and the re-projection write
/// an index nobody else writes yet. `doc` is None for a delete.
pub fn plain_write(kind: WriteKind, index: &str, id: String, doc: Option<Doc>) -> WriteAction {
    WriteAction {
        kind,
        location: index.to_string(),
        id,
        doc,
        if_version: None,
    }
}

/// The alias actions that point `alias` at `to` alone, as its write index. `from` are the indices it
/// points at now; with `adopt`, `from` is the concrete index named like the alias, deleted in the same
/// call so that the alias can take its name.
pub fn swap_actions(alias: &str, from: &[String], to: &str, adopt: bool) -> UpdateAliases {
    let mut actions = Vec::new();
    for index in from.iter().filter(|i| *i != to) {
        if adopt {
            actions.push(AliasAction::RemoveIndex { index: index.clone() });
        } else {
            actions.push(AliasAction::Remove {
                index: index.clone(),
                alias: alias.to_string(),
            });
        }
    }
    actions.push(AliasAction::Add {
        index: to.to_string(),
        alias: alias.to_string(),
        is_write_index: true,
    });
    UpdateAliases { actions }
}

/// Moves the alias in one atomic call, so readers and writers see either the old generation or the
/// new one, never neither.
pub async fn swap_alias(client: &EsClient, alias: &str, from: &[String], to: &str, adopt: bool) -> anyhow::Result<()> {
    admin::update_aliases(client, &swap_actions(alias, from, to, adopt)).await
}

/// Deletes a generation (one beyond `--keep`, or a discarded partial one).
pub async fn delete_generation(client: &EsClient, index: &str) -> anyhow::Result<()> {
    admin::delete_index(client, index).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_is_one_call_that_removes_old_and_adds_new_as_write_index() {
        let body = serde_json::to_value(swap_actions("orders", &["orders-1".into()], "orders-2", false)).unwrap();
        assert_eq!(
            body,
            json!({"actions": [
                {"remove": {"index": "orders-1", "alias": "orders"}},
                {"add": {"index": "orders-2", "alias": "orders", "is_write_index": true}}
            ]})
        );
        let adopt = serde_json::to_value(swap_actions("orders", &["orders".into()], "orders-2", true)).unwrap();
        assert_eq!(adopt["actions"][0], json!({"remove_index": {"index": "orders"}}));
        let fresh = serde_json::to_value(swap_actions("orders", &[], "orders-2", false)).unwrap();
        assert_eq!(fresh["actions"].as_array().unwrap().len(), 1);
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
    fn create_body_turns_refresh_and_replicas_off_and_remembers_them() {
        let settings: Map<String, Value> =
            serde_json::from_value(json!({"index.number_of_shards": "1", "index.number_of_replicas": "2"})).unwrap();
        let (body, restore) = create_body(
            &settings,
            &json!({"properties": {"orderId": {"type": "long"}}}),
            json!({"recon": {"phase": "loading"}}),
        )
        .unwrap();
        let body = serde_json::to_value(body).unwrap();
        assert_eq!(body["settings"]["index.refresh_interval"], "-1");
        assert_eq!(body["settings"]["index.number_of_replicas"], "0");
        assert_eq!(body["settings"]["index.number_of_shards"], "1");
        assert_eq!(body["mappings"]["_meta"]["recon"]["phase"], "loading");
        // The index's own _meta keys stay beside recon's.
        let owned = json!({"_meta": {"owner": "team-x"}, "properties": {}});
        let (with_meta, _) = create_body(&Map::new(), &owned, json!({"recon": {"phase": "loading"}})).unwrap();
        assert_eq!(
            with_meta.mappings["_meta"],
            json!({"owner": "team-x", "recon": {"phase": "loading"}})
        );
        assert_eq!(body["mappings"]["properties"]["orderId"]["type"], "long");
        assert_eq!(restore["index.refresh_interval"], Value::Null);
        assert_eq!(restore["index.number_of_replicas"], "2");
    }

    #[test]
    fn the_state_lives_under_recon_in_meta() {
        let mappings = json!({"_meta": state_meta(&json!({"phase": "live"})), "properties": {}});
        assert_eq!(mappings["_meta"]["recon"]["phase"], "live");
        assert_eq!(state_in_mappings::<Value>(&mappings), Some(json!({"phase": "live"})));
        assert_eq!(state_in_mappings::<Value>(&json!({"_meta": {"owner": 1}})), None);
    }
}
