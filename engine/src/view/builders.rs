//! Arrow column builders that can take back the rows of a failed resource.
//!
//! A view appends a resource's values column by column, straight from the document. The
//! spec's row semantics are all-or-nothing per resource, so when a later column of a
//! resource fails, the values already appended for it must go: [`ColumnBuilder::truncate`]
//! cuts every column back to a row count. Arrow's own builders cannot shrink, so values
//! are kept in plain vectors and handed to Arrow arrays, without copying, when a batch is
//! cut.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Int32Array, Int64Array, ListArray,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{FieldRef, Int32Type};

use super::fhirpath::Item;
use super::temporal::Temporal;
use super::types::{Cell, ValueType};

/// Takes a finished batch's values out of `v` (for Arrow, without copying) and leaves an
/// empty vector, holding `first` if given, sized for as many values as the batch had: the
/// next batch is likely as large, and growing to it again would copy it several times.
fn take_sized<T>(v: &mut Vec<T>, first: Option<T>) -> Vec<T> {
    let mut next = Vec::with_capacity(v.len());
    next.extend(first);
    std::mem::replace(v, next)
}

/// Text values: UTF-8 bytes and one end offset per value.
struct TextValues {
    /// `offsets[i]..offsets[i + 1]` is value `i`; starts with 0.
    offsets: Vec<i32>,
    bytes: Vec<u8>,
}

impl Default for TextValues {
    fn default() -> Self {
        TextValues { offsets: vec![0], bytes: Vec::new() }
    }
}

impl TextValues {
    fn push(&mut self, text: &str) {
        self.bytes.extend_from_slice(text.as_bytes());
        self.push_end();
    }

    /// Ends a value whose bytes were appended to `bytes` directly (or an empty one).
    fn push_end(&mut self) {
        let end = i32::try_from(self.bytes.len()).expect("a batch's text column stays under 2 GiB");
        self.offsets.push(end);
    }

    fn get(&self, i: usize) -> &[u8] {
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        self.bytes.truncate(self.offsets[len] as usize);
    }

    fn take(&mut self) -> (OffsetBuffer<i32>, Buffer) {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(take_sized(&mut self.offsets, Some(0))));
        (offsets, Buffer::from_vec(take_sized(&mut self.bytes, None)))
    }
}

/// A `Dictionary(Int32, Utf8)` column of codes.
///
/// Arrow's dictionary builder hashes every value with a DoS-resistant hasher; codes are
/// short, few and often repeat the previous row (`status` is `final` row after row), so
/// this checks the previous value first and otherwise uses FNV-1a, several times cheaper.
/// Dictionary entries of rows taken back stay: an unused entry is harmless.
#[derive(Default)]
struct CodeValues {
    keys: Vec<i32>,
    dictionary: TextValues,
    index: HashMap<Box<str>, i32, std::hash::BuildHasherDefault<Fnv1a>>,
    /// The key appended last, compared against first.
    last: Option<i32>,
}

impl CodeValues {
    fn push(&mut self, value: &str) {
        if let Some(key) = self.last {
            if self.dictionary.get(key as usize) == value.as_bytes() {
                return self.keys.push(key);
            }
        }
        let key = match self.index.get(value) {
            Some(&key) => key,
            None => {
                let key = self.index.len() as i32;
                self.dictionary.push(value);
                self.index.insert(value.into(), key);
                key
            }
        };
        self.keys.push(key);
        self.last = Some(key);
    }

    fn finish(&mut self, nulls: Option<arrow::buffer::NullBuffer>) -> ArrayRef {
        self.index.clear();
        self.last = None;
        let (offsets, bytes) = self.dictionary.take();
        let keys = Int32Array::new(ScalarBuffer::from(take_sized(&mut self.keys, None)), nulls);
        Arc::new(
            DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::new(offsets, bytes, None)))
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

/// The values of one scalar type; a null holds a placeholder (0, empty text).
enum Values {
    Text(TextValues),
    Code(CodeValues),
    Bool(BooleanBufferBuilder),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Dec(Vec<i128>, u8, i8),
    Date(Vec<i32>),
    Timestamp(Vec<i64>),
    Time(Vec<i64>),
}

/// A scalar column (or the items of a list column): values and their validity.
struct Scalars {
    values: Values,
    validity: NullBufferBuilder,
}

impl Scalars {
    fn new(value_type: ValueType) -> Self {
        let values = match value_type {
            ValueType::Utf8 => Values::Text(TextValues::default()),
            ValueType::Code => Values::Code(CodeValues::default()),
            ValueType::Boolean => Values::Bool(BooleanBufferBuilder::new(0)),
            ValueType::Int32(_) => Values::Int32(Vec::new()),
            ValueType::Int64(_) => Values::Int64(Vec::new()),
            ValueType::Decimal(p, s) => Values::Dec(Vec::new(), p, s),
            ValueType::Date32 => Values::Date(Vec::new()),
            ValueType::Timestamp => Values::Timestamp(Vec::new()),
            ValueType::Time64 => Values::Time(Vec::new()),
        };
        Scalars { values, validity: NullBufferBuilder::new(0) }
    }

