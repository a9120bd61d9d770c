//! The flat projection form: the query returns one row per child (order line), ordered by key, and
//! columns named `array[].field` are nested by recon into an array of objects per key. Building JSON
//! inside PostgreSQL (`jsonb_agg` per order) costs far more than streaming plain joined rows, so the
//! flat form is the fast one; the JSON form stays supported and both give the same documents.
//!
//! Rows of one key merge: scalar columns come from the key's first row; each array gets one object
//! per row, except rows whose columns of that array are all NULL (a LEFT JOIN finding no child, or a
//! `UNION ALL` branch filling another array), which add nothing. An order without lines thus gets
//! `[]`. Several arrays in one query should come from `UNION ALL` branches (each filling one array,
//! the others NULL): a plain join of two child tables multiplies their rows, and every combination
//! would become an object.

use compact_str::CompactString;

use crate::document::{Doc, DocValue};

/// Which columns are nested where, learnt once from the query's column names.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatShape {
    /// The document's fields in column order: a scalar column, or an array built from columns.
    fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Scalar {
        column: usize,
        name: CompactString,
    },
    Array {
        name: CompactString,
        members: Vec<(usize, CompactString)>,
    },
}

impl FlatShape {
    /// None when no column is named `array[].field` (the JSON form).
    pub fn of(columns: &[String]) -> Option<FlatShape> {
        let mut fields: Vec<Field> = Vec::new();
        let mut nested = false;
        for (column, name) in columns.iter().enumerate() {
            match name.split_once("[].") {
                Some((array, member)) if !array.is_empty() && !member.is_empty() => {
                    nested = true;
                    let existing = fields
                        .iter_mut()
                        .find(|f| matches!(f, Field::Array { name, .. } if name == array));
                    match existing {
                        Some(Field::Array { members, .. }) => members.push((column, member.into())),
                        _ => fields.push(Field::Array {
                            name: array.into(),
                            members: vec![(column, member.into())],
                        }),
                    }
                }
                _ => fields.push(Field::Scalar {
                    column,
                    name: name.as_str().into(),
                }),
            }
        }
        nested.then_some(FlatShape { fields })
    }

    /// The document's field names, in order (arrays under their own name).
    pub fn field_names(&self) -> Vec<String> {
        self.fields
            .iter()
            .map(|f| match f {
                Field::Scalar { name, .. } | Field::Array { name, .. } => name.to_string(),
            })
            .collect()
    }

    /// Array columns, for ordering a key's rows deterministically.
    pub fn array_columns(&self) -> Vec<usize> {
        self.fields
            .iter()
            .flat_map(|f| match f {
                Field::Array { members, .. } => members.iter().map(|(c, _)| *c).collect(),
                Field::Scalar { .. } => Vec::new(),
            })
            .collect()
    }

    /// One document from the rows of one key, each row its values in column order. Scalar fields
    /// come from the first row (later rows may leave them NULL). The values are moved out, not
    /// copied: the rows are left holding NULLs, for the caller to reuse.
    pub fn nest(&self, rows: &mut [Vec<DocValue>]) -> Doc {
        let mut doc = Doc::with_capacity(self.fields.len());
        for field in &self.fields {
            match field {
                Field::Scalar { column, name } => {
                    let value = rows
                        .first_mut()
                        .map_or(DocValue::Null, |r| std::mem::take(&mut r[*column]));
                    doc.insert(name.clone(), value);
                }
                Field::Array { name, members } => {
                    let mut items = Vec::with_capacity(rows.len());
                    // Each column belongs to one field, so taking a value leaves nothing another needs.
                    for row in rows.iter_mut() {
                        if members.iter().all(|(c, _)| row[*c].is_null()) {
                            continue;
                        }
                        let mut object = Doc::with_capacity(members.len());
                        for (c, member) in members {
                            object.insert(member.clone(), std::mem::take(&mut row[*c]));
                        }
                        items.push(DocValue::Object(object));
                    }
                    doc.insert(name.clone(), DocValue::Array(items));
                }
            }
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A row of cells from JSON literals.
    fn row(cells: Vec<Value>) -> Vec<DocValue> {
        cells.into_iter().map(DocValue::from).collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn json_form_queries_are_not_flat() {
        assert_eq!(FlatShape::of(&names(&["orderId", "products", "tags[]"])), None);
    }

    #[test]
    fn rows_of_one_key_nest_into_arrays_and_empty_children_vanish() {
        let shape = FlatShape::of(&names(&[
            "orderId",
            "products[].sku",
            "customerName",
            "products[].price",
            "payments[].id",
        ]))
        .unwrap();
        assert_eq!(shape.field_names(), ["orderId", "products", "customerName", "payments"]);
        assert_eq!(shape.array_columns(), [1, 3, 4]);
        let price: Value = serde_json::from_str("50.10").unwrap();
        let rows = vec![
            row(vec![json!(7), json!("A"), json!("Ada"), price.clone(), Value::Null]),
            row(vec![json!(7), json!("B"), json!("Ada"), json!(1), Value::Null]),
            row(vec![json!(7), Value::Null, json!("Ada"), Value::Null, json!("P1")]),
        ];
        let mut rows = rows;
        let doc = shape.nest(&mut rows);
        assert_eq!(
            Value::from(doc.clone()),
            json!({"orderId": 7, "products": [{"sku": "A", "price": price}, {"sku": "B", "price": 1}],
                   "customerName": "Ada", "payments": [{"id": "P1"}]})
        );
        assert_eq!(doc["products"][0]["price"].to_string(), "50.10");
        let lone = shape.nest(&mut [row(vec![json!(8), Value::Null, json!("Bo"), Value::Null, Value::Null])]);
        assert_eq!(lone["products"], json!([]));
        assert_eq!(lone["payments"], json!([]));
        // A key's later rows only add members: their scalar columns are not read (a scan leaves them NULL).
        let later = shape.nest(&mut [
            row(vec![json!(9), json!("A"), json!("Cy"), json!(1), Value::Null]),
            row(vec![Value::Null, json!("B"), Value::Null, json!(2), Value::Null]),
        ]);
        assert_eq!(
            Value::from(later),
            json!({"orderId": 9, "products": [{"sku": "A", "price": 1}, {"sku": "B", "price": 2}],
                   "customerName": "Cy", "payments": []})
        );
    }
}
