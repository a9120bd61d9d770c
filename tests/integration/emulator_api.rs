//! The emulator's REST behaviour, driven through the official `elasticsearch` client.

use std::time::{Duration, Instant};

use elasticsearch::http::headers::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Method;
use elasticsearch::params::Refresh;
use elasticsearch::{BulkOperation, BulkParts, Elasticsearch, IndexParts, OpenPointInTimeParts, SearchParts};
use recon_es_emulator::{Emulator, EmulatorConfig, Flavor};
use serde_json::{json, Value};

pub async fn start_with(config: EmulatorConfig) -> (Emulator, Elasticsearch) {
    let emulator = Emulator::start("127.0.0.1:0", config).await.expect("emulator starts");
    let url = emulator.url().parse().expect("url parses");
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
        .disable_proxy()
        .build()
        .expect("transport");
    (emulator, Elasticsearch::new(transport))
}

pub async fn start() -> (Emulator, Elasticsearch) {
    start_with(EmulatorConfig::default()).await
}

/// Sends any request; returns the status and the body (JSON when it parses, else a string).
pub async fn call(
    es: &Elasticsearch,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let resp = es
        .send(
            method,
            path,
            HeaderMap::new(),
            Some(query),
            body.map(|b| b.to_string()),
            None,
        )
        .await
        .expect("request reaches the emulator");
    let status = resp.status_code().as_u16();
    let text = resp.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

pub async fn ndjson(
    es: &Elasticsearch,
    path: &str,
    query: &[(&str, &str)],
    body: &str,
    content_type: &'static str,
) -> (u16, Value) {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let resp = es
        .send(Method::Post, path, headers, Some(query), Some(body.to_string()), None)
        .await
        .expect("request reaches the emulator");
    let status = resp.status_code().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

fn ids(hits: &Value) -> Vec<String> {
    hits["hits"]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["_id"].as_str().expect("_id").to_string())
        .collect()
}

async fn create(es: &Elasticsearch, index: &str, body: Value) {
    let (status, resp) = call(es, Method::Put, &format!("/{index}"), &[], Some(body)).await;
    assert_eq!(status, 200, "{resp}");
}

#[tokio::test(flavor = "multi_thread")]
async fn info_carries_the_product_header_and_version() {
    let (_emu, es) = start().await;
    let resp = es
        .send(Method::Get, "/", HeaderMap::new(), None::<&()>, None::<String>, None)
        .await
        .unwrap();
    assert_eq!(resp.headers().get("x-elastic-product").unwrap(), "Elasticsearch");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["version"]["number"], "8.19.0");
    assert_eq!(body["tagline"], "You Know, for Search");
    let head = es
        .send(Method::Head, "/", HeaderMap::new(), None::<&()>, None::<String>, None)
        .await
        .unwrap();
    assert_eq!(head.status_code().as_u16(), 200);
    assert!(head.text().await.unwrap().is_empty());
    // Error responses carry the header too.
    let missing = es
        .send(
            Method::Get,
            "/nope/_doc/1",
            HeaderMap::new(),
            None::<&()>,
            None::<String>,
            None,
        )
        .await
        .unwrap();
    assert_eq!(missing.status_code().as_u16(), 404);
    assert!(missing.headers().get("x-elastic-product").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn opensearch_flavor_has_its_own_info_and_pit_api() {
    let (_emu, es, pit) = opensearch_with_pit().await;
    let id = pit["pit_id"].as_str().unwrap().to_string();
    let resp = es
        .send(Method::Get, "/", HeaderMap::new(), None::<&()>, None::<String>, None)
        .await
        .unwrap();
    assert!(resp.headers().get("x-elastic-product").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["version"]["distribution"], "opensearch");
    assert!(pit["creation_time"].is_i64());
    let (_, page) = call(
        &es,
        Method::Post,
        "/_search",
        &[],
        Some(json!({"pit": {"id": id}, "sort": [{"k.keyword": "asc"}]})),
    )
    .await;
    // No implicit _shard_doc tiebreaker on OpenSearch.
    assert_eq!(page["hits"]["hits"][0]["sort"], json!(["a"]));
    let (status, _) = call(&es, Method::Post, "/os/_pit", &[("keep_alive", "1m")], None).await;
    assert_ne!(status, 200, "the Elasticsearch PIT path does not exist on OpenSearch");
    let (status, closed) = call(
        &es,
        Method::Delete,
        "/_search/point_in_time",
        &[],
        Some(json!({"pit_id": [id]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(closed["pits"][0]["successful"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn compatible_with_media_type_is_accepted_and_echoed() {
    let (_emu, es) = start().await;
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCEPT,
        HeaderValue::from_static("application/vnd.elasticsearch+json; compatible-with=8"),
    );
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.elasticsearch+json; compatible-with=8"),
    );
    let resp = es
        .send(
            Method::Put,
            "/compat/_doc/1",
            headers,
            None::<&()>,
            Some(r#"{"a":1}"#),
            None,
        )
        .await
        .unwrap();
    assert_eq!(resp.status_code().as_u16(), 201);
    assert_eq!(
        resp.headers().get(CONTENT_TYPE).unwrap(),
        "application/vnd.elasticsearch+json;compatible-with=8"
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCEPT,
        HeaderValue::from_static("application/vnd.elasticsearch+json; compatible-with=6"),
    );
    let resp = es
        .send(Method::Get, "/", headers, None::<&()>, None::<String>, None)
        .await
        .unwrap();
    assert_eq!(resp.status_code().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "media_type_header_exception");
}

#[tokio::test(flavor = "multi_thread")]
async fn index_administration() {
    let (_emu, es) = start().await;
    create(
        &es,
        "orders-1",
        json!({
            "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"},
            "mappings": {"properties": {"k": {"type": "keyword"}, "n": {"type": "long"}}},
            "aliases": {"orders": {}}
        }),
    )
    .await;
    let (status, again) = call(&es, Method::Put, "/orders-1", &[], None).await;
    assert_eq!(status, 400);
    assert_eq!(again["error"]["type"], "resource_already_exists_exception");
    let (status, bad) = call(&es, Method::Put, "/Upper", &[], None).await;
    assert_eq!(
        (status, bad["error"]["type"].as_str()),
        (400, Some("invalid_index_name_exception"))
    );
    let (status, _) = call(&es, Method::Head, "/orders-1", &[], None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&es, Method::Head, "/orders-2", &[], None).await;
    assert_eq!(status, 404);

    let (_, got) = call(&es, Method::Get, "/orders-1", &[], None).await;
    assert_eq!(got["orders-1"]["aliases"], json!({"orders": {}}));
    assert_eq!(got["orders-1"]["mappings"]["properties"]["k"]["type"], "keyword");
    let (_, settings) = call(&es, Method::Get, "/orders-1/_settings", &[], None).await;
    assert_eq!(settings["orders-1"]["settings"]["index"]["number_of_replicas"], "0");
    assert_eq!(settings["orders-1"]["settings"]["index"]["refresh_interval"], "1s");
    let (status, _) = call(
        &es,
        Method::Put,
        "/orders-1/_settings",
        &[],
        Some(json!({"index": {"refresh_interval": "-1", "number_of_replicas": 1}})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, settings) = call(
        &es,
        Method::Get,
        "/orders-1/_settings",
        &[("flat_settings", "true")],
        None,
    )
    .await;
    assert_eq!(settings["orders-1"]["settings"]["index.refresh_interval"], "-1");
    assert_eq!(settings["orders-1"]["settings"]["index.number_of_replicas"], "1");

    // Dynamic mapping: text with a keyword subfield, long, float, boolean, date, object.
    call(
        &es,
        Method::Put,
        "/dyn/_doc/1",
        &[],
        Some(json!({"s": "x", "n": 1, "f": 1.5, "b": true, "d": "2024-01-02T03:04:05Z", "o": {"i": 2}})),
    )
    .await;
    let (_, mapping) = call(&es, Method::Get, "/dyn/_mapping", &[], None).await;
    let props = &mapping["dyn"]["mappings"]["properties"];
    assert_eq!(
        props["s"],
        json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}})
    );
    assert_eq!(props["n"]["type"], "long");
    assert_eq!(props["f"]["type"], "float");
    assert_eq!(props["b"]["type"], "boolean");
    assert_eq!(props["d"]["type"], "date");
    assert_eq!(props["o"]["properties"]["i"]["type"], "long");

    let (_, cat) = call(
        &es,
        Method::Get,
        "/_cat/indices",
        &[("format", "json"), ("h", "index,docs.count,health")],
        None,
    )
    .await;
    let rows = cat.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], json!({"index": "dyn", "docs.count": "0", "health": "yellow"}));
    // Without `format`, the Accept header decides: JSON for application/json...
    let (_, cat) = call(&es, Method::Get, "/_cat/indices", &[("h", "index")], None).await;
    assert_eq!(cat, json!([{"index": "dyn"}, {"index": "orders-1"}]));
    // ...and aligned text for the elasticsearch crate's cat API, which asks for text/plain.
    let resp = es
        .cat()
        .indices(elasticsearch::cat::CatIndicesParts::None)
        .v(true)
        .h(&["index", "pri"])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "index    pri\ndyn        1\norders-1   1\n");
    let (_, health) = call(&es, Method::Get, "/_cluster/health", &[], None).await;
    assert_eq!(health["status"], "yellow");
    let (status, health) = call(
        &es,
        Method::Get,
        "/_cluster/health",
        &[("wait_for_status", "green"), ("timeout", "1ms")],
        None,
    )
    .await;
    assert_eq!((status, &health["timed_out"]), (408, &json!(true)));

    let (status, _) = call(&es, Method::Delete, "/orders-*,dyn", &[], None).await;
    assert_eq!(status, 200);
    let (_, cat) = call(&es, Method::Get, "/_cat/indices", &[("format", "json")], None).await;
    assert_eq!(cat, json!([]));
    let (status, missing) = call(&es, Method::Delete, "/orders-1", &[], None).await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["reason"], "no such index [orders-1]");
    assert_eq!(missing["error"]["resource.id"], "orders-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn document_versions_and_conflicts() {
    let (_emu, es) = start().await;
    let resp = es
        .index(IndexParts::IndexId("docs", "1"))
        .body(json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status_code().as_u16(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(
        created,
        json!({"_index": "docs", "_id": "1", "_version": 1, "result": "created", "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": 0, "_primary_term": 1})
    );
    let (status, updated) = call(&es, Method::Put, "/docs/_doc/1", &[], Some(json!({"a": 2}))).await;
    assert_eq!(
        (status, &updated["result"], &updated["_version"], &updated["_seq_no"]),
        (200, &json!("updated"), &json!(2), &json!(1))
    );

    let (status, conflict) = call(&es, Method::Put, "/docs/_create/1", &[], Some(json!({"a": 3}))).await;
    assert_eq!(status, 409);
    assert_eq!(conflict["error"]["type"], "version_conflict_engine_exception");
    assert_eq!(
        conflict["error"]["reason"],
        "[1]: version conflict, document already exists (current version [2])"
    );
    assert_eq!(conflict["error"]["shard"], "0");
    assert_eq!(conflict["error"]["index"], "docs");
    let (status, _) = call(
        &es,
        Method::Put,
        "/docs/_doc/1",
        &[("op_type", "create")],
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409);

    let (status, cas) = call(
        &es,
        Method::Put,
        "/docs/_doc/1",
        &[("if_seq_no", "0"), ("if_primary_term", "1")],
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        cas["error"]["reason"],
        "[1]: version conflict, required seqNo [0], primary term [1]. current document has seqNo [1] and primary term [1]"
    );
    let (status, _) = call(
        &es,
        Method::Put,
        "/docs/_doc/1",
        &[("if_seq_no", "1"), ("if_primary_term", "1")],
        Some(json!({"a": 4})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, internal) = call(&es, Method::Put, "/docs/_doc/1", &[("version", "9")], Some(json!({}))).await;
    assert_eq!(status, 400);
    assert_eq!(internal["error"]["type"], "action_request_validation_exception");

    let (status, ext) = call(
        &es,
        Method::Put,
        "/docs/_doc/x",
        &[("version", "10"), ("version_type", "external")],
        Some(json!({})),
    )
    .await;
    assert_eq!((status, &ext["_version"]), (201, &json!(10)));
    let (status, ext) = call(
        &es,
        Method::Put,
        "/docs/_doc/x",
        &[("version", "10"), ("version_type", "external")],
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        ext["error"]["reason"],
        "[x]: version conflict, current version [10] is higher or equal to the one provided [10]"
    );
    let (status, _) = call(
        &es,
        Method::Put,
        "/docs/_doc/x",
        &[("version", "10"), ("version_type", "external_gte")],
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);

    // Real-time GET sees the write before any refresh.
    let (status, got) = call(&es, Method::Get, "/docs/_doc/1", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&got["_version"], &got["_seq_no"], &got["found"], &got["_source"]),
        (&json!(3), &json!(2), &json!(true), &json!({"a": 4}))
    );
    let (status, missing) = call(&es, Method::Get, "/docs/_doc/nope", &[], None).await;
    assert_eq!(
        (status, missing),
        (404, json!({"_index": "docs", "_id": "nope", "found": false}))
    );

    let (status, deleted) = call(&es, Method::Delete, "/docs/_doc/1", &[], None).await;
    assert_eq!(
        (status, &deleted["result"], &deleted["_version"]),
        (200, &json!("deleted"), &json!(4))
    );
    let (status, again) = call(&es, Method::Delete, "/docs/_doc/1", &[], None).await;
    assert_eq!((status, &again["result"]), (404, &json!("not_found")));
    assert_eq!(
        again["_seq_no"].as_i64().unwrap(),
        deleted["_seq_no"].as_i64().unwrap() + 1,
        "deletes consume seq_no"
    );

    let (_, mget) = call(&es, Method::Post, "/_mget", &[], Some(json!({"docs": [{"_index": "docs", "_id": "x"}, {"_index": "docs", "_id": "1"}, {"_index": "none", "_id": "1"}]}))).await;
    let docs = mget["docs"].as_array().unwrap();
    assert_eq!(docs[0]["found"], true);
    assert_eq!(docs[1], json!({"_index": "docs", "_id": "1", "found": false}));
    assert_eq!(docs[2]["error"]["type"], "index_not_found_exception");
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_become_searchable_only_after_a_refresh() {
    let (_emu, es) = start().await;
    create(&es, "nrt", json!({"settings": {"refresh_interval": "-1"}})).await;
    call(&es, Method::Put, "/nrt/_doc/1", &[], Some(json!({"a": 1}))).await;
    let count =
        |es: Elasticsearch| async move { call(&es, Method::Get, "/nrt/_count", &[], None).await.1["count"].clone() };
    assert_eq!(count(es.clone()).await, json!(0));
    assert_eq!(
        call(&es, Method::Get, "/nrt/_doc/1", &[], None).await.0,
        200,
        "GET is real-time"
    );
    call(&es, Method::Post, "/nrt/_refresh", &[], None).await;
    assert_eq!(count(es.clone()).await, json!(1));
    let (_, forced) = call(&es, Method::Put, "/nrt/_doc/2", &[("refresh", "true")], Some(json!({}))).await;
    assert_eq!(forced["forced_refresh"], true);
    assert_eq!(count(es.clone()).await, json!(2));
    let (_, waited) = call(
        &es,
        Method::Put,
        "/nrt/_doc/3",
        &[("refresh", "wait_for")],
        Some(json!({})),
    )
    .await;
    assert!(waited.get("forced_refresh").is_none());
    assert_eq!(count(es.clone()).await, json!(3));

    // A pending write stays invisible until its index's interval has passed...
    create(&es, "slow", json!({"settings": {"refresh_interval": "30s"}})).await;
    call(&es, Method::Put, "/slow/_doc/1", &[], Some(json!({}))).await;
    let (_, first) = call(&es, Method::Get, "/slow/_count", &[], None).await;
    assert_eq!(first["count"], 0, "not visible right after the write");
    // ...and the default 1s interval makes a write visible on its own; poll with a deadline.
    call(&es, Method::Put, "/auto/_doc/1", &[], Some(json!({}))).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if call(&es, Method::Get, "/auto/_count", &[], None).await.1["count"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the 1s refresh interval never made the write visible"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_items_report_their_own_outcome() {
    let (_emu, es) = start().await;
    create(&es, "b1", json!({"aliases": {"w": {"is_write_index": true}}})).await;
    create(&es, "b2", json!({"aliases": {"w": {}}})).await;
    let body = concat!(
        "{\"index\":{\"_index\":\"w\",\"_id\":\"1\"}}\n{\"a\":1}\n",
        "{\"create\":{\"_index\":\"w\",\"_id\":\"1\"}}\n{\"a\":2}\n",
        "{\"update\":{\"_index\":\"w\",\"_id\":\"1\"}}\n{\"doc\":{\"b\":2}}\n",
        "{\"update\":{\"_index\":\"w\",\"_id\":\"2\"}}\n{\"doc\":{\"b\":2},\"doc_as_upsert\":true}\n",
        "{\"update\":{\"_index\":\"w\",\"_id\":\"3\"}}\n{\"doc\":{\"b\":2}}\n",
        "{\"delete\":{\"_index\":\"w\",\"_id\":\"9\"}}\r\n",
    );
    let (status, resp) = ndjson(&es, "/_bulk", &[("refresh", "true")], body, "application/x-ndjson").await;
    assert_eq!(status, 200);
    assert_eq!(resp["errors"], true);
    let items = resp["items"].as_array().unwrap();
    assert_eq!(items[0]["index"]["_index"], "b1", "alias writes go to the write index");
    assert_eq!(items[0]["index"]["status"], 201);
    assert_eq!(items[1]["create"]["status"], 409);
    assert_eq!(items[2]["update"]["result"], "updated");
    assert_eq!(items[3]["update"]["result"], "created");
    assert_eq!(items[4]["update"]["status"], 404);
    assert_eq!(items[4]["update"]["error"]["type"], "document_missing_exception");
    assert_eq!(items[5]["delete"]["status"], 404);
    assert_eq!(items[5]["delete"]["result"], "not_found");
    assert!(items[5]["delete"].get("error").is_none());
    let (_, doc) = call(&es, Method::Get, "/b1/_doc/1", &[], None).await;
    assert_eq!(doc["_source"], json!({"a": 1, "b": 2}));

    let (status, resp) = ndjson(
        &es,
        "/_bulk",
        &[],
        "{\"delete\":{\"_index\":\"b1\",\"_id\":\"9\"}}\n",
        "application/json",
    )
    .await;
    assert_eq!(
        (status, &resp["errors"]),
        (200, &json!(false)),
        "a delete of a missing doc is not an error"
    );
    let (status, resp) = ndjson(
        &es,
        "/_bulk",
        &[],
        "{\"index\":{\"_index\":\"b1\"}}\n{}",
        "application/json",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        resp["error"]["reason"],
        "The bulk request must be terminated by a newline [\\n]"
    );

    // The typed client helpers work too.
    let ops: Vec<BulkOperation<Value>> = vec![BulkOperation::index(json!({"k": "v"})).id("t").into()];
    let resp = es
        .bulk(BulkParts::Index("b2"))
        .body(ops)
        .refresh(Refresh::True)
        .send()
        .await
        .unwrap();
    let resp: Value = resp.json().await.unwrap();
    assert_eq!(resp["items"][0]["index"]["result"], "created");
}

async fn seed_sort_index(es: &Elasticsearch) {
    create(
        es,
        "s",
        json!({"mappings": {"properties": {"k": {"type": "keyword"}, "n": {"type": "long"}, "d": {"type": "date"}, "t": {"type": "text"}}}}),
    )
    .await;
    let docs = [
        (
            "1",
            json!({"k": "a", "n": 9007199254740993i64, "d": "2020-01-01T00:00:00Z", "t": "x"}),
        ),
        ("2", json!({"k": "Z", "n": 5, "d": "2021-01-01T00:00:00.123Z"})),
        ("3", json!({"k": "é", "n": -1})),
        ("4", json!({"n": 7, "d": 1000})),
    ];
    let mut body = String::new();
    for (id, doc) in docs {
        body.push_str(&format!("{{\"index\":{{\"_index\":\"s\",\"_id\":\"{id}\"}}}}\n{doc}\n"));
    }
    let (status, resp) = ndjson(es, "/_bulk", &[("refresh", "true")], &body, "application/json").await;
    assert_eq!((status, &resp["errors"]), (200, &json!(false)), "{resp}");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_sorts_like_elasticsearch() {
    let (_emu, es) = start().await;
    seed_sort_index(&es).await;
    let search = |body: Value| {
        let es = es.clone();
        async move { call(&es, Method::Post, "/s/_search", &[], Some(body)).await }
    };
    // Keyword order is UTF-8 byte order; a missing keyword sorts last with a null sort value.
    let (_, r) = search(json!({"sort": [{"k": "asc"}]})).await;
    assert_eq!(ids(&r), ["2", "1", "3", "4"]);
    assert_eq!(r["hits"]["hits"][3]["sort"], json!([null]));
    assert_eq!(r["hits"]["hits"][0]["_score"], Value::Null);
    assert_eq!(r["hits"]["max_score"], Value::Null);
    // Longs are exact; missing numbers get Long.MAX/MIN sentinels.
    let (_, r) = search(json!({"sort": [{"n": "desc"}], "_source": ["n"]})).await;
    assert_eq!(ids(&r), ["1", "4", "2", "3"]);
    assert_eq!(r["hits"]["hits"][0]["sort"][0].to_string(), "9007199254740993");
    assert_eq!(r["hits"]["hits"][0]["_source"]["n"].to_string(), "9007199254740993");
    let (_, r) = search(json!({"sort": [{"d": "asc"}]})).await;
    assert_eq!(ids(&r), ["4", "1", "2", "3"]);
    assert_eq!(r["hits"]["hits"][2]["sort"], json!([1609459200123i64]));
    assert_eq!(r["hits"]["hits"][3]["sort"][0].to_string(), "9223372036854775807");
    let (_, r) = search(json!({"sort": [{"d": {"order": "desc", "format": "strict_date_optional_time"}}]})).await;
    assert_eq!(r["hits"]["hits"][0]["sort"], json!(["2021-01-01T00:00:00.123Z"]));
    assert_eq!(ids(&r), ["2", "1", "4", "3"], "missing sorts last in both directions");
    assert_eq!(r["hits"]["hits"][3]["sort"], json!(["-292275055-05-16T16:47:04.192Z"]));
    let (_, r) = search(json!({"sort": [{"d": "desc"}]})).await;
    assert_eq!(r["hits"]["hits"][3]["sort"][0].to_string(), "-9223372036854775808");
    let (_, r) = search(json!({"sort": [{"k": {"order": "asc", "missing": "_first"}}]})).await;
    assert_eq!(ids(&r), ["4", "2", "1", "3"]);

    // search_after, with its length check and null entries.
    let (_, r) = search(json!({"sort": [{"k": "asc"}], "search_after": ["a"]})).await;
    assert_eq!(ids(&r), ["3", "4"]);
    let (status, r) = search(json!({"sort": [{"k": "asc"}], "search_after": ["a", 1]})).await;
    assert_eq!(status, 400);
    assert_eq!(r["error"]["reason"], "search_after has 2 value(s) but sort has 1.");

    // Only doc-valued fields sort.
    let (status, r) = search(json!({"sort": ["t"]})).await;
    assert_eq!(status, 400);
    assert!(r["error"]["root_cause"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("Fielddata is disabled on [t]"));
    let (status, r) = search(json!({"sort": ["nope"]})).await;
    assert_eq!(status, 400);
    assert_eq!(r["error"]["type"], "search_phase_execution_exception");
    assert_eq!(
        r["error"]["root_cause"][0]["reason"],
        "No mapping found for [nope] in order to sort on"
    );
    let (status, r) = search(json!({"sort": [{"nope": {"unmapped_type": "keyword"}}]})).await;
    assert_eq!((status, r["hits"]["hits"].as_array().unwrap().len()), (200, 4));
    let (status, r) = search(json!({"sort": ["_id"]})).await;
    assert_eq!(status, 400);
    assert!(r["error"]["root_cause"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("Fielddata access on the _id field is disallowed"));
    let (status, _) = search(json!({"sort": ["_shard_doc"]})).await;
    assert_eq!(status, 400, "_shard_doc needs a point in time");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_queries_sources_and_totals() {
    let (_emu, es) = start().await;
    seed_sort_index(&es).await;
    let hits = |body: Value| {
        let es = es.clone();
        async move { ids(&call(&es, Method::Post, "/s/_search", &[], Some(body)).await.1) }
    };
    assert_eq!(
        hits(json!({"query": {"ids": {"values": ["3", "1"]}}})).await,
        ["1", "3"]
    );
    assert_eq!(hits(json!({"query": {"term": {"k": "Z"}}})).await, ["2"]);
    assert_eq!(hits(json!({"query": {"terms": {"k": ["a", "é"]}}})).await, ["1", "3"]);
    assert_eq!(
        hits(json!({"query": {"range": {"n": {"gte": 0, "lt": 7}}}})).await,
        ["2"]
    );
    assert_eq!(
        hits(json!({"query": {"range": {"d": {"gte": "2020-06-01"}}}})).await,
        ["2"]
    );
    assert_eq!(hits(json!({"query": {"range": {"k": {"gt": "a"}}}})).await, ["3"]);
    assert_eq!(
        hits(json!({"query": {"bool": {"filter": [{"exists": {"field": "n"}}], "must_not": [{"term": {"k": "a"}}], "should": [{"term": {"n": 5}}, {"term": {"n": 7}}]}}})).await,
        ["2", "3", "4"],
        "with a filter clause, should clauses are optional"
    );
    assert_eq!(
        hits(json!({"query": {"bool": {"filter": [{"exists": {"field": "n"}}], "should": [{"term": {"n": 5}}, {"term": {"n": 7}}], "minimum_should_match": 1}}})).await,
        ["2", "4"]
    );
    let (_, r) = call(
        &es,
        Method::Post,
        "/s/_search",
        &[],
        Some(json!({"size": 1, "from": 1, "query": {"match_all": {}}})),
    )
    .await;
    assert_eq!(ids(&r), ["2"]);
    assert_eq!(r["hits"]["total"], json!({"value": 4, "relation": "eq"}));
    assert_eq!(r["hits"]["max_score"], 1.0);

    let typed = es
        .search(SearchParts::Index(&["s"]))
        .body(json!({"query": {"ids": {"values": ["2"]}}, "_source": {"includes": ["k", "d"], "excludes": ["d"]}, "seq_no_primary_term": true}))
        .send()
        .await
        .unwrap();
    let r: Value = typed.json().await.unwrap();
    let hit = &r["hits"]["hits"][0];
    assert_eq!(hit["_source"], json!({"k": "Z"}));
    assert_eq!((&hit["_seq_no"], &hit["_primary_term"]), (&json!(1), &json!(1)));
    let (_, r) = call(
        &es,
        Method::Post,
        "/s/_search",
        &[],
        Some(json!({"_source": false, "track_total_hits": false})),
    )
    .await;
    assert!(r["hits"].get("total").is_none());
    assert!(r["hits"]["hits"][0].get("_source").is_none());
    let (_, r) = call(
        &es,
        Method::Post,
        "/s/_search",
        &[],
        Some(json!({"track_total_hits": 2})),
    )
    .await;
    assert_eq!(r["hits"]["total"], json!({"value": 2, "relation": "gte"}));
    let (status, _) = call(
        &es,
        Method::Post,
        "/s/_search",
        &[],
        Some(json!({"track_total_hits": -2})),
    )
    .await;
    assert_eq!(status, 400);
    let (_, c) = call(
        &es,
        Method::Post,
        "/s/_count",
        &[],
        Some(json!({"query": {"term": {"k": "a"}}})),
    )
    .await;
    assert_eq!(c["count"], 1);
    assert_eq!(c["_shards"]["failed"], 0);
    let (_, r) = call(&es, Method::Get, "/s/_search", &[("q", "k:Z")], None).await;
    assert_eq!(ids(&r), ["2"]);
    let (status, r) = call(&es, Method::Get, "/nope/_search", &[], None).await;
    assert_eq!(
        (status, &r["error"]["type"]),
        (404, &json!("index_not_found_exception"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn point_in_time_is_a_frozen_snapshot() {
    let (_emu, es) = start().await;
    seed_sort_index(&es).await;
    let resp = es
        .open_point_in_time(OpenPointInTimeParts::Index(&["s"]))
        .keep_alive("1m")
        .send()
        .await
        .unwrap();
    let pit: Value = resp.json().await.unwrap();
    let id = pit["id"].as_str().unwrap().to_string();
    assert_eq!(pit["_shards"]["failed"], 0);
    call(
        &es,
        Method::Put,
        "/s/_doc/5",
        &[("refresh", "true")],
        Some(json!({"k": "b", "n": 1})),
    )
    .await;

    let page = |body: Value| {
        let es = es.clone();
        async move { call(&es, Method::Post, "/_search", &[], Some(body)).await }
    };
    let (status, r) = page(json!({"pit": {"id": id, "keep_alive": "1m"}, "sort": [{"n": "asc"}], "size": 2})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["pit_id"], json!(id));
    assert_eq!(r["hits"]["total"]["value"], 4, "writes after opening are invisible");
    assert_eq!(ids(&r), ["3", "2"]);
    // The implicit _shard_doc tiebreaker: (shard << 32) | doc.
    let sort = r["hits"]["hits"][1]["sort"].as_array().unwrap().clone();
    assert_eq!(sort.len(), 2);
    assert_eq!(sort[1], json!(1));
    let (_, r) = page(json!({"pit": {"id": id}, "sort": [{"n": "asc"}], "size": 2, "search_after": sort})).await;
    assert_eq!(ids(&r), ["4", "1"]);
    assert_eq!(r["hits"]["hits"][0]["sort"].as_array().unwrap().len(), 2);
    // A search_after as long as the sort: no tiebreaker added.
    let (_, r) = page(json!({"pit": {"id": id}, "sort": [{"n": "asc"}], "search_after": [5]})).await;
    assert_eq!(ids(&r), ["4", "1"]);
    assert_eq!(r["hits"]["hits"][0]["sort"], json!([7]));
    let (status, r) = call(&es, Method::Post, "/s/_search", &[], Some(json!({"pit": {"id": id}}))).await;
    assert_eq!(status, 400);
    assert!(r["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("[indices] cannot be used with point in time"));

    // Slices partition the snapshot.
    let mut union = Vec::new();
    for slice in 0..3 {
        let (_, r) = page(json!({"pit": {"id": id}, "slice": {"id": slice, "max": 3}, "sort": ["_shard_doc"]})).await;
        union.extend(ids(&r));
    }
    union.sort();
    assert_eq!(union, ["1", "2", "3", "4"]);

    let (status, closed) = call(&es, Method::Delete, "/_pit", &[], Some(json!({"id": id}))).await;
    assert_eq!((status, closed), (200, json!({"succeeded": true, "num_freed": 1})));
    let (status, closed) = call(&es, Method::Delete, "/_pit", &[], Some(json!({"id": id}))).await;
    assert_eq!((status, closed), (404, json!({"succeeded": false, "num_freed": 0})));
    let (status, r) = page(json!({"pit": {"id": id}})).await;
    assert_eq!(status, 404);
    assert_eq!(r["error"]["root_cause"][0]["type"], "search_context_missing_exception");

    // Expiry by keep_alive.
    let (_, pit) = call(&es, Method::Post, "/s/_pit", &[("keep_alive", "200ms")], None).await;
    let short = pit["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, r) = call(&es, Method::Post, "/_search", &[], Some(json!({"pit": {"id": short}}))).await;
        if status == 404 {
            assert_eq!(
                r["error"]["root_cause"][0]["reason"],
                format!("No search context found for id [{short}]")
            );
            break;
        }
        assert!(Instant::now() < deadline, "the point in time never expired");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scroll_pages_and_clears() {
    let (_emu, es) = start().await;
    seed_sort_index(&es).await;
    let (_, r) = call(
        &es,
        Method::Post,
        "/s/_search",
        &[("scroll", "1m")],
        Some(json!({"size": 3, "sort": ["_doc"]})),
    )
    .await;
    let id = r["_scroll_id"].as_str().unwrap().to_string();
    assert_eq!(ids(&r).len(), 3);
    call(&es, Method::Put, "/s/_doc/9", &[("refresh", "true")], Some(json!({}))).await;
    let (_, r) = call(
        &es,
        Method::Post,
        "/_search/scroll",
        &[],
        Some(json!({"scroll": "1m", "scroll_id": id})),
    )
    .await;
    assert_eq!(ids(&r).len(), 1);
    assert_eq!(r["hits"]["total"]["value"], 4);
    let (_, r) = call(
        &es,
        Method::Post,
        "/_search/scroll",
        &[],
        Some(json!({"scroll_id": id})),
    )
    .await;
    assert!(ids(&r).is_empty());
    let (status, cleared) = call(
        &es,
        Method::Delete,
        "/_search/scroll",
        &[],
        Some(json!({"scroll_id": [id]})),
    )
    .await;
    assert_eq!((status, cleared), (200, json!({"succeeded": true, "num_freed": 1})));
    let (status, _) = call(
        &es,
        Method::Post,
        "/_search/scroll",
        &[],
        Some(json!({"scroll_id": id})),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_a_point_in_time_or_scroll_frees_one_context_per_shard() {
    let (_emu, es) = start().await;
    create(&es, "three", json!({"settings": {"number_of_shards": 3}})).await;
    create(&es, "two", json!({"settings": {"number_of_shards": 2}})).await;
    let close = |id: Value| {
        let es = es.clone();
        async move { call(&es, Method::Delete, "/_pit", &[], Some(json!({"id": id}))).await }
    };
    let (status, pit) = call(&es, Method::Post, "/three/_pit", &[("keep_alive", "1m")], None).await;
    assert_eq!((status, &pit["_shards"]["total"]), (200, &json!(3)), "{pit}");
    assert_eq!(
        close(pit["id"].clone()).await,
        (200, json!({"succeeded": true, "num_freed": 3}))
    );
    // Nothing is left to free, so not every context was freed: a 404 that did not succeed.
    assert_eq!(
        close(pit["id"].clone()).await,
        (404, json!({"succeeded": false, "num_freed": 0}))
    );
    let (_, pit) = call(&es, Method::Post, "/three,two/_pit", &[("keep_alive", "1m")], None).await;
    assert_eq!(
        close(pit["id"].clone()).await,
        (200, json!({"succeeded": true, "num_freed": 5}))
    );

    let (status, r) = call(
        &es,
        Method::Post,
        "/three,two/_search",
        &[("scroll", "1m")],
        Some(json!({"size": 1})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let clear = json!({"scroll_id": [r["_scroll_id"]]});
    let (status, cleared) = call(&es, Method::Delete, "/_search/scroll", &[], Some(clear.clone())).await;
    assert_eq!((status, cleared), (200, json!({"succeeded": true, "num_freed": 5})));
    // A scroll that is already cleared stays a success, with a 404.
    let (status, cleared) = call(&es, Method::Delete, "/_search/scroll", &[], Some(clear)).await;
    assert_eq!((status, cleared), (404, json!({"succeeded": true, "num_freed": 0})));
}

/// An OpenSearch-flavored emulator with one document in `os` and a point in time over it (the open
/// call's answer).
async fn opensearch_with_pit() -> (Emulator, Elasticsearch, Value) {
    let (emu, es) = start_with(EmulatorConfig {
        flavor: Flavor::OpenSearch,
        ..Default::default()
    })
    .await;
    call(
        &es,
        Method::Put,
        "/os/_doc/1",
        &[("refresh", "true")],
        Some(json!({"k": "a"})),
    )
    .await;
    let (status, pit) = call(
        &es,
        Method::Post,
        "/os/_search/point_in_time",
        &[("keep_alive", "1m")],
        None,
    )
    .await;
    assert_eq!(status, 200, "{pit}");
    (emu, es, pit)
}

#[tokio::test(flavor = "multi_thread")]
async fn opensearch_2_has_no_shard_doc() {
    let (_emu, es, pit) = opensearch_with_pit().await;
    let id = pit["pit_id"].as_str().unwrap().to_string();
    let (_, info) = call(&es, Method::Get, "/", &[], None).await;
    let version = info["version"]["number"].as_str().unwrap();
    assert!(
        version.starts_with("2."),
        "the flavor emulates OpenSearch 2.x, not {version}"
    );
    // `_shard_doc` arrived in OpenSearch 3.3; 2.x takes it for a field that is not mapped.
    for (path, body) in [
        ("/_search", json!({"pit": {"id": id}, "sort": ["_shard_doc"]})),
        ("/os/_search", json!({"sort": [{"_shard_doc": "asc"}]})),
    ] {
        let (status, r) = call(&es, Method::Post, path, &[], Some(body)).await;
        assert_eq!(status, 400, "{r}");
        assert_eq!(r["error"]["type"], "search_phase_execution_exception");
        assert_eq!(r["error"]["root_cause"][0]["type"], "query_shard_exception");
        assert_eq!(
            r["error"]["root_cause"][0]["reason"],
            "No mapping found for [_shard_doc] in order to sort on"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn opensearch_counts_deleting_a_deleted_pit_as_success() {
    let (_emu, es, pit) = opensearch_with_pit().await;
    let id = pit["pit_id"].as_str().unwrap().to_string();
    // A context that is already gone counts as deleted: 200 and `successful: true`, both times.
    for _ in 0..2 {
        let (status, closed) = call(
            &es,
            Method::Delete,
            "/_search/point_in_time",
            &[],
            Some(json!({"pit_id": [id]})),
        )
        .await;
        assert_eq!(
            (status, closed),
            (200, json!({"pits": [{"pit_id": id, "successful": true}]}))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_errors_quote_the_whole_uri() {
    let (_emu, es) = start().await;
    let (status, r) = call(&es, Method::Get, "/x/_nope", &[("pretty", "true")], None).await;
    assert_eq!(
        (status, r),
        (
            400,
            json!({"error": "no handler found for uri [/x/_nope?pretty=true] and method [GET]", "status": 400})
        )
    );
    let (status, r) = call(&es, Method::Put, "/_count", &[("pretty", "true")], None).await;
    assert_eq!(
        (status, r),
        (
            405,
            json!({"error": "Incorrect HTTP method for uri [/_count?pretty=true] and method [PUT], allowed: [GET, POST]", "status": 405})
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn aliases_switch_atomically() {
    let (_emu, es) = start().await;
    create(&es, "v1", json!({"aliases": {"live": {}}})).await;
    create(&es, "v2", json!({})).await;
    call(
        &es,
        Method::Put,
        "/v1/_doc/1",
        &[("refresh", "true")],
        Some(json!({"v": 1})),
    )
    .await;
    call(
        &es,
        Method::Put,
        "/v2/_doc/2",
        &[("refresh", "true")],
        Some(json!({"v": 2})),
    )
    .await;

    let (status, r) = call(
        &es,
        Method::Post,
        "/_aliases",
        &[],
        Some(json!({"actions": [{"add": {"index": "v2", "alias": "live", "is_write_index": true}}, {"remove": {"index": "v9", "alias": "live"}}]})),
    )
    .await;
    assert_eq!(status, 404, "{r}");
    let (_, r) = call(&es, Method::Get, "/_alias/live", &[], None).await;
    assert_eq!(
        r,
        json!({"v1": {"aliases": {"live": {}}}}),
        "a failed action list changes nothing"
    );

    let (status, _) = call(
        &es,
        Method::Post,
        "/_aliases",
        &[],
        Some(json!({"actions": [{"add": {"index": "v2", "alias": "live", "is_write_index": true}}, {"add": {"index": "v2", "alias": "all"}}, {"add": {"index": "v1", "alias": "all"}}]})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, r) = call(&es, Method::Get, "/v2/_alias", &[], None).await;
    assert_eq!(
        r,
        json!({"v2": {"aliases": {"all": {}, "live": {"is_write_index": true}}}})
    );
    let (_, r) = call(
        &es,
        Method::Post,
        "/all/_search",
        &[],
        Some(json!({"sort": [{"v": "asc"}]})),
    )
    .await;
    assert_eq!(ids(&r), ["1", "2"]);
    assert_eq!(r["hits"]["hits"][1]["_index"], "v2");
    let (_, w) = call(&es, Method::Put, "/live/_doc/3", &[], Some(json!({}))).await;
    assert_eq!(w["_index"], "v2");
    let (status, w) = call(&es, Method::Put, "/all/_doc/3", &[], Some(json!({}))).await;
    assert_eq!(status, 400);
    assert!(w["error"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("no write index is defined for alias [all]"));

    let (status, _) = call(
        &es,
        Method::Post,
        "/_aliases",
        &[],
        Some(json!({"actions": [{"remove": {"index": "v1", "alias": "live"}}, {"remove_index": {"index": "v1"}}]})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(&es, Method::Head, "/v1", &[], None).await;
    assert_eq!(status, 404);
    let (status, r) = call(&es, Method::Get, "/_alias/gone", &[], None).await;
    assert_eq!(
        (status, r),
        (404, json!({"error": "alias [gone] missing", "status": 404}))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_request_bodies_are_inflated() {
    let (emu, _) = start().await;
    let url = emu.url().parse().unwrap();
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
        .disable_proxy()
        .request_body_compression(true)
        .build()
        .unwrap();
    let es = Elasticsearch::new(transport);
    let resp = es
        .index(IndexParts::IndexId("gz", "1"))
        .body(json!({"compressed": "yes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status_code().as_u16(), 201);
    let (_, doc) = call(&es, Method::Get, "/gz/_doc/1", &[], None).await;
    assert_eq!(doc["_source"], json!({"compressed": "yes"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn several_emulators_are_independent() {
    let (a, es_a) = start().await;
    let (b, es_b) = start().await;
    assert_ne!(a.url(), b.url());
    call(&es_a, Method::Put, "/only-a/_doc/1", &[], Some(json!({}))).await;
    assert_eq!(call(&es_a, Method::Head, "/only-a", &[], None).await.0, 200);
    assert_eq!(call(&es_b, Method::Head, "/only-a", &[], None).await.0, 404);
    b.shutdown().await;
    assert_eq!(call(&es_a, Method::Get, "/", &[], None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn exact_lookups_answer_from_the_refreshed_view_only() {
    let (_emu, es) = start().await;
    create(
        &es,
        "lookups",
        json!({"settings": {"refresh_interval": "-1"},
               "mappings": {"properties": {"orderId": {"type": "long"}, "sku": {"type": "keyword"},
                            "name": {"type": "text", "fields": {"keyword": {"type": "keyword"}}}}}}),
    )
    .await;
    for i in 1..=5 {
        let doc = json!({"orderId": i, "sku": format!("S{i}"), "name": format!("Ada {i}")});
        call(&es, Method::Put, &format!("/lookups/_doc/{i}"), &[], Some(doc)).await;
    }
    call(&es, Method::Post, "/lookups/_refresh", &[], None).await;
    let search = |query: Value| {
        let es = es.clone();
        async move {
            let body = json!({"query": query, "sort": [{"orderId": "asc"}, {"sku": "asc"}]});
            let (status, hits) = call(&es, Method::Post, "/lookups/_search", &[], Some(body)).await;
            assert_eq!(status, 200, "{hits}");
            ids(&hits)
        }
    };
    assert_eq!(search(json!({"terms": {"orderId": ["2", 3, 9]}})).await, ["2", "3"]);
    assert_eq!(search(json!({"term": {"sku": "S4"}})).await, ["4"]);
    assert_eq!(search(json!({"term": {"name.keyword": "Ada 5"}})).await, ["5"]);
    assert_eq!(search(json!({"ids": {"values": ["1", "nope"]}})).await, ["1"]);

    // Written but not refreshed: invisible to every lookup, however it is asked for.
    let doc = json!({"orderId": 2, "sku": "S2-copy", "name": "Ada 2"});
    call(&es, Method::Put, "/lookups/_doc/6", &[], Some(doc)).await;
    call(
        &es,
        Method::Put,
        "/lookups/_doc/3",
        &[],
        Some(json!({"orderId": 30, "sku": "S3"})),
    )
    .await;
    assert_eq!(search(json!({"terms": {"orderId": [2, 3, 30]}})).await, ["2", "3"]);
    assert_eq!(search(json!({"ids": {"values": ["6"]}})).await, Vec::<String>::new());
    // After the refresh, the new view answers.
    call(&es, Method::Post, "/lookups/_refresh", &[], None).await;
    assert_eq!(search(json!({"terms": {"orderId": [2, 3, 30]}})).await, ["2", "6", "3"]);
    assert_eq!(search(json!({"term": {"name.keyword": "Ada 2"}})).await, ["2", "6"]);
    assert_eq!(
        search(json!({"bool": {"filter": [{"ids": {"values": ["3", "6"]}}, {"term": {"sku": "S3"}}]}})).await,
        ["3"]
    );
}

/// What `recon reindex` relies on: `_meta` lives in the mapping, `PUT _mapping {"_meta"}` replaces it
/// whole; `index.creation_date` in `_settings`; one `_aliases` call that swaps, or that deletes a
/// concrete index and gives its name to an alias (`remove_index`).
#[tokio::test(flavor = "multi_thread")]
async fn mapping_meta_settings_and_alias_swaps_for_reindex() {
    let (_emu, es) = start().await;
    create(
        &es,
        "gen-1",
        json!({"mappings": {"_meta": {"recon": {"phase": "loading", "n": 1}}, "properties": {"k": {"type": "long"}}}}),
    )
    .await;
    let (status, body) = call(&es, Method::Get, "/gen-1/_mapping", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["gen-1"]["mappings"]["_meta"],
        json!({"recon": {"phase": "loading", "n": 1}})
    );
    assert_eq!(body["gen-1"]["mappings"]["properties"]["k"]["type"], "long");
    let (status, _) = call(
        &es,
        Method::Put,
        "/gen-1/_mapping",
        &[],
        Some(json!({"_meta": {"recon": {"phase": "live"}}})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = call(&es, Method::Get, "/gen-1/_mapping", &[], None).await;
    // Replaced, not merged: `n` is gone; the properties stay.
    assert_eq!(body["gen-1"]["mappings"]["_meta"], json!({"recon": {"phase": "live"}}));
    assert_eq!(body["gen-1"]["mappings"]["properties"]["k"]["type"], "long");

    let (_, settings) = call(&es, Method::Get, "/gen-1/_settings", &[("flat_settings", "true")], None).await;
    let created: i64 = settings["gen-1"]["settings"]["index.creation_date"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(created > 1_700_000_000_000, "{settings}");

    create(&es, "orders", json!({})).await;
    create(&es, "gen-2", json!({})).await;
    let (status, body) = call(
        &es,
        Method::Post,
        "/_aliases",
        &[],
        Some(json!({"actions": [
            {"remove_index": {"index": "orders"}},
            {"add": {"index": "gen-1", "alias": "orders", "is_write_index": true}}
        ]})),
    )
    .await;
    assert_eq!((status, body["acknowledged"].clone()), (200, json!(true)), "{body}");
    let (_, alias) = call(&es, Method::Get, "/_alias/orders", &[], None).await;
    assert_eq!(
        alias,
        json!({"gen-1": {"aliases": {"orders": {"is_write_index": true}}}})
    );
    let (status, _) = call(
        &es,
        Method::Post,
        "/_aliases",
        &[],
        Some(json!({"actions": [
            {"remove": {"index": "gen-1", "alias": "orders"}},
            {"add": {"index": "gen-2", "alias": "orders", "is_write_index": true}}
        ]})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, alias) = call(&es, Method::Get, "/_alias/orders", &[], None).await;
    assert_eq!(
        alias,
        json!({"gen-2": {"aliases": {"orders": {"is_write_index": true}}}})
    );
    let (status, body) = call(&es, Method::Get, "/_alias/nothing", &[], None).await;
    assert_eq!(status, 404, "{body}");
}

/// The emulator is a cluster with security off (`xpack.security.enabled: false`): Elasticsearch 8 then
/// registers no `_security` REST handler at all (x-pack `Security#getRestHandlers` returns none), so
/// `_has_privileges` is answered like any unknown path. `recon doctor` reads that as "writes allowed".
#[tokio::test(flavor = "multi_thread")]
async fn security_endpoints_answer_as_with_security_disabled() {
    let (_emu, es) = start().await;
    let body = json!({"index": [{"names": ["orders"], "privileges": ["index", "delete"]}]});
    let (status, r) = call(&es, Method::Post, "/_security/user/_has_privileges", &[], Some(body)).await;
    assert_eq!(
        (status, r),
        (
            400,
            json!({"error": "no handler found for uri [/_security/user/_has_privileges] and method [POST]", "status": 400})
        )
    );
    let (status, r) = call(&es, Method::Get, "/_security/_authenticate", &[], None).await;
    assert_eq!(
        (status, r),
        (
            400,
            json!({"error": "no handler found for uri [/_security/_authenticate] and method [GET]", "status": 400})
        )
    );
}

/// A client of `emulator` logging in as `user` (None: no credentials).
fn client_as(emulator: &Emulator, user: Option<(&str, &str)>) -> Elasticsearch {
    let mut builder =
        TransportBuilder::new(SingleNodeConnectionPool::new(emulator.url().parse().unwrap())).disable_proxy();
    if let Some((name, password)) = user {
        builder = builder.auth(elasticsearch::auth::Credentials::Basic(name.into(), password.into()));
    }
    Elasticsearch::new(builder.build().unwrap())
}

/// With security on (`set_security`), requests authenticate as Elasticsearch 8's do: a 401
/// `security_exception` with the `WWW-Authenticate` challenges and no product header, and
/// `_has_privileges` answers for the user who asks.
#[tokio::test(flavor = "multi_thread")]
async fn security_on_authenticates_and_answers_has_privileges() {
    use recon_es_emulator::User;
    let (emu, _) = start().await;
    emu.set_security(Some(vec![
        User::new("checker", "c-pw", &["read", "view_index_metadata"]),
        User::new("repairer", "r-pw", &["write", "read"]),
    ]));
    let challenge = json!({"WWW-Authenticate": ["Basic realm=\"security\" charset=\"UTF-8\"", "Bearer realm=\"security\"", "ApiKey"]});
    let anonymous = client_as(&emu, None);
    let resp = anonymous
        .send(Method::Get, "/", HeaderMap::new(), None::<&()>, None::<String>, None)
        .await
        .unwrap();
    assert_eq!(resp.status_code().as_u16(), 401);
    assert!(resp.headers().get("x-elastic-product").is_none());
    let challenges: Vec<&str> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        challenges,
        [
            "Basic realm=\"security\" charset=\"UTF-8\"",
            "Bearer realm=\"security\"",
            "ApiKey"
        ]
    );
    let body: Value = resp.json().await.unwrap();
    let reason = "missing authentication credentials for REST request [/]";
    assert_eq!(
        body,
        json!({"error": {"root_cause": [{"type": "security_exception", "reason": reason, "header": challenge}],
               "type": "security_exception", "reason": reason, "header": challenge}, "status": 401})
    );
    let (status, body) = call(&client_as(&emu, Some(("checker", "nope"))), Method::Get, "/", &[], None).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["reason"],
        "unable to authenticate user [checker] for REST request [/]"
    );

    let checker = client_as(&emu, Some(("checker", "c-pw")));
    let (status, _) = call(&checker, Method::Get, "/", &[], None).await;
    assert_eq!(status, 200);
    let asked = json!({"index": [{"names": ["orders"], "privileges": ["read", "index", "delete"]}]});
    let (status, body) = call(
        &checker,
        Method::Post,
        "/_security/user/_has_privileges",
        &[],
        Some(asked.clone()),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"username": "checker", "has_all_requested": false, "cluster": {},
                   "index": {"orders": {"read": true, "index": false, "delete": false}}, "application": {}})
        )
    );
    let repairer = client_as(&emu, Some(("repairer", "r-pw")));
    let (_, body) = call(
        &repairer,
        Method::Get,
        "/_security/user/_has_privileges",
        &[],
        Some(asked),
    )
    .await;
    assert_eq!(body["has_all_requested"], json!(true), "{body}");
    let (_, body) = call(&repairer, Method::Get, "/_security/_authenticate", &[], None).await;
    assert_eq!(body["username"], "repairer");

    // Off again: no authentication, and no _security handler.
    emu.set_security(None);
    let (status, _) = call(&anonymous, Method::Get, "/_security/_authenticate", &[], None).await;
    assert_eq!(status, 400);
}
