//! Appends view rows into Arrow builders and cuts record batches.
//!
//! [`ViewBatchBuilder`] serves one view; [`ViewSet`] serves every view of a load, so a
//! resource parsed once feeds all the views of its type. A view that yields one row per
//! resource (no `forEach`, `repeat` or `unionAll`) writes each column's value straight into
//! its builder, and so does a view with one row per item of a single `forEach`; any other
//! view builds the resource's rows with the spec's algorithm
//! ([`CompiledView::rows`]) and appends them. Either way a resource that fails is taken back
//! out of every builder, so it leaves no trace in any batch and the caller can dead-letter
//! it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::FieldRef;
use arrow::record_batch::RecordBatch;

use super::builders::ColumnBuilder;
use super::fhirpath::navigate::RootSlots;
use super::fhirpath::{EvalContext, Item};
use super::json::Json;
use super::plan::{ColumnEval, CompiledView, ForEachShape};

/// A resource the view could not turn into rows, as the spec defines such errors (several
/// values in a non-collection column, a non-boolean `where`, a value of the wrong type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: view '{view}'{}: {message}", column.as_ref().map(|c| format!(", column '{c}'")).unwrap_or_default())]
pub struct RowError {
    /// `Type/id` of the resource.
    pub resource: String,
    /// The view's name.
    pub view: String,
    /// The column being evaluated, if the error is about one.
    pub column: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// Builds record batches of one view from resources.
///
/// ```
/// use std::sync::Arc;
/// use fhirhouse::view::{CompiledView, Json, ViewBatchBuilder};
/// let view = CompiledView::from_json_str(r#"{"resource": "Patient",
///   "select": [{"column": [{"name": "id", "path": "id", "type": "id"}]},
///              {"forEach": "name", "column": [{"name": "family", "path": "family", "type": "string"}]}]}"#).unwrap();
/// let mut builder = ViewBatchBuilder::new(Arc::new(view));
/// let mut line = br#"{"resourceType":"Patient","id":"p1","name":[{"family":"A"},{"family":"B"}]}"#.to_vec();
/// let tape = simd_json::to_tape(&mut line).unwrap();
/// assert_eq!(builder.append(Json::root(&tape)).unwrap(), 2);
/// let batch = builder.finish();
/// assert_eq!((batch.num_rows(), batch.num_columns()), (2, 2));
/// ```
pub struct ViewBatchBuilder {
    view: Arc<CompiledView>,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl ViewBatchBuilder {
    /// A builder with no rows yet.
    pub fn new(view: Arc<CompiledView>) -> Self {
        let schema = view.schema();
        let columns = view
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| ColumnBuilder::new(c.value_type, c.collection.then(|| list_item_field(f))))
            .collect();
        ViewBatchBuilder { view, columns, rows: 0 }
    }

    /// The view this builder serves.
    pub fn view(&self) -> &Arc<CompiledView> {
        &self.view
    }

    /// Evaluates the view over `resource` and appends its rows; returns how many. A resource
    /// of another type, or filtered out by `where`, appends nothing and returns 0.
    pub fn append(&mut self, resource: Json<'_>) -> Result<usize, RowError> {
        match append_resource(&self.view, &mut self.columns, resource) {
            Ok(rows) => {
                self.rows += rows;
                Ok(rows)
            }
            Err(e) => {
                self.truncate(self.rows);
                Err(e)
            }
        }
    }

