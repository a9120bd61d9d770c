//! `json`: one `recon.check/v2` document; `ndjson`: one `{"type", "data"}` object per line.
//!
//! The json document is laid out one member per line and one drift record per line, so it stays
//! greppable and diffable while any JSON parser reads it as a whole.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};

use serde_json::{json, Value};

use super::record::{header, DriftOut};
use super::spool::Spool;
use super::{Listing, ReportWriter, RunInfo};
use crate::model::{Drift, Summary};

type Out = BufWriter<Box<dyn Write + Send>>;

pub(super) struct JsonWriter {
    out: Out,
    listing: Listing,
    /// Created on the first listed drift: an in-sync run never touches the disk.
    spool: Option<Spool>,
}

impl JsonWriter {
    pub(super) fn new(out: Box<dyn Write + Send>, listing: Listing) -> Self {
        JsonWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            listing,
            spool: None,
        }
    }
}

impl ReportWriter for JsonWriter {
    fn drift(&mut self, drift: &Drift) -> io::Result<()> {
        if !self.listing.admit() {
            return Ok(());
        }
        let spool = match &mut self.spool {
            Some(spool) => spool,
            None => self.spool.insert(Spool::new()?),
        };
        spool.push(drift)
    }

    fn finish(self: Box<Self>, summary: &Summary, fields: &BTreeMap<String, u64>, run: &RunInfo) -> io::Result<()> {
        let JsonWriter {
            mut out,
            listing,
            spool,
        } = *self;
        out.write_all(b"{\n")?;
        for (name, value) in header(summary, fields, run, &listing) {
            out.write_all(b"  ")?;
            serde_json::to_writer(&mut out, &name)?;
            out.write_all(b": ")?;
            serde_json::to_writer(&mut out, &value)?;
            out.write_all(b",\n")?;
        }
        out.write_all(b"  \"drift\": [")?;
        if let Some(spool) = spool {
            let mut replay = spool.replay()?;
            let mut separator: &[u8] = b"\n    ";
            while let Some(line) = replay.next_line()? {
                out.write_all(separator)?;
                out.write_all(line.as_bytes())?;
                separator = b",\n    ";
            }
            out.write_all(b"\n  ")?;
        }
        out.write_all(b"]\n}\n")?;
        out.flush()
    }
}

pub(super) struct NdjsonWriter {
    out: Out,
    listing: Listing,
}

impl NdjsonWriter {
    pub(super) fn new(out: Box<dyn Write + Send>, listing: Listing) -> Self {
        NdjsonWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            listing,
        }
    }
}

/// `{"type":"drift","data":` … `}`, written around a borrowed record without building a Value.
#[derive(serde::Serialize)]
struct Line<T> {
    r#type: &'static str,
    data: T,
}

