//! An optional security layer, as a cluster with `xpack.security.enabled: true` and native users has
//! one: every request authenticates with HTTP Basic (401 `security_exception` otherwise, without the
//! `X-Elastic-Product` header), and `_security/user/_has_privileges` and `_security/_authenticate`
//! answer for the user. Off by default: then no `_security` handler exists, as on a cluster with
//! security disabled. Privileges are reported, not enforced: a write by a user without write
//! privileges is carried out (see docs/emulator.md).

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::error::EsError;
use crate::http::{Reply, Req};

/// A native user and the index privileges its roles grant on every index (`read`, `write`, `all`,
/// `index`, `delete`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub password: String,
    pub index_privileges: Vec<String>,
}

impl User {
    pub fn new(name: &str, password: &str, index_privileges: &[&str]) -> User {
        User {
            name: name.to_string(),
            password: password.to_string(),
            index_privileges: index_privileges.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// Whether the granted privileges include `asked` (Elasticsearch's named index privileges:
    /// `all` ⊇ everything, `write` ⊇ index, create, create_doc, delete, update; `index` ⊇ create,
    /// create_doc, update; `create` ⊇ create_doc; `manage` ⊇ view_index_metadata).
    fn has(&self, asked: &str) -> bool {
        self.index_privileges.iter().any(|granted| {
            granted == asked
                || granted == "all"
                || (granted == "write" && matches!(asked, "index" | "create" | "create_doc" | "delete" | "update"))
                || (granted == "index" && matches!(asked, "create" | "create_doc" | "update"))
                || (granted == "create" && asked == "create_doc")
                || (granted == "manage" && asked == "view_index_metadata")
        })
    }
}

fn challenge(reason: String) -> EsError {
    let header = json!({"WWW-Authenticate": ["Basic realm=\"security\" charset=\"UTF-8\"", "Bearer realm=\"security\"", "ApiKey"]});
    EsError::new(401, "security_exception", reason).with("header", header)
}

/// The user a request authenticates as, or the 401 Elasticsearch answers.
pub fn authenticate<'a>(users: &'a [User], req: &Req) -> Result<&'a User, Reply> {
    let refused = |e: EsError| {
        let mut reply = Reply::error(&e);
        for value in [
            "Basic realm=\"security\" charset=\"UTF-8\"",
            "Bearer realm=\"security\"",
            "ApiKey",
        ] {
            reply.headers.push(("WWW-Authenticate", value.to_string()));
        }
        reply
    };
    let basic = req
        .authorization
        .as_deref()
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some(pair) = basic else {
        return Err(refused(challenge(format!(
            "missing authentication credentials for REST request [{}]",
            req.uri
        ))));
    };
    let (name, password) = pair.split_once(':').unwrap_or((pair.as_str(), ""));
    users
        .iter()
        .find(|u| u.name == name && u.password == password)
        .ok_or_else(|| {
            refused(challenge(format!(
                "unable to authenticate user [{name}] for REST request [{}]",
                req.uri
            )))
        })
}

/// `GET|POST /_security/user/_has_privileges`: the index privileges asked for, per index.
pub fn has_privileges(user: &User, req: &Req) -> Result<Reply, EsError> {
    let body = req.json()?.unwrap_or(Value::Null);
    let mut all = true;
    let mut indices = Map::new();
    for entry in body["index"].as_array().into_iter().flatten() {
        let names: Vec<String> = match &entry["names"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(|n| n.as_str().map(String::from)).collect(),
            _ => Vec::new(),
        };
        for name in names {
            let answers = indices.entry(name).or_insert_with(|| json!({}));
            for privilege in entry["privileges"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let granted = user.has(privilege);
                all &= granted;
                answers[privilege] = Value::Bool(granted);
            }
        }
    }
    let mut cluster = Map::new();
    for privilege in body["cluster"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        all = false;
        cluster.insert(privilege.to_string(), Value::Bool(false));
    }
    Ok(Reply::ok(json!({
        "username": user.name,
        "has_all_requested": all,
        "cluster": cluster,
        "index": indices,
        "application": {},
    })))
}

/// `GET /_security/_authenticate`.
pub fn authenticate_reply(user: &User) -> Reply {
    Reply::ok(json!({
        "username": user.name,
        "roles": [],
        "full_name": null,
        "email": null,
        "metadata": {},
        "enabled": true,
        "authentication_realm": {"name": "default_native", "type": "native"},
        "lookup_realm": {"name": "default_native", "type": "native"},
        "authentication_type": "realm",
    }))
}
