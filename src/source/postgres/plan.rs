//! The per-query plan made once at connect: the SQL text of every query shape, and how each column
//! of a row becomes a document's field.

use std::fmt::Write as _;
use std::str::FromStr;

use sqlx::postgres::{PgArguments, PgPool, PgRow, PgValueFormat};
use sqlx::query::Query;
use sqlx::{Column, Executor, Postgres, Row, Statement, ValueRef};

use super::decode::{
    builtin_decoder, decode_key, decode_value, micros_to_epoch_ms, read_i64, resolve_decoder, Decoder, Scalar,
};
use super::error::{query_error, read_error, PostgresError};
use super::{KeyKind, PostgresSettings};
use crate::model::{Doc, DocMeta, DocValue, Key, KeyedDoc};
use crate::source::KeyRange;

pub(super) fn bind_key<'q>(query: Query<'q, Postgres, PgArguments>, key: &Key) -> Query<'q, Postgres, PgArguments> {
    match key {
        Key::Int(i) => query.bind(*i),
        Key::Text(s) => query.bind(s.clone()),
    }
}

/// The per-query decisions made once at connect: SQL text of every page shape, and how to decode each
/// column.
pub(super) struct Plan {
    pub(super) names: Vec<String>,
    /// The document's field names: `names`, or in the flat form the nested fields.
    pub(super) fields: Vec<String>,
    /// The flat form's nesting, when any column is named `array[].field`.
    pub(super) flat: Option<super::flat::FlatShape>,
    /// Flat form: which columns are array members (`array[].field`), by column index.
    pub(super) member_columns: Vec<bool>,
    /// Flat form: how a key's rows are ordered (after the key), so arrays come out alike every time.
    pub(super) child_order: String,
    pub(super) decoders: Vec<Decoder>,
    pub(super) key_name: String,
    pub(super) key_index: usize,
    pub(super) key_kind: KeyKind,
    pub(super) key_scalar: Scalar,
    pub(super) updated_at_index: Option<usize>,
    /// Page queries indexed by (has lower bound, has upper bound).
    pub(super) pages: [String; 4],
    pub(super) null_probe: Option<String>,
    pub(super) lookup_sql: String,
    pub(super) query: String,
    pub(super) key_expr: String,
    pub(super) key_param_type: &'static str,
    pub(super) page_size: usize,
}