    /// Appends a scalar cell. Cells were converted for this column's type, so any other
    /// pairing cannot occur and is treated as null.
    fn append(&mut self, cell: &Cell<'_>) {
        match (&mut self.values, cell) {
            (Values::Text(v), Cell::Str(s)) => v.push(s),
            (Values::Code(v), Cell::Str(s)) => v.push(s),
            (Values::Bool(v), Cell::Bool(b)) => v.append(*b),
            (Values::Int32(v), Cell::Int(i)) => v.push(*i as i32),
            (Values::Int64(v), Cell::Int(i)) => v.push(*i),
            (Values::Dec(v, ..), Cell::Dec(d)) => v.push(*d),
            (Values::Date(v), Cell::Date(d)) => v.push(*d),
            (Values::Timestamp(v), Cell::Timestamp(t)) => v.push(*t),
            (Values::Time(v), Cell::Time(t)) => v.push(*t),
            (_, cell) => {
                debug_assert!(*cell == Cell::Null, "cell {cell:?} does not fit its column");
                return self.append_null();
            }
        }
        self.validity.append_non_null();
    }

    fn append_null(&mut self) {
        match &mut self.values {
            Values::Text(v) => v.push_end(),
            Values::Code(v) => v.keys.push(0),
            Values::Bool(v) => v.append(false),
            Values::Int32(v) | Values::Date(v) => v.push(0),
            Values::Int64(v) | Values::Timestamp(v) | Values::Time(v) => v.push(0),
            Values::Dec(v, ..) => v.push(0),
        }
        self.validity.append_null();
    }

    fn len(&self) -> usize {
        self.validity.len()
    }

    fn truncate(&mut self, len: usize) {
        match &mut self.values {
            Values::Text(v) => v.truncate(len),
            Values::Code(v) => {
                v.keys.truncate(len);
                v.last = None;
            }
            Values::Bool(v) => v.truncate(len),
            Values::Int32(v) | Values::Date(v) => v.truncate(len),
            Values::Int64(v) | Values::Timestamp(v) | Values::Time(v) => v.truncate(len),
            Values::Dec(v, ..) => v.truncate(len),
        }
        self.validity.truncate(len);
    }

    fn finish(&mut self) -> ArrayRef {
        let nulls = self.validity.finish();
        fn take<T: arrow::datatypes::ArrowNativeType>(v: &mut Vec<T>) -> ScalarBuffer<T> {
            ScalarBuffer::from(take_sized(v, None))
        }
        match &mut self.values {
            Values::Text(v) => {
                let (offsets, bytes) = v.take();
                Arc::new(StringArray::new(offsets, bytes, nulls))
            }
            Values::Code(v) => v.finish(nulls),
            Values::Bool(v) => Arc::new(BooleanArray::new(v.finish(), nulls)),
            Values::Int32(v) => Arc::new(Int32Array::new(take(v), nulls)),
            Values::Int64(v) => Arc::new(Int64Array::new(take(v), nulls)),
            Values::Dec(v, p, s) => Arc::new(
                Decimal128Array::new(take(v), nulls)
                    .with_precision_and_scale(*p, *s)
                    .expect("precision checked at compile"),
            ),
            Values::Date(v) => Arc::new(Date32Array::new(take(v), nulls)),
            Values::Timestamp(v) => Arc::new(TimestampMicrosecondArray::new(take(v), nulls).with_timezone("UTC")),
            Values::Time(v) => Arc::new(Time64MicrosecondArray::new(take(v), nulls)),
        }
    }
}

/// List offsets and validity of a collection column.
struct ListState {
    item_field: FieldRef,
    offsets: Vec<i32>,
    validity: NullBufferBuilder,
}

/// One output column: scalar values, plus list offsets and validity for a collection.
pub struct ColumnBuilder {
    value_type: ValueType,
    values: Scalars,
    list: Option<ListState>,
}

impl ColumnBuilder {
    /// An empty column of `value_type`; `item_field` makes it a list of such values.
    pub fn new(value_type: ValueType, item_field: Option<FieldRef>) -> Self {
        let list = item_field.map(|item_field| ListState {
            item_field,
            offsets: vec![0],
            validity: NullBufferBuilder::new(0),
        });
        ColumnBuilder { value_type, values: Scalars::new(value_type), list }
    }

    /// Appends one row's cell (a [`Cell::List`] for a collection column).
    pub fn append_cell(&mut self, cell: &Cell<'_>) {
        let Some(list) = &mut self.list else { return self.values.append(cell) };
        match cell {
            Cell::List(items) => {
                for item in items {
                    self.values.append(item);
                }
                list.offsets.push(self.values.len() as i32);
                list.validity.append_non_null();
            }
            _ => {
                list.offsets.push(self.values.len() as i32);
                list.validity.append_null();
            }
        }
    }

