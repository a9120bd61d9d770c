//! `recon repair --via amqp|http|ndjson`: repair through the projector, end to end. A real PostgreSQL,
//! the emulator, a real RabbitMQ node (support::rabbitmq) with a test projector consuming its queue,
//! and the recon binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use elasticsearch::params::Refresh;
use elasticsearch::{DeleteParts, Elasticsearch, IndexParts, SearchParts};
use serde_json::{json, Value};

use crate::support::cli_command as recon;
use crate::support::fixture::{drifted, Fixture, ORDERS_QUERY};
use crate::support::rabbitmq::{self, Broker, DeadLetterIf, Projector};
use crate::support::{eventually, Run};

const COMPARE: &str =
    "[compare.fields]\nproducts = { as = \"set\", key = \"sku\" }\norderDate = { as = \"instant\" }\n";

fn command(f: &Fixture, args: &[&str]) -> std::process::Command {
    let mut c = recon();
    c.current_dir(f.dir.path())
        .arg("repair")
        .args(args)
        .stdin(std::process::Stdio::null());
    c
}

async fn repair(f: &Fixture, args: &[&str]) -> Run {
    let mut c = command(f, args);
    let out = tokio::task::spawn_blocking(move || c.output().expect("recon runs"))
        .await
        .unwrap();
    Run::from(out)
}

fn last_json(run: &Run) -> Value {
    let last = run.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr))
}

