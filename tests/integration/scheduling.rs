//! What docs/scheduling/ ships for cron, systemd and Kubernetes: the nightly wrapper run for real, the
//! systemd units verified by systemd-analyze where it is installed, and every recon command line in the
//! scheduling files and the runbooks parsed by recon's own CLI, so a renamed flag cannot rot there.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;

use crate::support::fixture::drifted;

fn scheduling_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scheduling")
}

/// The wrapper a one-line crontab entry calls: one run, the dated report and the metrics from it,
/// recon's exit code passed through, and a run that cannot start said so on stderr.
#[tokio::test(flavor = "multi_thread")]
async fn nightly_wrapper_writes_the_report_and_the_metrics_of_one_run() {
    let f = drifted().await;
    let reports = f.dir.path().join("reports");
    let textfile = f.dir.path().join("textfile");
    let config = f.dir.path().join("recon.toml");
    let wrapper = |config: PathBuf| {
        let (reports, textfile) = (reports.clone(), textfile.clone());
        tokio::task::spawn_blocking(move || {
            Command::new("sh")
                .arg(scheduling_dir().join("recon-nightly"))
                .arg(config)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("RECON", env!("CARGO_BIN_EXE_recon"))
                .env("RECON_REPORT_DIR", reports)
                .env("RECON_TEXTFILE_DIR", textfile)
                // No --recheck wait in a test: the drift is real.
                .env("RECON_CHECK_FLAGS", "")
                .output()
                .unwrap()
        })
    };

    let out = wrapper(config.clone()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "drift is exit 1: {stderr}");
    let files: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one dated report and no checkpoint left behind: {files:?}"
    );
    let name = &files[0];
    assert!(
        name.starts_with("recon-") && name.ends_with(".json") && name.len() == "recon-2026-12-06.json".len(),
        "{name}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join(name)).unwrap()).unwrap();
    assert_eq!(report["failing"], 5);
    let metrics = std::fs::read_to_string(textfile.join("recon-recon.prom")).unwrap();
    assert!(
        metrics.contains("recon_check_failing_keys{check=\"orders\"} 5\n"),
        "{metrics}"
    );
    assert!(!stderr.contains("failed to run"), "{stderr}");

    let out = wrapper(f.dir.path().join("absent.toml")).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("recon: error:"),
        "recon's own error comes first: {stderr}"
    );
    assert!(
        stderr.contains("recon-nightly: recon check of") && stderr.contains("failed to run (exit 2)"),
        "{stderr}"
    );
}

/// The systemd units load as systemd reads them (with the wrapper at a real path).
#[test]
fn systemd_units_verify() {
    let Some(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the units were not verified");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("recon-nightly");
    std::fs::copy(scheduling_dir().join("recon-nightly"), &wrapper).unwrap();
    for (from, to) in [
        ("recon-check@.service", "recon-check@orders.service"),
        ("recon-check@.timer", "recon-check@orders.timer"),
    ] {
        let text = std::fs::read_to_string(scheduling_dir().join(from)).unwrap();
        assert!(from.ends_with(".timer") || text.contains("ExecStart=/usr/local/bin/recon-nightly "));
        let text = text.replace("/usr/local/bin/recon-nightly", wrapper.to_str().unwrap());
        std::fs::write(dir.path().join(to), text).unwrap();
    }
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(dir.path().join("recon-check@orders.timer"))
        .arg(dir.path().join("recon-check@orders.service"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `recon …` command line in the scheduling files and the runbooks is one recon accepts.
#[test]
fn documented_command_lines_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("docs/scheduling/kubernetes/cronjob.yaml"),
        root.join("docs/scheduling/kubernetes/sharded-cronjob.yaml"),
        root.join("docs/scaling.md"),
        root.join("docs/monitoring.md"),
    ];
    for entry in std::fs::read_dir(root.join("docs/runbooks")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, command) in command_lines(&text, file.extension().is_some_and(|e| e == "md")) {
            let words = shlex::split(&command).unwrap_or_else(|| panic!("{}:{line}: {command}", file.display()));
            checked += 1;
            if let Err(e) = recon::cli::Cli::try_parse_from(&words) {
                failures.push(format!("{}:{line}: {command}\n{}", file.display(), e.render()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 20,
        "only {checked} command lines found: is the extraction broken?"
    );
}

/// The `recon …` invocations in `text` (inside code blocks for Markdown), with their line numbers:
/// continuation lines joined, cut at the first shell operator or comment, shell variables replaced by
/// placeholders a flag accepts.
fn command_lines(text: &str, markdown: bool) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_code = !markdown;
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        if markdown && raw.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code || raw.trim_start().starts_with('#') {
            continue;
        }
        let (start, mut line) = match pending.take() {
            Some((start, head)) => (start, format!("{head} {}", raw.trim())),
            None => (n + 1, raw.to_string()),
        };
        if let Some(head) = line.strip_suffix('\\') {
            pending = Some((start, head.to_string()));
            continue;
        }
        line = placeholders(strip_comment(&line));
        let mut rest = line.as_str();
        while let Some(at) = find_invocation(rest) {
            let command = cut_at_operator(&rest[at..]);
            out.push((start, command.trim().to_string()));
            rest = &rest[at + command.len().max(1)..];
        }
    }
    out
}

/// The line without its shell comment (a `#` after a space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

/// Where `recon <subcommand>` starts: `recon` as a word of its own (not a path or a file name).
fn find_invocation(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find("recon ") {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let next = text[at + 6..].split_whitespace().next().unwrap_or("");
        let subcommand = [
            "check",
            "repair",
            "undo",
            "reindex",
            "report",
            "demo",
            "completions",
            "man",
        ]
        .contains(&next);
        if before.is_none_or(|c| c.is_whitespace() || c == '(' || c == '`') && subcommand {
            return Some(at);
        }
        from = at + 6;
    }
    None
}

/// The command up to the first unquoted `;`, `|`, `&`, `>`, `<`, `#` or closing backtick.
fn cut_at_operator(text: &str) -> &str {
    let (mut single, mut double) = (false, false);
    for (i, c) in text.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            ';' | '|' | '&' | '>' | '<' | '#' | '`' | ')' if !single && !double => return &text[..i],
            _ => {}
        }
    }
    text
}

/// `$((…))`, `$(…)`, `${VAR}`, `${{ expr }}` and `$VAR` replaced by a value every flag accepts where the docs use them
/// (a shard number, a word).
fn placeholders(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('(') => {
                let mut depth = 0;
                for c in chars.by_ref() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                out.push('1');
            }
            Some('{') => {
                chars.next();
                // GitHub Actions' `${{ matrix.shard }}` stands for a number in the docs' examples.
                let actions = chars.peek() == Some(&'{');
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
                if actions {
                    chars.next();
                }
                out.push(if actions { '1' } else { 'x' });
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let mut name = String::new();
                while let Some(c) = chars.peek().filter(|c| c.is_ascii_alphanumeric() || **c == '_') {
                    name.push(*c);
                    chars.next();
                }
                out.push_str(if name == "shard" { "1" } else { "x" });
            }
            _ => out.push('$'),
        }
    }
    out
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
