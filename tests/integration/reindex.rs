//! `recon reindex` end to end: a real PostgreSQL, the emulator over HTTP, the binary. The alias is
//! `orders`; the first generation is the index `orders-v1` a projector filled.
//!
//! Runs are crashed (`RECON_REINDEX_FAIL_AFTER`) or held (`RECON_REINDEX_HOLD_<STAGE>`) at known points by
//! test hooks that exist only in debug builds (`src/reindex/hooks.rs`): these tests run the debug binary;
//! a release `recon` ignores the variables.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use elasticsearch::http::Method;
use elasticsearch::{DeleteParts, IndexParts};
use serde_json::{json, Value};

use recon_es_emulator::FaultSpec;

use crate::support::cli_command as recon;
use crate::support::fixture::{Fixture, ORDERS_QUERY};
use crate::support::{eventually, Run};

const FIELDS: &str = "[compare.fields]\norderDate = { as = \"instant\" }";

/// `n` orders in PostgreSQL; the index `orders-v1` behind the alias `orders` holds their documents,
/// with every tenth one stale (the drift a rebuild is for).
async fn aliased(n: i64) -> Fixture {
    let f = Fixture::orders("orders-v1", "long").await;
    f.config("orders", ORDERS_QUERY, "orderId", FIELDS);
    f.db.execute(&format!(
        "INSERT INTO orders (id, customer, total, ordered_at) SELECT g, 'c-' || g, g * 1.25, \
         '2024-01-01T00:00:00Z' FROM generate_series(1, {n}) g"
    ))
    .await;
    let docs: Vec<(String, Value)> = (1..=n)
        .map(|i| {
            let name = if i % 10 == 0 {
                format!("stale-{i}")
            } else {
                format!("c-{i}")
            };
            (i.to_string(), projected(i, &name, &format!("{}", i as f64 * 1.25)))
        })
        .collect();
    for chunk in docs.chunks(5000) {
        f.index_docs("orders-v1", chunk).await;
    }
    let (status, body) = call(
        &f,
        Method::Post,
        "/_aliases",
        Some(json!({"actions": [
        {"add": {"index": "orders-v1", "alias": "orders", "is_write_index": true}}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    f
}

/// The document the projector writes for an order.
fn projected(id: i64, customer: &str, total: &str) -> Value {
    let total: Value = serde_json::from_str(total).unwrap();
    json!({"orderId": id, "customerName": customer, "products": [], "totalPrice": total,
           "orderDate": "2024-01-01T00:00:00Z"})
}

async fn call(f: &Fixture, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let response =
        f.es.send(
            method,
            path,
            elasticsearch::http::headers::HeaderMap::new(),
            None::<&()>,
            body.map(|b| b.to_string()),
            None,
        )
        .await
        .unwrap();
    let status = response.status_code().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn reindex_env(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = recon();
    c.current_dir(f.dir.path())
        .arg("reindex")
        .args(args)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || c.output().expect("recon runs"))
        .await
        .unwrap();
    Run::from(out)
}

async fn reindex(f: &Fixture, args: &[&str]) -> Run {
    reindex_env(f, args, &[]).await
}

/// Runs a reindex that stops at `stage` (`AFTER_LOAD`: between the load and the first verify pass;
/// `BEFORE_SWAP`: after the gate opened) until `act` has run.
async fn reindex_held<A: std::future::Future<Output = ()>>(f: &Fixture, args: &[&str], stage: &str, act: A) -> Run {
    let hold = f.dir.path().join(format!("hold-{stage}"));
    let child = recon()
        .current_dir(f.dir.path())
        .arg("reindex")
        .args(args)
        .env(format!("RECON_REINDEX_HOLD_{stage}"), &hold)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let held = eventually(Duration::from_secs(30), || {
        let hold = hold.clone();
        async move { hold.exists() }
    })
    .await;
    assert!(held, "the reindex reached {stage}");
    act.await;
    std::fs::remove_file(&hold).unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    Run::from(out)
}

/// The indices the alias points at.
async fn behind_alias(f: &Fixture) -> Vec<String> {
    let (status, body) = call(f, Method::Get, "/_alias/orders", None).await;
    if status == 404 {
        return Vec::new();
    }
    let mut names: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

/// `--list --format json` generations: (index, docs, phase, live).
async fn generations(f: &Fixture) -> Vec<(String, u64, String, bool)> {
    let run = reindex(f, &["--list", "--format", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    list["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["index"].as_str().unwrap().to_string(),
                g["docs"].as_u64().unwrap_or(0),
                g["phase"].as_str().unwrap_or("-").to_string(),
                g["live"].as_bool().unwrap(),
            )
        })
        .collect()
}

async fn assert_alias_in_sync(f: &Fixture) {
    let (code, report, stderr) = f.check_json(&[]).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["failing"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reindex_swaps_to_a_verified_generation_lists_and_rolls_back() {
    let f = aliased(300).await;
    let (code, _, _) = f.check_json(&[]).await;
    assert_eq!(code, 1, "the first generation drifts");
    // The index's own `_meta` travels to the new generation, beside recon's state.
    let (status, body) = call(
        &f,
        Method::Put,
        "/orders-v1/_mapping",
        Some(json!({"_meta": {"owner": "team-x", "schema": 3}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let run = reindex(&f, &["--yes", "--quiet", "--format", "json"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let summary: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(summary["result"], "swapped");
    assert_eq!(summary["loaded"], 300);
    assert_eq!(summary["previous"], "orders-v1");
    // Nothing changed during the run: every key proven by the fingerprint of what the load sent.
    assert_eq!(summary["gate"], "fingerprints");
    assert_eq!(summary["settled_by_fingerprint"], 300, "{summary}");
    assert_eq!(summary["compared_in_full"], 0, "{summary}");
    let new = summary["index"].as_str().unwrap().to_string();
    assert!(
        new.starts_with("orders-") && new.ends_with('z') && new.len() == "orders-".len() + 16,
        "{new}"
    );
    assert_eq!(behind_alias(&f).await, vec![new.clone()]);
    assert_alias_in_sync(&f).await;
    let (_, mapping) = call(&f, Method::Get, &format!("/{new}/_mapping"), None).await;
    let meta = &mapping[&new]["mappings"]["_meta"];
    assert_eq!(
        (&meta["owner"], &meta["schema"]),
        (&json!("team-x"), &json!(3)),
        "{meta}"
    );
    assert_eq!(meta["recon"]["phase"], "live", "{meta}");
    // Refresh and replicas are back to what the first generation had (the default: unset).
    let (_, settings) = call(&f, Method::Get, &format!("/{new}/_settings?flat_settings=true"), None).await;
    assert_eq!(
        settings[&new]["settings"]["index.refresh_interval"],
        Value::Null,
        "{settings}"
    );

    let list = generations(&f).await;
    // orders-v1 predates recon: no phase.
    assert_eq!(
        list,
        vec![
            ("orders-v1".to_string(), 300, "-".to_string(), false),
            (new.clone(), 300, "live".to_string(), true)
        ]
    );
    let text = reindex(&f, &["--list"]).await;
    assert!(text.stdout.contains(&format!("* {new}")), "{}", text.stdout);

    // While the new generation is live, the projector changes an order; a rollback carries it over.
    f.db.execute("UPDATE orders SET customer = 'moved', updated_at = now() WHERE id = 3")
        .await;
    let (status, _) = call(
        &f,
        Method::Put,
        "/orders/_doc/3?refresh=true",
        Some(projected(3, "moved", "3.75")),
    )
    .await;
    assert_eq!(status, 200);
    let back = reindex(&f, &["--rollback", "--yes", "--quiet"]).await;
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_eq!(behind_alias(&f).await, vec!["orders-v1".to_string()]);
    let (_, doc) = call(&f, Method::Get, "/orders-v1/_doc/3", None).await;
    assert_eq!(doc["_source"]["customerName"], "moved", "{doc}");
    let list = generations(&f).await;
    assert_eq!(list[1].2, "retired");
    let (_, mapping) = call(&f, Method::Get, &format!("/{new}/_mapping"), None).await;
    assert_eq!(mapping[&new]["mappings"]["_meta"]["owner"], "team-x", "{mapping}");
    // Nothing older than the first generation: a second rollback is refused.
    let again = reindex(&f, &["--rollback", "--yes"]).await;
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("no older generation"), "{}", again.stderr);
    assert_eq!(behind_alias(&f).await, vec!["orders-v1".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_deletes_generations_beyond_it_only_after_a_swap() {
    let f = aliased(20).await;
    let first = reindex(&f, &["--yes", "--quiet", "--format", "json"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    // With progress lines on stderr (not a terminal: log lines), in parallel.
    let second = reindex(&f, &["--yes", "--format", "json", "--parallel", "3"]).await;
    assert!(
        second.stderr.contains("recon: loaded 20 documents"),
        "{}",
        second.stderr
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    let second: Value = serde_json::from_str(second.stdout.trim()).unwrap();
    let first: Value = serde_json::from_str(first.stdout.trim()).unwrap();
    let (a, b) = (first["index"].as_str().unwrap(), second["index"].as_str().unwrap());
    assert!(b > a, "{a} {b}");
    let names: Vec<String> = generations(&f).await.into_iter().map(|g| g.0).collect();
    // orders-v1 is not a generation by name; of the generations one older one is kept.
    assert_eq!(names, vec!["orders-v1".to_string(), a.to_string(), b.to_string()]);
    let third = reindex(&f, &["--yes", "--quiet", "--format", "json", "--keep", "0"]).await;
    assert_eq!(third.code, 0, "{}", third.stderr);
    let third: Value = serde_json::from_str(third.stdout.trim()).unwrap();
    let names: Vec<String> = generations(&f).await.into_iter().map(|g| g.0).collect();
    assert_eq!(names, vec![third["index"].as_str().unwrap().to_string()]);
    // Only indices named like generations are ever deleted: orders-v1 is still there, unlisted.
    let (status, _) = call(&f, Method::Get, "/orders-v1/_settings", None).await;
    assert_eq!(status, 200);
    assert_alias_in_sync(&f).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_terminal_yes_is_required_and_nothing_is_created() {
    let f = aliased(5).await;
    let run = reindex(&f, &[]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert_eq!(generations(&f).await.len(), 1);
}

/// The phase of the newest generation in the making (None before one exists).
async fn building_phase(f: &Fixture) -> Option<String> {
    let (status, body) = call(f, Method::Get, "/orders-2*/_mapping", None).await;
    if status != 200 {
        return None;
    }
    let mut names: Vec<&String> = body.as_object()?.keys().collect();
    names.sort();
    let newest = names.last()?;
    body[newest.as_str()]["mappings"]["_meta"]["recon"]["phase"]
        .as_str()
        .map(str::to_string)
}

/// What the projector did, by the phase the reindex was in.
#[derive(Default)]
struct Played {
    inserts: AtomicU64,
    updates: AtomicU64,
    deletes: AtomicU64,
    during_load: AtomicU64,
    after_swap: AtomicU64,
}

/// Plays the projector until `stop`: inserts, updates and deletes rows in PostgreSQL (committed first)
/// and writes the matching documents through the alias. Deletes stop once the load is over: a delete
/// between the last check and the swap is the documented window (`a_delete_between_the_last_check_…`).
async fn project(f: &Fixture, stop: Arc<AtomicBool>, played: Arc<Played>) {
    let mut conn = f.db.connect().await;
    let mut next_id = 1_000_000i64;
    let mut step = 0i64;
    while !stop.load(Ordering::SeqCst) {
        step += 1;
        let phase = building_phase(f).await;
        let loading = phase.as_deref() == Some("loading");
        let live = matches!(phase.as_deref(), Some("swapped" | "live"));
        let id = (step * 7919) % 3000 + 1;
        let op = step % 3;
        if op == 0 && loading {
            sqlx::query("DELETE FROM orders WHERE id = $1")
                .bind(id)
                .execute(&mut conn)
                .await
                .unwrap();
            let _ =
                f.es.delete(DeleteParts::IndexId("orders", &id.to_string()))
                    .send()
                    .await
                    .unwrap();
            played.deletes.fetch_add(1, Ordering::Relaxed);
        } else if op == 1 {
            next_id += 1;
            let name = format!("new-{next_id}");
            sqlx::query(
                "INSERT INTO orders (id, customer, total, ordered_at, updated_at) \
                 VALUES ($1, $2, 3.50, '2024-01-01T00:00:00Z', now())",
            )
            .bind(next_id)
            .bind(&name)
            .execute(&mut conn)
            .await
            .unwrap();
            write_doc(f, next_id, &name, "3.50").await;
            played.inserts.fetch_add(1, Ordering::Relaxed);
        } else {
            let name = format!("upd-{step}");
            let row: Option<(String,)> = sqlx::query_as(
                "UPDATE orders SET customer = $2, updated_at = now() WHERE id = $1 RETURNING total::text",
            )
            .bind(id)
            .bind(&name)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
            if let Some((total,)) = row {
                write_doc(f, id, &name, &total).await;
                played.updates.fetch_add(1, Ordering::Relaxed);
            }
        }
        if loading {
            played.during_load.fetch_add(1, Ordering::Relaxed);
        }
        if live {
            played.after_swap.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn write_doc(f: &Fixture, id: i64, name: &str, total: &str) {
    let response =
        f.es.index(IndexParts::IndexId("orders", &id.to_string()))
            .body(projected(id, name, total))
            .send()
            .await
            .unwrap();
    assert!(response.status_code().is_success(), "{:?}", response.text().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projector_writing_throughout_loses_nothing() {
    let f = aliased(3000).await;
    // Slow bulk requests stretch the load, so that the projector acts during every phase.
    f.emulator
        .as_ref()
        .unwrap()
        .set_faults("latency=40ms,only=bulk".parse::<FaultSpec>().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let played = Arc::new(Played::default());
    let projector = {
        let (stop, played) = (stop.clone(), played.clone());
        let f = &f;
        async move { project(f, stop, played).await }
    };
    let run = async {
        // The projector is running before the reindex starts.
        assert!(
            eventually(Duration::from_secs(10), || async {
                played.inserts.load(Ordering::Relaxed) > 0
            })
            .await
        );
        let run = reindex(&f, &["--yes", "--quiet", "--format", "json", "--catch-up-margin", "2s"]).await;
        // …and goes on after the swap for a while (when there was one).
        let after = played.after_swap.load(Ordering::Relaxed);
        if run.code == 0 {
            let more = eventually(Duration::from_secs(10), || async {
                played.after_swap.load(Ordering::Relaxed) > after + 20
            })
            .await;
            assert!(more, "the projector went on after the swap");
        }
        stop.store(true, Ordering::SeqCst);
        run
    };
    let ((), run) = tokio::join!(projector, run);
    f.emulator.as_ref().unwrap().set_faults(FaultSpec::default());
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        played.during_load.load(Ordering::Relaxed) > 0,
        "the projector acted during the load"
    );
    assert!(played.deletes.load(Ordering::Relaxed) > 0);
    assert!(played.updates.load(Ordering::Relaxed) > 0);
    let summary: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        behind_alias(&f).await,
        vec![summary["index"].as_str().unwrap().to_string()]
    );
    // The projector's last writes are searchable after a refresh (a refresh interval later otherwise).
    let (status, _) = call(&f, Method::Post, "/orders/_refresh", None).await;
    assert_eq!(status, 200);
    assert_alias_in_sync(&f).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_during_the_load_leaves_the_alias_and_resumes() {
    let f = aliased(2500).await;
    let killed = reindex_env(&f, &["--yes", "--quiet"], &[("RECON_REINDEX_FAIL_AFTER", "batches:2")]).await;
    assert_ne!(killed.code, 0, "{}", killed.stderr);
    assert_eq!(behind_alias(&f).await, vec!["orders-v1".to_string()]);
    let list = generations(&f).await;
    let partial = list.iter().find(|g| g.0 != "orders-v1").unwrap().clone();
    assert_eq!(partial.2, "loading");
    let (_, mapping) = call(&f, Method::Get, &format!("/{}/_mapping", partial.0), None).await;
    let recon = &mapping[&partial.0]["mappings"]["_meta"]["recon"];
    assert_eq!(recon["ranges"][0]["last_key"], 2000, "{recon}");
    assert_eq!(recon["alias"], "orders");
    assert_eq!(recon["source_index"], "orders-v1");
    let watermark = recon["watermark"].clone();
    assert!(watermark.is_string(), "{recon}");

    // Rows changed after the original watermark, on both sides of the last loaded key.
    f.db.execute("UPDATE orders SET customer = 'late', updated_at = now() WHERE id IN (5, 2400)")
        .await;

    // No terminal, neither flag: refused with the commands to run.
    let refused = reindex(&f, &["--yes"]).await;
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("--resume --yes") && refused.stderr.contains("--discard --yes"),
        "{}",
        refused.stderr
    );
    assert_eq!(behind_alias(&f).await, vec!["orders-v1".to_string()]);

    let scratch = scratch_dir(&f, &partial.0).await;
    assert!(scratch.exists(), "the killed run's fingerprints stay for a resume");
    let resumed = reindex(&f, &["--yes", "--quiet", "--resume", "--format", "json"]).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let summary: Value = serde_json::from_str(resumed.stdout.trim()).unwrap();
    assert_eq!(summary["index"], partial.0.as_str());
    // Only the rest was loaded; the fingerprints the killed run left (cut back to its last saved key)
    // and the ones of the rest cover every key: 5 and 2400, changed since the watermark, are compared
    // in full.
    assert_eq!(summary["loaded"], 500);
    assert_eq!(summary["gate"], "fingerprints", "{summary}");
    assert_eq!(summary["settled_by_fingerprint"], 2498, "{summary}");
    assert_eq!(summary["compared_in_full"], 2, "{summary}");
    assert!(!scratch.exists(), "the fingerprints go with the swap");
    assert_eq!(behind_alias(&f).await, vec![partial.0.clone()]);
    let (_, mapping) = call(&f, Method::Get, &format!("/{}/_mapping", partial.0), None).await;
    assert_eq!(
        mapping[&partial.0]["mappings"]["_meta"]["recon"]["watermark"],
        watermark
    );
    assert_alias_in_sync(&f).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_before_the_swap_can_be_discarded() {
    let f = aliased(50).await;
    let killed = reindex_env(&f, &["--yes", "--quiet"], &[("RECON_REINDEX_FAIL_AFTER", "verify")]).await;
    assert_ne!(killed.code, 0);
    assert_eq!(behind_alias(&f).await, vec!["orders-v1".to_string()]);
    let partial = generations(&f).await.into_iter().find(|g| g.0 != "orders-v1").unwrap();
    assert_eq!((partial.1, partial.2.as_str()), (50, "catching_up"));
    let scratch = scratch_dir(&f, &partial.0).await;
    assert!(scratch.exists(), "the killed run's fingerprints stay for a resume");
    let run = reindex(&f, &["--yes", "--quiet", "--discard", "--format", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!scratch.exists(), "discarded with the generation");
    let (status, _) = call(&f, Method::Get, &format!("/{}/_settings", partial.0), None).await;
    assert_eq!(status, 404, "the partial generation is deleted");
    let summary: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        behind_alias(&f).await,
        vec![summary["index"].as_str().unwrap().to_string()]
    );
    assert_alias_in_sync(&f).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_right_after_the_swap_finishes_its_last_pass() {
    let f = aliased(50).await;
    let killed = reindex_env(&f, &["--yes", "--quiet"], &[("RECON_REINDEX_FAIL_AFTER", "swap")]).await;
    assert_ne!(killed.code, 0);
    let swapped = behind_alias(&f).await;
    assert_ne!(swapped, vec!["orders-v1".to_string()]);
    f.db.execute("UPDATE orders SET customer = 'late', updated_at = now() WHERE id = 7")
        .await;
    // Behind the alias already: finished without asking, never discarded.
    let run = reindex(&f, &["--yes", "--quiet", "--format", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(behind_alias(&f).await, swapped);
    assert_eq!(generations(&f).await.last().unwrap().2, "live");
    assert_alias_in_sync(&f).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_verify_gate_keeps_the_alias_when_the_new_index_drifts() {
    let f = aliased(30).await;
    // A mapping under which some documents cannot be indexed: customerName as a number.
    let mapping = f.dir.path().join("mapping.json");
    std::fs::write(
        &mapping,
        r#"{"properties": {"orderId": {"type": "long"}, "orderDate": {"type": "date"}, "customerName": {"type": "long"}}}"#,
    )
    .unwrap();
    let mapping = mapping.to_str().unwrap();
    let run = reindex(&f, &["--yes", "--quiet", "--format", "json", "--mapping", mapping]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let summary: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(summary["result"], "verify_failed");
    assert_eq!(summary["failing"], 30);
    assert_eq!(behind_alias(&f).await, vec!["orders-v1".to_string()]);
    let kept = generations(&f).await.into_iter().find(|g| g.0 != "orders-v1").unwrap();
    assert_eq!(kept.2, "verify_failed");
    assert!(run.stderr.contains("--discard --yes"), "{}", run.stderr);

    // A gate as wide as the drift lets the swap through.
    let wide = reindex(
        &f,
        &[
            "--yes",
            "--quiet",
            "--format",
            "json",
            "--discard",
            "--mapping",
            mapping,
            "--max-drift",
            "30",
        ],
    )
    .await;
    assert_eq!(wide.code, 0, "{}", wide.stderr);
    let summary: Value = serde_json::from_str(wide.stdout.trim()).unwrap();
    assert_eq!(summary["failing"], 30);
    assert_eq!(
        behind_alias(&f).await,
        vec![summary["index"].as_str().unwrap().to_string()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_storm_during_the_load_is_ridden_out() {
    let f = aliased(2000).await;
    f.emulator
        .as_ref()
        .unwrap()
        .set_faults("item_reject=0.3,reject_every=3,only=bulk".parse::<FaultSpec>().unwrap());
    let run = reindex(&f, &["--yes", "--quiet", "--format", "json", "--parallel", "2"]).await;
    f.emulator.as_ref().unwrap().set_faults(FaultSpec::default());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(summary["loaded"], 2000);
    assert_eq!(summary["load_failed"], 0);
    // Two ranges' fingerprints, read back in order; retried items do not change what was sent.
    assert_eq!(summary["settled_by_fingerprint"], 2000, "{summary}");
    assert_alias_in_sync(&f).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concrete_index_is_refused_and_adopted_on_request() {
    let f = Fixture::orders("orders", "long").await;
    f.config("orders", ORDERS_QUERY, "orderId", FIELDS);
    f.db.execute(
        "INSERT INTO orders (id, customer, total, ordered_at) SELECT g, 'c-' || g, g, '2024-01-01T00:00:00Z' \
         FROM generate_series(1, 40) g",
    )
    .await;
    let refused = reindex(&f, &["--yes"]).await;
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("concrete index") && refused.stderr.contains("--adopt"),
        "{}",
        refused.stderr
    );
    let (status, _) = call(&f, Method::Get, "/_alias/orders", None).await;
    assert_eq!(status, 404);

    let adopted = reindex(&f, &["--yes", "--quiet", "--adopt", "--format", "json"]).await;
    assert_eq!(adopted.code, 0, "{}", adopted.stderr);
    let summary: Value = serde_json::from_str(adopted.stdout.trim()).unwrap();
    let new = summary["index"].as_str().unwrap().to_string();
    assert_eq!(behind_alias(&f).await, vec![new]);
    assert_alias_in_sync(&f).await;
}

/// The documented window: a delete committed between the last verify check and the swap goes to the old
/// index; the new one keeps the document. The next check reports it as orphaned and repair removes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_between_the_last_check_and_the_swap_is_caught_by_the_next_check() {
    let f = aliased(40).await;
    let run = reindex_held(&f, &["--yes", "--quiet", "--format", "json"], "BEFORE_SWAP", async {
        // The projector deletes order 17 now: row first, then the document through the alias (still old).
        f.db.execute("DELETE FROM orders WHERE id = 17").await;
        let response = f.es.delete(DeleteParts::IndexId("orders", "17")).send().await.unwrap();
        assert_eq!(response.status_code().as_u16(), 200);
    })
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    let (code, report, _) = f.check_json(&[]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["summary"]["orphaned"], 1, "{report}");
    assert_eq!(report["failing"], 1, "{report}");
    assert_eq!(report["drift"][0]["key"], 17, "{report}");
    let mut repair = recon();
    repair
        .current_dir(f.dir.path())
        .args(["repair", "--apply", "--yes", "--quiet"])
        .stdin(std::process::Stdio::null());
    let repaired = tokio::task::spawn_blocking(move || repair.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        repaired.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&repaired.stderr)
    );
    assert_alias_in_sync(&f).await;
}

/// Where a reindex keeps the fingerprints of generation `index` in this machine's temp dir (named
/// by the run's token in `_meta`: tests running at once may build generations of the same name).
async fn scratch_dir(f: &Fixture, index: &str) -> std::path::PathBuf {
    let (_, mapping) = call(f, Method::Get, &format!("/{index}/_mapping"), None).await;
    let token = mapping[index]["mappings"]["_meta"]["recon"]["scratch"]
        .as_str()
        .unwrap_or_else(|| panic!("no scratch token: {mapping}"))
        .to_string();
    std::env::temp_dir().join(format!("recon-reindex-{index}-{token}"))
}

/// A run killed right after its load resumes with the load's fingerprints; on another machine (no
/// fingerprint files) the resumed gate checks in full, and says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_after_its_load_resumes_with_its_fingerprints_or_checks_in_full() {
    let f = aliased(120).await;
    let killed = reindex_env(&f, &["--yes", "--quiet"], &[("RECON_REINDEX_FAIL_AFTER", "load")]).await;
    assert_ne!(killed.code, 0);
    let index = newest_generation(&f).await;
    let scratch = scratch_dir(&f, &index).await;
    assert!(scratch.exists());
    let resumed = reindex(&f, &["--yes", "--resume", "--format", "json"]).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let summary: Value = serde_json::from_str(resumed.stdout.trim()).unwrap();
    assert_eq!(summary["index"], index.as_str());
    assert_eq!(summary["gate"], "fingerprints", "{summary}");
    assert_eq!(summary["settled_by_fingerprint"], 120, "{summary}");
    assert!(!scratch.exists());
    assert_alias_in_sync(&f).await;

    // The same, with the files gone (the run resumed on another machine).
    let killed = reindex_env(&f, &["--yes", "--quiet"], &[("RECON_REINDEX_FAIL_AFTER", "load")]).await;
    assert_ne!(killed.code, 0);
    let index = newest_generation(&f).await;
    std::fs::remove_dir_all(scratch_dir(&f, &index).await).unwrap();
    let resumed = reindex(&f, &["--yes", "--resume", "--format", "json"]).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let summary: Value = serde_json::from_str(resumed.stdout.trim()).unwrap();
    assert_eq!(summary["gate"], "full", "{summary}");
    assert!(
        resumed.stderr.contains("no fingerprints of the load on this machine"),
        "{}",
        resumed.stderr
    );
    assert_alias_in_sync(&f).await;
}

/// The newest generation's name (the one being built).
async fn newest_generation(f: &Fixture) -> String {
    let list = generations(f).await;
    list.into_iter()
        .map(|g| g.0)
        .filter(|i| i != "orders-v1")
        .max()
        .unwrap()
}

/// After the load, before the first verify pass: a row deleted and one inserted with an old
/// `updated_at` (neither re-projected by the catch-up), a document of the new generation overwritten
/// behind recon's back, and a row updated the usual way. The fingerprint gate settles every other key
/// by its fingerprint, finds the three drifts, repairs them, and passes on its second pass.
#[tokio::test(flavor = "multi_thread")]
async fn the_fingerprint_gate_finds_what_changed_after_the_load() {
    let f = aliased(200).await;
    // Two ranges: sifted concurrently, the drift in both.
    let args = ["--yes", "--format", "json", "--parallel", "2"];
    let run = reindex_held(&f, &args, "AFTER_LOAD", async {
        f.db.execute("DELETE FROM orders WHERE id = 5").await;
        f.db.execute(
            "INSERT INTO orders (id, customer, total, ordered_at, updated_at) \
             VALUES (9001, 'imported', 1.00, '2024-01-01T00:00:00Z', '2001-01-01T00:00:00Z')",
        )
        .await;
        f.db.execute("UPDATE orders SET customer = 'late', updated_at = now() WHERE id = 8")
            .await;
        let new = newest_generation(&f).await;
        let (status, body) = call(
            &f,
            Method::Put,
            &format!("/{new}/_doc/7"),
            Some(projected(7, "tampered", "8.75")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    })
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let summary: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(summary["gate"], "fingerprints", "{summary}");
    assert!(
        run.stderr.contains("pass 1: checked") && run.stderr.contains("3 keys drift"),
        "{}",
        run.stderr
    );
    // One pass: the three repaired and compared again, nothing left.
    assert_eq!(summary["passes"], 1, "{summary}");
    assert_eq!(summary["found"], 3, "{summary}");
    assert_eq!(summary["failing"], 0, "{summary}");
    assert!(
        run.stderr
            .contains("repaired 3 of 3 drifted keys (0 failed); 0 still drift"),
        "{}",
        run.stderr
    );
    // 200 loaded, 9001 not: 5 (deleted), 7 (tampered), 8 (re-projected) and 9001 compared in full (8
    // found in sync), the other 197 settled by fingerprint.
    assert_eq!(summary["settled_by_fingerprint"], 197, "{summary}");
    assert_eq!(summary["compared_in_full"], 4, "{summary}");
    assert_alias_in_sync(&f).await;
    let (_, doc) = call(&f, Method::Get, "/orders/_doc/9001", None).await;
    assert_eq!(doc["_source"]["customerName"], "imported", "{doc}");
}

/// A row changed without an `updated_at` bump: the fingerprint gate trusts `updated_at`, so the swap
/// goes through and the next check reports the key (the documented limit); `--verify full` reads the
/// projection again and repairs it before the swap.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_full_gate_sees_a_change_that_did_not_bump_updated_at() {
    let f = aliased(60).await;
    let silent = |id: i64| {
        let f = &f;
        async move {
            f.db.execute(&format!("UPDATE orders SET customer = 'silent' WHERE id = {id}"))
                .await;
        }
    };
    let fast = reindex_held(&f, &["--yes", "--quiet", "--format", "json"], "AFTER_LOAD", silent(9)).await;
    assert_eq!(fast.code, 0, "{}", fast.stderr);
    let (code, report, _) = f.check_json(&[]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["summary"]["mismatched"], 1, "{report}");
    assert_eq!(report["drift"][0]["key"], 9, "{report}");

    let full = reindex_held(
        &f,
        &["--yes", "--quiet", "--format", "json", "--verify", "full"],
        "AFTER_LOAD",
        silent(10),
    )
    .await;
    assert_eq!(full.code, 0, "{}", full.stderr);
    let summary: Value = serde_json::from_str(full.stdout.trim()).unwrap();
    assert_eq!(summary["gate"], "full", "{summary}");
    assert_eq!(
        (summary["found"].as_u64(), summary["failing"].as_u64()),
        (Some(1), Some(0)),
        "{summary}"
    );
    assert_alias_in_sync(&f).await;
}

/// A transaction that wrote before the reindex began and commits during it: its row is not in the
/// load's snapshot and carries an `updated_at` older than the snapshot by more than the margin, yet the
/// catch-up starts at that transaction's start and re-projects it.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_transaction_open_across_the_snapshot_is_caught_up() {
    let f = aliased(50).await;
    let mut long = f.db.connect().await;
    sqlx::query("BEGIN").execute(&mut long).await.unwrap();
    sqlx::query("UPDATE orders SET customer = 'long', updated_at = now() WHERE id = 3")
        .execute(&mut long)
        .await
        .unwrap();
    let args = ["--yes", "--format", "json", "--catch-up-margin", "0s"];
    let run = reindex_held(&f, &args, "AFTER_LOAD", async {
        sqlx::query("COMMIT").execute(&mut long).await.unwrap();
    })
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("a transaction writing since"), "{}", run.stderr);
    assert_alias_in_sync(&f).await;
    let (_, doc) = call(&f, Method::Get, "/orders/_doc/3", None).await;
    assert_eq!(doc["_source"]["customerName"], "long", "{doc}");
}

/// A mapping that refuses every document leaves no key proven by its fingerprint: rather than look
/// 1,200 keys up one batch at a time, each pass checks the new index in full; the gate stays shut.
#[tokio::test(flavor = "multi_thread")]
async fn a_pass_with_most_keys_unproven_checks_in_full() {
    let f = aliased(1200).await;
    let mapping = f.dir.path().join("mapping.json");
    std::fs::write(&mapping, r#"{"properties": {"customerName": {"type": "long"}}}"#).unwrap();
    let args = ["--yes", "--format", "json", "--mapping", mapping.to_str().unwrap()];
    let run = reindex(&f, &args).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let summary: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(summary["result"], "verify_failed", "{summary}");
    assert_eq!(summary["gate"], "full", "{summary}");
    assert_eq!(summary["failing"], 1200, "{summary}");
    assert!(
        run.stderr
            .contains("1200 of 1200 keys not proven by their fingerprint; checking in full"),
        "{}",
        run.stderr
    );
    assert_eq!(behind_alias(&f).await, vec!["orders-v1".to_string()]);
}

/// A hint printed for the user to paste acts where the run did: `--index` (and the other overrides)
/// are carried over, quoted for the shell where needed.
#[tokio::test(flavor = "multi_thread")]
async fn a_pasted_hint_keeps_the_index_override() {
    let f = Fixture::orders("orders_new", "long").await;
    // The config names another alias; the flag is what this run acts on.
    f.config("orders", ORDERS_QUERY, "orderId", FIELDS);
    let refused = reindex(&f, &["--yes", "--index", "orders_new"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("`recon reindex --config recon.toml --index orders_new --adopt`"),
        "{}",
        refused.stderr
    );
    std::fs::copy(f.dir.path().join("recon.toml"), f.dir.path().join("it's recon.toml")).unwrap();
    let quoted = reindex(&f, &["--yes", "--index", "orders_new", "--config", "it's recon.toml"]).await;
    assert_eq!(quoted.code, 2, "{}", quoted.stderr);
    assert!(
        quoted
            .stderr
            .contains(r"`recon reindex --config 'it'\''s recon.toml' --index orders_new --adopt`"),
        "{}",
        quoted.stderr
    );
}

/// `--resume` with nothing unfinished is refused: it must not quietly build and swap a new generation.
#[tokio::test(flavor = "multi_thread")]
async fn resume_with_nothing_unfinished_changes_nothing() {
    let f = aliased(30).await;
    let run = reindex(&f, &["--resume", "--yes"]).await;
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("no unfinished reindex of orders")
            && run.stderr.contains("`recon reindex --config recon.toml --yes`"),
        "says there is nothing to resume and how to build anew: {}",
        run.stderr
    );
    assert_eq!(behind_alias(&f).await, vec!["orders-v1".to_string()]);
    assert_eq!(generations(&f).await.len(), 1, "no generation was created");
}

/// Counts agree with their nouns: `1 document`, `1 check pass`, never `1 documents` or `pass(es)`.
#[tokio::test(flavor = "multi_thread")]
async fn a_summary_of_one_says_one_thing() {
    let f = aliased(1).await;
    let run = reindex(&f, &["--yes"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("loaded 1 document; 1 check pass, 0 keys drifting at the gate"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("recon: loaded 1 document in"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("(s)") && !run.stderr.contains("(es)"),
        "{}",
        run.stderr
    );
}
