//! `_dq_unmapped_codes` across a merge: the previous load's counts, plus the increment's, less
//! the codes of the rows the merge took out (the previous load's rows of updated and deleted
//! resources, and the increment's rows of resources the warehouse already held).
//!
//! The rows taken out were crosswalked when they were loaded, and their part files still say
//! which codes did not map: a row with a code and a null `P_system`. Counting them from those
//! columns, not by looking the codes up again, takes off exactly what was once added, even
//! when the mapping tables changed in between. So after any sequence of merges the table
//! counts the rows the warehouse holds, as a full load of the same data would.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use super::keys;
use crate::terminology::unmapped::{Tally, TABLE};
use crate::terminology::Binding;

/// One row of the table: table, column, system (as written; `None` when the row had none),
/// code, target system.
type Key = (String, String, Option<String>, String, String);

/// The unmapped codes of the rows a merge took out; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct RemovedCodes {
    counts: HashMap<Key, u64>,
    /// Per code, the resources whose rows of the previous load were taken out: an example id
    /// among them may no longer hold the code.
    gone: HashMap<Key, HashSet<String>>,
}

impl RemovedCodes {
    /// Counts the unmapped codes of `batch`, rows of `table` (with its crosswalk columns) that
    /// the merge took out. `from_base`: rows of the previous load, whose resources were
    /// updated or deleted (rather than increment rows of unchanged resources).
    ///
    /// # Errors
    ///
    /// A bound column the batch lacks (the table's files do not have its schema).
    pub fn count(
        &mut self,
        bindings: &[Binding],
        table: &str,
        batch: &RecordBatch,
        from_base: bool,
    ) -> anyhow::Result<()> {
        for binding in bindings.iter().filter(|b| b.table == table) {
            let mapped_system = format!("{}_system", binding.output);
            let mapped = batch
                .column_by_name(&mapped_system)
                .ok_or_else(|| anyhow!("table {table} has no column {mapped_system}"))?;
            let (codes, systems) = (text(batch, table, &binding.code)?, text(batch, table, &binding.system)?);
            let ids = binding.id.as_deref().map(|id| text(batch, table, id)).transpose()?;
            for row in 0..batch.num_rows() {
                // As the crosswalk stage decides: a row without a code has nothing to map.
                if codes.is_null(row) || codes.value(row).trim().is_empty() || mapped.is_valid(row) {
                    continue;
                }
                let system =
                    (systems.is_valid(row) && !systems.value(row).is_empty()).then(|| systems.value(row).to_owned());
                let key = (
                    table.to_owned(),
                    binding.code.clone(),
                    system,
                    codes.value(row).to_owned(),
                    binding.target.clone(),
                );
                if let (true, Some(ids)) = (from_base, &ids) {
                    if ids.is_valid(row) {
                        self.gone.entry(key.clone()).or_default().insert(ids.value(row).to_owned());
                    }
                }
                *self.counts.entry(key).or_default() += 1;
            }
        }
        Ok(())
    }
}

/// Column `name` of `batch` as text (the views give codes as dictionaries).
fn text(batch: &RecordBatch, table: &str, name: &str) -> anyhow::Result<StringArray> {
    let column = batch.column_by_name(name).ok_or_else(|| anyhow!("table {table} has no column {name}"))?;
    let column = arrow::compute::cast(column, &DataType::Utf8)?;
    Ok(column.as_any().downcast_ref::<StringArray>().expect("cast to Utf8").clone())
}

/// The table after a merge: the previous load's `_dq_unmapped_codes` (in `dir`) plus the
/// increment's counts, less `removed`. A code whose count reaches 0 is no longer listed; an
/// example id whose rows were taken out gives way to the increment's example, or to none.
///
/// # Errors
///
/// The previous table cannot be read, or lacks a column of the table's schema.
pub(crate) fn combine(dir: &Path, increment: RecordBatch, removed: &RemovedCodes) -> anyhow::Result<RecordBatch> {
    let mut tallies: BTreeMap<Key, Tally> = BTreeMap::new();
    let mut previous = Vec::new();
    for path in keys::parquet_files(dir)? {
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(std::fs::File::open(&path)?, 8192)?;
        previous.extend(reader.collect::<Result<Vec<_>, _>>()?);
    }
    for (batch, from_base) in previous.iter().map(|b| (b, true)).chain([(&increment, false)]) {
        let column = |name: &str| text(batch, TABLE, name);
        let (table, column_name, system, code) =
            (column("table")?, column("column")?, column("system")?, column("code")?);
        let (display, example, target, reason) =
            (column("display")?, column("example_resource_id")?, column("target_system")?, column("reason")?);
        let count = batch.column_by_name("count").and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
        let count = count.ok_or_else(|| anyhow!("_dq_unmapped_codes has no Int64 count"))?;
        let get = |a: &StringArray, row: usize| (!a.is_null(row)).then(|| a.value(row).to_owned());
        for row in 0..batch.num_rows() {
            let key = (
                table.value(row).to_owned(),
                column_name.value(row).to_owned(),
                get(&system, row),
                code.value(row).to_owned(),
                target.value(row).to_owned(),
            );
            let example = get(&example, row)
                .filter(|id| !from_base || !removed.gone.get(&key).is_some_and(|gone| gone.contains(id)));
            let seen = Tally {
                count: u64::try_from(count.value(row)).unwrap_or(0),
                display: get(&display, row).map(Into::into),
                example_id: example.map(Into::into),
                reason: get(&reason, row).map(Into::into),
            };
            tallies.entry(key).or_default().add(seen);
        }
    }
    for (key, taken) in &removed.counts {
        if let Some(tally) = tallies.get_mut(key) {
            tally.count = tally.count.saturating_sub(*taken);
        }
    }
    let mut rows: Vec<(Key, Tally)> = tallies.into_iter().filter(|(_, tally)| tally.count > 0).collect();
    rows.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
    let text = |f: &dyn Fn(&(Key, Tally)) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        text(&|r| Some(r.0 .0.clone())),
        text(&|r| Some(r.0 .1.clone())),
        text(&|r| r.0 .2.clone()),
        text(&|r| Some(r.0 .3.clone())),
        text(&|r| r.1.display.as_deref().map(str::to_owned)),
        Arc::new(rows.iter().map(|r| r.1.count as i64).collect::<Int64Array>()),
        text(&|r| r.1.example_id.as_deref().map(str::to_owned)),
        text(&|r| Some(r.0 .4.clone())),
        text(&|r| r.1.reason.as_deref().map(str::to_owned)),
    ];
    Ok(RecordBatch::try_new(increment.schema(), columns)?)
}
