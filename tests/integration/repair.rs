//! `recon repair` and `recon undo` end to end: a real PostgreSQL, the emulator over HTTP, the binary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use elasticsearch::params::Refresh;
use elasticsearch::{GetParts, IndexParts};
use serde_json::{json, Value};

use recon_es_emulator::FaultSpec;

use crate::support::cli_command as recon;
use crate::support::fixture::{drifted, order_doc, Fixture};
use crate::support::{eventually, Run};

/// `n` rows whose documents all mismatch (a stale customer name), and `missing` more rows with no
/// document at all.
async fn many(n: i64, missing: i64) -> Fixture {
    let f = Fixture::orders("orders", "long").await;
    f.db.execute(&format!(
        "INSERT INTO orders (id, customer, total, ordered_at) SELECT g, 'new-' || g, g, '2024-01-01T00:00:00Z' \
         FROM generate_series(1, {}) g",
        n + missing
    ))
    .await;
    let docs: Vec<(String, Value)> = (1..=n)
        .map(|i| {
            order_doc(
                i,
                &format!("old-{i}"),
                &i.to_string(),
                "2024-01-01T00:00:00Z",
                json!([]),
            )
        })
        .collect();
    if !docs.is_empty() {
        f.index_docs("orders", &docs).await;
    }
    f
}

