//! `--via http`: re-projection requests POSTed in batches to the projector's admin endpoint
//! (`publish.http_url`). The body is the batch's envelopes (the lines `--via ndjson` writes) as one JSON
//! array (`http_format = "json"`, `Content-Type: application/json`) or as NDJSON (`"ndjson"`,
//! `application/x-ndjson`). A 2xx answer accepts the whole batch; 429, 502, 503, 504 and broken
//! connections are retried with the one retry policy; any other answer refuses the batch.

use anyhow::Context;
use backon::BackoffBuilder;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Serialize;

use super::{Delivery, Message, Transport, CONTENT_TYPE};
use crate::config::{HttpFormat, PublishConfig};
use crate::secret::{redact_url, Secret};
use crate::source::retry::RetryPolicy;

pub struct HttpTransport {
    url: Secret,
    format: HttpFormat,
    client: reqwest::Client,
    retry: RetryPolicy,
}

#[derive(Serialize)]
struct Envelope<'a> {
    message_id: &'a str,
    correlation_id: &'a str,
    routing_key: &'a str,
    content_type: &'a str,
    body: &'a serde_json::Value,
}

impl<'a> Envelope<'a> {
    fn of(m: &'a Message) -> Envelope<'a> {
        Envelope {
            message_id: &m.message_id,
            correlation_id: &m.correlation_id,
            routing_key: &m.routing_key,
            content_type: CONTENT_TYPE,
            body: &m.body,
        }
    }
}

impl HttpTransport {
    pub fn new(config: &PublishConfig, retry: RetryPolicy) -> anyhow::Result<HttpTransport> {
        let url = config
            .http_url
            .clone()
            .context("--via http needs publish.http_url: the projector's endpoint that takes re-projection requests")?;
        let client = reqwest::Client::builder()
            .timeout(config.confirm_timeout)
            .no_proxy()
            .build()
            .context("cannot build the HTTP client")?;
        Ok(HttpTransport {
            url,
            format: config.http_format,
            client,
            retry,
        })
    }

    fn body(&self, batch: &[Message]) -> (Vec<u8>, &'static str) {
        match self.format {
            HttpFormat::Json => {
                let envelopes: Vec<Envelope<'_>> = batch.iter().map(Envelope::of).collect();
                (
                    serde_json::to_vec(&envelopes).expect("envelopes serialize"),
                    CONTENT_TYPE,
                )
            }
            HttpFormat::Ndjson => {
                let mut bytes = Vec::new();
                for m in batch {
                    serde_json::to_writer(&mut bytes, &Envelope::of(m)).expect("an envelope serializes");
                    bytes.push(b'\n');
                }
                (bytes, "application/x-ndjson")
            }
        }
    }

    async fn post(&self, batch: &[Message]) -> anyhow::Result<Vec<Delivery>> {
        let (body, content_type) = self.body(batch);
        let shown = redact_url(self.url.expose());
        let mut backoff = self.retry.backoff().build();
        loop {
            let answer = self
                .client
                .post(self.url.expose())
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.clone())
                .send()
                .await;
            let transient = match answer {
                Ok(response) if response.status().is_success() => {
                    return Ok(vec![Delivery::Confirmed; batch.len()]);
                }
                Ok(response) if matches!(response.status().as_u16(), 429 | 502 | 503 | 504) => {
                    anyhow::anyhow!("{shown} answered {}", response.status())
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let text: String = text.chars().take(200).collect();
                    let reason = format!("{shown} refused the batch: {status} {}", text.trim());
                    return Ok(vec![Delivery::Failed(reason); batch.len()]);
                }
                // reqwest's errors name the URL; say it without its password.
                Err(e) => anyhow::anyhow!("cannot reach {shown}: {}", e.without_url()),
            };
            match backoff.next() {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(transient.context("the projector's endpoint failed every retry")),
            }
        }
    }
}

impl Transport for HttpTransport {
    fn publish<'a>(&'a self, batch: &'a [Message]) -> BoxFuture<'a, anyhow::Result<Vec<Delivery>>> {
        self.post(batch).boxed()
    }

    fn describe(&self) -> String {
        format!("POST {}", redact_url(self.url.expose()))
    }

    fn close(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        async { Ok(()) }.boxed()
    }
}
