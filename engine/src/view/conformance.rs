//! Runs the official SQL on FHIR v2 conformance suite against the view engine.
//!
//! Each test file holds resources and tests; a test is a ViewDefinition with either the rows
//! it must produce (`expect`, compared as a multiset, as the reference runner does), a row
//! count (`expectCount`), or `expectError`. Rows go through the real path — simd-json parse,
//! [`ViewBatchBuilder`], Arrow arrays — and are read back as typed cells; expected values are
//! converted to the column's type with the same rules, so `"2010-10-10T00:00:00.000+14:00"`
//! and the timestamp the engine stored compare by instant, and `0.95` equals `0.950000000`.
//! The report follows the suite's test-report format: `{file: {tests: [{name, result}]}}`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Int32Type, Int64Type, Time64MicrosecondType, TimeUnit,
    TimestampMicrosecondType,
};
use serde_json::{json, Map, Value};

use super::fhirpath::Item;
use super::types::Cell;
use super::{CompiledView, Json, ViewBatchBuilder};

/// The outcome of one test case.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutcome {
    /// The test's `title`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed, or for an `expectError` test how the engine rejected it.
    pub reason: Option<String>,
}

/// The outcomes of one test file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// The file name, e.g. `basic.json`.
    pub file: String,
    /// One outcome per test, in file order.
    pub tests: Vec<TestOutcome>,
}

/// The outcomes of a whole suite directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SuiteReport {
    /// One report per test file, sorted by file name.
    pub files: Vec<FileReport>,
}

impl SuiteReport {
    /// Tests that passed.
    pub fn passed(&self) -> usize {
        self.outcomes().filter(|(_, t)| t.passed).count()
    }

    /// Tests that failed.
    pub fn failed(&self) -> usize {
        self.outcomes().filter(|(_, t)| !t.passed).count()
    }

    fn outcomes(&self) -> impl Iterator<Item = (&str, &TestOutcome)> {
        self.files.iter().flat_map(|f| f.tests.iter().map(move |t| (f.file.as_str(), t)))
    }

    /// Failed tests as (file, test name, reason).
    pub fn failures(&self) -> impl Iterator<Item = (String, String, String)> + '_ {
        self.outcomes()
            .filter(|(_, t)| !t.passed)
            .map(|(f, t)| (f.to_string(), t.name.clone(), t.reason.clone().unwrap_or_default()))
    }

    /// The report in the suite's test-report JSON format.
    pub fn to_report_json(&self) -> Value {
        let mut files = Map::new();
        for f in &self.files {
            let tests: Vec<Value> = f
                .tests
                .iter()
                .map(|t| {
                    let mut result = json!({ "passed": t.passed });
                    if let Some(reason) = &t.reason {
                        result["reason"] = json!(reason);
                    }
                    json!({ "name": t.name, "result": result })
                })
                .collect();
            files.insert(f.file.clone(), json!({ "tests": tests }));
        }
        Value::Object(files)
    }
}

/// Runs every `*.json` test file in `dir` (files that are not test suites are skipped).
pub fn run_suite(dir: &Path) -> io::Result<SuiteReport> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<Vec<_>>>()?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{}: no *.json test files", dir.display())));
    }
    let mut report = SuiteReport::default();
    for path in paths {
        if let Some(file) = run_file(&path)? {
            report.files.push(file);
        }
    }
    Ok(report)
}

