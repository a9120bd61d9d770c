//! `recon doctor`'s checks of an Elasticsearch or OpenSearch read model, in order, each only when what
//! it needs passed: the URL answers, the credentials are accepted, which product and version, the index
//! or alias exists, the key field is mapped so that it sorts like the write model's key, a point in time
//! opens (and is closed again), and whether the credentials may write — asked of the security API,
//! without writing anything.

use std::collections::BTreeSet;

use elasticsearch::http::Method;
use serde_json::{json, Value};

use super::{admin, encode, key_kind_in_mappings, mapped_fields, ElasticsearchSettings, ElasticsearchSource};
use super::{EsClient, EsError, Flavor};
use crate::model::KeyKind;
use crate::source::preflight::{Check, Checklist};

pub const REACHABLE: &str = "read_model.reachable";
pub const AUTHENTICATED: &str = "read_model.authenticated";
pub const VERSION: &str = "read_model.version";
pub const INDEX: &str = "read_model.index";
pub const KEY_MAPPING: &str = "read_model.key_mapping";
pub const PIT: &str = "read_model.pit";
pub const WRITE_PRIVILEGE: &str = "read_model.write_privilege";

/// The privileges a repair's writes need on the index: `index` covers create, replace and update,
/// `delete` the deletes of orphans and duplicates.
const WRITE_PRIVILEGES: [&str; 2] = ["index", "delete"];