impl Run {
    fn json(&self) -> Value {
        let last = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
}

fn command(f: &Fixture, sub: &str, args: &[&str]) -> std::process::Command {
    let mut c = recon();
    c.current_dir(f.dir.path())
        .arg(sub)
        .args(args)
        .stdin(std::process::Stdio::null());
    c
}

async fn run(f: &Fixture, sub: &str, args: &[&str]) -> Run {
    let mut c = command(f, sub, args);
    let out = tokio::task::spawn_blocking(move || c.output().expect("recon runs"))
        .await
        .unwrap();
    Run::from(out)
}

/// `recon repair ARGS`, its notes on stderr (the dry run's command, a resume's account): not `--quiet`,
/// which leaves warnings and errors only.
async fn repair(f: &Fixture, args: &[&str]) -> Run {
    run(f, "repair", args).await
}

/// The document `id` as `(_source, _version)`, or None.
async fn get(f: &Fixture, id: &str) -> Option<(Value, i64)> {
    let response = f.es.get(GetParts::IndexId("orders", id)).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    (body["found"] == json!(true)).then(|| (body["_source"].clone(), body["_version"].as_i64().unwrap()))
}

async fn put(f: &Fixture, id: &str, doc: Value) {
    let response =
        f.es.index(IndexParts::IndexId("orders", id))
            .refresh(Refresh::True)
            .body(doc)
            .send()
            .await
            .unwrap();
    assert!(response.status_code().is_success());
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn count(lines: &[Value], kind: &str) -> usize {
    lines.iter().filter(|l| l["type"] == kind).count()
}

fn path_in(f: &Fixture, name: &str) -> PathBuf {
    f.dir.path().join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_plans_every_action_and_writes_nothing() {
    let f = drifted().await;
    let plan = path_in(&f, "plan.ndjson");
    let r = repair(&f, &["--plan", plan.to_str().unwrap()]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("plan: 5 actions on 5 keys"), "{}", r.stdout);
    for line in [
        "mismatched  index   2",
        "missing     create  1",
        "orphaned    delete  1",
        "duplicate   delete  1",
    ] {
        assert!(r.stdout.contains(line), "{line:?} not in\n{}", r.stdout);
    }
    assert!(r.stderr.contains("dry run"), "{}", r.stderr);
    // The read model says what each write is conditional on, in its own words.
    assert!(
        r.stdout
            .contains("  index orders/1 if_seq_no=0 if_primary_term=1  (mismatched key 1)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("  create orders/3  (missing key 3)"), "{}", r.stdout);
    let lines = audit_lines(&plan);
    assert_eq!(lines[0]["data"]["schema"], "recon.repair-plan/v2");
    assert_eq!(count(&lines, "action"), 5);
    // Nothing was written and no audit log was made.
    assert_eq!(get(&f, "2").await.unwrap().1, 1);
    assert!(get(&f, "3").await.is_none());
    assert!(get(&f, "5").await.is_some());
    let leftovers: Vec<String> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("recon-repair-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_repairs_every_drift_kind_and_logs_before_images() {
    let f = drifted().await;
    let audit = path_in(&f, "audit.ndjson");
    let r = repair(
        &f,
        &[
            "--apply",
            "--yes",
            "--format",
            "json",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let summary = r.json();
    assert_eq!(summary["outcomes"]["applied"], 5, "{summary}");
    assert_eq!(summary["remaining"], json!({}));
    let (code, report, _) = f.check_json(&[]).await;
    assert_eq!(code, 0, "the check after a repair is clean: {report}");

    // Replace keeps the ignored field of the current document; missing is created from the projection.
    let (one, version) = get(&f, "1").await.unwrap();
    assert_eq!(version, 2);
    assert_eq!(one["indexedAt"], "2026-01-01T00:00:00Z");
    assert_eq!(one["products"][0]["price"].to_string(), "50.00");
    let (three, _) = get(&f, "3").await.unwrap();
    assert_eq!(three["customerName"], "José");
    assert!(get(&f, "4-retry").await.is_none() && get(&f, "4").await.is_some());
    assert!(get(&f, "5").await.is_none());

    let lines = audit_lines(&audit);
    assert_eq!(lines[0]["type"], "header");
    assert_eq!(lines[0]["schema"], "recon.audit/v2");
    assert_eq!(
        (count(&lines, "plan"), count(&lines, "intent"), count(&lines, "outcome")),
        (5, 5, 5)
    );
    let orphan = lines
        .iter()
        .find(|l| l["type"] == "intent" && l["action"] == "delete" && l["id"] == "5")
        .unwrap();
    assert_eq!(orphan["before"]["source"]["customerName"], "Ghost");
    assert_eq!(orphan["if_version"], orphan["before"]["version"]);
    assert!(orphan["if_version"].is_string(), "{orphan}");
    // Every intent is on disk before its outcome.
    let first_outcome = lines.iter().position(|l| l["type"] == "outcome").unwrap();
    let last_intent = lines.iter().rposition(|l| l["type"] == "intent").unwrap();
    assert!(last_intent < first_outcome);

    // A second run finds nothing to do.
    let r = repair(&f, &["--apply", "--yes"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("nothing to repair"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_mode_updates_only_the_differing_fields() {
    let f = drifted().await;
    let mut doc = order_doc(
        2,
        "Zoe",
        "12.5",
        "2024-03-02T11:30:00Z",
        json!([{"sku":"C","name":"Pad","price":12.5}]),
    )
    .1;
    doc["indexedAt"] = json!("2026-05-05T00:00:00Z");
    put(&f, "2", doc).await;
    let r = repair(&f, &["--keys", "2", "--mode", "patch", "--apply", "--yes"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (two, _) = get(&f, "2").await.unwrap();
    assert_eq!(two["customerName"], "Zoë");
    assert_eq!(
        two["indexedAt"], "2026-05-05T00:00:00Z",
        "an ignored field is not touched"
    );
    assert_eq!(two["totalPrice"].to_string(), "12.5", "an equal field is not rewritten");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_reports_choose_what_is_repaired() {
    let f = drifted().await;
    // One drifted key: counts agree with their nouns (it said "1 actions on 1 keys").
    let r = repair(&f, &["--keys", "3"]).await;
    assert!(r.stdout.contains("plan: 1 action on 1 key\n"), "{}", r.stdout);
    let r = repair(&f, &["--keys", "3,99", "--apply", "--yes", "--format", "json"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["actions"], 1);
    assert!(get(&f, "3").await.is_some());
    assert_eq!(get(&f, "1").await.unwrap().1, 1, "key 1 was not asked for");

    let keys = path_in(&f, "keys.txt");
    std::fs::write(&keys, "5\n\n").unwrap();
    let r = repair(&f, &["--keys-file", keys.to_str().unwrap(), "--apply", "--yes"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(get(&f, "5").await.is_none());

    let (_, report, _) = f.check_json(&[]).await;
    let report_path = path_in(&f, "report.json");
    std::fs::write(&report_path, report.to_string()).unwrap();
    let r = repair(
        &f,
        &[
            "--from-report",
            report_path.to_str().unwrap(),
            "--apply",
            "--yes",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["actions"], 3, "1, 2 mismatched and 4's duplicate");
    assert_eq!(f.check_json(&[]).await.0, 0);

    let r = repair(&f, &["--keys", "x"]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not an integer"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_and_check_read_keys_with_one_parser() {
    // repair had a parser of its own ("…, and the key column is"); both now read `--keys` alike.
    let f = drifted().await;
    let r = repair(&f, &["--keys", "7, x"]).await;
    let (code, _, stderr) = f.check_async(&["--keys", "7, x"]).await;
    assert_eq!((r.code, code), (2, 2), "{}\n{stderr}", r.stderr);
    // The line as a terminal shows it: from `recon: `, after the timestamp a pipe gets.
    let said = |stderr: &str| {
        stderr
            .lines()
            .find(|l| l.contains("not an integer"))
            .map(|l| l[l.find("recon: ").unwrap_or(0)..].to_string())
    };
    assert_eq!(
        said(&r.stderr).as_deref(),
        Some("recon: error: key \"x\" is not an integer, but the key column is"),
        "{}",
        r.stderr
    );
    assert_eq!(said(&r.stderr), said(&stderr), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_between_plan_and_apply_survives_as_a_conflict() {
    let f = drifted().await;
    let plan = path_in(&f, "plan.ndjson");
    assert_eq!(repair(&f, &["--plan", plan.to_str().unwrap()]).await.code, 1);
    // The projector writes key 2 meanwhile (still stale, so drift remains), and row 3 is deleted.
    let mut theirs = order_doc(2, "Zoe (projector)", "12.5", "2024-03-02T11:30:00Z", json!([])).1;
    theirs["indexedAt"] = json!("2026-02-02T00:00:00Z");
    put(&f, "2", theirs.clone()).await;
    f.db.execute("DELETE FROM orders WHERE id = 3").await;
    // And row 5 comes back: the orphan is no longer one.
    f.db.execute("INSERT INTO orders (id, customer, total, ordered_at) VALUES (5, 'Ghost', 1, '2024-03-05T00:00:00Z')")
        .await;

    let r = repair(
        &f,
        &[
            "--from-plan",
            plan.to_str().unwrap(),
            "--apply",
            "--yes",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let summary = r.json();
    assert_eq!(summary["outcomes"]["conflict"], 1, "{summary}");
    assert_eq!(summary["conflicts"][0]["key"], 2);
    assert_eq!(summary["outcomes"]["skipped"], 2, "row 3 gone, row 5 back: {summary}");
    assert_eq!(summary["outcomes"]["applied"], 2, "1 and 4-retry: {summary}");
    assert_eq!(get(&f, "2").await.unwrap().0, theirs, "the concurrent write survives");
    assert!(get(&f, "3").await.is_none(), "no document for a deleted row");
    assert!(get(&f, "5").await.is_some(), "no delete once the row is back");
    assert_eq!(
        summary["remaining"],
        json!({"mismatched": 1}),
        "the writer's stale document"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn caps_refuse_and_point_at_reindex() {
    let f = drifted().await;
    let r = repair(&f, &["--apply", "--yes", "--max-deletes", "1"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("more than --max-deletes 1") && r.stderr.contains("recon reindex"),
        "{}",
        r.stderr
    );
    let r = repair(&f, &["--apply", "--yes", "--max-changes", "4"]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("more than --max-changes 4"), "{}", r.stderr);
    assert!(
        get(&f, "3").await.is_none() && get(&f, "5").await.is_some(),
        "nothing written"
    );
    // A dry run over the caps says so, and still shows the plan.
    let r = repair(&f, &["--max-changes", "4"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("warning: the plan makes 5 changes"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_needs_yes_without_a_terminal_and_a_writable_audit_log() {
    let f = drifted().await;
    let r = repair(&f, &["--apply"]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("needs --yes"), "{}", r.stderr);
    let r = repair(&f, &["--apply", "--yes", "--audit", "/nonexistent-dir/audit.ndjson"]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot write the audit log"), "{}", r.stderr);
    let existing = path_in(&f, "taken.ndjson");
    std::fs::write(&existing, "precious\n").unwrap();
    let r = repair(&f, &["--apply", "--yes", "--audit", existing.to_str().unwrap()]).await;
    assert_eq!(r.code, 2, "an existing log is never overwritten");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "precious\n");
    assert!(
        get(&f, "3").await.is_none() && get(&f, "5").await.is_some(),
        "nothing written"
    );
    assert_eq!(get(&f, "1").await.unwrap().1, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_restores_the_read_model_and_skips_what_changed_since() {
    let f = drifted().await;
    let ids = ["1", "2", "3", "4", "4-retry", "5"];
    let mut before = Vec::new();
    for id in ids {
        before.push(get(&f, id).await.map(|d| d.0));
    }
    let audit = path_in(&f, "audit.ndjson");
    let r = repair(&f, &["--apply", "--yes", "--audit", audit.to_str().unwrap()]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    let r = run(&f, "undo", &[audit.to_str().unwrap()]).await;
    assert_eq!(r.code, 1, "a dry run: {}", r.stderr);
    assert!(
        r.stdout
            .contains("delete 1 created, restore 2 overwritten, re-create 2 deleted"),
        "{}",
        r.stdout
    );
    let undo_audit = path_in(&f, "undo.ndjson");
    let r = run(
        &f,
        "undo",
        &[
            audit.to_str().unwrap(),
            "--apply",
            "--yes",
            "--audit",
            undo_audit.to_str().unwrap(),
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["undone"], 5);
    for (id, was) in ids.iter().zip(&before) {
        assert_eq!(&get(&f, id).await.map(|d| d.0), was, "document {id}");
    }
    assert_eq!(count(&audit_lines(&undo_audit), "intent"), 5);

    // Repair again, then someone writes key 1: its undo is skipped, the rest is undone.
    let audit2 = path_in(&f, "audit2.ndjson");
    assert_eq!(
        repair(&f, &["--apply", "--yes", "--audit", audit2.to_str().unwrap()])
            .await
            .code,
        0
    );
    let theirs = order_doc(1, "Ada (projector)", "100", "2024-03-01T10:00:00Z", json!([])).1;
    put(&f, "1", theirs.clone()).await;
    let r = run(
        &f,
        "undo",
        &[audit2.to_str().unwrap(), "--apply", "--yes", "--format", "json"],
    )
    .await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let summary = r.json();
    assert_eq!(
        (summary["undone"].clone(), summary["conflict"].clone()),
        (json!(4), json!(1))
    );
    assert_eq!(summary["conflicts"][0]["key"], 1);
    assert_eq!(get(&f, "1").await.unwrap().0, theirs);
    assert!(get(&f, "3").await.is_none() && get(&f, "5").await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn item_429_storms_are_retried_until_every_document_is_written() {
    let f = many(0, 300).await;
    let emulator = f.emulator.as_ref().expect("fault injection needs the emulator");
    emulator.set_faults("item_reject=0.3,reject_every=4,only=bulk".parse::<FaultSpec>().unwrap());
    let r = repair(&f, &["--apply", "--yes", "--batch-size", "50", "--format", "json"]).await;
    emulator.set_faults(FaultSpec::default());
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let summary = r.json();
    assert_eq!(summary["outcomes"]["applied"], 300, "{summary}");
    assert_eq!(f.check_json(&[]).await.0, 0);
    for id in ["1", "150", "300"] {
        assert_eq!(get(&f, id).await.unwrap().1, 1, "created once");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_connection_is_retried_and_its_own_conflicts_recognised() {
    let f = many(20, 20).await;
    let emulator = f.emulator.as_ref().expect("fault injection needs the emulator");
    // Every bulk answer is cut after its first 100 bytes: the writes apply, their answers are lost.
    emulator.set_faults("reset_after=100,only=bulk".parse::<FaultSpec>().unwrap());
    let audit = path_in(&f, "audit.ndjson");
    let child = command(
        &f,
        "repair",
        &[
            "--quiet",
            "--apply",
            "--yes",
            "--batch-size",
            "10",
            "--concurrency",
            "1",
            "--format",
            "json",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Faults are decided when a request arrives: once the first batch's writes show, its answer is
    // doomed, and healing the connection now lets the client's retry through.
    assert!(
        eventually(Duration::from_secs(20), || async {
            get(&f, "1").await.map(|d| d.1) == Some(2)
        })
        .await,
        "the first batch was never written"
    );
    emulator.set_faults(FaultSpec::default());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines = audit_lines(&audit);
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "outcome" && l["result"] == "verified"),
        "the retried batch conflicted with itself and was recognised"
    );
    assert_eq!(f.check_json(&[]).await.0, 0);
    for i in 1..=20 {
        assert_eq!(
            get(&f, &i.to_string()).await.unwrap().1,
            2,
            "doc {i} written exactly once"
        );
    }
    for i in 21..=40 {
        assert_eq!(
            get(&f, &i.to_string()).await.unwrap().1,
            1,
            "doc {i} created exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_whose_answer_was_lost_is_verified_and_a_newer_write_stays_a_conflict() {
    let f = many(0, 0).await;
    let orphans: Vec<(String, Value)> = [901, 902]
        .iter()
        .map(|&i| order_doc(i, "gone", "1", "2024-01-01T00:00:00Z", json!([])))
        .collect();
    f.index_docs("orders", &orphans).await;
    let emulator = f.emulator.as_ref().expect("fault injection needs the emulator");
    // The deletes apply, their answers are lost; the client sends the request again.
    emulator.set_faults("reset_after=100,only=bulk".parse::<FaultSpec>().unwrap());
    let audit = path_in(&f, "audit.ndjson");
    let child = command(
        &f,
        "repair",
        &[
            "--quiet",
            "--apply",
            "--yes",
            "--concurrency",
            "1",
            "--format",
            "json",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            get(&f, "901").await.is_none() && get(&f, "902").await.is_none()
        })
        .await,
        "the deletes were never applied"
    );
    // Someone writes 902 again before the retry gets through: that write is not ours.
    let theirs = json!({"orderId": 902, "customerName": "theirs"});
    put(&f, "902", theirs.clone()).await;
    emulator.set_faults(FaultSpec::default());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "902 still drifts: {stdout}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["outcomes"]["applied"], 1, "{summary}");
    assert_eq!(summary["outcomes"]["answer_lost_verified"], 1, "{summary}");
    assert_eq!(summary["outcomes"]["conflict"], 1, "{summary}");
    assert_eq!(summary["conflicts"][0]["key"], 902, "{summary}");
    let lines = audit_lines(&audit);
    let intent_seq = |id: &str| {
        lines
            .iter()
            .find(|l| l["type"] == "intent" && l["id"] == id)
            .map(|l| l["seq"].clone())
            .unwrap()
    };
    let outcome = |id: &str| {
        let seq = intent_seq(id);
        lines
            .iter()
            .rfind(|l| l["type"] == "outcome" && l["seq"] == seq)
            .cloned()
            .unwrap()
    };
    assert_eq!(outcome("901")["status"], "applied");
    assert_eq!(outcome("901")["note"], "applied, answer lost; verified");
    assert_eq!(outcome("902")["status"], "conflict");
    assert!(get(&f, "901").await.is_none());
    assert_eq!(get(&f, "902").await.unwrap().0, theirs, "their write survives");
}

async fn interrupted_then_resumed(signal: i32) {
    let f = many(40, 0).await;
    let emulator = f.emulator.as_ref().expect("fault injection needs the emulator");
    emulator.set_faults("latency=300ms,only=bulk".parse::<FaultSpec>().unwrap());
    let audit = path_in(&f, "audit.ndjson");
    let child = command(
        &f,
        "repair",
        &[
            "--quiet",
            "--apply",
            "--yes",
            "--batch-size",
            "5",
            "--concurrency",
            "1",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            count(&audit_lines(&audit), "intent") >= 10
        })
        .await,
        "the repair never got going"
    );
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if signal == libc::SIGKILL {
        assert_eq!(out.status.code(), None);
    } else {
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(stderr.contains("recon repair --resume"), "{stderr}");
        let lines = audit_lines(&audit);
        assert_eq!(
            count(&lines, "intent"),
            count(&lines, "outcome"),
            "in-flight requests were recorded"
        );
    }
    emulator.set_faults(FaultSpec::default());
    let lines = audit_lines(&audit);
    assert!(count(&lines, "outcome") < 40, "interrupted before the end");

    let r = repair(
        &f,
        &[
            "--resume",
            audit.to_str().unwrap(),
            "--apply",
            "--yes",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(f.check_json(&[]).await.0, 0);
    for i in 1..=40 {
        assert_eq!(
            get(&f, &i.to_string()).await.unwrap().1,
            2,
            "doc {i} written exactly once"
        );
    }
    let lines = audit_lines(&audit);
    let mut seqs: Vec<u64> = lines
        .iter()
        .filter(|l| l["type"] == "outcome" && l["status"] == "applied")
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>(), "every planned action applied");
    // A second resume has nothing left.
    let r = repair(&f, &["--resume", audit.to_str().unwrap(), "--apply", "--yes"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("0 sent without a recorded outcome, 0 not started"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_apply_then_resume_applies_each_action_once() {
    interrupted_then_resumed(libc::SIGKILL).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_requests_and_exits_130() {
    interrupted_then_resumed(libc::SIGTERM).await;
}

#[test]
fn help_texts_are_what_users_read() {
    for sub in ["repair", "undo"] {
        let out = recon().args([sub, "--help"]).env("COLUMNS", "100").output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        insta::assert_snapshot!(format!("help_{sub}"), String::from_utf8_lossy(&out.stdout));
    }
}

/// Runs `command` (a line recon printed for the user to paste, plus `extra`) in a POSIX shell in the
/// fixture's directory, with this build's recon first on the PATH.
async fn paste(f: &Fixture, command: &str, extra: &str) -> Run {
    let bin = Path::new(env!("CARGO_BIN_EXE_recon")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = std::process::Command::new("sh");
    c.env_clear()
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .current_dir(f.dir.path())
        .arg("-c")
        .arg(format!("{command} {extra}"))
        .stdin(std::process::Stdio::null());
    let out = tokio::task::spawn_blocking(move || c.output().expect("sh runs"))
        .await
        .unwrap();
    Run::from(out)
}

/// The command after `marker` on the line that has it, e.g. `recon undo …` after `undo with: `.
fn printed_command(text: &str, marker: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in\n{text}"));
    line[line.find(marker).unwrap() + marker.len()..].trim().to_string()
}

/// Cuts the last `bytes` bytes off `path`, as a disk that filled up or a kill mid-write leaves it.
fn cut(path: &Path, bytes: u64) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len - bytes).unwrap();
}

/// Every document of the drifted fixture, as `(id, _source)`.
async fn drifted_docs(f: &Fixture) -> Vec<(&'static str, Option<Value>)> {
    let mut docs = Vec::new();
    for id in ["1", "2", "3", "4", "4-retry", "5"] {
        docs.push((id, get(f, id).await.map(|d| d.0)));
    }
    docs
}

#[test]
fn apply_without_yes_or_terminal_refuses_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: a run that got as far as connecting would fail on that instead.
    std::fs::write(
        dir.path().join("recon.toml"),
        "[postgres]\nurl = \"postgres://127.0.0.1:1/none\"\nquery = 'SELECT 1 AS id'\nkey = \"id\"\n\
         [elasticsearch]\nurl = \"http://127.0.0.1:1\"\nindex = \"orders\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("audit.ndjson"), "").unwrap();
    for args in [
        &["--apply"][..],
        &["--apply", "--keys", "1"],
        &["--apply", "--resume", "audit.ndjson"],
    ] {
        let out = recon()
            .current_dir(dir.path())
            .arg("repair")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let r = Run::from(out);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("--apply without a terminal needs --yes"),
            "{args:?}: refused first, not after connecting:\n{}",
            r.stderr
        );
    }
    let out = recon()
        .current_dir(dir.path())
        .args(["undo", "audit.ndjson", "--apply"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("needs --yes"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_needs_only_the_read_model_from_the_configuration() {
    let f = drifted().await;
    let before = drifted_docs(&f).await;
    let audit = path_in(&f, "audit.ndjson");
    let r = repair(&f, &["--apply", "--yes", "--audit", audit.to_str().unwrap()]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Undo never reads the write model: no [postgres], no index (the log names where it wrote).
    let es_only = path_in(&f, "es-only.toml");
    std::fs::write(&es_only, format!("[elasticsearch]\nurl = \"{}\"\n", f.es_url)).unwrap();
    let r = run(
        &f,
        "undo",
        &[audit.to_str().unwrap(), "--config", es_only.to_str().unwrap()],
    )
    .await;
    assert_eq!(r.code, 1, "a dry run: {}", r.stderr);
    assert!(r.stdout.contains("undo plan: 5 actions"), "{}", r.stdout);
    // An empty configuration and --es-url do as well.
    let empty = path_in(&f, "empty.toml");
    std::fs::write(&empty, "").unwrap();
    let r = run(
        &f,
        "undo",
        &[
            audit.to_str().unwrap(),
            "--config",
            empty.to_str().unwrap(),
            "--es-url",
            &f.es_url,
            "--apply",
            "--yes",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["undone"], 5);
    assert_eq!(drifted_docs(&f).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn undoing_twice_finds_the_documents_already_as_before() {
    let f = drifted().await;
    let before = drifted_docs(&f).await;
    let audit = path_in(&f, "audit.ndjson");
    let r = repair(&f, &["--apply", "--yes", "--audit", audit.to_str().unwrap()]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let undo = |extra: &'static [&'static str]| {
        let audit = audit.to_str().unwrap().to_string();
        let f = &f;
        async move {
            let args: Vec<&str> = [&[audit.as_str(), "--apply", "--yes"][..], extra].concat();
            run(f, "undo", &args).await
        }
    };
    let r = undo(&["--format", "json"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["undone"], 5);
    assert_eq!(drifted_docs(&f).await, before);

    // Again: every document already is as before the repair. Nothing to do, nothing failed.
    let r = run(&f, "undo", &[audit.to_str().unwrap()]).await;
    assert_eq!(r.code, 0, "a dry run with nothing to do: {}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("undo plan: 0 actions") && r.stdout.contains("; 5 already as before the repair"),
        "{}",
        r.stdout
    );
    let r = undo(&["--format", "json"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let summary = r.json();
    assert_eq!(
        (
            summary["undone"].clone(),
            summary["already_as_before"].clone(),
            summary["conflict"].clone()
        ),
        (json!(0), json!(5), json!(0)),
        "{summary}"
    );
    assert_eq!(summary["audit"], Value::Null, "nothing written, no undo log");
    let r = undo(&[]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("undone 0, already as before the repair 5, changed since the repair (skipped) 0, failed 0"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("changed since the repair\n"), "{}", r.stdout);
    assert_eq!(drifted_docs(&f).await, before);

    // A document someone changed since is still a conflict, not "as before".
    let theirs = order_doc(2, "Zoë (projector)", "12.5", "2024-03-02T11:30:00Z", json!([])).1;
    put(&f, "2", theirs.clone()).await;
    let r = undo(&["--format", "json"]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let summary = r.json();
    assert_eq!(
        (summary["already_as_before"].clone(), summary["conflict"].clone()),
        (json!(4), json!(1)),
        "{summary}"
    );
    assert_eq!(summary["conflicts"][0]["key"], 2);
    assert_eq!(get(&f, "2").await.unwrap().0, theirs);
}

#[tokio::test(flavor = "multi_thread")]
async fn printed_commands_act_where_the_run_acted() {
    let f = drifted().await;
    let emulator = f.emulator.as_ref().expect("fault injection needs the emulator");
    // A configuration naming a cluster and an index where nothing is: only the flags lead to the
    // read model, so a printed command without them would go astray. One try per request, so that
    // a failing bulk request stops the run at once. A space in the name needs quoting.
    let text = std::fs::read_to_string(path_in(&f, "recon.toml"))
        .unwrap()
        .replace(&f.es_url, "http://127.0.0.1:1")
        .replace("index = \"orders\"", "index = \"elsewhere\"\nmax_retries = 0");
    let config = path_in(&f, "other cluster.toml");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();
    let at = ["--config", config, "--es-url", &f.es_url, "--index", "orders"];

    // The dry run's apply command.
    let r = repair(&f, &[&at[..], &["--keys", "3"]].concat()).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let apply = printed_command(&r.stderr, "to make these changes: ");
    let r = paste(&f, &apply, "--yes").await;
    assert_eq!(r.code, 0, "{apply}\n{}\n{}", r.stdout, r.stderr);
    assert!(get(&f, "3").await.is_some(), "{apply} created 3");

    // The undo command after an apply.
    let undo = printed_command(&r.stdout, "undo with: ");
    let r = paste(&f, &undo, "--apply --yes").await;
    assert_eq!(r.code, 0, "{undo}\n{}\n{}", r.stdout, r.stderr);
    assert!(get(&f, "3").await.is_none(), "{undo} deleted 3 again");

    // The resume command after a bulk request failed.
    emulator.set_faults("unavailable=1,only=bulk".parse::<FaultSpec>().unwrap());
    let audit = path_in(&f, "audit log.ndjson");
    let r = repair(
        &f,
        &[
            &at[..],
            &["--keys", "1,3", "--apply", "--yes", "--audit", audit.to_str().unwrap()],
        ]
        .concat(),
    )
    .await;
    emulator.set_faults(FaultSpec::default());
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let resume = printed_command(&r.stderr, "finish with: ");
    let r = paste(&f, &resume, "").await;
    assert_eq!(r.code, 0, "{resume}\n{}\n{}", r.stdout, r.stderr);
    assert!(get(&f, "3").await.is_some(), "{resume} finished the repair");
    assert_eq!(get(&f, "1").await.unwrap().1, 2, "{resume} rewrote 1 once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_outcome_line_is_ended_before_resume_appends_and_the_log_stays_readable() {
    let f = drifted().await;
    let before = drifted_docs(&f).await;
    let audit = path_in(&f, "audit.ndjson");
    let r = repair(&f, &["--apply", "--yes", "--audit", audit.to_str().unwrap()]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The last outcome loses its end: its write went out, its record did not make it whole.
    cut(&audit, 60);
    let torn_line = std::fs::read_to_string(&audit).unwrap().lines().count();

    let r = repair(&f, &["--resume", audit.to_str().unwrap(), "--apply", "--yes"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(&format!("{}:{torn_line}: skipped a line cut off", audit.display())),
        "{}",
        r.stderr
    );
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(serde_json::from_str::<Value>(lines[torn_line - 1]).is_err());
    let resume: Value = serde_json::from_str(lines[torn_line]).expect("the resume record has a line of its own");
    assert_eq!(
        (resume["type"].clone(), resume["torn_line"].clone()),
        (json!("resume"), json!(torn_line))
    );
    assert_eq!(f.check_json(&[]).await.0, 0);

    // Read again, by a second resume and by undo.
    let r = repair(&f, &["--resume", audit.to_str().unwrap(), "--apply", "--yes"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("0 sent without a recorded outcome, 0 not started"),
        "{}",
        r.stderr
    );
    let r = undo_all_five(&f, &audit).await;
    assert!(r.stderr.contains(&format!(":{torn_line}: skipped")), "{}", r.stderr);
    assert_eq!(drifted_docs(&f).await, before);
}

/// Undoes the whole log `audit` of a repair of the drifted fixture (its five writes) and returns the run.
async fn undo_all_five(f: &Fixture, audit: &Path) -> Run {
    let r = run(
        f,
        "undo",
        &[audit.to_str().unwrap(), "--apply", "--yes", "--format", "json"],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["undone"], 5);
    r
}

/// Runs `repair --apply` with one try per request against a bulk endpoint that answers 503: the run
/// stops (exit 2) with its intents on disk and no outcome. Returns the audit log.
async fn repair_stopped_by_a_failing_bulk(f: &Fixture) -> PathBuf {
    let emulator = f.emulator.as_ref().expect("fault injection needs the emulator");
    let config = path_in(f, "recon.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[elasticsearch]\n", "[elasticsearch]\nmax_retries = 0\n");
    std::fs::write(&config, text).unwrap();
    emulator.set_faults("unavailable=1,only=bulk".parse::<FaultSpec>().unwrap());
    let audit = path_in(f, "audit.ndjson");
    let r = repair(f, &["--apply", "--yes", "--audit", audit.to_str().unwrap()]).await;
    emulator.set_faults(FaultSpec::default());
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    audit
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_intent_was_never_sent_and_resume_carries_its_action_out() {
    let f = drifted().await;
    let before = drifted_docs(&f).await;
    let audit = repair_stopped_by_a_failing_bulk(&f).await;
    let lines = audit_lines(&audit);
    assert_eq!((count(&lines, "intent"), count(&lines, "outcome")), (5, 0));
    assert_eq!(drifted_docs(&f).await, before, "nothing was written");
    // The last intent is cut, as a kill while it was being written leaves it: it was never sent.
    cut(&audit, 60);

    let r = repair(&f, &["--resume", audit.to_str().unwrap(), "--apply", "--yes"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("4 sent without a recorded outcome, 1 not started"),
        "{}",
        r.stderr
    );
    assert_eq!(f.check_json(&[]).await.0, 0);
    undo_all_five(&f, &audit).await;
    assert_eq!(drifted_docs(&f).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_whose_resume_record_an_older_recon_glued_to_a_torn_line_is_read() {
    let f = drifted().await;
    let before = drifted_docs(&f).await;
    let audit = path_in(&f, "audit.ndjson");
    let r = repair(&f, &["--apply", "--yes", "--audit", audit.to_str().unwrap()]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    cut(&audit, 60);
    let torn_line = std::fs::read_to_string(&audit).unwrap().lines().count();
    // What an older recon's --resume left: its record straight after the torn bytes. It then sent
    // the intent without outcome again; that outcome follows.
    let mut file = std::fs::OpenOptions::new().append(true).open(&audit).unwrap();
    std::io::Write::write_all(
        &mut file,
        b"{\"type\":\"resume\",\"started_at\":\"2026-11-28T09:30:00.000Z\"}\n",
    )
    .unwrap();
    drop(file);

    let r = repair(&f, &["--resume", audit.to_str().unwrap(), "--apply", "--yes"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(&format!("{}:{torn_line}: skipped a line cut off", audit.display())),
        "{}",
        r.stderr
    );
    undo_all_five(&f, &audit).await;
    assert_eq!(drifted_docs(&f).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_cut_off_while_it_was_logged_is_not_resumed_as_if_whole() {
    let f = drifted().await;
    let before = drifted_docs(&f).await;
    let audit = repair_stopped_by_a_failing_bulk(&f).await;
    // What a run killed while logging its plan leaves: the header, two plan lines, part of a third.
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1..4].iter().all(|l| l.starts_with(r#"{"type":"plan""#)), "{text}");
    std::fs::write(
        &audit,
        format!("{}\n{}\n{}\n{}", lines[0], lines[1], lines[2], &lines[3][..40]),
    )
    .unwrap();

    let r = repair(&f, &["--resume", audit.to_str().unwrap(), "--apply", "--yes"]).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("stopped while it was logging its plan (2 of 5 actions)"),
        "{}",
        r.stderr
    );
    assert_eq!(drifted_docs(&f).await, before, "no part of the plan was carried out");
}

/// Documents without a key are deleted like orphans (conditionally, by `_id`), whether repair runs its
/// own check or reads a report, and `undo` puts them back.
#[tokio::test(flavor = "multi_thread")]
async fn documents_without_a_key_are_deleted_and_undone() {
    let f = drifted().await;
    f.index_docs(
        "orders",
        &[
            ("no-key".into(), json!({"customerName": "Nobody"})),
            ("null-key".into(), json!({"orderId": null, "customerName": "Null"})),
        ],
    )
    .await;
    let r = repair(&f, &[]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("unkeyed     delete  2"), "{}", r.stdout);
    assert!(get(&f, "no-key").await.is_some(), "a dry run writes nothing");

    let report = path_in(&f, "report.json");
    let (code, _, stderr) = f
        .check_async(&["--quiet", "--format", "json", "--output", report.to_str().unwrap()])
        .await;
    assert_eq!(code, 1, "{stderr}");
    let audit = path_in(&f, "audit.ndjson");
    let r = repair(
        &f,
        &[
            "--from-report",
            report.to_str().unwrap(),
            "--apply",
            "--yes",
            "--format",
            "json",
            "--audit",
            audit.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["remaining"], json!({}), "{}", r.stdout);
    assert!(get(&f, "no-key").await.is_none() && get(&f, "null-key").await.is_none());
    let (code, report, _) = f.check_json(&[]).await;
    assert_eq!(code, 0, "{report}");

    let r = run(&f, "undo", &[audit.to_str().unwrap(), "--apply", "--yes"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(get(&f, "no-key").await.unwrap().0, json!({"customerName": "Nobody"}));
    let (code, report, _) = f.check_json(&[]).await;
    assert_eq!((code, report["summary"]["unkeyed"].clone()), (1, json!(2)), "{report}");
}

/// The audit log (`recon.audit/v1`) and the plan (`recon.repair-plan/v1`) of the recon before the
/// version token, versions spelled out as `if_seq_no`/`if_primary_term`: written by that recon's
/// `repair --plan` and then `repair --apply --yes` on [`drifted`]. A fresh `drifted()` holds the same
/// documents at the same versions, and the same writes in the same order make the same versions.
const V1_AUDIT: &str = include_str!("fixtures/audit-v1-repair-of-drifted.ndjson");
const V1_PLAN: &str = include_str!("fixtures/repair-plan-v1-of-drifted.ndjson");

#[tokio::test(flavor = "multi_thread")]
async fn a_v1_audit_log_cut_short_resumes_and_a_whole_one_undoes() {
    let f = drifted().await;
    let before = drifted_docs(&f).await;
    // That run killed once its first two intents were on disk: header, plan, two intents, no outcome.
    let cut: String = V1_AUDIT.lines().take(8).map(|l| format!("{l}\n")).collect();
    assert!(cut.contains(r#""schema":"recon.audit/v1""#));
    assert!(cut.lines().last().unwrap().starts_with(r#"{"type":"intent","seq":2,"#));
    let resumed = path_in(&f, "resumed.ndjson");
    std::fs::write(&resumed, cut).unwrap();
    let r = repair(
        &f,
        &[
            "--resume",
            resumed.to_str().unwrap(),
            "--apply",
            "--yes",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("0 actions done, 2 sent without a recorded outcome, 3 not started"),
        "{}",
        r.stderr
    );
    let summary = r.json();
    assert_eq!(summary["outcomes"]["applied"], 5, "{summary}");
    assert_eq!(f.check_json(&[]).await.0, 0, "the resumed repair is whole");
    for id in ["1", "2"] {
        assert_eq!(get(&f, id).await.unwrap().1, 2, "document {id} written once");
    }

    // The whole v1 log undoes those writes: its outcomes name the versions the writes made.
    let whole = path_in(&f, "whole.ndjson");
    std::fs::write(&whole, V1_AUDIT).unwrap();
    let r = run(&f, "undo", &[whole.to_str().unwrap()]).await;
    assert!(
        r.stdout
            .contains("delete 1 created, restore 2 overwritten, re-create 2 deleted"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    let r = run(
        &f,
        "undo",
        &[whole.to_str().unwrap(), "--apply", "--yes", "--format", "json"],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["undone"], 5, "{}", r.stdout);
    assert_eq!(drifted_docs(&f).await, before);

    // The resumed log, v1 records and then this recon's, reads whole too: all 5 are as before now.
    let r = run(&f, "undo", &[resumed.to_str().unwrap()]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("undo plan: 0 actions") && r.stdout.contains("; 5 already as before the repair"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_v1_plan_applies_on_the_versions_it_names() {
    let f = drifted().await;
    let plan = path_in(&f, "plan-v1.ndjson");
    std::fs::write(&plan, V1_PLAN).unwrap();
    // The projector writes key 2 after the plan was made: the plan's version of it is stale.
    let mut theirs = order_doc(2, "Zoe (projector)", "12.5", "2024-03-02T11:30:00Z", json!([])).1;
    theirs["indexedAt"] = json!("2026-02-02T00:00:00Z");
    put(&f, "2", theirs.clone()).await;
    let r = repair(
        &f,
        &[
            "--from-plan",
            plan.to_str().unwrap(),
            "--apply",
            "--yes",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let summary = r.json();
    assert_eq!(summary["outcomes"]["applied"], 4, "{summary}");
    assert_eq!(summary["outcomes"]["conflict"], 1, "{summary}");
    assert_eq!(summary["conflicts"][0]["key"], 2, "{summary}");
    assert_eq!(get(&f, "2").await.unwrap().0, theirs, "the concurrent write survives");
    assert_eq!(get(&f, "1").await.unwrap().1, 2);
    assert!(get(&f, "3").await.is_some() && get(&f, "5").await.is_none() && get(&f, "4-retry").await.is_none());
}
