//! Fault injection: each fault, the admin endpoint, and determinism under a seed.

use std::time::{Duration, Instant};

use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use recon_es_emulator::{EmulatorConfig, FaultSpec};
use serde_json::{json, Value};

use super::emulator_api::{call, ndjson, start, start_with};

fn spec(s: &str) -> FaultSpec {
    s.parse().expect("valid fault spec")
}

async fn seeded(es: &Elasticsearch, n: usize) {
    let mut body = String::new();
    for i in 0..n {
        body.push_str(&format!(
            "{{\"index\":{{\"_index\":\"f\",\"_id\":\"{i}\"}}}}\n{{\"n\":{i}}}\n"
        ));
    }
    let (status, resp) = ndjson(es, "/_bulk", &[("refresh", "true")], &body, "application/json").await;
    assert_eq!((status, &resp["errors"]), (200, &json!(false)));
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_every_nth_request_of_one_kind() {
    let (emu, es) = start().await;
    seeded(&es, 3).await;
    emu.set_faults(spec("reject_every=2,only=search"));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(call(&es, Method::Post, "/f/_search", &[], Some(json!({}))).await.0);
    }
    assert_eq!(statuses, [200, 429, 200, 429]);
    let (_, body) = {
        emu.set_faults(spec("reject_every=1,only=search"));
        call(&es, Method::Post, "/f/_search", &[], Some(json!({}))).await
    };
    assert_eq!(body["status"], 429);
    assert_eq!(body["error"]["type"], "es_rejected_execution_exception");
    assert!(body["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("EsThreadPoolExecutor"));
    // Other endpoint kinds are untouched.
    assert_eq!(call(&es, Method::Get, "/f/_doc/1", &[], None).await.0, 200);
    assert_eq!(call(&es, Method::Get, "/f/_count", &[], None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_items_can_be_rejected_individually() {
    let (_emu, es) = start_with(EmulatorConfig {
        faults: spec("item_reject=1"),
        ..Default::default()
    })
    .await;
    let (status, resp) = ndjson(
        &es,
        "/_bulk",
        &[],
        "{\"index\":{\"_index\":\"f\",\"_id\":\"1\"}}\n{}\n",
        "application/json",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(resp["errors"], true);
    assert_eq!(resp["items"][0]["index"]["status"], 429);
    assert_eq!(
        resp["items"][0]["index"]["error"]["type"],
        "es_rejected_execution_exception"
    );
    assert_eq!(
        call(&es, Method::Get, "/f/_doc/1", &[], None).await.0,
        404,
        "a rejected item is not written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unavailable_and_latency() {
    let (emu, es) = start().await;
    emu.set_faults(spec("unavailable_every=1"));
    let (status, body) = call(&es, Method::Get, "/", &[], None).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], 503);
    emu.set_faults(spec("latency=150ms"));
    let started = Instant::now();
    assert_eq!(call(&es, Method::Get, "/", &[], None).await.0, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "latency is added before the response"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_reset_after_some_bytes() {
    let (emu, es) = start().await;
    seeded(&es, 50).await;
    emu.set_faults(spec("reset_after=64,only=search"));
    let outcome = async {
        let resp = es
            .send(
                Method::Post,
                "/f/_search",
                HeaderMap::new(),
                None::<&()>,
                Some(r#"{"size":50}"#),
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
        resp.bytes().await.map(|b| b.len()).map_err(|e| e.to_string())
    }
    .await;
    assert!(outcome.is_err(), "the body was cut, got {outcome:?}");
    emu.set_faults(FaultSpec::default());
    assert_eq!(call(&es, Method::Post, "/f/_search", &[], Some(json!({}))).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn pit_expires_after_n_searches() {
    let (emu, es) = start().await;
    seeded(&es, 3).await;
    emu.set_faults(spec("pit_expire_after=2"));
    let (_, pit) = call(&es, Method::Post, "/f/_pit", &[("keep_alive", "1m")], None).await;
    let id = pit["id"].as_str().unwrap().to_string();
    let body = json!({"pit": {"id": id}, "sort": [{"n": "asc"}]});
    assert_eq!(
        call(&es, Method::Post, "/_search", &[], Some(body.clone())).await.0,
        200
    );
    assert_eq!(
        call(&es, Method::Post, "/_search", &[], Some(body.clone())).await.0,
        200
    );
    let (status, r) = call(&es, Method::Post, "/_search", &[], Some(body)).await;
    assert_eq!(status, 404);
    assert_eq!(r["error"]["root_cause"][0]["type"], "search_context_missing_exception");
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_shard_failures_answer_200() {
    let (emu, es) = start().await;
    seeded(&es, 3).await;
    emu.set_faults(spec("shard_failures=1"));
    let (status, r) = call(&es, Method::Post, "/f/_search", &[], Some(json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(r["_shards"]["failed"], 1);
    assert_eq!(r["_shards"]["total"], 2);
    assert_eq!(r["_shards"]["failures"].as_array().unwrap().len(), 1);
    let (_, c) = call(&es, Method::Get, "/f/_count", &[], None).await;
    assert_eq!(c["_shards"]["failed"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoint_sets_reads_and_clears_faults() {
    let (_emu, es) = start().await;
    let (status, r) = call(
        &es,
        Method::Put,
        "/_emulator/faults",
        &[],
        Some(json!({"reject_every": 3, "latency": "5ms", "only": "bulk"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(r["spec"], "reject_every=3,latency=5ms,only=bulk");
    let (_, r) = call(&es, Method::Get, "/_emulator/faults", &[], None).await;
    assert_eq!(r["reject_every"], 3);
    let (status, r) = call(
        &es,
        Method::Put,
        "/_emulator/faults",
        &[],
        Some(json!({"spec": "shard_failures=2"})),
    )
    .await;
    assert_eq!((status, &r["shard_failures"]), (200, &json!(2)));
    let (status, r) = call(&es, Method::Put, "/_emulator/faults", &[], Some(json!({"bogus": 1}))).await;
    assert_eq!(status, 400, "{r}");
    let (_, r) = call(&es, Method::Delete, "/_emulator/faults", &[], None).await;
    assert_eq!(r["spec"], "");
    // Admin calls are never faulted themselves.
    call(
        &es,
        Method::Put,
        "/_emulator/faults",
        &[],
        Some(json!({"spec": "reject_every=1"})),
    )
    .await;
    assert_eq!(call(&es, Method::Get, "/_emulator/faults", &[], None).await.0, 200);
}

async fn statuses(seed: u64) -> Vec<u16> {
    let (_emu, es) = start_with(EmulatorConfig {
        faults: spec("reject=0.5"),
        seed,
        ..Default::default()
    })
    .await;
    let mut out = Vec::new();
    for _ in 0..24 {
        out.push(call(&es, Method::Get, "/", &[], None).await.0);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_are_deterministic_under_a_seed() {
    let first = statuses(42).await;
    assert_eq!(first, statuses(42).await);
    assert!(first.contains(&429) && first.contains(&200), "{first:?}");
    let _: Value = json!(first);
}