    /// Appends one row of a scalar column: the item converted to the column's type, or
    /// null. Nothing is appended when the conversion fails.
    pub fn append_item(&mut self, item: Option<Item<'_>>) -> Result<(), String> {
        debug_assert!(self.list.is_none(), "a list column takes a list");
        match item {
            Some(item) => self.push_value(item),
            None => {
                self.values.append_null();
                Ok(())
            }
        }
    }

    /// Appends one row of a collection column: a list of the items, converted. On a
    /// failed conversion the items appended so far stay until [`truncate`](Self::truncate).
    pub fn append_list<'a>(&mut self, items: impl IntoIterator<Item = Item<'a>>) -> Result<(), String> {
        for item in items {
            self.push_value(item)?;
        }
        let list = self.list.as_mut().expect("a scalar column takes one item");
        list.offsets.push(self.values.len() as i32);
        list.validity.append_non_null();
        Ok(())
    }

    /// Appends one value, converted to the column's type.
    fn push_value(&mut self, item: Item<'_>) -> Result<(), String> {
        // Text into a text column, the commonest value: what `convert` makes of any item
        // that is text (the text itself), without the detour through a cell; likewise a
        // dateTime that reads as one. Anything else, and any error, is `convert`'s.
        match (&mut self.values.values, item.as_str()) {
            (Values::Text(v), Some(text)) => v.push(text),
            (Values::Code(v), Some(text)) => v.push(text),
            (Values::Timestamp(v), Some(text)) if let Some(micros) = Temporal::timestamp_micros_of(text) => {
                v.push(micros)
            }
            _ => {
                let cell = self.value_type.convert(item)?;
                self.values.append(&cell);
                return Ok(());
            }
        }
        self.values.validity.append_non_null();
        Ok(())
    }

    /// Rows in the column.
    pub fn len(&self) -> usize {
        match &self.list {
            Some(list) => list.offsets.len() - 1,
            None => self.values.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cuts the column back to its first `rows` rows (values appended beyond the last
    /// complete row included).
    pub fn truncate(&mut self, rows: usize) {
        match &mut self.list {
            Some(list) => {
                list.offsets.truncate(rows + 1);
                list.validity.truncate(rows);
                self.values.truncate(list.offsets[rows] as usize);
            }
            None => self.values.truncate(rows),
        }
    }

    /// Takes the rows as an array and starts afresh.
    pub fn finish(&mut self) -> ArrayRef {
        let values = self.values.finish();
        let Some(list) = &mut self.list else { return values };
        let offsets = OffsetBuffer::new(ScalarBuffer::from(take_sized(&mut list.offsets, Some(0))));
        Arc::new(ListArray::new(list.item_field.clone(), offsets, values, list.validity.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use std::borrow::Cow;

    fn text(s: &str) -> Item<'_> {
        Item::Str(Cow::Borrowed(s))
    }

    #[test]
    fn truncate_takes_back_whole_rows_of_every_kind() {
        let field = Arc::new(arrow::datatypes::Field::new("item", ValueType::Utf8.data_type(), true));
        let mut columns = [
            ColumnBuilder::new(ValueType::Utf8, None),
            ColumnBuilder::new(ValueType::Code, None),
            ColumnBuilder::new(ValueType::Utf8, Some(field)),
            ColumnBuilder::new(ValueType::Boolean, None),
        ];
        for row in 0..3 {
            let word = ["a", "bb", "ccc"][row];
            columns[0].append_item(Some(text(word))).unwrap();
            columns[1].append_item((row != 1).then(|| text(word))).unwrap();
            columns[2].append_list([text(word), text("x")]).unwrap();
            columns[3].append_item(Some(Item::Bool(row == 2))).unwrap();
        }
        // A fourth row half appended, then taken back with the third.
        columns[0].append_item(Some(text("dddd"))).unwrap();
        columns[2].append_list([text("z")]).unwrap();
        assert!(columns[3].append_item(Some(text("not a boolean"))).is_err());
        columns.iter_mut().for_each(|c| c.truncate(2));
        columns[1].append_item(Some(text("e"))).unwrap();
        columns[0].append_item(None).unwrap();
        columns[2].append_cell(&Cell::Null);
        columns[3].append_item(None).unwrap();
        assert!(columns.iter().all(|c| c.len() == 3));
        let arrays: Vec<ArrayRef> = columns.iter_mut().map(ColumnBuilder::finish).collect();
        let strings = arrays[0].as_string::<i32>();
        assert_eq!((strings.value(0), strings.value(1), strings.is_null(2)), ("a", "bb", true));
        let codes = arrow::compute::cast(&arrays[1], &arrow::datatypes::DataType::Utf8).unwrap();
        let codes = codes.as_string::<i32>();
        assert_eq!((codes.value(0), codes.is_null(1), codes.value(2)), ("a", true, "e"));
        let lists = arrays[2].as_list::<i32>();
        assert_eq!(lists.value(1).as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["bb", "x"]);
        assert!(lists.is_null(2));
        let bools = arrays[3].as_boolean();
        assert_eq!((bools.value(0), bools.value(1), bools.is_null(2)), (false, false, true));
        assert!(columns.iter().all(ColumnBuilder::is_empty), "finish starts afresh");
    }
}
