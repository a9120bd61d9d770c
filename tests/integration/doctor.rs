//! `recon doctor` and `recon init` through the binary, against real PostgreSQL, the emulator and a
//! throwaway Redis: a healthy setup passes; each broken precondition fails its own check, names it,
//! says what to fix, and skips what depends on it.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::cli_command as recon;
use crate::support::fixture::{order_doc, seed_orders, Fixture, ORDERS_QUERY};
use crate::support::redis::TestRedis;
use crate::support::Run;

/// Runs `recon <args>` in `dir`, off the async runtime (the emulator serves on it meanwhile).
async fn run_in(dir: &Path, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || Run::from(recon().current_dir(dir).args(&args).output().expect("recon runs")))
        .await
        .unwrap()
}

/// `recon doctor --format json` with the fixture's recon.toml: exit code, the document, stderr.
async fn doctor(f: &Fixture) -> (i32, Value, String) {
    let run = run_in(f.dir.path(), &["doctor", "--format", "json"]).await;
    let document: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    assert_eq!(document["type"], "recon.doctor/v1", "{document}");
    (run.code, document, run.stderr)
}

fn check<'a>(document: &'a Value, name: &str) -> &'a Value {
    document["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {document:#}"))
}

fn status<'a>(document: &'a Value, name: &str) -> &'a str {
    check(document, name)["status"].as_str().unwrap()
}