/// The read model's checks. `expected` is the write model's key kind when its checks got that far.
/// Returns the fields the index maps, for the check of the `[compare]` rules.
pub async fn preflight(
    settings: ElasticsearchSettings,
    expected: Option<KeyKind>,
    list: &mut Checklist,
) -> Option<BTreeSet<String>> {
    let credentials = match (&settings.connect.api_key, &settings.connect.username) {
        (Some(_), _) => "with an API key".to_string(),
        (None, Some(user)) => format!("as user {user:?}"),
        (None, None) => "without credentials".to_string(),
    };
    let client = match EsClient::connect(&settings.connect).await {
        Ok(client) => client,
        Err(EsError::Unauthorized { url, status }) => {
            list.push(Check::ok(REACHABLE, format!("{url} answers")));
            list.push(Check::fail(
                AUTHENTICATED,
                format!("HTTP {status}: the credentials ({credentials}) were refused"),
                "check elasticsearch.username and elasticsearch.password (or ELASTICSEARCH_PASSWORD, \
                 elasticsearch.password_file), or elasticsearch.api_key (ELASTICSEARCH_API_KEY)",
            ));
            list.skip(&[VERSION, INDEX, KEY_MAPPING, PIT, WRITE_PRIVILEGE], AUTHENTICATED);
            return None;
        }
        Err(e) => {
            let fix = match &e {
                EsError::Settings(_) => "fix the [elasticsearch] connection settings named above",
                _ => {
                    "check elasticsearch.url (or ELASTICSEARCH_URL / --es-url), that the cluster runs and that \
                      this host may reach it"
                }
            };
            list.push(Check::fail(REACHABLE, e.to_string(), fix));
            list.skip(
                &[AUTHENTICATED, VERSION, INDEX, KEY_MAPPING, PIT, WRITE_PRIVILEGE],
                REACHABLE,
            );
            return None;
        }
    };
    list.push(Check::ok(REACHABLE, format!("{} answers", client.url())));
    list.push(Check::ok(AUTHENTICATED, format!("accepted {credentials}")));
    let product = match client.flavor() {
        Flavor::Elasticsearch => "Elasticsearch",
        Flavor::OpenSearch => "OpenSearch",
    };
    list.push(Check::ok(VERSION, format!("{product} {}", client.version())));

    let index = settings.index.clone();
    let mapping = match client
        .request(Method::Get, &format!("/{}/_mapping", encode(&index)), &[], None)
        .await
    {
        Ok(answer) if answer.status == 200 => answer.body,
        Ok(answer) if answer.status == 404 => {
            list.push(Check::fail(
                INDEX,
                format!("no index or alias [{index}] on {}", client.url()),
                "fix elasticsearch.index (or RECON_ES_INDEX / --index), or create the index (its mapping \
                 must map the key field as keyword or long)",
            ));
            list.skip(&[KEY_MAPPING, PIT, WRITE_PRIVILEGE], INDEX);
            return None;
        }
        Ok(answer) => {
            let e = super::client::api_error(Method::Get, "/_mapping", answer.status, answer.body);
            list.push(Check::fail(
                INDEX,
                e.to_string(),
                "the credentials need the view_index_metadata and read privileges on the index",
            ));
            list.skip(&[KEY_MAPPING, PIT, WRITE_PRIVILEGE], INDEX);
            return None;
        }
        Err(e) => {
            list.push(Check::fail(
                INDEX,
                e.to_string(),
                "run again; check the cluster's health",
            ));
            list.skip(&[KEY_MAPPING, PIT, WRITE_PRIVILEGE], INDEX);
            return None;
        }
    };
    let what = match admin::resolve(&client, &index).await {
        Ok(admin::Target::Alias { indices }) => format!("alias [{index}] of {}", indices.join(", ")),
        _ => format!("index [{index}]"),
    };
    let documents = match admin::count(&client, &index).await {
        Ok(Some(n)) => format!(", {n} documents"),
        _ => String::new(),
    };
    list.push(Check::ok(INDEX, format!("{what}{documents}")));
    let fields = mapped_fields(&client, &index).await;

    let key_field = settings.key_field.clone();
    let (key_kind, key_mapping) = match key_kind_in_mappings(&mapping, &key_field) {
        Ok(found) => found,
        Err(e) => {
            list.push(Check::fail(
                KEY_MAPPING,
                e.to_string(),
                "map the key field as keyword (text keys) or long (integer keys) in a new index and reindex \
                 (`recon reindex --mapping FILE`), or point elasticsearch.key at a field mapped so",
            ));
            list.skip(&[PIT, WRITE_PRIVILEGE], KEY_MAPPING);
            return fields;
        }
    };
    match expected {
        Some(expected) if expected != key_kind => {
            let (write_kind, wanted) = match expected {
                KeyKind::Int => ("an integer", "long"),
                KeyKind::Text => ("a text", "keyword"),
            };
            list.push(Check::fail(
                KEY_MAPPING,
                format!(
                    "[{key_field}] is mapped as {key_mapping}, but the write model's key is {write_kind} key: the \
                     two sides would sort keys differently"
                ),
                format!(
                    "map [{key_field}] as {wanted} (a new index, then `recon reindex --mapping FILE`), or cast the \
                     key in postgres.query so both sort alike"
                ),
            ));
            list.skip(&[PIT, WRITE_PRIVILEGE], KEY_MAPPING);
            return fields;
        }
        Some(_) => list.push(Check::ok(
            KEY_MAPPING,
            format!("[{key_field}] is mapped as {key_mapping}, which sorts like the write model's key"),
        )),
        None => list.push(Check::ok(
            KEY_MAPPING,
            format!("[{key_field}] is mapped as {key_mapping} (not compared: the write model's key is unknown)"),
        )),
    }

    let source = ElasticsearchSource {
        client: client.clone(),
        settings,
        key_kind,
        key_mapping,
    };
    list.push(match source.open_shared_pit().await {
        Ok(pit) => {
            source.close_shared_pit(pit).await;
            Check::ok(
                PIT,
                format!(
                    "a point in time on [{index}] opens (keep_alive {}) and closes",
                    source.settings.keep_alive
                ),
            )
        }
        Err(e) => Check::fail(
            PIT,
            format!("cannot open a point in time on [{index}]: {e:#}"),
            "the credentials need the read privilege on the index (a point in time needs it on every index \
             behind an alias); OpenSearch needs 2.4 or later",
        ),
    });
    list.push(write_privilege(&client, &index).await);
    fields
}

