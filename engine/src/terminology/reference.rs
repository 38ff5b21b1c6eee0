//! The mapping folder's tables as Arrow batches, for SQL (`concept_map`, `valueset`,
//! `icd10cm_category`, `code_list` and the reference tables such as `hcc_dx_to_cc`), and
//! the readers of value sets, code lists, categories and reference CSVs they share with the
//! check.
//!
//! Codes are in normal form (ICD-10 without the dot) and systems canonical, so the tables
//! join with the standard columns of the warehouse.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use super::fhir::{self, ValueSetMember};
use super::manifest::{MappingSource, Mappings, TableEntry, TableFormat, TableKind};
use super::systems::Systems;
use super::tables::{csv_reader, one_line, record_line, CSV_HEADER};
use super::MappingError;

/// The header of a categories CSV.
pub const CATEGORY_HEADER: [&str; 4] = ["category", "range_start", "range_end", "description"];

/// A named range of codes: codes whose leading characters fall in `[start, end]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// The line, for errors.
    pub line: u64,
    /// The category's name (several rows may share one).
    pub name: String,
    /// First code of the range, normal form.
    pub start: String,
    /// Last code of the range, normal form; it covers every code it is a prefix of.
    pub end: String,
    /// What it is.
    pub description: String,
}

/// Whether `code` (normal form) lies in the range `start..=end`, where a range end covers
/// every code it is a prefix of: `I50` ends `I10..=I50` after `I509`. This is the ICD-10
/// chapter/block/category convention (`E08-E13`, `N18.3-N18.6`).
#[must_use]
pub fn in_range(code: &str, start: &str, end: &str) -> bool {
    let head = |n: usize| &code[..code.len().min(n)];
    code.is_char_boundary(code.len().min(end.len())) && code >= start && head(end.len()) <= end
}

/// Reads a categories CSV; range ends are normalised with the system's code form.
///
/// # Errors
///
/// A bad header, an empty field, a start after its end; naming file and line.
pub fn read_categories(
    bytes: &[u8],
    file: &str,
    systems: &Systems,
    system: &str,
) -> Result<Vec<Category>, MappingError> {
    let id = systems.resolve(system).ok_or_else(|| MappingError::at(file, 0, format!("unknown system {system}")))?;
    let mut reader = csv_reader(bytes, file, &CATEGORY_HEADER)?;
    let mut out = Vec::new();
    let mut scratch = String::new();
    for record in reader.records() {
        let record = record.map_err(|e| MappingError::at(file, e.position().map_or(0, csv::Position::line), e))?;
        let line = record_line(&record);
        one_line(&record, file, &CATEGORY_HEADER)?;
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        if (0..3).any(|i| field(i).is_empty()) {
            return Err(MappingError::at(file, line, "category, range_start and range_end are required"));
        }
        let start = systems.normalise(id, field(1), &mut scratch).to_owned();
        let end = systems.normalise(id, field(2), &mut scratch).to_owned();
        if start.as_str() > end.as_str() && !start.starts_with(end.as_str()) {
            return Err(MappingError::at(file, line, format!("range {start}..{end} is empty")));
        }
        out.push(Category { line, name: field(0).to_owned(), start, end, description: field(3).to_owned() });
    }
    Ok(out)
}

/// Reads a code list: a `code` header line, then one code per line (a UTF-8 BOM and CRLF
/// line ends are fine).
///
/// # Errors
///
/// A missing header; bytes that are not UTF-8 (naming the line: replaced, they would make
/// a code that matches nothing).
pub fn read_code_list(bytes: &[u8], file: &str) -> Result<Vec<(u64, String)>, MappingError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() as u64 + 1;
        MappingError::at(file, line, "not UTF-8")
    })?;
    let mut lines = text.strip_prefix('\u{feff}').unwrap_or(text).lines();
    if lines.next().map(str::trim) != Some("code") {
        return Err(MappingError::at(file, 1, "a code list starts with the header line \"code\""));
    }
    Ok(lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i as u64 + 2, l.trim().to_owned()))
        .collect())
}

