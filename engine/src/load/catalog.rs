//! The views of a load: every ViewDefinition in a folder, compiled, with its table layout,
//! and the crosswalk stage of each table whose columns a binding names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};

use arrow::record_batch::RecordBatch;

use crate::sink::partition::{PartitionSpec, PartitionValue};
use crate::sink::parts::TableLayout;
use crate::terminology::{TableStage, Terminology, UnmappedCounts};
use crate::view::CompiledView;

include!(concat!(env!("OUT_DIR"), "/embedded_views.rs"));

/// The compiled views of a load and the tables they produce, in file-name order.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The views; index `i` writes table `layouts[i]`.
    pub views: Vec<Arc<CompiledView>>,
    /// The file each view came from.
    pub files: Vec<PathBuf>,
    /// Name, schema and partitioning of each table (the schema includes crosswalk columns).
    pub layouts: Arc<Vec<TableLayout>>,
    /// The crosswalk of each table, if a binding names it.
    pub stages: Vec<Option<Arc<TableStage>>>,
    /// The crosswalks the stages use (`None` for a load without crosswalks).
    terminology: Option<Arc<Terminology>>,
}

impl Catalog {
    /// Compiles every `*.json` file directly in `dir` (a user's `--views`; `.JSON` too, as
    /// some systems save it). Sub-folders are not read: one that holds `*.json` files is
    /// named in a warning, since its views would otherwise go missing without a word.
    ///
    /// # Errors
    ///
    /// Naming the file: unreadable, or any error of [`Catalog::from_sources`]; or a folder
    /// without views.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Catalog> {
        let is_json = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let mut files: Vec<PathBuf> = Vec::new();
        for path in std::fs::read_dir(dir)
            .with_context(|| format!("cannot list views folder {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
        {
            if is_json(&path) && path.is_file() {
                files.push(path);
            } else if path.is_dir()
                && std::fs::read_dir(&path).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| is_json(&e.path()))))
            {
                tracing::warn!(
                    folder = %path.display(),
                    "views in a sub-folder of the views folder are not read; move them up to use them"
                );
            }
        }
        files.sort();
        if files.is_empty() {
            bail!("{}: no ViewDefinition (*.json) files", dir.display());
        }
        let sources = files
            .into_iter()
            .map(|file| {
                let text =
                    std::fs::read_to_string(&file).with_context(|| format!("cannot read view {}", file.display()))?;
                Ok((file, text))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Catalog::from_sources(sources)
    }

    /// The views shipped with fhirhouse (`schemas/*.json`, embedded in the binary).
    ///
    /// # Errors
    ///
    /// Only if a shipped view is broken, which the test suite rules out.
    pub fn shipped() -> anyhow::Result<Catalog> {
        Catalog::from_sources(
            EMBEDDED_VIEWS.iter().map(|(name, text)| (Path::new("schemas").join(name), (*text).to_owned())),
        )
    }

    /// The shipped views with the shipped crosswalks: the tables of a default load.
    ///
    /// # Errors
    ///
    /// Only if a shipped view or mapping is broken, which the test suite rules out.
    pub fn shipped_crosswalked() -> anyhow::Result<Catalog> {
        Catalog::shipped()?.with_terminology(&Terminology::shipped()?)
    }

    /// Compiles views given as (file, JSON text). All must be valid before any data is
    /// read, and table names (view `name`s) must be unique.
    ///
    /// # Errors
    ///
    /// Naming the file: not a valid ViewDefinition, a bad partition tag, a duplicate or
    /// unusable table name.
    pub fn from_sources(sources: impl IntoIterator<Item = (PathBuf, String)>) -> anyhow::Result<Catalog> {
        let mut views = Vec::new();
        let mut files: Vec<PathBuf> = Vec::new();
        let mut layouts: Vec<TableLayout> = Vec::new();
        for (file, text) in sources {
            let view =
                CompiledView::from_json_str(&text).map_err(|e| anyhow!("invalid view {}: {e}", file.display()))?;
            let name = view.name().to_owned();
            // The loader has already checked that the name is plain (letters, digits, _),
            // so it is safe as a folder name next to `_fhirhouse`. Names are compared
            // ignoring case: SQL folds unquoted names to lower case, so `Pat` and `pat`
            // would be one table there (the second refused when the warehouse is opened),
            // and one folder on a case-insensitive file system.
            if let Some(other) = layouts.iter().position(|l| l.name.eq_ignore_ascii_case(&name)) {
                let same = if layouts[other].name == name {
                    String::new()
                } else {
                    format!(" (as {:?}; table names are not case-sensitive in SQL)", layouts[other].name)
                };
                bail!("views {} and {} both define table {name:?}{same}", files[other].display(), file.display());
            }
            if let Some(taken) = reference_tables()?.iter().find(|t| t.eq_ignore_ascii_case(&name)) {
                bail!(
                    "invalid view {}: name: {name:?} is the name of a reference table every session has \
                     ({taken}, which fhirhouse report reads); a table of that name would hide it: name the view \
                     otherwise",
                    file.display()
                );
            }
            if name.len() > MAX_NAME_BYTES {
                bail!(
                    "invalid view {}: name: a table name is at most {MAX_NAME_BYTES} characters (it names files and folders), this one has {}",
                    file.display(),
                    name.len()
                );
            }
            // A table needs a column: Parquet files without one keep no row count, so the
            // report would count rows that SQL reads as none.
            if view.columns().is_empty() {
                bail!("invalid view {}: select: defines no column; a table needs at least one", file.display());
            }
            let partition =
                PartitionSpec::of_view(&view).map_err(|e| anyhow!("invalid view {}: {e}", file.display()))?;
            let layout = TableLayout { name, schema: view.schema(), partition };
            check_partition_key(&layout).map_err(|e| anyhow!("invalid view {}: {e}", file.display()))?;
            layouts.push(layout);
            views.push(Arc::new(view));
            files.push(file);
        }
        let stages = vec![None; views.len()];
        Ok(Catalog { views, files, layouts: Arc::new(layouts), stages, terminology: None })
    }

    /// The catalog with the crosswalks of `terminology`: each table a binding names gets a
    /// stage, and its layout the added columns.
    ///
    /// # Errors
    ///
    /// A binding that does not fit its table's view, naming the view file.
    pub fn with_terminology(mut self, terminology: &Arc<Terminology>) -> anyhow::Result<Catalog> {
        let mut layouts = self.layouts.as_ref().clone();
        for (i, layout) in layouts.iter_mut().enumerate() {
            // A user's view named like a bound table (`condition`) meets the binding without
            // having asked for it: say how to do without.
            let stage = TableStage::for_table(terminology, &layout.name, &self.views[i].schema()).map_err(|e| {
                anyhow!(
                    "{e} (view {}; give the view the bound columns, another name, or load with --no-crosswalk)",
                    self.files[i].display()
                )
            })?;
            if let Some(stage) = stage {
                layout.schema = Arc::clone(stage.schema());
                check_partition_key(layout).map_err(|e| anyhow!("{e} (view {})", self.files[i].display()))?;
                self.stages[i] = Some(Arc::new(stage));
            }
        }
        self.layouts = Arc::new(layouts);
        self.terminology = Some(Arc::clone(terminology));
        Ok(self)
    }

    /// The terminology of the crosswalks, if the catalog has any.
    #[must_use]
    pub fn terminology(&self) -> Option<&Arc<Terminology>> {
        self.terminology.as_ref()
    }

    /// A batch of table `table`'s view, crosswalked (counting unmapped codes into `counts`
    /// when given) and split by partition: the form writers take.
    ///
    /// # Errors
    ///
    /// The batch does not have the view's schema.
    pub fn finish_batch(
        &self,
        table: usize,
        batch: RecordBatch,
        counts: Option<&mut UnmappedCounts>,
    ) -> anyhow::Result<Vec<(PartitionValue, RecordBatch)>> {
        let batch = match &self.stages[table] {
            Some(stage) => stage
                .apply(&batch, counts)
                .with_context(|| format!("crosswalking table {}", self.layouts[table].name))?,
            None => batch,
        };
        Ok(self.layouts[table].split(batch))
    }

    /// Whether any view reads resources of `resource_type`.
    #[must_use]
    pub fn reads(&self, resource_type: &str) -> bool {
        self.views.iter().any(|v| v.resource_type() == resource_type)
    }
}

