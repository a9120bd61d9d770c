//! Field-by-field comparison of one expected document against one actual document.
//!
//! The `[compare]` rules are compiled once into a tree keyed by field name ([`RuleNode`]), so the walk
//! over a document follows the tree with plain lookups and allocates nothing while values are equal:
//! the concrete path of a difference is kept as a stack of borrowed segments and only rendered into a
//! string when a difference is found.
//!
//! # Paths
//! * object fields are joined with dots: `customer.address.city`;
//! * array elements compared by position: `products[2].price`;
//! * elements of an `as = "set"` array with a `key`: `products[sku=SKU-00001].price`; an element present
//!   on one side only is reported at `products[sku=SKU-00001]` with the whole element as its value;
//! * elements of an `as = "set"` array without a `key` (a multiset of whole values): an element that
//!   has no equal partner on the other side is reported at `tags[?]`, with the element as the value on
//!   its own side and `None` on the other. `[?]` reads "some element"; several unmatched elements give
//!   several diffs with the same path, told apart by their values.
//! * a set `key` value that is not unique on one side: one diff at `products[sku=SKU-00001]` whose
//!   `expected` and `actual` are arrays of every element carrying that key on that side (`None` for a
//!   side with none). Identical duplicates on both sides are not a difference.
//! * an element without the `key` field is grouped under `[sku=null]`; string key values appear bare,
//!   numbers as written; numeric keys match by value (`1` matches `1.0`, not `"1"`).
//!
//! Field names are not escaped: a name containing `.` or `[` makes a path that reads ambiguously.
//!
//! # Rules
//! Scalar rules (`instant`, `number`, `exact`, `case_insensitive`) apply to the values at their path
//! and below it (array elements included) until a deeper rule overrides them. `set` applies only to
//! the array at its own path.
//!
//! The `field` of a difference is its rule path: the field names only (`products.price`), whatever the
//! indices or selectors.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use xxhash_rust::xxh3::Xxh3;

use super::value::{instant_from_millis, numbers_equal, parse_instant, within_tolerance, Decimal};
use crate::config::{CompareConfig, FieldRule, RuleKind};
use crate::document::{Doc, DocValue, Lookup};
use crate::model::FieldDiff;

/// A `[compare]` setting that cannot be applied. Displays as `compare.fields."totalPrice": tolerance
/// must be a number`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct RuleError {
    /// Where the setting lives, e.g. `compare.fields."totalPrice"` or `compare.ignore`.
    pub setting: String,
    pub problem: String,
}

impl RuleError {
    fn field(path: &str, problem: impl Into<String>) -> Self {
        RuleError {
            setting: format!("compare.fields.\"{path}\""),
            problem: problem.into(),
        }
    }
}

/// The `[compare]` paths whose first segment names no field the documents have, as `setting "path"`: a
/// typo there would silently change what is compared. `[compare.fields]` rules must start at a field the
/// projection produces (`projected`); `ignore` entries may also start at a field only the read model has
/// (`read_model_only`, e.g. a projector's `indexedAt` stamp, which a replace keeps), or anywhere when those
/// fields are unknown (None). Empty when every path is known.
pub fn unknown_fields(
    cfg: &CompareConfig,
    projected: &[String],
    read_model_only: Option<&std::collections::BTreeSet<String>>,
) -> Vec<String> {
    let first = |path: &str| path.split('.').next().unwrap_or_default().to_string();
    let produced = |path: &str| projected.contains(&first(path));
    let mut unknown: Vec<String> = cfg
        .fields
        .keys()
        .filter(|path| !produced(path))
        .map(|path| format!("compare.fields \"{path}\""))
        .collect();
    if let Some(read_model_only) = read_model_only {
        unknown.extend(
            cfg.ignore
                .iter()
                .filter(|path| !produced(path) && !read_model_only.contains(&first(path)))
                .map(|path| format!("compare.ignore \"{path}\"")),
        );
    }
    unknown
}

/// How a scalar compares. Scalar rules are inherited by everything below their path (a rule on
/// `customer` as `case_insensitive` covers `customer.name`) until a deeper rule overrides it; `exact`
/// exists to restore the default under such a parent.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ScalarRule {
    Exact,
    CaseInsensitive,
    Instant,
    Number { tolerance: Option<BigDecimal> },
}

/// A rule at exactly one path.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Rule {
    Scalar(ScalarRule),
    /// The array at this path compares ignoring order. Not inherited: nested arrays stay ordered
    /// unless they have their own rule.
    Set {
        key: Option<String>,
    },
}

/// One field name's rules and the rules below it.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct RuleNode {
    /// A list, not a map: a level holds a handful of rules, and a linear scan of short names beats
    /// hashing every field name of every document.
    pub(super) children: Vec<(String, RuleNode)>,
    pub(super) ignored: bool,
    /// Some path at or below this node is ignored: projection must descend here.
    has_ignored: bool,
    pub(super) rule: Option<Rule>,
}

impl RuleNode {
    pub(super) fn child(&self, name: &str) -> Option<&RuleNode> {
        self.children.iter().find(|(n, _)| n == name).map(|(_, node)| node)
    }

    fn child_mut(&mut self, name: &str) -> &mut RuleNode {
        let index = match self.children.iter().position(|(n, _)| n == name) {
            Some(index) => index,
            None => {
                self.children.push((name.to_string(), RuleNode::default()));
                self.children.len() - 1
            }
        };
        &mut self.children[index].1
    }

    fn insert(&mut self, path: &[&str]) -> &mut RuleNode {
        match path.split_first() {
            None => self,
            Some((first, rest)) => self.child_mut(first).insert(rest),
        }
    }

    fn mark_ignored(&mut self, path: &[&str]) {
        self.has_ignored = true;
        match path.split_first() {
            None => self.ignored = true,
            Some((first, rest)) => self.child_mut(first).mark_ignored(rest),
        }
    }
}

/// Splits a dotted rule path, rejecting empty segments and array indices.
fn split_path(path: &str) -> Option<Vec<&str>> {
    let segments: Vec<&str> = path.split('.').collect();
    let valid = segments.iter().all(|s| !s.is_empty() && !s.contains(['[', ']']));
    valid.then_some(segments)
}

const PATH_HINT: &str = "not a field path (use dotted field names without array indices, e.g. products.price)";

/// Compares documents by the `[compare]` rules. Build once per run; cheap to share by reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparator {
    pub(super) root: RuleNode,
    null_equals_missing: bool,
}

