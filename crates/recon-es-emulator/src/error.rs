//! Elasticsearch's error envelope: `{"error":{"root_cause":[..],"type":..,"reason":..},"status":N}`,
//! or the plain-string form routing-layer errors use.

use serde_json::{json, Map, Value};

/// An error response exactly as Elasticsearch would send it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("HTTP {status}: {body}")]
pub struct EsError {
    pub status: u16,
    pub body: Value,
}

impl EsError {
    /// A structured error whose root cause is itself.
    pub fn new(status: u16, kind: &str, reason: impl Into<String>) -> EsError {
        let cause = json!({"type": kind, "reason": reason.into()});
        EsError {
            status,
            body: json!({"error": {"root_cause": [cause.clone()], "type": kind, "reason": cause["reason"]}, "status": status}),
        }
    }

    /// The plain form: `{"error":"...","status":N}`.
    pub fn plain(status: u16, message: impl Into<String>) -> EsError {
        EsError {
            status,
            body: json!({"error": message.into(), "status": status}),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> EsError {
        EsError::new(400, "illegal_argument_exception", reason)
    }

    pub fn validation(problems: &[String]) -> EsError {
        let mut reason = String::from("Validation Failed: ");
        for (i, p) in problems.iter().enumerate() {
            reason.push_str(&format!("{}: {};", i + 1, p));
        }
        EsError::new(400, "action_request_validation_exception", reason)
    }

    pub fn parsing(reason: impl Into<String>) -> EsError {
        EsError::new(400, "parsing_exception", reason)
    }

    /// Adds a key to the error object and to its root cause (Elasticsearch flattens metadata into both).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> EsError {
        let value = value.into();
        if let Some(err) = self.body.get_mut("error").and_then(Value::as_object_mut) {
            if let Some(Value::Array(causes)) = err.get_mut("root_cause") {
                if let Some(Value::Object(first)) = causes.first_mut() {
                    first.insert(key.to_string(), value.clone());
                }
            }
            err.insert(key.to_string(), value);
        }
        self
    }

    /// Adds the `index`/`index_uuid`/`shard` triple shard-level errors carry.
    pub fn on_shard(self, index: &str, uuid: &str) -> EsError {
        self.with("index_uuid", uuid).with("shard", "0").with("index", index)
    }

    pub fn index_not_found(name: &str) -> EsError {
        EsError::new(404, "index_not_found_exception", format!("no such index [{name}]"))
            .with("resource.type", "index_or_alias")
            .with("resource.id", name)
            .with("index_uuid", "_na_")
            .with("index", name)
    }

    pub fn index_closed(name: &str, uuid: &str) -> EsError {
        EsError::new(400, "index_closed_exception", "closed")
            .with("index_uuid", uuid)
            .with("index", name)
    }

    pub fn rejected(pool: &str) -> EsError {
        EsError::new(
            429,
            "es_rejected_execution_exception",
            format!(
                "rejected execution of coordinating operation [shard_detail=[], coordinating_and_primary_bytes=0, \
                 replica_bytes=0, all_bytes=0, coordinating_operation_bytes=0, max_coordinating_and_primary_bytes=0] \
                 on EsThreadPoolExecutor[name = emulator/{pool}, queue capacity = 200, task execution rejected]"
            ),
        )
    }

    /// The structured `error` object alone (for bulk items and mget entries).
    pub fn error_object(&self) -> Value {
        let mut err = self.body.get("error").cloned().unwrap_or(Value::Null);
        if let Value::Object(map) = &mut err {
            map.remove("root_cause");
        }
        err
    }

    /// Wraps a shard-level failure in `search_phase_execution_exception` "all shards failed".
    pub fn all_shards_failed(self, index: &str) -> EsError {
        let inner = self.error_object();
        let status = self.status;
        let mut root = inner.clone();
        if let Value::Object(m) = &mut root {
            m.remove("caused_by");
        }
        let body = json!({
            "error": {
                "root_cause": [root],
                "type": "search_phase_execution_exception",
                "reason": "all shards failed",
                "phase": "query",
                "grouped": true,
                "failed_shards": [{"shard": 0, "index": index, "node": "emulator-node-id", "reason": inner.clone()}],
                "caused_by": inner,
            },
            "status": status,
        });
        EsError { status, body }
    }

    pub fn search_context_missing(id: &str) -> EsError {
        let inner = json!({"type": "search_context_missing_exception", "reason": format!("No search context found for id [{id}]")});
        EsError {
            status: 404,
            body: json!({
                "error": {
                    "root_cause": [inner.clone()],
                    "type": "search_phase_execution_exception",
                    "reason": "all shards failed",
                    "phase": "query",
                    "grouped": true,
                    "failed_shards": [{"shard": -1, "index": null, "reason": inner.clone()}],
                    "caused_by": inner,
                },
                "status": 404,
            }),
        }
    }
}

/// Builds an object from pairs while keeping insertion order.
pub fn obj(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}
