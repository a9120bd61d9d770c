//! Index administration: what a name resolves to, settings, mappings and their `_meta`, creating,
//! deleting and refreshing indices, moving aliases. Each call is one function with typed arguments,
//! so that the callers (reindex, the demo) say what they do and never build a REST path.

use anyhow::{bail, Context};
use elasticsearch::http::Method;
use serde_json::{json, Map, Value};

use super::client::api_error;
use super::wire::{CountResponse, CreateIndex, UpdateAliases};
use super::EsClient;

/// What a name on the cluster is.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An alias and the indices it points at (the write index first when there is one).
    Alias { indices: Vec<String> },
    /// A concrete index.
    Index,
    /// Nothing of that name.
    Missing,
}

/// Resolves `name` to an alias, a concrete index or nothing.
pub async fn resolve(client: &EsClient, name: &str) -> anyhow::Result<Target> {
    let answer = client
        .request(Method::Get, &format!("/_alias/{}", segment(name)), &[], None)
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
        .request(Method::Get, &format!("/{}/_settings", segment(name)), &[], None)
        .await?;
    Ok(match index.status {
        200 => Target::Index,
        404 => Target::Missing,
        status => bail!("GET /{name}/_settings answered HTTP {status}: {}", index.body),
    })
}

/// The names of the indices whose name starts with `prefix` (none is not an error).
pub async fn indices_named_like(client: &EsClient, prefix: &str) -> anyhow::Result<Vec<String>> {
    let settings = client
        .request_ok(
            Method::Get,
            &format!("/{}*/_settings", segment(prefix)),
            &[("flat_settings", "true"), ("allow_no_indices", "true")],
            None,
        )
        .await?;
    Ok(settings
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default())
}

/// An index's settings with flat keys (`index.number_of_shards`); None when there is no such index.
pub async fn flat_settings(client: &EsClient, index: &str) -> anyhow::Result<Option<Map<String, Value>>> {
    let path = format!("/{}/_settings", segment(index));
    let answer = client
        .request(Method::Get, &path, &[("flat_settings", "true")], None)
        .await?;
    match answer.status {
        404 => return Ok(None),
        status if status >= 400 => return Err(api_error(Method::Get, &path, status, answer.body).into()),
        _ => {}
    }
    let settings = answer.body;
    let flat = settings[index]["settings"]
        .as_object()
        .cloned()
        .with_context(|| format!("GET /{index}/_settings answered without settings: {settings}"))?;
    Ok(Some(flat))
}

/// Sets index settings (flat keys; `null` resets one to its default).
pub async fn put_settings(client: &EsClient, index: &str, settings: &Map<String, Value>) -> anyhow::Result<()> {
    client
        .request_ok(
            Method::Put,
            &format!("/{}/_settings", segment(index)),
            &[],
            Some(&Value::Object(settings.clone())),
        )
        .await?;
    Ok(())
}

/// An index's `mappings` object (`Null` when the answer has none).
pub async fn mappings(client: &EsClient, index: &str) -> anyhow::Result<Value> {
    let answer = client
        .request_ok(Method::Get, &format!("/{}/_mapping", segment(index)), &[], None)
        .await?;
    Ok(index_entry(&answer, index)["mappings"].clone())
}

/// Sets `_meta.<key>` of an index's mapping to `value`. A mapping update replaces `_meta` whole: the
/// index's other `_meta` keys are read and sent again with it.
pub async fn put_meta(client: &EsClient, index: &str, key: &str, value: Value) -> anyhow::Result<()> {
    let path = format!("/{}/_mapping", segment(index));
    let current = client.request_ok(Method::Get, &path, &[], None).await?;
    let mut meta = index_entry(&current, index)["mappings"]["_meta"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    meta.insert(key.into(), value);
    client
        .request_ok(Method::Put, &path, &[], Some(&json!({ "_meta": meta })))
        .await?;
    Ok(())
}

/// The number of documents in an index (None when the answer has no count).
pub async fn count(client: &EsClient, index: &str) -> anyhow::Result<Option<u64>> {
    let answer: CountResponse = client
        .request_ok_as(Method::Get, &format!("/{}/_count", segment(index)), &[], None)
        .await?;
    Ok(answer.count)
}

/// Creates an index.
pub async fn create_index(client: &EsClient, index: &str, body: &CreateIndex) -> anyhow::Result<()> {
    let body = serde_json::to_value(body)?;
    client
        .request_ok(Method::Put, &format!("/{}", segment(index)), &[], Some(&body))
        .await?;
    Ok(())
}

/// Deletes an index.
pub async fn delete_index(client: &EsClient, index: &str) -> anyhow::Result<()> {
    client
        .request_ok(Method::Delete, &format!("/{}", segment(index)), &[], None)
        .await?;
    Ok(())
}

/// Makes searches see every write to the index so far.
pub async fn refresh(client: &EsClient, index: &str) -> anyhow::Result<()> {
    client
        .request_ok(Method::Post, &format!("/{}/_refresh", segment(index)), &[], None)
        .await?;
    Ok(())
}

/// Applies alias actions in one call: readers see all of them or none.
pub async fn update_aliases(client: &EsClient, update: &UpdateAliases) -> anyhow::Result<()> {
    let body = serde_json::to_value(update)?;
    let answer = client.request_ok(Method::Post, "/_aliases", &[], Some(&body)).await?;
    if answer["acknowledged"] != Value::Bool(true) {
        bail!("POST /_aliases was not acknowledged: {answer}");
    }
    Ok(())
}

/// How an alias update is described to people: one atomic call.
pub const ATOMIC_ALIAS_UPDATE: &str = "one _aliases call";

/// Writes documents by `_id` with plain `index` actions in one bulk request; any refused document
/// fails the call. For loading fixtures (the demo), not for repairs: nothing here is conditional.
pub async fn index_documents(
    client: &EsClient,
    index: &str,
    docs: &[(String, Map<String, Value>)],
) -> anyhow::Result<()> {
    if docs.is_empty() {
        return Ok(());
    }
    let mut body = Vec::new();
    for (id, doc) in docs {
        body.extend_from_slice(json!({"index": {"_index": index, "_id": id}}).to_string().as_bytes());
        body.push(b'\n');
        body.extend_from_slice(serde_json::to_string(doc)?.as_bytes());
        body.push(b'\n');
    }
    let answer = client.request_bytes(Method::Post, "/_bulk", &[], Some(body)).await?;
    if answer.status >= 400 || answer.body["errors"].as_bool() != Some(false) {
        bail!(
            "the bulk load into {index} failed: HTTP {} {}",
            answer.status,
            answer.body
        );
    }
    Ok(())
}

/// The entry of `index` in an answer keyed by index name; the first entry when the name is not a key
/// (an alias answers under its concrete index).
fn index_entry<'a>(answer: &'a Value, index: &str) -> &'a Value {
    answer
        .get(index)
        .or_else(|| answer.as_object().and_then(|o| o.values().next()))
        .unwrap_or(&Value::Null)
}

/// Percent-encodes an index or alias name for a URL path.
fn segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_path_segment() {
        assert_eq!(segment("orders-20261128t114203z"), "orders-20261128t114203z");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn an_answer_is_read_under_the_index_name_or_its_only_entry() {
        let answer = json!({"orders-2": {"mappings": {"dynamic": "strict"}}});
        assert_eq!(index_entry(&answer, "orders-2")["mappings"]["dynamic"], "strict");
        assert_eq!(index_entry(&answer, "orders")["mappings"]["dynamic"], "strict");
        assert!(index_entry(&json!({}), "orders").is_null());
    }
}
