//! `recon demo`: a whole check on an embedded shop — a throwaway PostgreSQL, a read model (the
//! Elasticsearch-API emulator in-process, or a throwaway redis-server with `--read-model redis`), a
//! projection with injected drift of every kind the read model can hold — then cleanup.

use std::io::IsTerminal;

use anyhow::{bail, Context};
use futures::TryStreamExt;
use serde_json::{json, Map, Value};

use super::check::{run_check, CheckOptions};
use super::Outcome;
use crate::cli::{DemoArgs, DemoReadModel};
use crate::config::{parse_file, Overrides, Settings};
use crate::model::{Key, KeyedDoc, Summary};
use crate::progress::ProgressMode;
use crate::report::Format;
use crate::source::elasticsearch::wire::CreateIndex;
use crate::source::elasticsearch::{admin, ConnectSettings, EsClient};
use crate::source::postgres::{PostgresSettings, PostgresSource};
use crate::source::{DocumentSource, KeyRange};
use recon_es_emulator::{Emulator, EmulatorConfig};
use recon_testkit::pgcluster::PgCluster;
use recon_testkit::redis_server::RedisServer;
use recon_testkit::shop;

/// The alias the demo's read model is served under, and its one index.
const ALIAS: &str = "orders";
const INDEX: &str = "orders-v1";

pub async fn run(args: DemoArgs) -> anyhow::Result<Outcome> {
    if args.orders < 1000 {
        bail!("--orders must be at least 1000 so that every kind of drift can be injected");
    }
    // Listen before the cluster exists: the signals' default action kills the process on the spot and
    // leaves the cluster's directory behind.
    super::stop_requested();
    // First, so that a missing redis-server is said before anything else starts. Killed when dropped,
    // whatever happens below.
    let redis = match args.read_model {
        DemoReadModel::Elasticsearch => None,
        DemoReadModel::Redis => {
            say(&args, "starting a throwaway redis-server (nothing persisted)");
            Some(tokio::task::spawn_blocking(RedisServer::start).await??)
        }
    };
    say(
        &args,
        "starting a throwaway PostgreSQL from the system's server binaries",
    );
    // Not raced against an interrupt: a half-made cluster cleans up after itself, a made one below.
    let started = tokio::task::spawn_blocking(PgCluster::start).await?;
    let cluster = match started {
        Ok(cluster) => cluster,
        // Ctrl-C on a terminal reaches initdb and postgres too, and fails the start.
        Err(_) if super::stop_requested() => return Ok(interrupted(&args)),
        Err(e) => return Err(e),
    };
    let result = tokio::select! {
        biased;
        _ = super::interrupted() => None,
        result = on_cluster(&cluster, redis.as_ref(), &args) => Some(result),
    };
    if let Some(redis) = redis {
        redis.stop();
    }
    // Stops the server and removes its directory, whatever happened.
    let stopped = tokio::task::spawn_blocking(move || cluster.stop()).await?;
    match result {
        None => {
            stopped?;
            Ok(interrupted(&args))
        }
        Some(Err(e)) => Err(e),
        Some(Ok(outcome)) => {
            stopped?;
            say(&args, "cleaned up");
            Ok(outcome)
        }
    }
}

fn say(args: &DemoArgs, text: &str) {
    if !args.quiet {
        crate::note!("recon demo: {text}");
    }
}

fn interrupted(args: &DemoArgs) -> Outcome {
    say(
        args,
        "interrupted; the throwaway servers are stopped and their directories removed",
    );
    Outcome::Interrupted
}

