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
    /// Compiles every `*.json` file directly in `dir` (a user's `--views`).
    ///
    /// # Errors
    ///
    /// Naming the file: unreadable, or any error of [`Catalog::from_sources`]; or a folder
    /// without views.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Catalog> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list views folder {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
            .collect();
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
            // so it is safe as a folder name next to `_fhirhouse`.
            if let Some(other) = layouts.iter().position(|l| l.name == name) {
                bail!("views {} and {} both define table {name:?}", files[other].display(), file.display());
            }
            let partition =
                PartitionSpec::of_view(&view).map_err(|e| anyhow!("invalid view {}: {e}", file.display()))?;
            layouts.push(TableLayout { name, schema: view.schema(), partition });
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
            let stage = TableStage::for_table(terminology, &layout.name, &self.views[i].schema())
                .map_err(|e| anyhow!("{e} (view {})", self.files[i].display()))?;
            if let Some(stage) = stage {
                layout.schema = Arc::clone(stage.schema());
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
}