/// Asserts the one failed check is `name`, with a fix, that the checks named in `skipped` were skipped,
/// and that stderr names the failure.
fn assert_fails_at(code: i32, document: &Value, stderr: &str, name: &str, skipped: &[&str]) {
    assert_eq!(code, 2, "{document:#}\n{stderr}");
    let failed: Vec<&str> = document["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec![name], "{document:#}");
    let fix = check(document, name)["fix"].as_str().unwrap_or_default();
    assert!(!fix.is_empty(), "no fix for {name}: {document:#}");
    for s in skipped {
        assert_eq!(status(document, s), "skipped", "{s}: {document:#}");
        assert!(
            check(document, s)["detail"]
                .as_str()
                .unwrap()
                .starts_with("skipped: needs "),
            "{document:#}"
        );
    }
    assert_eq!(document["ok"], json!(false));
    assert!(
        stderr.contains("recon: error: 1 of ") && stderr.contains(name),
        "{stderr}"
    );
}

/// The usual orders, indexed as they are.
async fn healthy() -> Fixture {
    let f = Fixture::orders("orders", "long").await;
    seed_orders(&f).await;
    f.index_docs(
        "orders",
        &[order_doc(1, "Ada", "100", "2024-03-01T10:00:00Z", json!([]))],
    )
    .await;
    f.config(
        "orders",
        ORDERS_QUERY,
        "orderId",
        "[compare.fields]\norderDate = { as = \"instant\" }\ntotalPrice = { as = \"number\" }",
    );
    f
}

#[tokio::test]
async fn a_healthy_setup_passes_every_check() {
    let f = healthy().await;
    let (code, document, stderr) = doctor(&f).await;
    assert_eq!(code, 0, "{document:#}\n{stderr}");
    assert_eq!(document["ok"], json!(true));
    let names: Vec<&str> = document["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["status"], "ok", "{c}");
            assert_eq!(c["fix"], Value::Null, "{c}");
            c["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "config",
            "postgres.reachable",
            "postgres.login",
            "postgres.query",
            "postgres.key",
            "postgres.key_unique",
            "postgres.snapshot",
            "postgres.estimate",
            "read_model.reachable",
            "read_model.authenticated",
            "read_model.version",
            "read_model.index",
            "read_model.key_mapping",
            "read_model.pit",
            "read_model.write_privilege",
            "compare.fields",
        ]
    );
    let config = check(&document, "config")["detail"].as_str().unwrap();
    assert!(
        config.contains("postgres.url = ") && config.contains("(from config file)"),
        "{config}"
    );
    assert!(
        check(&document, "read_model.version")["detail"]
            .as_str()
            .unwrap()
            .starts_with("Elasticsearch 8."),
        "{document:#}"
    );
    assert_eq!(
        check(&document, "read_model.write_privilege")["detail"],
        "security disabled: writes allowed"
    );
    assert!(check(&document, "read_model.index")["detail"]
        .as_str()
        .unwrap()
        .contains("1 documents"));

    // The same checks for people, readable in a cron mail (no terminal: ok/FAIL, no colour).
    let run = run_in(f.dir.path(), &["doctor"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("ok   config "), "{}", run.stdout);
    assert!(run.stdout.contains("\nok   read_model.pit "), "{}", run.stdout);
    assert!(
        run.stdout.ends_with("\n16 checks: 16 ok, 0 failed, 0 skipped\n"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains('\u{1b}'));

    // Nothing was written: the index holds what it held.
    let count = run_in(f.dir.path(), &["check", "--format", "json", "--quiet"]).await;
    let report: Value = serde_json::from_str(&count.stdout).unwrap();
    assert_eq!(report["summary"]["target_docs"], json!(1), "{report}");
}

#[tokio::test]
async fn the_checklist_uses_glyphs_on_a_terminal() {
    let f = healthy().await;
    let dir = f.dir.path().to_path_buf();
    let run = tokio::task::spawn_blocking(move || {
        let mut command = recon();
        command.current_dir(dir).arg("doctor");
        crate::support::run_on_a_terminal(command)
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("✔ config "), "{}", run.stdout);
    assert!(!run.stdout.contains('\u{1b}'), "NO_COLOR is set: {}", run.stdout);
}

#[tokio::test]
async fn a_configuration_that_does_not_resolve_fails_first() {
    let f = healthy().await;
    let run = run_in(f.dir.path(), &["doctor", "--format", "json", "--config", "nope.toml"]).await;
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_fails_at(
        run.code,
        &document,
        &run.stderr,
        "config",
        &["postgres", "read_model", "compare.fields"],
    );
    assert!(check(&document, "config")["detail"]
        .as_str()
        .unwrap()
        .contains("nope.toml does not exist"));
}

#[tokio::test]
async fn a_wrong_password_fails_the_login_and_is_never_shown() {
    let f = healthy().await;
    let role = format!("{}_doctor", f.db.name);
    let group = recon_testkit::pgcluster::PASSWORD_GROUP;
    f.db.execute(&format!(
        "DO $$ BEGIN CREATE ROLE {group}; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
         CREATE ROLE {role} LOGIN PASSWORD 'right-password' IN ROLE {group};"
    ))
    .await;
    if !crate::support::pg::on_throwaway_cluster() {
        eprintln!("RECON_TEST_DATABASE_URL's server may trust every login; wrong-password case not checked");
        return;
    }
    let url = f.db.url_as(&role, "wrong-password");
    let run = run_in(f.dir.path(), &["doctor", "--format", "json", "--pg-url", &url]).await;
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_fails_at(
        run.code,
        &document,
        &run.stderr,
        "postgres.login",
        &[
            "postgres.query",
            "postgres.key",
            "postgres.key_unique",
            "postgres.snapshot",
            "postgres.estimate",
        ],
    );
    assert_eq!(status(&document, "postgres.reachable"), "ok");
    assert!(check(&document, "postgres.login")["fix"]
        .as_str()
        .unwrap()
        .contains("user and password"));
    assert!(!run.stdout.contains("wrong-password") && !run.stderr.contains("wrong-password"));
    let config = check(&document, "config")["detail"].as_str().unwrap();
    assert!(
        config.contains("(from flag --pg-url)") && config.contains(":***@"),
        "{config}"
    );
    // The read model is still checked: it does not depend on PostgreSQL.
    assert_eq!(status(&document, "read_model.pit"), "ok");
    assert_eq!(status(&document, "compare.fields"), "skipped");
}

#[tokio::test]
async fn an_unreachable_postgres_fails_the_first_check() {
    let f = healthy().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://recon@127.0.0.1:{port}/shop");
    let run = run_in(f.dir.path(), &["doctor", "--format", "json", "--pg-url", &url]).await;
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_fails_at(
        run.code,
        &document,
        &run.stderr,
        "postgres.reachable",
        &["postgres.login", "postgres.query", "postgres.estimate"],
    );
    assert!(check(&document, "postgres.reachable")["fix"]
        .as_str()
        .unwrap()
        .contains("host and port"));
    // The connection's own error, at once: not a pool's timeout after ten seconds.
    let detail = check(&document, "postgres.reachable")["detail"].as_str().unwrap();
    assert!(detail.to_lowercase().contains("connection refused"), "{detail}");
}

#[tokio::test]
async fn a_query_that_does_not_plan_fails_the_query_check() {
    let f = healthy().await;
    f.config("orders", "SELECT id AS \"orderId\" FROM no_such_table", "orderId", "");
    let (code, document, stderr) = doctor(&f).await;
    assert_fails_at(
        code,
        &document,
        &stderr,
        "postgres.query",
        &["postgres.key", "postgres.key_unique"],
    );
    let detail = check(&document, "postgres.query")["detail"].as_str().unwrap();
    assert!(
        detail.contains("no_such_table") && detail.contains("does not exist"),
        "{detail}"
    );
    assert_eq!(status(&document, "compare.fields"), "skipped");
    // Without the write model's key kind the mapping is still read, not compared.
    assert_eq!(status(&document, "read_model.key_mapping"), "ok");
}

#[tokio::test]
async fn a_key_that_repeats_in_the_sample_fails() {
    let f = healthy().await;
    let query =
        "SELECT o.id AS \"orderId\", o.customer AS \"customerName\" FROM orders o CROSS JOIN generate_series(1, 2)";
    f.config("orders", query, "orderId", "");
    let (code, document, stderr) = doctor(&f).await;
    assert_fails_at(code, &document, &stderr, "postgres.key_unique", &[]);
    let detail = check(&document, "postgres.key_unique")["detail"].as_str().unwrap();
    assert!(
        detail.contains("is not unique") && detail.contains("(2 rows)"),
        "{detail}"
    );
    assert!(check(&document, "postgres.key_unique")["fix"]
        .as_str()
        .unwrap()
        .contains("json_agg"));
}

#[tokio::test]
async fn a_missing_index_fails_and_skips_what_needs_it() {
    let f = healthy().await;
    let run = run_in(
        f.dir.path(),
        &["doctor", "--format", "json", "--index", "no-such-index"],
    )
    .await;
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_fails_at(
        run.code,
        &document,
        &run.stderr,
        "read_model.index",
        &["read_model.key_mapping", "read_model.pit", "read_model.write_privilege"],
    );
    assert!(check(&document, "read_model.index")["detail"]
        .as_str()
        .unwrap()
        .contains("[no-such-index]"));
}

#[tokio::test]
async fn a_key_mapping_that_sorts_differently_fails() {
    let f = Fixture::orders("orders", "keyword").await;
    seed_orders(&f).await;
    let (code, document, stderr) = doctor(&f).await;
    assert_fails_at(
        code,
        &document,
        &stderr,
        "read_model.key_mapping",
        &["read_model.pit", "read_model.write_privilege"],
    );
    let detail = check(&document, "read_model.key_mapping")["detail"].as_str().unwrap();
    assert!(
        detail.contains("mapped as keyword") && detail.contains("an integer key"),
        "{detail}"
    );
    assert!(check(&document, "read_model.key_mapping")["fix"]
        .as_str()
        .unwrap()
        .contains("as long"));
}

#[tokio::test]
async fn a_point_in_time_that_cannot_open_fails() {
    let f = healthy().await;
    let Some(emulator) = &f.emulator else {
        eprintln!("RECON_TEST_ES_URL is a real cluster: PIT refusal not injected");
        return;
    };
    emulator.set_faults("unavailable_every=1,only=pit".parse().unwrap());
    let (code, document, stderr) = doctor(&f).await;
    assert_fails_at(code, &document, &stderr, "read_model.pit", &[]);
    assert_eq!(status(&document, "read_model.write_privilege"), "ok");
}

#[tokio::test]
async fn a_compare_rule_naming_no_field_fails() {
    let f = healthy().await;
    f.config(
        "orders",
        ORDERS_QUERY,
        "orderId",
        "[compare.fields]\ntotalPrize = { as = \"number\" }",
    );
    let (code, document, stderr) = doctor(&f).await;
    assert_fails_at(code, &document, &stderr, "compare.fields", &[]);
    let detail = check(&document, "compare.fields")["detail"].as_str().unwrap();
    assert!(
        detail.contains("totalPrize") && detail.contains("totalPrice"),
        "{detail}"
    );
}

/// A Redis read model: PostgreSQL as usual, one JSON value per order.
async fn redis_setup(f: &Fixture, redis: &TestRedis, user: Option<&str>) -> PathBuf {
    let url = match user {
        Some(user) => redis.url.replace("redis://", &format!("redis://{user}:pw@")),
        None => redis.url.clone(),
    };
    let path = f.dir.path().join("recon.toml");
    std::fs::write(
        &path,
        format!(
            "[postgres]\nurl = \"{}\"\nquery = '''{ORDERS_QUERY}'''\nkey = \"orderId\"\n\n\
             [redis]\nurl = \"{url}\"\nkey_pattern = \"{}order:{{}}\"\n\n[compare]\nignore = [\"updatedAt\"]\n",
            f.db.url, redis.prefix
        ),
    )
    .unwrap();
    redis
        .run(&["SET", &format!("{}order:1", redis.prefix), r#"{"orderId": 1}"#])
        .await;
    path
}

#[tokio::test]
async fn redis_checks_pass_and_a_user_without_write_access_fails() {
    let f = Fixture::orders("orders", "long").await;
    seed_orders(&f).await;
    let redis = TestRedis::start().await;
    redis_setup(&f, &redis, None).await;
    let (code, document, stderr) = doctor(&f).await;
    assert_eq!(code, 0, "{document:#}\n{stderr}");
    assert!(check(&document, "read_model.version")["detail"]
        .as_str()
        .unwrap()
        .starts_with("Redis "));
    assert!(check(&document, "read_model.write_privilege")["detail"]
        .as_str()
        .unwrap()
        .contains("may write"));

    // A reader that may ask, but not write.
    let user = format!("reader{}", std::process::id());
    redis
        .run(&[
            "ACL",
            "SETUSER",
            &user,
            "on",
            ">pw",
            "~*",
            "+@read",
            "+@connection",
            "+info",
            "+acl|whoami",
            "+acl|dryrun",
        ])
        .await;
    redis_setup(&f, &redis, Some(&user)).await;
    let (code, document, stderr) = doctor(&f).await;
    assert_fails_at(code, &document, &stderr, "read_model.write_privilege", &[]);
    assert!(!document.to_string().contains(":pw@"), "{document}");
    let fix = check(&document, "read_model.write_privilege")["fix"].as_str().unwrap();
    assert!(fix.contains("ACL SETUSER"), "{fix}");

    // And a wrong password is the login's failure.
    let url = redis.url.replace("redis://", &format!("redis://{user}:wrong@"));
    let run = run_in(f.dir.path(), &["doctor", "--format", "json", "--redis-url", &url]).await;
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_fails_at(
        run.code,
        &document,
        &run.stderr,
        "read_model.authenticated",
        &["read_model.keys"],
    );
}

// ---------------------------------------------------------------------------------------------
// recon init
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn init_writes_the_template_once_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_in(dir.path(), &["init"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("wrote recon.toml"), "{}", run.stderr);
    let written = std::fs::read_to_string(dir.path().join("recon.toml")).unwrap();
    assert_eq!(written, recon::commands::init::TEMPLATE);

    std::fs::write(dir.path().join("recon.toml"), "# mine\n").unwrap();
    let run = run_in(dir.path(), &["init"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        // After the timestamp a log line carries when stderr is not a terminal.
        run.stderr
            .contains("recon: error: recon.toml already exists; recon init never overwrites"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("recon.toml")).unwrap(),
        "# mine\n"
    );
}

const SHOP_TABLE: &str = r#"
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    total numeric(12,2) NOT NULL,
    ordered_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT '2024-01-01T00:00:00Z',
    internal_note text
);
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Zoë');
INSERT INTO orders (id, customer_id, total, ordered_at) VALUES
    (1, 1, 100.00, '2024-03-01T10:00:00Z'),
    (2, 2, 12.50, '2024-03-02T11:30:00Z'),
    (3, 1, 7.00, '2024-03-03T00:00:00Z');"#;

#[tokio::test]
async fn init_derives_a_configuration_check_accepts() {
    let f = Fixture::new(SHOP_TABLE).await;
    f.create_index(
        "orders",
        json!({"id": {"type": "long"}, "customerId": {"type": "long"}, "total": {"type": "scaled_float",
               "scaling_factor": 100}, "orderedAt": {"type": "date"}}),
    )
    .await;
    let doc = |id: i64, customer: i64, total: &str, at: &str| {
        (
            id.to_string(),
            json!({"id": id, "customerId": customer, "total": serde_json::from_str::<Value>(total).unwrap(),
                   "orderedAt": at, "indexedAt": "2026-01-01T00:00:00Z"}),
        )
    };
    f.index_docs(
        "orders",
        &[
            doc(1, 1, "100", "2024-03-01T11:00:00+01:00"),
            doc(2, 2, "12.5", "2024-03-02T11:30:00Z"),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let run = run_in(
        dir.path(),
        &[
            "init",
            "derived.toml",
            "--pg-url",
            &f.db.url,
            "--table",
            "orders",
            "--es-url",
            &f.es_url,
            "--index",
            "orders",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(dir.path().join("derived.toml")).unwrap();
    assert!(text.contains("customer_id AS \"customerId\""), "{text}");
    assert!(text.contains("related to customers"), "{text}");
    assert!(
        text.contains("Left out, as the read model maps no such field: internal_note"),
        "{text}"
    );
    assert!(text.contains("orderedAt = { as = \"instant\" }"), "{text}");
    assert!(text.contains("total = { as = \"number\" }"), "{text}");

    // check accepts it (exit 1: order 3 is missing; the instants and numbers written differently agree).
    let run = run_in(
        dir.path(),
        &["check", "--config", "derived.toml", "--format", "json", "--quiet"],
    )
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["summary"]["missing"], json!(1), "{report}");
    assert_eq!(report["summary"]["mismatched"], json!(0), "{report}");
    // And so does doctor.
    let run = run_in(dir.path(), &["doctor", "--config", "derived.toml"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // Never over an existing file.
    let run = run_in(
        dir.path(),
        &["init", "derived.toml", "--pg-url", &f.db.url, "--table", "orders"],
    )
    .await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("derived.toml already exists"), "{}", run.stderr);

    // A table that is not there is named.
    let run = run_in(
        dir.path(),
        &["init", "other.toml", "--pg-url", &f.db.url, "--table", "nope"],
    )
    .await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no table \"nope\""), "{}", run.stderr);
    assert!(!dir.path().join("other.toml").exists());
}

#[tokio::test]
async fn init_derives_a_redis_configuration() {
    let f = Fixture::new(SHOP_TABLE).await;
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let run = run_in(
        dir.path(),
        &[
            "init",
            "--pg-url",
            &f.db.url,
            "--table",
            "orders",
            "--redis-url",
            &redis.url,
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(dir.path().join("recon.toml")).unwrap();
    assert!(
        text.contains("[redis]") && text.contains("key_pattern = \"orders:{}\""),
        "{text}"
    );
    redis
        .run(&[
            "SET",
            "orders:1",
            r#"{"id": 1, "customer_id": 1, "total": 100, "ordered_at": "2024-03-01T10:00:00Z", "updated_at": "2024-01-01T00:00:00Z", "internal_note": null}"#,
        ])
        .await;
    let run = run_in(dir.path(), &["check", "--format", "json", "--quiet"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["summary"]["missing"], json!(2), "{report}");
}

/// The healthy setup on an emulator with security on, recon logging in as `user`/`password`.
async fn secured(user: &str, password: &str) -> Option<Fixture> {
    let f = healthy().await;
    let Some(emulator) = &f.emulator else {
        eprintln!("RECON_TEST_ES_URL is a real cluster: its users are not the test's");
        return None;
    };
    emulator.set_security(Some(vec![
        recon_es_emulator::User::new("checker", "c-pw", &["read", "view_index_metadata"]),
        recon_es_emulator::User::new("repairer", "r-pw", &["read", "view_index_metadata", "write"]),
    ]));
    let path = f.dir.path().join("recon.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[elasticsearch]\n",
        &format!("[elasticsearch]\nusername = \"{user}\"\npassword = \"{password}\"\n"),
    );
    std::fs::write(&path, text).unwrap();
    Some(f)
}

#[tokio::test]
async fn credentials_the_read_model_refuses_fail_authentication() {
    let Some(f) = secured("checker", "not-the-password").await else {
        return;
    };
    let (code, document, stderr) = doctor(&f).await;
    assert_fails_at(
        code,
        &document,
        &stderr,
        "read_model.authenticated",
        &[
            "read_model.version",
            "read_model.index",
            "read_model.pit",
            "read_model.write_privilege",
        ],
    );
    assert_eq!(status(&document, "read_model.reachable"), "ok");
    assert!(!document.to_string().contains("not-the-password"));
    assert!(check(&document, "config")["detail"]
        .as_str()
        .unwrap()
        .contains("elasticsearch.password = (set) (from config file)"));
}

#[tokio::test]
async fn credentials_without_write_privileges_fail_the_write_check_only() {
    let Some(f) = secured("checker", "c-pw").await else {
        return;
    };
    let (code, document, stderr) = doctor(&f).await;
    assert_fails_at(code, &document, &stderr, "read_model.write_privilege", &[]);
    let detail = check(&document, "read_model.write_privilege")["detail"]
        .as_str()
        .unwrap();
    assert!(
        detail.contains("\"checker\" lacks index, delete on [orders]"),
        "{detail}"
    );
    assert_eq!(status(&document, "read_model.pit"), "ok");

    let path = f.dir.path().join("recon.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"checker\"", "\"repairer\"")
        .replace("c-pw", "r-pw");
    std::fs::write(&path, text).unwrap();
    let (code, document, stderr) = doctor(&f).await;
    assert_eq!(code, 0, "{document:#}\n{stderr}");
    assert!(check(&document, "read_model.write_privilege")["detail"]
        .as_str()
        .unwrap()
        .starts_with("user \"repairer\" may write to [orders]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn on_opensearch_the_pit_is_its_own_and_the_write_privilege_is_not_asked() {
    use elasticsearch::http::Method;
    let f = healthy().await;
    let (os, client) = crate::emulator_api::start_with(recon_es_emulator::EmulatorConfig {
        flavor: recon_es_emulator::Flavor::OpenSearch,
        ..Default::default()
    })
    .await;
    let mapping = json!({"mappings": {"properties": {"orderId": {"type": "long"}, "indexedAt": {"type": "date"}}}});
    crate::emulator_api::call(&client, Method::Put, "/orders", &[], Some(mapping)).await;
    let run = run_in(f.dir.path(), &["doctor", "--format", "json", "--es-url", &os.url()]).await;
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(run.code, 0, "{document:#}\n{}", run.stderr);
    assert!(check(&document, "read_model.version")["detail"]
        .as_str()
        .unwrap()
        .starts_with("OpenSearch 2."));
    assert_eq!(status(&document, "read_model.pit"), "ok");
    assert_eq!(status(&document, "read_model.write_privilege"), "skipped");
    assert!(
        run.stdout.contains("OpenSearch has no _has_privileges"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn init_without_a_read_model_names_fields_as_columns_and_a_named_one_must_answer() {
    let f = Fixture::new(SHOP_TABLE).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    // A read model asked for by URL must answer: nothing is written otherwise.
    let run = run_in(
        dir.path(),
        &["init", "--pg-url", &f.db.url, "--table", "orders", "--es-url", &closed],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("reading the mapping of orders"), "{}", run.stderr);
    assert!(!dir.path().join("recon.toml").exists());
    // None asked for: the fields keep the columns' names, and the file says why.
    let dir_path = dir.path().to_path_buf();
    let url = f.db.url.clone();
    let run = tokio::task::spawn_blocking(move || {
        Run::from(
            recon()
                .current_dir(dir_path)
                .env("no_proxy", "*")
                .args(["init", "--pg-url", &url, "--table", "orders", "--key", "id"])
                .output()
                .unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(dir.path().join("recon.toml")).unwrap();
    assert!(text.contains("could not be read"), "{text}");
    assert!(text.contains("SELECT id,\n       customer_id,"), "{text}");
    assert!(text.contains("ordered_at = { as = \"instant\" }"), "{text}");
}
