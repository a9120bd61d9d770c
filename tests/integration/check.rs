//! `recon check` end to end: a real throwaway PostgreSQL, the emulator over HTTP, the binary.

use serde_json::{json, Value};

use crate::support::fixture::{drifted, order_doc, seed_orders, Fixture, ORDERS_QUERY};

#[tokio::test(flavor = "multi_thread")]
async fn a_read_model_in_sync_exits_0() {
    let f = Fixture::orders("orders", "long").await;
    seed_orders(&f).await;
    f.index_docs(
        "orders",
        &[
            // Same values, spelled as a projector might: 100 for 100.00, 12.5 for 12.50.
            order_doc(
                1,
                "Ada",
                "100",
                "2024-03-01T10:00:00Z",
                json!([{"sku":"A","name":"Pen","price":50},{"sku":"B","name":"Ink","price":50.0}]),
            ),
            order_doc(
                2,
                "Zoë",
                "12.5",
                "2024-03-02T11:30:00Z",
                json!([{"sku":"C","name":"Pad","price":12.5}]),
            ),
            order_doc(3, "José", "7.00", "2024-03-03T00:00:00Z", json!([])),
            order_doc(4, "Mia", "1", "2024-03-04T00:00:00Z", json!([])),
        ],
    )
    .await;
    let (code, report, stderr) = f.check_json(&[]).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["schema"], "recon.check/v2");
    assert_eq!(report["summary"]["source_rows"], 4);
    assert_eq!(report["summary"]["target_docs"], 4);
    assert_eq!(report["summary"]["matched"], 4);
    assert_eq!(report["drift"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_drift_kind_is_reported_with_evidence() {
    let f = drifted().await;
    let (code, report, stderr) = f.check_json(&[]).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    let summary = &report["summary"];
    assert_eq!(
        (
            summary["missing"].clone(),
            summary["orphaned"].clone(),
            summary["mismatched"].clone(),
            summary["duplicate"].clone()
        ),
        (json!(1), json!(1), json!(2), json!(1)),
        "{report}"
    );
    assert_eq!(summary["matched"], 0);
    let drift = report["drift"].as_array().unwrap();
    let kinds: Vec<(Value, &str)> = drift
        .iter()
        .map(|d| (d["key"].clone(), d["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (json!(1), "mismatched"),
            (json!(2), "mismatched"),
            (json!(3), "missing"),
            (json!(4), "duplicate"),
            (json!(5), "orphaned")
        ]
    );
    // The set rule matches elements by sku, whatever their order; numbers keep their exact digits.
    let diffs = drift[0]["diffs"].as_array().unwrap();
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(diffs[0]["path"], "products[sku=A].price");
    assert_eq!(diffs[0]["expected"].to_string(), "50.00");
    assert_eq!(diffs[0]["actual"].to_string(), "55");
    assert_eq!(
        drift[1]["diffs"],
        json!([{"path": "customerName", "expected": "Zoë", "actual": "Zoe"}])
    );
    let mut ids: Vec<&str> = drift[3]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["4", "4-retry"]);
    assert_eq!(drift[4]["ids"], json!(["5"]));
    assert_eq!(report["fields"]["customerName"], 1);
    assert_eq!(report["fields"]["products.price"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_limit_and_output_file() {
    let f = drifted().await;
    let (code, report, _) = f.check_json(&["--allow", "5"]).await;
    assert_eq!(code, 0, "5 failing keys are allowed: {report}");
    let (code, report, _) = f.check_json(&["--allow", "4", "--limit", "2"]).await;
    assert_eq!(code, 1);
    assert_eq!(report["drift"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["summary"]["mismatched"], 2, "counts stay complete under --limit");

    let out = f.dir.path().join("reports/check.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let (code, stdout, stderr) = f
        .check_async(&["--format", "json", "--quiet", "--output", out.to_str().unwrap()])
        .await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "", "the report goes to the file, not stdout");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written["summary"]["orphaned"], 1);
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left beside the report");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_format_renders_the_same_drift() {
    let f = drifted().await;
    let (code, ndjson, _) = f.check_async(&["--format", "ndjson", "--quiet"]).await;
    assert_eq!(code, 1);
    let lines: Vec<Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6, "{ndjson}");
    assert!(lines[..5].iter().all(|l| l["type"] == "drift"));
    assert_eq!(lines[5]["type"], "summary");
    assert_eq!(lines[5]["data"]["summary"]["duplicate"], 1);

    let (code, table, _) = f.check_async(&["--format", "table", "--quiet"]).await;
    assert_eq!(code, 1);
    for needle in [
        "missing",
        "orphaned",
        "mismatched",
        "duplicate",
        "products[sku=A].price",
        "Zoë",
    ] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
    let (_, markdown, _) = f.check_async(&["--format", "markdown", "--quiet"]).await;
    assert!(
        markdown.contains("| missing") || markdown.contains("|missing"),
        "{markdown}"
    );
    let (_, junit, _) = f.check_async(&["--format", "junit", "--quiet"]).await;
    assert!(
        junit.starts_with("<?xml") && junit.contains("<testsuite") && junit.contains("<failure"),
        "{junit}"
    );
    let (_, prometheus, _) = f.check_async(&["--format", "prometheus", "--quiet"]).await;
    assert!(
        prometheus.contains("recon_check_keys{check=\"orders\",kind=\"missing\"} 1"),
        "{prometheus}"
    );
    assert!(
        prometheus.contains("recon_check_keys{check=\"orders\",kind=\"orphaned\"} 1"),
        "{prometheus}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_above_2_pow_53_survive() {
    let f = Fixture::orders("orders", "long").await;
    f.db.execute(
        "INSERT INTO orders (id, customer, total, ordered_at) VALUES
         (9007199254740992, 'a', 1, '2024-01-01Z'), (9007199254740993, 'b', 1, '2024-01-01Z'),
         (9223372036854775807, 'max', 1, '2024-01-01Z')",
    )
    .await;
    f.index_docs(
        "orders",
        &[
            order_doc(9007199254740992, "a", "1", "2024-01-01T00:00:00Z", json!([])),
            order_doc(9223372036854775807, "max", "1", "2024-01-01T00:00:00Z", json!([])),
        ],
    )
    .await;
    let (code, report, stderr) = f.check_json(&[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(report["summary"]["matched"], 2, "{report}");
    let raw = serde_json::to_string(&report["drift"]).unwrap();
    assert!(raw.contains(r#""key":9007199254740993"#), "{raw}");
    assert_eq!(report["drift"][0]["kind"], "missing");
}

#[tokio::test(flavor = "multi_thread")]
async fn text_keys_sort_alike_on_both_sides() {
    let f = Fixture::new(
        r#"CREATE TABLE skus (sku text PRIMARY KEY, name text NOT NULL);
           INSERT INTO skus VALUES ('a','x'),('Z','x'),('é','x'),('e','x'),('日本','x'),('😀','x'),('～','x'),('ab','x'),('a b','x');"#,
    )
    .await;
    f.create_index("skus", json!({"sku": {"type": "keyword"}})).await;
    f.config("skus", "SELECT sku, name FROM skus", "sku", "");
    let mut docs: Vec<(String, Value)> = ["a", "Z", "é", "e", "日本", "😀", "～", "ab"]
        .iter()
        .map(|s| (s.to_string(), json!({"sku": s, "name": "x"})))
        .collect();
    docs.push(("Ω".into(), json!({"sku": "Ω", "name": "x"})));
    f.index_docs("skus", &docs).await;
    let (code, report, stderr) = f.check_json(&[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(report["summary"]["matched"], 8, "{report}");
    let drift: Vec<(Value, Value)> = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["key"].clone(), d["kind"].clone()))
        .collect();
    assert_eq!(
        drift,
        vec![(json!("a b"), json!("missing")), (json!("Ω"), json!("orphaned"))]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grace_turns_recent_drift_into_pending() {
    let f = Fixture::orders("orders", "long").await;
    seed_orders(&f).await;
    f.db.execute("UPDATE orders SET updated_at = now() WHERE id = 3").await;
    f.index_docs(
        "orders",
        &[
            order_doc(
                1,
                "Ada",
                "100",
                "2024-03-01T10:00:00Z",
                json!([{"sku":"A","name":"Pen","price":50},{"sku":"B","name":"Ink","price":50}]),
            ),
            order_doc(
                2,
                "Zoë",
                "12.5",
                "2024-03-02T11:30:00Z",
                json!([{"sku":"C","name":"Pad","price":12.5}]),
            ),
            order_doc(4, "Mia", "1", "2024-03-04T00:00:00Z", json!([])),
        ],
    )
    .await;
    let (code, report, _) = f.check_json(&[]).await;
    assert_eq!(code, 1, "without --grace the missing document fails the run");
    let (code, report_grace, _) = f.check_json(&["--grace", "1h"]).await;
    assert_eq!(code, 0, "{report_grace}");
    assert_eq!(report_grace["summary"]["pending"], 1);
    assert_eq!(report_grace["summary"]["missing"], 0);
    assert_eq!(report_grace["drift"][0]["kind"], "pending");
    assert_eq!(report_grace["drift"][0]["cause"], "missing");
    assert_eq!(report["summary"]["missing"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_runs_read_only() {
    let f =
        Fixture::new("CREATE SEQUENCE probe; CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t VALUES (1);").await;
    f.create_index("t", json!({"id": {"type": "long"}})).await;
    // A projection with a side effect: a read-only transaction refuses it.
    f.config("t", "SELECT id, nextval('probe') AS n FROM t", "id", "");
    let (code, _, stderr) = f.check_async(&["--quiet"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("read-only transaction"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gives_a_clear_error_and_exit_2() {
    let f = Fixture::orders("orders", "long").await;

    f.config("orders", "SELECT id AS \"orderId\" FROM nope", "orderId", "");
    let (code, _, stderr) = f.check_async(&["--quiet"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("relation \"nope\" does not exist"), "{stderr}");

    f.config("orders", ORDERS_QUERY, "order_id", "");
    let (code, _, stderr) = f.check_async(&["--quiet"]).await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("order_id") && stderr.contains("orderId"),
        "names the key and the columns: {stderr}"
    );

    f.create_index("texty", json!({"orderId": {"type": "text"}})).await;
    f.config("texty", ORDERS_QUERY, "orderId", "");
    let (code, _, stderr) = f.check_async(&["--quiet"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("mapped as text"), "{stderr}");

    f.create_index("kw", json!({"orderId": {"type": "keyword"}})).await;
    f.config("kw", ORDERS_QUERY, "orderId", "");
    let (code, _, stderr) = f.check_async(&["--quiet"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("sort keys differently"), "{stderr}");
    // The read model's own type, not recon's key kind ("text" is a different Elasticsearch type).
    assert!(stderr.contains("is mapped as keyword"), "{stderr}");
    assert!(
        stderr.contains("is an integer key") && !stderr.contains("an text"),
        "{stderr}"
    );

    f.config("absent", ORDERS_QUERY, "orderId", "");
    let (code, _, stderr) = f.check_async(&["--quiet"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("index or alias [absent] not found"), "{stderr}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    f.config("orders", ORDERS_QUERY, "orderId", "");
    let (code, _, stderr) = f
        .check_async(&["--quiet", "--es-url", &format!("http://{closed}")])
        .await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("cannot reach Elasticsearch at http://{closed}")),
        "{stderr}"
    );

    let (code, _, stderr) = f
        .check_async(&["--quiet", "--pg-url", &format!("postgres://app:hunter2@{closed}/shop")])
        .await;
    assert_eq!(code, 2);
    assert!(!stderr.contains("hunter2"), "the password never shows: {stderr}");
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
}

/// The drifted fixture read in pages of two documents, with `es_extra` in `[elasticsearch]`.
async fn drifted_in_small_pages(es_extra: &str) -> Fixture {
    let f = drifted().await;
    let text = format!(
        "[postgres]\nurl = \"{}\"\nquery = '''{ORDERS_QUERY}'''\nkey = \"orderId\"\n\n\
         [elasticsearch]\nurl = \"{}\"\nindex = \"orders\"\npage_size = 2\n{es_extra}\n\n\
         [compare]\nignore = [\"updatedAt\", \"indexedAt\"]\n\
         [compare.fields]\nproducts = {{ as = \"set\", key = \"sku\" }}\norderDate = {{ as = \"instant\" }}\n",
        f.db.url, f.es_url
    );
    std::fs::write(f.dir.path().join("recon.toml"), text).unwrap();
    f
}

fn set_faults(f: &Fixture, spec: &str) {
    let emulator = f.emulator.as_ref().expect("fault tests need the emulator");
    emulator.set_faults(spec.parse().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_and_unavailable_pages_are_retried() {
    if std::env::var_os("RECON_TEST_ES_URL").is_some() {
        return; // faults are the emulator's
    }
    let f = drifted_in_small_pages("").await;
    let (code, clean, _) = f.check_json(&[]).await;
    assert_eq!(code, 1);
    set_faults(&f, "reject_every=2,only=search");
    let (code, report, stderr) = f.check_json(&[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        report["drift"], clean["drift"],
        "a 429 on every other page changes nothing"
    );
    assert_eq!(report["summary"], clean["summary"]);
    set_faults(&f, "unavailable_every=3,only=search|count|pit");
    let (code, report, stderr) = f.check_json(&[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(report["drift"], clean["drift"], "503s are retried too");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_model_that_keeps_failing_stops_the_run() {
    if std::env::var_os("RECON_TEST_ES_URL").is_some() {
        return;
    }
    let f = drifted_in_small_pages("max_retries = 2").await;

    set_faults(&f, "reset_after=64,only=search");
    let (code, stdout, stderr) = f.check_async(&["--quiet", "--format", "json"]).await;
    assert_eq!(code, 2, "{stdout}");
    assert!(
        stderr.contains("still failing after 3 attempts"),
        "connection resets are retried, then reported: {stderr}"
    );
    assert!(
        stderr.contains("the connection broke off before the whole answer came"),
        "with what broke: {stderr}"
    );

    set_faults(&f, "reject=1.0,only=search");
    let (code, _, stderr) = f.check_async(&["--quiet"]).await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("HTTP 429") && stderr.contains("es_rejected_execution_exception"),
        "{stderr}"
    );

    set_faults(&f, "shard_failures=1,only=search");
    let (code, stdout, stderr) = f.check_async(&["--quiet", "--format", "json"]).await;
    assert_eq!(code, 2);
    assert_eq!(stdout, "", "no report from an incomplete scan");
    assert!(
        stderr.contains("shards failed") && stderr.contains("incomplete"),
        "{stderr}"
    );

    set_faults(&f, "pit_expire_after=1");
    let (code, _, stderr) = f.check_async(&["--quiet"]).await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("point in time expired") && stderr.contains("keep_alive"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_output_fails_before_scanning() {
    let f = drifted().await;
    let (code, _, stderr) = f
        .check_async(&["--quiet", "--output", "/nonexistent-dir/report.json"])
        .await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot write the report to /nonexistent-dir/report.json"),
        "{stderr}"
    );
}

/// stderr closed before the run (`recon check 2>&1 | head` once head is gone): the progress lines
/// cannot be written, and the run still gives its verdict instead of crashing on them.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stderr_does_not_crash_a_run() {
    use std::os::fd::FromRawFd;

    let f = drifted().await;
    let mut fds = [0; 2];
    // SAFETY: pipe() fills both descriptors; the read end is closed at once and the write end is
    // owned by the OwnedFd handed to the child.
    let stderr = unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        std::os::fd::OwnedFd::from_raw_fd(fds[1])
    };
    let dir = f.dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        crate::support::cli_command()
            .current_dir(dir)
            .args(["check", "--format", "json", "--verbose"])
            .stderr(std::process::Stdio::from(stderr))
            .output()
            .expect("recon runs")
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "exit code (101 is a panic)");
    let report: Value = serde_json::from_slice(&out.stdout).expect("a whole report on stdout");
    assert_eq!(report["verdict"], "drift", "{report}");
}

/// Colour only on a terminal, and not on `TERM=dumb` (nor with NO_COLOR).
#[tokio::test(flavor = "multi_thread")]
async fn a_dumb_terminal_gets_no_colour() {
    let f = drifted().await;
    let on_terminal = |vars: &[(&'static str, &'static str)]| {
        let mut c = crate::support::cli_command();
        c.current_dir(f.dir.path())
            .args(["check", "--format", "table", "--quiet"])
            .env_remove("NO_COLOR");
        for (k, v) in vars {
            c.env(k, v);
        }
        tokio::task::spawn_blocking(move || crate::support::run_on_a_terminal(c))
    };
    let xterm = on_terminal(&[("TERM", "xterm-256color")]).await.unwrap();
    assert_eq!(xterm.code, 1, "{}", xterm.stderr);
    assert!(
        xterm.stdout.contains("\u{1b}["),
        "a terminal gets colour: {}",
        xterm.stdout
    );
    for vars in [
        &[("TERM", "dumb")][..],
        &[("TERM", "xterm-256color"), ("NO_COLOR", "1")],
    ] {
        let plain = on_terminal(vars).await.unwrap();
        assert_eq!(plain.code, 1, "{vars:?}: {}", plain.stderr);
        assert!(plain.stdout.contains("orphaned"), "{vars:?}: {}", plain.stdout);
        assert!(
            !plain.stdout.contains("\u{1b}["),
            "{vars:?} gets no colour: {}",
            plain.stdout
        );
    }
}

/// The scan's connection ended by an administrator after rows have streamed: the message says the
/// connection was lost mid-scan, not that PostgreSQL cannot be reached.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_lost_mid_scan_says_so() {
    let f = Fixture::new(
        "CREATE TABLE t (id bigint PRIMARY KEY, pad text NOT NULL);
         INSERT INTO t SELECT g, repeat('x', 500) FROM generate_series(1, 5000) g;
         ANALYZE t;
         -- Row 3000 waits for an advisory lock the test holds: the scan stops there, rows before it sent.
         CREATE FUNCTION gate(id bigint) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN
             IF id = 3000 THEN PERFORM pg_advisory_lock_shared(4242); END IF;
             RETURN true;
         END $$;",
    )
    .await;
    // In key order straight from the primary key's index (no sort, which would compute every row before
    // the first is sent), so rows stream before row 3000 is computed.
    f.db.execute(&format!("ALTER DATABASE \"{}\" SET enable_sort = off", f.db.name))
        .await;
    f.create_index("t", json!({"id": {"type": "long"}})).await;
    f.config("t", "SELECT id, pad, gate(id) AS passed FROM t ORDER BY id", "id", "");
    let mut holder = f.db.connect().await;
    sqlx::query("SELECT pg_advisory_lock(4242)")
        .execute(&mut holder)
        .await
        .unwrap();

    let check = f.check_async(&["--quiet", "--format", "json"]);
    let terminate = async {
        let mut admin = f.db.connect().await;
        let waiting = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                       AND application_name = 'recon' AND wait_event_type = 'Lock' AND wait_event = 'advisory'";
        // Polls an observable state (the backend waiting on the lock), as support::eventually does.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let scanner: i32 = loop {
            if let Some(pid) = sqlx::query_scalar(waiting).fetch_optional(&mut admin).await.unwrap() {
                break pid;
            }
            assert!(std::time::Instant::now() < deadline, "the scan never reached row 3000");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(scanner)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(ended);
    };
    let ((code, _, stderr), ()) = tokio::join!(check, terminate);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("lost the connection to PostgreSQL")
            && stderr.contains("in the middle of the scan, after 2999 rows"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot reach"), "{stderr}");
}

/// A `[compare]` rule or ignore entry naming no field of the documents is refused (exit 2) with the
/// fields there are, by every command that compares: a typo must not silently change the verdict.
#[tokio::test(flavor = "multi_thread")]
async fn a_compare_path_naming_no_field_is_refused() {
    let f = drifted().await;
    let path = f.dir.path().join("recon.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    // Nested paths under a produced field, and an ignored field only the read model has, are fine.
    let nested = good.replace(
        "[compare.fields]\n",
        "[compare.fields]\n\"products.price\" = { as = \"number\" }\n",
    );
    std::fs::write(&path, &nested).unwrap();
    let (code, _, stderr) = f.check_async(&["--quiet", "--format", "json"]).await;
    assert_eq!(code, 1, "{stderr}");

    let typo = good.replace(
        "[compare.fields]\n",
        "[compare.fields]\ntotalprice = { as = \"number\", tolerance = 1 }\n",
    );
    std::fs::write(&path, &typo).unwrap();
    let (code, stdout, stderr) = f.check_async(&["--quiet", "--format", "json"]).await;
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert!(
        stderr.contains("compare.fields \"totalprice\"")
            && stderr.contains("orderId, customerName, products, totalPrice, orderDate, updatedAt"),
        "names the typo and the known fields: {stderr}"
    );
    for command in [&["repair", "--yes"][..], &["reindex", "--yes", "--adopt"]] {
        let out = crate::support::cli_command()
            .current_dir(f.dir.path())
            .args(command)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("compare.fields \"totalprice\""),
            "{command:?}: {stderr}"
        );
    }

    let ignored = good.replace(
        "ignore = [\"updatedAt\", \"indexedAt\"]",
        "ignore = [\"updatedat\", \"indexedAt\"]",
    );
    assert_ne!(ignored, good);
    std::fs::write(&path, &ignored).unwrap();
    let (code, _, stderr) = f.check_async(&["--quiet", "--format", "json"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("compare.ignore \"updatedat\"") && stderr.contains("orders maps: indexedAt"),
        "{stderr}"
    );
}

/// `recon check --format ndjson | head -0`: the report cannot be delivered, so the run must not pass a
/// gate under `set -o pipefail` (it used to exit 0), and it says nothing on stderr about the pipe.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_exits_141_not_0() {
    let f = drifted().await;
    let dir = f.dir.path().to_path_buf();
    let (code, stderr) = tokio::task::spawn_blocking(move || {
        let mut child = crate::support::cli_command()
            .current_dir(dir)
            .args(["check", "--format", "ndjson", "--quiet"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("recon runs");
        // The reader is gone before recon writes its first line.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await
    .unwrap();
    assert_eq!(code, Some(141), "{stderr}");
    assert_eq!(stderr, "");
}

/// A document whose key field is absent, `null` or `[]` used to be invisible (every scan filtered on
/// `exists`), so a read model with such documents passed as in sync. Each is `unkeyed` drift now, named
/// by its `_id`, counted in `target_docs`, and failing the run. A key of the wrong JSON type or an array
/// is keyed by what the index made of it (Elasticsearch coerces `"4"` in a long field to 4 and sorts an
/// array by its smallest value), and the document mismatches at the key field.
#[tokio::test(flavor = "multi_thread")]
async fn documents_without_a_usable_key_are_unkeyed_drift() {
    let f = Fixture::orders("orders", "long").await;
    seed_orders(&f).await;
    let in_sync = |id: i64| {
        let rows = [
            (
                "Ada",
                "100",
                "2024-03-01T10:00:00Z",
                json!([{"sku":"A","name":"Pen","price":50},{"sku":"B","name":"Ink","price":50}]),
            ),
            (
                "Zoë",
                "12.5",
                "2024-03-02T11:30:00Z",
                json!([{"sku":"C","name":"Pad","price":12.5}]),
            ),
            ("José", "7", "2024-03-03T00:00:00Z", json!([])),
            ("Mia", "1", "2024-03-04T00:00:00Z", json!([])),
        ];
        let (name, total, date, products) = rows[id as usize - 1].clone();
        order_doc(id, name, total, date, products)
    };
    f.index_docs("orders", &[in_sync(1), in_sync(2), in_sync(3), in_sync(4)])
        .await;
    let (code, report, stderr) = f.check_json(&[]).await;
    assert_eq!(
        (code, report["summary"]["unkeyed"].clone()),
        (0, json!(0)),
        "{report}\n{stderr}"
    );

    let mut no_key = in_sync(1).1;
    no_key.as_object_mut().unwrap().remove("orderId");
    let mut null_key = in_sync(1).1;
    null_key["orderId"] = Value::Null;
    let mut empty_key = in_sync(1).1;
    empty_key["orderId"] = json!([]);
    let mut text_key = in_sync(4);
    text_key.1["orderId"] = json!("4");
    let mut array_key = in_sync(3);
    array_key.1["orderId"] = json!([3, 99]);
    f.index_docs(
        "orders",
        &[
            ("no-key".into(), no_key),
            ("null-key".into(), null_key),
            ("empty-key".into(), empty_key),
            text_key,
            array_key,
        ],
    )
    .await;
    let (code, report, stderr) = f.check_json(&[]).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    let summary = &report["summary"];
    assert_eq!(summary["unkeyed"], 3, "{report}");
    assert_eq!(
        summary["target_docs"], 7,
        "every document in the index is counted: {report}"
    );
    assert_eq!(summary["mismatched"], 2, "{report}");
    assert_eq!(report["failing"], 5, "{report}");
    let drift = report["drift"].as_array().unwrap();
    let mut unkeyed: Vec<&str> = drift
        .iter()
        .filter(|d| d["kind"] == "unkeyed")
        .map(|d| {
            assert!(d["key"].is_null(), "{d}");
            d["ids"][0].as_str().unwrap()
        })
        .collect();
    unkeyed.sort();
    assert_eq!(unkeyed, ["empty-key", "no-key", "null-key"]);
    let mismatched: Vec<(Value, Value)> = drift
        .iter()
        .filter(|d| d["kind"] == "mismatched")
        .map(|d| (d["key"].clone(), d["diffs"][0]["path"].clone()))
        .collect();
    assert_eq!(
        mismatched,
        [(json!(3), json!("orderId")), (json!(4), json!("orderId"))],
        "{report}"
    );

    // --allow counts unkeyed documents like any failing key; the human formats name them by _id.
    let (code, _, stderr) = f.check_json(&["--allow", "5"]).await;
    assert_eq!(code, 0, "{stderr}");
    let (code, table, stderr) = f.check_async(&["--format", "table", "--quiet"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        table.contains("(no key) _id no-key") && table.contains("unkeyed"),
        "{table}"
    );
}

/// The documents without a key are read on their own, in pages, on both flavors: `_shard_doc` order
/// under a PIT on Elasticsearch, `_id` order on OpenSearch (no `_shard_doc` before 3.3). Every one
/// comes exactly once across several shards and pages, and no keyed document comes at all.
#[tokio::test(flavor = "multi_thread")]
async fn documents_without_a_key_are_listed_once_on_both_flavors() {
    use elasticsearch::http::Method;
    use futures::TryStreamExt;
    use recon::source::elasticsearch::{ConnectSettings, ElasticsearchSettings, ElasticsearchSource, RetryPolicy};
    use recon_es_emulator::{EmulatorConfig, Flavor};
    for flavor in [Flavor::Elasticsearch, Flavor::OpenSearch] {
        let (emu, es) = crate::emulator_api::start_with(EmulatorConfig {
            flavor,
            ..Default::default()
        })
        .await;
        crate::emulator_api::call(
            &es,
            Method::Put,
            "/orders",
            &[],
            Some(json!({"settings": {"number_of_shards": 3},
                        "mappings": {"properties": {"orderId": {"type": "long"}}}})),
        )
        .await;
        let mut expected = Vec::new();
        for i in 0..7 {
            let id = format!("keyless-{i}");
            let doc = match i % 3 {
                0 => json!({"name": "no key"}),
                1 => json!({"orderId": null}),
                _ => json!({"orderId": []}),
            };
            crate::emulator_api::call(&es, Method::Put, &format!("/orders/_doc/{id}"), &[], Some(doc)).await;
            expected.push(id);
        }
        for key in 1..=5 {
            let path = format!("/orders/_doc/{key}");
            crate::emulator_api::call(&es, Method::Put, &path, &[], Some(json!({"orderId": key}))).await;
        }
        crate::emulator_api::call(&es, Method::Post, "/orders/_refresh", &[], None).await;
        let source = ElasticsearchSource::connect(ElasticsearchSettings {
            connect: ConnectSettings {
                url: emu.url(),
                username: None,
                password: None,
                api_key: None,
                ca_cert: None,
                insecure: false,
                timeout: std::time::Duration::from_secs(30),
                retry: RetryPolicy::default(),
            },
            index: "orders".into(),
            key_field: "orderId".into(),
            page_size: 2,
            keep_alive: "1m".into(),
            source_includes: None,
            source_excludes: Vec::new(),
            prefetch_pages: 1,
        })
        .await
        .unwrap();
        let docs: Vec<_> = source.open_unkeyed_scan().await.unwrap().try_collect().await.unwrap();
        let mut ids: Vec<String> = docs.iter().map(|d| d.meta.id.clone().unwrap()).collect();
        ids.sort();
        assert_eq!(ids, expected, "{flavor:?}");
        assert!(
            docs.iter().all(|d| d.meta.version.is_some()),
            "versions for a conditional delete"
        );
    }
}

/// `-o FORMAT:FILE`, repeated: four reports of one run, from one snapshot, agreeing with each other and
/// with the exit code; nothing on stdout. A plain `-o FILE` still takes `--format`.
#[tokio::test(flavor = "multi_thread")]
async fn several_reports_from_one_run_agree() {
    let f = drifted().await;
    let path = |name: &str| f.dir.path().join(name).to_str().unwrap().to_string();
    let (json, junit, markdown, prom) = (path("r.json"), path("r.xml"), path("r.md"), path("r.prom"));
    let outputs = [
        format!("json:{json}"),
        format!("junit:{junit}"),
        format!("markdown:{markdown}"),
        format!("prometheus:{prom}"),
    ];
    let mut args = vec!["--quiet"];
    for o in &outputs {
        args.extend(["-o", o.as_str()]);
    }
    let (code, stdout, stderr) = f.check_async(&args).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "", "every report went to its file");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["failing"], 5);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"<property name="failing" value="5"/>"#), "{xml}");
    assert_eq!(xml.matches("<failure").count(), 5, "{xml}");
    let prom = std::fs::read_to_string(&prom).unwrap();
    assert!(
        prom.contains("\nrecon_check_failing_keys{check=\"orders\"} 5\n"),
        "{prom}"
    );
    assert!(prom.contains("\nrecon_check_in_sync{check=\"orders\"} 0\n"), "{prom}");
    let md = std::fs::read_to_string(&markdown).unwrap();
    assert!(md.contains("missing") && md.contains("orphaned"), "{md}");
    // The four are one run: the same start time in the JSON and the JUnit file.
    let started = report["run"]["started_at"].as_str().unwrap();
    assert!(
        xml.contains(started) || xml.contains(&started[..19]),
        "{started}\n{xml}"
    );

    // Today's form: --format with a plain file.
    let plain = path("plain.json");
    let (code, stdout, _) = f.check_async(&["--quiet", "--format", "json", "-o", &plain]).await;
    assert_eq!((code, stdout.as_str()), (1, ""));
    let again: Value = serde_json::from_str(&std::fs::read_to_string(&plain).unwrap()).unwrap();
    assert_eq!(again["failing"], 5);
    // Two reports into one file would overwrite each other: refused before the run.
    let (code, _, stderr) = f
        .check_async(&["--quiet", "-o", &format!("json:{json}"), "-o", &format!("junit:{json}")])
        .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("given twice"), "{stderr}");
}