/// Reads every value set of a `valueset` table.
///
/// # Errors
///
/// An unreadable or invalid file.
pub fn read_value_sets(
    entry: &TableEntry,
    source: &MappingSource,
) -> Result<Vec<(String, Vec<ValueSetMember>)>, MappingError> {
    if entry.format != Some(TableFormat::FhirJson) {
        return Err(MappingError::at(
            super::manifest::MANIFEST,
            0,
            format!("table {}: value sets are fhir_json", entry.name),
        ));
    }
    let files = match (&entry.dir, &entry.file) {
        (Some(dir), _) => source.list(dir, ".json")?,
        (None, Some(file)) => vec![file.clone()],
        (None, None) => {
            return Err(MappingError::at(
                super::manifest::MANIFEST,
                0,
                format!("table {}: no \"dir\" or \"file\"", entry.name),
            ))
        }
    };
    files.into_iter().map(|f| Ok((f.clone(), fhir::read_value_set(&source.read(&f)?, &f)?))).collect()
}

/// A reference table read as text: header and rows (with the `add` columns), per file.
#[derive(Debug, Clone, Default)]
pub struct TextTable {
    /// The column names.
    pub header: Vec<String>,
    /// (file, line, fields) per row.
    pub rows: Vec<(String, u64, Vec<String>)>,
}

/// Reads the files of a reference table; every file must have the same header.
///
/// # Errors
///
/// No files, differing headers, a row with the wrong number of fields.
pub fn read_reference(entry: &TableEntry, source: &MappingSource) -> Result<TextTable, MappingError> {
    let mut table = TextTable::default();
    if entry.files.is_empty() {
        return Err(MappingError::at(super::manifest::MANIFEST, 0, format!("table {}: no \"files\"", entry.name)));
    }
    for (i, file) in entry.files.iter().enumerate() {
        let bytes = source.read(&file.file)?;
        let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_ref());
        let mut header: Vec<String> =
            reader.headers().map_err(|e| MappingError::at(&file.file, 1, e))?.iter().map(str::to_owned).collect();
        let width = header.len();
        header.extend(file.add.keys().cloned());
        if i == 0 {
            table.header = header;
        } else if header != table.header {
            return Err(MappingError::at(&file.file, 1, format!("header {header:?} differs from {:?}", table.header)));
        }
        for record in reader.records() {
            let record =
                record.map_err(|e| MappingError::at(&file.file, e.position().map_or(0, csv::Position::line), e))?;
            one_line(&record, &file.file, &table.header)?;
            if record.len() != width {
                return Err(MappingError::at(
                    &file.file,
                    record_line(&record),
                    format!("{} fields, the header has {width}", record.len()),
                ));
            }
            let mut fields: Vec<String> = record.iter().map(str::to_owned).collect();
            fields.extend(file.add.values().cloned());
            table.rows.push((file.file.clone(), record_line(&record), fields));
        }
    }
    Ok(table)
}

