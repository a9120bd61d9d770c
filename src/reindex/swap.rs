//! Moving the alias: one `POST /_aliases` call, so readers and writers see either the old generation
//! or the new one, never neither. Also rollback and the pruning of old generations.

use elasticsearch::http::Method;
use serde_json::{json, Value};

use crate::repair::apply::encode;
use crate::source::elasticsearch::EsClient;

/// The `_aliases` actions that point `alias` at `to` alone, as its write index. `from` are the
/// indices it points at now; with `adopt`, `from` is the concrete index named like the alias,
/// deleted in the same call so that the alias can take its name.
pub fn swap_actions(alias: &str, from: &[String], to: &str, adopt: bool) -> Value {
    let mut actions = Vec::new();
    for index in from.iter().filter(|i| *i != to) {
        if adopt {
            actions.push(json!({"remove_index": {"index": index}}));
        } else {
            actions.push(json!({"remove": {"index": index, "alias": alias}}));
        }
    }
    actions.push(json!({"add": {"index": to, "alias": alias, "is_write_index": true}}));
    json!({ "actions": actions })
}

/// Sends the swap.
pub async fn swap(client: &EsClient, alias: &str, from: &[String], to: &str, adopt: bool) -> anyhow::Result<()> {
    let body = swap_actions(alias, from, to, adopt);
    let answer = client.request_ok(Method::Post, "/_aliases", &[], Some(&body)).await?;
    if answer["acknowledged"] != Value::Bool(true) {
        anyhow::bail!("POST /_aliases was not acknowledged: {answer}");
    }
    Ok(())
}

/// Deletes an index (a generation beyond `--keep`, or a discarded partial one).
pub async fn delete(client: &EsClient, index: &str) -> anyhow::Result<()> {
    client
        .request_ok(Method::Delete, &format!("/{}", encode(index)), &[], None)
        .await?;
    Ok(())
}

/// Restores the settings the load turned off (`null` resets to the default).
pub async fn restore_settings(
    client: &EsClient,
    index: &str,
    restore: &serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    if restore.is_empty() {
        return Ok(());
    }
    client
        .request_ok(
            Method::Put,
            &format!("/{}/_settings", encode(index)),
            &[],
            Some(&Value::Object(restore.clone())),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_is_one_call_that_removes_old_and_adds_new_as_write_index() {
        let body = swap_actions("orders", &["orders-1".into()], "orders-2", false);
        assert_eq!(
            body,
            json!({"actions": [
                {"remove": {"index": "orders-1", "alias": "orders"}},
                {"add": {"index": "orders-2", "alias": "orders", "is_write_index": true}}
            ]})
        );
        let adopt = swap_actions("orders", &["orders".into()], "orders-2", true);
        assert_eq!(adopt["actions"][0], json!({"remove_index": {"index": "orders"}}));
        let fresh = swap_actions("orders", &[], "orders-2", false);
        assert_eq!(fresh["actions"].as_array().unwrap().len(), 1);
    }
}