/// The reference tables a SQL session adds beside a warehouse's own (those of the shipped
/// mappings): a view's table must not take one of their names, since the session keeps the
/// warehouse's table and the analyses would read the view's rows as CMS-HCC tables or value
/// sets. (The unmapped-code tally's name starts with `_`, which no table name may.)
fn reference_tables() -> anyhow::Result<&'static [String]> {
    static NAMES: std::sync::OnceLock<Result<Vec<String>, String>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        crate::terminology::reference::sql_table_names(&crate::terminology::MappingSource::Embedded)
            .map_err(|e| e.to_string())
    });
    names.as_deref().map_err(|e| anyhow!("shipped mappings: {e}"))
}

/// The longest table name, and partition column name, a view may have: each names a
/// folder (`<table>/`, `<column>_year=2020/`) and the table a file (`_tables/<table>.json`),
/// and most file systems refuse names over 255 bytes, which a load would find out only when
/// it writes the tables, after reading the whole export.
const MAX_NAME_BYTES: usize = 200;

/// Refuses a table whose partition key (`<column>_year`, a column readers add from the
/// folder names) has the name of one of its own columns: the load would write it, but every
/// reader of the table then fails on a duplicate field. Compared ignoring case, as SQL does.
fn check_partition_key(layout: &TableLayout) -> anyhow::Result<()> {
    let Some(spec) = &layout.partition else { return Ok(()) };
    if spec.column().len() > MAX_NAME_BYTES {
        bail!(
            "column {}: a partition column's name is at most {MAX_NAME_BYTES} characters (it names folders)",
            spec.column()
        );
    }
    let key = spec.key_name();
    if let Some(field) = layout.schema.fields().iter().find(|f| f.name().eq_ignore_ascii_case(&key)) {
        bail!(
            "column {} has the name of the partition key that {} on column {} adds; rename the column",
            field.name(),
            crate::sink::partition::PARTITION_TAG,
            spec.column()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_views_load_with_unique_names() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        let catalog = Catalog::from_dir(&dir).unwrap();
        let embedded = Catalog::shipped().unwrap();
        assert_eq!(embedded.layouts.len(), catalog.layouts.len(), "the binary embeds every shipped view");
        assert!(catalog.reads("Patient") && catalog.reads("Observation"));
        assert_eq!(catalog.views.len(), catalog.layouts.len());
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"resource": "Patient", "name": "p", "select": []}"#).unwrap();
        let err = format!("{:#}", Catalog::from_dir(dir.path()).unwrap_err());
        assert!(err.contains("bad.json"), "{err}");

        std::fs::write(
            &bad,
            r#"{"resource": "Patient", "name": "../p", "select": [{"column": [{"name": "id", "path": "id"}]}]}"#,
        )
        .unwrap();
        let err = format!("{:#}", Catalog::from_dir(dir.path()).unwrap_err());
        assert!(err.contains("bad.json") && err.contains("not a valid table name"), "{err}");
    }

    #[test]
    fn view_files_are_found_whatever_the_case_of_their_extension() {
        // `C.JSON` was passed over without a word, and its table was missing from the load.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), view("a", ID)).unwrap();
        std::fs::write(dir.path().join("B.JSON"), view("b", ID)).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a view").unwrap();
        std::fs::create_dir(dir.path().join("more")).unwrap();
        std::fs::write(dir.path().join("more/c.json"), view("c", ID)).unwrap();
        let catalog = Catalog::from_dir(dir.path()).unwrap();
        let names: Vec<&str> = catalog.layouts.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["b", "a"], "file-name order, sub-folders not read");
    }

    #[test]
    fn names_too_long_for_a_file_system_are_refused_before_any_data_is_read() {
        // A 300-character name failed the load when it wrote its tables: "File name too long".
        let long = "a".repeat(300);
        let err = Catalog::from_sources([(PathBuf::from("x.json"), view(&long, ID))]).unwrap_err().to_string();
        assert!(err.contains("x.json") && err.contains("a table name is at most 200 characters"), "{err}");
        let tagged = format!(
            r#"{ID}, {{"name": "{long}", "path": "period.start", "type": "dateTime",
                       "tag": [{{"name": "fhirhouse/partition", "value": "year"}}]}}"#
        );
        let err = Catalog::from_sources([(PathBuf::from("x.json"), view("enc", &tagged))]).unwrap_err().to_string();
        assert!(err.contains("x.json") && err.contains("a partition column's name is at most 200"), "{err}");
        assert!(Catalog::from_sources([(PathBuf::from("x.json"), view(&"a".repeat(200), ID))]).is_ok());
    }

    #[test]
    fn a_view_named_like_a_reference_table_is_refused() {
        // Before: it loaded, and every session read its rows as the reference table (the
        // warehouse's table of a name wins), so `fhirhouse report hcc` read a user's view
        // named hcc_labels as CMS's labels.
        for name in ["hcc_labels", "Valueset", "concept_map"] {
            let err = Catalog::from_sources([(PathBuf::from("x.json"), view(name, ID))]).unwrap_err().to_string();
            assert!(err.contains("x.json") && err.contains("is the name of a reference table"), "{name}: {err}");
        }
        assert!(Catalog::from_sources([(PathBuf::from("x.json"), view("hcc_notes", ID))]).is_ok());
    }

    #[test]
    fn a_view_without_columns_is_refused() {
        // Loaded, its rows were counted in the report, and SQL read none of them.
        let text = r#"{"resource": "Patient", "name": "p", "select": [{"forEach": "name"}]}"#;
        let err = Catalog::from_sources([(PathBuf::from("p.json"), text.to_owned())]).unwrap_err().to_string();
        assert_eq!(err, "invalid view p.json: select: defines no column; a table needs at least one");
    }

    #[test]
    fn a_binding_that_does_not_fit_a_users_view_says_how_to_do_without() {
        let text = r#"{"resource": "Condition", "name": "condition",
                       "select": [{"column": [{"name": "id", "path": "getResourceKey()"}, {"name": "code", "path": "code.text"}]}]}"#;
        let catalog = Catalog::from_sources([(PathBuf::from("condition.json"), text.to_owned())]).unwrap();
        let err = catalog.with_terminology(&Terminology::shipped().unwrap()).unwrap_err().to_string();
        assert!(err.contains("table has no column code_system"), "{err}");
        assert!(
            err.ends_with(
                "(view condition.json; give the view the bound columns, another name, or load with --no-crosswalk)"
            ),
            "{err}"
        );
    }

    fn view(name: &str, columns: &str) -> String {
        format!(r#"{{"resource": "Encounter", "name": "{name}", "select": [{{"column": [{columns}]}}]}}"#)
    }

    const ID: &str = r#"{"name": "id", "path": "getResourceKey()"}"#;

    #[test]
    fn table_names_differing_only_in_case_are_one_table() {
        // Both loaded once, and the warehouse could then not be opened: SQL registers both
        // as `pat` ("The table pat already exists").
        let sources = [("a.json", view("Pat", ID)), ("b.json", view("pat", ID))];
        let err = Catalog::from_sources(sources.map(|(f, t)| (PathBuf::from(f), t))).unwrap_err().to_string();
        assert!(err.contains("a.json and b.json both define table \"pat\" (as \"Pat\""), "{err}");
    }

    #[test]
    fn a_column_named_like_the_partition_key_is_refused() {
        // The load wrote it, and every query of the table failed on "duplicate qualified
        // field name enc.start_year".
        let start = r#"{"name": "start", "path": "period.start", "type": "dateTime",
                        "tag": [{"name": "fhirhouse/partition", "value": "year"}]}"#;
        for year in ["start_year", "Start_Year"] {
            let columns =
                format!(r#"{ID}, {start}, {{"name": "{year}", "path": "period.start.toString().substring(0, 4)"}}"#);
            let err = Catalog::from_sources([(PathBuf::from("enc.json"), view("enc", &columns))]).unwrap_err();
            let err = err.to_string();
            assert!(
                err.contains("enc.json") && err.contains(&format!("column {year} has the name of the partition key")),
                "{err}"
            );
        }
        let columns =
            format!(r#"{ID}, {start}, {{"name": "year", "path": "period.start.toString().substring(0, 4)"}}"#);
        assert!(Catalog::from_sources([(PathBuf::from("enc.json"), view("enc", &columns))]).is_ok());
    }
}
