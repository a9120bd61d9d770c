//! What users see without any server: help texts, usage errors, completions, configuration errors.

use std::path::Path;
use std::process::Command;

use recon::commands::completions::{file_name, generate, SHELLS};

pub use crate::support::cli_command as recon;

fn output(command: &mut Command) -> (i32, String, String) {
    let out = command.output().expect("recon runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_texts_are_what_users_read() {
    for args in [
        &["--help"][..],
        &["check", "--help"],
        &["explain", "--help"],
        &["demo", "--help"],
        &["completions", "--help"],
    ] {
        let (code, stdout, _) = output(recon().args(args).env("COLUMNS", "100"));
        assert_eq!(code, 0, "{args:?}");
        insta::assert_snapshot!(format!("help_{}", args.join("_").replace("--", "")), stdout);
    }
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let (code, _, stderr) = output(recon().args(["check", "--grace", "soon"]));
    assert_eq!(code, 2);
    insta::assert_snapshot!("usage_bad_duration", stderr);
    let (code, _, stderr) = output(recon().args(["check", "--format", "xml"]));
    assert_eq!(code, 2);
    insta::assert_snapshot!("usage_bad_format", stderr);
}

/// recon with the lines a terminal shows, without the timestamp a pipe (as here) gets in front of each.
fn plain() -> Command {
    let mut command = recon();
    command.env("RECON_LOG_FORMAT", "plain");
    command
}

#[test]
fn configuration_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = output(plain().current_dir(dir.path()).arg("check"));
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        "recon: error: no configuration file: recon.toml does not exist; pass --config FILE (see docs/configuration.md)"
    );

    let config = dir.path().join("recon.toml");
    std::fs::write(
        &config,
        "[postgres]\nurl = \"postgres://x:secret@127.0.0.1:1/db\"\nquery = \"SELECT 1\"\nkey = \"id\"\n\n[elasticsearch]\nindex = \"orders\"\nkeep_alive = \"1m\"\nbatch = 5\n",
    )
    .unwrap();
    let (code, _, stderr) = output(plain().current_dir(dir.path()).arg("check"));
    assert_eq!(code, 2);
    insta::assert_snapshot!("config_unknown_key", stderr);
    assert!(!stderr.contains("secret"));
}

#[test]
fn committed_man_pages_are_fresh() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("RECON_UPDATE_COMPLETIONS").is_some();
    let pages = recon::commands::man::pages();
    assert!(pages.iter().any(|(f, _)| f == "recon-check.1"), "one page per command");
    for (file, fresh) in &pages {
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, fresh).unwrap();
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == *fresh,
            "{} is stale; regenerate with `RECON_UPDATE_COMPLETIONS=1 cargo test committed_man_pages_are_fresh`",
            path.display()
        );
    }
    // The binary prints the same pages.
    let (code, stdout, _) = output(recon().args(["man", "check"]));
    assert_eq!(code, 0);
    assert_eq!(
        stdout.as_bytes(),
        &pages.iter().find(|(f, _)| f == "recon-check.1").unwrap().1[..]
    );
    assert!(stdout.contains(".TH recon-check 1"), "{stdout}");
    let (code, _, stderr) = output(recon().args(["man", "nope"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("recon-check.1"), "names the pages there are: {stderr}");
}

#[test]
fn committed_completions_are_fresh() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    let update = std::env::var_os("RECON_UPDATE_COMPLETIONS").is_some();
    for shell in SHELLS {
        let mut fresh = Vec::new();
        generate(shell, &mut fresh);
        let path = dir.join(file_name(shell));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &fresh).unwrap();
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "{} is stale; regenerate with `RECON_UPDATE_COMPLETIONS=1 cargo test committed_completions_are_fresh`",
            path.display()
        );
        // The binary's own subcommand prints the same script.
        let (code, stdout, _) = output(recon().args(["completions", &shell.to_string()]));
        assert_eq!(code, 0);
        assert_eq!(stdout.as_bytes(), &fresh[..]);
    }
}

#[test]
fn help_and_version_go_to_stdout_and_exit_0() {
    let (code, stdout, stderr) = output(recon().arg("--version"));
    assert_eq!((code, stderr.as_str()), (0, ""));
    // The version names the commit it was built from, when built from a git checkout.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let expected = match head {
        Some(commit) => format!("recon {} ({commit})", env!("CARGO_PKG_VERSION")),
        None => format!("recon {}", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(stdout.trim(), expected);
    let (code, stdout, stderr) = output(recon().args(["reindex", "--help"]));
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert!(stdout.contains("Usage: recon reindex"), "{stdout}");
    // A usage error carries the prefix every other error has (docs/exit-codes.md).
    let (code, stdout, stderr) = output(recon().arg("--bogus"));
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(
        stderr.starts_with("recon: error: unexpected argument '--bogus'"),
        "{stderr}"
    );
}
