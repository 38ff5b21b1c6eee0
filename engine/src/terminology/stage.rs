//! The batch stage: adds the standard-code columns of a table's bindings to the record
//! batches its view produced (see [`bindings`](super::bindings) for the columns).
//!
//! Per row and binding: no code → all nulls. The row's system is resolved through the
//! alias table (cached while consecutive rows repeat it) and the code normalised into a
//! scratch buffer. A system that already is the target gives `source = standard`; otherwise
//! the index is asked: a hit gives the primary target in the scalar columns and every
//! target in `P_codes`; a source a table lists as unmatched (or only as `disjoint` with
//! some code) gives that table as source and `unmatched` as relationship; a miss gives `unmapped`. The last two are counted for
//! `_dq_unmapped_codes`. Nothing is allocated per row: the output builders are sized up
//! front, and strings are copied straight from the input arrays and the index.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, LargeStringArray, ListBuilder, StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Int32Type, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::bindings::{extend_schema, Binding};
use super::index::{Mapped, Relationship, Target};
use super::systems::SystemId;
use super::unmapped::{Seen, UnmappedCounts};
use super::Terminology;

/// The `source` of a code that already was in the target system.
pub const SOURCE_STANDARD: &str = "standard";
/// The `source` of a code nothing maps.
pub const SOURCE_UNMAPPED: &str = "unmapped";

#[derive(Debug)]
struct Resolved {
    /// Index in the terminology's bindings.
    index: usize,
    code: usize,
    system: usize,
    display: Option<usize>,
    id: Option<usize>,
    target: SystemId,
}

/// The crosswalk of one table: its bindings resolved against the view's schema.
#[derive(Debug)]
pub struct TableStage {
    terminology: Arc<Terminology>,
    bindings: Vec<Resolved>,
    schema: SchemaRef,
}

impl TableStage {
    /// The stage of `table` (whose view produces `schema`), or `None` when no binding names
    /// the table.
    ///
    /// # Errors
    ///
    /// A binding that does not fit the schema (see [`Binding::check_against`]), or whose
    /// target system is unknown.
    pub fn for_table(
        terminology: &Arc<Terminology>,
        table: &str,
        schema: &SchemaRef,
    ) -> Result<Option<TableStage>, String> {
        let mut bindings = Vec::new();
        let mut mine: Vec<Binding> = Vec::new();
        for (index, binding) in terminology.bindings.iter().enumerate().filter(|(_, b)| b.table == table) {
            binding.check_against(schema)?;
            if mine.iter().any(|b| b.output == binding.output) {
                return Err(format!("bindings of table {table}: output {} is used twice", binding.output));
            }
            let column = |name: &str| schema.index_of(name).expect("checked above");
            let target = terminology.systems.resolve(&binding.target).ok_or_else(|| {
                format!("binding {}.{}: unknown target system {}", table, binding.code, binding.target)
            })?;
            bindings.push(Resolved {
                index,
                code: column(&binding.code),
                system: column(&binding.system),
                display: binding.display.as_deref().map(column),
                id: binding.id.as_deref().map(column),
                target,
            });
            mine.push(binding.clone());
        }
        if bindings.is_empty() {
            return Ok(None);
        }
        let schema = extend_schema(schema, &mine);
        Ok(Some(TableStage { terminology: Arc::clone(terminology), bindings, schema }))
    }

    /// The table's schema with the added columns.
    #[must_use]
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The crosswalks the stage looks codes up in.
    #[must_use]
    pub fn terminology(&self) -> &Arc<Terminology> {
        &self.terminology
    }

