//! recon's own document type: what a check builds from both sides and compares.
//!
//! A check turns every row and every read-model document into one of these, compares the pair and
//! drops both, hundreds of millions of times. `serde_json::Map` made each of those documents cost
//! about 75 allocations (every field name and every value its own heap string) and a SipHash of every
//! name, which together were over half of recon's CPU in the flat form (docs/performance.md). Here:
//! * field names and short strings (up to 24 bytes: names, dates, most text values) live inline in a
//!   [`CompactString`], so a typical document costs one allocation per object and per array;
//! * an object is a vector of fields in document order, searched without hashing: objects are small,
//!   and the compare's [`Lookup`] tries the position a name had on the other side first, then sorts
//!   the names of a wide object once;
//! * numbers keep their exact JSON text (as serde_json's `arbitrary_precision` did), so 64-bit keys and
//!   numeric digits survive and compare by decimal value in the diff core.
//!
//! The type reads and writes JSON through serde exactly as `serde_json::Map` with `preserve_order` and
//! `arbitrary_precision` does (same field order, same digits, a repeated name keeps its first place and
//! its last value), and converts to and from `serde_json` where a caller needs that tree.

use std::fmt;
use std::str::FromStr;

use compact_str::CompactString;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Number, Value};

/// The key under which serde_json (with `arbitrary_precision`) hands a number's text to a visitor as a
/// one-entry map, and takes it from a serializer as a one-field struct. Pinned by the unit tests
/// below: were it to change, numbers would read as objects and write as objects.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// A JSON object: fields in document order. Equality ignores the order, as `serde_json::Map`'s does.
#[derive(Clone, Default)]
pub struct Doc {
    fields: Vec<(CompactString, DocValue)>,
}

/// A JSON value. Numbers are their JSON text, exactly as written.
#[derive(Clone, Default, PartialEq)]
pub enum DocValue {
    #[default]
    Null,
    Bool(bool),
    /// Valid JSON number text (`-12.50`, `9007199254740993`, `1e-400`); see [`DocValue::number`].
    Number(CompactString),
    String(CompactString),
    Array(Vec<DocValue>),
    Object(Doc),
}

static NULL: DocValue = DocValue::Null;

impl Doc {
    pub fn new() -> Doc {
        Doc::default()
    }