/// Whether the credentials may write to `index`, asked of `_has_privileges`: nothing is written.
async fn write_privilege(client: &EsClient, index: &str) -> Check {
    if client.flavor() == Flavor::OpenSearch {
        return Check::skipped(
            WRITE_PRIVILEGE,
            "OpenSearch has no _has_privileges; a repair's first write will tell",
        );
    }
    let body = json!({"index": [{"names": [index], "privileges": WRITE_PRIVILEGES}]});
    let answer = match client
        .request(Method::Post, "/_security/user/_has_privileges", &[], Some(&body))
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            return Check::fail(
                WRITE_PRIVILEGE,
                format!("cannot ask: {e}"),
                "run again; check the cluster's health",
            )
        }
    };
    match interpret_has_privileges(answer.status, &answer.body, index) {
        Privileges::SecurityDisabled => Check::ok(WRITE_PRIVILEGE, "security disabled: writes allowed"),
        Privileges::Granted(user) => Check::ok(
            WRITE_PRIVILEGE,
            format!(
                "user {user:?} may write to [{index}] (privileges {})",
                WRITE_PRIVILEGES.join(", ")
            ),
        ),
        Privileges::Missing(user, missing) => Check::fail(
            WRITE_PRIVILEGE,
            format!(
                "user {user:?} lacks {} on [{index}]: `recon check` works, `recon repair --apply` would be refused",
                missing.join(", ")
            ),
            format!(
                "grant the role of the repairing user the write privilege on [{index}] (index and delete), or \
                 give repair credentials that have it"
            ),
        ),
        Privileges::Unknown(detail) => Check::fail(
            WRITE_PRIVILEGE,
            format!("_has_privileges answered {detail}"),
            "the credentials need the right to ask about their own privileges (every user has it by default)",
        ),
    }
}

#[derive(Debug, PartialEq)]
enum Privileges {
    /// No security layer: anyone who reaches the cluster may write.
    SecurityDisabled,
    Granted(String),
    /// The user and the privileges it lacks.
    Missing(String, Vec<String>),
    Unknown(String),
}

/// Reads `_has_privileges`' answer. With security off, Elasticsearch 8 registers no `_security`
/// handler at all: the answer is the 400 `no handler found for uri [...]` of any unknown path
/// (Elasticsearch 7 with a basic license and security off answered 500 "Security must be explicitly
/// enabled …"); both mean that anyone who reaches the cluster may write.
fn interpret_has_privileges(status: u16, body: &Value, index: &str) -> Privileges {
    let error_text = match &body["error"] {
        Value::String(s) => s.clone(),
        Value::Object(e) => e.get("reason").and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => String::new(),
    };
    if (status == 400 && error_text.starts_with("no handler found for uri"))
        || (status == 500 && error_text.starts_with("Security must be explicitly enabled"))
    {
        return Privileges::SecurityDisabled;
    }
    if status != 200 {
        return Privileges::Unknown(format!("HTTP {status}: {error_text}"));
    }
    let user = body["username"].as_str().unwrap_or("?").to_string();
    let granted = &body["index"][index];
    let missing: Vec<String> = WRITE_PRIVILEGES
        .iter()
        .filter(|p| granted[**p] != Value::Bool(true))
        .map(|p| p.to_string())
        .collect();
    if missing.is_empty() {
        Privileges::Granted(user)
    } else {
        Privileges::Missing(user, missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_privileges_answers_are_read_as_elasticsearch_gives_them() {
        let disabled = json!({"error": "no handler found for uri [/_security/user/_has_privileges] and method [POST]",
                              "status": 400});
        assert_eq!(
            interpret_has_privileges(400, &disabled, "orders"),
            Privileges::SecurityDisabled
        );
        let basic = json!({"error": {"root_cause": [{"type": "exception", "reason": "Security must be explicitly \
            enabled when using a [basic] license. Enable security by setting [xpack.security.enabled] to [true] \
            in the elasticsearch.yml file and restart the node."}], "type": "exception", "reason": "Security must \
            be explicitly enabled when using a [basic] license. Enable security by setting \
            [xpack.security.enabled] to [true] in the elasticsearch.yml file and restart the node."}, "status": 500});
        assert_eq!(
            interpret_has_privileges(500, &basic, "orders"),
            Privileges::SecurityDisabled
        );
        let granted = json!({"username": "repair", "has_all_requested": true, "cluster": {},
                             "index": {"orders": {"index": true, "delete": true}}, "application": {}});
        assert_eq!(
            interpret_has_privileges(200, &granted, "orders"),
            Privileges::Granted("repair".into())
        );
        let read_only = json!({"username": "checker", "has_all_requested": false, "cluster": {},
                               "index": {"orders": {"index": false, "delete": false}}, "application": {}});
        assert_eq!(
            interpret_has_privileges(200, &read_only, "orders"),
            Privileges::Missing("checker".into(), vec!["index".into(), "delete".into()])
        );
        let other = json!({"error": {"type": "security_exception", "reason": "action denied"}, "status": 403});
        assert!(matches!(
            interpret_has_privileges(403, &other, "orders"),
            Privileges::Unknown(_)
        ));
    }
}
