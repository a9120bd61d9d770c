//! The records that cross module boundaries: keys, keyed documents and drift.
//!
//! Sources produce [`KeyedDoc`]s in ascending [`Key`] order; the diff core turns two such streams into
//! [`Drift`]; reports render drift. None of these types knows which database it came from.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::document::{Doc, DocValue};

/// A document's identity. Integer keys keep all 64 bits; text keys order by unsigned UTF-8 bytes, which
/// is both Rust's `str` order, PostgreSQL's `COLLATE "C"` and Elasticsearch's keyword (BytesRef) order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Key {
    Int(i64),
    Text(String),
}

impl Key {
    /// The Elasticsearch `_id` a projector gives this key's document.
    pub fn doc_id(&self) -> String {
        match self {
            Key::Int(i) => i.to_string(),
            Key::Text(s) => s.clone(),
        }
    }

    /// The key as a JSON value, exact for 64-bit integers.
    pub fn to_json(&self) -> Value {
        match self {
            Key::Int(i) => Value::from(*i),
            Key::Text(s) => Value::String(s.clone()),
        }
    }

    /// Reads a key out of a JSON value (a document field or a sort value). Integers must fit in i64;
    /// a float-looking integer such as `7.0` is accepted only when it is integral.
    pub fn from_json(value: &Value) -> Option<Key> {
        match value {
            Value::String(s) => Some(Key::Text(s.clone())),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    return Some(Key::Int(i));
                }
                let text = n.to_string();
                let trimmed = text.strip_suffix(".0").unwrap_or(&text);
                trimmed.parse::<i64>().ok().map(Key::Int)
            }
            _ => None,
        }
    }

    /// [`Key::from_json`] for a document's value.
    pub fn from_doc(value: &DocValue) -> Option<Key> {
        match value {
            DocValue::String(s) => Some(Key::Text(s.to_string())),
            DocValue::Number(n) => {
                let trimmed = n.strip_suffix(".0").unwrap_or(n);
                trimmed.parse::<i64>().ok().map(Key::Int)
            }
            _ => None,
        }
    }

    /// The key as a document value, exact for 64-bit integers.
    pub fn to_doc(&self) -> DocValue {
        match self {
            Key::Int(i) => DocValue::from(*i),
            Key::Text(s) => DocValue::from(s.as_str()),
        }
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Key::Int(a), Key::Int(b)) => a.cmp(b),
            (Key::Text(a), Key::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            // Mixed kinds never occur in one run (the key kind is fixed by the source); order them
            // deterministically anyway so Ord stays total.
            (Key::Int(_), Key::Text(_)) => Ordering::Less,
            (Key::Text(_), Key::Int(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// Which keys a scan covers: strictly after `after`, up to and including `until`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyRange {
    pub after: Option<Key>,
    pub until: Option<Key>,
}

impl KeyRange {
    pub fn all() -> Self {
        KeyRange::default()
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.after.as_ref().is_none_or(|a| key > a) && self.until.as_ref().is_none_or(|u| key <= u)
    }
}

/// The kind of key a run compares: both sides must agree, or their sort orders differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyKind {
    /// smallint/integer/bigint in PostgreSQL; long/integer in Elasticsearch.
    Int,
    /// text/varchar/uuid (compared `COLLATE "C"`) in PostgreSQL; keyword in Elasticsearch.
    Text,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Int => "integer",
            KeyKind::Text => "text",
        })
    }
}

/// A document's version as its read model tells it, opaque to everything but that read model: a
/// conditional write names the version it expects, and only the read model that handed the token out
/// knows what it means (Elasticsearch packs its own two version numbers into it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(String);

impl Version {
    pub fn new(token: impl Into<String>) -> Version {
        Version(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a document came from and what a conditional write needs to know about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocMeta {
    /// The read model's id of the document (None for the write model).
    pub id: Option<String>,
    /// Where in the read model the document lives, when a name may span several places (the
    /// concrete index behind an Elasticsearch alias).
    pub location: Option<String>,
    /// The version a conditional write over this document names.
    pub version: Option<Version>,
    /// The write model's `updated_at` column, as epoch milliseconds UTC.
    pub updated_at_ms: Option<i64>,
    /// The document's JSON exactly as the read model stores it, when encoding `doc` again would not
    /// give those bytes back (whitespace, escapes): what an undo writes to put it back as it was.
    /// Only a read model that stores JSON text sets it, and only for whole documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Why the read model's value could not be read as a document, when it could not (a Redis value
    /// that is not JSON, or of another type). A whole document holds the value itself in place of the
    /// reason (what an undo puts back); `recon explain` shows the reason from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undecodable: Option<String>,
}

/// One document of either side, with its key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedDoc {
    pub key: Key,
    pub doc: Doc,
    pub meta: DocMeta,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// In the write model, not in the read model.
    Missing,
    /// In the read model only.
    Orphaned,
    /// In both, with differing fields.
    Mismatched,
    /// More than one read-model document carries the key.
    Duplicate,
    /// Drift on a row changed within the grace period; does not fail the run.
    Pending,
    /// A read-model document recon cannot key: its key field is absent, `null` or `[]` (or a value the
    /// read model could not index as a key). Nothing joins it to a row, so it is drift of its own.
    Unkeyed,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Missing => "missing",
            DriftKind::Orphaned => "orphaned",
            DriftKind::Mismatched => "mismatched",
            DriftKind::Duplicate => "duplicate",
            DriftKind::Pending => "pending",
            DriftKind::Unkeyed => "unkeyed",
        }
    }
}