    pub fn with_capacity(capacity: usize) -> Doc {
        Doc {
            fields: Vec::with_capacity(capacity),
        }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The field's value. Linear in the number of fields: documents are small.
    pub fn get(&self, name: &str) -> Option<&DocValue> {
        self.position(name).map(|i| &self.fields[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut DocValue> {
        self.position(name).map(|i| &mut self.fields[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|(n, _)| n == name)
    }

    /// Sets a field: a name already present keeps its place and takes the new value (returning the
    /// old one), a new name goes last.
    pub fn insert(&mut self, name: impl Into<CompactString>, value: impl Into<DocValue>) -> Option<DocValue> {
        let name = name.into();
        let value = value.into();
        match self.position(&name) {
            Some(i) => Some(std::mem::replace(&mut self.fields[i].1, value)),
            None => {
                self.fields.push((name, value));
                None
            }
        }
    }

    /// Removes a field, keeping the others in order.
    pub fn remove(&mut self, name: &str) -> Option<DocValue> {
        self.position(name).map(|i| self.fields.remove(i).1)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut DocValue) -> bool) {
        self.fields.retain_mut(|(name, value)| keep(name, value));
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &DocValue)> {
        self.fields.iter().map(|(name, value)| (name.as_str(), value))
    }

    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (&str, &mut DocValue)> {
        self.fields.iter_mut().map(|(name, value)| (name.as_str(), value))
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.fields.iter().map(|(name, _)| name.as_str())
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = &DocValue> {
        self.fields.iter().map(|(_, value)| value)
    }

    /// The same object as a `serde_json` map.
    pub fn to_json(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_json()))
            .collect()
    }

    pub fn into_json(self) -> Map<String, Value> {
        self.fields
            .into_iter()
            .map(|(name, value)| (name.into_string(), value.into_json()))
            .collect()
    }

    /// Collapses repeated names the way serde_json's map does: the first place, the last value.
    fn dedup(fields: &mut Vec<(CompactString, DocValue)>) {
        let repeated = if fields.len() <= 16 {
            (1..fields.len()).any(|i| fields[..i].iter().any(|(n, _)| *n == fields[i].0))
        } else {
            let mut names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            names.windows(2).any(|w| w[0] == w[1])
        };
        if !repeated {
            return;
        }
        let mut kept: Vec<(CompactString, DocValue)> = Vec::with_capacity(fields.len());
        for (name, value) in fields.drain(..) {
            match kept.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => kept.push((name, value)),
            }
        }
        *fields = kept;
    }
}

/// Finds one document's fields by name, many times over (the compare looks up each field of the other
/// side): at a hinted position first, then beside the field found last (the other side's order
/// reversed, or shifted by a field), by a scan while the document is small, and through an index of
/// its names sorted once, on the first miss, when it is wide. A wide document whose fields come in
/// another order than the other side's would otherwise cost a scan per field.
pub struct Lookup<'a> {
    doc: &'a Doc,
    /// The position of the field found last.
    last: Option<usize>,
    sorted: Option<Vec<(&'a str, usize)>>,
}

/// Up to this many fields a scan beats building an index.
const SCANNED: usize = 16;

impl<'a> Lookup<'a> {
    pub fn new(doc: &'a Doc) -> Lookup<'a> {
        Lookup {
            doc,
            last: None,
            sorted: None,
        }
    }

    /// The field's value, looked up first at position `hint`.
    pub fn get(&mut self, name: &str, hint: usize) -> Option<&'a DocValue> {
        let at = self.position(name, hint)?;
        self.last = Some(at);
        Some(&self.doc.fields[at].1)
    }

    fn position(&mut self, name: &str, hint: usize) -> Option<usize> {
        let fields = &self.doc.fields;
        let is = |at: usize| fields.get(at).is_some_and(|(n, _)| n == name);
        if is(hint) {
            return Some(hint);
        }
        if let Some(last) = self.last {
            if is(last + 1) {
                return Some(last + 1);
            }
            if last > 0 && is(last - 1) {
                return Some(last - 1);
            }
        }
        if fields.len() <= SCANNED {
            return self.doc.position(name);
        }
        let sorted = self.sorted.get_or_insert_with(|| {
            let mut sorted: Vec<(&str, usize)> = fields.iter().enumerate().map(|(i, (n, _))| (n.as_str(), i)).collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            sorted
        });
        // Names are unique in a document, so a match is the field.
        let at = sorted.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
        Some(sorted[at].1)
    }
}

impl DocValue {
    /// A number from its JSON text, checked: None unless `text` is a JSON number.
    pub fn number(text: &str) -> Option<DocValue> {
        is_json_number(text).then(|| DocValue::Number(CompactString::from(text)))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, DocValue::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            DocValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// A number's JSON text.
    pub fn as_number(&self) -> Option<&str> {
        match self {
            DocValue::Number(n) => Some(n),
            _ => None,
        }
    }

    /// A number written as an integer that fits in 64 bits.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_number().and_then(|n| n.parse().ok())
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            DocValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<DocValue>> {
        match self {
            DocValue::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Doc> {
        match self {
            DocValue::Object(doc) => Some(doc),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Doc> {
        match self {
            DocValue::Object(doc) => Some(doc),
            _ => None,
        }
    }

    /// The value a path names, `None` when it does not exist.
    pub fn get(&self, name: &str) -> Option<&DocValue> {
        self.as_object().and_then(|doc| doc.get(name))
    }

    /// The same value as a `serde_json` value.
    pub fn to_json(&self) -> Value {
        match self {
            DocValue::Null => Value::Null,
            DocValue::Bool(b) => Value::Bool(*b),
            DocValue::Number(n) => Value::Number(json_number(n)),
            DocValue::String(s) => Value::String(s.to_string()),
            DocValue::Array(items) => Value::Array(items.iter().map(DocValue::to_json).collect()),
            DocValue::Object(doc) => Value::Object(doc.to_json()),
        }
    }

    pub fn into_json(self) -> Value {
        match self {
            DocValue::String(s) => Value::String(s.into_string()),
            DocValue::Array(items) => Value::Array(items.into_iter().map(DocValue::into_json).collect()),
            DocValue::Object(doc) => Value::Object(doc.into_json()),
            other => other.to_json(),
        }
    }
}

fn json_number(text: &str) -> Number {
    // Every Number holds text a JSON parser accepted or that [`DocValue::number`] checked.
    Number::from_str(text).unwrap_or_else(|_| panic!("not a JSON number: {text}"))
}

/// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_json_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    let digits = |at: &mut usize| {
        let start = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at - start
    };
    match bytes.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => {
            digits(&mut at);
        }
        _ => return false,
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        if digits(&mut at) == 0 {
            return false;
        }
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        if digits(&mut at) == 0 {
            return false;
        }
    }
    at == bytes.len()
}

impl PartialEq for Doc {
    fn eq(&self, other: &Doc) -> bool {
        let mut in_other = Lookup::new(other);
        self.len() == other.len()
            && self
                .fields
                .iter()
                .enumerate()
                .all(|(i, (name, value))| in_other.get(name, i) == Some(value))
    }
}

impl PartialEq<Map<String, Value>> for Doc {
    fn eq(&self, other: &Map<String, Value>) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(name, value)| other.get(name).is_some_and(|v| value == v))
    }
}

impl PartialEq<Value> for DocValue {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (DocValue::Null, Value::Null) => true,
            (DocValue::Bool(a), Value::Bool(b)) => a == b,
            (DocValue::Number(a), Value::Number(b)) => a.as_str() == b.as_str(),
            (DocValue::String(a), Value::String(b)) => a == b,
            (DocValue::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y),
            (DocValue::Object(a), Value::Object(b)) => a == b,
            _ => false,
        }
    }
}