impl Plan {
    pub(super) async fn learn(pool: &PgPool, settings: &PostgresSettings) -> Result<Plan, PostgresError> {
        let query = settings.query.trim().trim_end_matches(';').trim_end().to_string();
        let probe = format!("SELECT * FROM ({query}\n) AS recon_q");
        let mut conn = pool.acquire().await.map_err(|e| read_error(&settings.url, e))?;
        let statement = conn.prepare(&probe).await.map_err(|e| query_error(&settings.url, e))?;
        let mut names = Vec::new();
        let mut oids = Vec::new();
        for column in statement.columns() {
            let name = column.name().to_string();
            if names.contains(&name) {
                return Err(PostgresError::DuplicateColumn { column: name });
            }
            names.push(name);
            oids.push(column.type_info().oid().map(|o| o.0).unwrap_or(0));
        }
        drop(conn);
        let type_name = |oid: u32| async move {
            sqlx::query_scalar::<_, String>("SELECT format_type($1::int8::oid, NULL)")
                .bind(oid as i64)
                .fetch_one(pool)
                .await
                .unwrap_or_else(|_| format!("oid {oid}"))
        };
        let mut decoders = Vec::with_capacity(names.len());
        for (name, &oid) in names.iter().zip(&oids) {
            let decoder = match builtin_decoder(oid) {
                Some(d) => Some(d),
                None => resolve_decoder(pool, oid)
                    .await
                    .map_err(|e| read_error(&settings.url, e))?,
            };
            match decoder {
                Some(d) => decoders.push(d),
                None => {
                    return Err(PostgresError::UnsupportedType {
                        column: name.clone(),
                        type_name: type_name(oid).await,
                    })
                }
            }
        }
        let listed = || names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
        let key_index = names
            .iter()
            .position(|n| *n == settings.key)
            .ok_or_else(|| PostgresError::UnknownKey {
                key: settings.key.clone(),
                columns: listed(),
            })?;
        let (key_kind, key_scalar) = match decoders[key_index] {
            Decoder::Scalar(s @ (Scalar::Int2 | Scalar::Int4 | Scalar::Int8)) => (KeyKind::Int, s),
            Decoder::Scalar(s @ (Scalar::Text | Scalar::Uuid)) => (KeyKind::Text, s),
            _ => {
                return Err(PostgresError::UnsupportedKeyType {
                    key: settings.key.clone(),
                    type_name: type_name(oids[key_index]).await,
                })
            }
        };
        let updated_at_index = match &settings.updated_at {
            None => None,
            Some(column) => {
                let index = names
                    .iter()
                    .position(|n| n == column)
                    .ok_or_else(|| PostgresError::UnknownUpdatedAt {
                        column: column.clone(),
                        columns: listed(),
                    })?;
                if !matches!(
                    decoders[index],
                    Decoder::Scalar(Scalar::TimestampTz | Scalar::Timestamp)
                ) {
                    return Err(PostgresError::UpdatedAtType {
                        column: column.clone(),
                        type_name: type_name(oids[index]).await,
                    });
                }
                Some(index)
            }
        };
        let key_column = format!("recon_q.{}", quote_ident(&settings.key));
        // Text keys compare and sort by bytes (COLLATE "C"), like Rust strings and Elasticsearch keywords.
        // uuid keeps its own order: its bytes sort exactly like its lowercase hex text, and comparing
        // natively lets an index on the column serve the ORDER BY.
        let (key_expr, key_param_type) = match key_scalar {
            Scalar::Text => (format!("{key_column} COLLATE \"C\""), "text"),
            Scalar::Uuid => (key_column, "uuid"),
            _ => (key_column, "int8"),
        };
        // Equality needs no COLLATE "C" (deterministic collations compare bytes for equality), and
        // without it an index on the column serves the lookup. A nondeterministic collation may
        // match more rows; lookup keeps only the exact keys asked for.
        let lookup_sql = format!(
            "SELECT * FROM ({query}\n) AS recon_q WHERE recon_q.{} = ANY($1::{key_param_type}[])",
            quote_ident(&settings.key)
        );
        let flat = super::flat::FlatShape::of(&names);
        let fields = flat.as_ref().map_or_else(|| names.clone(), |f| f.field_names());
        let child_order: String = flat
            .as_ref()
            .map(|f| {
                f.array_columns()
                    .into_iter()
                    .map(|c| {
                        let collate = if decoders[c] == Decoder::Scalar(Scalar::Text) {
                            " COLLATE \"C\""
                        } else {
                            ""
                        };
                        format!(", recon_q.{}{collate}", quote_ident(&names[c]))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut member_columns = vec![false; names.len()];
        for column in flat.iter().flat_map(|f| f.array_columns()) {
            member_columns[column] = true;
        }
        let mut plan = Plan {
            fields,
            flat,
            member_columns,
            child_order,
            names,
            decoders,
            key_name: settings.key.clone(),
            key_index,
            key_kind,
            key_scalar,
            updated_at_index,
            pages: Default::default(),
            null_probe: None,
            lookup_sql,
            query,
            key_expr,
            key_param_type,
            page_size: settings.page_size.max(1),
        };
        plan.pages = [
            plan.range_sql(false, false, Some(plan.page_size)),
            plan.range_sql(false, true, Some(plan.page_size)),
            plan.range_sql(true, false, Some(plan.page_size)),
            plan.range_sql(true, true, Some(plan.page_size)),
        ];
        plan.null_probe = plan.cheap_null_probe(pool).await;
        Ok(plan)
    }

    /// A query telling whether any row has a NULL key, when the planner expects it to cost no more
    /// than a couple of pages (an index on the key column makes it a single probe); None otherwise,
    /// as a full extra pass over the query would double the cost of every scan.
    async fn cheap_null_probe(&self, pool: &PgPool) -> Option<String> {
        let probe = format!(
            "SELECT EXISTS (SELECT 1 FROM ({}\n) AS recon_q WHERE recon_q.{} IS NULL)",
            self.query,
            quote_ident(&self.key_name)
        );
        let page_cost = explain_cost(pool, &self.pages[0]).await?;
        let probe_cost = explain_cost(pool, &probe).await?;
        (probe_cost <= 2.0 * page_cost + 100.0).then_some(probe)
    }

    pub(super) fn range_sql(&self, after: bool, until: bool, limit: Option<usize>) -> String {
        let mut sql = format!("SELECT * FROM ({}\n) AS recon_q", self.query);
        let mut param = 0;
        let mut conditions = Vec::new();
        if after {
            param += 1;
            conditions.push(format!("{} > ${param}::{}", self.key_expr, self.key_param_type));
        }
        if until {
            param += 1;
            conditions.push(format!("{} <= ${param}::{}", self.key_expr, self.key_param_type));
        }
        if !conditions.is_empty() {
            let _ = write!(sql, " WHERE {}", conditions.join(" AND "));
        }
        let _ = write!(sql, " ORDER BY {}{}", self.key_expr, self.child_order);
        if let Some(limit) = limit {
            let _ = write!(sql, " LIMIT {limit}");
        }
        sql
    }

    /// `SELECT key FROM (query) WHERE range [AND extra] ORDER BY key <tail>`; range bounds are $1, $2.
    pub(super) fn key_sql(&self, range: &KeyRange, tail: &str, extra: Option<&str>) -> String {
        let mut conditions = Vec::new();
        let mut param = 0;
        if range.after.is_some() {
            param += 1;
            conditions.push(format!("{} > ${param}::{}", self.key_expr, self.key_param_type));
        }
        if range.until.is_some() {
            param += 1;
            conditions.push(format!("{} <= ${param}::{}", self.key_expr, self.key_param_type));
        }
        conditions.push(format!("recon_q.{} IS NOT NULL", quote_ident(&self.key_name)));
        if let Some(extra) = extra {
            conditions.push(extra.to_string());
        }
        format!(
            "SELECT recon_q.{} FROM ({}\n) AS recon_q WHERE {} ORDER BY {} {tail}",
            quote_ident(&self.key_name),
            self.query,
            conditions.join(" AND "),
            self.key_expr
        )
    }

    /// The key of a row holding only the key column.
    pub(super) fn decode_key_only(&self, row: &PgRow) -> Result<Key, PostgresError> {
        let decode = |reason: String| PostgresError::Decode {
            column: self.key_name.clone(),
            reason,
        };
        let raw = row.try_get_raw(0).map_err(|e| decode(e.to_string()))?;
        let bytes = raw.as_bytes().map_err(|e| decode(e.to_string()))?;
        decode_key(self.key_scalar, bytes).map_err(decode)
    }

    pub(super) fn page_sql(&self, after: bool, until: bool) -> &str {
        &self.pages[usize::from(after) * 2 + usize::from(until)]
    }

    pub(super) fn check_kind(&self, key: &Key) -> Result<(), PostgresError> {
        let got = match key {
            Key::Int(_) => KeyKind::Int,
            Key::Text(_) => KeyKind::Text,
        };
        if got != self.key_kind {
            return Err(PostgresError::KeyKindMismatch {
                key: self.key_name.clone(),
                expected: self.key_kind,
                got,
            });
        }
        Ok(())
    }

    /// A row as its key, its values in column order and its `updated_at` (flat form). When the row's
    /// key is `continuing` (that of the row before it, in key order), only its array members are
    /// decoded; its other values are NULL (see [`FlatShape::nest`](super::flat::FlatShape::nest)).
    pub(super) fn decode_values(
        &self,
        row: &PgRow,
        row_number: u64,
        continuing: Option<&Key>,
    ) -> Result<(Key, Vec<DocValue>, Option<i64>), PostgresError> {
        let mut values = Vec::with_capacity(self.names.len());
        let (key, updated_at_ms) = self.decode_values_into(row, row_number, continuing, &mut values)?;
        Ok((key, values, updated_at_ms))
    }

    /// [`Plan::decode_values`] into a vector the caller reuses (cleared first).
    pub(super) fn decode_values_into(
        &self,
        row: &PgRow,
        row_number: u64,
        continuing: Option<&Key>,
        values: &mut Vec<DocValue>,
    ) -> Result<(Key, Option<i64>), PostgresError> {
        // Straight into a vector: no map, no column names copied, for each of a key's rows.
        values.clear();
        values.reserve(self.names.len());
        self.decode_cells(row, row_number, continuing, |_, value| values.push(value))
    }

    /// Orders one key's rows as the scan's ORDER BY does, for lookups (which have no ORDER BY).
    pub(super) fn sort_children(&self, rows: &mut [Vec<DocValue>]) {
        let Some(flat) = &self.flat else { return };
        let columns = flat.array_columns();
        rows.sort_by(|a, b| {
            for &c in &columns {
                let order = compare_cells(&a[c], &b[c]);
                if order != std::cmp::Ordering::Equal {
                    return order;
                }
            }
            std::cmp::Ordering::Equal
        });
    }

    /// `row_number` (1-based, within the scan) only names the row in errors.
    pub(super) fn decode_row(&self, row: &PgRow, row_number: u64) -> Result<KeyedDoc, PostgresError> {
        let mut doc = Doc::with_capacity(self.names.len());
        let (key, updated_at_ms) = self.decode_cells(row, row_number, None, |index, value| {
            doc.insert(self.names[index].as_str(), value);
        })?;
        Ok(KeyedDoc {
            key,
            doc,
            meta: DocMeta {
                updated_at_ms,
                ..DocMeta::default()
            },
        })
    }

    /// Decodes every column of `row` into `sink(column index, value)`; returns the row's key and
    /// `updated_at`. In the flat form, a row whose key is `continuing` (the key of the rows before
    /// it) only adds array members: its other columns are not decoded (they come from the key's
    /// first row) and reach `sink` as NULL, except that `updated_at` is still read.
    fn decode_cells(
        &self,
        row: &PgRow,
        row_number: u64,
        continuing: Option<&Key>,
        mut sink: impl FnMut(usize, DocValue),
    ) -> Result<(Key, Option<i64>), PostgresError> {
        let bytes_of = |index: usize| -> Result<Option<&[u8]>, PostgresError> {
            let name = &self.names[index];
            let raw = row.try_get_raw(index).map_err(|e| PostgresError::Decode {
                column: name.clone(),
                reason: e.to_string(),
            })?;
            if raw.is_null() {
                return Ok(None);
            }
            // sqlx requests binary results for prepared queries; the decoders rely on it.
            if raw.format() != PgValueFormat::Binary {
                return Err(PostgresError::Decode {
                    column: name.clone(),
                    reason: "value arrived in text format, expected binary".into(),
                });
            }
            raw.as_bytes().map(Some).map_err(|e| PostgresError::Decode {
                column: name.clone(),
                reason: e.to_string(),
            })
        };
        // Called only on failure: the column's name is copied into the error, not for every cell.
        let decode_error = |index: usize, reason: String| PostgresError::Decode {
            column: self.names[index].clone(),
            reason,
        };
        // The key first: it decides whether the rest of a flat row is needed.
        let key = match bytes_of(self.key_index)? {
            Some(bytes) => decode_key(self.key_scalar, bytes).map_err(|r| decode_error(self.key_index, r))?,
            None => {
                return Err(PostgresError::NullKey {
                    row: row_number,
                    key: self.key_name.clone(),
                })
            }
        };
        let members_only = self.flat.is_some() && continuing == Some(&key);
        let mut updated_at_ms = None;
        for (index, decoder) in self.decoders.iter().enumerate() {
            if members_only && !self.member_columns[index] {
                if Some(index) == self.updated_at_index {
                    if let Some(bytes) = bytes_of(index)? {
                        updated_at_ms = micros_to_epoch_ms(read_i64(bytes).map_err(|r| decode_error(index, r))?);
                    }
                }
                sink(index, DocValue::Null);
                continue;
            }
            let value = match bytes_of(index)? {
                None => DocValue::Null,
                Some(bytes) => {
                    if Some(index) == self.updated_at_index {
                        updated_at_ms = micros_to_epoch_ms(read_i64(bytes).map_err(|r| decode_error(index, r))?);
                    }
                    decode_value(*decoder, bytes).map_err(|r| decode_error(index, r))?
                }
            };
            sink(index, value);
        }
        Ok((key, updated_at_ms))
    }
}

/// PostgreSQL's ORDER BY on child columns: text in byte order (`COLLATE "C"`), numbers by value,
/// NULLs last.
fn compare_cells(a: &DocValue, b: &DocValue) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (DocValue::Null, DocValue::Null) => Ordering::Equal,
        (DocValue::Null, _) => Ordering::Greater,
        (_, DocValue::Null) => Ordering::Less,
        (DocValue::String(x), DocValue::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (DocValue::Number(x), DocValue::Number(y)) => {
            let big = |n: &str| bigdecimal::BigDecimal::from_str(n).ok();
            match (big(x), big(y)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => Ordering::Equal,
            }
        }
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// The planner's total cost for `sql` (which must take no parameters).
async fn explain_cost(pool: &PgPool, sql: &str) -> Option<f64> {
    let plan: sqlx::types::JsonValue = sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {sql}"))
        .fetch_one(pool)
        .await
        .ok()?;
    plan.get(0)?.get("Plan")?.get("Total Cost")?.as_f64()
}

pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
