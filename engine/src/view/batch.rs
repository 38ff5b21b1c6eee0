//! Appends view rows straight into Arrow builders and cuts record batches.
//!
//! [`ViewBatchBuilder`] serves one view; [`ViewSet`] serves every view of a load, so a
//! resource parsed once feeds all the views of its type. A resource's rows are computed in
//! full before any is appended, so a resource that fails leaves no trace in any batch and the
//! caller can dead-letter it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, DictionaryArray, Int32Builder, Int64Builder, ListArray,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{FieldRef, Int32Type};
use arrow::record_batch::RecordBatch;
use simd_json::BorrowedValue as Json;

use super::plan::{CompiledView, Row};
use super::types::{Cell, ValueType};

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
/// use fhirhouse::view::{CompiledView, ViewBatchBuilder};
/// let view = CompiledView::from_json_str(r#"{"resource": "Patient",
///   "select": [{"column": [{"name": "id", "path": "id", "type": "id"}]},
///              {"forEach": "name", "column": [{"name": "family", "path": "family", "type": "string"}]}]}"#).unwrap();
/// let mut builder = ViewBatchBuilder::new(Arc::new(view));
/// let mut line = br#"{"resourceType":"Patient","id":"p1","name":[{"family":"A"},{"family":"B"}]}"#.to_vec();
/// assert_eq!(builder.append(&simd_json::to_borrowed_value(&mut line).unwrap()).unwrap(), 2);
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
    pub fn append(&mut self, resource: &Json<'_>) -> Result<usize, RowError> {
        let rows = self.view.rows(resource)?;
        append_rows(&mut self.columns, &mut self.rows, &rows);
        Ok(rows.len())
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

/// Appends rows column by column. A free function so callers can hold a borrow of the view
/// (which the rows borrow from) while the builders are mutated.
fn append_rows(columns: &mut [ColumnBuilder], count: &mut usize, rows: &[Row<'_>]) {
    for row in rows {
        for (builder, cell) in columns.iter_mut().zip(row) {
            builder.append(cell);
        }
    }
    *count += rows.len();
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
    /// The views, apart from their builders so rows can borrow a view while a builder grows.
    views: Vec<Arc<CompiledView>>,
    builders: Vec<ViewBatchBuilder>,
    by_type: HashMap<String, Vec<usize>>,
}

impl ViewSet {
    /// A set over the given views.
    pub fn new(views: impl IntoIterator<Item = Arc<CompiledView>>) -> Self {
        let views: Vec<Arc<CompiledView>> = views.into_iter().collect();
        let builders: Vec<ViewBatchBuilder> = views.iter().cloned().map(ViewBatchBuilder::new).collect();
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, b) in builders.iter().enumerate() {
            by_type.entry(b.view.resource_type().to_string()).or_default().push(i);
        }
        ViewSet { views, builders, by_type }
    }

    /// Whether any view reads `resource_type`.
    pub fn reads(&self, resource_type: &str) -> bool {
        self.by_type.contains_key(resource_type)
    }

    /// Evaluates every view of the resource's type; returns the rows appended in total.
    pub fn append(&mut self, resource_type: &str, resource: &Json<'_>) -> Result<usize, RowError> {
        let Some(indexes) = self.by_type.get(resource_type) else { return Ok(0) };
        let mut all_rows = Vec::with_capacity(indexes.len());
        for &i in indexes {
            all_rows.push(self.views[i].rows(resource)?);
        }
        let mut total = 0;
        for (&i, rows) in indexes.iter().zip(&all_rows) {
            let builder = &mut self.builders[i];
            append_rows(&mut builder.columns, &mut builder.rows, rows);
            total += rows.len();
        }
        Ok(total)
    }

    /// The per-view builders, e.g. to check their sizes and finish full ones.
    pub fn builders_mut(&mut self) -> &mut [ViewBatchBuilder] {
        &mut self.builders
    }
}

/// Builds the values of one scalar type.
enum ScalarBuilder {
    Utf8(StringBuilder),
    Code(CodeBuilder),
    Bool(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Dec(Decimal128Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Time(Time64MicrosecondBuilder),
}

impl ScalarBuilder {
    fn new(value_type: ValueType) -> Self {
        match value_type {
            ValueType::Utf8 => ScalarBuilder::Utf8(StringBuilder::new()),
            ValueType::Code => ScalarBuilder::Code(CodeBuilder::default()),
            ValueType::Boolean => ScalarBuilder::Bool(BooleanBuilder::new()),
            ValueType::Int32 => ScalarBuilder::Int32(Int32Builder::new()),
            ValueType::Int64 => ScalarBuilder::Int64(Int64Builder::new()),
            ValueType::Decimal(p, s) => ScalarBuilder::Dec(
                Decimal128Builder::new().with_precision_and_scale(p, s).expect("precision checked at compile"),
            ),
            ValueType::Date32 => ScalarBuilder::Date(Date32Builder::new()),
            ValueType::Timestamp => ScalarBuilder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            ValueType::Time64 => ScalarBuilder::Time(Time64MicrosecondBuilder::new()),
        }
    }

    /// Appends a scalar cell. Cells were converted for this column's type, so any other
    /// pairing cannot occur and is treated as null.
    fn append(&mut self, cell: &Cell<'_>) {
        match (self, cell) {
            (ScalarBuilder::Utf8(b), Cell::Str(s)) => b.append_value(s),
            (ScalarBuilder::Code(b), Cell::Str(s)) => b.append_value(s),
            (ScalarBuilder::Bool(b), Cell::Bool(v)) => b.append_value(*v),
            (ScalarBuilder::Int32(b), Cell::Int(v)) => b.append_value(*v as i32),
            (ScalarBuilder::Int64(b), Cell::Int(v)) => b.append_value(*v),
            (ScalarBuilder::Dec(b), Cell::Dec(v)) => b.append_value(*v),
            (ScalarBuilder::Date(b), Cell::Date(v)) => b.append_value(*v),
            (ScalarBuilder::Timestamp(b), Cell::Timestamp(v)) => b.append_value(*v),
            (ScalarBuilder::Time(b), Cell::Time(v)) => b.append_value(*v),
            (builder, cell) => {
                debug_assert!(*cell == Cell::Null, "cell {cell:?} does not fit its column");
                builder.append_null();
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            ScalarBuilder::Utf8(b) => b.append_null(),
            ScalarBuilder::Code(b) => b.append_null(),
            ScalarBuilder::Bool(b) => b.append_null(),
            ScalarBuilder::Int32(b) => b.append_null(),
            ScalarBuilder::Int64(b) => b.append_null(),
            ScalarBuilder::Dec(b) => b.append_null(),
            ScalarBuilder::Date(b) => b.append_null(),
            ScalarBuilder::Timestamp(b) => b.append_null(),
            ScalarBuilder::Time(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        use arrow::array::ArrayBuilder;
        match self {
            ScalarBuilder::Utf8(b) => ArrayBuilder::finish(b),
            ScalarBuilder::Code(b) => b.finish(),
            ScalarBuilder::Bool(b) => ArrayBuilder::finish(b),
            ScalarBuilder::Int32(b) => ArrayBuilder::finish(b),
            ScalarBuilder::Int64(b) => ArrayBuilder::finish(b),
            ScalarBuilder::Dec(b) => ArrayBuilder::finish(b),
            ScalarBuilder::Date(b) => ArrayBuilder::finish(b),
            ScalarBuilder::Timestamp(b) => ArrayBuilder::finish(b),
            ScalarBuilder::Time(b) => ArrayBuilder::finish(b),
        }
    }
}

/// Builds a `Dictionary(Int32, Utf8)` column of codes.
///
/// Arrow's `StringDictionaryBuilder` hashes every value with a DoS-resistant hasher; codes
/// are short, few and often repeat the previous row (`status` is `final` row after row), so
/// this checks the previous value first and otherwise uses FNV-1a, several times cheaper.
#[derive(Default)]
struct CodeBuilder {
    keys: Int32Builder,
    values: StringBuilder,
    index: HashMap<Box<str>, i32, std::hash::BuildHasherDefault<Fnv1a>>,
    /// The key appended last, compared against first.
    last: Option<i32>,
}

impl CodeBuilder {
    /// The text of a key already in the dictionary.
    fn value_of(&self, key: i32) -> &[u8] {
        let offsets = self.values.offsets_slice();
        &self.values.values_slice()[offsets[key as usize] as usize..offsets[key as usize + 1] as usize]
    }

    fn append_value(&mut self, value: &str) {
        if let Some(key) = self.last {
            if self.value_of(key) == value.as_bytes() {
                return self.keys.append_value(key);
            }
        }
        let key = match self.index.get(value) {
            Some(&key) => key,
            None => {
                let key = self.index.len() as i32;
                self.values.append_value(value);
                self.index.insert(value.into(), key);
                key
            }
        };
        self.keys.append_value(key);
        self.last = Some(key);
    }

    fn append_null(&mut self) {
        self.keys.append_null();
    }

    fn finish(&mut self) -> ArrayRef {
        use arrow::array::ArrayBuilder;
        self.index.clear();
        self.last = None;
        let values = ArrayBuilder::finish(&mut self.values);
        Arc::new(
            DictionaryArray::<Int32Type>::try_new(self.keys.finish(), values)
                .expect("keys index the values built with them"),
        )
    }
}

/// FNV-1a: a few instructions per byte, ideal for short keys from trusted views' data
/// (the dictionary lives for one batch, so collisions can only slow one batch down).
#[derive(Default)]
struct Fnv1a(u64);

impl std::hash::Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// A column: scalar values, plus list offsets and validity for collection columns.
struct ColumnBuilder {
    values: ScalarBuilder,
    list: Option<ListState>,
}

struct ListState {
    item_field: FieldRef,
    offsets: Vec<i32>,
    validity: NullBufferBuilder,
}

impl ColumnBuilder {
    fn new(value_type: ValueType, item_field: Option<FieldRef>) -> Self {
        let list = item_field.map(|item_field| ListState {
            item_field,
            offsets: vec![0],
            validity: NullBufferBuilder::new(0),
        });
        ColumnBuilder { values: ScalarBuilder::new(value_type), list }
    }

    fn append(&mut self, cell: &Cell<'_>) {
        let Some(list) = &mut self.list else { return self.values.append(cell) };
        let last = *list.offsets.last().unwrap_or(&0);
        match cell {
            Cell::List(items) => {
                for item in items {
                    self.values.append(item);
                }
                list.offsets.push(last + items.len() as i32);
                list.validity.append_non_null();
            }
            _ => {
                list.offsets.push(last);
                list.validity.append_null();
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        let values = self.values.finish();
        let Some(list) = &mut self.list else { return values };
        let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(&mut list.offsets, vec![0])));
        Arc::new(ListArray::new(list.item_field.clone(), offsets, values, list.validity.finish()))
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