impl PartialEq<str> for DocValue {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for DocValue {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl std::ops::Index<&str> for Doc {
    type Output = DocValue;

    /// The field's value; [`DocValue::Null`] when absent, as indexing a `serde_json::Value` gives.
    fn index(&self, name: &str) -> &DocValue {
        self.get(name).unwrap_or(&NULL)
    }
}

impl std::ops::Index<&str> for DocValue {
    type Output = DocValue;

    fn index(&self, name: &str) -> &DocValue {
        self.get(name).unwrap_or(&NULL)
    }
}

impl std::ops::Index<usize> for DocValue {
    type Output = DocValue;

    fn index(&self, index: usize) -> &DocValue {
        self.as_array().and_then(|items| items.get(index)).unwrap_or(&NULL)
    }
}

impl From<Map<String, Value>> for Doc {
    fn from(map: Map<String, Value>) -> Doc {
        Doc {
            fields: map
                .into_iter()
                .map(|(name, value)| (CompactString::from(name), DocValue::from(value)))
                .collect(),
        }
    }
}

impl From<Doc> for Value {
    fn from(doc: Doc) -> Value {
        Value::Object(doc.into_json())
    }
}

impl From<Value> for DocValue {
    fn from(value: Value) -> DocValue {
        match value {
            Value::Null => DocValue::Null,
            Value::Bool(b) => DocValue::Bool(b),
            Value::Number(n) => DocValue::Number(CompactString::from(n.as_str())),
            Value::String(s) => DocValue::String(CompactString::from(s)),
            Value::Array(items) => DocValue::Array(items.into_iter().map(DocValue::from).collect()),
            Value::Object(map) => DocValue::Object(Doc::from(map)),
        }
    }
}

impl From<&Value> for DocValue {
    fn from(value: &Value) -> DocValue {
        DocValue::from(value.clone())
    }
}

impl From<Doc> for DocValue {
    fn from(doc: Doc) -> DocValue {
        DocValue::Object(doc)
    }
}

impl From<bool> for DocValue {
    fn from(b: bool) -> DocValue {
        DocValue::Bool(b)
    }
}

impl From<i64> for DocValue {
    fn from(i: i64) -> DocValue {
        DocValue::Number(CompactString::from(itoa::Buffer::new().format(i)))
    }
}

impl From<&str> for DocValue {
    fn from(s: &str) -> DocValue {
        DocValue::String(CompactString::from(s))
    }
}

impl From<String> for DocValue {
    fn from(s: String) -> DocValue {
        DocValue::String(CompactString::from(s))
    }
}

impl From<CompactString> for DocValue {
    fn from(s: CompactString) -> DocValue {
        DocValue::String(s)
    }
}

impl<N: Into<CompactString>> FromIterator<(N, DocValue)> for Doc {
    /// Builds an object; a repeated name keeps its first place and its last value.
    fn from_iter<I: IntoIterator<Item = (N, DocValue)>>(iter: I) -> Doc {
        let mut fields: Vec<(CompactString, DocValue)> =
            iter.into_iter().map(|(name, value)| (name.into(), value)).collect();
        Doc::dedup(&mut fields);
        Doc { fields }
    }
}

impl IntoIterator for Doc {
    type Item = (CompactString, DocValue);
    type IntoIter = std::vec::IntoIter<(CompactString, DocValue)>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.into_iter()
    }
}

impl<'a> IntoIterator for &'a Doc {
    type Item = (&'a str, &'a DocValue);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (CompactString, DocValue)>, Borrow<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter().map(|(name, value)| (name.as_str(), value))
    }
}

