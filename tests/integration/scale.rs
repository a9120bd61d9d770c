//! `recon check` at scale: targeted, incremental, rechecked, parallel, sharded and sampled runs, and
//! the flat projection form, through the binary against real PostgreSQL and the emulator.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use chrono::{Duration as Minutes, TimeZone, Utc};
use serde_json::{json, Value};

use crate::support::fixture::{order_doc, Fixture, ORDERS_QUERY};
use crate::support::{cli_command, eventually};

/// Orders 1..=n in PostgreSQL and their documents, with drift: 10 missing, 20 mismatched (customer),
/// 30 duplicated under a second id, n+5 orphaned.
async fn shop(n: i64) -> Fixture {
    let f = Fixture::orders("orders", "long").await;
    f.db.execute(&format!(
        "INSERT INTO orders (id, customer, total, ordered_at) \
         SELECT i, 'C' || i, (i % 100) + 0.5, '2024-01-01T00:00:00Z'::timestamptz + i * interval '1 minute' \
         FROM generate_series(1, {n}) i; ANALYZE orders"
    ))
    .await;
    f.config(
        "orders",
        ORDERS_QUERY,
        "orderId",
        "[compare.fields]\norderDate = { as = \"instant\" }",
    );
    let mut docs = Vec::new();
    for i in (1..=n).chain([n + 5]) {
        if i == 10 {
            continue;
        }
        let customer = if i == 20 { "Wrong".to_string() } else { format!("C{i}") };
        let mut doc = order_doc(i, &customer, &format!("{}.5", i % 100), &date(i), json!([]));
        docs.push(doc.clone());
        if i == 30 {
            doc.0 = "30-copy".into();
            docs.push(doc);
        }
    }
    for chunk in docs.chunks(2000) {
        f.index_docs("orders", chunk).await;
    }
    f
}

fn date(i: i64) -> String {
    let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + Minutes::minutes(i);
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn keys_of(report: &Value) -> Vec<(String, String)> {
    report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["key"].to_string(), d["kind"].as_str().unwrap().to_string()))
        .collect()
}

