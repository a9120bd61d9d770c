//! What monitoring reads: the Prometheus output of a real check, parsed by a Prometheus text parser, and
//! the alert rules shipped in docs/monitoring/, validated by promtool where it is installed.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::fixture::drifted;

/// A check's metrics, read as Prometheus reads them: every series labelled with the check's name (two
/// checks in one textfile directory no longer collide), the counts agreeing with the exit code.
#[tokio::test(flavor = "multi_thread")]
async fn prometheus_output_parses_and_every_series_names_its_check() {
    let f = drifted().await;
    let config = f.dir.path().join("recon.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("name = \"orders-nightly\"\n{text}")).unwrap();
    let (code, stdout, stderr) = f.check_async(&["--quiet", "--format", "prometheus"]).await;
    assert_eq!(code, 1, "{stderr}");
    let scrape = prometheus_parse::Scrape::parse(stdout.lines().map(|l| Ok(l.to_string()))).unwrap();
    assert!(!scrape.samples.is_empty());
    let checks: BTreeSet<&str> = scrape
        .samples
        .iter()
        .map(|s| s.labels.get("check").unwrap_or(""))
        .collect();
    assert_eq!(checks, BTreeSet::from(["orders-nightly"]), "every series: {stdout}");
    let value = |metric: &str| match scrape.samples.iter().find(|s| s.metric == metric).map(|s| &s.value) {
        Some(prometheus_parse::Value::Gauge(v)) => *v,
        other => panic!("{metric}: {other:?}\n{stdout}"),
    };
    assert_eq!(value("recon_check_failing_keys"), 5.0);
    assert_eq!(value("recon_check_in_sync"), 0.0);
    assert_eq!(value("recon_check_allow"), 0.0);
    let info = scrape.samples.iter().find(|s| s.metric == "recon_check_info").unwrap();
    assert_eq!(info.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    let kinds: BTreeSet<&str> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "recon_check_keys")
        .filter_map(|s| s.labels.get("kind"))
        .collect();
    assert!(kinds.contains("missing") && kinds.contains("unkeyed"), "{kinds:?}");

    // Without a name, the check is called after its index.
    std::fs::write(&config, &text).unwrap();
    let (_, stdout, _) = f.check_async(&["--quiet", "--format", "prometheus"]).await;
    assert!(stdout.contains("recon_check_in_sync{check=\"orders\"} 0"), "{stdout}");

    if let Some(promtool) = promtool() {
        let checked = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(stdout.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    }
}

/// promtool from Debian's `prometheus` package, when installed (.ci/run does not install it: it is
/// large, and the rules file changes rarely; the test says when it could not check).
fn promtool() -> Option<&'static str> {
    ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

#[test]
fn the_shipped_alert_rules_are_valid() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/monitoring/alerts.yml");
    let text = std::fs::read_to_string(&rules).unwrap();
    // The rules speak of the metrics recon writes, by their names.
    for metric in [
        "recon_check_in_sync",
        "recon_check_last_run_timestamp_seconds",
        "recon_check_info",
    ] {
        assert!(text.contains(metric), "{metric} is not alerted on");
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rules.with_file_name("dashboard.json")).unwrap()).unwrap();
    assert!(dashboard["panels"].as_array().is_some_and(|p| !p.is_empty()));
    let Some(promtool) = promtool() else {
        eprintln!("promtool is not installed (Debian: apt-get install prometheus); the rules were not validated");
        return;
    };
    let out = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
