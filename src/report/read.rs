//! Reading a `recon.check` report back (v1 or v2, JSON or NDJSON), for `repair --from-report` and
//! `report merge`. The drift records are handed over one at a time and never held here, so a report of
//! any size reads in flat memory; what the report says of itself (its run, its counts) is kept.

use std::fmt;
use std::io::{BufRead, Read};
use std::path::Path;

use anyhow::Context;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::record::DiffIn;
use super::READABLE_SCHEMAS;
use crate::model::{Drift, DriftKind, FieldDiff, Key};

/// One drift record of a report. Only what names it is checked on reading (a key, unless the record is
/// `unkeyed`); [`DriftRecord::into_drift`] checks the rest.
#[derive(Debug)]
pub struct DriftRecord {
    /// None only for an `unkeyed` record (v2): a read-model document without a key.
    pub key: Option<Key>,
    kind: Option<String>,
    cause: Option<DriftKind>,
    ids: Vec<String>,
    diffs: Vec<DiffIn>,
}

/// A record as it stands in the report; every member may be missing.
#[derive(Deserialize)]
struct RecordIn {
    #[serde(default)]
    key: Option<Value>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    cause: Option<DriftKind>,
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    diffs: Vec<DiffIn>,
}

impl RecordIn {
    /// The record, or None when it lacks the key every record but an `unkeyed` one has.
    fn keyed(self) -> Option<DriftRecord> {
        let key = match self.kind.as_deref() {
            // An unkeyed document has a null key.
            Some("unkeyed") => None,
            _ => Some(self.key.as_ref().and_then(Key::from_json)?),
        };
        Some(DriftRecord {
            key,
            kind: self.kind,
            cause: self.cause,
            ids: self.ids,
            diffs: self.diffs,
        })
    }
}

impl DriftRecord {
    /// The drift the record describes (without documents: a report holds none).
    pub fn into_drift(self) -> anyhow::Result<Drift> {
        let kind: DriftKind = self
            .kind
            .and_then(|k| serde_json::from_value(Value::String(k)).ok())
            .context("no kind")?;
        Ok(Drift {
            // An unkeyed document's placeholder is what `Drift::unkeyed` gives it.
            key: self.key.unwrap_or_else(|| Key::Text(String::new())),
            kind,
            cause: self.cause,
            ids: self.ids,
            diffs: self
                .diffs
                .into_iter()
                .map(|d| FieldDiff {
                    field: d.path.clone(),
                    path: d.path,
                    expected: d.expected,
                    actual: d.actual,
                })
                .collect(),
            expected: None,
            actual: Vec::new(),
        })
    }
}

/// What a report says of itself: its members other than the drift list (JSON), or the data of its
/// summary line (NDJSON). Empty when an NDJSON report has no summary line (it was cut short).
#[derive(Debug, Default)]
pub struct Header {
    members: Map<String, Value>,
}

impl Header {
    pub fn schema(&self) -> Option<&str> {
        self.members.get("schema").and_then(Value::as_str)
    }

    /// Whether recon reads reports of this schema ([`READABLE_SCHEMAS`]).
    pub fn readable(&self) -> bool {
        self.schema().is_some_and(|s| READABLE_SCHEMAS.contains(&s))
    }

    /// The report was cut by `--limit`: it lists only some of the drift.
    pub fn truncated(&self) -> bool {
        self.members.get("truncated").and_then(Value::as_bool) == Some(true)
    }

    /// A member (`summary`, `fields`, `run`, …); null when absent.
    pub fn get(&self, name: &str) -> &Value {
        self.members.get(name).unwrap_or(&Value::Null)
    }
}

/// A report in either form, told apart by its first line: NDJSON when that is a whole record with a
/// `"type"` (a JSON report's first line is not). `each` gets every drift record in report order.
pub fn read(path: &Path, each: impl FnMut(DriftRecord) -> anyhow::Result<()>) -> anyhow::Result<Header> {
    let mut first = String::new();
    open(path)?
        .read_line(&mut first)
        .with_context(|| format!("cannot read the report {}", path.display()))?;
    let ndjson = serde_json::from_str::<Probe>(first.trim()).is_ok_and(|p| p.kind.is_some());
    if ndjson {
        read_ndjson(open(path)?, path, each)
    } else {
        read_json_from(open(path)?, path, each)
    }
}

/// A report in the JSON form only.
pub fn read_json(path: &Path, each: impl FnMut(DriftRecord) -> anyhow::Result<()>) -> anyhow::Result<Header> {
    read_json_from(open(path)?, path, each)
}

/// The JSON form out of any reader; `path` names it in messages.
pub fn read_json_from(
    input: impl Read,
    path: &Path,
    mut each: impl FnMut(DriftRecord) -> anyhow::Result<()>,
) -> anyhow::Result<Header> {
    let mut de = serde_json::Deserializer::from_reader(input);
    let header = ReportSeed { each: &mut each }
        .deserialize(&mut de)
        .with_context(|| format!("{} is not a JSON report (run check with --format json)", path.display()))?;
    de.end()
        .with_context(|| format!("{}: more after the report", path.display()))?;
    Ok(header)
}

fn open(path: &Path) -> anyhow::Result<std::io::BufReader<std::fs::File>> {
    std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .with_context(|| format!("cannot read the report {}", path.display()))
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<Map<String, Value>>,
}

