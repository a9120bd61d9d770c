//! `recon check` against a real Redis read model: a throwaway redis-server per test (see
//! support/redis.rs), the write model in a fresh PostgreSQL database, the recon binary.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::support::cli_command as recon;
use crate::support::fixture::{ORDERS_QUERY, ORDERS_SCHEMA};
use crate::support::redis::{Fault, FaultyProxy, TestRedis};
use crate::support::{test_database, Run, TestDb};

const SEED: &str = r#"INSERT INTO orders (id, customer, total, ordered_at, items) VALUES
    (1, 'Ada', 100.00, '2024-03-01T10:00:00Z', '[{"sku":"A","name":"Pen","price":50.00},{"sku":"B","name":"Ink","price":50.00}]'),
    (2, 'Zoë', 12.50, '2024-03-02T11:30:00Z', '[{"sku":"C","name":"Pad","price":12.50}]'),
    (3, 'José', 7.00, '2024-03-03T00:00:00Z', '[]'),
    (4, 'Mia', 1.00, '2024-03-04T00:00:00Z', '[]')"#;

const FLAT_QUERY: &str = r#"SELECT id AS "orderId", customer AS "customerName", total AS "totalPrice",
       ordered_at AS "orderDate" FROM orders"#;

/// A write model, a Redis read model and a recon.toml pointing at both.
struct Shop {
    db: TestDb,
    redis: TestRedis,
    dir: tempfile::TempDir,
}

impl Shop {
    async fn new(seed: &str) -> Shop {
        let db = test_database().await;
        db.execute(ORDERS_SCHEMA).await;
        if !seed.is_empty() {
            db.execute(seed).await;
        }
        Shop {
            db,
            redis: TestRedis::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The usual orders projection, JSON values under `<prefix>order:{}`.
    async fn orders() -> Shop {
        let shop = Shop::new(SEED).await;
        shop.config(
            ORDERS_QUERY,
            "json",
            "ignore = [\"updatedAt\"]\n[compare.fields]\nproducts = { as = \"set\", key = \"sku\" }\n\
             orderDate = { as = \"instant\" }\ntotalPrice = { as = \"number\" }",
        );
        shop
    }

    fn config(&self, query: &str, encoding: &str, compare: &str) -> PathBuf {
        let path = self.dir.path().join("recon.toml");
        let updated_at = if query.contains("\"updatedAt\"") {
            "updated_at = \"updatedAt\"\n"
        } else {
            ""
        };
        let text = format!(
            "[postgres]\nurl = \"{}\"\nquery = '''{query}'''\nkey = \"orderId\"\n{updated_at}\n\
             [redis]\nurl = \"{}\"\nkey_pattern = \"{}order:{{}}\"\nencoding = \"{encoding}\"\n\n\
             [compare]\n{compare}\n",
            self.db.url, self.redis.url, self.redis.prefix
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn key(&self, id: &str) -> String {
        format!("{}order:{id}", self.redis.prefix)
    }

    async fn set(&self, id: &str, doc: &Value) {
        self.redis.run(&["SET", &self.key(id), &doc.to_string()]).await;
    }

    /// Runs `recon <args>` in the shop's directory, off the runtime.
    async fn recon(&self, args: &[&str]) -> Run {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let dir = self.dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            recon()
                .current_dir(dir)
                .args(&args)
                .output()
                .expect("recon runs")
                .into()
        })
        .await
        .unwrap()
    }

    async fn check_json(&self, args: &[&str]) -> (i32, Value, String) {
        let run = self
            .recon(&[&["check", "--format", "json", "--quiet"], args].concat())
            .await;
        let report =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
        (run.code, report, run.stderr)
    }
}

/// The read model's document of order `id` as a projector writes it (in sync with SEED).
fn in_sync(id: i64) -> Value {
    let (name, total, date, products) = match id {
        1 => (
            "Ada",
            "100",
            "2024-03-01T10:00:00Z",
            json!([{"sku":"B","name":"Ink","price":50},{"sku":"A","name":"Pen","price":50}]),
        ),
        2 => (
            "Zoë",
            "12.5",
            "2024-03-02T11:30:00Z",
            json!([{"sku":"C","name":"Pad","price":12.5}]),
        ),
        3 => ("José", "7", "2024-03-03T00:00:00Z", json!([])),
        _ => ("Mia", "1", "2024-03-04T00:00:00Z", json!([])),
    };
    let total: Value = serde_json::from_str(total).unwrap();
    json!({"orderId": id, "customerName": name, "products": products, "totalPrice": total, "orderDate": date,
           "indexedAt": "2026-01-01T00:00:00Z"})
}

fn kinds(report: &Value) -> Vec<(Value, String, Value)> {
    report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["key"].clone(),
                d["kind"].as_str().unwrap().to_string(),
                d["ids"].clone(),
            )
        })
        .collect()
}

