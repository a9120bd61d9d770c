//! `--via amqp`: re-projection requests published to a RabbitMQ exchange (AMQP 0-9-1, with lapin).
//!
//! What a message being "requested" rests on:
//! - **publisher confirms**: the channel is in confirm mode; a message counts only once the broker acked
//!   it. A `basic.nack` means the broker did not take it: it is published again, with the one retry
//!   policy.
//! - **`mandatory`**: a message no queue accepts comes back (`basic.return`, 312 NO_ROUTE) before its
//!   ack; lapin hands the return with the ack, so it is reported, never counted as requested.
//! - **persistent** (`delivery_mode` 2): with a durable queue, a confirmed message survives a broker
//!   restart.
//! - **a lost connection**: the messages not yet confirmed are in doubt; after a reconnect (retried
//!   with the same policy) they are published again, with the same `message_id`. Delivery is
//!   therefore at-least-once: a projector drops a duplicate by its `message_id`.
//!
//! recon declares nothing unless asked (`--declare`: the exchange, durable and of type topic; never a
//! queue, which is the projector's): a missing exchange is an error before anything is published.

use std::time::Duration;

use anyhow::Context;
use backon::BackoffBuilder;
use futures::future::BoxFuture;
use futures::FutureExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use super::{Delivery, Message, Transport, CONTENT_TYPE};
use crate::config::PublishConfig;
use crate::secret::{redact_url, Secret};
use crate::source::retry::RetryPolicy;

/// `delivery_mode` of a persistent message.
const PERSISTENT: u8 = 2;

pub struct AmqpTransport {
    url: Secret,
    exchange: String,
    vhost: String,
    /// Declare the exchange instead of only checking it.
    declare: bool,
    /// How long one attempt at a batch may take, publishing and confirms together.
    confirm_timeout: Duration,
    retry: RetryPolicy,
    /// The connection and its confirm-mode channel; None after a connection was lost.
    link: tokio::sync::Mutex<Option<(Connection, Channel)>>,
}

impl AmqpTransport {
    /// Connects and checks that the exchange exists (a passive declare), retrying an unreachable
    /// broker with the policy.
    pub async fn connect(config: &PublishConfig, retry: RetryPolicy) -> anyhow::Result<AmqpTransport> {
        let url = config.url.clone().context(
            "--via amqp needs the broker's URL: set publish.url, AMQP_URL or --amqp-url (amqp://user:password@host:5672/vhost)",
        )?;
        let exchange = config
            .exchange
            .clone()
            .context("--via amqp needs publish.exchange: the exchange the projector's queue is bound to")?;
        let uri: lapin::uri::AMQPUri = url
            .expose()
            .parse()
            .map_err(|e: String| anyhow::anyhow!("publish.url {} is not an AMQP URL: {e}", redact_url(url.expose())))?;
        let transport = AmqpTransport {
            url,
            exchange,
            vhost: uri.vhost,
            declare: config.declare,
            confirm_timeout: config.confirm_timeout,
            retry,
            link: tokio::sync::Mutex::new(None),
        };
        let mut backoff = transport.retry.backoff().build();
        loop {
            match transport.open().await {
                Ok(link) => {
                    *transport.link.lock().await = Some(link);
                    return Ok(transport);
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(e)) => match backoff.next() {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => return Err(e.context("the broker stayed unreachable through every retry")),
                },
            }
        }
    }

