//! `recon explain`'s output: for a person, each key's verdict, both sides' documents path by path in
//! columns (expected | actual, one actual column per read-model document) with the differing paths
//! marked and each path's compare rule, then what both sides say about the documents; for machines,
//! one `recon.explain/v1` JSON object per key and line.
//!
//! Values come from the databases: everything shown to a person is defused ([`defuse`]) and clipped.

use std::io::{self, Write};

use serde_json::{json, Map, Value};

use super::human::{clip, defuse, value_text, PATH_WIDTH};
use crate::diff::{Explanation, Verdict, NOT_COMPARED};
use crate::model::DriftKind;
use crate::plural::plural;

/// The NDJSON record type of `recon explain --format json`; see docs/report-schema.md.
pub const EXPLAIN_SCHEMA: &str = "recon.explain/v1";

/// Paths named in a verdict line before the rest are counted.
const PATHS_IN_VERDICT: usize = 5;

/// What the explanation is rendered with, beyond the explanations.
#[derive(Debug, Clone)]
pub struct ExplainOptions {
    /// ANSI colour (only on a terminal, never with NO_COLOR).
    pub color: bool,
    /// The write model's `updated_at` column (`postgres.updated_at`), when configured.
    pub updated_at: Option<String>,
    /// Now, epoch milliseconds: ages are measured from it.
    pub now_ms: i64,
}

