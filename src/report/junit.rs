//! `junit`: JUnit XML for CI dashboards. One test suite "recon check"; one test case per listed
//! drifted key (`<kind> <key>`), failing with the diffs, or skipped when the drift is pending or
//! tolerated by `--allow` (so the file's verdict is the exit code's); a
//! passing "in sync" case when no key fails; an "unlisted drift" case when `--limit` cut the listing,
//! so the dashboard's totals never claim less drift than there is.
//!
//! The suite's counters come before its cases, so listed drift is spooled and written at finish.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};

use super::human::{clip, defuse};
use super::record::{verdict, DriftIn};
use super::spool::Spool;
use super::{Listing, ReportWriter, RunInfo};
use crate::model::{Drift, DriftKind, Key, Summary};

/// Widest value shown in a failure; the json report has the whole value.
const VALUE_WIDTH: usize = 200;

pub(super) struct JunitWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    listing: Listing,
    spool: Option<Spool>,
    listed_failing: u64,
    listed_pending: u64,
}

impl JunitWriter {
    pub(super) fn new(out: Box<dyn Write + Send>, listing: Listing) -> Self {
        JunitWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            listing,
            spool: None,
            listed_failing: 0,
            listed_pending: 0,
        }
    }
}

impl ReportWriter for JunitWriter {
    fn drift(&mut self, drift: &Drift) -> io::Result<()> {
        if !self.listing.admit() {
            return Ok(());
        }
        if drift.kind == DriftKind::Pending {
            self.listed_pending += 1;
        } else {
            self.listed_failing += 1;
        }
        let spool = match &mut self.spool {
            Some(spool) => spool,
            None => self.spool.insert(Spool::new()?),
        };
        spool.push(drift)
    }