/// `{"type":"drift","data":{…}}` lines, then one `{"type":"summary","data":{…}}`.
fn read_ndjson(
    reader: impl BufRead,
    path: &Path,
    mut each: impl FnMut(DriftRecord) -> anyhow::Result<()>,
) -> anyhow::Result<Header> {
    let mut header = Header::default();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read the report {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let not_a_line = || format!("{}:{}: not a JSON report line", path.display(), n + 1);
        let line: Line = serde_json::from_str(&line).with_context(not_a_line)?;
        let Some(data) = line.data else { continue };
        match line.kind.as_deref() {
            Some("drift") => {
                let record: RecordIn = serde_json::from_value(Value::Object(data)).with_context(not_a_line)?;
                let record = record
                    .keyed()
                    .with_context(|| format!("{}:{}: drift without a key", path.display(), n + 1))?;
                each(record)?;
            }
            Some("summary") => header.members = data,
            _ => {}
        }
    }
    Ok(header)
}

/// The report object: the `drift` array's records to `each`, every other member into the header.
struct ReportSeed<'a, F> {
    each: &'a mut F,
}

impl<'de, F: FnMut(DriftRecord) -> anyhow::Result<()>> DeserializeSeed<'de> for ReportSeed<'_, F> {
    type Value = Header;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Header, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F: FnMut(DriftRecord) -> anyhow::Result<()>> Visitor<'de> for ReportSeed<'_, F> {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a recon.check report object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut header = Header::default();
        while let Some(name) = map.next_key::<String>()? {
            if name == "drift" {
                map.next_value_seed(DriftSeed { each: &mut *self.each })?;
            } else {
                let value = map.next_value::<Value>()?;
                header.members.insert(name, value);
            }
        }
        Ok(header)
    }
}

struct DriftSeed<'a, F> {
    each: &'a mut F,
}

impl<'de, F: FnMut(DriftRecord) -> anyhow::Result<()>> DeserializeSeed<'de> for DriftSeed<'_, F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(DriftRecord) -> anyhow::Result<()>> Visitor<'de> for DriftSeed<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the drift array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0;
        while let Some(record) = seq.next_element::<RecordIn>()? {
            n += 1;
            let record = record
                .keyed()
                .ok_or_else(|| serde::de::Error::custom(format!("drift record {n} has no key")))?;
            (self.each)(record).map_err(|e| serde::de::Error::custom(format!("drift record {n}: {e:#}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_text(text: &str) -> anyhow::Result<(Header, Vec<DriftRecord>)> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("report");
        std::fs::write(&path, text)?;
        let mut records = Vec::new();
        let header = read(&path, |r| {
            records.push(r);
            Ok(())
        })?;
        Ok((header, records))
    }

    #[test]
    fn both_forms_give_the_same_records_and_header_and_unkeyed_records_have_no_key() {
        let drift = [
            json!({"key": 9, "kind": "mismatched", "ids": ["9"],
                   "diffs": [{"path": "name", "expected": "Zoë", "actual": null}, {"path": "note", "expected": 1}]}),
            json!({"key": null, "kind": "unkeyed", "ids": ["no-key"], "diffs": []}),
            json!({"key": "b", "kind": "pending", "cause": "missing", "ids": [], "diffs": []}),
        ];
        let head = json!({"schema": "recon.check/v2", "truncated": true, "run": {"allow": 3}});
        let mut report = head.clone();
        report["drift"] = json!(drift);
        let mut ndjson: Vec<String> = drift
            .iter()
            .map(|d| json!({"type": "drift", "data": d}).to_string())
            .collect();
        ndjson.push(json!({"type": "summary", "data": head}).to_string());
        for text in [
            report.to_string(),
            serde_json::to_string_pretty(&report).unwrap(),
            ndjson.join("\n"),
        ] {
            let (header, records) = read_text(&text).unwrap();
            assert!(header.readable() && header.truncated(), "{text}");
            assert_eq!(header.get("run")["allow"], 3);
            assert_eq!(header.get("absent"), &Value::Null);
            let drift: Vec<Drift> = records.into_iter().map(|r| r.into_drift().unwrap()).collect();
            assert_eq!(drift.len(), 3);
            assert_eq!(drift[0].key, Key::Int(9));
            assert_eq!(drift[0].diffs[0].actual, Some(Value::Null), "null stays a value");
            assert_eq!(drift[0].diffs[1].actual, None, "an absent member stays absent");
            assert_eq!((drift[1].kind, drift[1].key_json()), (DriftKind::Unkeyed, Value::Null));
            assert_eq!(drift[1].ids, ["no-key"]);
            assert_eq!(
                (drift[2].kind, drift[2].cause),
                (DriftKind::Pending, Some(DriftKind::Missing))
            );
        }
    }

    #[test]
    fn a_record_without_a_key_or_kind_says_where() {
        let e = read_text(r#"{"schema": "recon.check/v1", "drift": [{"key": 1}, {"kind": "missing"}]}"#).unwrap_err();
        assert!(format!("{e:#}").contains("drift record 2 has no key"), "{e:#}");
        let (_, records) = read_text("{\"type\": \"drift\", \"data\": {\"key\": 1}}\n").unwrap();
        assert_eq!(records[0].key, Some(Key::Int(1)));
        let e = records.into_iter().next().unwrap().into_drift().unwrap_err();
        assert_eq!(e.to_string(), "no kind");
        let mut n = 0;
        let e = read_json_from(
            &br#"{"drift": [{"key": 1, "kind": "missing"}, {"key": 2, "kind": "missing"}]}"#[..],
            Path::new("r.json"),
            |_| {
                n += 1;
                anyhow::ensure!(n < 2, "refused");
                Ok(())
            },
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("drift record 2: refused"), "{e:#}");
    }
}
