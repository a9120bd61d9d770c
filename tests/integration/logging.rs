//! What recon says on stderr, through the binary: levels (`-q`, `-v`, `RECON_LOG`), timestamps when
//! stderr is not a terminal (here it is a pipe), `--log-format json`, retries said at the default level,
//! and connection errors that keep their cause.

use serde_json::Value;

use crate::support::fixture::{drifted, Fixture, ORDERS_QUERY};
use crate::support::{cli_command, run_with_stderr_on_a_terminal, Run};

/// `recon check ARGS` in the fixture's directory with `vars` set, off the async runtime (the emulator
/// serves on it meanwhile).
async fn check(f: &Fixture, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut command = cli_command();
    command.current_dir(f.dir.path()).arg("check").args(args);
    for (k, v) in vars {
        command.env(k, v);
    }
    tokio::task::spawn_blocking(move || Run::from(command.output().expect("recon runs")))
        .await
        .unwrap()
}

fn set_faults(f: &Fixture, spec: &str) {
    f.emulator
        .as_ref()
        .expect("fault tests need the emulator")
        .set_faults(spec.parse().unwrap());
}

fn emulated() -> bool {
    std::env::var_os("RECON_TEST_ES_URL").is_none()
}

/// The line's RFC 3339 timestamp, if it starts with one (`2026-01-31T02:00:00.123Z recon: …`).
fn stamp(line: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let (first, _) = line.split_once(' ')?;
    chrono::DateTime::parse_from_rfc3339(first)
        .ok()
        .filter(|t| t.offset().local_minus_utc() == 0)
}

/// A read model answering 503 to the first three searches, then OK: every retry is said at the default
/// level with its attempt number, and the run goes on to its verdict.
#[tokio::test(flavor = "multi_thread")]
async fn a_storm_of_503s_logs_every_retry_at_the_default_level() {
    if !emulated() {
        return; // faults are the emulator's
    }
    let f = drifted().await;
    set_faults(&f, "unavailable_first=3,only=search");
    let run = check(&f, &["--format", "json"], &[]).await;
    assert_eq!(run.code, 1, "the drift is found all the same: {}", run.stderr);
    let retries: Vec<&str> = run.stderr.lines().filter(|l| l.contains("retrying in")).collect();
    assert_eq!(retries.len(), 3, "{}", run.stderr);
    for (n, line) in retries.iter().enumerate() {
        assert!(
            line.contains("_search: 503 Service Unavailable; ")
                && line.contains(&format!("attempt {} of 9 failed, retrying in ", n + 1))
                && line.ends_with(" s"),
            "{line}"
        );
        assert!(
            line.contains(" recon: warning: POST /"),
            "a warning, with its method: {line}"
        );
        assert!(
            stamp(line).is_some(),
            "a timestamp first when stderr is not a terminal: {line}"
        );
    }

    // -q: warnings and errors only; the retries are warnings, the progress lines are not.
    set_faults(&f, "unavailable_first=3,only=search");
    let quiet = check(&f, &["--format", "json", "--quiet", "--parallel", "2"], &[]).await;
    assert_eq!(quiet.code, 1, "{}", quiet.stderr);
    assert_eq!(quiet.stderr.lines().count(), 3, "{}", quiet.stderr);
    assert!(
        quiet
            .stderr
            .lines()
            .all(|l| l.contains(" recon: warning: ") && l.contains("retrying in")),
        "{}",
        quiet.stderr
    );
}