    fn finish(self: Box<Self>, summary: &Summary, fields: &BTreeMap<String, u64>, run: &RunInfo) -> io::Result<()> {
        let JunitWriter {
            mut out,
            listing,
            spool,
            listed_failing,
            listed_pending,
        } = *self;
        let unlisted_failing = summary.failing().saturating_sub(listed_failing);
        let unlisted_pending = summary.pending.saturating_sub(listed_pending);
        let unlisted = listing.truncated() && unlisted_failing + unlisted_pending > 0;
        let in_sync_case = summary.failing() == 0;
        // Failing keys within --allow: the run exits 0, so the file must not fail the build either.
        let tolerated = summary.failing() > 0 && run.in_sync(summary);
        let unlisted_fails = unlisted && unlisted_failing > 0;

        let tests = listing.listed + u64::from(unlisted) + u64::from(in_sync_case);
        let (failures, skipped) = match tolerated {
            false => (
                listed_failing + u64::from(unlisted_fails),
                listed_pending + u64::from(unlisted && !unlisted_fails),
            ),
            true => (0, listed_pending + listed_failing + u64::from(unlisted)),
        };
        let time = format!("{:.3}", run.duration.as_secs_f64());
        let timestamp = run.started_at.format("%Y-%m-%dT%H:%M:%S").to_string();

        writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        writeln!(
            out,
            r#"<testsuites name="recon" tests="{tests}" failures="{failures}" errors="0" skipped="{skipped}" time="{time}" timestamp="{timestamp}">"#
        )?;
        writeln!(
            out,
            r#"  <testsuite name="recon check" tests="{tests}" failures="{failures}" errors="0" skipped="{skipped}" time="{time}" timestamp="{timestamp}">"#
        )?;
        writeln!(out, "    <properties>")?;
        let mut properties: Vec<(String, String)> = vec![
            ("verdict".into(), verdict(summary, run).into()),
            ("failing".into(), summary.failing().to_string()),
            ("allow".into(), run.allow.to_string()),
            ("source".into(), run.source.clone()),
            ("target".into(), run.target.clone()),
            ("source_rows".into(), summary.source_rows.to_string()),
            ("target_docs".into(), summary.target_docs.to_string()),
            ("matched".into(), summary.matched.to_string()),
            ("missing".into(), summary.missing.to_string()),
            ("orphaned".into(), summary.orphaned.to_string()),
            ("mismatched".into(), summary.mismatched.to_string()),
            ("duplicate".into(), summary.duplicate.to_string()),
            ("pending".into(), summary.pending.to_string()),
        ];
        if summary.unkeyed > 0 {
            properties.push(("unkeyed".into(), summary.unkeyed.to_string()));
        }
        properties.extend([
            ("listed".into(), listing.listed.to_string()),
            ("truncated".into(), listing.truncated().to_string()),
            ("tool_version".into(), run.tool_version.into()),
        ]);
        properties.extend(
            fields
                .iter()
                .map(|(field, count)| (format!("field.{field}"), count.to_string())),
        );
        for (name, value) in &properties {
            writeln!(
                out,
                r#"      <property name="{}" value="{}"/>"#,
                attr(name),
                attr(value)
            )?;
        }
        writeln!(out, "    </properties>")?;

        if let Some(spool) = spool {
            let mut replay = spool.replay()?;
            while let Some(record) = replay.next_record()? {
                out.write_all(testcase(&record, tolerated.then_some(run.allow)).as_bytes())?;
            }
        }
        if in_sync_case {
            let name = if summary.pending > 0 {
                "in sync (pending drift skipped)"
            } else {
                "in sync"
            };
            writeln!(out, r#"    <testcase name="{name}" classname="recon.check"/>"#)?;
        }
        if unlisted {
            let mut message = format!(
                "{unlisted_failing} failing and {unlisted_pending} pending drifted keys not listed (--limit {})",
                listing.limit.unwrap_or_default()
            );
            if tolerated && unlisted_failing > 0 {
                message = format!("tolerated by --allow {}: {message}", run.allow);
            }
            let verdict = if unlisted_fails && !tolerated {
                "failure"
            } else {
                "skipped"
            };
            writeln!(
                out,
                r#"    <testcase name="unlisted drift" classname="recon.check"><{verdict} message="{}"/></testcase>"#,
                attr(&message)
            )?;
        }
        writeln!(out, "  </testsuite>")?;
        writeln!(out, "</testsuites>")?;
        out.flush()
    }
}

/// One listed drifted key; `tolerated` is the `--allow` that made the run pass despite failing keys.
fn testcase(record: &DriftIn, tolerated: Option<u64>) -> String {
    let key = match Key::from_json(&record.key) {
        Some(key) => key.to_string(),
        None if record.kind == DriftKind::Unkeyed => format!("_id {}", record.ids.join(", ")),
        None => record.key.to_string(),
    };
    let kind = record.kind.as_str();
    let mut case = format!(
        "    <testcase name=\"{}\" classname=\"recon.check.{kind}\">",
        attr(&format!("{kind} {key}"))
    );
    let message = match (record.kind, record.cause) {
        (DriftKind::Missing, _) => "in the write model, not in the read model".to_string(),
        (DriftKind::Orphaned, _) => {
            format!("in the read model only (ids: {})", record.ids.join(", "))
        }
        (DriftKind::Duplicate, _) => format!(
            "{} read-model documents carry the key (ids: {})",
            record.ids.len(),
            record.ids.join(", ")
        ),
        (DriftKind::Mismatched, _) => crate::plural::plural(record.diffs.len(), "field differs", "fields differ"),
        (DriftKind::Unkeyed, _) => format!(
            "in the read model without a usable key (ids: {}): no row can match it",
            record.ids.join(", ")
        ),
        (DriftKind::Pending, cause) => format!(
            "pending: {} within the grace period",
            cause.map_or("drift", DriftKind::as_str)
        ),
    };
    let mut body = String::new();
    for diff in &record.diffs {
        let _ = writeln!(
            body,
            "{}: expected {}, actual {}",
            defuse(&diff.path),
            side(diff.expected.as_ref()),
            side(diff.actual.as_ref())
        );
    }
    let element = if record.kind == DriftKind::Pending || tolerated.is_some() {
        "skipped"
    } else {
        "failure"
    };
    let message = match tolerated {
        Some(allow) if record.kind != DriftKind::Pending => format!("tolerated by --allow {allow}: {message}"),
        _ => message,
    };
    let type_attr = if element == "failure" {
        format!(r#" type="{kind}""#)
    } else {
        String::new()
    };
    if body.is_empty() {
        let _ = write!(case, r#"<{element}{type_attr} message="{}"/>"#, attr(&message));
    } else {
        let _ = write!(
            case,
            r#"<{element}{type_attr} message="{}">{}</{element}>"#,
            attr(&message),
            text(&body)
        );
    }
    case.push_str("</testcase>\n");
    case
}

fn side(value: Option<&serde_json::Value>) -> String {
    match value {
        None => "(absent)".into(),
        Some(value) => clip(&value.to_string(), VALUE_WIDTH),
    }
}

/// Character data: markup escaped, and what XML 1.0 cannot carry at all (most C0 controls,
/// U+FFFE/U+FFFF) shown as a visible escape rather than producing a document parsers reject.
fn text(s: &str) -> String {
    escape(s, false)
}

/// An attribute value: additionally quotes, and tab/newline/CR as references so attribute-value
/// normalization does not turn them into spaces.
fn attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&apos;"),
            '\t' | '\n' if attribute => {
                let _ = write!(out, "&#{};", c as u32);
            }
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if allowed_in_xml(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    out
}

/// XML 1.0 `Char`, minus the line-break and tab characters handled above.
fn allowed_in_xml(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{self, render, render_all};
    use crate::report::{Format, ReportOptions};

    #[test]
    fn junit_snapshot() {
        insta::assert_snapshot!(render_all(Format::Junit));
    }

    #[test]
    fn escaping_keeps_the_document_well_formed() {
        assert_eq!(text("a<b>&c\"'"), "a&lt;b&gt;&amp;c\"'");
        assert_eq!(attr("a<b>&c\"'"), "a&lt;b&gt;&amp;c&quot;&apos;");
        assert_eq!(attr("x\ny\tz\r"), "x&#10;y&#9;z&#13;");
        assert_eq!(text("x\ny\r"), "x\ny&#13;");
        assert_eq!(text("esc\u{1b}nul\u{0}\u{FFFE}"), "esc\\u{1b}nul\\u{0}\\u{fffe}");
        assert_eq!(text("Zoë 注文 😀 \u{85}"), "Zoë 注文 😀 \u{85}");
    }

    #[test]
    fn counts_match_the_cases_written() {
        let xml = render_all(Format::Junit);
        let cases = xml.matches("<testcase ").count();
        let failures = xml.matches("<failure").count();
        let skipped = xml.matches("<skipped").count();
        assert_eq!((cases, failures, skipped), (6, 5, 1));
        assert!(
            xml.contains(r#"<testsuite name="recon check" tests="6" failures="5" errors="0" skipped="1""#),
            "{xml}"
        );
        assert!(xml.contains(r#"name="orphaned 9007199254740993""#), "{xml}");
        // No raw control character anywhere: the hostile key is escaped.
        assert!(!xml.chars().any(|c| c.is_control() && c != '\n'), "{xml}");
    }

    /// `--allow 5` with 5 failing keys exits 0: the file says so too (no failure, the keys skipped with
    /// the reason), so a dashboard does not go red for tolerated drift.
    #[test]
    fn drift_tolerated_by_allow_is_skipped_not_failed() {
        let mut run = fixtures::run();
        run.allow = 5;
        let xml = render(
            ReportOptions::new(Format::Junit),
            &fixtures::drift(),
            &fixtures::summary(),
            &run,
        );
        assert_eq!(
            (xml.matches("<failure").count(), xml.matches("<skipped").count()),
            (0, 6),
            "{xml}"
        );
        assert!(xml.contains(r#"failures="0" errors="0" skipped="6""#), "{xml}");
        assert!(xml.contains("tolerated by --allow 5: "), "{xml}");
        run.allow = 4;
        let xml = render(
            ReportOptions::new(Format::Junit),
            &fixtures::drift(),
            &fixtures::summary(),
            &run,
        );
        assert_eq!(
            xml.matches("<failure").count(),
            5,
            "beyond --allow, every failing key fails: {xml}"
        );
    }

    #[test]
    fn truncated_listing_adds_a_failing_unlisted_case() {
        let mut options = ReportOptions::new(Format::Junit);
        options.limit = Some(2);
        let xml = render(options, &fixtures::drift(), &fixtures::summary(), &fixtures::run());
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert!(
            xml.contains(r#"tests="3" failures="3" errors="0" skipped="0""#),
            "{xml}"
        );
        assert!(
            xml.contains("3 failing and 1 pending drifted keys not listed (--limit 2)"),
            "{xml}"
        );
    }

    #[test]
    fn no_drift_is_one_passing_case() {
        let summary = Summary {
            source_rows: 3,
            target_docs: 3,
            matched: 3,
            ..Summary::default()
        };
        let xml = render(ReportOptions::new(Format::Junit), &[], &summary, &fixtures::run());
        assert!(
            xml.contains(r#"tests="1" failures="0" errors="0" skipped="0""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="in sync" classname="recon.check"/>"#),
            "{xml}"
        );
    }
}
