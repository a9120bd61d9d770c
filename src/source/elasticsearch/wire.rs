//! Search answers as typed values. A scan reads every document once; deserializing each page straight
//! into these types skips the generic JSON tree of every hit's envelope (`_index`, `_id`, `_seq_no`,
//! `_primary_term`, `sort`, `_score`), of which only `_source` is kept as JSON. Also the bodies of the
//! index administration calls ([`super::admin`]).

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::document::{Doc, DocValue};

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
    pub source: Option<Doc>,
    /// Read as document values: a number's text stays inline instead of a heap string per hit.
    #[serde(default)]
    pub sort: Vec<DocValue>,
}

/// `_source`: an object (or `null`), read straight into recon's document type.
fn source_object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Doc>, D::Error> {
    crate::document::deserialize_optional_object(deserializer)
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
    fn source_is_an_object_or_null() {
        let hit: Hit = serde_json::from_str(r#"{"_id":"1","_source":null}"#).unwrap();
        assert!(hit.source.is_none());
        assert!(serde_json::from_str::<Hit>(r#"{"_id":"1","_source":[1]}"#).is_err());
        // A failed read leaves nothing behind for the next one.
        assert!(serde_json::from_str::<Hit>(r#"{"_id":"1","_source":{"a":{"b":1,"c":}}}"#).is_err());
        let next: Hit = serde_json::from_str(r#"{"_id":"2","_source":{"z":1,"p":12.50}}"#).unwrap();
        assert_eq!(next.source.unwrap().to_string(), r#"{"z":1,"p":12.50}"#);
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
