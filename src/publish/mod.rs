//! Re-projection requests, and the transports that carry them to the projector: `recon repair --via
//! amqp|http|ndjson`. One small trait ([`Transport`]: publish a batch, one [`Delivery`] per message) with
//! one implementation per way of reaching a projector; the repair flow above it names none of them.
//!
//! The message is a versioned contract (docs/reproject-contract.md): [`REQUEST_SCHEMA`], built by
//! [`Message::request`].

pub mod amqp;
pub mod http;
pub mod ndjson;

use std::path::PathBuf;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::PublishConfig;
use crate::source::retry::RetryPolicy;

/// The `type` of every request body; a projector dispatches on it.
pub const REQUEST_SCHEMA: &str = "recon.reproject/v1";

/// The content type of every message.
pub const CONTENT_TYPE: &str = "application/json";

/// The body of one request: re-project this key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    #[serde(rename = "type")]
    pub schema: String,
    /// The key as the report shows it (a JSON number or string, exact digits).
    pub key: Value,
    /// `missing`, `orphaned`, `mismatched` or `duplicate`: the drift seen when the request was made.
    pub kind: String,
    /// The run's id (also the message's `correlation_id`).
    pub run: String,
    /// RFC 3339, UTC.
    pub requested_at: String,
    /// The differing paths of a mismatched (or duplicated) document; empty otherwise.
    pub paths: Vec<String>,
}

/// One message: its properties and its body, already encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Unique per request and kept across resends, so a projector can drop a redelivered duplicate.
    pub message_id: String,
    /// The run's id.
    pub correlation_id: String,
    pub routing_key: String,
    /// The [`Request`], as JSON.
    pub body: Value,
}

impl Message {
    pub fn request(message_id: String, routing_key: String, request: &Request) -> Message {
        let body = serde_json::to_value(request).expect("a request serializes");
        Message {
            message_id,
            correlation_id: request.run.clone(),
            routing_key,
            body,
        }
    }

    /// The body as sent.
    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).expect("a JSON value serializes")
    }
}

/// Fills `{key}` and `{kind}` into a routing key template. A text key goes in as it is, a number
/// with its digits.
pub fn routing_key(template: &str, key: &Value, kind: &str) -> String {
    let key = match key {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    template.replace("{kind}", kind).replace("{key}", &key)
}

/// How one message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver took responsibility for it (a publisher confirm, a 2xx, a flushed line).
    Confirmed,
    /// The receiver could not route it anywhere (AMQP `mandatory` return, e.g. `312 NO_ROUTE`).
    Returned(String),
    /// The receiver refused it after every retry (an AMQP `basic.nack`).
    Nacked(String),
    /// Refused for good (an HTTP 4xx), with the reason.
    Failed(String),
}

/// A way to hand re-projection requests to the projector.
pub trait Transport: Send + Sync {
    /// Publishes `batch`: one [`Delivery`] per message, in order. Transient failures are retried with
    /// the one retry policy inside; an error means the batch's fate is unknown (the connection was lost
    /// and did not come back in time): every message of it is in doubt.
    fn publish<'a>(&'a self, batch: &'a [Message]) -> BoxFuture<'a, anyhow::Result<Vec<Delivery>>>;

    /// Where the messages go, for messages to people: no secrets.
    fn describe(&self) -> String;

    /// Flushes and closes; called once, after the last batch.
    fn close(&self) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// Which transport `--via` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Amqp,
    Http,
    Ndjson,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Amqp => "amqp",
            Via::Http => "http",
            Via::Ndjson => "ndjson",
        }
    }

    pub fn parse(text: &str) -> Option<Via> {
        match text {
            "amqp" => Some(Via::Amqp),
            "http" => Some(Via::Http),
            "ndjson" => Some(Via::Ndjson),
            _ => None,
        }
    }
}

/// Opens the transport `via` names, from `[publish]`. `output`: where `--via ndjson` writes (stdout
/// when None). Fails before anything is published when the receiver is unreachable or, for AMQP, the
/// exchange does not exist.
pub async fn connect(
    via: Via,
    config: &PublishConfig,
    output: Option<PathBuf>,
    retry: RetryPolicy,
) -> anyhow::Result<Box<dyn Transport>> {
    Ok(match via {
        Via::Ndjson => Box::new(ndjson::NdjsonTransport::open(output)?),
        Via::Http => Box::new(http::HttpTransport::new(config, retry)?),
        Via::Amqp => Box::new(amqp::AmqpTransport::connect(config, retry).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_is_the_contract_and_its_key_keeps_its_digits() {
        let request = Request {
            schema: REQUEST_SCHEMA.into(),
            key: serde_json::from_str("9007199254740993").unwrap(),
            kind: "mismatched".into(),
            run: "r1".into(),
            requested_at: "2026-12-06T00:00:00.000Z".into(),
            paths: vec!["products[sku=A].price".into()],
        };
        let m = Message::request(
            "r1-1".into(),
            routing_key("order.{kind}.{key}", &request.key, "mismatched"),
            &request,
        );
        assert_eq!(m.routing_key, "order.mismatched.9007199254740993");
        assert_eq!(m.correlation_id, "r1");
        assert_eq!(
            String::from_utf8(m.body_bytes()).unwrap(),
            r#"{"type":"recon.reproject/v1","key":9007199254740993,"kind":"mismatched","run":"r1","requested_at":"2026-12-06T00:00:00.000Z","paths":["products[sku=A].price"]}"#
        );
        assert_eq!(routing_key("{key}", &json!("a.b"), "missing"), "a.b");
    }
}
