//! `cargo bench --bench publish [-- --requests N] [--batch B] [--runs R]`: does recon's AMQP transport
//! publish re-projection requests as fast as a raw lapin publisher?
//!
//! Starts a throwaway RabbitMQ node (the tests' support code; `RECON_TEST_AMQP_URL` uses an existing
//! broker), declares a durable exchange and queue, builds N requests (default 100,000) once, then times in
//! one run, on the same connection settings and the same batches of B (default 1,000):
//! - **raw lapin**: confirm mode, every message of a batch published (mandatory, persistent, the same
//!   properties), then the batch's confirms awaited;
//! - **recon**: `publish::amqp::AmqpTransport::publish` on each batch (the same, plus its bookkeeping:
//!   returns, nack retries, reconnects).
//!
//! The queue is purged between measurements. Prints the figures; docs/performance.md records them.
//! Target: recon >= 0.8x the raw publisher. `--runs R` repeats both (the machine is shared).

use std::time::Instant;

use anyhow::Context;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::ShortString;
use lapin::BasicProperties;
use serde_json::json;

use recon::config::PublishConfig;
use recon::publish::amqp::AmqpTransport;
use recon::publish::{Delivery, Message, Request, Transport, REQUEST_SCHEMA};
use recon::secret::Secret;
use recon::source::retry::RetryPolicy;

#[allow(dead_code)]
#[path = "../tests/integration/support/rabbitmq.rs"]
mod rabbitmq;

fn main() -> anyhow::Result<()> {
    let mut requests: usize = 100_000;
    let mut batch: usize = 1000;
    let mut runs: u32 = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--requests" => requests = args.next().context("--requests N")?.parse()?,
            "--batch" => batch = args.next().context("--batch B")?.parse()?,
            "--runs" => runs = args.next().context("--runs R")?.parse()?,
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(requests, batch.max(1), runs.max(1)))
}

async fn bench(n: usize, batch: usize, runs: u32) -> anyhow::Result<()> {
    let broker = rabbitmq::shared().await;
    let (exchange, queue) = rabbitmq::names();
    {
        let conn = broker.connect().await;
        let channel = conn.create_channel().await?;
        rabbitmq::declare(&channel, &exchange, &queue, "#").await;
        conn.close(200, "OK").await?;
    }
    let run_id = "bench";
    let messages: Vec<Message> = (1..=n)
        .map(|i| {
            let request = Request {
                schema: REQUEST_SCHEMA.into(),
                key: json!(i),
                kind: "mismatched".into(),
                run: run_id.into(),
                requested_at: "2026-12-06T00:00:00.000Z".into(),
                paths: vec!["customerName".into()],
            };
            Message::request(format!("{run_id}-{i}"), format!("order.mismatched.{i}"), &request)
        })
        .collect();
    println!("publish: {n} requests in batches of {batch}, confirms on, {runs} run(s)");
    println!("| run | raw lapin | req/s | recon | req/s | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for run in 1..=runs {
        purge(broker, &queue).await?;
        let raw = raw_publish(&broker.url, &exchange, &messages, batch).await?;
        purge(broker, &queue).await?;
        let ours = recon_publish(&broker.url, &exchange, &messages, batch).await?;
        println!(
            "| {run} | {raw:.2} s | {:.0} | {ours:.2} s | {:.0} | {:.2} |",
            n as f64 / raw,
            n as f64 / ours,
            raw / ours
        );
    }
    purge(broker, &queue).await?;
    Ok(())
}

async fn purge(broker: &rabbitmq::Broker, queue: &str) -> anyhow::Result<()> {
    let conn = broker.connect().await;
    let channel = conn.create_channel().await?;
    channel.queue_purge(queue, QueuePurgeOptions::default()).await?;
    conn.close(200, "OK").await?;
    Ok(())
}

/// Seconds for the raw publisher: each batch published, then its confirms awaited.
async fn raw_publish(url: &str, exchange: &str, messages: &[Message], batch: usize) -> anyhow::Result<f64> {
    let conn = rabbitmq::connect(url).await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let bodies: Vec<Vec<u8>> = messages.iter().map(Message::body_bytes).collect();
    let start = Instant::now();
    for (chunk, bodies) in messages.chunks(batch).zip(bodies.chunks(batch)) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for (m, body) in chunk.iter().zip(bodies) {
            let properties = BasicProperties::default()
                .with_content_type(ShortString::from("application/json"))
                .with_delivery_mode(2)
                .with_message_id(ShortString::from(m.message_id.as_str()))
                .with_correlation_id(ShortString::from(m.correlation_id.as_str()))
                .with_type(ShortString::from(REQUEST_SCHEMA))
                .with_app_id(ShortString::from("recon"));
            confirms.push(
                channel
                    .basic_publish(
                        exchange,
                        &m.routing_key,
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        body,
                        properties,
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            match confirm.await? {
                Confirmation::Ack(None) => {}
                other => anyhow::bail!("raw publisher: not acked: {other:?}"),
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    conn.close(200, "OK").await?;
    Ok(secs)
}

/// Seconds for recon's transport on the same batches.
async fn recon_publish(url: &str, exchange: &str, messages: &[Message], batch: usize) -> anyhow::Result<f64> {
    let config = PublishConfig {
        url: Some(Secret::new(url)),
        exchange: Some(exchange.to_string()),
        ..PublishConfig::default()
    };
    let transport = AmqpTransport::connect(&config, RetryPolicy::default()).await?;
    let start = Instant::now();
    for chunk in messages.chunks(batch) {
        let deliveries = transport.publish(chunk).await?;
        if let Some(other) = deliveries.iter().find(|d| **d != Delivery::Confirmed) {
            anyhow::bail!("recon: not confirmed: {other:?}");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    transport.close().await?;
    Ok(secs)
}