/// One field that differs. `None` means the field is absent on that side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// Concrete path, e.g. `products[sku=SKU-00001].price` or `products[2].name`.
    pub path: String,
    /// The rule path the diff is counted under, e.g. `products.price`.
    #[serde(skip)]
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expected: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub actual: Option<Value>,
}

/// A drifted key with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub key: Key,
    pub kind: DriftKind,
    /// For `pending`: the drift it would have been outside the grace period.
    pub cause: Option<DriftKind>,
    /// `_id`s of the read-model documents carrying the key.
    pub ids: Vec<String>,
    pub diffs: Vec<FieldDiff>,
    /// The write model's document (compared fields only), when there is one.
    pub expected: Option<Doc>,
    /// The read model's documents (compared fields only), one per id.
    pub actual: Vec<KeyedDoc>,
}

impl Drift {
    /// A read-model document without a usable key. It has no [`Key`]: `key` holds an empty text key
    /// that nothing reads (reports write `null`, see [`Drift::key_json`]); the document's `_id` is in
    /// `ids`, which is how a report names it and how repair deletes it.
    pub fn unkeyed(doc: KeyedDoc) -> Drift {
        Drift {
            key: Key::Text(String::new()),
            kind: DriftKind::Unkeyed,
            cause: None,
            ids: doc.meta.id.clone().into_iter().collect(),
            diffs: Vec::new(),
            expected: None,
            actual: vec![doc],
        }
    }

    /// The key as a report writes it: `null` for an unkeyed document.
    pub fn key_json(&self) -> Value {
        match self.kind {
            DriftKind::Unkeyed => Value::Null,
            _ => self.key.to_json(),
        }
    }
}

/// Counts for the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub source_rows: u64,
    pub target_docs: u64,
    pub matched: u64,
    pub missing: u64,
    pub orphaned: u64,
    pub mismatched: u64,
    pub duplicate: u64,
    pub pending: u64,
    /// Keys that drifted in the scan but agreed when `--recheck` read them again (counted in
    /// `matched` too). Zero without a recheck.
    #[serde(default)]
    pub converged: u64,
    /// Read-model documents without a usable key (counted in `target_docs` too).
    #[serde(default)]
    pub unkeyed: u64,
}

impl std::ops::AddAssign<&Summary> for Summary {
    fn add_assign(&mut self, part: &Summary) {
        self.source_rows += part.source_rows;
        self.target_docs += part.target_docs;
        self.matched += part.matched;
        self.missing += part.missing;
        self.orphaned += part.orphaned;
        self.mismatched += part.mismatched;
        self.duplicate += part.duplicate;
        self.pending += part.pending;
        self.converged += part.converged;
        self.unkeyed += part.unkeyed;
    }
}

impl Summary {
    /// Keys (and unkeyed documents) that fail the run (pending drift does not).
    pub fn failing(&self) -> u64 {
        self.missing + self.orphaned + self.mismatched + self.duplicate + self.unkeyed
    }

    pub fn count(&mut self, kind: DriftKind) {
        match kind {
            DriftKind::Missing => self.missing += 1,
            DriftKind::Orphaned => self.orphaned += 1,
            DriftKind::Mismatched => self.mismatched += 1,
            DriftKind::Duplicate => self.duplicate += 1,
            DriftKind::Pending => self.pending += 1,
            DriftKind::Unkeyed => self.unkeyed += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_keys_order_by_utf8_bytes_not_utf16() {
        // U+FF5E (3 UTF-8 bytes, EF BD 9E) sorts before U+1F600 (F0 9F 98 80) in byte order, but after
        // it in UTF-16 order (surrogates D83D < FF5E).
        let a = Key::Text("\u{FF5E}".into());
        let b = Key::Text("\u{1F600}".into());
        assert!(a < b);
        assert!(Key::Text("Z".into()) < Key::Text("a".into()));
        assert!(Key::Text("a".into()) < Key::Text("é".into()));
    }

    #[test]
    fn integer_keys_keep_64_bits() {
        let big = json!(9007199254740993i64);
        assert_eq!(Key::from_json(&big), Some(Key::Int(9007199254740993)));
        assert_eq!(Key::Int(9007199254740993).to_json().to_string(), "9007199254740993");
        assert!(Key::Int(9007199254740992) < Key::Int(9007199254740993));
        assert_eq!(Key::from_json(&json!(true)), None);
    }
}
