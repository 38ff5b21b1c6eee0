//! Bindings: which view columns are crosswalked to which standard system
//! (`mappings/bindings.json`), and the columns a binding adds to its table.
//!
//! A binding names a table, its code, system and (optional) display columns, the target
//! system, an output prefix `P` and the column that identifies the resource (quoted in
//! `_dq_unmapped_codes`). It adds, after the view's own columns:
//!
//! | column | type | |
//! |---|---|---|
//! | `P_system` | Utf8 | the target system's canonical URI, when a code was found |
//! | `P_code` | Utf8 | the primary standard code (normal form: ICD-10 without the dot) |
//! | `P_display` | Utf8 | its display (the original display for an already-standard code) |
//! | `P_source` | Utf8 | `standard`, the name of the table that mapped it, or `unmapped` |
//! | `P_relationship` | Utf8 | `equal` for a standard code, else the table's equivalence |
//! | `P_codes` | List(Utf8) | every target code, primary first |
//!
//! All are null when the row has no code.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

/// One binding; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// The table (view name).
    pub table: String,
    /// The column holding the code's system.
    pub system: String,
    /// The column holding the code.
    pub code: String,
    /// The column holding the code's display, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// The column identifying the resource, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The target system (canonical URI or alias).
    pub target: String,
    /// The prefix of the added columns.
    pub output: String,
}

/// `bindings.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BindingsFile {
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    pub bindings: Vec<Binding>,
}

/// The suffixes of the added columns, in order; the last is the list column.
pub const SUFFIXES: [&str; 6] = ["_system", "_code", "_display", "_source", "_relationship", "_codes"];

impl Binding {
    /// The fields the binding adds.
    #[must_use]
    pub fn output_fields(&self) -> Vec<Field> {
        SUFFIXES
            .iter()
            .map(|suffix| {
                let name = format!("{}{suffix}", self.output);
                if *suffix == "_codes" {
                    Field::new(name, DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))), true)
                } else {
                    Field::new(name, DataType::Utf8, true)
                }
            })
            .collect()
    }

    /// Checks the binding against its table's view schema: the columns exist and hold text,
    /// the output names are free.
    ///
    /// # Errors
    ///
    /// A message naming the binding and the problem.
    pub fn check_against(&self, schema: &Schema) -> Result<(), String> {
        let name = format!("binding {}.{} → {}", self.table, self.code, self.output);
        if self.output.is_empty()
            || !self.output.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!("{name}: output must be a-z, 0-9 and _"));
        }
        let columns = [Some(&self.code), Some(&self.system), self.display.as_ref(), self.id.as_ref()];
        for column in columns.into_iter().flatten() {
            let field = schema.field_with_name(column).map_err(|_| format!("{name}: table has no column {column}"))?;
            if !is_text(field.data_type()) {
                return Err(format!("{name}: column {column} is {}, not text", field.data_type()));
            }
        }
        for field in self.output_fields() {
            if schema.field_with_name(field.name()).is_ok() {
                return Err(format!("{name}: the table already has a column {}", field.name()));
            }
        }
        Ok(())
    }
}

/// Whether the stage can read a column of this type as text.
#[must_use]
pub fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 => true,
        DataType::Dictionary(key, value) => key.as_ref() == &DataType::Int32 && value.as_ref() == &DataType::Utf8,
        _ => false,
    }
}

/// `schema` with the columns of `bindings` appended, in order.
#[must_use]
pub fn extend_schema(schema: &Schema, bindings: &[Binding]) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(bindings.iter().flat_map(Binding::output_fields));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}
