//! The mapping tables in SQL: the crosswalks, value sets, code lists, ICD-10-CM categories
//! and CMS-HCC tables of the shipped mappings, registered as in-memory DataFusion tables
//! (`concept_map`, `valueset`, `code_list`, `icd10cm_category`, `hcc_dx_to_cc`,
//! `hcc_hierarchies`, `hcc_coefficients`, `hcc_labels`, `hcc_dx_edits`, `hcc_is_chronic`),
//! the scalar UDF `icd10_in_range(code, range_start, range_end)`, and the schemas of
//! warehouse tables that are not plain views (crosswalked tables, `_dq_unmapped_codes`).
//!
//! The shipped tables are parsed once per process and shared by every session.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, Context};
use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;

use crate::sink::partition::PartitionSpec;
use crate::terminology::reference::{in_range, sql_tables};
use crate::terminology::{bindings, unmapped, Binding, MappingSource};
use crate::view::CompiledView;

/// The schema and partitioning of a warehouse table from its `_tables/<table>.json`: the
/// view's columns plus those of its crosswalk bindings, or the fixed schema of
/// `_dq_unmapped_codes`.
pub(super) fn table_schema(meta: &serde_json::Value) -> anyhow::Result<(SchemaRef, Option<PartitionSpec>)> {
    if meta["table"] == unmapped::TABLE {
        return Ok((unmapped::UnmappedCounts::schema(), None));
    }
    let view = CompiledView::from_json_value(&meta["view"]).map_err(|e| anyhow!("stored view: {e}"))?;
    let partition = PartitionSpec::of_view(&view).map_err(|e| anyhow!("stored view: {e}"))?;
    let schema = match meta.get("crosswalk") {
        None => view.schema(),
        Some(list) => {
            let list: Vec<Binding> = serde_json::from_value(list.clone()).context("stored crosswalk bindings")?;
            bindings::extend_schema(&view.schema(), &list)
        }
    };
    Ok((schema, partition))
}

fn shipped_tables() -> anyhow::Result<&'static BTreeMap<String, RecordBatch>> {
    static TABLES: OnceLock<Result<BTreeMap<String, RecordBatch>, String>> = OnceLock::new();
    TABLES
        .get_or_init(|| sql_tables(&MappingSource::Embedded).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| anyhow!("shipped mappings: {e}"))
}

/// Registers the shipped mapping tables, `icd10_in_range` and the other SQL functions of
/// `sql::functions` (`age_in_years`) in `ctx`; a table the session already has (a
/// warehouse table of the same name) is left alone. Returns the names registered.
///
/// # Errors
///
/// A shipped table is broken (the test suite rules it out) or DataFusion refuses one.
pub fn register_mappings(ctx: &SessionContext) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for (name, batch) in shipped_tables()? {
        if ctx.table_exist(name.as_str())? {
            continue;
        }
        let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]])?;
        ctx.register_table(name.as_str(), Arc::new(table))?;
        names.push(name.clone());
    }
    ctx.register_udf(icd10_in_range_udf());
    ctx.register_udf(super::functions::age_in_years_udf());
    Ok(names)
}

/// `icd10_in_range(code, range_start, range_end)`: whether an ICD-10 code lies in a range
/// whose end covers every code it prefixes (`icd10_in_range('I16.9', 'I10', 'I1A')`), with
/// or without dots, any case. Joins a diagnosis table to `icd10cm_category`:
/// `JOIN icd10cm_category c ON icd10_in_range(d.code, c.range_start, c.range_end)`.
fn icd10_in_range_udf() -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        "icd10_in_range",
        vec![DataType::Utf8, DataType::Utf8, DataType::Utf8],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            super::functions::over_arrays(args, |arrays| {
                let [code, start, end] = [&arrays[0], &arrays[1], &arrays[2]].map(|a| a.as_string::<i32>());
                let mut scratch = [String::new(), String::new(), String::new()];
                let result: BooleanArray = (0..code.len())
                    .map(|i| {
                        if code.is_null(i) || start.is_null(i) || end.is_null(i) {
                            return None;
                        }
                        let [c, s, e] = &mut scratch;
                        let form = crate::terminology::CodeForm::Icd10;
                        let (c, s, e) = (
                            crate::terminology::systems::normalise_code(form, code.value(i), c),
                            crate::terminology::systems::normalise_code(form, start.value(i), s),
                            crate::terminology::systems::normalise_code(form, end.value(i), e),
                        );
                        Some(in_range(c, s, e))
                    })
                    .collect();
                Arc::new(result)
            })
        }),
    )
}
