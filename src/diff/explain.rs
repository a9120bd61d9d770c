//! What `recon explain` shows of one key: both sides' documents flattened into paths, side by side,
//! each path with the `[compare]` rule it is judged by, and whether it differs. Pure, like the rest
//! of the diff core: the verdict and the differences come from [`Comparator::diff`] (through the
//! join); this only lays the documents out so that a person can see them.
//!
//! Paths are written as the differences write them (`products[sku=B].price`), so a path of the view
//! and a path of a difference name the same place: the elements of a keyed set by their key, of an
//! ordered array by their index. An unkeyed set (compared as a multiset) is one row holding the whole
//! array, since its elements have no names; so is an ignored field.

use std::collections::HashMap;

use serde_json::Value;

use super::compare::{selector_identity, write_selector_value, Comparator, Rule, RuleNode, ScalarRule};
use crate::model::{Doc, DocValue, DriftKind, FieldDiff, Key, KeyedDoc};

/// One leaf of a flattened document.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    /// Concrete path, as a difference names it: `products[sku=B].price`.
    pub path: String,
    /// Rule path (field names only): `products.price`.
    pub field: String,
    pub value: Value,
}

/// One path of the side-by-side view.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub path: String,
    /// The rule the path is judged by, in words: `exact`, `instant`, `number ±0.01`, `set by sku`,
    /// `exact, in set by sku`, `ignored`, `not compared`.
    pub rule: String,
    /// The write model's value; None when the path is absent there (or there is no row).
    pub expected: Option<Value>,
    /// Each read-model document's value, in the order the documents were given.
    pub actual: Vec<Option<Value>>,
    /// Per read-model document: whether one of its differences is at (or inside, or around) this path.
    pub differs: Vec<bool>,
}

impl Row {
    pub fn differs_anywhere(&self) -> bool {
        self.differs.iter().any(|d| *d)
    }
}

/// What `recon explain` found for one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub key: Key,
    pub verdict: Verdict,
    /// The differences the verdict rests on (of the compared document), each with its rule's name.
    pub differences: Vec<(FieldDiff, String)>,
    /// The write model's row as projected, whole; None when there is no row.
    pub expected: Option<KeyedDoc>,
    /// The read model's documents with the key, whole (several for a duplicate).
    pub actual: Vec<ActualDoc>,
    /// Both sides flattened side by side.
    pub rows: Vec<Row>,
}

/// One read-model document of an [`Explanation`].
#[derive(Debug, Clone, PartialEq)]
pub struct ActualDoc {
    pub doc: KeyedDoc,
    /// Id, location and version in the read model's own words (labelled values).
    pub metadata: Vec<(String, Value)>,
    /// Whether the verdict's differences are of this document (for a duplicate: the one a projector
    /// would have written).
    pub compared: bool,
}

/// A key's verdict: the join's classification, or neither side having the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    InSync,
    Drift(DriftKind),
    /// No row in the write model and no document in the read model.
    Absent,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::InSync => "in_sync",
            Verdict::Drift(kind) => kind.as_str(),
            Verdict::Absent => "absent",
        }
    }

    pub fn is_drift(self) -> bool {
        matches!(self, Verdict::Drift(_))
    }
}

/// What a read model's fields are, as far as the view is concerned.
pub const NOT_COMPARED: &str = "not compared (not in the projection)";

impl Comparator {
    /// The rule a value at rule path `field` (`products.price`) is compared by, in words. Scalar rules
    /// are inherited down the path; a set names its key; an element field of a set says so.
    pub fn rule_name(&self, field: &str) -> String {
        let mut node = Some(&self.root);
        let mut scalar: Option<&ScalarRule> = None;
        let mut within_set: Option<&Option<String>> = None;
        let mut set_here: Option<&Option<String>> = None;
        for name in field.split('.') {
            // A name below a set's path is inside its elements.
            if let Some(set) = set_here.take() {
                within_set = Some(set);
            }
            node = node.and_then(|n| n.child(name));
            let Some(current) = node else { continue };
            if current.ignored {
                return "ignored".to_string();
            }
            match &current.rule {
                Some(Rule::Scalar(rule)) => scalar = Some(rule),
                Some(Rule::Set { key }) => set_here = Some(key),
                None => {}
            }
        }
        if let Some(set) = set_here {
            return set_name(set);
        }
        let name = scalar_name(scalar);
        match within_set {
            Some(set) => format!("{name}, in {}", set_name(set)),
            None => name,
        }
    }

    /// The document as leaves in document order, paths written as differences write them. An ignored
    /// field, an unkeyed set, an empty object or array, and a keyed set whose elements are not all
    /// objects with distinct keys are one leaf each.
    pub fn flatten(&self, doc: &Doc) -> Vec<Leaf> {
        let mut out = Vec::new();
        flatten_object(Some(&self.root), "", "", doc, &mut out);
        out
    }

