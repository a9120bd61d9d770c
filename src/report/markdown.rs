//! `markdown`: the table report as GitHub-flavoured markdown, for PR comments and CI job summaries.
//!
//! Every piece of data sits in a code span, so markdown and HTML in keys and values stay literal; the
//! only characters a code span cannot hold as-is inside a table are `|` (escaped, as GFM requires) and
//! backticks (handled by a longer fence).

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::human::{count_rows, defuse, fields_by_count, run_parts, sample_caption, sample_rows, verdict_text, Sample};
use super::{ReportWriter, RunInfo};
use crate::model::{Drift, Summary};

pub(super) struct MarkdownWriter {
    out: Box<dyn Write + Send>,
    sample: Sample,
}

impl MarkdownWriter {
    pub(super) fn new(out: Box<dyn Write + Send>, sample: Sample) -> Self {
        MarkdownWriter { out, sample }
    }
}

impl ReportWriter for MarkdownWriter {
    fn drift(&mut self, drift: &Drift) -> io::Result<()> {
        self.sample.offer(drift);
        Ok(())
    }

    fn finish(self: Box<Self>, summary: &Summary, fields: &BTreeMap<String, u64>, run: &RunInfo) -> io::Result<()> {
        let in_sync = run.in_sync(summary);
        let mut md = String::new();
        let heading = if in_sync {
            "✅ recon check: in sync"
        } else {
            "❌ recon check: drift"
        };
        md.push_str(&format!("## {heading}\n\n{}\n\n", verdict_text(summary, run)));

        md.push_str("| | count |\n|:--|--:|\n");
        for (label, count, failing) in count_rows(summary, run) {
            if failing && count > 0 {
                md.push_str(&format!("| **{label}** | **{count}** |\n"));
            } else {
                md.push_str(&format!("| {label} | {count} |\n"));
            }
        }

        let by_field = fields_by_count(fields);
        if !by_field.is_empty() {
            md.push_str("\n### Mismatches by field\n\n| field | mismatches |\n|:--|--:|\n");
            for (field, count) in by_field {
                md.push_str(&format!("| {} | {count} |\n", code(field)));
            }
        }

        if !self.sample.drift.is_empty() {
            md.push_str(&format!("\n### Drift: {}\n\n", sample_caption(&self.sample)));
            md.push_str("| kind | key | path | expected | actual |\n|:--|:--|:--|:--|:--|\n");
            for row in sample_rows(&self.sample.drift) {
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    row.kind,
                    code(&row.key),
                    code(&row.path),
                    code(&row.expected),
                    code(&row.actual)
                ));
            }
        }

        let footer: Vec<String> = run_parts(run).iter().map(|part| code(part)).collect();
        md.push_str(&format!("\n<sub>{}</sub>\n", footer.join(" · ")));

        let mut out = self.out;
        out.write_all(md.as_bytes())?;
        out.flush()
    }
}

/// `text` as an inline code span that is safe inside a GFM table cell; empty text is an empty cell.
fn code(text: &str) -> String {
    // GFM splits cells before it parses spans and reads `\\|` as an escaped backslash then a border,
    // so a backslash right before a pipe is shown as an escape instead.
    let text = defuse(text).replace("\\|", "\\u{5c}|").replace('|', "\\|");
    if text.is_empty() {
        return text;
    }
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    // A span that starts or ends with a backtick needs a space so the fence is not read as longer.
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{self, render, render_all};
    use crate::report::{Format, ReportOptions};

    #[test]
    fn markdown_snapshot() {
        insta::assert_snapshot!(render_all(Format::Markdown));
    }

    #[test]
    fn markdown_snapshot_after_a_recheck() {
        let (summary, run) = fixtures::rechecked();
        let text = render(ReportOptions::new(Format::Markdown), &fixtures::drift(), &summary, &run);
        assert!(text.contains("| converged | 3 |"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn code_spans_survive_pipes_backticks_and_markup() {
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("x `y` z"), "``x `y` z``");
        assert_eq!(code("``edge"), "``` ``edge ```");
        assert_eq!(code("<b>*no*</b>"), "`<b>*no*</b>`");
        assert_eq!(code("line\nbreak"), "`line\\u{a}break`");
        assert_eq!(code(""), "");
        assert_eq!(code("a\\|b"), "`a\\u{5c}\\|b`");
    }

    #[test]
    fn every_table_row_has_five_cells() {
        let text = render_all(Format::Markdown);
        let sample: Vec<&str> = text
            .lines()
            .skip_while(|line| !line.starts_with("| kind |"))
            .take_while(|line| line.starts_with('|'))
            .collect();
        assert!(sample.len() > 2, "{text}");
        for line in sample {
            // Unescaped pipes are cell borders: 6 of them for 5 cells.
            let borders = line.replace("\\|", "").matches('|').count();
            assert_eq!(borders, 6, "{line}");
        }
    }

    #[test]
    fn verdict_heading_says_in_sync_or_drift() {
        let text = render_all(Format::Markdown);
        assert!(
            text.starts_with("## ❌ recon check: drift\n\ndrift: 5 failing keys"),
            "{text}"
        );
        let mut run = fixtures::run();
        run.allow = 10;
        let text = render(
            ReportOptions::new(Format::Markdown),
            &fixtures::drift(),
            &fixtures::summary(),
            &run,
        );
        assert!(text.starts_with("## ✅ recon check: in sync"), "{text}");
    }
}
