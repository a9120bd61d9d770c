//! Reading the records of `recon.audit/v1` logs and `recon.repair-plan/v1` plans, which only ever held
//! Elasticsearch's versions: each record is rewritten into today's shape before it is read.
//!
//! v1 named a document's place `index` and its version by `_seq_no` and `_primary_term`: a write's
//! condition as `if_seq_no` + `if_primary_term`, a before-image's and an outcome's version as
//! `seq_no` + `primary_term`. Today's records name the place `location` and carry one opaque
//! `version` / `if_version` token, which for Elasticsearch is [`super::write::version`].

use serde_json::{Map, Value};

use super::write::version;

/// Rewrites a v1 `plan`, `intent` or `outcome` record (or a plan file's action) in place into
/// today's shape. A record already in today's shape is left as it is, so a v1 log that a newer recon
/// resumed (and appended to) reads whole.
pub fn upgrade(record: &mut Value) {
    let Some(fields) = record.as_object_mut() else {
        return;
    };
    upgrade_fields(fields, "if_seq_no", "if_primary_term", "if_version");
    upgrade_fields(fields, "seq_no", "primary_term", "version");
    if let Some(Value::Object(before)) = fields.get_mut("before") {
        upgrade_fields(before, "seq_no", "primary_term", "version");
    }
}

fn upgrade_fields(fields: &mut Map<String, Value>, seq_no: &str, primary_term: &str, into: &str) {
    if let Some(index) = fields.remove("index") {
        fields.entry("location").or_insert(index);
    }
    if !fields.contains_key(seq_no) && !fields.contains_key(primary_term) {
        return;
    }
    let seq_no = fields.remove(seq_no).and_then(|v| v.as_i64());
    let primary_term = fields.remove(primary_term).and_then(|v| v.as_i64());
    let token = match (seq_no, primary_term) {
        (Some(seq_no), Some(term)) => Value::String(version(seq_no, term).as_str().to_string()),
        _ => Value::Null,
    };
    fields.entry(into).or_insert(token);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upgraded(mut record: Value) -> Value {
        upgrade(&mut record);
        record
    }

    #[test]
    fn v1_records_read_as_locations_and_version_tokens() {
        let intent = json!({"type": "intent", "seq": 1, "action": "delete", "key": 5, "index": "orders",
            "id": "5", "if_seq_no": 2, "if_primary_term": 1,
            "before": {"index": "orders-v1", "source": {"orderId": 5}, "seq_no": 2, "primary_term": 1}});
        assert_eq!(
            upgraded(intent),
            json!({"type": "intent", "seq": 1, "action": "delete", "key": 5, "location": "orders", "id": "5",
                "if_version": "2:1",
                "before": {"location": "orders-v1", "source": {"orderId": 5}, "version": "2:1"}})
        );
        let create = json!({"type": "plan", "seq": 3, "action": "create", "index": "orders", "id": "3",
            "if_seq_no": null, "if_primary_term": null});
        assert_eq!(
            upgraded(create),
            json!({"type": "plan", "seq": 3, "action": "create", "location": "orders", "id": "3",
                "if_version": null})
        );
        let outcome = json!({"type": "outcome", "seq": 1, "status": "applied", "result": "updated",
            "index": "orders", "seq_no": 5, "primary_term": 1, "error": null});
        assert_eq!(
            upgraded(outcome),
            json!({"type": "outcome", "seq": 1, "status": "applied", "result": "updated", "location": "orders",
                "version": "5:1", "error": null})
        );
    }

    #[test]
    fn records_in_todays_shape_are_left_alone() {
        let today = json!({"type": "outcome", "seq": 1, "status": "applied", "location": "orders",
            "version": "5:1", "before": {"location": "o", "source": {}, "version": "2:1"}});
        assert_eq!(upgraded(today.clone()), today);
    }
}
