//! `recon explain` through the binary: the drifted shop (a real PostgreSQL and the emulator), one key of
//! every verdict, as a person sees it (snapshot, colour off) and as a machine reads it (NDJSON), and
//! the exit codes; then once against a Redis read model.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::cli_command as recon;
use crate::support::fixture::{drifted, order_doc, Fixture, ORDERS_QUERY, ORDERS_SCHEMA};
use crate::support::redis::TestRedis;
use crate::support::{run_on_a_terminal, test_database, Run};

/// Runs `recon explain <args>` in `dir`, off the runtime (the emulator serves on it meanwhile).
async fn explain(dir: &Path, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        recon()
            .current_dir(dir)
            .arg("explain")
            .args(&args)
            .output()
            .expect("recon runs")
            .into()
    })
    .await
    .unwrap()
}

/// The drifted shop (1 and 2 mismatched, 3 missing, 4 duplicated, 5 orphaned) plus order 6, in sync.
async fn shop() -> Fixture {
    let f = drifted().await;
    f.db.execute(
        "INSERT INTO orders (id, customer, total, ordered_at, items) VALUES (6, 'Lin', 3.00, '2024-03-06T00:00:00Z', '[]')",
    )
    .await;
    f.index_docs(
        "orders",
        &[order_doc(6, "Lin", "3", "2024-03-06T08:00:00+08:00", json!([]))],
    )
    .await;
    f
}

