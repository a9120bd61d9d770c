//! Search answers as typed values. A scan reads every document once; deserializing each page straight
//! into these types skips the generic JSON tree of every hit's envelope (`_index`, `_id`, `_seq_no`,
//! `_primary_term`, `sort`, `_score`), of which only `_source` is kept as JSON. Also the bodies of the
//! index administration calls ([`super::admin`]).

use std::str::FromStr;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// `POST /_search`, as far as a scan needs it. Fields recon does not read are ignored.
#[derive(Debug, Deserialize)]
pub struct SearchResponse {
    #[serde(default)]
    pub timed_out: bool,
    #[serde(rename = "_shards", default)]
    pub shards: Option<Shards>,
    /// Elasticsearch may hand back a new point-in-time id with every page.
    #[serde(default)]
    pub pit_id: Option<String>,
    #[serde(default)]
    pub hits: Hits,
}

#[derive(Debug, Default, Deserialize)]
pub struct Hits {
    #[serde(default, deserialize_with = "hit_list")]
    pub hits: Vec<Hit>,
}

/// A page's hits, in one vector sized for a whole page of the default size up front: grown from
/// empty, a page of 1,000 hits (~200 KB) was copied into ever larger vectors ten times.
fn hit_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Hit>, D::Error> {
    struct HitList;
    impl<'de> Visitor<'de> for HitList {
        type Value = Vec<Hit>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of hits")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Hit>, A::Error> {
            let mut hits = Vec::with_capacity(seq.size_hint().unwrap_or(1000).min(1000));
            while let Some(hit) = seq.next_element()? {
                hits.push(hit);
            }
            Ok(hits)
        }
    }
    deserializer.deserialize_seq(HitList)
}

#[derive(Debug, Deserialize)]
pub struct Shards {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub failures: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Hit {
    #[serde(rename = "_id", default)]
    pub id: String,
    #[serde(rename = "_index", default)]
    pub index: Option<String>,
    #[serde(rename = "_seq_no", default)]
    pub seq_no: Option<i64>,
    #[serde(rename = "_primary_term", default)]
    pub primary_term: Option<i64>,
    /// Absent when `_source` is disabled or filtered to nothing.
    #[serde(rename = "_source", default, deserialize_with = "source_object")]
    pub source: Option<Map<String, Value>>,
    #[serde(default)]
    pub sort: Vec<Value>,
}

/// `_source`: an object (or `null`), read by [`ExactSeed`].
fn source_object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Map<String, Value>>, D::Error> {
    // The fields of the objects being read wait here until their object is complete; one buffer per
    // thread, so that after the first document no object needs a buffer of its own.
    thread_local! {
        static PENDING: std::cell::Cell<Vec<(String, Value)>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut pending = PENDING.with(|p| p.take());
    pending.clear();
    let read = ExactSeed { pending: &mut pending }.deserialize(deserializer);
    pending.clear();
    PENDING.with(|p| p.set(pending));
    match read? {
        Value::Object(map) => Ok(Some(map)),
        Value::Null => Ok(None),
        other => Err(de::Error::invalid_type(unexpected(&other), &"a JSON object")),
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

/// The key under which serde_json (with `arbitrary_precision`) hands a number's text to a visitor, as
/// a one-entry map. Pinned by the unit test below: were it to change, numbers would read as objects.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Reads a `serde_json::Value` equal to what serde_json builds, but with every object allocated at
/// its final size: serde_json's own visitor inserts into an empty map, which grows (rehashing and
/// moving its entries) two or three times for a document's handful of fields. An object's fields
/// are collected in `pending` (shared by the nested objects, each taking its own tail) and moved
/// into a map of exactly their number.
struct ExactSeed<'p> {
    pending: &'p mut Vec<(String, Value)>,
}

impl<'de> DeserializeSeed<'de> for ExactSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ExactSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::from(i))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::from(u))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(ExactSeed {
            pending: &mut *self.pending,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok(Value::Object(Map::new()));
        };
        if first == NUMBER_TOKEN {
            let text: String = map.next_value()?;
            return Number::from_str(&text).map(Value::Number).map_err(de::Error::custom);
        }
        let start = self.pending.len();
        let mut name = Some(first);
        while let Some(field) = name {
            let value = map.next_value_seed(ExactSeed {
                pending: &mut *self.pending,
            })?;
            self.pending.push((field, value));
            name = map.next_key::<String>()?;
        }
        // A repeated name keeps its first place and its last value, as in serde_json's own map.
        Ok(Value::Object(self.pending.drain(start..).collect()))
    }
}

/// `PUT /{index}`: the body that creates an index.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateIndex {
    /// Flat (`index.number_of_shards`) or nested (`{"index": {…}}`) keys, as Elasticsearch takes both.
    pub settings: Map<String, Value>,
    pub mappings: Map<String, Value>,
    /// Aliases created with the index, by name.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub aliases: Map<String, Value>,
}

/// One action of `POST /_aliases`; all the actions of one call are applied atomically.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AliasAction {
    /// Points `alias` at `index` (as its write index when `is_write_index`).
    Add {
        index: String,
        alias: String,
        is_write_index: bool,
    },
    /// Removes `alias` from `index`.
    Remove { index: String, alias: String },
    /// Deletes the concrete index `index` (so that an alias can take its name in the same call).
    RemoveIndex { index: String },
}