/// Not on a terminal, every line starts with a UTC timestamp; `--log-format plain` leaves it out;
/// `-q` hides the info lines (warnings and errors only); `-v` and `RECON_LOG=debug` show debug lines, which are not there by default.
#[tokio::test(flavor = "multi_thread")]
async fn levels_and_timestamps() {
    let f = drifted().await;
    let info = "2 key ranges to scan";
    let debug = "recon: debug: postgres.url = ";

    let run = check(&f, &["--format", "json", "--parallel", "2"], &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("recon: {info}")), "{}", run.stderr);
    assert!(!run.stderr.contains(debug), "no debug lines by default: {}", run.stderr);
    assert!(
        run.stderr.lines().all(|l| stamp(l).is_some()),
        "every line stamped: {}",
        run.stderr
    );

    let plain = check(
        &f,
        &["--format", "json", "--parallel", "2", "--log-format", "plain"],
        &[],
    )
    .await;
    assert!(
        plain.stderr.lines().all(|l| l.starts_with("recon: ")),
        "no timestamps: {}",
        plain.stderr
    );
    let from_env = check(
        &f,
        &["--format", "json", "--parallel", "2"],
        &[("RECON_LOG_FORMAT", "plain")],
    )
    .await;
    assert!(
        from_env.stderr.starts_with(&format!("recon: {info}")),
        "{}",
        from_env.stderr
    );

    let quiet = check(&f, &["--format", "json", "--parallel", "2", "-q"], &[]).await;
    assert_eq!(quiet.code, 1);
    assert!(!quiet.stderr.contains(info), "{}", quiet.stderr);

    for (args, vars) in [
        (&["--format", "json", "-v"][..], &[][..]),
        (&["--format", "json"], &[("RECON_LOG", "debug")]),
        (&["--format", "json"], &[("RUST_LOG", "recon::commands=debug")]),
    ] {
        let run = check(&f, args, vars).await;
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains(debug), "{args:?} {vars:?}: {}", run.stderr);
        assert!(run.stderr.contains("recon: debug: read model: "), "{}", run.stderr);
    }
    // A filter that names only another module leaves these lines out.
    let other = check(&f, &["--format", "json"], &[("RECON_LOG", "recon::source=debug")]).await;
    assert!(!other.stderr.contains(debug), "{}", other.stderr);

    let bad = check(&f, &["--format", "json"], &[("RECON_LOG", "recon=loud")]).await;
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .contains("recon: error: RECON_LOG=\"recon=loud\" is not a log filter"),
        "{}",
        bad.stderr
    );
}

/// A scan is one long statement: no warning from sqlx about it at the default level (sqlx's own default
/// warns about every statement over a second).
#[tokio::test(flavor = "multi_thread")]
async fn a_long_scan_is_no_warning() {
    let f = drifted().await;
    let slow = ORDERS_QUERY.replace("FROM orders", "FROM orders CROSS JOIN pg_sleep(1.2)");
    f.config(
        "orders",
        &slow,
        "orderId",
        "[compare.fields]\nproducts = { as = \"set\", key = \"sku\" }\norderDate = { as = \"instant\" }",
    );
    let run = check(&f, &["--format", "json"], &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

/// `--log-format json`: every line on stderr is one JSON object with timestamp, level, target and
/// message, and a retry's attempt numbers as fields of their own.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_parse_line_by_line() {
    let f = drifted().await;
    if emulated() {
        set_faults(&f, "unavailable_first=1,only=search");
    }
    let run = check(
        &f,
        &["--format", "json", "--log-format", "json", "-v", "--parallel", "2"],
        &[],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{}", run.stderr)))
        .collect();
    assert!(lines.len() >= 3, "{}", run.stderr);
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} in {line}");
        }
        assert!(
            stamp(&format!("{} x", line["timestamp"].as_str().unwrap())).is_some(),
            "{line}"
        );
        assert!(
            !line["message"].as_str().unwrap().starts_with("recon: "),
            "the message alone: {line}"
        );
    }
    let levels: Vec<&str> = lines.iter().map(|l| l["level"].as_str().unwrap()).collect();
    assert!(levels.contains(&"debug") && levels.contains(&"info"), "{levels:?}");
    assert!(
        lines
            .iter()
            .any(|l| l["target"].as_str().unwrap().starts_with("recon::") && l["message"] == "2 key ranges to scan"),
        "{}",
        run.stderr
    );
    if emulated() {
        let retry = lines
            .iter()
            .find(|l| l["level"] == "warn")
            .unwrap_or_else(|| panic!("a retry: {}", run.stderr));
        assert_eq!(retry["attempt"], 1, "{retry}");
        assert_eq!(retry["attempts"], 9, "{retry}");
        assert!(retry["retry_in_ms"].is_u64(), "{retry}");
        assert!(retry["request"].as_str().unwrap().ends_with("_search"), "{retry}");
    }

    // The final error too, for a log pipeline that alerts on it.
    let run = check(&f, &["--log-format", "json", "--config", "absent.toml"], &[]).await;
    assert_eq!(run.code, 2);
    let error: Value = serde_json::from_str(run.stderr.trim()).expect("one JSON line");
    assert_eq!(error["level"], "error");
    assert!(error["message"].as_str().unwrap().contains("absent.toml"), "{error}");
}