/// The age of a row depends on today's date: `(1070 days ago)` becomes `(AGE)`.
fn without_ages(text: &str) -> String {
    text.lines()
        .map(|line| match (line.rfind(" ("), line.ends_with(" ago)")) {
            (Some(at), true) => format!("{} (AGE)", &line[..at]),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_verdict_side_by_side_for_a_person() {
    let f = shop().await;
    let run = explain(f.dir.path(), &["5", "1", "3", "4", "6", "99", "1"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stderr, "");
    assert!(
        !run.stdout.contains('\u{1b}'),
        "no colour off a terminal: {}",
        run.stdout
    );
    insta::assert_snapshot!("explain_every_verdict", without_ages(&run.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_verdict_as_json_one_object_per_key() {
    let f = shop().await;
    let run = explain(f.dir.path(), &["--format", "json", "1", "2", "3", "4", "5", "6", "99"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["type"] == "recon.explain/v1"), "{}", run.stdout);
    let data: Vec<&Value> = lines.iter().map(|l| &l["data"]).collect();
    let verdicts: Vec<(i64, &str)> = data
        .iter()
        .map(|d| (d["key"].as_i64().unwrap(), d["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        [
            (1, "mismatched"),
            (2, "mismatched"),
            (3, "missing"),
            (4, "duplicate"),
            (5, "orphaned"),
            (6, "in_sync"),
            (99, "absent"),
        ]
    );

    // 1: the nested price, under the set's key, with the rule it was judged by.
    let one = data[0];
    let differences: Value = serde_json::from_str(
        r#"[{"path": "products[sku=A].price", "field": "products.price", "expected": 50.00, "actual": 55,
             "rule": "exact, in set by sku"}]"#,
    )
    .unwrap();
    assert_eq!(one["differences"], differences);
    assert_eq!(one["expected"]["customerName"], "Ada");
    let actual = one["actual"].as_array().unwrap();
    assert_eq!(actual.len(), 1);
    assert_eq!(actual[0]["compared"], true);
    // The whole document, the ignored stamp included; its envelope in the read model's words.
    assert_eq!(actual[0]["document"]["indexedAt"], "2026-01-01T00:00:00Z");
    let metadata = &actual[0]["metadata"];
    assert_eq!((&metadata["_id"], &metadata["index"]), (&json!("1"), &json!("orders")));
    assert!(
        metadata["seq_no"].is_i64() && metadata["primary_term"].is_i64(),
        "{metadata}"
    );
    let write_model = &one["metadata"]["write_model"];
    assert_eq!(write_model["updated_at_column"], "updatedAt");
    assert_eq!(write_model["updated_at"], "2024-01-01T00:00:00Z");
    assert!(write_model["age_seconds"].as_i64().unwrap() > 0, "{write_model}");
    let rule_of = |d: &Value, path: &str| {
        d["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"] == path)
            .map(|p| p["rule"].clone())
            .unwrap_or_else(|| panic!("no path {path} in {d}"))
    };
    assert_eq!(rule_of(one, "orderDate"), "instant");
    assert_eq!(rule_of(one, "indexedAt"), "ignored");
    assert_eq!(rule_of(one, "updatedAt"), "ignored");

    // 2: a top-level text field.
    assert_eq!(data[1]["differences"][0]["path"], "customerName");
    // 3: nothing in the read model.
    assert_eq!((&data[2]["actual"], &data[2]["differences"]), (&json!([]), &json!([])));
    assert_eq!(data[2]["expected"]["orderId"], 3);
    // 4: both copies, the one a projector writes (_id = key) compared.
    let copies: Vec<(&Value, &Value)> = data[3]["actual"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (&a["metadata"]["_id"], &a["compared"]))
        .collect();
    assert_eq!(
        copies,
        [(&json!("4"), &json!(true)), (&json!("4-retry"), &json!(false))]
    );
    // 5: no row.
    assert_eq!(data[4]["expected"], Value::Null);
    assert_eq!(data[4]["metadata"]["write_model"], Value::Null);
    assert_eq!(data[4]["actual"][0]["document"]["customerName"], "Ghost");
    // 6: in sync though the instant is written in another zone.
    assert_eq!(data[5]["differences"], json!([]));
    // 99: neither side.
    assert_eq!((&data[6]["expected"], &data[6]["actual"]), (&Value::Null, &json!([])));
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_in_sync_or_on_neither_side_exit_0_and_a_bad_key_exits_2() {
    let f = shop().await;
    let run = explain(f.dir.path(), &["6", "99"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("key 6: in sync\n"), "{}", run.stdout);

    let keys = f.dir.path().join("keys.txt");
    std::fs::write(&keys, "# from last night's report\n2\n").unwrap();
    let run = explain(f.dir.path(), &["--keys-file", "keys.txt", "6"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("key 2: mismatched at customerName\n"),
        "{}",
        run.stdout
    );

    std::fs::write(&keys, "# nothing drifted\n").unwrap();
    let run = explain(f.dir.path(), &["--keys-file", "keys.txt"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    // After the timestamp a log line carries when stderr is not a terminal.
    assert_eq!(
        run.stderr.trim().split_once(' ').map(|(_, message)| message),
        Some(
            "recon: error: no keys to explain: --keys-file keys.txt lists none; give keys as arguments or one per line"
        )
    );

    let run = explain(f.dir.path(), &["6", "ORD-7"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert_eq!(
        run.stderr.trim().split_once(' ').map(|(_, message)| message),
        Some(
            "recon: error: key \"ORD-7\" is not an integer key, but postgres.key \"orderId\" is an integer column; \
             give the key as the write model holds it (e.g. 10408)"
        )
    );

    let run = explain(f.dir.path(), &[]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("<KEY>"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn colour_on_a_terminal_unless_no_color() {
    let f = shop().await;
    let on_a_terminal = |no_color: bool| {
        let mut command = recon();
        command.current_dir(f.dir.path()).args(["explain", "1"]);
        if !no_color {
            command.env_remove("NO_COLOR");
        }
        tokio::task::spawn_blocking(move || run_on_a_terminal(command))
    };
    let coloured = on_a_terminal(false).await.unwrap();
    assert_eq!(coloured.code, 1, "{}\n{}", coloured.stdout, coloured.stderr);
    assert!(
        coloured.stdout.contains("\u{1b}[31m"),
        "the differing path in colour: {}",
        coloured.stdout
    );
    let plain = on_a_terminal(true).await.unwrap();
    assert_eq!(plain.code, 1);
    assert!(!plain.stdout.contains('\u{1b}'), "{}", plain.stdout);
    assert!(plain.stdout.contains("≠ products[sku=A].price"), "{}", plain.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_read_model_is_explained_in_its_own_words() {
    let db = test_database().await;
    db.execute(ORDERS_SCHEMA).await;
    db.execute(
        "INSERT INTO orders (id, customer, total, ordered_at) VALUES (1, 'Ada', 100.00, '2024-03-01T10:00:00Z'), \
         (2, 'Zoë', 12.50, '2024-03-02T11:30:00Z')",
    )
    .await;
    let redis = TestRedis::start().await;
    let name = format!("{}order:1", redis.prefix);
    let doc = json!({"orderId": 1, "customerName": "Ada", "products": [], "totalPrice": 90,
                     "orderDate": "2024-03-01T10:00:00Z", "indexedAt": "2026-01-01T00:00:00Z"});
    redis.run(&["SET", &name, &doc.to_string()]).await;
    redis
        .run(&["SET", &format!("{}order:2", redis.prefix), "{not json"])
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("recon.toml"),
        format!(
            "[postgres]\nurl = \"{}\"\nquery = '''{ORDERS_QUERY}'''\nkey = \"orderId\"\nupdated_at = \"updatedAt\"\n\n\
             [redis]\nurl = \"{}\"\nkey_pattern = \"{}order:{{}}\"\n\n\
             [compare]\nignore = [\"updatedAt\"]\n[compare.fields]\ntotalPrice = {{ as = \"number\", tolerance = 5 }}\n",
            db.url, redis.url, redis.prefix
        ),
    )
    .unwrap();
    let run = explain(dir.path(), &["1"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let text = run.stdout;
    assert!(text.starts_with("key 1: mismatched at totalPrice\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("  ≠ totalPrice") && l.contains("number ±5") && l.contains("100.00")),
        "{text}"
    );
    // A field the projection does not produce is shown, and said not to be compared.
    assert!(
        text.lines()
            .any(|l| l.contains("indexedAt") && l.contains("not compared")),
        "{text}"
    );
    let read_model = text.lines().find(|l| l.starts_with("  read model")).unwrap();
    // The version token is the SHA-1 of the value's bytes (what the write scripts check), said so.
    let sha1: String = {
        use sha1::Digest;
        sha1::Sha1::digest(doc.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert!(
        read_model.contains(&format!("redis key {name}, value hash sha1 {sha1}")),
        "{read_model}"
    );
    assert!(!read_model.contains("seq_no"), "{read_model}");

    // A value that is not JSON is judged as check judges it: mismatched, the reason among the paths.
    let run = explain(dir.path(), &["2", "--format", "json"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let line: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(line["data"]["verdict"], "mismatched", "{line}");
    let undecodable = line["data"]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == "(undecodable Redis value)")
        .unwrap_or_else(|| panic!("{line}"));
    // explain reads whole documents, which hold the value itself (what an undo restores) in place of
    // the reason; the reason is among the read model's metadata.
    assert!(
        undecodable["actual"].as_str().unwrap().contains("held as it is"),
        "{line}"
    );
    let why = line["data"]["actual"][0]["metadata"]["undecodable"]
        .as_str()
        .unwrap_or_else(|| panic!("{line}"));
    assert!(why.starts_with("not JSON: "), "{why}");
    let raw = line["data"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "(Redis value).string")
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(raw["actual"], json!(["{not json"]), "{line}");
    // A field absent on a side is left out, as in a check's report: `null` would mean a null field.
    let order_id = &line["data"]["differences"][0];
    assert_eq!(order_id["path"], "orderId");
    assert!(order_id.get("actual").is_none(), "{line}");
}
