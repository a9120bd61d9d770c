//! What recon says on stderr, through the binary: levels (`-q`, `-v`, `RECON_LOG`), timestamps when
//! stderr is not a terminal (here it is a pipe), `--log-format json`.

use serde_json::Value;

use crate::support::fixture::{drifted, Fixture};
use crate::support::{cli_command, Run};

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

/// The line's RFC 3339 timestamp, if it starts with one (`2026-01-31T02:00:00.123Z recon: …`).
fn stamp(line: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let (first, _) = line.split_once(' ')?;
    chrono::DateTime::parse_from_rfc3339(first)
        .ok()
        .filter(|t| t.offset().local_minus_utc() == 0)
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

/// `--log-format json`: every line on stderr is one JSON object with timestamp, level, target and
/// message.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_parse_line_by_line() {
    let f = drifted().await;
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
    // The final error too, for a log pipeline that alerts on it.
    let run = check(&f, &["--log-format", "json", "--config", "absent.toml"], &[]).await;
    assert_eq!(run.code, 2);
    let error: Value = serde_json::from_str(run.stderr.trim()).expect("one JSON line");
    assert_eq!(error["level"], "error");
    assert!(error["message"].as_str().unwrap().contains("absent.toml"), "{error}");
}