/// Runs one test file; `None` when the JSON is not a test suite (no `tests` array).
pub fn run_file(path: &Path) -> io::Result<Option<FileReport>> {
    let text = std::fs::read_to_string(path)?;
    let suite: Value = serde_json::from_str(&text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
    let Some(tests) = suite.get("tests").and_then(Value::as_array) else { return Ok(None) };
    let resources = suite.get("resources").and_then(Value::as_array).cloned().unwrap_or_default();
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tests = tests.iter().map(|t| run_test(t, &resources)).collect();
    Ok(Some(FileReport { file, tests }))
}

fn run_test(test: &Value, resources: &[Value]) -> TestOutcome {
    let name = test.get("title").and_then(Value::as_str).unwrap_or("(untitled)").to_string();
    let expect_error = test.get("expectError").and_then(Value::as_bool).unwrap_or(false);
    let outcome = evaluate(test.get("view").unwrap_or(&Value::Null), resources);
    let (passed, reason) = match (outcome, expect_error) {
        (Err(e), true) => (true, Some(format!("rejected as expected: {e}"))),
        (Err(e), false) => (false, Some(e)),
        (Ok(_), true) => (false, Some("expected an error, but the view ran".to_string())),
        (Ok((view, batch)), false) => match check(test, &view, &batch) {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        },
    };
    TestOutcome { name, passed, reason }
}

/// Compiles the view and runs it over the resources, as the engine would over an export.
fn evaluate(
    view: &Value,
    resources: &[Value],
) -> Result<(Arc<CompiledView>, arrow::record_batch::RecordBatch), String> {
    let view = Arc::new(CompiledView::from_json_value(view).map_err(|e| e.to_string())?);
    let mut builder = ViewBatchBuilder::new(view.clone());
    for resource in resources {
        let mut line = serde_json::to_vec(resource).map_err(|e| e.to_string())?;
        let tape = simd_json::to_tape(&mut line).map_err(|e| e.to_string())?;
        builder.append(Json::root(&tape)).map_err(|e| e.to_string())?;
    }
    Ok((view, builder.finish()))
}

fn check(test: &Value, view: &CompiledView, batch: &arrow::record_batch::RecordBatch) -> Result<(), String> {
    let names: Vec<&str> = view.columns().iter().map(|c| c.name.as_str()).collect();
    if let Some(expected) = test.get("expectColumns").and_then(Value::as_array) {
        let expected: Vec<&str> = expected.iter().filter_map(Value::as_str).collect();
        if expected != names {
            return Err(format!("columns {names:?}, expected {expected:?}"));
        }
    }
    if let Some(count) = test.get("expectCount").and_then(Value::as_u64) {
        return if batch.num_rows() as u64 == count {
            Ok(())
        } else {
            Err(format!("{} rows, expected {count}", batch.num_rows()))
        };
    }
    let expected =
        test.get("expect").and_then(Value::as_array).ok_or("test has no expect, expectCount or expectError")?;
    let mut want = Vec::with_capacity(expected.len());
    for row in expected {
        let row = row.as_object().ok_or("an expected row is not an object")?;
        if let Some(extra) = row.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(format!("expected column '{extra}' is not produced (columns: {names:?})"));
        }
        let cells = view
            .columns()
            .iter()
            .map(|c| expected_cell(row.get(&c.name).unwrap_or(&Value::Null), c))
            .collect::<Result<Vec<_>, _>>()?;
        want.push(format!("{cells:?}"));
    }
    let mut got: Vec<String> = (0..batch.num_rows())
        .map(|r| format!("{:?}", batch.columns().iter().map(|a| actual_cell(a, r)).collect::<Vec<_>>()))
        .collect();
    want.sort();
    got.sort();
    if want == got {
        Ok(())
    } else {
        Err(format!("rows differ (as multisets)\n  got:      {got:?}\n  expected: {want:?}"))
    }
}

/// An expected JSON value converted to the column's type with the engine's own rules.
fn expected_cell(value: &Value, column: &super::plan::ColumnPlan) -> Result<Cell<'static>, String> {
    let scalar = |v: &Value| -> Result<Cell<'static>, String> {
        if v.is_null() {
            return Ok(Cell::Null);
        }
        let mut bytes = serde_json::to_vec(v).map_err(|e| e.to_string())?;
        let tape = simd_json::to_tape(&mut bytes).map_err(|e| e.to_string())?;
        let cell = column
            .value_type
            .convert(Item::Node(Json::root(&tape)))
            .map_err(|e| format!("expected value {v} for column '{}': {e}", column.name))?;
        Ok(into_owned(cell))
    };
    match (value, column.collection) {
        (Value::Array(items), true) => Ok(Cell::List(items.iter().map(scalar).collect::<Result<_, _>>()?)),
        (Value::Null, _) => Ok(Cell::Null),
        (v, _) => scalar(v),
    }
}

fn into_owned(cell: Cell<'_>) -> Cell<'static> {
    match cell {
        Cell::Null => Cell::Null,
        Cell::Bool(b) => Cell::Bool(b),
        Cell::Int(i) => Cell::Int(i),
        Cell::Dec(d) => Cell::Dec(d),
        Cell::Str(s) => Cell::Str(std::borrow::Cow::Owned(s.into_owned())),
        Cell::Date(d) => Cell::Date(d),
        Cell::Timestamp(t) => Cell::Timestamp(t),
        Cell::Time(t) => Cell::Time(t),
        Cell::List(items) => Cell::List(items.into_iter().map(into_owned).collect()),
    }
}

/// Reads one value back out of an Arrow array as a cell.
fn actual_cell(array: &ArrayRef, row: usize) -> Cell<'static> {
    if array.is_null(row) {
        return Cell::Null;
    }
    match array.data_type() {
        DataType::Utf8 => Cell::Str(array.as_string::<i32>().value(row).to_string().into()),
        DataType::Dictionary(_, _) => {
            let dict = array.as_dictionary::<Int32Type>();
            let key = dict.keys().value(row) as usize;
            Cell::Str(dict.values().as_string::<i32>().value(key).to_string().into())
        }
        DataType::Boolean => Cell::Bool(array.as_boolean().value(row)),
        DataType::Int32 => Cell::Int(array.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::Decimal128(_, _) => Cell::Dec(array.as_primitive::<Decimal128Type>().value(row)),
        DataType::Date32 => Cell::Date(array.as_primitive::<Date32Type>().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Cell::Timestamp(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Time64(TimeUnit::Microsecond) => Cell::Time(array.as_primitive::<Time64MicrosecondType>().value(row)),
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            Cell::List((0..values.len()).map(|i| actual_cell(&values, i)).collect())
        }
        other => Cell::Str(format!("<unsupported {other}>").into()),
    }
}