/// The demo proper, on a running cluster (and redis-server, for that read model); the caller stops
/// them.
async fn on_cluster(cluster: &PgCluster, redis: Option<&RedisServer>, args: &DemoArgs) -> anyhow::Result<Outcome> {
    let pg_url = cluster.create_database("shop")?;
    say(args, &format!("loading a shop of {} orders", args.orders));
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&pg_url).await?;
    sqlx::raw_sql(shop::schema_sql())
        .execute(&mut conn)
        .await
        .context("creating the shop schema")?;
    sqlx::raw_sql(&shop::seed_sql(args.orders, 42))
        .execute(&mut conn)
        .await
        .context("seeding the shop")?;

    let (injected, config, emulator) = match redis {
        Some(redis) => {
            say(
                args,
                "projecting the orders into Redis (a JSON string per order), with drift injected",
            );
            let injected = project_redis(&pg_url, &redis.url()).await?;
            (injected, demo_config(&pg_url, &redis_section(&redis.url())), None)
        }
        None => {
            say(args, "starting the Elasticsearch-API emulator in-process");
            let emulator = Emulator::start("127.0.0.1:0", EmulatorConfig::default()).await?;
            let es = EsClient::connect(&ConnectSettings::new(emulator.url())).await?;
            admin::create_index(&es, INDEX, &index_body()).await?;

            say(args, "projecting the orders into the read model, with drift injected");
            let injected = project(&pg_url, &es).await?;
            admin::refresh(&es, INDEX).await?;
            let config = demo_config(&pg_url, &elasticsearch_section(&emulator.url()));
            (injected, config, Some(emulator))
        }
    };

    let settings = Settings::resolve(
        parse_file(&config, "demo recon.toml")?,
        None,
        &Overrides::default(),
        &|_| None,
    )?;
    say(args, "running recon check with this configuration:");
    if !args.quiet {
        for line in config.lines().filter(|l| !l.starts_with("url")) {
            crate::note!("    {line}");
        }
    }
    let terminal = std::io::stdout().is_terminal();
    let options = CheckOptions {
        grace: None,
        allow: 0,
        limit: None,
        reports: vec![super::check::ReportTarget {
            format: args
                .format
                .map(Format::from)
                .unwrap_or(if terminal { Format::Table } else { Format::Json }),
            path: None,
        }],
        progress: ProgressMode::detect(args.quiet),
        color: crate::terminal::colour_stdout(),
        scale: Default::default(),
    };
    let result = run_check(&settings, &options).await?;

    if let Some(emulator) = emulator {
        emulator.shutdown().await;
    }
    drop(conn);

    if result.outcome == Outcome::Interrupted {
        return Ok(Outcome::Interrupted);
    }
    let found = &result.summary;
    let counts = |s: &Summary| {
        let mut text = format!(
            "{} missing, {} orphaned, {} mismatched, {} duplicate",
            s.missing, s.orphaned, s.mismatched, s.duplicate
        );
        if redis.is_some() {
            text.push_str(&format!(", {} unkeyed", s.unkeyed));
        }
        text
    };
    if counts(found) != counts(&injected) {
        bail!(
            "the check did not find exactly the injected drift: injected {}; found {}",
            counts(&injected),
            counts(found)
        );
    }
    say(
        args,
        &format!(
            "found exactly the injected drift ({}) among {} orders",
            counts(found),
            found.source_rows
        ),
    );
    Ok(Outcome::InSync)
}

fn index_body() -> CreateIndex {
    let object = |value: Value| -> Map<String, Value> { serde_json::from_value(value).expect("an object literal") };
    CreateIndex {
        settings: object(json!({"number_of_shards": 1, "number_of_replicas": 0})),
        mappings: object(json!({"properties": {
            "orderId": {"type": "long"},
            "customerName": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
            "products": {"properties": {
                "sku": {"type": "keyword"}, "name": {"type": "text"}, "price": {"type": "double"}
            }},
            "totalPrice": {"type": "double"},
            "orderDate": {"type": "date"},
            "indexedAt": {"type": "date"}
        }})),
        aliases: object(json!({ALIAS: {"is_write_index": true}})),
    }
}

/// The demo's recon.toml, the same for either read model but for its section.
fn demo_config(pg_url: &str, read_model: &str) -> String {
    format!(
        r#"[postgres]
url = "{pg_url}"
query = """{query}"""
key = "orderId"
updated_at = "updatedAt"

{read_model}
[compare]
ignore = ["indexedAt", "updatedAt"]
[compare.fields]
orderDate = {{ as = "instant" }}
totalPrice = {{ as = "number", tolerance = 0.005 }}
products = {{ as = "set", key = "sku" }}
"#,
        query = shop::projection_query()
    )
}

fn elasticsearch_section(es_url: &str) -> String {
    format!("[elasticsearch]\nurl = \"{es_url}\"\nindex = \"{ALIAS}\"\n")
}

fn redis_section(redis_url: &str) -> String {
    format!("[redis]\nurl = \"{redis_url}\"\nkey_pattern = \"order:{{}}\"\nencoding = \"json\"\n")
}

/// The projector of the Redis demo: every order becomes a JSON string under `order:ID`, except where
/// drift is injected (as [`project`] does, but a key-value store holds no duplicates: instead a value
/// a crashed projector left half-written, and a key whose key part is no order id).
async fn project_redis(pg_url: &str, redis_url: &str) -> anyhow::Result<Summary> {
    let source = PostgresSource::connect(PostgresSettings {
        updated_at: Some("updatedAt".to_string()),
        ..PostgresSettings::new(pg_url, shop::projection_query(), "orderId")
    })
    .await?;
    let client = redis::Client::open(redis_url)?;
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .context("cannot connect to the demo's redis-server")?;
    let mut docs = source.open_scan(KeyRange::all()).await?.docs;
    let mut injected = Summary::default();
    let mut values: Vec<(String, Vec<u8>)> = Vec::new();
    let mut last_id = 0;
    while let Some(KeyedDoc { key, doc, .. }) = docs.try_next().await? {
        let Key::Int(id) = key else {
            bail!("the shop's keys are integers")
        };
        last_id = id;
        let mut doc = doc.into_json();
        doc.remove("updatedAt");
        doc.insert("indexedAt".into(), json!("2026-01-01T00:00:00Z"));
        if id % 997 == 0 {
            injected.missing += 1; // the create event was lost
            continue;
        }
        let mut value = serde_json::to_vec(&doc)?;
        if id % 1499 == 3 {
            injected.mismatched += 1; // the projector crashed mid-write
            value.truncate(value.len() / 2);
        } else if id % 389 == 7 {
            injected.mismatched += 1; // a rename event was lost
            doc.insert("customerName".into(), json!("(stale) customer name"));
            value = serde_json::to_vec(&doc)?;
        }
        values.push((format!("order:{id}"), value));
        if values.len() >= BULK_DOCS {
            set_all(&mut redis, std::mem::take(&mut values)).await?;
        }
    }
    // Orders deleted in PostgreSQL whose delete never reached the read model.
    for id in last_id + 1..=last_id + 3 {
        injected.orphaned += 1;
        let doc = json!({"orderId": id, "customerName": "Gone Customer", "products": [], "totalPrice": 0,
                          "orderDate": "2024-06-01T00:00:00Z"});
        values.push((format!("order:{id}"), serde_json::to_vec(&doc)?));
    }
    // A key an old projector wrote under another naming scheme.
    injected.unkeyed += 1;
    values.push(("order:legacy-1".into(), b"{\"orderId\": 1}".to_vec()));
    set_all(&mut redis, values).await?;
    Ok(injected)
}