/// The view for a person, one block per key, blank lines between.
pub fn write_human(out: &mut dyn Write, explained: &[Explanation], options: &ExplainOptions) -> io::Result<()> {
    let paint = |text: &str, sgr: &str| -> String {
        if options.color {
            format!("\u{1b}[{sgr}m{text}\u{1b}[0m")
        } else {
            text.to_string()
        }
    };
    for (n, e) in explained.iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        let key = clip(&defuse(&e.key.to_string()), PATH_WIDTH);
        let (verdict, sgr) = verdict_text(e);
        writeln!(out, "key {key}: {}", paint(&verdict, sgr))?;
        if e.verdict == Verdict::Absent {
            continue;
        }

        // The columns: marker, path, rule, expected, one per read-model document.
        let several = e.actual.len() > 1;
        let mut header = vec!["path".to_string(), "rule".to_string(), "expected".to_string()];
        match e.actual.len() {
            0 | 1 => header.push("actual".to_string()),
            n => header.extend((1..=n).map(|i| format!("actual #{i}"))),
        }
        let mut table: Vec<(bool, Vec<String>, Vec<bool>)> = vec![(false, header, Vec::new())];
        for row in &e.rows {
            let mut cells = vec![
                clip(&defuse(&row.path), PATH_WIDTH),
                row.rule.clone(),
                value_text(row.expected.as_ref()),
            ];
            let mut marked = vec![false, false, row.differs_anywhere()];
            if e.actual.is_empty() {
                cells.push(value_text(None));
                marked.push(false);
            }
            for (value, differs) in row.actual.iter().zip(&row.differs) {
                cells.push(value_text(value.as_ref()));
                marked.push(*differs);
            }
            table.push((row.differs_anywhere(), cells, marked));
        }
        let columns = table[0].1.len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                table
                    .iter()
                    .map(|(_, cells, _)| cells[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (i, (differs, cells, marked)) in table.iter().enumerate() {
            let marker = if *differs {
                paint("≠", "1;31")
            } else {
                " ".to_string()
            };
            let mut line = format!("  {marker} ");
            for (c, cell) in cells.iter().enumerate() {
                let last = c + 1 == columns;
                let padded = if last {
                    cell.clone()
                } else {
                    format!("{cell:<width$}", width = widths[c])
                };
                let shown = if i == 0 {
                    paint(&padded, "1")
                } else if marked.get(c).copied().unwrap_or(false) || (c == 0 && *differs) {
                    paint(&padded, "31")
                } else if c == 1 && (cell == "ignored" || cell == NOT_COMPARED) {
                    paint(&padded, "2")
                } else {
                    padded
                };
                line.push_str(&shown);
                if !last {
                    line.push_str("  ");
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }

        // What each side says about its documents.
        let write_model = match (&e.expected, &options.updated_at) {
            (None, _) => "no row with this key".to_string(),
            (Some(row), Some(column)) => match row.meta.updated_at_ms {
                Some(ms) => format!(
                    "{} {} ({})",
                    defuse(column),
                    instant_text(ms),
                    age_text(options.now_ms - ms)
                ),
                None => format!("{} is null", defuse(column)),
            },
            (Some(_), None) => "row found (set postgres.updated_at to see when it last changed)".to_string(),
        };
        // "read model #2" is the longest label there is.
        let label_width = if several { 15 } else { 13 };
        writeln!(out, "  {:<label_width$}{write_model}", "write model")?;
        if e.actual.is_empty() {
            writeln!(out, "  {:<label_width$}no document with this key", "read model")?;
        }
        for (i, doc) in e.actual.iter().enumerate() {
            let label = if several {
                format!("read model #{}", i + 1)
            } else {
                "read model".to_string()
            };
            let described: Vec<String> = doc
                .metadata
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    format!("{} {}", defuse(name), clip(&defuse(&value), PATH_WIDTH))
                })
                .collect();
            let compared = if several && doc.compared {
                " (the one compared)"
            } else {
                ""
            };
            writeln!(out, "  {label:<label_width$}{}{compared}", described.join(", "))?;
        }
    }
    out.flush()
}

/// The verdict in words, with the colour it is shown in.
fn verdict_text(e: &Explanation) -> (String, &'static str) {
    let paths = || {
        let mut paths: Vec<String> = Vec::new();
        for (diff, _) in &e.differences {
            let path = defuse(&diff.path);
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        let more = paths.len().saturating_sub(PATHS_IN_VERDICT);
        paths.truncate(PATHS_IN_VERDICT);
        let mut text = paths.join(", ");
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        text
    };
    match e.verdict {
        Verdict::InSync => ("in sync".to_string(), "32"),
        Verdict::Absent => (
            "on neither side: no row in the write model, no document in the read model".to_string(),
            "33",
        ),
        Verdict::Drift(DriftKind::Missing) => ("missing: no document in the read model".to_string(), "31"),
        Verdict::Drift(DriftKind::Orphaned) => (
            format!(
                "orphaned: no row in the write model ({} in the read model)",
                plural(e.actual.len(), "document", "documents")
            ),
            "31",
        ),
        Verdict::Drift(DriftKind::Mismatched) => (format!("mismatched at {}", paths()), "31"),
        Verdict::Drift(DriftKind::Duplicate) => {
            let mut text = format!(
                "duplicate: {} carry the key",
                plural(e.actual.len(), "document", "documents")
            );
            if !e.differences.is_empty() {
                text.push_str(&format!("; the one compared differs at {}", paths()));
            }
            (text, "31")
        }
        Verdict::Drift(kind) => (kind.as_str().to_string(), "31"),
    }
}

/// An instant as RFC 3339 UTC, to the second.
fn instant_text(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => format!("{ms} ms"),
    }
}

/// How long ago, coarsely: what a person at 3 a.m. needs is "seconds, minutes, hours or days".
pub fn age_text(ms: i64) -> String {
    if ms < 0 {
        return "in the future: is the clock of this machine or of the database off?".to_string();
    }
    let s = ms / 1000;
    match s {
        0..=89 => format!("{s} s ago"),
        90..=5399 => format!("{} min ago", s / 60),
        5400..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// One `recon.explain/v1` line per key.
pub fn write_json(out: &mut dyn Write, explained: &[Explanation], options: &ExplainOptions) -> io::Result<()> {
    for e in explained {
        let line = json!({"type": EXPLAIN_SCHEMA, "data": record(e, options)});
        serde_json::to_writer(&mut *out, &line)?;
        writeln!(out)?;
    }
    out.flush()
}

fn record(e: &Explanation, options: &ExplainOptions) -> Value {
    let differences: Vec<Value> = e
        .differences
        .iter()
        .map(|(diff, rule)| {
            // As in a check's drift record: a side where the field is absent is left out, so that
            // `null` means a field present and null.
            let mut member = Map::new();
            member.insert("path".into(), json!(diff.path));
            member.insert("field".into(), json!(diff.field));
            if let Some(expected) = &diff.expected {
                member.insert("expected".into(), expected.clone());
            }
            if let Some(actual) = &diff.actual {
                member.insert("actual".into(), actual.clone());
            }
            member.insert("rule".into(), json!(rule));
            Value::Object(member)
        })
        .collect();
    let actual: Vec<Value> = e
        .actual
        .iter()
        .map(|doc| {
            let metadata: Map<String, Value> = doc.metadata.iter().cloned().collect();
            json!({"document": doc.doc.doc, "metadata": metadata, "compared": doc.compared})
        })
        .collect();
    let write_model = e.expected.as_ref().map(|row| {
        let mut meta = Map::new();
        if let Some(column) = &options.updated_at {
            meta.insert("updated_at_column".into(), json!(column));
            meta.insert("updated_at".into(), json!(row.meta.updated_at_ms.map(instant_text)));
            meta.insert(
                "age_seconds".into(),
                json!(row.meta.updated_at_ms.map(|ms| (options.now_ms - ms) / 1000)),
            );
        }
        Value::Object(meta)
    });
    let view: Vec<Value> = e
        .rows
        .iter()
        .map(|row| {
            json!({
                "path": row.path,
                "rule": row.rule,
                "expected": row.expected,
                "actual": row.actual,
                "differs": row.differs,
            })
        })
        .collect();
    json!({
        "key": e.key.to_json(),
        "verdict": e.verdict.as_str(),
        "expected": e.expected.as_ref().map(|row| &row.doc),
        "actual": actual,
        "differences": differences,
        "metadata": {"write_model": write_model},
        "paths": view,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{ActualDoc, Comparator, Row};
    use crate::model::{Doc, DocMeta, FieldDiff, Key, KeyedDoc};

    fn doc(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    /// A mismatched key as the engine hands it over.
    fn mismatched() -> Explanation {
        let cfg: crate::config::CompareConfig =
            toml::from_str("ignore = [\"indexedAt\"]\n[fields]\nprice = { as = \"number\" }").unwrap();
        let comparator = Comparator::new(&cfg).unwrap();
        let expected = doc(json!({"id": 7, "name": "Pen", "price": 5}));
        let actual = doc(json!({"id": 7, "name": "Pen\u{1b}[2J", "price": 5.0, "indexedAt": "x"}));
        let (expected, actual): (Doc, Doc) = (expected.into(), actual.into());
        let diffs = comparator.diff(&expected, &actual);
        let rows: Vec<Row> = comparator.side_by_side(Some(&expected), &[(&actual, &diffs)], &|_| true);
        Explanation {
            key: Key::Int(7),
            verdict: Verdict::Drift(DriftKind::Mismatched),
            differences: diffs
                .iter()
                .map(|d| (d.clone(), comparator.rule_name(&d.field)))
                .collect(),
            expected: Some(KeyedDoc {
                key: Key::Int(7),
                doc: expected,
                meta: DocMeta {
                    updated_at_ms: Some(1_000_000),
                    ..DocMeta::default()
                },
            }),
            actual: vec![ActualDoc {
                doc: KeyedDoc {
                    key: Key::Int(7),
                    doc: actual,
                    meta: DocMeta::default(),
                },
                metadata: vec![("id".into(), json!("7")), ("version".into(), json!("v3"))],
                compared: true,
            }],
            rows,
        }
    }

    fn options(color: bool) -> ExplainOptions {
        ExplainOptions {
            color,
            updated_at: Some("updatedAt".into()),
            now_ms: 1_000_000 + 3 * 3_600_000,
        }
    }

    fn human(e: &[Explanation], color: bool) -> String {
        let mut out = Vec::new();
        write_human(&mut out, e, &options(color)).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_view_marks_the_differing_path_and_names_each_rule() {
        let text = human(&[mismatched()], false);
        assert_eq!(
            text,
            "key 7: mismatched at name\n\
             \x20   path       rule     expected  actual\n\
             \x20   id         exact    7         7\n\
             \x20 ≠ name       exact    \"Pen\"     \"Pen\\u001b[2J\"\n\
             \x20   price      number   5         5.0\n\
             \x20   indexedAt  ignored  (absent)  \"x\"\n\
             \x20 write model  updatedAt 1970-01-01T00:16:40Z (3 h ago)\n\
             \x20 read model   id 7, version v3\n"
        );
    }

    #[test]
    fn colour_only_when_asked_and_it_changes_nothing_else() {
        let coloured = human(&[mismatched()], true);
        assert!(coloured.contains("\u{1b}[31m"), "{coloured}");
        let mut plain = String::new();
        let mut rest = coloured.as_str();
        while let Some(start) = rest.find("\u{1b}[") {
            plain.push_str(&rest[..start]);
            let end = rest[start..].find('m').unwrap();
            rest = &rest[start + end + 1..];
        }
        plain.push_str(rest);
        assert_eq!(plain, human(&[mismatched()], false));
    }

    #[test]
    fn json_names_the_rule_of_each_difference() {
        let mut out = Vec::new();
        write_json(&mut out, &[mismatched()], &options(false)).unwrap();
        let line: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["type"], EXPLAIN_SCHEMA);
        let data = &line["data"];
        assert_eq!(data["key"], 7);
        assert_eq!(data["verdict"], "mismatched");
        assert_eq!(data["differences"][0]["path"], "name");
        assert_eq!(data["differences"][0]["rule"], "exact");
        assert_eq!(data["differences"][0]["expected"], "Pen");
        assert_eq!(data["actual"][0]["metadata"]["version"], "v3");
        assert_eq!(data["metadata"]["write_model"]["age_seconds"], 3 * 3600);
        assert_eq!(data["paths"][3]["rule"], "ignored");
    }

    #[test]
    fn ages_are_coarse() {
        assert_eq!(age_text(5_000), "5 s ago");
        assert_eq!(age_text(600_000), "10 min ago");
        assert_eq!(age_text(3 * 86_400_000), "3 days ago");
        assert!(age_text(-1).starts_with("in the future"));
    }

    #[test]
    fn a_key_on_neither_side_says_so_and_nothing_else() {
        let e = Explanation {
            key: Key::Text("ORD-9".into()),
            verdict: Verdict::Absent,
            differences: Vec::<(FieldDiff, String)>::new(),
            expected: None,
            actual: Vec::new(),
            rows: Vec::new(),
        };
        assert_eq!(
            human(&[e], false),
            "key \"ORD-9\": on neither side: no row in the write model, no document in the read model\n"
        );
    }
}