    /// The side-by-side view of one key: the expected document (None when the write model has no
    /// row) against each read-model document with its own differences (as [`Comparator::diff`] found
    /// them). Rows follow the expected document's order, then paths only a read-model document has.
    /// `compared` says whether a top-level field is compared at all (a read model may hold fields the
    /// projection does not produce, which a check never reads).
    pub fn side_by_side(
        &self,
        expected: Option<&Doc>,
        actual: &[(&Doc, &[FieldDiff])],
        compared: &dyn Fn(&str) -> bool,
    ) -> Vec<Row> {
        let columns = actual.len();
        let mut rows: Vec<Row> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        let mut slot = |leaf: &Leaf, rows: &mut Vec<Row>| -> usize {
            *at.entry(leaf.path.clone()).or_insert_with(|| {
                let top = leaf.field.split('.').next().unwrap_or_default();
                let mut rule = self.rule_name(&leaf.field);
                if rule != "ignored" && !compared(top) {
                    rule = NOT_COMPARED.to_string();
                }
                rows.push(Row {
                    path: leaf.path.clone(),
                    rule,
                    expected: None,
                    actual: vec![None; columns],
                    differs: vec![false; columns],
                });
                rows.len() - 1
            })
        };
        if let Some(expected) = expected {
            for leaf in self.flatten(expected) {
                let i = slot(&leaf, &mut rows);
                rows[i].expected = Some(leaf.value);
            }
        }
        for (column, (doc, _)) in actual.iter().enumerate() {
            for leaf in self.flatten(doc) {
                let i = slot(&leaf, &mut rows);
                rows[i].actual[column] = Some(leaf.value);
            }
        }
        for (column, (_, diffs)) in actual.iter().enumerate() {
            for row in rows.iter_mut() {
                row.differs[column] = diffs.iter().any(|d| touches(&d.path, &row.path));
            }
        }
        rows
    }
}

fn set_name(key: &Option<String>) -> String {
    match key {
        Some(key) => format!("set by {key}"),
        None => "set (any order)".to_string(),
    }
}

fn scalar_name(rule: Option<&ScalarRule>) -> String {
    match rule {
        None | Some(ScalarRule::Exact) => "exact".to_string(),
        Some(ScalarRule::CaseInsensitive) => "case-insensitive".to_string(),
        Some(ScalarRule::Instant) => "instant".to_string(),
        Some(ScalarRule::Number { tolerance: None }) => "number".to_string(),
        Some(ScalarRule::Number {
            tolerance: Some(tolerance),
        }) => format!("number ±{tolerance}"),
    }
}