impl Comparator {
    /// Compiles and validates the rules.
    pub fn new(cfg: &CompareConfig) -> Result<Comparator, RuleError> {
        let mut root = RuleNode::default();
        for path in &cfg.ignore {
            let segments = split_path(path).ok_or_else(|| RuleError {
                setting: "compare.ignore".to_string(),
                problem: format!("\"{path}\" is {PATH_HINT}"),
            })?;
            root.mark_ignored(&segments);
        }
        for (path, field_rule) in &cfg.fields {
            let segments = split_path(path).ok_or_else(|| RuleError::field(path, PATH_HINT))?;
            let rule = compile_rule(path, field_rule)?;
            root.insert(&segments).rule = Some(rule);
        }
        Ok(Comparator {
            root,
            null_equals_missing: cfg.null_equals_missing,
        })
    }

    /// The differences between two documents: in `expected`'s field order, then the fields only
    /// `actual` has. Empty when the documents agree under the rules.
    pub fn diff(&self, expected: &Doc, actual: &Doc) -> Vec<FieldDiff> {
        let mut walk = Walk {
            comparator: self,
            path: Vec::new(),
            diffs: Vec::new(),
            dry: false,
            differs: false,
        };
        walk.objects(Some(&self.root), None, expected, actual);
        walk.diffs
    }

    /// Removes the ignored paths from a document, so evidence and reports never carry them.
    pub fn project(&self, doc: &mut Doc) {
        if self.root.has_ignored {
            project_object(&self.root, doc);
        }
    }

    /// A 128-bit fingerprint of the document as this comparator sees it: ignored paths are left out,
    /// everything else is hashed exactly as written (field order, number text). Equal fingerprints mean
    /// identical documents, which [`Comparator::diff`] always finds equal; different fingerprints prove
    /// nothing (`1.0` and `1`, reordered fields), so a caller compares such documents with `diff`.
    pub fn fingerprint(&self, doc: &Doc) -> u128 {
        let mut hasher = Xxh3::new();
        fingerprint_object(Some(&self.root), doc, &mut hasher);
        hasher.digest128()
    }
}

fn fingerprint_object(node: Option<&RuleNode>, doc: &Doc, hasher: &mut Xxh3) {
    hasher.update(b"{");
    for (name, value) in doc.iter() {
        let child = node.filter(|n| n.has_ignored).and_then(|n| n.child(name));
        if child.is_some_and(|c| c.ignored) {
            continue;
        }
        fingerprint_str(name, hasher);
        fingerprint_value(child, value, hasher);
    }
    hasher.update(b"}");
}

fn fingerprint_value(node: Option<&RuleNode>, value: &DocValue, hasher: &mut Xxh3) {
    match value {
        DocValue::Null => hasher.update(b"n"),
        DocValue::Bool(true) => hasher.update(b"t"),
        DocValue::Bool(false) => hasher.update(b"f"),
        DocValue::Number(n) => {
            hasher.update(b"#");
            fingerprint_str(n.as_str(), hasher);
        }
        DocValue::String(s) => {
            hasher.update(b"\"");
            fingerprint_str(s, hasher);
        }
        DocValue::Array(items) => {
            hasher.update(b"[");
            hasher.update(&(items.len() as u64).to_le_bytes());
            for item in items {
                fingerprint_value(node, item, hasher);
            }
        }
        DocValue::Object(map) => fingerprint_object(node, map, hasher),
    }
}

/// Length-prefixed, so that no two different sequences of strings hash the same bytes.
fn fingerprint_str(s: &str, hasher: &mut Xxh3) {
    hasher.update(&(s.len() as u64).to_le_bytes());
    hasher.update(s.as_bytes());
}

fn compile_rule(path: &str, field_rule: &FieldRule) -> Result<Rule, RuleError> {
    if field_rule.key.is_some() && field_rule.kind != RuleKind::Set {
        return Err(RuleError::field(path, "key applies only to as = \"set\""));
    }
    if field_rule.tolerance.is_some() && field_rule.kind != RuleKind::Number {
        return Err(RuleError::field(path, "tolerance applies only to as = \"number\""));
    }
    Ok(match field_rule.kind {
        RuleKind::Exact => Rule::Scalar(ScalarRule::Exact),
        RuleKind::CaseInsensitive => Rule::Scalar(ScalarRule::CaseInsensitive),
        RuleKind::Instant => Rule::Scalar(ScalarRule::Instant),
        RuleKind::Number => {
            let tolerance = field_rule
                .tolerance
                .as_ref()
                .map(|t| compile_tolerance(path, t))
                .transpose()?;
            Rule::Scalar(ScalarRule::Number { tolerance })
        }
        RuleKind::Set => {
            if field_rule
                .key
                .as_deref()
                .is_some_and(|k| k.is_empty() || k.contains(['.', '[', ']']))
            {
                return Err(RuleError::field(
                    path,
                    "key must name one field of the array's elements",
                ));
            }
            Rule::Set {
                key: field_rule.key.clone(),
            }
        }
    })
}

fn compile_tolerance(path: &str, tolerance: &toml::Value) -> Result<BigDecimal, RuleError> {
    let decimal = match tolerance {
        toml::Value::Integer(i) => BigDecimal::from(*i),
        // The shortest text that reads back as the same float is what the user wrote (0.005), so
        // the tolerance is exactly the decimal in the file, not the binary float nearest to it.
        toml::Value::Float(f) if f.is_finite() => {
            BigDecimal::from_str(&f.to_string()).map_err(|_| RuleError::field(path, "tolerance must be a number"))?
        }
        toml::Value::Float(_) => return Err(RuleError::field(path, "tolerance must be a finite number")),
        _ => return Err(RuleError::field(path, "tolerance must be a number")),
    };
    if decimal.sign() == bigdecimal::num_bigint::Sign::Minus {
        return Err(RuleError::field(path, "tolerance must be a non-negative number"));
    }
    Ok(decimal)
}

fn project_object(node: &RuleNode, doc: &mut Doc) {
    for (name, child) in &node.children {
        if child.ignored {
            doc.remove(name);
        } else if child.has_ignored {
            if let Some(value) = doc.get_mut(name) {
                project_value(child, value);
            }
        }
    }
}

fn project_value(node: &RuleNode, value: &mut DocValue) {
    match value {
        DocValue::Object(map) => project_object(node, map),
        DocValue::Array(items) => items.iter_mut().for_each(|item| project_value(node, item)),
        _ => {}
    }
}