/// The parts of a report that must not depend on how the run was cut up.
fn verdict_of(report: &Value) -> Value {
    json!({"verdict": report["verdict"], "failing": report["failing"], "summary": report["summary"],
           "fields": report["fields"], "listed": report["listed"], "drift": report["drift"]})
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_check_only_the_named_keys_orphans_included() {
    let f = shop(50).await;
    let (code, report, stderr) = f.check_json(&["--keys", "25,20,10,55,20"]).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    let summary = &report["summary"];
    assert_eq!(summary["source_rows"], 3, "{report}");
    assert_eq!(summary["target_docs"], 3);
    assert_eq!(
        (
            &summary["matched"],
            &summary["missing"],
            &summary["mismatched"],
            &summary["orphaned"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1))
    );
    assert_eq!(
        keys_of(&report),
        [
            ("10".into(), "missing".into()),
            ("20".into(), "mismatched".into()),
            ("55".into(), "orphaned".into())
        ]
    );
    assert_eq!(report["run"]["targeted"], json!({"keys": 4}));

    let path = f.dir.path().join("keys.txt");
    std::fs::write(&path, "# clean keys\n25\n26\n").unwrap();
    let (code, report, stderr) = f.check_json(&["--keys-file", path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["summary"]["matched"], 2);

    let (code, report, _) = f.check_json(&["--keys", "30"]).await;
    assert_eq!(code, 1);
    assert_eq!(keys_of(&report), [("30".into(), "duplicate".into())]);

    let (code, _, stderr) = f.check_async(&["--keys", "x"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("not an integer"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn since_checks_recently_changed_rows_and_not_old_drift() {
    let f = shop(50).await;
    f.db.execute("UPDATE orders SET updated_at = now() WHERE id IN (20, 40)")
        .await;
    let (code, report, stderr) = f.check_json(&["--since", "1h"]).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    assert_eq!(report["summary"]["source_rows"], 2, "{report}");
    assert_eq!(report["summary"]["matched"], 1);
    // The missing 10 and the orphaned 55 are old drift: an incremental run cannot see them.
    assert_eq!(keys_of(&report), [("20".into(), "mismatched".into())]);
    assert_eq!(report["run"]["targeted"]["keys"], 2);

    let (code, report, _) = f.check_json(&["--since", "2099-01-01T00:00:00Z"]).await;
    assert_eq!(code, 0);
    assert_eq!(report["summary"]["source_rows"], 0);
}

/// SIGINT while the recheck's lookups are on their way: the run stops at once (exit 130) instead of
/// waiting for answers that take a minute here.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_during_the_recheck_lookups_stops_the_run() {
    let f = shop(50).await;
    let Some(emulator) = &f.emulator else {
        return; // needs the emulator's latency fault on lookups
    };
    // Lookups search the index by name; the scan searches a PIT (`/_search`), left fast.
    emulator.set_faults("latency=60s,only=/orders/_search".parse().unwrap());
    let mut child = cli_command()
        .current_dir(f.dir.path())
        .args(["check", "--format", "json", "--recheck", "0s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (announced, mut lines) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
        (lines.any(|line| line.contains("rechecking")), lines)
    })
    .await
    .unwrap();
    assert!(announced, "no recheck announcement");
    let interrupt = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let child = std::sync::Arc::new(std::sync::Mutex::new(child));
    let stopped = eventually(std::time::Duration::from_secs(20), || {
        let child = child.clone();
        async move { child.lock().unwrap().try_wait().unwrap().is_some() }
    })
    .await;
    emulator.set_faults(Default::default());
    let mut child = child.lock().unwrap();
    if !stopped {
        let _ = child.kill();
    }
    assert!(stopped, "the run went on waiting for its lookups");
    let code = child.wait().unwrap().code();
    let rest: Vec<String> = lines.by_ref().collect();
    assert_eq!(code, Some(130), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn recheck_drops_keys_that_converge_during_the_wait() {
    let f = shop(50).await;
    let dir = f.dir.path().to_path_buf();
    let mut child = cli_command()
        .current_dir(&dir)
        .args(["check", "--format", "json", "--recheck", "4s", "--verbose"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // Wait for the scan to end (recon says so before it waits), then let the projector catch up on 20.
    let announced = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let found = line.contains("rechecking");
            seen.push(line);
            if found {
                return (true, seen, lines);
            }
        }
        (false, seen, lines)
    })
    .await
    .unwrap();
    assert!(announced.0, "no recheck announcement: {:?}", announced.1);
    f.index_docs("orders", &[order_doc(20, "C20", "20.5", &date(20), json!([]))])
        .await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["summary"]["converged"], 1, "{report}");
    assert_eq!(report["summary"]["mismatched"], 0);
    assert_eq!(report["summary"]["matched"], 48);
    assert_eq!(report["failing"], 3);
    assert_eq!(report["fields"], json!({}), "{report}");
    assert_eq!(report["run"]["recheck_ms"], 4000);
    assert_eq!(
        keys_of(&report),
        [
            ("10".into(), "missing".into()),
            ("30".into(), "duplicate".into()),
            ("55".into(), "orphaned".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_and_serial_runs_give_identical_reports() {
    let f = shop(3000).await;
    let (code, serial, stderr) = f.check_json(&[]).await;
    assert_eq!(code, 1, "{serial}\n{stderr}");
    for n in ["2", "3", "7"] {
        let (code, parallel, stderr) = f.check_json(&["--parallel", n]).await;
        assert_eq!(code, 1, "{parallel}\n{stderr}");
        assert_eq!(verdict_of(&parallel), verdict_of(&serial), "--parallel {n}");
        assert_eq!(parallel["run"]["parallel"], n.parse::<u32>().unwrap());
    }
    assert_eq!(serial["summary"]["source_rows"], 3000);
}

/// Every range scan opened on the exported snapshot and the shared PIT sees the data as of the
/// export, whatever is written afterwards; a scan of its own sees the writes.
#[tokio::test(flavor = "multi_thread")]
async fn writes_after_the_shared_snapshot_are_invisible_to_every_range() {
    use futures::TryStreamExt;
    use recon::config::{Overrides, Settings};
    use recon::model::Key;
    use recon::source::{KeyRange, Scan};

    let f = shop(400).await;
    let settings = Settings::load(&f.dir.path().join("recon.toml"), &Overrides::default(), &|_| None).unwrap();
    let sides = recon::engine::connect_sides_with(&settings, 4).await.unwrap();
    let ranges = sides.write_model.split(&KeyRange::all(), 4).await.unwrap();
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    assert!(
        ranges[1].contains(&Key::Int(150)) && ranges[3].contains(&Key::Int(400)),
        "{ranges:?}"
    );

    let snapshot = sides.write_model.open_view().await.unwrap();
    let pit = sides
        .read_model
        .open_view()
        .await
        .unwrap()
        .expect("Elasticsearch shares a point in time");
    f.db.execute("DELETE FROM orders WHERE id IN (5, 150, 399); UPDATE orders SET customer = 'New' WHERE id = 300")
        .await;
    f.index_docs("orders", &[order_doc(1000, "Late", "1.5", &date(1000), json!([]))])
        .await;

    async fn collect(scan: Scan) -> Vec<recon::model::KeyedDoc> {
        scan.docs.try_collect().await.unwrap()
    }
    let mut rows = Vec::new();
    let mut docs = Vec::new();
    for range in &ranges {
        rows.extend(
            collect(
                sides
                    .write_model
                    .open_scan_in(range.clone(), snapshot.as_ref())
                    .await
                    .unwrap(),
            )
            .await,
        );
        docs.extend(
            collect(
                sides
                    .read_model
                    .open_scan_in(range.clone(), Some(pit.as_ref()))
                    .await
                    .unwrap(),
            )
            .await,
        );
    }
    assert_eq!(rows.len(), 400, "deleted rows are still there in the snapshot");
    let row_300 = rows.iter().find(|r| r.key == Key::Int(300)).unwrap();
    assert_eq!(row_300.doc["customerName"], "C300");
    assert_eq!(
        rows.iter().map(|r| &r.key).collect::<Vec<_>>(),
        (1..=400).map(Key::Int).collect::<Vec<_>>().iter().collect::<Vec<_>>()
    );
    assert!(
        docs.iter().all(|d| d.key != Key::Int(1000)),
        "a document indexed after the PIT is invisible"
    );
    assert_eq!(docs.len(), 401);
    sides.read_model.close_view(pit).await;
    drop(snapshot);

    let fresh = collect(sides.write_model.open_scan(KeyRange::all()).await.unwrap()).await;
    assert_eq!(fresh.len(), 397);
    let fresh_docs = collect(sides.read_model.open_scan(KeyRange::all()).await.unwrap()).await;
    assert_eq!(fresh_docs.len(), 402);
}

#[tokio::test(flavor = "multi_thread")]
async fn shard_reports_merged_equal_a_full_run() {
    let f = shop(3000).await;
    let (code, full, stderr) = f.check_json(&[]).await;
    assert_eq!(code, 1, "{stderr}");
    let mut paths = Vec::new();
    for k in 1..=3 {
        let path = f.dir.path().join(format!("shard-{k}.json"));
        let shard = format!("{k}/3");
        let parallel = if k == 2 { "2" } else { "1" };
        let (code, _, stderr) = f
            .check_async(&[
                "--shard",
                &shard,
                "--parallel",
                parallel,
                "--format",
                "json",
                "-q",
                "-o",
                path.to_str().unwrap(),
            ])
            .await;
        assert!(code == 0 || code == 1, "{stderr}");
        paths.push(path);
    }
    let shard1: Value = serde_json::from_str(&std::fs::read_to_string(&paths[0]).unwrap()).unwrap();
    assert_eq!(shard1["run"]["shard"]["index"], 1);
    assert!(shard1["run"]["shard"]["after"].is_null());
    assert!(shard1["summary"]["source_rows"].as_u64().unwrap() < 3000);

    let merge = |paths: &[std::path::PathBuf]| {
        let out = cli_command().args(["report", "merge"]).args(paths).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = merge(&paths);
    assert_eq!(code, 1, "{stderr}");
    let merged: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(verdict_of(&merged), verdict_of(&full));
    assert_eq!(merged["run"]["snapshots"], 3);

    // Several reports from one merge (the sharded nightly job writes the report and its metrics).
    let json_path = f.dir.path().join("merged.json");
    let prom_path = f.dir.path().join("merged.prom");
    let out = cli_command()
        .args(["report", "merge"])
        .args(&paths)
        .arg("-o")
        .arg(format!("json:{}", json_path.display()))
        .arg("-o")
        .arg(format!("prometheus:{}", prom_path.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "reports go to their files, not stdout");
    let from_file: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(verdict_of(&from_file), verdict_of(&full));
    let metrics = std::fs::read_to_string(&prom_path).unwrap();
    let failing = full["failing"].as_u64().unwrap();
    assert!(
        metrics.contains(&format!("recon_check_failing_keys{{check=\"orders\"}} {failing}\n")),
        "{metrics}"
    );

    let (code, _, stderr) = merge(&paths[..2]);
    assert_eq!(code, 2);
    assert!(stderr.contains("exactly once"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sample_checks_whole_ranges_and_estimates_the_total() {
    let f = shop(3000).await;
    let (code, a, stderr) = f.check_json(&["--sample", "0.1", "--sample-seed", "7"]).await;
    assert!(code == 0 || code == 1, "{stderr}");
    let sample = &a["run"]["sample"];
    assert_eq!(sample["seed"], 7);
    let rows = a["summary"]["source_rows"].as_u64().unwrap();
    assert!((150..=450).contains(&rows), "about 10% of 3000 rows: {rows}");
    let ranges = sample["ranges"].as_u64().unwrap();
    assert!(
        ranges >= 1 && ranges < sample["of_ranges"].as_u64().unwrap(),
        "{sample}"
    );
    let fraction = sample["rows_fraction"].as_f64().unwrap();
    assert!((0.04..0.16).contains(&fraction), "{sample}");
    let failing = a["failing"].as_u64().unwrap();
    assert_eq!(
        sample["estimated_failing"].as_u64().unwrap(),
        (failing as f64 / fraction).round() as u64
    );
    // The same seed checks the same ranges.
    let (_, b, _) = f.check_json(&["--sample", "0.1", "--sample-seed", "7"]).await;
    assert_eq!(verdict_of(&a), verdict_of(&b));
    // Orphans inside sampled ranges are found: sample everything and the orphan past the last row shows.
    let (code, all, _) = f.check_json(&["--sample", "1", "--sample-seed", "7"]).await;
    assert_eq!(code, 1);
    let (_, full, _) = f.check_json(&[]).await;
    assert_eq!(verdict_of(&all), verdict_of(&full));
}

/// The shop (customers, products, orders, lines) in PostgreSQL, projected into the read model through
/// the JSON form, with drift: missing, a stale price, a stale name, an orphan, an order without lines.
async fn shop_both_forms(orders: u64) -> Fixture {
    use futures::TryStreamExt;
    use recon::model::Key;
    use recon::source::postgres::{PostgresSettings, PostgresSource};
    use recon::source::{DocumentSource, KeyRange};

    let f = Fixture::new(recon_testkit::shop::schema_sql()).await;
    f.db.execute(&recon_testkit::shop::seed_sql(orders, 3)).await;
    f.db.execute("DELETE FROM order_lines WHERE order_id = 5").await;
    f.create_index(
        "orders",
        json!({"orderId": {"type": "long"}, "orderDate": {"type": "date"}, "products": {"properties": {"sku": {"type": "keyword"}}}}),
    )
    .await;
    let source = PostgresSource::connect(PostgresSettings::new(
        &f.db.url,
        recon_testkit::shop::projection_query(),
        "orderId",
    ))
    .await
    .unwrap();
    let docs: Vec<recon::model::KeyedDoc> = source
        .open_scan(KeyRange::all())
        .await
        .unwrap()
        .docs
        .try_collect()
        .await
        .unwrap();
    let mut bulk = Vec::new();
    for d in docs {
        let Key::Int(id) = d.key else { unreachable!() };
        let mut doc = d.doc.into_json();
        if id % 97 == 0 {
            continue;
        }
        if id % 89 == 1 {
            doc["products"][0]["price"] = json!(0.5);
        }
        if id % 83 == 2 {
            doc["customerName"] = json!("Stale");
        }
        bulk.push((id.to_string(), Value::Object(doc)));
    }
    bulk.push((
        (orders + 1).to_string(),
        json!({"orderId": orders + 1, "customerName": "Gone", "products": []}),
    ));
    for chunk in bulk.chunks(2000) {
        f.index_docs("orders", chunk).await;
    }
    f
}

fn shop_config(f: &Fixture, query: &str, page_size: usize) {
    shop_config_scan(f, query, page_size, "stream");
}

fn shop_config_scan(f: &Fixture, query: &str, page_size: usize, scan: &str) {
    let path = f.config(
        "orders",
        query,
        "orderId",
        "[compare.fields]\norderDate = { as = \"instant\" }\nproducts = { as = \"set\", key = \"sku\" }",
    );
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen(
            "[postgres]\n",
            &format!("[postgres]\npage_size = {page_size}\nscan = \"{scan}\"\n"),
            1,
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn flat_and_json_forms_give_identical_reports() {
    let f = shop_both_forms(700).await;
    shop_config(&f, recon_testkit::shop::projection_query(), 100);
    let (code, json_form, stderr) = f.check_json(&[]).await;
    assert_eq!(code, 1, "{stderr}");
    let summary = &json_form["summary"];
    assert_eq!(summary["missing"], 7, "{summary}");
    assert_eq!(summary["orphaned"], 1);
    assert!(summary["mismatched"].as_u64().unwrap() >= 15, "{summary}");
    // Small pages: keys of several rows straddle page ends; 3 rows per page forces one-key pages too.
    // Streamed, the same sizes only batch the documents handed on.
    for scan in ["stream", "pages"] {
        for page_size in [100, 7, 3] {
            shop_config_scan(&f, recon_testkit::shop::flat_projection_query(), page_size, scan);
            let (code, flat_form, stderr) = f.check_json(&[]).await;
            assert_eq!(code, 1, "{stderr}");
            assert_eq!(
                verdict_of(&flat_form),
                verdict_of(&json_form),
                "{scan}, page size {page_size}"
            );
        }
        shop_config_scan(&f, recon_testkit::shop::projection_query(), 7, scan);
        let (_, json_scan, _) = f.check_json(&[]).await;
        assert_eq!(verdict_of(&json_scan), verdict_of(&json_form), "{scan}, JSON form");
    }
    shop_config(&f, recon_testkit::shop::flat_projection_query(), 100);
    let (_, parallel, _) = f.check_json(&["--parallel", "3"]).await;
    assert_eq!(verdict_of(&parallel), verdict_of(&json_form));
    // Lookups nest too: a targeted run on the flat form.
    let (_, flat_keys, _) = f.check_json(&["--keys", "1,2,3,5,97,701"]).await;
    shop_config(&f, recon_testkit::shop::projection_query(), 100);
    let (_, json_keys, _) = f.check_json(&["--keys", "1,2,3,5,97,701"]).await;
    assert_eq!(verdict_of(&flat_keys), verdict_of(&json_keys));
    assert_eq!(json_keys["summary"]["source_rows"], 5, "{json_keys}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_continues_after_a_crash_in_a_new_snapshot() {
    let f = shop(3000).await;
    let Some(emulator) = &f.emulator else {
        return; // needs the emulator's latency fault to crash the run midway
    };
    let path = f.dir.path().join("recon.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("[elasticsearch]\n", "[elasticsearch]\npage_size = 20\n", 1),
    )
    .unwrap();
    emulator.set_faults("latency=40ms,only=search".parse().unwrap());
    let checkpoint = f.dir.path().join("check.checkpoint");
    let report_path = f.dir.path().join("report.json");
    let mut child = cli_command()
        .current_dir(f.dir.path())
        .args(["check", "-q", "--format", "json", "--checkpoint"])
        .arg(&checkpoint)
        .arg("-o")
        .arg(&report_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !checkpoint.exists() {
        assert!(std::time::Instant::now() < deadline, "no checkpoint written");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL: a crash, not a graceful stop
    child.wait().unwrap();
    assert!(!report_path.exists(), "a crashed run writes no report");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    let last = saved["last_key"].as_i64().unwrap();
    assert!((30..2990).contains(&last), "crashed midway: {saved}");

    // After the crash: a change to a key already compared stays unseen, one after it is seen.
    f.db.execute("UPDATE orders SET customer = 'Changed' WHERE id IN (1, 2999)")
        .await;
    emulator.set_faults(Default::default());
    let (code, report, stderr) = f
        .check_json(&["--checkpoint", checkpoint.to_str().unwrap(), "--resume"])
        .await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(report["run"]["snapshots"], 2, "{report}");
    assert_eq!(report["summary"]["source_rows"], 3000, "{report}");
    assert_eq!(report["summary"]["target_docs"], 3001);
    assert_eq!(
        keys_of(&report),
        [
            ("10".into(), "missing".into()),
            ("20".into(), "mismatched".into()),
            ("30".into(), "duplicate".into()),
            ("2999".into(), "mismatched".into()),
            ("3005".into(), "orphaned".into()),
        ]
    );
    assert!(!checkpoint.exists(), "a finished run removes its checkpoint");
    // --resume without a checkpoint is a fresh full run.
    let (_, fresh, _) = f
        .check_json(&["--checkpoint", checkpoint.to_str().unwrap(), "--resume"])
        .await;
    assert_eq!(fresh["run"]["snapshots"], 1);
    assert_eq!(fresh["summary"]["mismatched"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_run_interrupted_and_resumed_reports_as_an_uninterrupted_one() {
    let f = shop(3000).await;
    let Some(emulator) = &f.emulator else {
        return; // needs the emulator's latency fault to stop the run midway
    };
    let path = f.dir.path().join("recon.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("[elasticsearch]\n", "[elasticsearch]\npage_size = 20\n", 1),
    )
    .unwrap();
    let (code, uninterrupted, stderr) = f.check_json(&["--parallel", "2"]).await;
    assert_eq!(code, 1, "{stderr}");

    emulator.set_faults("latency=100ms,only=search".parse().unwrap());
    let checkpoint = f.dir.path().join("check.checkpoint");
    let report_path = f.dir.path().join("report.json");
    let mut child = cli_command()
        .current_dir(f.dir.path())
        .args(["check", "-q", "--format", "json", "--parallel", "2", "--checkpoint"])
        .arg(&checkpoint)
        .arg("-o")
        .arg(&report_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Until every range has recorded progress of its own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let saved: Option<Value> = std::fs::read_to_string(&checkpoint)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok());
        let ranges_started = saved
            .as_ref()
            .and_then(|s| s["ranges"].as_array())
            .is_some_and(|ranges| ranges.len() == 2 && ranges.iter().all(|r| !r["last_key"].is_null()));
        if ranges_started {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no range recorded progress: {saved:?}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before every range recorded progress"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let interrupt = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(!report_path.exists(), "an interrupted run writes no report");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    assert_eq!(saved["format"], 2, "{saved}");
    let ranges = saved["ranges"].as_array().unwrap();
    assert!(
        ranges.iter().all(|r| {
            let last = r["last_key"].as_i64().unwrap();
            r["done"] == false && r["until"].as_i64().is_none_or(|until| last < until)
        }),
        "stopped midway in every range: {saved}"
    );

    emulator.set_faults(Default::default());
    let (code, resumed, stderr) = f
        .check_json(&[
            "--parallel",
            "2",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--resume",
        ])
        .await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(resumed["run"]["snapshots"], 2, "{resumed}");
    assert_eq!(verdict_of(&resumed), verdict_of(&uninterrupted));
    assert_eq!(
        keys_of(&resumed),
        [
            ("10".into(), "missing".into()),
            ("20".into(), "mismatched".into()),
            ("30".into(), "duplicate".into()),
            ("3005".into(), "orphaned".into()),
        ]
    );
    let left: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("check.checkpoint"))
        .collect();
    assert!(
        left.is_empty(),
        "a finished run removes its checkpoint and drift files: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn recheck_over_many_batches_and_ranges_keeps_key_order_and_counts() {
    let f = shop(6000).await;
    // 4,500 mismatched keys that stay mismatched: five lookup batches, parked by three ranges.
    f.db.execute("UPDATE orders SET customer = 'Renamed' WHERE id <= 4500")
        .await;
    let (code, plain, stderr) = f.check_json(&["--parallel", "3"]).await;
    assert_eq!(code, 1, "{stderr}");
    // 10 is missing and 30 duplicated already.
    assert_eq!(plain["summary"]["mismatched"], 4498, "{}", plain["summary"]);
    let (code, rechecked, stderr) = f.check_json(&["--parallel", "3", "--recheck", "10ms"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(rechecked["summary"]["converged"], 0);
    assert_eq!(verdict_of(&rechecked), verdict_of(&plain));
}

/// Without a terminal, progress is a bounded log: not a line per range, which `--sample` makes hundreds of.
#[tokio::test(flavor = "multi_thread")]
async fn a_sample_logs_a_bounded_number_of_lines() {
    let f = shop(1000).await;
    let (code, _, stderr) = f
        .check_async(&["--format", "json", "--sample", "0.3", "--sample-seed", "7"])
        .await;
    assert_eq!(code, 1, "{stderr}");
    let lines = stderr.lines().filter(|l| l.starts_with("recon: ")).count();
    assert!(
        stderr.contains("key ranges to scan") && lines < 20,
        "{lines} progress lines: {stderr}"
    );
    assert!(stderr.contains(" ranges done: "), "a summary at the end: {stderr}");
}
