//! Configuration: the TOML contract, layered defaults < file < environment < flags.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[compare]`: how expected and actual documents are compared.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    /// Paths never compared, on either side (`indexedAt`, `products.internalNote`).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// A `null` on one side equals an absent field on the other.
    #[serde(default = "default_true")]
    pub null_equals_missing: bool,
    /// Per-path rules. A rule on `products.price` applies to every element's `price`.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldRule>,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig { ignore: Vec::new(), null_equals_missing: true, fields: BTreeMap::new() }
    }
}

fn default_true() -> bool {
    true
}

/// How one path compares.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    #[serde(rename = "as")]
    pub kind: RuleKind,
    /// For `as = "number"`: |expected - actual| <= tolerance, computed in exact decimals.
    #[serde(default)]
    pub tolerance: Option<toml::Value>,
    /// For `as = "set"`: the element field that identifies an element; without it elements compare as
    /// a multiset of whole values.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// RFC 3339 / date strings (or epoch millis) compared as instants.
    Instant,
    /// Numbers (or numeric strings) compared by exact decimal value, within `tolerance`.
    Number,
    /// Arrays compared ignoring order (matched on `key` when given).
    Set,
    /// Strings compared exactly (the default; useful to override a parent rule).
    Exact,
    /// Strings compared ignoring case.
    CaseInsensitive,
}