/// One step of a concrete path, borrowed from the rules and documents being compared.
#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    Field(&'a str),
    Index(usize),
    /// An element of a keyed set: `[sku=SKU-00001]`.
    Selector {
        key: &'a str,
        value: Option<&'a DocValue>,
    },
    /// An unmatched element of an unkeyed set: `[?]`.
    Unmatched,
}

/// How a set key's value appears in a path: strings bare, numbers as written, absent as `null`.
pub(super) fn write_selector_value(out: &mut String, value: Option<&DocValue>) {
    match value {
        None | Some(DocValue::Null) => out.push_str("null"),
        Some(DocValue::String(s)) => out.push_str(s),
        Some(DocValue::Number(n)) => out.push_str(n.as_str()),
        Some(other) => out.push_str(&other.to_string()),
    }
}

/// Identifies a set key's value for matching: equal values (by the default rules, so `1` and `1.0`)
/// give equal texts; the leading tag keeps `"1"` and `1` apart.
pub(super) fn selector_identity(value: Option<&DocValue>) -> String {
    match value {
        None | Some(DocValue::Null) => "z".to_string(),
        Some(DocValue::String(s)) => format!("s{s}"),
        Some(DocValue::Number(n)) => match Decimal::parse(n.as_str()) {
            Some(d) => format!("n{}", d.canonical()),
            None => format!("n{n}"),
        },
        Some(other) => format!("j{other}"),
    }
}

