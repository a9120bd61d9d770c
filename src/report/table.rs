//! `table`: the terminal report: counts with the verdict, mismatches per field, a sample of drift.

use std::collections::BTreeMap;
use std::io::{self, Write};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Color, Table};

use super::human::{count_rows, fields_by_count, run_parts, sample_caption, sample_rows, verdict_text, Sample};
use super::{ReportWriter, RunInfo};
use crate::model::{Drift, Summary};

pub(super) struct TableWriter {
    out: Box<dyn Write + Send>,
    sample: Sample,
    color: bool,
}

impl TableWriter {
    pub(super) fn new(out: Box<dyn Write + Send>, sample: Sample, color: bool) -> Self {
        TableWriter { out, sample, color }
    }

    fn table(&self) -> Table {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        // Never ask the terminal: the layout is the same wherever the report goes, and styling is on
        // exactly when the caller decided colour is wanted.
        table.force_no_tty();
        if self.color {
            table.enforce_styling();
        }
        table
    }

    fn paint(&self, cell: Cell, color: Color) -> Cell {
        if self.color {
            cell.fg(color)
        } else {
            cell
        }
    }
}

impl ReportWriter for TableWriter {
    fn drift(&mut self, drift: &Drift) -> io::Result<()> {
        self.sample.offer(drift);
        Ok(())
    }

    fn finish(self: Box<Self>, summary: &Summary, fields: &BTreeMap<String, u64>, run: &RunInfo) -> io::Result<()> {
        let mut text = String::new();
        text.push_str(&run_parts(run).join(" · "));
        text.push_str("\n\n");
        let verdict = verdict_text(summary, run);
        if self.color {
            // Bold green or red: the one line that answers "is the read model in sync?".
            let sgr = if run.in_sync(summary) { "1;32" } else { "1;31" };
            text.push_str(&format!("\u{1b}[{sgr}m{verdict}\u{1b}[0m\n"));
        } else {
            text.push_str(&verdict);
            text.push('\n');
        }

        let mut counts = self.table();
        counts.set_header(vec!["", "count"]);
        for (label, count, failing) in count_rows(summary, run) {
            let mut cell = Cell::new(count).set_alignment(CellAlignment::Right);
            if count > 0 && failing {
                cell = self.paint(cell, Color::Red);
            } else if count > 0 && label == "pending" {
                cell = self.paint(cell, Color::Yellow);
            }
            counts.add_row(vec![Cell::new(label), cell]);
        }
        text.push_str(&counts.to_string());
        text.push('\n');

        let by_field = fields_by_count(fields);
        if !by_field.is_empty() {
            let mut table = self.table();
            table.set_header(vec!["field", "mismatches"]);
            for (field, count) in by_field {
                table.add_row(vec![
                    Cell::new(super::human::defuse(field)),
                    Cell::new(count).set_alignment(CellAlignment::Right),
                ]);
            }
            text.push('\n');
            text.push_str(&table.to_string());
            text.push('\n');
        }

        if !self.sample.drift.is_empty() {
            let mut table = self.table();
            table.set_header(vec!["kind", "key", "path", "expected", "actual"]);
            for row in sample_rows(&self.sample.drift) {
                let kind = Cell::new(&row.kind);
                let kind = self.paint(kind, if row.failing { Color::Red } else { Color::Yellow });
                table.add_row(vec![
                    kind,
                    Cell::new(&row.key),
                    Cell::new(&row.path),
                    Cell::new(&row.expected),
                    Cell::new(&row.actual),
                ]);
            }
            text.push('\n');
            text.push_str(&sample_caption(&self.sample));
            text.push('\n');
            text.push_str(&table.to_string());
            text.push('\n');
        }

        let mut out = self.out;
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::model::Summary;
    use crate::report::fixtures::{self, render, render_all, render_with};
    use crate::report::{Format, ReportOptions};

    #[test]
    fn table_snapshot() {
        insta::assert_snapshot!(render_all(Format::Table));
    }

    /// The table lists `--limit` keys when given (it used to stop at 10 whatever --limit said), and says
    /// how to see the rest when it stops short.
    #[test]
    fn the_listing_follows_limit_and_says_how_to_see_more() {
        let mut drift = Vec::new();
        for k in 0..14 {
            let mut d = fixtures::drift()[1].clone();
            d.key = crate::model::Key::Int(100 + k);
            drift.push(d);
        }
        let summary = Summary {
            missing: 14,
            ..Summary::default()
        };
        let rows = |text: &str| (100..114).filter(|k| text.contains(&format!(" {k} "))).count();
        let text = render(ReportOptions::new(Format::Table), &drift, &summary, &fixtures::run());
        assert_eq!(rows(&text), 10, "{text}");
        assert!(
            text.contains("first 10 of 14 drifted keys; --limit N shows more"),
            "{text}"
        );
        let mut options = ReportOptions::new(Format::Table);
        options.limit = Some(14);
        let text = render(options, &drift, &summary, &fixtures::run());
        assert_eq!(rows(&text), 14, "{text}");
        assert!(!text.contains("shows more"), "{text}");
    }

    #[test]
    fn table_snapshot_after_a_recheck() {
        let (summary, run) = fixtures::rechecked();
        let text = render(ReportOptions::new(Format::Table), &fixtures::drift(), &summary, &run);
        assert!(text.contains("3 converged during the 30s recheck"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn no_escape_codes_without_colour_and_some_with_it() {
        let plain = render_all(Format::Table);
        assert!(!plain.contains('\u{1b}'), "{plain}");

        let mut options = ReportOptions::new(Format::Table);
        options.color = true;
        let colored = render(options, &fixtures::drift(), &fixtures::summary(), &fixtures::run());
        assert!(
            colored.matches("\u{1b}[").count() > 2,
            "cells are coloured too: {colored}"
        );
        assert_eq!(strip_sgr(&colored), plain, "colour changes nothing but colour");
    }

    /// Removes `ESC [ … m` sequences.
    fn strip_sgr(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("\u{1b}[") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('m').expect("SGR sequence ends with m");
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn hostile_keys_and_long_values_are_defused_and_clipped() {
        let text = render_all(Format::Table);
        // Rust's debug quoting escapes the key; defuse catches what it lets through.
        assert!(text.contains(r#""ORD-\u{1b}[31m\n<&>\"""#), "{text}");
        assert!(text.contains(r"products[sku=a|b\c\u{a}].name"), "{text}");
        assert!(text.contains(&format!("\"{}…", "x".repeat(38))), "{text}");
        assert!(!text.contains(&"x".repeat(41)));
    }

    #[test]
    fn in_sync_run_is_a_short_summary() {
        let summary = Summary {
            source_rows: 3,
            target_docs: 3,
            matched: 3,
            ..Summary::default()
        };
        let options = ReportOptions::new(Format::Table);
        let text = render_with(options, &[], &summary, &BTreeMap::new(), &fixtures::run());
        assert!(text.contains("in sync"), "{text}");
        assert!(!text.contains("drifted key"), "{text}");
        assert!(!text.contains("mismatches"), "{text}");
    }
}
