//! Counting of codes no crosswalk maps, for the `_dq_unmapped_codes` table.
//!
//! Each worker counts into its own [`UnmappedCounts`] (no locking); the load merges them.
//! A code allocates only the first time a worker meets it. Codes a table lists as
//! `unmatched` are counted too, with the table's reason.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::bindings::Binding;

/// The table's name in the warehouse.
pub const TABLE: &str = "_dq_unmapped_codes";

/// What is known of one unmapped code: its rows, and the first display, reason and the
/// smallest example id seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub count: u64,
    pub display: Option<Box<str>>,
    pub example_id: Option<Box<str>>,
    pub reason: Option<Box<str>>,
}

impl Tally {
    /// Adds `other`'s rows; its display, reason and example fill what is missing (the
    /// smallest example id wins).
    pub(crate) fn add(&mut self, other: Tally) {
        self.count += other.count;
        if self.display.is_none() {
            self.display = other.display;
        }
        if self.reason.is_none() {
            self.reason = other.reason;
        }
        // The smallest id, so that the example does not depend on thread timing.
        if other.example_id.is_some() && (self.example_id.is_none() || other.example_id < self.example_id) {
            self.example_id = other.example_id;
        }
    }
}

/// One output row: the binding, the system and code as written, the tally.
type Row<'a> = (&'a Binding, &'a str, &'a str, &'a Tally);

/// Per binding (by index in the terminology's bindings), per system as written, per code.
type ByCode = HashMap<Box<str>, Tally>;

/// Unmapped codes counted so far; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnmappedCounts {
    bindings: Vec<HashMap<Box<str>, ByCode>>,
}

/// One unmapped code as seen in a row.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The system as written ("" when the row has none).
    pub system: &'a str,
    /// The code as written.
    pub code: &'a str,
    /// The display, if the row has one.
    pub display: Option<&'a str>,
    /// The resource id, if the binding names an id column.
    pub id: Option<&'a str>,
    /// Why it is unmapped, when a table says.
    pub reason: Option<&'a str>,
}

impl UnmappedCounts {
    /// Counts one row of binding `binding`.
    pub fn record(&mut self, binding: usize, seen: Seen<'_>) {
        if self.bindings.len() <= binding {
            self.bindings.resize_with(binding + 1, HashMap::new);
        }
        let systems = &mut self.bindings[binding];
        let codes = match systems.get_mut(seen.system) {
            Some(codes) => codes,
            None => systems.entry(seen.system.into()).or_default(),
        };
        match codes.get_mut(seen.code) {
            Some(tally) => {
                tally.count += 1;
                if tally.example_id.is_none() || seen.id.is_some_and(|id| Some(id) < tally.example_id.as_deref()) {
                    tally.example_id = seen.id.map(Into::into);
                }
            }
            None => {
                let tally = Tally {
                    count: 1,
                    display: seen.display.map(Into::into),
                    example_id: seen.id.map(Into::into),
                    reason: seen.reason.map(Into::into),
                };
                codes.insert(seen.code.into(), tally);
            }
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: UnmappedCounts) {
        if self.bindings.len() < other.bindings.len() {
            self.bindings.resize_with(other.bindings.len(), HashMap::new);
        }
        for (mine, theirs) in self.bindings.iter_mut().zip(other.bindings) {
            for (system, codes) in theirs {
                let into = mine.entry(system).or_default();
                for (code, tally) in codes {
                    into.entry(code).or_default().add(tally);
                }
            }
        }
    }

    /// Takes `other`'s counts off these (rows counted that were later dropped: superseded
    /// duplicates); a code whose count reaches 0 is no longer listed.
    pub fn subtract(&mut self, other: &UnmappedCounts) {
        for (mine, theirs) in self.bindings.iter_mut().zip(&other.bindings) {
            for (system, codes) in theirs {
                let Some(into) = mine.get_mut(system) else { continue };
                for (code, tally) in codes {
                    if let Some(left) = into.get_mut(code) {
                        left.count = left.count.saturating_sub(tally.count);
                        if left.count == 0 {
                            into.remove(code);
                        }
                    }
                }
                if into.is_empty() {
                    mine.remove(system);
                }
            }
        }
    }

    /// Rows counted, all codes together.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.bindings.iter().flat_map(HashMap::values).flat_map(HashMap::values).map(|t| t.count).sum()
    }

