//! `recon doctor`: the configuration resolved, then [`crate::engine::preflight`], shown as a checklist
//! (human) or one `recon.doctor/v1` JSON document. Exit 0 when every check passed, 2 otherwise.

use std::io::{IsTerminal, Write};

use anyhow::bail;
use serde_json::json;

use crate::cli::{DoctorArgs, DoctorFormat};
use crate::commands::Outcome;
use crate::source::preflight::{Check, Checklist, Status};

/// The name of the configuration's check.
pub const CONFIG: &str = "config";

pub async fn run(args: DoctorArgs) -> anyhow::Result<Outcome> {
    let mut list = Checklist::default();
    match args.connection.load() {
        Ok(settings) => {
            let mut detail = match &settings.source_file {
                Some(path) => format!("{} resolves", path.display()),
                None => "resolves".to_string(),
            };
            for line in settings.describe_origins() {
                detail.push('\n');
                detail.push_str(&line);
            }
            list.push(Check::ok(CONFIG, detail));
            crate::engine::preflight::preflight(&settings, &mut list).await;
        }
        Err(e) => {
            list.push(Check::fail(
                CONFIG,
                e.to_string(),
                "fix the configuration as the message says (docs/configuration.md; `recon init` writes a \
                 commented one)",
            ));
            list.push(Check::skipped("postgres", "skipped: needs config"));
            list.push(Check::skipped("read_model", "skipped: needs config"));
            list.push(Check::skipped(
                crate::engine::preflight::COMPARE,
                "skipped: needs config",
            ));
        }
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        DoctorFormat::Json => {
            let document = json!({"type": "recon.doctor/v1", "ok": !list.failed(), "checks": list.checks});
            serde_json::to_writer_pretty(&mut out, &document)?;
            writeln!(out)?;
        }
        DoctorFormat::Human => {
            let terminal = std::io::stdout().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
            let text = human(&list.checks, terminal, crate::terminal::colour_stdout());
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;
    let failed: Vec<&str> = list
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} checks failed: {} (each with its fix above)",
            failed.len(),
            list.checks.len(),
            failed.join(", ")
        );
    }
    Ok(Outcome::InSync)
}

/// The checklist for people: ✔/✘/– on a terminal, `ok`/`FAIL`/`skip` elsewhere (a cron mail, a log),
/// each check's detail, and its fix when it failed.
pub fn human(checks: &[Check], glyphs: bool, colour: bool) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for check in checks {
        let (mark, sgr) = match (check.status, glyphs) {
            (Status::Ok, true) => ("✔", "32"),
            (Status::Fail, true) => ("✘", "1;31"),
            (Status::Skipped, true) => ("–", "2"),
            (Status::Ok, false) => ("ok  ", "32"),
            (Status::Fail, false) => ("FAIL", "1;31"),
            (Status::Skipped, false) => ("skip", "2"),
        };
        let mark = if colour {
            format!("\u{1b}[{sgr}m{mark}\u{1b}[0m")
        } else {
            mark.to_string()
        };
        let indent = " ".repeat(if glyphs { 2 } else { 5 } + width + 2);
        let mut lines = check.detail.lines();
        text.push_str(&format!(
            "{mark} {:<width$}  {}\n",
            check.name,
            lines.next().unwrap_or_default()
        ));
        for line in lines {
            text.push_str(&format!("{indent}{line}\n"));
        }
        if let Some(fix) = &check.fix {
            text.push_str(&format!("{indent}fix: {fix}\n"));
        }
    }
    let count = |status| checks.iter().filter(|c| c.status == status).count();
    text.push_str(&format!(
        "\n{} checks: {} ok, {} failed, {} skipped\n",
        checks.len(),
        count(Status::Ok),
        count(Status::Fail),
        count(Status::Skipped)
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checklist_reads_plainly_off_a_terminal_and_with_glyphs_on_one() {
        let checks = vec![
            Check::ok(
                "config",
                "recon.toml resolves\npostgres.url = postgres://app:***@db/shop (from config file)",
            ),
            Check::fail("postgres.login", "password authentication failed", "check the password"),
            Check::skipped("postgres.query", "skipped: needs postgres.login"),
        ];
        let plain = human(&checks, false, false);
        assert_eq!(
            plain,
            "ok   config          recon.toml resolves\n\
             \x20                    postgres.url = postgres://app:***@db/shop (from config file)\n\
             FAIL postgres.login  password authentication failed\n\
             \x20                    fix: check the password\n\
             skip postgres.query  skipped: needs postgres.login\n\
             \n3 checks: 1 ok, 1 failed, 1 skipped\n"
        );
        let glyphs = human(&checks, true, false);
        assert!(
            glyphs.starts_with("✔ config          recon.toml resolves\n"),
            "{glyphs}"
        );
        assert!(glyphs.contains("✘ postgres.login  password"), "{glyphs}");
        assert!(!glyphs.contains('\u{1b}'));
        assert!(human(&checks, true, true).contains("\u{1b}[1;31m✘\u{1b}[0m"));
    }
}