type Borrow<'a> = fn(&'a (CompactString, DocValue)) -> (&'a str, &'a DocValue);

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.fields.iter().map(|(n, v)| (n, v))).finish()
    }
}

impl fmt::Debug for DocValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocValue::Null => f.write_str("Null"),
            DocValue::Bool(b) => write!(f, "Bool({b})"),
            DocValue::Number(n) => write!(f, "Number({n})"),
            DocValue::String(s) => write!(f, "String({s:?})"),
            DocValue::Array(items) => f.debug_list().entries(items).finish(),
            DocValue::Object(doc) => doc.fmt(f),
        }
    }
}

/// Compact JSON, as `serde_json::Value` displays.
impl fmt::Display for DocValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Display for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (name, value) in &self.fields {
            map.serialize_entry(name.as_str(), value)?;
        }
        map.end()
    }
}

impl Serialize for DocValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            DocValue::Null => serializer.serialize_unit(),
            DocValue::Bool(b) => serializer.serialize_bool(*b),
            // What serde_json::Number does with arbitrary_precision: its serializers write the text as
            // it is (JSON text) or keep it as a Number (serde_json::to_value).
            DocValue::Number(n) => {
                let mut number = serializer.serialize_struct(NUMBER_TOKEN, 1)?;
                number.serialize_field(NUMBER_TOKEN, n.as_str())?;
                number.end()
            }
            DocValue::String(s) => serializer.serialize_str(s),
            DocValue::Array(items) => serializer.collect_seq(items),
            DocValue::Object(doc) => doc.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for DocValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DocValue, D::Error> {
        with_pending(|pending| ValueSeed { pending }.deserialize(deserializer))
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Doc, D::Error> {
        match DocValue::deserialize(deserializer)? {
            DocValue::Object(doc) => Ok(doc),
            other => Err(de::Error::invalid_type(unexpected(&other), &"a JSON object")),
        }
    }
}

/// Reads `null` as None and an object as a document; anything else is an error.
pub fn deserialize_optional_object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Doc>, D::Error> {
    match DocValue::deserialize(deserializer)? {
        DocValue::Object(doc) => Ok(Some(doc)),
        DocValue::Null => Ok(None),
        other => Err(de::Error::invalid_type(unexpected(&other), &"a JSON object")),
    }
}

fn unexpected(value: &DocValue) -> de::Unexpected<'_> {
    match value {
        DocValue::Null => de::Unexpected::Unit,
        DocValue::Bool(b) => de::Unexpected::Bool(*b),
        DocValue::Number(_) => de::Unexpected::Other("number"),
        DocValue::String(s) => de::Unexpected::Str(s),
        DocValue::Array(_) => de::Unexpected::Seq,
        DocValue::Object(_) => de::Unexpected::Map,
    }
}

type Fields = Vec<(CompactString, DocValue)>;