    /// Distinct (binding, system, code) counted.
    #[must_use]
    pub fn distinct(&self) -> usize {
        self.bindings.iter().flat_map(HashMap::values).map(HashMap::len).sum()
    }

    /// The table's schema.
    #[must_use]
    pub fn schema() -> SchemaRef {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        Arc::new(Schema::new(vec![
            text("table", false),
            text("column", false),
            text("system", true),
            text("code", false),
            text("display", true),
            Field::new("count", DataType::Int64, false),
            text("example_resource_id", true),
            text("target_system", false),
            text("reason", true),
        ]))
    }

    /// The counts as one batch of [`UnmappedCounts::schema`], most frequent first.
    ///
    /// # Panics
    ///
    /// Never: the columns are built to the schema.
    #[must_use]
    pub fn to_batch(&self, bindings: &[Binding]) -> RecordBatch {
        let mut rows: Vec<Row<'_>> = Vec::with_capacity(self.distinct());
        for (binding, systems) in bindings.iter().zip(&self.bindings) {
            for (system, codes) in systems {
                rows.extend(codes.iter().map(|(code, tally)| (binding, system.as_ref(), code.as_ref(), tally)));
            }
        }
        rows.sort_by(|a, b| {
            (b.3.count, &a.0.table, &a.0.code, a.1, a.2).cmp(&(a.3.count, &b.0.table, &b.0.code, b.1, b.2))
        });
        let text = |f: &dyn Fn(&Row<'_>) -> Option<String>| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<StringArray>())
        };
        let columns: Vec<ArrayRef> = vec![
            text(&|r| Some(r.0.table.clone())),
            text(&|r| Some(r.0.code.clone())),
            text(&|r| (!r.1.is_empty()).then(|| r.1.to_owned())),
            text(&|r| Some(r.2.to_owned())),
            text(&|r| r.3.display.as_deref().map(str::to_owned)),
            Arc::new(rows.iter().map(|r| r.3.count as i64).collect::<Int64Array>()),
            text(&|r| r.3.example_id.as_deref().map(str::to_owned)),
            text(&|r| Some(r.0.target.clone())),
            text(&|r| r.3.reason.as_deref().map(str::to_owned)),
        ];
        RecordBatch::try_new(Self::schema(), columns).expect("columns match the schema")
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;

    use super::*;

    fn binding() -> Binding {
        Binding {
            table: "condition".into(),
            system: "code_system".into(),
            code: "code".into(),
            display: Some("code_display".into()),
            id: Some("id".into()),
            target: "http://hl7.org/fhir/sid/icd-10-cm".into(),
            output: "icd10cm".into(),
        }
    }

    #[test]
    fn counts_merge_and_keep_the_smallest_example() {
        let seen =
            |code, id| Seen { system: "http://snomed.info/sct", code, display: Some("X"), id: Some(id), reason: None };
        let mut a = UnmappedCounts::default();
        a.record(0, seen("1", "c"));
        a.record(0, seen("1", "b"));
        let mut b = UnmappedCounts::default();
        b.record(0, seen("1", "a"));
        b.record(0, seen("2", "z"));
        b.record(0, Seen { system: "", code: "3", display: None, id: None, reason: Some("why") });
        a.merge(b);
        assert_eq!((a.total(), a.distinct()), (5, 3));
        let batch = a.to_batch(&[binding()]);
        assert_eq!(batch.num_rows(), 3);
        let col = |i: usize| batch.column(i).as_any().downcast_ref::<StringArray>().unwrap().clone();
        assert_eq!(col(3).value(0), "1", "most frequent first");
        assert_eq!(batch.column(5).as_any().downcast_ref::<Int64Array>().unwrap().value(0), 3);
        assert_eq!(col(6).value(0), "a");
        let null_system = (0..3).find(|&i| col(3).value(i) == "3").unwrap();
        assert!(col(2).is_null(null_system));
        assert_eq!(col(8).value(null_system), "why");
    }
}