/// Nothing listens on the write model's port: the error says "connection refused" at once (not a pool
/// timeout after waiting for one), hints at what to check, and never shows the password.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_refused_says_so() {
    let f = drifted().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("postgres://app:hunter2@{closed}/shop");
    let run = check(&f, &["--pg-url", &url], &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "recon: error: cannot reach PostgreSQL at postgres://app:***@{closed}/shop: connection refused (is the \
             server running, and are host and port in postgres.url right?)"
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("timed out"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

/// Nothing listens on the read model's port: "connection refused" with its hint, after the retries
/// said as they happen. A port that closes the connection at once suggests https://; https:// against
/// a plain-HTTP port says that the server does not speak TLS.
#[tokio::test(flavor = "multi_thread")]
async fn elasticsearch_refused_and_tls_mismatch_say_so() {
    let f = drifted().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let run = check(&f, &["--es-url", &format!("http://{closed}")], &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "recon: error: cannot reach Elasticsearch at http://{closed}/: connection refused (is Elasticsearch \
             running, and are host and port in elasticsearch.url right?)"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("recon: warning: GET /: connection refused") && run.stderr.contains("attempt 1 of 3"),
        "the retries are said: {}",
        run.stderr
    );

    // A port that closes every connection without a word, as a TLS-only node does with plain HTTP.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in silent.incoming().take(3) {
            drop(stream);
        }
    });
    let run = check(&f, &["--es-url", &format!("http://{port}")], &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the connection broke off before the whole answer came")
            && run
                .stderr
                .contains("if the server expects TLS, use https:// in elasticsearch.url"),
        "{}",
        run.stderr
    );

    if !emulated() {
        return;
    }
    let https = f.es_url.replacen("http://", "https://", 1);
    let run = check(&f, &["--es-url", &https], &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("does not speak TLS on this port")
            && run.stderr.contains("use http:// in elasticsearch.url"),
        "{}",
        run.stderr
    );
}

/// On a terminal the lines read as they always have, without a timestamp, and a retry said while the
/// progress bars are drawn comes out whole, on a line of its own.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_lines_have_no_timestamp_and_come_out_whole_between_the_bars() {
    if !emulated() {
        return;
    }
    let f = drifted().await;
    set_faults(&f, "unavailable_first=2,only=search");
    let mut command = cli_command();
    command
        .current_dir(f.dir.path())
        .args(["check", "--format", "json", "-v"])
        .env("TERM", "xterm-256color");
    let run = tokio::task::spawn_blocking(move || run_with_stderr_on_a_terminal(command))
        .await
        .unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    // Each retry line, from its `recon: ` to the end of its line, uninterrupted by a bar's redraw.
    let retries: Vec<&str> = run
        .stderr
        .match_indices("recon: warning: POST /")
        .map(|(at, _)| run.stderr[at..].split(['\r', '\n']).next().unwrap())
        .collect();
    assert_eq!(retries.len(), 2, "{:?}", run.stderr);
    for line in retries {
        assert!(
            line.contains("503 Service Unavailable; attempt ") && line.ends_with(" s"),
            "a whole line: {line:?} in {:?}",
            run.stderr
        );
    }
    assert!(
        !run.stderr.contains("Z recon: "),
        "no timestamps on a terminal: {:?}",
        run.stderr
    );
    assert!(run.stderr.contains("recon: debug: postgres.url = "), "{:?}", run.stderr);
}