/// The drift every drifted test below sees: 2 mismatched, 3 missing, 5 orphaned, 4 undecodable (not
/// JSON), 6 of the wrong Redis type (orphaned, no row), and `order:x` and `order:03` whose key parts are
/// no (canonical) integers.
async fn drifted(shop: &Shop) {
    let mut two = in_sync(2);
    two["customerName"] = json!("Zoe");
    shop.set("1", &in_sync(1)).await;
    shop.set("2", &two).await;
    shop.redis.run(&["SET", &shop.key("4"), "{not json"]).await;
    let mut five = in_sync(4);
    five["orderId"] = json!(5);
    shop.set("5", &five).await;
    shop.redis.run(&["HSET", &shop.key("6"), "orderId", "6"]).await;
    shop.set("x", &in_sync(3)).await;
    shop.set("03", &in_sync(3)).await;
    // Another pattern's key is none of the check's business.
    shop.redis
        .run(&["SET", &format!("{}customer:1", shop.redis.prefix), "{}"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_values_in_sync_exit_0() {
    let shop = Shop::orders().await;
    for id in 1..=4 {
        shop.set(&id.to_string(), &in_sync(id)).await;
    }
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["summary"]["matched"], 4, "{report}");
    assert_eq!(report["summary"]["target_docs"], 4, "{report}");
    assert_eq!(report["drift"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_drift_kind_and_every_undecodable_value_is_reported_with_its_redis_key() {
    let shop = Shop::orders().await;
    drifted(&shop).await;
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    let k = |id: &str| json!([shop.key(id)]);
    assert_eq!(
        kinds(&report),
        vec![
            (json!(2), "mismatched".to_string(), k("2")),
            (json!(3), "missing".to_string(), json!([])),
            (json!(4), "mismatched".to_string(), k("4")),
            (json!(5), "orphaned".to_string(), k("5")),
            (json!(6), "orphaned".to_string(), k("6")),
            (json!(null), "unkeyed".to_string(), k("03")),
            (json!(null), "unkeyed".to_string(), k("x")),
        ],
        "{report}"
    );
    let drift = report["drift"].as_array().unwrap();
    assert_eq!(
        drift[0]["diffs"],
        json!([{"path": "customerName", "expected": "Zoë", "actual": "Zoe"}])
    );
    let why = drift[2]["diffs"].to_string();
    assert!(
        why.contains("undecodable Redis value") && why.contains("not JSON"),
        "{why}"
    );
    let summary = &report["summary"];
    assert_eq!(
        (summary["matched"].clone(), summary["duplicate"].clone()),
        (json!(1), json!(0))
    );

    // The same drift through lookups: --keys, and --recheck re-reading every drifted key.
    let (code, report, stderr) = shop.check_json(&["--keys", "2,3,4,6,7"]).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    let keys: Vec<(Value, String)> = kinds(&report).into_iter().map(|(k, kind, _)| (k, kind)).collect();
    assert_eq!(
        keys,
        vec![
            (json!(2), "mismatched".to_string()),
            (json!(3), "missing".to_string()),
            (json!(4), "mismatched".to_string()),
            (json!(6), "orphaned".to_string()),
        ],
        "{report}"
    );
    let (code, rechecked, stderr) = shop.check_json(&["--recheck", "0s"]).await;
    assert_eq!(code, 1, "{rechecked}\n{stderr}");
    assert_eq!(kinds(&rechecked), kinds(&shop.check_json(&[]).await.1), "{rechecked}");
}

#[tokio::test(flavor = "multi_thread")]
async fn since_reads_only_the_changed_rows_documents() {
    let shop = Shop::orders().await;
    drifted(&shop).await;
    shop.db
        .execute("UPDATE orders SET updated_at = now() WHERE id = 2")
        .await;
    let (code, report, stderr) = shop.check_json(&["--since", "1h"]).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    let keys: Vec<(Value, String)> = kinds(&report).into_iter().map(|(k, kind, _)| (k, kind)).collect();
    assert_eq!(keys, vec![(json!(2), "mismatched".to_string())], "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hash_values_compare_as_strings_with_rules_for_the_rest() {
    let shop = Shop::new(SEED).await;
    shop.config(
        FLAT_QUERY,
        "hash",
        "[compare.fields]\norderId = { as = \"number\" }\ntotalPrice = { as = \"number\" }\n\
         orderDate = { as = \"instant\" }",
    );
    let rows = [
        ("1", "Ada", "100.00", "2024-03-01T10:00:00Z"),
        ("2", "Zoë", "12.5", "2024-03-02T11:30:00+00:00"),
        ("3", "José", "7", "2024-03-03T00:00:00Z"),
        ("4", "Mia", "1.0", "2024-03-04T01:00:00+01:00"),
    ];
    for (id, name, total, date) in rows {
        let key = shop.key(id);
        shop.redis
            .run(&[
                "HSET",
                &key,
                "orderId",
                id,
                "customerName",
                name,
                "totalPrice",
                total,
                "orderDate",
                date,
            ])
            .await;
    }
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["summary"]["matched"], 4, "{report}");

    shop.redis.run(&["HSET", &shop.key("3"), "totalPrice", "7.01"]).await;
    shop.redis.run(&["SET", &shop.key("4"), "{}"]).await;
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    let drift = report["drift"].as_array().unwrap();
    assert_eq!(drift.len(), 2, "{report}");
    assert_eq!(
        drift[0]["diffs"].to_string(),
        r#"[{"path":"totalPrice","expected":7.00,"actual":"7.01"}]"#,
        "{report}"
    );
    assert_eq!(
        (drift[1]["key"].clone(), drift[1]["ids"].clone()),
        (json!(4), json!([shop.key("4")]))
    );
    assert!(drift[1]["diffs"].to_string().contains("not a hash"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_keys_page_through_scan_and_mget_in_parallel_ranges_listed_once() {
    let shop = Shop::new(
        "INSERT INTO orders (id, customer, total, ordered_at)
         SELECT i, 'c' || i, i, '2024-01-01T00:00:00Z' FROM generate_series(1, 5000) i",
    )
    .await;
    shop.config(
        FLAT_QUERY,
        "json",
        "[compare.fields]\ntotalPrice = { as = \"number\" }\norderDate = { as = \"instant\" }",
    );
    let pairs: Vec<(String, String)> = (1..=5000)
        .filter(|i| *i != 2500)
        .map(|i| {
            let name = if i == 4999 {
                "changed".to_string()
            } else {
                format!("c{i}")
            };
            let doc = json!({"orderId": i, "customerName": name, "totalPrice": i,
                             "orderDate": "2024-01-01T00:00:00Z"});
            (shop.key(&i.to_string()), doc.to_string())
        })
        .chain([(shop.key("5001"), json!({"orderId": 5001}).to_string())])
        .collect();
    shop.redis.set_all(&pairs).await;
    // A parallel run reports exactly what a serial one does, and lists the keys once for all its
    // ranges: as many SCAN calls as a serial run. The counts are compared from the second run on:
    // the first reads every key, which finishes any resizing of the server's hash table that the
    // writes above began (a listing of a table being resized may take other calls).
    let mut serial: Option<Value> = None;
    let mut scans = Vec::new();
    for parallel in ["1", "2", "3", "1"] {
        shop.redis.reset_stats().await;
        let (code, report, stderr) = shop.check_json(&["--parallel", parallel]).await;
        scans.push((parallel, shop.redis.calls("scan").await));
        assert_eq!(code, 1, "{report}\n{stderr}");
        let keys: Vec<(Value, String)> = kinds(&report).into_iter().map(|(k, kind, _)| (k, kind)).collect();
        assert_eq!(
            keys,
            vec![
                (json!(2500), "missing".to_string()),
                (json!(4999), "mismatched".to_string()),
                (json!(5001), "orphaned".to_string()),
            ],
            "--parallel {parallel}: {report}"
        );
        assert_eq!(report["summary"]["matched"], 4998, "{report}");
        let serial = serial.get_or_insert_with(|| report.clone());
        assert_eq!(report["drift"], serial["drift"], "--parallel {parallel}");
        assert_eq!(report["summary"], serial["summary"], "--parallel {parallel}");
    }
    if let [_, (_, Some(two)), (_, Some(three)), (_, Some(one))] = scans[..] {
        assert!(one > 0, "{scans:?}");
        assert_eq!((two, three), (one, one), "SCAN calls per run: {scans:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_unkeyed_names_are_each_reported_once_in_order() {
    let shop = Shop::orders().await;
    for id in 1..=4 {
        shop.set(&id.to_string(), &in_sync(id)).await;
    }
    // More names than a batch of values (and than a SCAN answer), written in reverse order.
    let mut names: Vec<String> = (0..5000).map(|i| shop.key(&format!("x{i:05}"))).collect();
    let pairs: Vec<(String, String)> = names.iter().rev().map(|n| (n.clone(), "{}".to_string())).collect();
    shop.redis.set_all(&pairs).await;
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 1, "{stderr}");
    names.sort();
    let unkeyed: Vec<String> = kinds(&report)
        .into_iter()
        .map(|(key, kind, ids)| {
            assert_eq!((key, kind.as_str()), (json!(null), "unkeyed"));
            ids[0].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(unkeyed, names);
    assert_eq!(report["summary"]["matched"], 4, "{stderr}");
    assert_eq!(report["summary"]["target_docs"], 5004, "{stderr}");
}

/// A key name that is not UTF-8 cannot be named in a report nor read back under a lossy name: the run
/// stops and names it, where it used to vanish from the report.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_name_that_is_not_utf8_stops_the_check_and_is_named() {
    let shop = Shop::orders().await;
    for id in 1..=4 {
        shop.set(&id.to_string(), &in_sync(id)).await;
    }
    let mut name = shop.key("").into_bytes();
    name.extend_from_slice(b"\xff9");
    let mut conn = shop.redis.conn().await;
    let () = redis::cmd("SET")
        .arg(&name)
        .arg("{}")
        .query_async(&mut conn)
        .await
        .unwrap();
    let run = shop.recon(&["check", "--format", "json", "--quiet"]).await;
    let (code, stdout, stderr) = (run.code, run.stdout, run.stderr);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert_eq!(stdout, "", "no report from a run that could not see every key");
    assert!(
        stderr.contains(&format!("the Redis key \"{}\\xff9\" matches", shop.key(""))) && stderr.contains("not UTF-8"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reindex_refuses_a_redis_read_model_and_no_command_prints_its_password() {
    let shop = Shop::orders().await;
    let config = shop.dir.path().join("recon.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("redis://", "redis://app:s3cretpw@");
    std::fs::write(&config, text).unwrap();
    let run = shop.recon(&["reindex", "--yes"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("recon reindex rebuilds Elasticsearch indices only"),
        "{}",
        run.stderr
    );
    // A check with a wrong password fails with the URL redacted.
    let run = shop
        .recon(&["check", "--redis-url", "redis://app:s3cretpw@127.0.0.1:1/0"])
        .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("redis://app:***@127.0.0.1:1/0"), "{}", run.stderr);
    assert!(!run.stderr.contains("s3cretpw"), "{}", run.stderr);
    // So do a repair and an undo.
    let run = shop
        .recon(&[
            "repair",
            "--keys",
            "1",
            "--redis-url",
            "redis://app:s3cretpw@127.0.0.1:1/0",
        ])
        .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!run.stderr.contains("s3cretpw"), "{}", run.stderr);
    std::fs::write(shop.dir.path().join("audit.ndjson"), "").unwrap();
    let run = shop.recon(&["undo", "audit.ndjson"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!run.stderr.contains("s3cretpw"), "{}", run.stderr);
}

/// Every key under the test's prefix with its type and raw value, sorted: what "byte for byte" compares.
async fn snapshot(shop: &Shop) -> Vec<(String, String, Vec<Vec<u8>>)> {
    let mut conn = shop.redis.conn().await;
    let mut names: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", shop.redis.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    names.sort();
    let mut values = Vec::new();
    for name in names {
        let kind: String = redis::cmd("TYPE").arg(&name).query_async(&mut conn).await.unwrap();
        let value: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis::cmd("GET").arg(&name).query_async(&mut conn).await.unwrap()],
            "hash" => {
                let flat: Vec<Vec<u8>> = redis::cmd("HGETALL").arg(&name).query_async(&mut conn).await.unwrap();
                let mut pairs: Vec<Vec<u8>> = flat
                    .chunks(2)
                    .map(|p| [p[0].clone(), b"=".to_vec(), p[1].clone()].concat())
                    .collect();
                pairs.sort();
                pairs
            }
            "list" => redis::cmd("LRANGE")
                .arg(&name)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "set" => {
                let mut members: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(&name).query_async(&mut conn).await.unwrap();
                members.sort();
                members
            }
            other => panic!("{name} is a {other}"),
        };
        values.push((name, kind, value));
    }
    values
}

impl Shop {
    /// `recon.toml` for the orders projection that also ignores `indexedAt`, a field only the read
    /// model has (a replace keeps it).
    fn orders_repairable(&self) {
        self.config(
            ORDERS_QUERY,
            "json",
            "ignore = [\"updatedAt\", \"indexedAt\"]\n[compare.fields]\nproducts = { as = \"set\", key = \"sku\" }\n\
             orderDate = { as = \"instant\" }\ntotalPrice = { as = \"number\" }",
        );
    }

    async fn get(&self, id: &str) -> Option<String> {
        let mut conn = self.redis.conn().await;
        redis::cmd("GET")
            .arg(self.key(id))
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_brings_json_values_in_sync_and_undo_puts_every_value_back_byte_for_byte() {
    let shop = Shop::orders().await;
    shop.orders_repairable();
    drifted(&shop).await;
    // Two values in another projector's layout (indented, a character escaped): the repair rewrites
    // one and deletes the other, and the undo must give their bytes back, not their re-encoding.
    let mut two = in_sync(2);
    two["customerName"] = json!("Zoe");
    let two = serde_json::to_string_pretty(&two).unwrap().replace("Zoe", "Zo\\u0065");
    shop.redis.run(&["SET", &shop.key("2"), &two]).await;
    let mut five = in_sync(4);
    five["orderId"] = json!(5);
    shop.redis
        .run(&["SET", &shop.key("5"), &serde_json::to_string_pretty(&five).unwrap()])
        .await;
    let before = snapshot(&shop).await;

    // A dry run names each write's condition in Redis's words and writes nothing.
    let run = shop.recon(&["repair"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("create {}order:{{}}/{}", shop.redis.prefix, shop.key("3"))),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("if sha1="), "{}", run.stdout);
    assert_eq!(snapshot(&shop).await, before);
    // Over a cap: refused, pointing at no `recon reindex` (which cannot rebuild Redis).
    let run = shop.recon(&["repair", "--apply", "--yes", "--max-changes", "1"]).await;
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("more than --max-changes 1") && run.stderr.contains("replaying the projection"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("recon reindex"), "{}", run.stderr);
    assert_eq!(snapshot(&shop).await, before);

    let run = shop
        .recon(&["repair", "--apply", "--yes", "--audit", "repair.ndjson"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("applied 7, conflicts 0, failed 0"),
        "{}",
        run.stdout
    );
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["summary"]["matched"], 4, "{report}");
    // The replace kept the field only the read model has; the created document is the projection.
    let two: Value = serde_json::from_str(&shop.get("2").await.unwrap()).unwrap();
    assert_eq!(
        (two["customerName"].clone(), two["indexedAt"].clone()),
        (json!("Zoë"), json!("2026-01-01T00:00:00Z"))
    );
    assert_eq!(shop.get("x").await, None);
    // Another pattern's key is left alone.
    assert!(snapshot(&shop)
        .await
        .iter()
        .any(|(name, _, _)| name.ends_with("customer:1")));

    let run = shop
        .recon(&["undo", "repair.ndjson", "--apply", "--yes", "--audit", "undo.ndjson"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(snapshot(&shop).await, before);
    // Undone twice: nothing to do, nothing changed.
    let run = shop
        .recon(&["undo", "repair.ndjson", "--apply", "--yes", "--audit", "undo2.ndjson"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(snapshot(&shop).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_rewrites_hashes_field_by_field_and_undo_puts_them_back() {
    let shop = Shop::new(SEED).await;
    shop.config(
        FLAT_QUERY,
        "hash",
        "[compare.fields]\norderId = { as = \"number\" }\ntotalPrice = { as = \"number\" }\n\
         orderDate = { as = \"instant\" }",
    );
    let hset = |id: &'static str, total: &'static str, extra: bool| {
        let key = shop.key(id);
        let redis = &shop.redis;
        async move {
            let mut args = vec![
                "HSET".to_string(),
                key,
                "orderId".into(),
                id.into(),
                "customerName".into(),
            ];
            args.push(
                match id {
                    "1" => "Ada",
                    "2" => "Zoë",
                    "3" => "José",
                    _ => "Mia",
                }
                .into(),
            );
            args.extend(["totalPrice".into(), total.into(), "orderDate".into()]);
            args.push(format!(
                "2024-03-0{id}T{}Z",
                if id == "1" {
                    "10:00:00"
                } else if id == "2" {
                    "11:30:00"
                } else {
                    "00:00:00"
                }
            ));
            if extra {
                args.extend(["stale".into(), "yes".into()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            redis.run(&args).await;
        }
    };
    hset("1", "100.00", false).await;
    hset("3", "7.01", true).await;
    hset("4", "1", false).await;
    shop.redis.run(&["HSET", &shop.key("9"), "orderId", "9"]).await;
    shop.redis.run(&["SET", &shop.key("4"), "{}"]).await;
    let before = snapshot(&shop).await;
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    assert_eq!(report["drift"].as_array().unwrap().len(), 4, "{report}");

    // --mode patch sets only the differing fields, and removes the one the projection lacks. The
    // answer to the writes is lost on the way: sent again, they find their own result.
    let proxy = FaultyProxy::start(&shop.redis).await;
    proxy.set(Fault::LoseWriteAnswer);
    let run = shop
        .recon(&[
            "repair",
            "--mode",
            "patch",
            "--apply",
            "--yes",
            "--concurrency",
            "1",
            "--audit",
            "repair.ndjson",
            "--redis-url",
            &proxy.url,
        ])
        .await;
    assert_eq!(*proxy.fault.lock().unwrap(), Fault::None, "the fault fired");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("applied 4, conflicts 0, failed 0"),
        "{}",
        run.stdout
    );
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    let mut conn = shop.redis.conn().await;
    let three: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(shop.key("3"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(three.get("totalPrice").map(String::as_str), Some("7.00"), "{three:?}");
    let two: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(shop.key("2"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(two.get("customerName").map(String::as_str), Some("Zoë"), "{two:?}");

    let run = shop
        .recon(&["undo", "repair.ndjson", "--apply", "--yes", "--audit", "undo.ndjson"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(snapshot(&shop).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_changed_between_plan_and_apply_is_a_conflict_left_alone() {
    let shop = Shop::orders().await;
    shop.orders_repairable();
    drifted(&shop).await;
    let run = shop.recon(&["repair", "--plan", "plan.ndjson"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    // A projector writes order 2 and creates order 3 after the plan was made.
    let mut two = in_sync(2);
    two["customerName"] = json!("Zoé (projector)");
    shop.set("2", &two).await;
    shop.set("3", &in_sync(3)).await;
    let run = shop
        .recon(&[
            "repair",
            "--from-plan",
            "plan.ndjson",
            "--apply",
            "--yes",
            "--audit",
            "repair.ndjson",
        ])
        .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("applied 5, conflicts 2, failed 0"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("conflict: key 2: the value changed since it was read"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("conflict: key 3: the key exists"), "{}", run.stdout);
    assert_eq!(shop.get("2").await, Some(two.to_string()));
    assert_eq!(shop.get("3").await, Some(in_sync(3).to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn values_of_other_types_are_repaired_and_undo_restores_them_exactly() {
    let shop = Shop::orders().await;
    shop.orders_repairable();
    for id in [1, 3, 4] {
        shop.set(&id.to_string(), &in_sync(id)).await;
    }
    // A list where order 2's JSON belongs (its row exists), and a set under an order without a row.
    shop.redis
        .run(&["RPUSH", &shop.key("2"), "b", "a", "\u{0}\u{ff}", "a"])
        .await;
    shop.redis.run(&["SADD", &shop.key("9"), "x", "y"]).await;
    let before = snapshot(&shop).await;
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    let k = |id: &str| json!([shop.key(id)]);
    assert_eq!(
        kinds(&report),
        vec![
            (json!(2), "mismatched".to_string(), k("2")),
            (json!(9), "orphaned".to_string(), k("9")),
        ],
        "{report}"
    );
    assert!(report.to_string().contains("a Redis list, not a string"), "{report}");

    // Changed after the plan read it: the write over the list conflicts (its token is the SHA-1 of
    // its DUMP, not its type alone).
    let run = shop.recon(&["repair", "--plan", "plan.ndjson"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    shop.redis.run(&["RPUSH", &shop.key("2"), "late"]).await;
    let run = shop
        .recon(&[
            "repair",
            "--from-plan",
            "plan.ndjson",
            "--apply",
            "--yes",
            "--audit",
            "stale.ndjson",
        ])
        .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("applied 1, conflicts 1, failed 0"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("conflict: key 2: the value changed since it was read"),
        "{}",
        run.stdout
    );
    let run = shop
        .recon(&[
            "undo",
            "stale.ndjson",
            "--apply",
            "--yes",
            "--audit",
            "stale-undo.ndjson",
        ])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    shop.redis.run(&["RPOP", &shop.key("2")]).await;
    assert_eq!(snapshot(&shop).await, before);

    // Repaired, then undone: the list and the set come back as they were, element for element.
    let run = shop
        .recon(&["repair", "--apply", "--yes", "--audit", "repair.ndjson"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("applied 2, conflicts 0, failed 0"),
        "{}",
        run.stdout
    );
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    let run = shop
        .recon(&["undo", "repair.ndjson", "--apply", "--yes", "--audit", "undo.ndjson"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(snapshot(&shop).await, before);
}

/// 3,000 orders in sync but for 2 (missing) and 2999 (mismatched), values of a few hundred bytes.
async fn many_orders() -> Shop {
    let shop = Shop::new(
        "INSERT INTO orders (id, customer, total, ordered_at)
         SELECT i, 'c' || i, i, '2024-01-01T00:00:00Z' FROM generate_series(1, 3000) i",
    )
    .await;
    shop.config(
        FLAT_QUERY,
        "json",
        "ignore = [\"padding\"]\n[compare.fields]\ntotalPrice = { as = \"number\" }\norderDate = { as = \"instant\" }",
    );
    let pairs: Vec<(String, String)> = (1..=3000)
        .filter(|i| *i != 2)
        .map(|i| {
            let name = if i == 2999 {
                "changed".to_string()
            } else {
                format!("c{i}")
            };
            let doc = json!({"orderId": i, "customerName": name, "totalPrice": i,
                             "orderDate": "2024-01-01T00:00:00Z", "padding": "p".repeat(300)});
            (shop.key(&i.to_string()), doc.to_string())
        })
        .collect();
    shop.redis.set_all(&pairs).await;
    shop
}

fn drift_keys(report: &Value) -> Vec<(Value, String)> {
    kinds(report).into_iter().map(|(k, kind, _)| (k, kind)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_reset_mid_read_is_read_again_and_mid_listing_fails_saying_how_far() {
    let shop = many_orders().await;
    let proxy = FaultyProxy::start(&shop.redis).await;
    let expected = vec![
        (json!(2), "missing".to_string()),
        (json!(2999), "mismatched".to_string()),
    ];

    // Cut while the values are read (the key names are ~100 KB of the ~1 MB that comes back): the
    // batch is read again on a new connection, and the report is the one without the fault.
    proxy.set(Fault::CutAfterBytes(500_000));
    let (code, report, stderr) = shop.check_json(&["--redis-url", &proxy.url]).await;
    assert_eq!(*proxy.fault.lock().unwrap(), Fault::None, "the fault fired");
    assert_eq!(code, 1, "{report}\n{stderr}");
    assert_eq!(drift_keys(&report), expected, "{report}");
    assert_eq!(report["summary"]["matched"], 2998, "{report}");

    // Cut while the keys are listed: a SCAN cursor is the server's, so the check stops, saying
    // where, and reports nothing.
    proxy.set(Fault::CutAfterBytes(20_000));
    let run = shop
        .recon(&["check", "--format", "json", "--quiet", "--redis-url", &proxy.url])
        .await;
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "no report from a partial read: {}", run.stdout);
    assert!(
        run.stderr.contains("lost the connection to Redis redis://127.0.0.1:")
            && run.stderr.contains("while listing the keys (after ")
            && run.stderr.contains("run the check again"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_answer_was_lost_is_recorded_as_applied_not_as_a_conflict() {
    let shop = Shop::orders().await;
    shop.orders_repairable();
    drifted(&shop).await;
    let proxy = FaultyProxy::start(&shop.redis).await;
    proxy.set(Fault::LoseWriteAnswer);
    let run = shop
        .recon(&[
            "repair",
            "--apply",
            "--yes",
            "--concurrency",
            "1",
            "--format",
            "json",
            "--audit",
            "repair.ndjson",
            "--redis-url",
            &proxy.url,
        ])
        .await;
    assert_eq!(*proxy.fault.lock().unwrap(), Fault::None, "the fault fired");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let outcomes = &summary["outcomes"];
    assert_eq!(
        (outcomes["applied"].clone(), outcomes["conflict"].clone()),
        (json!(7), json!(0)),
        "{summary}"
    );
    // Sent again, the writes that had applied found their own result (a delete finds its key gone,
    // and is read back).
    let audit = std::fs::read_to_string(shop.dir.path().join("repair.ndjson")).unwrap();
    let settled = audit
        .lines()
        .filter(|l| l.contains("\"result\":\"already\"") || l.contains("answer lost; verified"))
        .count();
    assert!(settled > 0, "{audit}");
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_restart_mid_apply_then_resume_applies_each_action_once() {
    let mut shop = Shop::orders().await;
    shop.orders_repairable();
    drifted(&shop).await;
    let before = snapshot(&shop).await;
    let proxy = FaultyProxy::start(&shop.redis).await;
    // The repair's first writes never reach the server; the repair is killed while it waits, and the
    // server restarts (scripts forgotten) before the resume.
    proxy.set(Fault::HoldWrites);
    let child = recon()
        .current_dir(shop.dir.path())
        .args([
            "repair",
            "--apply",
            "--yes",
            "--concurrency",
            "1",
            "--audit",
            "repair.ndjson",
            "--redis-url",
        ])
        .arg(&proxy.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    proxy.fired.notified().await;
    // Killed first: a restart closes the held connection, and a live run would then write.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    shop.redis.restart().await;
    assert_eq!(out.status.code(), None);
    assert_eq!(snapshot(&shop).await, before, "nothing was written");

    let run = shop
        .recon(&[
            "repair",
            "--resume",
            "repair.ndjson",
            "--apply",
            "--yes",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("0 actions done, 7 sent without a recorded outcome, 0 not started"),
        "{}",
        run.stderr
    );
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    let audit = std::fs::read_to_string(shop.dir.path().join("repair.ndjson")).unwrap();
    let applied: Vec<u64> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["type"] == "outcome" && l["status"] == "applied")
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        applied,
        (1..=7).collect::<Vec<u64>>(),
        "each action applied once: {audit}"
    );
    // And the whole repair undoes.
    let run = shop
        .recon(&["undo", "repair.ndjson", "--apply", "--yes", "--audit", "undo.ndjson"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(snapshot(&shop).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_restart_mid_apply_is_survived_by_the_same_run() {
    let mut shop = Shop::orders().await;
    shop.orders_repairable();
    drifted(&shop).await;
    let proxy = FaultyProxy::start(&shop.redis).await;
    // The first writes hang; the server restarts under them (every connection cut, every script
    // forgotten, the data kept); the repair reconnects, loads its script again and carries on.
    proxy.set(Fault::HoldWrites);
    let child = recon()
        .current_dir(shop.dir.path())
        .args(["repair", "--apply", "--yes", "--concurrency", "1", "--format", "json"])
        .args(["--audit", "repair.ndjson", "--redis-url"])
        .arg(&proxy.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    proxy.fired.notified().await;
    shop.redis.restart().await;
    proxy.release();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            summary["outcomes"]["applied"].clone(),
            summary["outcomes"]["conflict"].clone()
        ),
        (json!(7), json!(0)),
        "{summary}"
    );
    let (code, report, stderr) = shop.check_json(&[]).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
}

/// The `recon …` command a run printed after `marker`, as arguments (its words hold no quotes here).
fn printed(text: &str, marker: &str) -> Vec<String> {
    let line = text
        .lines()
        .find_map(|l| l.split_once(marker).map(|(_, rest)| rest.to_string()))
        .unwrap_or_else(|| panic!("no {marker:?} in {text}"));
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    assert_eq!(words[0], "recon", "{line}");
    words[1..].to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn printed_commands_keep_the_redis_url_flag() {
    let shop = Shop::orders().await;
    shop.orders_repairable();
    drifted(&shop).await;
    // The configuration names a server where nothing is: only --redis-url leads to the read model.
    let config = shop.dir.path().join("recon.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&shop.redis.url, "redis://127.0.0.1:1/0");
    std::fs::write(&config, text).unwrap();
    let url = shop.redis.url.clone();

    let run = shop.recon(&["repair", "--keys", "3", "--redis-url", &url]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let apply = printed(&run.stderr, "to make these changes: ");
    assert!(apply.contains(&"--redis-url".to_string()), "{apply:?}");
    let args: Vec<&str> = apply.iter().map(String::as_str).chain(["--yes"]).collect();
    let run = shop.recon(&args).await;
    assert_eq!(run.code, 0, "{apply:?}\n{}\n{}", run.stdout, run.stderr);
    let three = shop.get("3").await.expect("the pasted apply created order 3");
    assert!(three.starts_with("{\"orderId\":3,"), "{three}");

    let undo = printed(&run.stdout, "undo with: ");
    let args: Vec<&str> = undo.iter().map(String::as_str).chain(["--apply", "--yes"]).collect();
    let run = shop.recon(&args).await;
    assert_eq!(run.code, 0, "{undo:?}\n{}\n{}", run.stdout, run.stderr);
    assert_eq!(shop.get("3").await, None);
}