async fn set_all(redis: &mut redis::aio::MultiplexedConnection, values: Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    let mut pipe = redis::pipe();
    for (key, value) in values {
        pipe.cmd("SET").arg(key).arg(value).ignore();
    }
    let () = pipe
        .query_async(redis)
        .await
        .context("the demo's load into Redis failed")?;
    Ok(())
}

/// Plays the projector: every order becomes a document, except where drift is injected. Returns the
/// drift it injected, which the check must find exactly.
async fn project(pg_url: &str, es: &EsClient) -> anyhow::Result<Summary> {
    let source = PostgresSource::connect(PostgresSettings {
        updated_at: Some("updatedAt".to_string()),
        ..PostgresSettings::new(pg_url, shop::projection_query(), "orderId")
    })
    .await?;
    let mut docs = source.open_scan(KeyRange::all()).await?.docs;
    let mut injected = Summary::default();
    let mut bulk = Vec::new();
    let mut last_id = 0;
    while let Some(KeyedDoc { key, doc, .. }) = docs.try_next().await? {
        let Key::Int(id) = key else {
            bail!("the shop's keys are integers")
        };
        last_id = id;
        let mut doc = doc.into_json();
        doc.remove("updatedAt");
        doc.insert("indexedAt".into(), json!("2026-01-01T00:00:00Z"));
        // Not drift: the projector writes the same instant with an offset and prices with one digit less;
        // the [compare.fields] rules say these are equal.
        if id % 10 == 0 {
            if let Some(Value::String(date)) = doc.get("orderDate").cloned() {
                doc.insert("orderDate".into(), json!(date.replace('Z', "+00:00")));
            }
        }
        if id % 997 == 0 {
            injected.missing += 1; // the create event was lost
            continue;
        }
        // Each order gets at most one kind of drift, so the counts below are exact.
        if id % 1499 == 3 {
            injected.duplicate += 1; // a retried create under a generated id
            push_index(&mut bulk, &format!("retry-{id}"), &doc);
        } else if id % 389 == 7 {
            injected.mismatched += 1; // a rename event was lost
            doc.insert("customerName".into(), json!("(stale) customer name"));
        } else if id % 541 == 11 {
            injected.mismatched += 1; // a price change event was lost (catalogue prices are >= 1.00)
            if let Some(Value::Array(products)) = doc.get_mut("products") {
                if let Some(first) = products.first_mut() {
                    first["price"] = json!(0.5);
                }
            }
        }
        push_index(&mut bulk, &id.to_string(), &doc);
        if bulk.len() >= BULK_DOCS {
            send_bulk(es, std::mem::take(&mut bulk)).await?;
        }
    }
    // Orders deleted in PostgreSQL whose delete never reached the read model.
    for id in last_id + 1..=last_id + 3 {
        injected.orphaned += 1;
        let doc = json!({"orderId": id, "customerName": "Gone Customer", "products": [], "totalPrice": 0,
                          "orderDate": "2024-06-01T00:00:00Z"});
        push_index(&mut bulk, &id.to_string(), doc.as_object().expect("an object"));
    }
    send_bulk(es, bulk).await?;
    Ok(injected)
}

/// Documents per bulk request of the projection (a few megabytes of the shop's orders).
const BULK_DOCS: usize = 5000;

fn push_index(bulk: &mut Vec<(String, Map<String, Value>)>, id: &str, doc: &Map<String, Value>) {
    bulk.push((id.to_string(), doc.clone()));
}

async fn send_bulk(es: &EsClient, docs: Vec<(String, Map<String, Value>)>) -> anyhow::Result<()> {
    admin::index_documents(es, ALIAS, &docs)
        .await
        .context("the demo's bulk load failed")
}