/// recon.toml for `f` with a `[publish]` section.
fn with_publish(f: &Fixture, publish: &str) {
    f.config(
        "orders",
        ORDERS_QUERY,
        "orderId",
        &format!("{COMPARE}\n[publish]\n{publish}\n"),
    );
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn path_in(f: &Fixture, name: &str) -> PathBuf {
    f.dir.path().join(name)
}

/// `n` rows with no document at all: `n` missing keys 1..=n.
async fn missing(n: i64) -> Fixture {
    let f = Fixture::orders("orders", "long").await;
    f.db.execute(&format!(
        "INSERT INTO orders (id, customer, total, ordered_at) SELECT g, 'c-' || g, g, '2024-01-01T00:00:00Z' \
         FROM generate_series(1, {n}) g"
    ))
    .await;
    f
}

/// What the test projector does with one key: the write model's row, projected by the same query recon
/// reads, indexed under the key (documents under other ids carrying the key deleted); or, when the row
/// is gone, the key's documents deleted.
async fn project(pool: sqlx::PgPool, es: Elasticsearch, key: Value) {
    let id = key.as_i64().expect("integer keys");
    let row: Option<String> = sqlx::query_scalar(&format!(
        "SELECT row_to_json(p)::text FROM ({ORDERS_QUERY}) p WHERE \"orderId\" = $1"
    ))
    .bind(id)
    .fetch_optional(&pool)
    .await
    .unwrap();
    let found: Value = es
        .search(SearchParts::Index(&["orders"]))
        .body(json!({"query": {"term": {"orderId": id}}, "size": 100}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for hit in found["hits"]["hits"].as_array().cloned().unwrap_or_default() {
        let other = hit["_id"].as_str().unwrap();
        if row.is_none() || other != id.to_string() {
            es.delete(DeleteParts::IndexId("orders", other))
                .refresh(Refresh::True)
                .send()
                .await
                .unwrap();
        }
    }
    if let Some(row) = row {
        let mut doc: Value = serde_json::from_str(&row).unwrap();
        doc["indexedAt"] = json!("2026-12-06T00:00:00Z");
        let answer = es
            .index(IndexParts::IndexId("orders", &id.to_string()))
            .refresh(Refresh::True)
            .body(doc)
            .send()
            .await
            .unwrap();
        assert!(answer.status_code().is_success());
    }
}

/// A projector for `f` on `queue`.
async fn projector(f: &Fixture, url: &str, queue: &str, dead_letter: Option<DeadLetterIf>) -> Projector {
    let pool = sqlx::PgPool::connect(&f.db.url).await.unwrap();
    let es = f.es.clone();
    Projector::start(
        url,
        queue,
        move |key| project(pool.clone(), es.clone(), key),
        dead_letter,
    )
    .await
}

/// An exchange and a projector's queue bound to `order.#`, on `broker`.
async fn topology(broker: &Broker) -> (String, String) {
    let (exchange, queue) = rabbitmq::names();
    let conn = broker.connect().await;
    let channel = conn.create_channel().await.unwrap();
    rabbitmq::declare(&channel, &exchange, &queue, "order.#").await;
    let _ = conn.close(200, "OK").await;
    (exchange, queue)
}

/// How many messages wait in `queue`.
async fn queue_depth(broker: &Broker, queue: &str) -> u32 {
    let conn = broker.connect().await;
    let channel = conn.create_channel().await.unwrap();
    let q = channel
        .queue_declare(
            queue,
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = conn.close(200, "OK").await;
    q.message_count()
}

fn keys_of(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.get("key").unwrap_or(v).as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ndjson_carries_one_request_per_drifted_key_and_writes_nothing_itself() {
    let f = drifted().await;
    let audit = path_in(&f, "audit.ndjson");
    // A dry run lists the requests on stderr (stdout is for the messages) and sends none.
    let r = repair(&f, &["--via", "ndjson"]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains("plan: 5 re-projection requests via ndjson"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--via ndjson --apply"), "{}", r.stderr);

    let r = repair(
        &f,
        &[
            "--via",
            "ndjson",
            "--apply",
            "--yes",
            "--quiet",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let lines: Vec<Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: BTreeMap<i64, String> = lines
        .iter()
        .map(|l| {
            (
                l["body"]["key"].as_i64().unwrap(),
                l["body"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        BTreeMap::from([
            (1, "mismatched".into()),
            (2, "mismatched".into()),
            (3, "missing".into()),
            (4, "duplicate".into()),
            (5, "orphaned".into()),
        ])
    );
    let run = lines[0]["correlation_id"].as_str().unwrap().to_string();
    let ids: BTreeSet<&str> = lines.iter().map(|l| l["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "one message_id each");
    for l in &lines {
        assert_eq!(l["correlation_id"], json!(run));
        assert_eq!(l["content_type"], json!("application/json"));
        assert_eq!(l["body"]["type"], json!("recon.reproject/v1"));
        assert_eq!(l["body"]["run"], json!(run));
        assert!(l["body"]["requested_at"].as_str().unwrap().ends_with('Z'));
        let key = l["body"]["key"].as_i64().unwrap();
        assert_eq!(l["routing_key"], json!(format!("reproject.{}.{key}", kinds[&key])));
    }
    let key1 = lines.iter().find(|l| l["body"]["key"] == json!(1)).unwrap();
    assert_eq!(key1["body"]["paths"], json!(["products[sku=A].price"]));
    assert!(r.stderr.contains("published via ndjson: confirmed 5"), "{}", r.stderr);
    // The log: the plan as requests, each message before it went out, each outcome.
    let log = audit_lines(&audit);
    assert_eq!(log[0]["command"], json!("reproject"));
    let count = |kind: &str| log.iter().filter(|l| l["type"] == kind).count();
    assert_eq!((count("request"), count("publish"), count("outcome")), (5, 5, 5));
    // recon wrote nothing: the drift is all still there.
    assert_eq!(f.check_json(&[]).await.0, 1);
    // `recon undo` has nothing to undo in such a log.
    let out = recon()
        .current_dir(f.dir.path())
        .args(["undo", audit.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_requests_converge_through_the_projector_and_a_check_then_passes() {
    let broker = rabbitmq::shared().await;
    let (exchange, queue) = topology(broker).await;
    let f = drifted().await;
    with_publish(
        &f,
        &format!("exchange = \"{exchange}\"\nrouting_key = \"order.{{kind}}.{{key}}\""),
    );
    let projector = projector(&f, &broker.url, &queue, None).await;
    let r = repair(
        &f,
        &[
            "--via",
            "amqp",
            "--amqp-url",
            &broker.url,
            "--apply",
            "--yes",
            "--quiet",
            "--await",
            "60s",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let summary = last_json(&r);
    assert_eq!(summary["schema"], json!("recon.repair-reproject/v1"));
    assert_eq!(summary["outcomes"]["confirmed"], json!(5), "{summary}");
    assert_eq!(keys_of(&summary["converged"]), [1, 2, 3, 4, 5]);
    assert_eq!(summary["not_converged"], json!([]));
    assert_eq!(f.check_json(&[]).await.0, 0, "the projector repaired every key");
    let seen = projector.seen();
    assert_eq!(seen.len(), 5);
    for s in &seen {
        assert_eq!(s.content_type, "application/json");
        assert_eq!(s.delivery_mode, 2, "persistent");
        assert_eq!(s.correlation_id, summary["run"].as_str().unwrap());
        assert_eq!(s.body["type"], json!("recon.reproject/v1"));
    }
    let ids: BTreeSet<&str> = seen.iter().map(|s| s.message_id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    // The password never shows.
    assert!(!format!("{}{}", r.stdout, r.stderr).contains("guest:guest"));
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_the_projector_dead_letters_are_named_as_not_converged() {
    let broker = rabbitmq::shared().await;
    let (exchange, queue) = topology(broker).await;
    let f = missing(20).await;
    with_publish(
        &f,
        &format!(
            "url = \"{}\"\nexchange = \"{exchange}\"\nrouting_key = \"order.{{kind}}.{{key}}\"",
            broker.url
        ),
    );
    let one_in_ten: DeadLetterIf = Arc::new(|key: &Value| key.as_i64().unwrap() % 10 == 3);
    let projector = projector(&f, &broker.url, &queue, Some(one_in_ten)).await;
    let r = repair(
        &f,
        &[
            "--via", "amqp", "--apply", "--yes", "--quiet", "--await", "15s", "--format", "json",
        ],
    )
    .await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let summary = last_json(&r);
    assert_eq!(summary["outcomes"]["confirmed"], json!(20), "the broker took them all");
    assert_eq!(
        summary["not_converged"],
        json!([{"key": 3, "kind": "missing"}, {"key": 13, "kind": "missing"}])
    );
    assert_eq!(summary["converged"].as_array().unwrap().len(), 18);
    assert_eq!(queue_depth(broker, &format!("{queue}.dlq")).await, 2);
    assert_eq!(projector.seen().iter().filter(|s| s.dead_lettered).count(), 2);
    // The text summary names them too.
    let r = repair(&f, &["--via", "amqp", "--apply", "--yes", "--quiet", "--await", "3s"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("converged: 0 of 2 keys"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("not converged: missing key 3\n  not converged: missing key 13"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unroutable_requests_are_reported_and_dead_lettered_and_a_missing_exchange_is_an_error() {
    let broker = rabbitmq::shared().await;
    let (exchange, _queue) = topology(broker).await;
    let f = missing(3).await;
    // Nothing is bound to `lost.#`.
    f.config(
        "orders",
        ORDERS_QUERY,
        "orderId",
        &format!("[publish]\nexchange = \"{exchange}\"\nrouting_key = \"lost.{{key}}\"\n"),
    );
    let dead = path_in(&f, "dead.ndjson");
    // The dry run's command to paste carries the flags, the URL's password masked.
    let r = repair(
        &f,
        &[
            "--via",
            "amqp",
            "--amqp-url",
            &broker.url,
            "--dead-letter",
            dead.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    let masked = broker.url.replace("guest:guest@", "guest:***@");
    assert!(
        r.stderr.contains(&format!(
            "--via amqp --dead-letter {} --amqp-url '{masked}' --apply",
            dead.display()
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("guest:guest"), "{}", r.stderr);
    let r = repair(
        &f,
        &[
            "--via",
            "amqp",
            "--amqp-url",
            &broker.url,
            "--apply",
            "--yes",
            "--quiet",
            "--dead-letter",
            dead.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("confirmed 0, returned 3"), "{}", r.stdout);
    assert!(r.stdout.contains("returned: key 1: 312 NO_ROUTE"), "{}", r.stdout);
    let lines = audit_lines(&dead);
    assert_eq!(keys_of(&json!(lines)), [1, 2, 3]);
    for l in &lines {
        assert!(l["reason"].as_str().unwrap().contains("NO_ROUTE"), "{l}");
        assert_eq!(l["routing_key"], json!(format!("lost.{}", l["key"])));
        assert_eq!(l["body"]["type"], json!("recon.reproject/v1"));
    }

    // An exchange that does not exist: exit 2 before anything is logged or published.
    f.config(
        "orders",
        ORDERS_QUERY,
        "orderId",
        &format!("[publish]\nexchange = \"{exchange}.undeclared\"\n"),
    );
    let audit = path_in(&f, "none.ndjson");
    let r = repair(
        &f,
        &[
            "--via",
            "amqp",
            "--amqp-url",
            &broker.url,
            "--apply",
            "--yes",
            "--quiet",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "exchange \"{exchange}.undeclared\" does not exist in vhost \"/\""
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("guest:guest"), "{}", r.stderr);
    assert!(!audit.exists());

    // --declare makes the exchange (never a queue: so every request comes back unroutable), and a
    // later run finds it without --declare.
    for declare in [true, false] {
        let mut args = vec![
            "--via",
            "amqp",
            "--amqp-url",
            &broker.url,
            "--apply",
            "--yes",
            "--quiet",
        ];
        if declare {
            args.push("--declare");
        }
        let r = repair(&f, &args).await;
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("confirmed 0, returned 3"), "{}", r.stdout);
    }
    // An exchange of another kind is not redeclared.
    let conn = broker.connect().await;
    let channel = conn.create_channel().await.unwrap();
    let fanout = format!("{exchange}.fanout");
    channel
        .exchange_declare(
            &fanout,
            lapin::ExchangeKind::Fanout,
            lapin::options::ExchangeDeclareOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = conn.close(200, "OK").await;
    f.config(
        "orders",
        ORDERS_QUERY,
        "orderId",
        &format!("[publish]\nexchange = \"{fanout}\"\n"),
    );
    let r = repair(
        &f,
        &[
            "--via",
            "amqp",
            "--amqp-url",
            &broker.url,
            "--declare",
            "--apply",
            "--yes",
            "--quiet",
        ],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("but not as --declare would make it (durable, type topic)"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restarted_mid_publish_loses_no_confirmed_request_and_counts_none_twice() {
    let Some(broker) = rabbitmq::own().await else {
        eprintln!(
            "skipped: {} names a broker the tests cannot restart",
            rabbitmq::AMQP_URL_ENV
        );
        return;
    };
    let (exchange, queue) = topology(&broker).await;
    let f = missing(60).await;
    with_publish(
        &f,
        &format!(
            "url = \"{}\"\nexchange = \"{exchange}\"\nrouting_key = \"order.{{kind}}.{{key}}\"",
            broker.url
        ),
    );
    let audit = path_in(&f, "audit.ndjson");
    let child = command(
        &f,
        &[
            "--via",
            "amqp",
            "--apply",
            "--yes",
            "--quiet",
            "--await",
            "0",
            "--batch-size",
            "5",
            "--max-rate",
            "10",
            "--format",
            "json",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let confirmed = |lines: &[Value]| lines.iter().filter(|l| l["status"] == "confirmed").count();
    assert!(
        eventually(Duration::from_secs(30), || async {
            confirmed(&audit_lines(&audit)) >= 10
        })
        .await,
        "the publishing never got going"
    );
    let before = confirmed(&audit_lines(&audit));
    broker.restart().await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(before < 60, "the restart came mid-publish");
    let summary = last_json(&r);
    assert_eq!(
        summary["outcomes"]["confirmed"],
        json!(60),
        "each request counted once: {summary}"
    );
    // Every confirmed message is in the durable queue, whatever the restart did; a message in doubt at
    // the restart may be there twice (at-least-once), under the same message_id.
    let lines = audit_lines(&audit);
    let confirmed_ids: BTreeSet<String> = lines
        .iter()
        .filter(|l| l["type"] == "publish")
        .filter(|l| {
            lines
                .iter()
                .any(|o| o["type"] == "outcome" && o["seq"] == l["seq"] && o["status"] == "confirmed")
        })
        .map(|l| l["message"]["message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(confirmed_ids.len(), 60);
    let projector = projector(&f, &broker.url, &queue, None).await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            let seen: BTreeSet<String> = projector.seen().into_iter().map(|s| s.message_id).collect();
            seen.is_superset(&confirmed_ids)
        })
        .await,
        "a confirmed request was lost"
    );
    let seen = projector.seen();
    let distinct: BTreeSet<&str> = seen.iter().map(|s| s.message_id.as_str()).collect();
    assert_eq!(distinct.len(), 60, "no message_id beyond the requests");
    assert_eq!(f.check_json(&[]).await.0, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_then_resume_never_publishes_a_confirmed_request_again() {
    let broker = rabbitmq::shared().await;
    let (exchange, queue) = topology(broker).await;
    let f = missing(40).await;
    with_publish(
        &f,
        &format!(
            "url = \"{}\"\nexchange = \"{exchange}\"\nrouting_key = \"order.{{kind}}.{{key}}\"",
            broker.url
        ),
    );
    let projector = projector(&f, &broker.url, &queue, None).await;
    let audit = path_in(&f, "audit.ndjson");
    let child = command(
        &f,
        &[
            "--via",
            "amqp",
            "--apply",
            "--yes",
            "--quiet",
            "--batch-size",
            "5",
            "--max-rate",
            "10",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let outcomes = |lines: &[Value]| lines.iter().filter(|l| l["type"] == "outcome").count();
    assert!(
        eventually(Duration::from_secs(30), || async {
            outcomes(&audit_lines(&audit)) >= 10
        })
        .await,
        "the publishing never got going"
    );
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert!(r.stderr.contains("recon repair --resume"), "{}", r.stderr);
    let lines = audit_lines(&audit);
    let published = lines.iter().filter(|l| l["type"] == "publish").count();
    assert_eq!(published, outcomes(&lines), "the batch in flight was recorded");
    assert!(published < 40, "interrupted before the end");

    let r = repair(
        &f,
        &[
            "--resume",
            audit.to_str().unwrap(),
            "--apply",
            "--yes",
            "--await",
            "60s",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("{published} requests done")), "{}", r.stderr);
    let summary = last_json(&r);
    assert_eq!(summary["outcomes"]["confirmed"], json!(40));
    assert_eq!(summary["converged"].as_array().unwrap().len(), 40);
    assert_eq!(f.check_json(&[]).await.0, 0);
    let seen = projector.seen();
    let ids: BTreeSet<&str> = seen.iter().map(|s| s.message_id.as_str()).collect();
    assert_eq!((seen.len(), ids.len()), (40, 40), "each request published once");
}

/// The requests an endpoint took: (content type, body).
type Posted = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A tiny projector endpoint: answers 503 to its first request, 2xx after, and keeps the bodies.
async fn endpoint() -> (String, Posted) {
    endpoint_answering(Arc::new(|call| if call == 0 { 503 } else { 202 })).await
}

/// What an endpoint answers to its n-th request (from 0).
type Answer = Arc<dyn Fn(u64) -> u16 + Send + Sync>;

/// An endpoint answering `answer(n)`; it keeps the bodies it accepted (2xx).
async fn endpoint_answering(answer: Answer) -> (String, Posted) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/reproject", listener.local_addr().unwrap().port());
    let bodies: Posted = Arc::default();
    let kept = bodies.clone();
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            let calls = calls.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let kept = kept.clone();
                    let calls = calls.clone();
                    let answer = answer.clone();
                    async move {
                        let content_type = req
                            .headers()
                            .get("content-type")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                        let status = answer(calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
                        if (200..300).contains(&status) {
                            kept.lock().unwrap().push((content_type, body));
                        }
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(http_body_util::Full::new(bytes::Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, bodies)
}

#[tokio::test(flavor = "multi_thread")]
async fn http_posts_the_requests_in_batches_and_retries_a_503() {
    let f = drifted().await;
    let (url, bodies) = endpoint().await;
    with_publish(&f, &format!("http_url = \"{url}\""));
    let r = repair(
        &f,
        &[
            "--via",
            "http",
            "--apply",
            "--yes",
            "--quiet",
            "--await",
            "0",
            "--batch-size",
            "3",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("published via http: confirmed 5"), "{}", r.stdout);
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(
        bodies.len(),
        2,
        "5 requests in batches of 3, the first batch again after the 503"
    );
    let mut keys = Vec::new();
    for (content_type, body) in &bodies {
        assert_eq!(content_type, "application/json");
        let batch: Vec<Value> = serde_json::from_slice(body).unwrap();
        for envelope in batch {
            assert_eq!(envelope["body"]["type"], json!("recon.reproject/v1"));
            keys.push(envelope["body"]["key"].as_i64().unwrap());
        }
    }
    assert_eq!(keys, [1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread")]
async fn projector_flags_need_their_via() {
    let f = drifted().await;
    let r = repair(&f, &["--dead-letter", "x.ndjson"]).await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--dead-letter applies only with --via amqp"),
        "{}",
        r.stderr
    );
    let r = repair(&f, &["--await", "1m"]).await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("--await applies only with --via amqp, http or ndjson"),
        "{}",
        r.stderr
    );
    // A missing [publish] setting says where to set it.
    let r = repair(&f, &["--via", "amqp", "--apply", "--yes", "--quiet"]).await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("set publish.url, AMQP_URL or --amqp-url"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_while_awaiting_ends_the_wait_with_130() {
    let f = drifted().await;
    let audit = path_in(&f, "audit.ndjson");
    let out = path_in(&f, "requests.ndjson");
    // Nobody consumes the file: the keys never converge, and the wait would last the whole minute.
    let child = command(
        &f,
        &[
            "--via",
            "ndjson",
            "--output",
            out.to_str().unwrap(),
            "--await",
            "10m",
            "--apply",
            "--yes",
            "--quiet",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let outcomes = |lines: &[Value]| lines.iter().filter(|l| l["type"] == "outcome").count();
    assert!(
        eventually(Duration::from_secs(30), || async {
            outcomes(&audit_lines(&audit)) == 5
        })
        .await,
        "the requests were never written"
    );
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let r = Run::from(
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap(),
    );
    assert_eq!(r.code, 130, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("interrupted while awaiting convergence"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 5);
}

/// The test projector for a Redis read model: the row's projection as JSON under `<prefix>order:<key>`,
/// or the key deleted when the row is gone.
async fn project_to_redis(pool: sqlx::PgPool, redis_url: String, prefix: String, key: Value) {
    let id = key.as_i64().expect("integer keys");
    let row: Option<String> = sqlx::query_scalar(&format!(
        "SELECT row_to_json(p)::text FROM ({ORDERS_QUERY}) p WHERE \"orderId\" = $1"
    ))
    .bind(id)
    .fetch_optional(&pool)
    .await
    .unwrap();
    let mut conn = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let name = format!("{prefix}order:{id}");
    let _: () = match row {
        Some(doc) => redis::cmd("SET")
            .arg(&name)
            .arg(doc)
            .query_async(&mut conn)
            .await
            .unwrap(),
        None => {
            let _: i64 = redis::cmd("DEL").arg(&name).query_async(&mut conn).await.unwrap();
        }
    };
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_read_model_is_repaired_through_the_projector() {
    use crate::support::fixture::ORDERS_SCHEMA;
    let broker = rabbitmq::shared().await;
    let (exchange, queue) = topology(broker).await;
    let db = crate::support::test_database().await;
    db.execute(ORDERS_SCHEMA).await;
    db.execute(
        "INSERT INTO orders (id, customer, total, ordered_at) SELECT g, 'c-' || g, g, '2024-01-01T00:00:00Z' \
         FROM generate_series(1, 4) g",
    )
    .await;
    let redis = crate::support::redis::TestRedis::start().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    // Key 2 in sync, key 1 stale, keys 3 and 4 missing, key 9 orphaned.
    project_to_redis(pool.clone(), redis.url.clone(), redis.prefix.clone(), json!(2)).await;
    let stale = json!({"orderId": 1, "customerName": "old", "products": [], "totalPrice": 1,
                       "orderDate": "2024-01-01T00:00:00Z"});
    redis
        .run(&["SET", &format!("{}order:1", redis.prefix), &stale.to_string()])
        .await;
    redis
        .run(&["SET", &format!("{}order:9", redis.prefix), &stale.to_string()])
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("recon.toml"),
        format!(
            "[postgres]\nurl = \"{}\"\nquery = '''{ORDERS_QUERY}'''\nkey = \"orderId\"\n\n\
             [redis]\nurl = \"{}\"\nkey_pattern = \"{}order:{{}}\"\n\n\
             [compare]\nignore = [\"updatedAt\"]\n[compare.fields]\norderDate = {{ as = \"instant\" }}\n\
             totalPrice = {{ as = \"number\" }}\n\n\
             [publish]\nurl = \"{}\"\nexchange = \"{exchange}\"\nrouting_key = \"order.{{kind}}.{{key}}\"\n",
            db.url, redis.url, redis.prefix, broker.url
        ),
    )
    .unwrap();
    let (url, prefix) = (redis.url.clone(), redis.prefix.clone());
    let _projector = Projector::start(
        &broker.url,
        &queue,
        move |key| project_to_redis(pool.clone(), url.clone(), prefix.clone(), key),
        None,
    )
    .await;
    let run = |args: &[&str]| {
        let mut c = recon();
        c.current_dir(dir.path()).args(args).stdin(std::process::Stdio::null());
        tokio::task::spawn_blocking(move || Run::from(c.output().unwrap()))
    };
    let r = run(&[
        "repair", "--via", "amqp", "--apply", "--yes", "--quiet", "--await", "60s", "--format", "json",
    ])
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let summary = last_json(&r);
    assert_eq!(keys_of(&summary["converged"]), [1, 3, 4, 9]);
    let r = run(&["check", "--quiet"]).await.unwrap();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_the_endpoint_refuses_fails_and_resume_sends_it_again_as_it_was() {
    let f = drifted().await;
    let refuse = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let refusing = refuse.clone();
    let (url, bodies) = endpoint_answering(Arc::new(move |_| {
        if refusing.load(std::sync::atomic::Ordering::SeqCst) {
            400
        } else {
            200
        }
    }))
    .await;
    with_publish(&f, &format!("http_url = \"{url}\"\nhttp_format = \"ndjson\""));
    let audit = path_in(&f, "audit.ndjson");
    let r = repair(
        &f,
        &[
            "--via",
            "http",
            "--apply",
            "--yes",
            "--quiet",
            "--await",
            "0",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("confirmed 0, returned 0, failed 5"), "{}", r.stdout);
    assert!(r.stdout.contains("refused the batch: 400 Bad Request"), "{}", r.stdout);
    let sent: BTreeSet<String> = audit_lines(&audit)
        .iter()
        .filter(|l| l["type"] == "publish")
        .map(|l| l["message"]["message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent.len(), 5);

    refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    let r = repair(
        &f,
        &[
            "--resume",
            audit.to_str().unwrap(),
            "--apply",
            "--yes",
            "--quiet",
            "--await",
            "0",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("confirmed 5"), "{}", r.stdout);
    let bodies = bodies.lock().unwrap().clone();
    let mut resent = BTreeSet::new();
    for (content_type, body) in &bodies {
        assert_eq!(content_type, "application/x-ndjson");
        for line in String::from_utf8(body.clone()).unwrap().lines() {
            let envelope: Value = serde_json::from_str(line).unwrap();
            resent.insert(envelope["message_id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(resent, sent, "the same messages, same message_id");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_blocking_publishers_ends_the_run_in_doubt_and_resume_finishes_it() {
    let Some(broker) = rabbitmq::own().await else {
        eprintln!(
            "skipped: {} names a broker the tests cannot raise alarms on",
            rabbitmq::AMQP_URL_ENV
        );
        return;
    };
    let (exchange, _queue) = topology(&broker).await;
    let f = missing(3).await;
    with_publish(
        &f,
        &format!(
            "url = \"{}\"\nexchange = \"{exchange}\"\nrouting_key = \"order.{{kind}}.{{key}}\"\nconfirm_timeout = \"2s\"",
            broker.url
        ),
    );
    // A memory alarm: the broker stops reading from publishing connections.
    broker.ctl(&["set_vm_memory_high_watermark", "0"]);
    let audit = path_in(&f, "audit.ndjson");
    let r = repair(
        &f,
        &[
            "--via",
            "amqp",
            "--apply",
            "--yes",
            "--quiet",
            "--await",
            "0",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("did not confirm a batch of 3 requests within 2s"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("finish with: recon repair --resume"), "{}", r.stderr);
    broker.ctl(&["set_vm_memory_high_watermark", "0.4"]);
    let r = repair(
        &f,
        &[
            "--resume",
            audit.to_str().unwrap(),
            "--apply",
            "--yes",
            "--quiet",
            "--await",
            "0",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("3 published without a confirmed outcome"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("confirmed 3"), "{}", r.stdout);
}