    /// A new connection and a confirm-mode channel, the exchange checked.
    async fn open(&self) -> Result<(Connection, Channel), Failure> {
        let shown = redact_url(self.url.expose());
        let properties = ConnectionProperties::default()
            .with_connection_name("recon".into())
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current());
        let connection = Connection::connect(self.url.expose(), properties)
            .await
            .map_err(|e| classify(e, || format!("cannot connect to the broker at {shown}")))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| Failure::Transient(anyhow::Error::new(e).context("cannot open a channel")))?;
        let options = ExchangeDeclareOptions {
            passive: !self.declare,
            durable: self.declare,
            ..ExchangeDeclareOptions::default()
        };
        if let Err(e) = channel
            .exchange_declare(&self.exchange, ExchangeKind::Topic, options, FieldTable::default())
            .await
        {
            if let lapin::ErrorKind::ProtocolError(amqp) = e.kind() {
                if amqp.get_id() == 406 {
                    let _ = connection.close(200, "OK").await;
                    return Err(Failure::Fatal(anyhow::anyhow!(
                        "exchange {:?} exists in vhost {:?} on {shown}, but not as --declare would make it (durable, \
                         type topic): {}; leave out --declare to use it as it is",
                        self.exchange,
                        self.vhost,
                        amqp.get_message()
                    )));
                }
                if amqp.get_id() == 404 {
                    let _ = connection.close(200, "OK").await;
                    return Err(Failure::Fatal(anyhow::anyhow!(
                        "exchange {:?} does not exist in vhost {:?} on {shown}; recon declares nothing unless \
                         --declare: create it (with the projector's queue bound to it) or set publish.exchange",
                        self.exchange,
                        self.vhost
                    )));
                }
            }
            return Err(classify(e, || format!("cannot check exchange {:?}", self.exchange)));
        }
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| Failure::Transient(anyhow::Error::new(e).context("cannot turn on publisher confirms")))?;
        Ok((connection, channel))
    }

    /// The open channel, reconnecting when the last connection was lost.
    async fn channel(&self) -> Result<Channel, Failure> {
        let mut link = self.link.lock().await;
        if let Some((connection, channel)) = link.as_ref() {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        *link = None;
        let opened = self.open().await?;
        let channel = opened.1.clone();
        *link = Some(opened);
        Ok(channel)
    }

    async fn forget_link(&self) {
        if let Some((connection, _)) = self.link.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), connection.close(200, "OK")).await;
        }
    }

    /// A batch the broker neither took nor confirmed in time. Not retried: a broker that blocks publishers
    /// (a memory or disk alarm) would block the next attempt too; the batch is in doubt.
    fn unconfirmed(&self, messages: usize) -> anyhow::Error {
        anyhow::anyhow!(
            "the broker did not confirm a batch of {messages} requests within {} (publish.confirm_timeout); \
             it may be blocking publishers (a memory or disk alarm: see the broker's log)",
            humantime::format_duration(self.confirm_timeout)
        )
    }

    fn properties(&self, m: &Message) -> BasicProperties {
        BasicProperties::default()
            .with_content_type(ShortString::from(CONTENT_TYPE))
            .with_delivery_mode(PERSISTENT)
            .with_message_id(ShortString::from(m.message_id.as_str()))
            .with_correlation_id(ShortString::from(m.correlation_id.as_str()))
            .with_type(ShortString::from(super::REQUEST_SCHEMA))
            .with_app_id(ShortString::from("recon"))
    }

    async fn publish_batch(&self, batch: &[Message]) -> anyhow::Result<Vec<Delivery>> {
        let mut outcomes: Vec<Option<Delivery>> = vec![None; batch.len()];
        let bodies: Vec<Vec<u8>> = batch.iter().map(Message::body_bytes).collect();
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        let mut backoff = self.retry.backoff().build();
        let mut last_nack = String::new();
        loop {
            let mut again = Vec::new();
            let mut lost: Option<anyhow::Error> = None;
            match self.channel().await {
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(e)) => {
                    lost = Some(e);
                    again = pending.clone();
                }
                Ok(channel) => {
                    let deadline = tokio::time::Instant::now() + self.confirm_timeout;
                    // Every message out first (pipelined), then the confirms.
                    let mut confirms = Vec::with_capacity(pending.len());
                    for (n, &i) in pending.iter().enumerate() {
                        let sent = channel.basic_publish(
                            &self.exchange,
                            &batch[i].routing_key,
                            BasicPublishOptions {
                                mandatory: true,
                                ..BasicPublishOptions::default()
                            },
                            &bodies[i],
                            self.properties(&batch[i]),
                        );
                        let sent = tokio::time::timeout_at(deadline, sent)
                            .await
                            .map_err(|_| self.unconfirmed(batch.len()))?;
                        match sent {
                            Ok(confirm) => confirms.push((i, confirm)),
                            Err(e) => {
                                lost = Some(anyhow::Error::new(e).context("the connection to the broker was lost"));
                                again.extend(&pending[n..]);
                                break;
                            }
                        }
                    }
                    for (i, confirm) in confirms {
                        let confirmed = tokio::time::timeout_at(deadline, confirm)
                            .await
                            .map_err(|_| self.unconfirmed(batch.len()))?;
                        match confirmed {
                            Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => {
                                outcomes[i] = Some(Delivery::Confirmed)
                            }
                            Ok(Confirmation::Ack(Some(returned))) => {
                                outcomes[i] = Some(Delivery::Returned(format!(
                                    "{} {} (exchange {:?}, routing key {:?})",
                                    returned.reply_code, returned.reply_text, self.exchange, batch[i].routing_key
                                )))
                            }
                            Ok(Confirmation::Nack(_)) => {
                                last_nack = "nacked by the broker".into();
                                again.push(i);
                            }
                            Err(e) => {
                                lost.get_or_insert_with(|| {
                                    anyhow::Error::new(e).context("the connection to the broker was lost")
                                });
                                again.push(i);
                            }
                        }
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            if lost.is_some() {
                self.forget_link().await;
            }
            again.sort_unstable();
            match backoff.next() {
                Some(pause) => tokio::time::sleep(pause).await,
                None => {
                    if let Some(e) = lost {
                        // In doubt: resume publishes them again.
                        return Err(e.context(format!(
                            "{} messages unconfirmed after every retry; their delivery is unknown",
                            again.len()
                        )));
                    }
                    for i in again {
                        outcomes[i] = Some(Delivery::Nacked(format!("{last_nack} after every retry")));
                    }
                    break;
                }
            }
            pending = again;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every message has an outcome"))
            .collect())
    }
}

impl Transport for AmqpTransport {
    fn publish<'a>(&'a self, batch: &'a [Message]) -> BoxFuture<'a, anyhow::Result<Vec<Delivery>>> {
        self.publish_batch(batch).boxed()
    }

    fn describe(&self) -> String {
        format!("exchange {:?} on {}", self.exchange, redact_url(self.url.expose()))
    }

    fn close(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        async move {
            self.forget_link().await;
            Ok(())
        }
        .boxed()
    }
}

enum Failure {
    /// Retrying cannot help (a refused login, a missing exchange).
    Fatal(anyhow::Error),
    /// A reset, a refused connection, a broker starting up.
    Transient(anyhow::Error),
}

/// Protocol refusals (403 ACCESS_REFUSED, 404, 530 NOT_ALLOWED) are fatal; I/O errors, and 320
/// CONNECTION_FORCED (a broker shutting down), are transient.
fn classify(e: lapin::Error, what: impl FnOnce() -> String) -> Failure {
    let fatal = matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() != 320);
    let e = anyhow::Error::new(e).context(what());
    if fatal {
        Failure::Fatal(e)
    } else {
        Failure::Transient(e)
    }
}

/// The vhost an AMQP URL names, for messages (`%2f` is `/`).
pub fn vhost_of(url: &str) -> Option<String> {
    url.parse::<lapin::uri::AMQPUri>().ok().map(|u| u.vhost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vhost_is_read_from_the_url() {
        assert_eq!(vhost_of("amqp://guest:guest@127.0.0.1:5672/%2f").as_deref(), Some("/"));
        assert_eq!(vhost_of("amqps://u:p@broker/orders").as_deref(), Some("orders"));
    }

    #[tokio::test]
    async fn a_missing_url_or_exchange_says_what_to_set() {
        let config = PublishConfig::default();
        let e = AmqpTransport::connect(&config, RetryPolicy::default())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("publish.url, AMQP_URL or --amqp-url"), "{e}");
        let config = PublishConfig {
            url: Some(Secret::new("amqp://guest:hunter2@127.0.0.1:1/%2f")),
            ..PublishConfig::default()
        };
        let e = AmqpTransport::connect(&config, RetryPolicy::default())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("publish.exchange"), "{e}");
    }
}