    /// Takes back every row after the first `rows` (and any part-appended row).
    fn truncate(&mut self, rows: usize) {
        self.columns.iter_mut().for_each(|c| c.truncate(rows));
        self.rows = rows;
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no rows are buffered.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Takes the buffered rows as a record batch and starts afresh.
    pub fn finish(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        let rows = std::mem::take(&mut self.rows);
        RecordBatch::try_new_with_options(
            self.view.schema(),
            arrays,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .expect("builders follow the view schema")
    }
}

/// Appends the rows of one resource and returns how many. On error the builders may hold
/// part of it, for the caller to truncate.
fn append_resource(view: &CompiledView, columns: &mut [ColumnBuilder], resource: Json<'_>) -> Result<usize, RowError> {
    // The two direct routes' shapes exclude each other: one row has no nested select, a
    // single `forEach` has exactly one.
    let (one_row, for_each) = (view.one_row_columns(), view.for_each_shape());
    if one_row.is_none() && for_each.is_none() {
        return append_rows(view, columns, resource);
    }
    let mut root_slots = RootSlots::new();
    let Some(ctx) = view.start(resource, &mut root_slots)? else { return Ok(0) };
    let focus = Item::Node(resource);
    if let Some(shape) = for_each {
        return append_for_each_rows(view, &shape, columns, &ctx, &focus);
    }
    // One row: each column's value evaluated at the resource, straight into its builder.
    for column in one_row.unwrap_or_default() {
        append_value(view, column, &ctx, &focus, &mut columns[column.slot])?;
    }
    Ok(1)
}

/// The general route: the resource's rows built with the spec's algorithm, then appended.
fn append_rows(view: &CompiledView, columns: &mut [ColumnBuilder], resource: Json<'_>) -> Result<usize, RowError> {
    let rows = view.rows(resource)?;
    for row in &rows {
        for (builder, cell) in columns.iter_mut().zip(row) {
            builder.append_cell(cell);
        }
    }
    Ok(rows.len())
}

/// The route of views with one row per item of a single `forEach`
/// ([`CompiledView::for_each_shape`]): the iterating element's columns at each item written
/// straight into their builders, then the root's columns (the same for every item)
/// evaluated once and appended to every row. Evaluated in the general route's order, so the
/// same error is reported; like it, when the `forEach` finds nothing the root's columns are
/// not evaluated at all (most Observations have no component, and the
/// `observation_component` view's root columns cost more than the rest of it).
fn append_for_each_rows<'a>(
    view: &'a CompiledView,
    shape: &ForEachShape<'a>,
    columns: &mut [ColumnBuilder],
    ctx: &EvalContext<'_, 'a>,
    focus: &Item<'a>,
) -> Result<usize, RowError> {
    let items = view.for_each_items(shape.path, ctx, focus)?;
    if items.is_empty() {
        // No rows, or `forEachOrNull`'s one row of nulls, which the general route builds.
        return if shape.or_null { append_rows(view, columns, ctx.resource) } else { Ok(0) };
    }
    for (i, item) in items.iter().enumerate() {
        let ctx = EvalContext { row_index: i as i64, ..*ctx };
        for column in shape.columns {
            append_value(view, column, &ctx, item, &mut columns[column.slot])?;
        }
    }
    for column in shape.shared {
        let cell = view.cell(column, ctx, std::slice::from_ref(focus))?;
        let builder = &mut columns[column.slot];
        (0..items.len()).for_each(|_| builder.append_cell(&cell));
    }
    Ok(items.len())
}

/// Evaluates `column` at `focus` and appends its value to `builder`.
fn append_value<'a>(
    view: &'a CompiledView,
    column: &'a ColumnEval,
    ctx: &EvalContext<'_, 'a>,
    focus: &Item<'a>,
    builder: &mut ColumnBuilder,
) -> Result<(), RowError> {
    // Most columns are plain paths or the keys of one, and the single-item walk finds their
    // one item (or none): it goes straight into the builder. A path that meets several
    // items, and every other expression, takes the general route with its checks.
    if let Some(found) = column.expr.single_item_at(ctx, focus) {
        let plan = &view.columns()[column.slot];
        let appended = if plan.collection { builder.append_list(found) } else { builder.append_item(found) };
        return appended.map_err(|e| view.error(ctx.resource, Some(plan), e));
    }
    let (plan, found) = view.column_value(column, ctx, std::slice::from_ref(focus))?;
    let appended = if plan.collection {
        builder.append_list(found.into_collection())
    } else {
        builder.append_item(found.into_single())
    };
    appended.map_err(|e| view.error(ctx.resource, Some(plan), e))
}

fn list_item_field(field: &FieldRef) -> FieldRef {
    match field.data_type() {
        arrow::datatypes::DataType::List(item) => item.clone(),
        other => unreachable!("collection column typed {other}"),
    }
}

/// Every view of a load, fed from one parse per resource.
///
/// Views are grouped by resource type so a resource is evaluated only by the views that
/// read its type. [`ViewSet::append`] is all-or-nothing across views: if any view fails
/// on a resource, no view keeps rows from it.
pub struct ViewSet {
    builders: Vec<ViewBatchBuilder>,
    /// Looked up twice per resource: with SipHash, hashing the type name cost more than
    /// the lookup. The keys are the views' own resource types, nothing an input chooses.
    by_type: HashMap<String, Vec<usize>, foldhash::fast::FixedState>,
}

impl ViewSet {
    /// A set over the given views.
    pub fn new(views: impl IntoIterator<Item = Arc<CompiledView>>) -> Self {
        let builders: Vec<ViewBatchBuilder> = views.into_iter().map(ViewBatchBuilder::new).collect();
        let mut by_type: HashMap<String, Vec<usize>, _> = HashMap::with_hasher(foldhash::fast::FixedState::default());
        for (i, b) in builders.iter().enumerate() {
            by_type.entry(b.view.resource_type().to_string()).or_default().push(i);
        }
        ViewSet { builders, by_type }
    }

    /// Whether any view reads `resource_type`.
    pub fn reads(&self, resource_type: &str) -> bool {
        self.by_type.contains_key(resource_type)
    }

    /// Evaluates every view of the resource's type; returns the rows appended in total.
    pub fn append(&mut self, resource_type: &str, resource: Json<'_>) -> Result<usize, RowError> {
        let Some(indexes) = self.by_type.get(resource_type) else { return Ok(0) };
        let mut appended: smallvec::SmallVec<[usize; 8]> = smallvec::SmallVec::new();
        for &i in indexes {
            match self.builders[i].append(resource) {
                Ok(rows) => appended.push(rows),
                Err(e) => {
                    for (&j, &rows) in indexes.iter().zip(&appended) {
                        let builder = &mut self.builders[j];
                        builder.truncate(builder.rows - rows);
                    }
                    return Err(e);
                }
            }
        }
        Ok(appended.iter().sum())
    }

    /// The per-view builders, e.g. to check their sizes and finish full ones.
    pub fn builders_mut(&mut self) -> &mut [ViewBatchBuilder] {
        &mut self.builders
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