/// `POST /_aliases`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateAliases {
    pub actions: Vec<AliasAction>,
}

/// `GET /{index}/_count`.
#[derive(Debug, Deserialize)]
pub struct CountResponse {
    pub count: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_exact_keys_and_ignores_what_it_does_not_read() {
        let page: SearchResponse = serde_json::from_str(
            r#"{"pit_id":"p2","took":3,"timed_out":false,
                "_shards":{"total":2,"successful":2,"skipped":0,"failed":0},
                "hits":{"max_score":null,"hits":[
                  {"_index":"orders-1","_id":"9007199254740993","_score":null,"_seq_no":4,"_primary_term":1,
                   "_source":{"orderId":9007199254740993,"totalPrice":10.50},"sort":[9007199254740993,17]},
                  {"_index":"orders-1","_id":"x","_score":null,"sort":["x",3]}]}}"#,
        )
        .unwrap();
        assert_eq!(page.pit_id.as_deref(), Some("p2"));
        assert_eq!(page.shards.as_ref().map(|s| (s.total, s.failed)), Some((2, 0)));
        let first = &page.hits.hits[0];
        assert_eq!(first.id, "9007199254740993");
        assert_eq!((first.seq_no, first.primary_term), (Some(4), Some(1)));
        assert_eq!(first.sort[0].to_string(), "9007199254740993");
        let source = first.source.as_ref().unwrap();
        assert_eq!(source["totalPrice"].to_string(), "10.50");
        assert!(page.hits.hits[1].source.is_none());
        assert_eq!(page.hits.hits[1].seq_no, None);
    }

    #[test]
    fn source_reads_exactly_as_serde_json_does() {
        let text = r#"{"orderId":9007199254740993,"totalPrice":10.50,"tiny":1e-400,"neg":-0,"big":123456789012345678901234567890,
            "f":0.1,"t":true,"n":null,"s":"a\"é\u00e9","products":[{"sku":"A","price":12.50},{"sku":"B","name":null}],
            "nested":{"deep":{"x":[[1,2],[]],"y":{}}},"dup":1,"dup":2,"empty":[]}"#;
        let mut pending = Vec::new();
        let ours = ExactSeed { pending: &mut pending }
            .deserialize(&mut serde_json::Deserializer::from_str(text))
            .unwrap();
        assert!(pending.is_empty());
        let theirs: Value = serde_json::from_str(text).unwrap();
        assert_eq!(ours, theirs);
        // Same digits, same key order, same handling of a repeated key.
        assert_eq!(ours.to_string(), theirs.to_string());
        assert_eq!(ours["totalPrice"].to_string(), "10.50");
        assert_eq!(ours["orderId"].to_string(), "9007199254740993");
        assert_eq!(ours["dup"], 2);
        let hit: Hit = serde_json::from_str(r#"{"_id":"1","_source":null}"#).unwrap();
        assert!(hit.source.is_none());
        assert!(serde_json::from_str::<Hit>(r#"{"_id":"1","_source":[1]}"#).is_err());
        // A failed read leaves nothing behind for the next one.
        assert!(serde_json::from_str::<Hit>(r#"{"_id":"1","_source":{"a":{"b":1,"c":}}}"#).is_err());
        let next: Hit = serde_json::from_str(r#"{"_id":"2","_source":{"z":1}}"#).unwrap();
        assert_eq!(Value::Object(next.source.unwrap()), serde_json::json!({"z": 1}));
    }

    #[test]
    fn an_empty_or_failed_page_still_parses() {
        let page: SearchResponse = serde_json::from_str(
            r#"{"timed_out":true,"_shards":{"total":3,"failed":1,"failures":[{"reason":{"reason":"boom"}}]},
                "hits":{"hits":[]}}"#,
        )
        .unwrap();
        assert!(page.timed_out);
        assert!(page.hits.hits.is_empty());
        assert_eq!(page.shards.unwrap().failures[0]["reason"]["reason"], "boom");
    }

    #[test]
    fn alias_actions_are_shaped_as_the_aliases_api_takes_them() {
        let body = UpdateAliases {
            actions: vec![
                AliasAction::RemoveIndex { index: "orders".into() },
                AliasAction::Remove {
                    index: "orders-1".into(),
                    alias: "orders".into(),
                },
                AliasAction::Add {
                    index: "orders-2".into(),
                    alias: "orders".into(),
                    is_write_index: true,
                },
            ],
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"actions": [
                {"remove_index": {"index": "orders"}},
                {"remove": {"index": "orders-1", "alias": "orders"}},
                {"add": {"index": "orders-2", "alias": "orders", "is_write_index": true}}
            ]})
        );
    }

    #[test]
    fn a_create_body_leaves_out_absent_aliases() {
        let body = CreateIndex::default();
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"settings": {}, "mappings": {}})
        );
        let answer: CountResponse = serde_json::from_str(r#"{"count":3,"_shards":{"total":1}}"#).unwrap();
        assert_eq!(answer.count, Some(3));
    }
}