impl ReportWriter for NdjsonWriter {
    fn drift(&mut self, drift: &Drift) -> io::Result<()> {
        if !self.listing.admit() {
            return Ok(());
        }
        let line = Line {
            r#type: "drift",
            data: DriftOut::new(drift),
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        // A consumer following the stream (`| jq`, a log shipper) sees each key as it is found.
        self.out.flush()
    }

    fn finish(self: Box<Self>, summary: &Summary, fields: &BTreeMap<String, u64>, run: &RunInfo) -> io::Result<()> {
        let NdjsonWriter { mut out, listing } = *self;
        let line = json!({"type": "summary", "data": Value::Object(header(summary, fields, run, &listing))});
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{self, render, render_all};
    use crate::report::{Format, ReportOptions};

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"))
    }

    #[test]
    fn json_report_snapshot() {
        insta::assert_snapshot!(render_all(Format::Json));
    }

    #[test]
    fn json_report_is_one_document_with_every_drift_record() {
        let report = parse(&render_all(Format::Json));
        assert_eq!(report["schema"], "recon.check/v2");
        assert_eq!(report["verdict"], "drift");
        assert_eq!(report["failing"], 5);
        assert_eq!(report["summary"]["source_rows"], 1_000_000);
        assert_eq!(report["fields"]["products.name"], 2);
        assert_eq!(report["run"]["started_at"], "2026-11-28T02:00:00.000Z");
        assert_eq!(report["run"]["duration_ms"], 83_250);
        assert_eq!(report["run"]["grace_ms"], 300_000);
        assert_eq!(report["listed"], 6);
        assert_eq!(report["truncated"], false);
        let drift = report["drift"].as_array().unwrap();
        let kinds: Vec<&str> = drift.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "mismatched",
                "missing",
                "duplicate",
                "pending",
                "orphaned",
                "mismatched"
            ]
        );
        assert_eq!(
            drift[2]["diffs"],
            json!([{"path": "orderDate", "expected": "2026-11-01", "actual": "2026-11-02"}])
        );
        assert_eq!(drift[4]["key"].to_string(), "9007199254740993");
        assert_eq!(drift[3]["cause"], "mismatched");
        assert_eq!(drift[0]["diffs"][0]["expected"].to_string(), "50.10");
        assert!(drift[0]["diffs"][1]["actual"].is_null());
        assert!(drift[0]["diffs"][2].get("actual").is_none());
        assert_eq!(drift[5]["key"], "ORD-\u{1b}[31m\n<&>\"");
    }

    #[test]
    fn limit_lists_the_first_records_and_keeps_counts_whole() {
        let mut options = ReportOptions::new(Format::Json);
        options.limit = Some(2);
        let text = render(options, &fixtures::drift(), &fixtures::summary(), &fixtures::run());
        let report = parse(&text);
        assert_eq!(report["listed"], 2);
        assert_eq!(report["truncated"], true);
        assert_eq!(report["failing"], 5);
        let keys: Vec<String> = report["drift"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["key"].to_string())
            .collect();
        assert_eq!(keys, ["1001", "1002"]);
    }

    #[test]
    fn in_sync_run_has_an_empty_drift_list() {
        let summary = Summary {
            source_rows: 3,
            target_docs: 3,
            matched: 3,
            ..Summary::default()
        };
        let text = render(ReportOptions::new(Format::Json), &[], &summary, &fixtures::run());
        let report = parse(&text);
        assert_eq!(report["verdict"], "in_sync");
        assert_eq!(report["drift"], json!([]));
        assert!(text.ends_with("  \"drift\": []\n}\n"), "{text}");
    }

    #[test]
    fn many_records_stream_through_the_spool() {
        let template = fixtures::drift().remove(0);
        let drift: Vec<Drift> = (0..20_000)
            .map(|i| Drift {
                key: crate::model::Key::Int(i),
                ..template.clone()
            })
            .collect();
        let text = render(
            ReportOptions::new(Format::Json),
            &drift,
            &fixtures::summary(),
            &fixtures::run(),
        );
        let report = parse(&text);
        let listed = report["drift"].as_array().unwrap();
        assert_eq!(listed.len(), 20_000);
        assert_eq!(listed[19_999]["key"], 19_999);
    }

    #[test]
    fn ndjson_snapshot() {
        insta::assert_snapshot!(render_all(Format::Ndjson));
    }

    #[test]
    fn ndjson_lines_are_drift_then_one_summary() {
        let mut options = ReportOptions::new(Format::Ndjson);
        options.limit = Some(3);
        let text = render(options, &fixtures::drift(), &fixtures::summary(), &fixtures::run());
        let lines: Vec<Value> = text.lines().map(parse).collect();
        assert_eq!(lines.len(), 4);
        for line in &lines[..3] {
            assert_eq!(line["type"], "drift");
            assert!(line["data"]["kind"].is_string());
        }
        let summary = &lines[3];
        assert_eq!(summary["type"], "summary");
        assert_eq!(summary["data"]["schema"], "recon.check/v2");
        assert_eq!(summary["data"]["truncated"], true);
        assert_eq!(summary["data"]["listed"], 3);
        assert_eq!(summary["data"]["summary"]["pending"], 1);
    }

    /// The JSON Schema block of docs/report-schema.md, so the documented contract cannot drift from
    /// what is written.
    fn documented_schema() -> Value {
        let doc = include_str!("../../docs/report-schema.md");
        let section = doc.split("## JSON Schema (draft 2020-12)").nth(1).unwrap();
        let block = section.split("```json\n").nth(1).unwrap().split("```").next().unwrap();
        parse(block)
    }

    fn names(value: &Value) -> Vec<String> {
        let mut names: Vec<String> = match value {
            Value::Object(map) => map.keys().cloned().collect(),
            Value::Array(items) => items.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
            other => panic!("not a name list: {other}"),
        };
        names.sort();
        names
    }

    #[test]
    fn output_matches_the_documented_schema() {
        let schema = documented_schema();
        let report = parse(&render_all(Format::Json));
        let props = &schema["properties"];
        assert_eq!(names(&schema["required"]), names(&report));
        assert_eq!(names(props), names(&report));
        assert_eq!(names(&props["summary"]["required"]), names(&report["summary"]));
        assert_eq!(names(&props["run"]["required"]), names(&report["run"]));
        assert_eq!(names(&props["run"]["properties"]), names(&report["run"]));

        let defs = &schema["$defs"];
        let kinds = names(&defs["kind"]["enum"]);
        let drift_props = names(&defs["drift"]["properties"]);
        let diff_props = names(&defs["diff"]["properties"]);
        for record in report["drift"].as_array().unwrap() {
            for member in names(record) {
                assert!(drift_props.contains(&member), "undocumented drift member {member}");
            }
            for required in names(&defs["drift"]["required"]) {
                assert!(record.get(&required).is_some(), "{record} lacks {required}");
            }
            assert!(kinds.contains(&record["kind"].as_str().unwrap().to_string()));
            for diff in record["diffs"].as_array().unwrap() {
                for member in names(diff) {
                    assert!(diff_props.contains(&member), "undocumented diff member {member}");
                }
            }
        }
        let ndjson = render_all(Format::Ndjson);
        let summary_line = parse(ndjson.lines().last().unwrap());
        let documented = &defs["ndjson_line"]["oneOf"][1]["properties"]["data"]["required"];
        assert_eq!(names(documented), names(&summary_line["data"]));
    }
}