fn selectors_equal(a: Option<&DocValue>, b: Option<&DocValue>) -> bool {
    match (a, b) {
        (None | Some(DocValue::Null), None | Some(DocValue::Null)) => true,
        (Some(DocValue::String(x)), Some(DocValue::String(y))) => x == y,
        (Some(DocValue::Number(x)), Some(DocValue::Number(y))) => numbers_equal(x.as_str(), y.as_str()),
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn is_null_or_absent(value: Option<&DocValue>) -> bool {
    matches!(value, None | Some(DocValue::Null))
}

/// The state of one document comparison.
struct Walk<'a> {
    comparator: &'a Comparator,
    path: Vec<Segment<'a>>,
    diffs: Vec<FieldDiff>,
    /// Dry mode only answers "do these differ?" (matching set elements): nothing is recorded.
    dry: bool,
    differs: bool,
}

impl<'a> Walk<'a> {
    fn objects(
        &mut self,
        node: Option<&'a RuleNode>,
        scalar: Option<&'a ScalarRule>,
        expected: &'a Doc,
        actual: &'a Doc,
    ) {
        // Fields of `actual` also found in `expected`: when that is all of them, the second pass
        // (actual-only fields) has nothing to do and is skipped.
        let mut shared = 0;
        let mut in_actual = Lookup::new(actual);
        for (position, (name, e)) in expected.iter().enumerate() {
            if self.dry && self.differs {
                return;
            }
            // Both sides usually list their fields in the same order.
            let a = in_actual.get(name, position);
            shared += usize::from(a.is_some());
            let child = node.and_then(|n| n.child(name));
            if child.is_some_and(|c| c.ignored) {
                continue;
            }
            self.path.push(Segment::Field(name));
            self.values(child, scalar, Some(e), a);
            self.path.pop();
        }
        if shared == actual.len() {
            return;
        }
        let mut in_expected = Lookup::new(expected);
        for (position, (name, a)) in actual.iter().enumerate() {
            if self.dry && self.differs {
                return;
            }
            if in_expected.get(name, position).is_some() {
                continue;
            }
            let child = node.and_then(|n| n.child(name));
            if child.is_some_and(|c| c.ignored) {
                continue;
            }
            self.path.push(Segment::Field(name));
            self.values(child, scalar, None, Some(a));
            self.path.pop();
        }
    }

    /// Compares the values at the current path; `scalar` is the inherited scalar rule.
    fn values(
        &mut self,
        node: Option<&'a RuleNode>,
        scalar: Option<&'a ScalarRule>,
        expected: Option<&'a DocValue>,
        actual: Option<&'a DocValue>,
    ) {
        let (scalar, set) = match node.and_then(|n| n.rule.as_ref()) {
            Some(Rule::Scalar(rule)) => (Some(rule), None),
            Some(Rule::Set { key }) => (scalar, Some(key.as_deref())),
            None => (scalar, None),
        };
        match (expected, actual) {
            (None, None) => {}
            (Some(DocValue::Null), Some(DocValue::Null)) => {}
            (e, a) if self.comparator.null_equals_missing && is_null_or_absent(e) && is_null_or_absent(a) => {}
            (Some(DocValue::Object(e)), Some(DocValue::Object(a))) => self.objects(node, scalar, e, a),
            (Some(DocValue::Array(e)), Some(DocValue::Array(a))) => match set {
                None => self.ordered(node, scalar, e, a),
                Some(None) => self.multiset(node, scalar, e, a),
                Some(Some(key)) => self.keyed_set(node, scalar, key, e, a),
            },
            (Some(e), Some(a)) => {
                if !scalars_equal(scalar, e, a) {
                    self.record(node, Some(e), Some(a));
                }
            }
            (e, a) => self.record(node, e, a),
        }
    }

    fn ordered(
        &mut self,
        node: Option<&'a RuleNode>,
        scalar: Option<&'a ScalarRule>,
        expected: &'a [DocValue],
        actual: &'a [DocValue],
    ) {
        for index in 0..expected.len().max(actual.len()) {
            if self.dry && self.differs {
                return;
            }
            self.path.push(Segment::Index(index));
            match (expected.get(index), actual.get(index)) {
                (Some(e), Some(a)) => self.values(node, scalar, Some(e), Some(a)),
                // A length difference is always reported, even for a trailing null under
                // null_equals_missing: an element is not a field.
                (e, a) => self.record(node, e, a),
            }
            self.path.pop();
        }
    }

    /// Arrays as multisets of whole values: each expected element takes the first equal, not yet
    /// taken actual element; what is left over on either side is reported at `[?]`.
    fn multiset(
        &mut self,
        node: Option<&'a RuleNode>,
        scalar: Option<&'a ScalarRule>,
        expected: &'a [DocValue],
        actual: &'a [DocValue],
    ) {
        if expected.len() == actual.len() && expected.iter().zip(actual).all(|(e, a)| self.equal(node, scalar, e, a)) {
            return;
        }
        let mut taken = vec![false; actual.len()];
        let mut unmatched_expected = Vec::new();
        for (index, e) in expected.iter().enumerate() {
            // Searching from the element's own position makes mostly-aligned arrays linear.
            let start = index.min(actual.len());
            let partner = (start..actual.len())
                .chain(0..start)
                .find(|&i| !taken[i] && self.equal(node, scalar, e, &actual[i]));
            match partner {
                Some(i) => taken[i] = true,
                None => unmatched_expected.push(e),
            }
        }
        self.path.push(Segment::Unmatched);
        for e in unmatched_expected {
            self.record(node, Some(e), None);
        }
        for (a, _) in actual.iter().zip(&taken).filter(|(_, &t)| !t) {
            self.record(node, None, Some(a));
        }
        self.path.pop();
    }

    /// Arrays as sets of elements identified by their `key` field, order ignored.
    fn keyed_set(
        &mut self,
        node: Option<&'a RuleNode>,
        scalar: Option<&'a ScalarRule>,
        key: &'a str,
        expected: &'a [DocValue],
        actual: &'a [DocValue],
    ) {
        let key_of = |v: &'a DocValue| v.as_object().and_then(|m| m.get(key));
        // The common case: the same keys in the same order, no key twice. Checked on the keys looked
        // up once; quadratic, so only for arrays of ordinary size.
        if expected.len() == actual.len() && expected.len() <= 64 {
            let selectors: Vec<Option<&'a DocValue>> = expected.iter().map(key_of).collect();
            let aligned = selectors
                .iter()
                .zip(actual)
                .all(|(s, a)| selectors_equal(*s, key_of(a)))
                && selectors
                    .iter()
                    .enumerate()
                    .all(|(i, s)| selectors[..i].iter().all(|p| !selectors_equal(*p, *s)));
            if aligned {
                for ((e, a), selector) in expected.iter().zip(actual).zip(selectors) {
                    if self.dry && self.differs {
                        return;
                    }
                    self.path.push(Segment::Selector { key, value: selector });
                    self.values(node, scalar, Some(e), Some(a));
                    self.path.pop();
                }
                return;
            }
        }

        struct Group<'v> {
            selector: Option<&'v DocValue>,
            expected: Vec<&'v DocValue>,
            actual: Vec<&'v DocValue>,
        }
        let mut groups: Vec<Group<'a>> = Vec::new();
        let mut by_identity: HashMap<String, usize> = HashMap::new();
        for (element, is_expected) in expected
            .iter()
            .map(|e| (e, true))
            .chain(actual.iter().map(|a| (a, false)))
        {
            let selector = key_of(element);
            let slot = *by_identity.entry(selector_identity(selector)).or_insert_with(|| {
                groups.push(Group {
                    selector,
                    expected: Vec::new(),
                    actual: Vec::new(),
                });
                groups.len() - 1
            });
            let group = &mut groups[slot];
            if is_expected {
                group.expected.push(element);
            } else {
                group.actual.push(element);
            }
        }
        for group in groups {
            if self.dry && self.differs {
                return;
            }
            self.path.push(Segment::Selector {
                key,
                value: group.selector,
            });
            match (group.expected.as_slice(), group.actual.as_slice()) {
                ([e], [a]) => self.values(node, scalar, Some(e), Some(a)),
                ([e], []) => self.record(node, Some(e), None),
                ([], [a]) => self.record(node, None, Some(a)),
                (es, as_) => {
                    // The key is not unique on at least one side. Reported as one diff holding every
                    // element with that key on each side (an array, None when that side has none),
                    // unless both sides hold the same elements: a faithful copy of duplicated input.
                    if !self.same_elements(node, scalar, es, as_) {
                        let as_array = |items: &[&DocValue]| {
                            (!items.is_empty()).then(|| DocValue::Array(items.iter().map(|v| (*v).clone()).collect()))
                        };
                        self.record_owned(node, as_array(es), as_array(as_));
                    }
                }
            }
            self.path.pop();
        }
    }

    /// Whether two groups of elements are equal as multisets.
    fn same_elements(
        &mut self,
        node: Option<&'a RuleNode>,
        scalar: Option<&'a ScalarRule>,
        expected: &[&'a DocValue],
        actual: &[&'a DocValue],
    ) -> bool {
        if expected.len() != actual.len() {
            return false;
        }
        let mut taken = vec![false; actual.len()];
        expected.iter().all(|e| {
            let partner = (0..actual.len()).find(|&i| !taken[i] && self.equal(node, scalar, e, actual[i]));
            partner.map(|i| taken[i] = true).is_some()
        })
    }

    /// Compares without recording anything.
    fn equal(
        &mut self,
        node: Option<&'a RuleNode>,
        scalar: Option<&'a ScalarRule>,
        e: &'a DocValue,
        a: &'a DocValue,
    ) -> bool {
        let saved = (self.dry, self.differs);
        self.dry = true;
        self.differs = false;
        let depth = self.path.len();
        self.values(node, scalar, Some(e), Some(a));
        self.path.truncate(depth);
        let equal = !self.differs;
        (self.dry, self.differs) = saved;
        equal
    }

    fn record(&mut self, node: Option<&'a RuleNode>, expected: Option<&DocValue>, actual: Option<&DocValue>) {
        if self.dry {
            self.differs = true;
            return;
        }
        self.record_owned(node, expected.cloned(), actual.cloned());
    }

    fn record_owned(
        &mut self,
        node: Option<&'a RuleNode>,
        mut expected: Option<DocValue>,
        mut actual: Option<DocValue>,
    ) {
        if self.dry {
            self.differs = true;
            return;
        }
        // Evidence never carries ignored fields.
        if let Some(node) = node.filter(|n| n.has_ignored) {
            for value in expected.iter_mut().chain(actual.iter_mut()) {
                project_value(node, value);
            }
        }
        let (path, field) = self.render_path();
        self.diffs.push(FieldDiff {
            path,
            field,
            expected: expected.map(DocValue::into_json),
            actual: actual.map(DocValue::into_json),
        });
    }

    /// The concrete path and the rule path of the current position.
    fn render_path(&self) -> (String, String) {
        let mut path = String::new();
        let mut field = String::new();
        for segment in &self.path {
            match segment {
                Segment::Field(name) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(name);
                }
                Segment::Index(i) => {
                    let _ = write!(path, "[{i}]");
                }
                Segment::Selector { key, value } => {
                    path.push('[');
                    path.push_str(key);
                    path.push('=');
                    write_selector_value(&mut path, *value);
                    path.push(']');
                }
                Segment::Unmatched => path.push_str("[?]"),
            }
        }
        (path, field)
    }
}

/// Two non-container values (or a container against a different type) under a scalar rule.
fn scalars_equal(rule: Option<&ScalarRule>, e: &DocValue, a: &DocValue) -> bool {
    if default_equal(e, a) {
        return true;
    }
    match rule {
        None | Some(ScalarRule::Exact) => false,
        Some(ScalarRule::CaseInsensitive) => match (e, a) {
            (DocValue::String(x), DocValue::String(y)) => {
                if x.is_ascii() && y.is_ascii() {
                    x.eq_ignore_ascii_case(y)
                } else {
                    x.chars()
                        .flat_map(char::to_lowercase)
                        .eq(y.chars().flat_map(char::to_lowercase))
                }
            }
            _ => false,
        },
        // Unparseable values fall back to the exact comparison, which already said no.
        Some(ScalarRule::Instant) => match (instant_of(e), instant_of(a)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        Some(ScalarRule::Number { tolerance }) => match (number_text(e), number_text(a)) {
            (Some(x), Some(y)) => match tolerance {
                Some(tolerance) => within_tolerance(x, y, tolerance).unwrap_or(false),
                None => match (Decimal::parse(x), Decimal::parse(y)) {
                    (Some(x), Some(y)) => x.value_eq(&y),
                    _ => false,
                },
            },
            _ => false,
        },
    }
}

/// The default comparison: numbers by exact decimal value, everything else exactly, types never mix.
fn default_equal(e: &DocValue, a: &DocValue) -> bool {
    match (e, a) {
        (DocValue::Number(x), DocValue::Number(y)) => numbers_equal(x.as_str(), y.as_str()),
        (DocValue::String(x), DocValue::String(y)) => x == y,
        (DocValue::Bool(x), DocValue::Bool(y)) => x == y,
        (DocValue::Null, DocValue::Null) => true,
        _ => false,
    }
}

fn instant_of(value: &DocValue) -> Option<chrono::DateTime<chrono::Utc>> {
    match value {
        DocValue::String(s) => parse_instant(s),
        DocValue::Number(n) => n.parse::<i64>().ok().and_then(instant_from_millis),
        _ => None,
    }
}

/// A number's text, or a numeric string's (trimmed) under the `number` rule.
fn number_text(value: &DocValue) -> Option<&str> {
    match value {
        DocValue::Number(n) => Some(n.as_str()),
        DocValue::String(s) => Some(s.trim()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn comparator(toml_text: &str) -> Comparator {
        let cfg: CompareConfig = toml::from_str(toml_text).expect("valid [compare] TOML");
        Comparator::new(&cfg).expect("valid rules")
    }

    fn rule_error(toml_text: &str) -> String {
        let cfg: CompareConfig = toml::from_str(toml_text).expect("valid [compare] TOML");
        Comparator::new(&cfg).expect_err("rules should be rejected").to_string()
    }

    fn doc(value: Value) -> Doc {
        match value {
            Value::Object(map) => Doc::from(map),
            other => panic!("not an object: {other}"),
        }
    }

    /// Parses JSON text the way sources do, keeping every number's digits.
    fn parsed(text: &str) -> Doc {
        serde_json::from_str(text).expect("valid JSON")
    }

    fn paths(diffs: &[FieldDiff]) -> Vec<&str> {
        diffs.iter().map(|d| d.path.as_str()).collect()
    }

    #[test]
    fn rules_and_ignores_must_name_a_known_field() {
        let cfg: CompareConfig = toml::from_str(
            "ignore = [\"indexedAt\", \"products.note\", \"updatedat\"]\n\
             [fields]\ntotalprice = { as = \"number\" }\n\"products.price\" = { as = \"number\" }\n\
             indexedAt = { as = \"instant\" }",
        )
        .unwrap();
        let projected: Vec<String> = ["orderId", "products", "totalPrice", "updatedAt"]
            .map(String::from)
            .into();
        let read_model_only: std::collections::BTreeSet<String> = ["indexedAt".to_string()].into();
        assert_eq!(
            unknown_fields(&cfg, &projected, Some(&read_model_only)),
            [
                "compare.fields \"indexedAt\"",
                "compare.fields \"totalprice\"",
                "compare.ignore \"updatedat\""
            ]
        );
        // Without the read model's fields, ignore entries are not judged.
        assert_eq!(unknown_fields(&cfg, &projected, None).len(), 2);
        assert!(unknown_fields(&CompareConfig::default(), &projected, None).is_empty());
    }

    #[test]
    fn equal_documents_have_no_diffs() {
        let c = comparator("");
        let order = parsed(
            r#"{"orderId": 1, "customerName": "Ada", "products": [{"name": "pen", "price": 1.5}],
                "totalPrice": 1000, "orderDate": "2024-01-01T10:00:00Z", "paid": true}"#,
        );
        assert!(c.diff(&order, &order.clone()).is_empty());
    }

    #[test]
    fn numbers_compare_by_exact_decimal_value() {
        let c = comparator("");
        let e = parsed(r#"{"a": 1000, "b": 1000, "c": 1000, "d": 9007199254740993, "e": 0.3}"#);
        let a = parsed(r#"{"a": 1000.0, "b": 1000.00, "c": 1e3, "d": 9007199254740992, "e": 0.30000000000000004}"#);
        let diffs = c.diff(&e, &a);
        assert_eq!(paths(&diffs), ["d", "e"]);
        assert_eq!(diffs[0].expected.as_ref().unwrap().to_string(), "9007199254740993");
        assert_eq!(diffs[0].actual.as_ref().unwrap().to_string(), "9007199254740992");
    }

    #[test]
    fn types_never_mix_without_a_rule() {
        let c = comparator("");
        let diffs = c.diff(
            &doc(json!({"n": 12, "s": "true", "b": true, "o": {"x": 1}})),
            &doc(json!({"n": "12", "s": true, "b": "true", "o": 1})),
        );
        assert_eq!(paths(&diffs), ["n", "s", "b", "o"]);
        assert_eq!(diffs[3].expected, Some(json!({"x": 1})));
        assert_eq!(diffs[3].actual, Some(json!(1)));
    }

    #[test]
    fn strings_compare_exactly_by_default() {
        let c = comparator("");
        let diffs = c.diff(&doc(json!({"name": "Ada"})), &doc(json!({"name": "ada"})));
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].field, "name");
    }

    #[test]
    fn diffs_follow_expected_field_order_then_actual_only_fields() {
        let c = comparator("");
        let e = parsed(r#"{"z": 1, "a": 1, "m": 1}"#);
        let a = parsed(r#"{"y": 2, "m": 2, "a": 2, "b": 2}"#);
        let diffs = c.diff(&e, &a);
        assert_eq!(paths(&diffs), ["z", "a", "m", "y", "b"]);
        assert_eq!(diffs[0].actual, None);
        assert_eq!(diffs[3].expected, None);
        assert_eq!(diffs[3].actual, Some(json!(2)));
    }

    #[test]
    fn nested_paths_and_rule_fields() {
        let c = comparator("");
        let e = doc(json!({"customer": {"address": {"city": "Oslo"}},
                            "products": [{"name": "pen", "price": 1}, {"name": "ink", "price": 2}]}));
        let a = doc(json!({"customer": {"address": {"city": "Bergen"}},
                            "products": [{"name": "pen", "price": 1}, {"name": "ink", "price": 3}]}));
        let diffs = c.diff(&e, &a);
        assert_eq!(paths(&diffs), ["customer.address.city", "products[1].price"]);
        assert_eq!(diffs[1].field, "products.price");
        assert_eq!(diffs[1].expected, Some(json!(2)));
        assert_eq!(diffs[1].actual, Some(json!(3)));
    }

    #[test]
    fn array_length_differences_are_reported_per_element() {
        let c = comparator("");
        let e = doc(json!({"products": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]}));
        let a = doc(json!({"products": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}));
        let diffs = c.diff(&e, &a);
        assert_eq!(paths(&diffs), ["products[3]"]);
        assert_eq!(diffs[0].field, "products");
        assert_eq!(diffs[0].expected, Some(json!({"name": "d"})));
        assert_eq!(diffs[0].actual, None);
        let reversed = c.diff(&a, &e);
        assert_eq!(reversed[0].expected, None);
        assert_eq!(reversed[0].actual, Some(json!({"name": "d"})));
        // Order matters without a set rule.
        let swapped = c.diff(&doc(json!({"t": [1, 2]})), &doc(json!({"t": [2, 1]})));
        assert_eq!(paths(&swapped), ["t[0]", "t[1]"]);
    }

    #[test]
    fn ignored_paths_are_skipped_on_both_sides_at_any_depth() {
        let c = comparator(r#"ignore = ["indexedAt", "products.internalNote", "customer.meta.seen"]"#);
        let e = doc(json!({"orderId": 1, "products": [{"name": "pen", "internalNote": "x"}],
                           "customer": {"meta": {"seen": 1, "tier": "gold"}}}));
        let a = doc(json!({"orderId": 1, "indexedAt": "2024-01-01",
                           "products": [{"name": "pen", "internalNote": "y"}],
                           "customer": {"meta": {"seen": 2, "tier": "gold"}}}));
        assert!(c.diff(&e, &a).is_empty());
        // Nested arrays of arrays are covered as well.
        let e = doc(json!({"products": [[{"internalNote": 1, "name": "a"}]]}));
        let a = doc(json!({"products": [[{"internalNote": 2, "name": "a"}]]}));
        assert!(c.diff(&e, &a).is_empty());
    }

    #[test]
    fn fingerprints_leave_out_ignored_paths_and_tell_any_other_difference() {
        let c = comparator(r#"ignore = ["indexedAt", "products.internalNote"]"#);
        let fp = |text: &str| c.fingerprint(&parsed(text));
        let base = fp(r#"{"orderId": 1, "products": [{"name": "pen", "internalNote": "x", "price": 1.50}]}"#);
        // Ignored paths, at the top and inside array elements, do not count.
        assert_eq!(
            base,
            fp(
                r#"{"orderId": 1, "indexedAt": "now", "products": [{"name": "pen", "internalNote": "y", "price": 1.50}]}"#
            )
        );
        // Anything else does: a value, the number's text, a type, the field order, an element more.
        for other in [
            r#"{"orderId": 2, "products": [{"name": "pen", "internalNote": "x", "price": 1.50}]}"#,
            r#"{"orderId": 1, "products": [{"name": "pen", "internalNote": "x", "price": 1.5}]}"#,
            r#"{"orderId": "1", "products": [{"name": "pen", "internalNote": "x", "price": 1.50}]}"#,
            r#"{"products": [{"name": "pen", "internalNote": "x", "price": 1.50}], "orderId": 1}"#,
            r#"{"orderId": 1, "products": [{"name": "pen", "price": 1.50}, {}]}"#,
            r#"{"orderId": 1, "products": []}"#,
        ] {
            assert_ne!(base, fp(other), "{other}");
        }
        // Strings are length-prefixed: moving a boundary changes the fingerprint.
        assert_ne!(fp(r#"{"a": ["ab", "c"]}"#), fp(r#"{"a": ["a", "bc"]}"#));
        assert_ne!(fp(r#"{"ab": "c"}"#), fp(r#"{"a": "bc"}"#));
        assert_ne!(fp(r#"{"a": null}"#), fp(r#"{"a": "null"}"#));
        // Without ignore rules nothing is left out.
        let plain = comparator("");
        assert_ne!(
            plain.fingerprint(&parsed(r#"{"orderId": 1}"#)),
            plain.fingerprint(&parsed(r#"{"orderId": 1, "indexedAt": "now"}"#))
        );
    }

    #[test]
    fn evidence_and_projection_drop_ignored_paths() {
        let c = comparator(r#"ignore = ["indexedAt", "products.internalNote"]"#);
        let e = doc(json!({"products": [{"name": "pen", "internalNote": "x"}]}));
        let a = doc(json!({"products": []}));
        let diffs = c.diff(&e, &a);
        assert_eq!(paths(&diffs), ["products[0]"]);
        assert_eq!(diffs[0].expected, Some(json!({"name": "pen"})));

        let mut projected = doc(json!({"orderId": 7, "indexedAt": "now", "total": 1,
                                       "products": [{"name": "pen", "internalNote": "x", "price": 1}]}));
        c.project(&mut projected);
        assert_eq!(
            Value::from(projected.clone()),
            json!({"orderId": 7, "total": 1, "products": [{"name": "pen", "price": 1}]})
        );
        // Order of the remaining fields is kept.
        assert_eq!(projected.keys().collect::<Vec<_>>(), ["orderId", "total", "products"]);
    }

    #[test]
    fn null_equals_missing_by_default_also_nested() {
        let c = comparator("");
        let e = doc(json!({"note": null, "customer": {"phone": null}, "products": [{"discount": null}]}));
        let a = doc(json!({"customer": {}, "products": [{}]}));
        assert!(c.diff(&e, &a).is_empty());
        assert!(c.diff(&a, &e).is_empty());
        // A null is still different from a value.
        let diffs = c.diff(&doc(json!({"note": null})), &doc(json!({"note": "x"})));
        assert_eq!(diffs[0].expected, Some(Value::Null));
    }

    #[test]
    fn null_differs_from_missing_when_configured() {
        let c = comparator("null_equals_missing = false");
        let diffs = c.diff(&doc(json!({"note": null, "c": {"p": null}})), &doc(json!({"c": {}})));
        assert_eq!(paths(&diffs), ["note", "c.p"]);
        assert_eq!(diffs[0].expected, Some(Value::Null));
        assert_eq!(diffs[0].actual, None);
        assert!(c
            .diff(&doc(json!({"note": null})), &doc(json!({"note": null})))
            .is_empty());
    }

    #[test]
    fn instant_rule_compares_points_in_time() {
        let c = comparator(
            r#"[fields.orderDate]
               as = "instant""#,
        );
        let e = doc(json!({"orderDate": "2024-01-01T10:00:00Z"}));
        for same in [
            json!("2024-01-01T11:00:00+01:00"),
            json!("2024-01-01T10:00:00.000Z"),
            json!("2024-01-01T10:00:00"),
            json!(1704103200000i64),
        ] {
            assert!(c.diff(&e, &doc(json!({"orderDate": same}))).is_empty(), "{same}");
        }
        assert!(c
            .diff(
                &doc(json!({"orderDate": "2024-01-01"})),
                &doc(json!({"orderDate": "2024-01-01T00:00:00Z"}))
            )
            .is_empty());
        assert_eq!(c.diff(&e, &doc(json!({"orderDate": "2024-01-01T10:00:01Z"}))).len(), 1);
        // Unparseable values fall back to exact comparison.
        assert!(c
            .diff(&doc(json!({"orderDate": "soon"})), &doc(json!({"orderDate": "soon"})))
            .is_empty());
        assert_eq!(
            c.diff(&doc(json!({"orderDate": "soon"})), &doc(json!({"orderDate": "later"})))
                .len(),
            1
        );
        // Without the rule, equal instants written differently are a difference.
        assert_eq!(
            comparator("")
                .diff(&e, &doc(json!({"orderDate": "2024-01-01T11:00:00+01:00"})))
                .len(),
            1
        );
    }

    #[test]
    fn instant_rule_applies_to_array_elements() {
        let c = comparator(
            r#"[fields."products.shippedAt"]
               as = "instant""#,
        );
        let e = doc(json!({"products": [{"shippedAt": "2024-01-01T10:00:00Z"}]}));
        let a = doc(json!({"products": [{"shippedAt": "2024-01-01T12:00:00+02:00"}]}));
        assert!(c.diff(&e, &a).is_empty());
    }

    #[test]
    fn number_rule_with_tolerance_in_exact_decimals() {
        let c = comparator(
            r#"[fields.totalPrice]
               as = "number"
               tolerance = 0.005"#,
        );
        let e = parsed(r#"{"totalPrice": 12.50}"#);
        assert!(c.diff(&e, &parsed(r#"{"totalPrice": 12.505}"#)).is_empty());
        assert!(c.diff(&e, &parsed(r#"{"totalPrice": 12.495}"#)).is_empty());
        assert!(c.diff(&e, &parsed(r#"{"totalPrice": "12.504"}"#)).is_empty());
        assert_eq!(c.diff(&e, &parsed(r#"{"totalPrice": 12.5051}"#)).len(), 1);
        assert_eq!(c.diff(&e, &parsed(r#"{"totalPrice": "twelve"}"#)).len(), 1);
    }

    #[test]
    fn number_rule_accepts_numeric_strings() {
        let c = comparator(
            r#"[fields.price]
               as = "number""#,
        );
        assert!(c
            .diff(&parsed(r#"{"price": "12.50"}"#), &parsed(r#"{"price": 12.5}"#))
            .is_empty());
        assert_eq!(
            c.diff(&parsed(r#"{"price": "12.51"}"#), &parsed(r#"{"price": 12.5}"#))
                .len(),
            1
        );
        let integer_tolerance = comparator(
            r#"[fields.price]
               as = "number"
               tolerance = 1"#,
        );
        assert!(integer_tolerance
            .diff(&parsed(r#"{"price": 10}"#), &parsed(r#"{"price": 11}"#))
            .is_empty());
        assert_eq!(
            integer_tolerance
                .diff(&parsed(r#"{"price": 10}"#), &parsed(r#"{"price": 11.01}"#))
                .len(),
            1
        );
    }

    #[test]
    fn case_insensitive_rule_and_exact_override() {
        let c = comparator(
            r#"[fields.customer]
               as = "case_insensitive"
               [fields."customer.id"]
               as = "exact""#,
        );
        let e = doc(json!({"customer": {"name": "ÅSA Ölund", "email": "A@B.C", "id": "ab"}}));
        let a = doc(json!({"customer": {"name": "åsa ölund", "email": "a@b.c", "id": "AB"}}));
        let diffs = c.diff(&e, &a);
        assert_eq!(paths(&diffs), ["customer.id"]);
    }

    fn products_by_sku() -> Comparator {
        comparator(
            r#"[fields.products]
               as = "set"
               key = "sku""#,
        )
    }

    #[test]
    fn keyed_set_ignores_order() {
        let c = products_by_sku();
        let e = doc(json!({"products": [{"sku": "A", "price": 1}, {"sku": "B", "price": 2}]}));
        let a = doc(json!({"products": [{"sku": "B", "price": 2}, {"sku": "A", "price": 1.0}]}));
        assert!(c.diff(&e, &a).is_empty());
    }

    #[test]
    fn keyed_set_reports_by_selector() {
        let c = products_by_sku();
        let e = doc(json!({"products": [{"sku": "SKU-00001", "price": 1}, {"sku": "SKU-00002", "price": 2}]}));
        let a = doc(json!({"products": [{"sku": "SKU-00003", "price": 3}, {"sku": "SKU-00001", "price": 9}]}));
        let diffs = c.diff(&e, &a);
        assert_eq!(
            paths(&diffs),
            [
                "products[sku=SKU-00001].price",
                "products[sku=SKU-00002]",
                "products[sku=SKU-00003]"
            ]
        );
        assert_eq!(diffs[0].field, "products.price");
        assert_eq!(diffs[1].field, "products");
        assert_eq!(diffs[1].expected, Some(json!({"sku": "SKU-00002", "price": 2})));
        assert_eq!(diffs[1].actual, None);
        assert_eq!(diffs[2].expected, None);
        assert_eq!(diffs[2].actual, Some(json!({"sku": "SKU-00003", "price": 3})));
    }

    #[test]
    fn keyed_set_in_aligned_order_still_uses_selectors() {
        let c = products_by_sku();
        let e = doc(json!({"products": [{"sku": "A", "price": 1}]}));
        let a = doc(json!({"products": [{"sku": "A", "price": 2}]}));
        assert_eq!(paths(&c.diff(&e, &a)), ["products[sku=A].price"]);
    }

    #[test]
    fn keyed_set_matches_numeric_keys_by_value_not_text() {
        let c = comparator(
            r#"[fields.lines]
               as = "set"
               key = "n""#,
        );
        let e = parsed(r#"{"lines": [{"n": 1, "q": 1}, {"n": 2, "q": 1}]}"#);
        let a = parsed(r#"{"lines": [{"n": 2.0, "q": 1}, {"n": 1.0, "q": 1}]}"#);
        assert!(c.diff(&e, &a).is_empty());
        // A string key is not a number key.
        let a = parsed(r#"{"lines": [{"n": "2", "q": 1}, {"n": 1, "q": 1}]}"#);
        assert_eq!(paths(&c.diff(&e, &a)), ["lines[n=2]", "lines[n=2]"]);
    }

    #[test]
    fn keyed_set_reports_duplicate_keys() {
        let c = products_by_sku();
        let e = doc(json!({"products": [{"sku": "A", "price": 1}, {"sku": "B", "price": 2}]}));
        let a =
            doc(json!({"products": [{"sku": "A", "price": 1}, {"sku": "A", "price": 5}, {"sku": "B", "price": 2}]}));
        let diffs = c.diff(&e, &a);
        assert_eq!(paths(&diffs), ["products[sku=A]"]);
        assert_eq!(diffs[0].expected, Some(json!([{"sku": "A", "price": 1}])));
        assert_eq!(
            diffs[0].actual,
            Some(json!([{"sku": "A", "price": 1}, {"sku": "A", "price": 5}]))
        );
        // The same duplicates on both sides are a faithful copy, whatever their order.
        let both =
            doc(json!({"products": [{"sku": "A", "price": 5}, {"sku": "A", "price": 1}, {"sku": "B", "price": 2}]}));
        assert!(c.diff(&both, &a).is_empty());
    }

    #[test]
    fn keyed_set_elements_without_the_key_group_under_null() {
        let c = products_by_sku();
        let e = doc(json!({"products": [{"name": "x"}]}));
        let a = doc(json!({"products": [{"name": "y"}]}));
        let diffs = c.diff(&e, &a);
        assert_eq!(paths(&diffs), ["products[sku=null].name"]);
    }

    #[test]
    fn keyed_set_rules_apply_inside_elements() {
        let c = comparator(
            r#"ignore = ["products.internalNote"]
               [fields.products]
               as = "set"
               key = "sku"
               [fields."products.price"]
               as = "number"
               tolerance = 0.01"#,
        );
        let e = parsed(r#"{"products": [{"sku": "A", "price": 1.00, "internalNote": 1}, {"sku": "B", "price": 2}]}"#);
        let a =
            parsed(r#"{"products": [{"sku": "B", "price": "2.01"}, {"sku": "A", "price": 0.995, "internalNote": 2}]}"#);
        assert!(c.diff(&e, &a).is_empty());
    }

    #[test]
    fn multiset_ignores_order_and_reports_leftovers() {
        let c = comparator(
            r#"[fields.tags]
               as = "set""#,
        );
        let e = doc(json!({"tags": ["a", "b", "b", "c"]}));
        assert!(c.diff(&e, &doc(json!({"tags": ["b", "c", "b", "a"]}))).is_empty());
        let diffs = c.diff(&e, &doc(json!({"tags": ["b", "a", "d"]})));
        assert_eq!(paths(&diffs), ["tags[?]", "tags[?]", "tags[?]"]);
        assert_eq!(diffs[0].field, "tags");
        assert_eq!(
            (diffs[0].expected.clone(), diffs[0].actual.clone()),
            (Some(json!("b")), None)
        );
        assert_eq!(
            (diffs[1].expected.clone(), diffs[1].actual.clone()),
            (Some(json!("c")), None)
        );
        assert_eq!(
            (diffs[2].expected.clone(), diffs[2].actual.clone()),
            (None, Some(json!("d")))
        );
    }

    #[test]
    fn multiset_of_objects_uses_nested_rules() {
        let c = comparator(
            r#"[fields.products]
               as = "set"
               [fields."products.name"]
               as = "case_insensitive""#,
        );
        let e = parsed(r#"{"products": [{"name": "Pen", "price": 1}, {"name": "Ink", "price": 2}]}"#);
        let a = parsed(r#"{"products": [{"name": "ink", "price": 2.0}, {"name": "PEN", "price": 1}]}"#);
        assert!(c.diff(&e, &a).is_empty());
    }

    #[test]
    fn rule_errors_name_the_setting() {
        assert_eq!(
            rule_error(
                r#"[fields.totalPrice]
                   as = "number"
                   tolerance = "0.01""#
            ),
            r#"compare.fields."totalPrice": tolerance must be a number"#
        );
        assert_eq!(
            rule_error(
                r#"[fields.totalPrice]
                   as = "number"
                   tolerance = -1"#
            ),
            r#"compare.fields."totalPrice": tolerance must be a non-negative number"#
        );
        assert_eq!(
            rule_error(
                r#"[fields.totalPrice]
                   as = "number"
                   tolerance = nan"#
            ),
            r#"compare.fields."totalPrice": tolerance must be a finite number"#
        );
        assert_eq!(
            rule_error(
                r#"[fields.orderDate]
                   as = "instant"
                   tolerance = 1"#
            ),
            r#"compare.fields."orderDate": tolerance applies only to as = "number""#
        );
        assert_eq!(
            rule_error(
                r#"[fields.products]
                   as = "exact"
                   key = "sku""#
            ),
            r#"compare.fields."products": key applies only to as = "set""#
        );
        assert!(rule_error(
            r#"[fields."products[0].price"]
               as = "number""#
        )
        .starts_with(r#"compare.fields."products[0].price": not a field path"#));
        assert!(rule_error(r#"ignore = ["products..x"]"#)
            .starts_with(r#"compare.ignore: "products..x" is not a field path"#));
    }
}
