//! Search answers as typed values. A scan reads every document once; deserializing each page straight
//! into these types skips the generic JSON tree of every hit's envelope (`_index`, `_id`, `_seq_no`,
//! `_primary_term`, `sort`, `_score`), of which only `_source` is kept as JSON.

use serde::Deserialize;
use serde_json::{Map, Value};

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
    #[serde(default)]
    pub hits: Vec<Hit>,
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
    #[serde(rename = "_source", default)]
    pub source: Option<Map<String, Value>>,
    #[serde(default)]
    pub sort: Vec<Value>,
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
}