/// Whether a difference at `diff` concerns the view's `row`: the same path, a path inside it (an
/// unkeyed set's `tags[?]` in the row `tags`), or around it (a whole element `products[sku=B]` that
/// one side lacks, around the row `products[sku=B].price`).
fn touches(diff: &str, row: &str) -> bool {
    let inside = |long: &str, short: &str| {
        long.strip_prefix(short)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    diff == row || inside(diff, row) || inside(row, diff)
}

fn join_field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn flatten_object(node: Option<&RuleNode>, path: &str, field: &str, doc: &Doc, out: &mut Vec<Leaf>) {
    for (name, value) in doc {
        let child = node.and_then(|n| n.child(name));
        let path = join_field(path, name);
        let field = join_field(field, name);
        if child.is_some_and(|c| c.ignored) {
            out.push(Leaf {
                path,
                field,
                value: value.to_json(),
            });
            continue;
        }
        flatten_value(child, path, field, value, out);
    }
}

fn flatten_value(node: Option<&RuleNode>, path: String, field: String, value: &DocValue, out: &mut Vec<Leaf>) {
    let set = match node.and_then(|n| n.rule.as_ref()) {
        Some(Rule::Set { key }) => Some(key.as_deref()),
        _ => None,
    };
    match value {
        DocValue::Object(map) if !map.is_empty() => flatten_object(node, &path, &field, map, out),
        DocValue::Array(items) if !items.is_empty() => match set {
            None => {
                for (i, item) in items.iter().enumerate() {
                    flatten_value(node, format!("{path}[{i}]"), field.clone(), item, out);
                }
            }
            Some(Some(key)) if distinct_keys(items, key) => {
                for item in items {
                    let mut element = format!("{path}[{key}=");
                    write_selector_value(&mut element, item.get(key));
                    element.push(']');
                    flatten_value(node, element, field.clone(), item, out);
                }
            }
            Some(_) => out.push(Leaf {
                path,
                field,
                value: value.to_json(),
            }),
        },
        _ => out.push(Leaf {
            path,
            field,
            value: value.to_json(),
        }),
    }
}

/// Whether every element is an object and no two share a key value: then each element has a name.
fn distinct_keys(items: &[DocValue], key: &str) -> bool {
    let mut seen = std::collections::HashSet::new();
    items
        .iter()
        .all(|item| item.as_object().is_some() && seen.insert(selector_identity(item.get(key))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn comparator(toml_text: &str) -> Comparator {
        let cfg: crate::config::CompareConfig = toml::from_str(toml_text).unwrap();
        Comparator::new(&cfg).unwrap()
    }

    fn doc(value: Value) -> Doc {
        Doc::from(value.as_object().unwrap().clone())
    }

    const RULES: &str = r#"
        ignore = ["indexedAt", "customer.internal"]
        [fields]
        products = { as = "set", key = "sku" }
        tags = { as = "set" }
        orderDate = { as = "instant" }
        totalPrice = { as = "number", tolerance = 0.01 }
        customer = { as = "case_insensitive" }
        "customer.id" = { as = "exact" }
        "products.price" = { as = "number" }
    "#;

    #[test]
    fn rules_are_named_as_a_person_reads_them() {
        let c = comparator(RULES);
        assert_eq!(c.rule_name("orderId"), "exact");
        assert_eq!(c.rule_name("orderDate"), "instant");
        assert_eq!(c.rule_name("totalPrice"), "number ±0.01");
        assert_eq!(c.rule_name("products"), "set by sku");
        assert_eq!(c.rule_name("products.price"), "number, in set by sku");
        assert_eq!(c.rule_name("products.name"), "exact, in set by sku");
        assert_eq!(c.rule_name("tags"), "set (any order)");
        assert_eq!(c.rule_name("indexedAt"), "ignored");
        assert_eq!(c.rule_name("customer.internal"), "ignored");
        assert_eq!(c.rule_name("customer.name"), "case-insensitive");
        assert_eq!(c.rule_name("customer.id"), "exact");
    }

    #[test]
    fn documents_flatten_into_the_paths_differences_use() {
        let c = comparator(RULES);
        let leaves = c.flatten(&doc(json!({
            "orderId": 1,
            "products": [{"sku": "B", "price": 50}, {"sku": "A", "price": 55}],
            "lines": [{"n": 1}, 7],
            "tags": ["x", "y"],
            "indexedAt": {"at": "2026-01-01"},
            "empty": [],
            "dup": [],
        })));
        let paths: Vec<(&str, &str)> = leaves.iter().map(|l| (l.path.as_str(), l.field.as_str())).collect();
        assert_eq!(
            paths,
            [
                ("orderId", "orderId"),
                ("products[sku=B].sku", "products.sku"),
                ("products[sku=B].price", "products.price"),
                ("products[sku=A].sku", "products.sku"),
                ("products[sku=A].price", "products.price"),
                ("lines[0].n", "lines.n"),
                ("lines[1]", "lines"),
                ("tags", "tags"),
                ("indexedAt", "indexedAt"),
                ("empty", "empty"),
                ("dup", "dup"),
            ]
        );
        // A keyed set with a key twice has no names for its elements: one leaf.
        let leaves = c.flatten(&doc(json!({"products": [{"sku": "A"}, {"sku": "A"}]})));
        assert_eq!(leaves.len(), 1);
        assert_eq!(leaves[0].value, json!([{"sku": "A"}, {"sku": "A"}]));
    }

    #[test]
    fn the_view_marks_the_paths_each_document_differs_at() {
        let c = comparator(RULES);
        let expected = doc(json!({
            "orderId": 1, "products": [{"sku": "A", "price": 50}, {"sku": "B", "price": 50}], "tags": ["x"]
        }));
        let first = doc(json!({
            "orderId": 1, "products": [{"sku": "A", "price": 55}], "tags": ["x"], "indexedAt": "2026-01-01",
            "stamp": 3
        }));
        let second = expected.clone();
        // What a check compares of the first: no `stamp`, which the projection does not produce.
        let mut first_compared = first.clone();
        first_compared.remove("stamp");
        let first_diffs = c.diff(&expected, &first_compared);
        let second_diffs = c.diff(&expected, &second);
        assert!(second_diffs.is_empty());
        let compared = |top: &str| top != "stamp";
        let rows = c.side_by_side(
            Some(&expected),
            &[(&first, &first_diffs), (&second, &second_diffs)],
            &compared,
        );
        let view: Vec<(&str, &str, bool)> = rows
            .iter()
            .map(|r| (r.path.as_str(), r.rule.as_str(), r.differs[0]))
            .collect();
        assert_eq!(
            view,
            [
                ("orderId", "exact", false),
                ("products[sku=A].sku", "exact, in set by sku", false),
                ("products[sku=A].price", "number, in set by sku", true),
                ("products[sku=B].sku", "exact, in set by sku", true),
                ("products[sku=B].price", "number, in set by sku", true),
                ("tags", "set (any order)", false),
                ("indexedAt", "ignored", false),
                ("stamp", NOT_COMPARED, false),
            ]
        );
        assert!(rows.iter().all(|r| !r.differs[1]));
        let b_price = &rows[4];
        assert_eq!(
            (b_price.expected.clone(), b_price.actual.clone()),
            (Some(json!(50)), vec![None, Some(json!(50))])
        );
    }

    #[test]
    fn a_difference_touches_its_path_and_what_is_inside_or_around_it() {
        assert!(touches("a.b", "a.b"));
        assert!(touches("tags[?]", "tags"));
        assert!(touches("products[sku=B]", "products[sku=B].price"));
        assert!(!touches("products[sku=B]", "products[sku=BB].price"));
        assert!(!touches("ab", "a"));
    }
}
