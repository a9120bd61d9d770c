//! `prometheus`: the run's counts in the text exposition format, for node_exporter's textfile
//! collector. Write it with `--output DIR/recon.prom`: the atomic rename means the collector never
//! scrapes half a file (its temp name ends in `.tmp`, which the collector ignores).
//!
//! Every metric is a gauge describing the last run; there are no timestamps on samples (the
//! textfile collector rejects them), the run's time is a metric of its own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use super::{ReportWriter, RunInfo};
use crate::model::{Drift, Summary};

pub(super) struct PrometheusWriter {
    out: Box<dyn Write + Send>,
}

impl PrometheusWriter {
    pub(super) fn new(out: Box<dyn Write + Send>) -> Self {
        PrometheusWriter { out }
    }
}

impl ReportWriter for PrometheusWriter {
    fn drift(&mut self, _drift: &Drift) -> io::Result<()> {
        // Counts arrive complete at finish; individual keys have no place in a metric.
        Ok(())
    }

    fn finish(self: Box<Self>, summary: &Summary, fields: &BTreeMap<String, u64>, run: &RunInfo) -> io::Result<()> {
        let mut text = String::new();
        // Every series carries the check's name, so several checks can share one textfile directory
        // and one dashboard.
        let check = format!("check=\"{}\"", label_value(&run.name));
        let mut gauge = |name: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(text, "# HELP {name} {}", help_text(help));
            let _ = writeln!(text, "# TYPE {name} gauge");
            for (labels, value) in samples {
                let _ = writeln!(text, "{name}{{{labels}}} {value}");
            }
        };
        let plain = |value: String| vec![(check.clone(), value)];

        gauge(
            "recon_check_info",
            "Always 1: the check's name and the recon version that ran it last.",
            &[(
                format!("{check},version=\"{}\"", label_value(run.tool_version)),
                "1".to_string(),
            )],
        );
        gauge(
            "recon_check_keys",
            "Drifted keys found by the last recon check, by kind (pending: within the grace period, not failing; \
             unkeyed: read-model documents without a usable key).",
            &[
                ("missing", summary.missing),
                ("orphaned", summary.orphaned),
                ("mismatched", summary.mismatched),
                ("duplicate", summary.duplicate),
                ("pending", summary.pending),
                ("unkeyed", summary.unkeyed),
            ]
            .map(|(kind, count)| (format!("{check},kind=\"{kind}\""), count.to_string())),
        );
        gauge(
            "recon_check_failing_keys",
            "Keys that fail the last recon check (missing + orphaned + mismatched + duplicate + unkeyed).",
            &plain(summary.failing().to_string()),
        );
        gauge(
            "recon_check_allow",
            "The --allow threshold of the last recon check: failing keys it may have before its verdict is drift.",
            &plain(run.allow.to_string()),
        );
        gauge(
            "recon_check_in_sync",
            "1 if the last recon check passed (failing keys at most --allow), else 0.",
            &plain(u8::from(run.in_sync(summary)).to_string()),
        );
        gauge(
            "recon_check_source_rows",
            "Rows read from the write model by the last recon check.",
            &plain(summary.source_rows.to_string()),
        );
        gauge(
            "recon_check_target_docs",
            "Documents read from the read model by the last recon check.",
            &plain(summary.target_docs.to_string()),
        );
        gauge(
            "recon_check_matched",
            "Keys whose documents matched in the last recon check.",
            &plain(summary.matched.to_string()),
        );
        let by_field: Vec<(String, String)> = fields
            .iter()
            .map(|(field, count)| (format!("{check},field=\"{}\"", label_value(field)), count.to_string()))
            .collect();
        gauge(
            "recon_check_field_mismatches",
            "Mismatches per compared field in the last recon check.",
            &by_field,
        );
        gauge(
            "recon_check_duration_seconds",
            "Wall-clock duration of the last recon check.",
            &plain(format!("{:.3}", run.duration.as_secs_f64())),
        );
        let finished = run.started_at + chrono::Duration::from_std(run.duration).unwrap_or(chrono::Duration::zero());
        gauge(
            "recon_check_last_run_timestamp_seconds",
            "Unix time the last recon check finished (a run that fails leaves the previous file, so this ages).",
            &plain(format!("{:.3}", finished.timestamp_millis() as f64 / 1000.0)),
        );

        let mut out = self.out;
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

/// A label value: backslash, double quote and line feed escaped, as the exposition format requires.
fn label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: backslash and line feed escaped.
fn help_text(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{self, render_all};
    use crate::report::{Format, ReportOptions};

    #[test]
    fn prometheus_snapshot() {
        insta::assert_snapshot!(render_all(Format::Prometheus));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(label_value("x\ny"), "x\\ny");
        assert_eq!(label_value("prodükte.preis"), "prodükte.preis");
    }

    #[test]
    fn every_sample_line_belongs_to_a_declared_gauge() {
        let text = render_all(Format::Prometheus);
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(kind, "gauge");
                declared.push(name.to_string());
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(Some(&name.to_string()), declared.last(), "{line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        // Every series names its check (issue 14: two checks in one textfile directory collided).
        assert!(text.contains("recon_check_keys{check=\"orders\",kind=\"mismatched\"} 2\n"));
        assert!(text.contains("recon_check_field_mismatches{check=\"orders\",field=\"products.name\"} 2\n"));
        assert!(text.contains("recon_check_in_sync{check=\"orders\"} 0\n"));
        assert!(
            text.contains("recon_check_info{check=\"orders\",version=\"0.1.0\"} 1\n"),
            "{text}"
        );
        assert!(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .all(|l| l.contains("{check=\"orders\"")),
            "{text}"
        );
        // 02:00:00 + 83.25 s
        assert!(
            text.contains("recon_check_last_run_timestamp_seconds{check=\"orders\"} 1795831283.250\n"),
            "{text}"
        );
    }

    #[test]
    fn hostile_field_names_cannot_break_a_line() {
        let mut fields = fixtures::fields();
        fields.insert("evil\"} 1\nrecon_fake 2".into(), 3);
        let out = fixtures::SharedBuffer::default();
        let report = crate::report::writer(ReportOptions::new(Format::Prometheus), Box::new(out.clone()));
        report.finish(&fixtures::summary(), &fields, &fixtures::run()).unwrap();
        let text = out.text();
        assert!(!text.lines().any(|line| line.starts_with("recon_fake")), "{text}");
        assert!(text.contains(r#"field="evil\"} 1\nrecon_fake 2"} 3"#), "{text}");
    }
}