/// A text table as a batch; a column whose every value is an integer (or a number) becomes
/// Int64 (or Float64), empty fields are nulls.
fn typed_batch(header: &[String], rows: &[Vec<String>]) -> RecordBatch {
    let mut fields = Vec::with_capacity(header.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(header.len());
    for (c, name) in header.iter().enumerate() {
        let values = || rows.iter().map(move |r| Some(r[c].trim()).filter(|v| !v.is_empty()));
        let all = |ok: &dyn Fn(&str) -> bool| values().flatten().all(ok) && values().flatten().next().is_some();
        let (data_type, array): (DataType, ArrayRef) = if all(&|v| v.parse::<i64>().is_ok()) {
            (DataType::Int64, Arc::new(values().map(|v| v.and_then(|v| v.parse().ok())).collect::<Int64Array>()))
        } else if all(&|v| v.parse::<f64>().is_ok()) {
            (DataType::Float64, Arc::new(values().map(|v| v.and_then(|v| v.parse().ok())).collect::<Float64Array>()))
        } else {
            (DataType::Utf8, Arc::new(values().collect::<StringArray>()))
        };
        fields.push(Field::new(name, data_type, true));
        columns.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("columns match the schema")
}

fn text_batch(columns: Vec<(&str, Vec<Option<String>>)>) -> RecordBatch {
    let fields: Vec<Field> = columns.iter().map(|(n, _)| Field::new(*n, DataType::Utf8, true)).collect();
    let arrays: Vec<ArrayRef> = columns.into_iter().map(|(_, v)| Arc::new(StringArray::from(v)) as ArrayRef).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns match the schema")
}

/// Every SQL table of the mapping folder, by name: `concept_map`, `valueset`, `code_list`,
/// the categories and reference tables under their manifest names.
///
/// # Errors
///
/// An unreadable or invalid table.
pub fn sql_tables(source: &MappingSource) -> Result<BTreeMap<String, RecordBatch>, MappingError> {
    let mappings = Mappings::open(source)?;
    let mut systems = mappings.systems.clone();
    let mut scratch = String::new();
    let mut normal = |systems: &mut Systems, system: &str, code: &str| {
        let id = systems.intern(system);
        (systems.canonical(id).to_owned(), systems.normalise(id, code, &mut scratch).to_owned())
    };
    let mut out = BTreeMap::new();

    let (mut cm, mut priority): (Vec<Vec<Option<String>>>, Vec<i32>) =
        (vec![Vec::new(); 1 + CSV_HEADER.len()], Vec::new());
    for (p, table) in mappings.crosswalk_tables(source)?.into_iter().enumerate() {
        for row in table.rows {
            let (source_system, source_code) = normal(&mut systems, &row.source_system, &row.source_code);
            let (target_system, target_code) = match &row.target_code {
                Some(code) => {
                    let (s, c) = normal(&mut systems, &row.target_system, code);
                    (s, Some(c))
                }
                None => (normal(&mut systems, &row.target_system, "").0, None),
            };
            let values = [
                Some(table.name.clone()),
                Some(source_system),
                Some(source_code),
                row.source_display,
                Some(target_system),
                target_code,
                row.target_display,
                Some(row.relationship.as_str().to_owned()),
                row.note,
            ];
            cm.iter_mut().zip(values).for_each(|(c, v)| c.push(v));
            priority.push(p as i32);
        }
    }
    // The crosswalk CSV columns, after the name of the table they come from.
    let names = std::iter::once("map_name").chain(CSV_HEADER);
    let mut batch = text_batch(names.zip(cm).collect());
    // The table's priority: a source's targets come from the lowest priority that maps it.
    let mut schema_fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    schema_fields.push(Field::new("priority", DataType::Int32, false));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(Int32Array::from(priority)));
    batch = RecordBatch::try_new(Arc::new(Schema::new(schema_fields)), columns).expect("columns match the schema");
    out.insert("concept_map".to_owned(), batch);

    let mut vs: Vec<Vec<Option<String>>> = vec![Vec::new(); 7];
    for entry in mappings.of_kind(TableKind::Valueset) {
        for (_, members) in read_value_sets(entry, source)? {
            for m in members {
                let (system, code) = normal(&mut systems, &m.system, &m.code);
                let values = [
                    Some(entry.name.clone()),
                    Some(m.valueset_url),
                    m.valueset_version,
                    m.valueset_name,
                    Some(system),
                    Some(code),
                    m.display,
                ];
                vs.iter_mut().zip(values).for_each(|(c, v)| c.push(v));
            }
        }
    }
    let names = ["collection", "valueset_url", "valueset_version", "valueset_name", "system", "code", "display"];
    out.insert("valueset".to_owned(), text_batch(names.into_iter().zip(vs).collect()));

    let mut cl: Vec<Vec<Option<String>>> = vec![Vec::new(); 3];
    for entry in mappings.of_kind(TableKind::CodeList) {
        let file = entry.file()?;
        for (_, code) in read_code_list(&source.read(file)?, file)? {
            let (system, code) = normal(&mut systems, entry.system()?, &code);
            [Some(entry.name.clone()), Some(system), Some(code)]
                .into_iter()
                .zip(cl.iter_mut())
                .for_each(|(v, c)| c.push(v));
        }
    }
    out.insert("code_list".to_owned(), text_batch(["list_name", "system", "code"].into_iter().zip(cl).collect()));

    for entry in mappings.of_kind(TableKind::Categories) {
        let file = entry.file()?;
        let cats = read_categories(&source.read(file)?, file, &systems, entry.system()?)?;
        let system =
            systems.canonical(systems.resolve(entry.system()?).expect("checked by read_categories")).to_owned();
        let column = |f: &dyn Fn(&Category) -> String| cats.iter().map(|c| Some(f(c))).collect::<Vec<_>>();
        out.insert(
            entry.name.clone(),
            text_batch(vec![
                ("category", column(&|c| c.name.clone())),
                ("system", column(&|_| system.clone())),
                ("range_start", column(&|c| c.start.clone())),
                ("range_end", column(&|c| c.end.clone())),
                ("description", column(&|c| c.description.clone())),
            ]),
        );
    }
    for entry in mappings.of_kind(TableKind::Reference) {
        let table = read_reference(entry, source)?;
        let rows: Vec<Vec<String>> = table.rows.into_iter().map(|(_, _, r)| r).collect();
        out.insert(entry.name.clone(), typed_batch(&table.header, &rows));
    }
    Ok(out)
}

/// The names of the tables [`sql_tables`] makes, from the manifest alone: `concept_map`,
/// `valueset`, `code_list`, and the categories and reference tables under their names.
///
/// # Errors
///
/// An unreadable or invalid manifest.
pub fn sql_table_names(source: &MappingSource) -> Result<Vec<String>, MappingError> {
    let mappings = Mappings::open(source)?;
    let mut names: Vec<String> = ["concept_map", "valueset", "code_list"].map(String::from).into();
    let listed = mappings.of_kind(TableKind::Categories).chain(mappings.of_kind(TableKind::Reference));
    names.extend(listed.map(|entry| entry.name.clone()));
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_those_of_the_tables() {
        let tables = sql_tables(&MappingSource::Embedded).unwrap();
        let mut names = sql_table_names(&MappingSource::Embedded).unwrap();
        names.sort();
        assert_eq!(names, tables.keys().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn ranges_cover_every_code_their_end_prefixes() {
        assert!(in_range("I10", "I10", "I1A"));
        assert!(in_range("I169", "I10", "I1A"));
        assert!(in_range("I1A0", "I10", "I1A"));
        assert!(!in_range("I20", "I10", "I1A"));
        assert!(in_range("E1165", "E08", "E13"));
        assert!(!in_range("E14", "E08", "E13"));
        assert!(!in_range("E079", "E08", "E13"));
        assert!(in_range("N184", "N183", "N186"));
        assert!(!in_range("N182", "N183", "N186"));
        assert!(in_range("I509", "I50", "I50"));
        assert!(!in_range("I5", "I50", "I50"));
    }

    #[test]
    fn code_lists_with_a_bom_read_and_invalid_utf8_is_an_error() {
        let codes = read_code_list(b"\xef\xbb\xbfcode\r\nE119\r\n\r\nI10\r\n", "l.txt").unwrap();
        assert_eq!(codes, [(2, "E119".to_owned()), (4, "I10".to_owned())]);
        assert_eq!(read_code_list(b"code\nE119\n\xff\xfe\n", "l.txt").unwrap_err().to_string(), "l.txt:3: not UTF-8");
    }

    #[test]
    fn typed_columns_are_inferred() {
        let header = vec!["code".to_owned(), "cc".to_owned(), "value".to_owned()];
        let rows = vec![vec!["E119".into(), "38".into(), "0.166".into()], vec!["I10".into(), "".into(), "1".into()]];
        let batch = typed_batch(&header, &rows);
        let types: Vec<_> = batch.schema().fields().iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(types, [DataType::Utf8, DataType::Int64, DataType::Float64]);
        assert!(batch.column(1).is_null(1));
    }

    #[test]
    fn shipped_sql_tables_are_readable() {
        let tables = sql_tables(&MappingSource::Embedded).unwrap();
        for name in [
            "concept_map",
            "valueset",
            "code_list",
            "icd10cm_category",
            "hcc_dx_to_cc",
            "hcc_hierarchies",
            "hcc_coefficients",
            "hcc_labels",
            "hcc_dx_edits",
        ] {
            assert!(tables.get(name).is_some_and(|b| b.num_rows() > 0), "{name}");
        }
        let dx = &tables["hcc_dx_to_cc"];
        assert_eq!(dx.schema().field_with_name("payment_year").unwrap().data_type(), &DataType::Int64);
    }
}