/// Runs a read with this thread's buffer of pending fields: an object's fields wait there until the
/// object is complete and then move into a vector of exactly their number, so a document costs one
/// allocation per object instead of a vector grown from empty. Left empty after every read, failed
/// or not.
fn with_pending<R>(read: impl FnOnce(&mut Fields) -> R) -> R {
    thread_local! {
        static PENDING: std::cell::Cell<Fields> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut pending = PENDING.with(|p| p.take());
    pending.clear();
    let result = read(&mut pending);
    pending.clear();
    PENDING.with(|p| p.set(pending));
    result
}

struct ValueSeed<'p> {
    /// Shared by the nested objects, each taking its own tail.
    pending: &'p mut Fields,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = DocValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<DocValue, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = DocValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<DocValue, E> {
        Ok(DocValue::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<DocValue, E> {
        Ok(DocValue::from(i))
    }

    fn visit_u64<E>(self, u: u64) -> Result<DocValue, E> {
        Ok(DocValue::Number(CompactString::from(itoa::Buffer::new().format(u))))
    }

    fn visit_f64<E>(self, f: f64) -> Result<DocValue, E> {
        // As serde_json::Value reads a float from a non-JSON source: NaN and infinities become null.
        Ok(Number::from_f64(f).map_or(DocValue::Null, |n| DocValue::Number(CompactString::from(n.as_str()))))
    }

    fn visit_str<E>(self, s: &str) -> Result<DocValue, E> {
        Ok(DocValue::String(CompactString::from(s)))
    }

    fn visit_string<E>(self, s: String) -> Result<DocValue, E> {
        Ok(DocValue::String(CompactString::from(s)))
    }

    fn visit_unit<E>(self) -> Result<DocValue, E> {
        Ok(DocValue::Null)
    }

    fn visit_none<E>(self) -> Result<DocValue, E> {
        Ok(DocValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<DocValue, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DocValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(ValueSeed {
            pending: &mut *self.pending,
        })? {
            items.push(item);
        }
        Ok(DocValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DocValue, A::Error> {
        let Some(first) = map.next_key::<CompactString>()? else {
            return Ok(DocValue::Object(Doc::new()));
        };
        if first == NUMBER_TOKEN {
            let text: CompactString = map.next_value()?;
            return if is_json_number(&text) {
                Ok(DocValue::Number(text))
            } else {
                Err(de::Error::custom(format_args!("invalid number {text}")))
            };
        }
        let start = self.pending.len();
        let mut name = Some(first);
        while let Some(field) = name {
            let value = map.next_value_seed(ValueSeed {
                pending: &mut *self.pending,
            })?;
            self.pending.push((field, value));
            name = map.next_key::<CompactString>()?;
        }
        let mut fields: Fields = self.pending.drain(start..).collect();
        Doc::dedup(&mut fields);
        Ok(DocValue::Object(Doc { fields }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SAMPLE: &str = r#"{"orderId":9007199254740993,"totalPrice":10.50,"tiny":1e-400,"neg":-0,
        "big":123456789012345678901234567890,"f":0.1,"t":true,"n":null,"s":"a\"é\u00e9\ud83d\ude00",
        "products":[{"sku":"A","price":12.50},{"sku":"B","name":null}],
        "a long field name over twenty-four bytes":"and a value well over twenty-four bytes long",
        "nested":{"deep":{"x":[[1,2],[]],"y":{}}},"dup":1,"dup":2,"empty":[]}"#;

    #[test]
    fn reads_and_writes_json_exactly_as_serde_json_does() {
        let ours: Doc = serde_json::from_str(SAMPLE).unwrap();
        let theirs: Map<String, Value> = serde_json::from_str(SAMPLE).unwrap();
        // Same digits, same field order, same handling of a repeated name.
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&theirs).unwrap()
        );
        assert_eq!(ours, theirs);
        assert_eq!(ours.to_json(), theirs);
        assert_eq!(Doc::from(theirs.clone()), ours);
        assert_eq!(ours.clone().into_json(), theirs);
        assert_eq!(serde_json::to_value(&ours).unwrap(), Value::Object(theirs));
        assert_eq!(ours["orderId"].as_number(), Some("9007199254740993"));
        assert_eq!(ours["orderId"].as_i64(), Some(9007199254740993));
        assert_eq!(ours["totalPrice"].to_string(), "10.50");
        assert_eq!(ours["dup"].as_number(), Some("2"));
        assert_eq!(ours.keys().position(|k| k == "dup"), Some(12));
        assert_eq!(ours["products"][1]["sku"], "B");
        assert!(ours["products"][1]["name"].is_null());
        assert!(ours["absent"]["deeper"][3].is_null());
    }

    #[test]
    fn a_failed_read_leaves_nothing_behind() {
        assert!(serde_json::from_str::<Doc>(r#"{"a":{"b":1,"c":}}"#).is_err());
        assert!(serde_json::from_str::<Doc>("[1]").is_err());
        let next: Doc = serde_json::from_str(r#"{"z":{"y":1}}"#).unwrap();
        assert_eq!(next.to_json(), json!({"z": {"y": 1}}).as_object().unwrap().clone());
    }

    #[test]
    fn equality_ignores_field_order_but_not_number_text() {
        let a: Doc = serde_json::from_str(r#"{"x":1,"y":"b"}"#).unwrap();
        let b: Doc = serde_json::from_str(r#"{"y":"b","x":1}"#).unwrap();
        let c: Doc = serde_json::from_str(r#"{"y":"b","x":1.0}"#).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, Doc::new());
    }

    #[test]
    fn a_wide_object_with_a_repeated_name_collapses_like_serde_json() {
        let mut text = String::from("{");
        for i in 0..40 {
            text.push_str(&format!("\"f{i}\":{i},"));
        }
        text.push_str("\"f7\":\"again\"}");
        let ours: Doc = serde_json::from_str(&text).unwrap();
        let theirs: Map<String, Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(ours.len(), 40);
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&theirs).unwrap()
        );
    }

    #[test]
    fn numbers_are_checked_json_text() {
        for good in ["0", "-0", "12.50", "1e-400", "1E+5", "9007199254740993", "-0.0005"] {
            assert!(DocValue::number(good).is_some(), "{good}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e", "NaN", "Infinity", "1 ", "0x10", "+1"] {
            assert!(DocValue::number(bad).is_none(), "{bad}");
        }
        assert_eq!(DocValue::from(-42i64).to_json(), json!(-42));
        assert_eq!(DocValue::from(i64::MIN).as_i64(), Some(i64::MIN));
    }

    #[test]
    fn a_lookup_finds_every_field_of_a_wide_document_in_any_order() {
        let wide: Doc = (0..100i64).map(|i| (format!("field{i}"), DocValue::from(i))).collect();
        let mut lookup = Lookup::new(&wide);
        // Reversed: the hint never matches; the field beside the last one found does.
        for (hint, i) in (0..100i64).rev().enumerate() {
            assert_eq!(lookup.get(&format!("field{i}"), hint), Some(&DocValue::from(i)));
        }
        // Shuffled (a stride coprime to 100): neither does, so the sorted index answers.
        let mut lookup = Lookup::new(&wide);
        for (hint, i) in (0..100i64).map(|k| k * 37 % 100).enumerate() {
            assert_eq!(lookup.get(&format!("field{i}"), hint), Some(&DocValue::from(i)));
        }
        assert_eq!(lookup.get("field100", 0), None);
        assert_eq!(lookup.get("", 500), None);
        let small: Doc = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let mut lookup = Lookup::new(&small);
        assert_eq!(lookup.get("a", 1), Some(&DocValue::from(1i64)));
        assert_eq!(lookup.get("c", 0), None);
    }

    #[test]
    fn insert_keeps_a_present_name_in_place() {
        let mut doc = Doc::new();
        doc.insert("a", 1i64);
        doc.insert("b", "x");
        assert_eq!(doc.insert("a", true), Some(DocValue::from(1i64)));
        assert_eq!(doc.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(doc.remove("a"), Some(DocValue::Bool(true)));
        assert_eq!(doc.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(doc.to_string(), r#"{"b":"x"}"#);
    }
}