    /// The bindings applied, in column order.
    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.iter().map(|r| &self.terminology.bindings[r.index])
    }

    /// `batch` (of the view's schema) with the added columns; unmapped codes are counted
    /// into `counts` when given.
    ///
    /// # Errors
    ///
    /// `batch` does not have the view's schema.
    pub fn apply(
        &self,
        batch: &RecordBatch,
        mut counts: Option<&mut UnmappedCounts>,
    ) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for binding in &self.bindings {
            columns.extend(self.crosswalk(binding, batch, counts.as_deref_mut())?);
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
    }

    fn crosswalk(
        &self,
        binding: &Resolved,
        batch: &RecordBatch,
        mut counts: Option<&mut UnmappedCounts>,
    ) -> Result<Vec<ArrayRef>, ArrowError> {
        let terminology = &*self.terminology;
        let systems = &terminology.systems;
        let rows = batch.num_rows();
        let codes = Text::of(batch.column(binding.code))?;
        let row_systems = Text::of(batch.column(binding.system))?;
        let displays = binding.display.map(|c| Text::of(batch.column(c))).transpose()?;
        let ids = binding.id.map(|c| Text::of(batch.column(c))).transpose()?;
        let target_uri = systems.canonical(binding.target);

        let mut out_system = StringBuilder::with_capacity(rows, rows * target_uri.len());
        let mut out_code = StringBuilder::with_capacity(rows, rows * 8);
        let mut out_display = StringBuilder::with_capacity(rows, rows * 32);
        let mut out_source = StringBuilder::with_capacity(rows, rows * SOURCE_STANDARD.len());
        let mut out_relationship = StringBuilder::with_capacity(rows, rows * 10);
        let mut out_codes = ListBuilder::with_capacity(StringBuilder::with_capacity(rows, rows * 8), rows);
        let mut scratch = String::new();
        let mut cached: Option<(&str, Option<SystemId>)> = None;

        for row in 0..rows {
            let Some(code) = codes.get(row).filter(|c| !c.trim().is_empty()) else {
                for b in [&mut out_system, &mut out_code, &mut out_display, &mut out_source, &mut out_relationship] {
                    b.append_null();
                }
                out_codes.append_null();
                continue;
            };
            let raw_system = row_systems.get(row);
            let system = match (raw_system, cached) {
                (None, _) => None,
                (Some(raw), Some((last, id))) if raw == last => id,
                (Some(raw), _) => {
                    let id = systems.resolve(raw);
                    cached = Some((raw, id));
                    id
                }
            };
            let display = displays.as_ref().and_then(|d| d.get(row));
            let normal = system.map(|s| (s, systems.normalise(s, code, &mut scratch)));
            let outcome = match normal {
                None => Outcome::Unmapped(SOURCE_UNMAPPED, None),
                Some((system, normal)) if system == binding.target => Outcome::Standard(normal),
                Some((system, normal)) => match terminology.index.lookup(system, binding.target, normal) {
                    None => Outcome::Unmapped(SOURCE_UNMAPPED, None),
                    Some(mapped) => match mapped.targets.iter().find(|t| t.code.is_some()) {
                        Some(primary) => Outcome::Mapped(mapped, primary),
                        None => {
                            let reason = mapped.targets.first().and_then(|t| t.note.as_deref());
                            Outcome::Unmapped(mapped.table, Some(reason.unwrap_or("unmatched")))
                        }
                    },
                },
            };
            match outcome {
                Outcome::Standard(normal) => {
                    out_system.append_value(target_uri);
                    out_code.append_value(normal);
                    out_display.append_option(display);
                    out_source.append_value(SOURCE_STANDARD);
                    out_relationship.append_value(Relationship::Equal.as_str());
                    out_codes.values().append_value(normal);
                    out_codes.append(true);
                }
                Outcome::Mapped(mapped, primary) => {
                    out_system.append_value(target_uri);
                    out_code.append_option(primary.code.as_deref());
                    out_display.append_option(primary.display.as_deref());
                    out_source.append_value(mapped.table);
                    out_relationship.append_value(primary.relationship.as_str());
                    for code in mapped.targets.iter().filter_map(|t| t.code.as_deref()) {
                        out_codes.values().append_value(code);
                    }
                    out_codes.append(true);
                }
                Outcome::Unmapped(source, reason) => {
                    for b in [&mut out_system, &mut out_code, &mut out_display] {
                        b.append_null();
                    }
                    out_source.append_value(source);
                    out_relationship.append_option(reason.map(|_| Relationship::Unmatched.as_str()));
                    out_codes.append_null();
                    if let Some(counts) = counts.as_deref_mut() {
                        let id = ids.as_ref().and_then(|i| i.get(row));
                        counts.record(
                            binding.index,
                            Seen { system: raw_system.unwrap_or(""), code, display, id, reason },
                        );
                    }
                }
            }
        }
        Ok(vec![
            Arc::new(out_system.finish()),
            Arc::new(out_code.finish()),
            Arc::new(out_display.finish()),
            Arc::new(out_source.finish()),
            Arc::new(out_relationship.finish()),
            Arc::new(out_codes.finish()),
        ])
    }
}

/// What one row's code turned into.
enum Outcome<'a> {
    /// Already in the target system: the code in normal form.
    Standard(&'a str),
    /// Mapped by a table: the table's entry and its primary target.
    Mapped(Mapped<'a>, &'a Target),
    /// Not mapped: the source to report, and the reason when a table lists it as unmatched.
    Unmapped(&'a str, Option<&'a str>),
}

/// A text column of any of the types views produce for codes.
enum Text<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    Dict(&'a DictionaryArray<Int32Type>, &'a StringArray),
}

impl<'a> Text<'a> {
    fn of(array: &'a ArrayRef) -> Result<Text<'a>, ArrowError> {
        match array.data_type() {
            DataType::Utf8 => Ok(Text::Utf8(array.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(Text::Large(array.as_string::<i64>())),
            DataType::Dictionary(_, value) if value.as_ref() == &DataType::Utf8 => {
                let dict = array.as_dictionary_opt::<Int32Type>().ok_or_else(|| {
                    ArrowError::SchemaError(format!("a crosswalked column is {}, not text", array.data_type()))
                })?;
                Ok(Text::Dict(dict, dict.values().as_string::<i32>()))
            }
            other => Err(ArrowError::SchemaError(format!("a crosswalked column is {other}, not text"))),
        }
    }

    fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            Text::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            Text::Large(a) => a.is_valid(row).then(|| a.value(row)),
            Text::Dict(d, values) => d.key(row).map(|k| values.value(k)),
        }
    }
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;
