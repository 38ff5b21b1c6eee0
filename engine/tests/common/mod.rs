//! Helpers shared by the load tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use fhirhouse::load::{load, LoadOptions, LoadOutcome};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bundled sample export.
pub fn sample() -> PathBuf {
    root().join("tests/data/sample")
}

/// Loads `inputs` into `out` with the shipped views and small chunks (so that even the
/// sample's files are split), after letting `tweak` adjust the options.
pub fn load_with(inputs: &[PathBuf], out: &Path, tweak: impl FnOnce(&mut LoadOptions)) -> LoadOutcome {
    let mut options = LoadOptions::new(inputs.to_vec(), out.to_path_buf());
    options.threads = 2;
    options.chunk_bytes = 256 * 1024;
    tweak(&mut options);
    load(&options).expect("the load runs to the end")
}

/// The dead-letter records of a load, all files together, sorted by (file, line).
pub fn dead_letters(out: &Path, load_id: &str) -> Vec<serde_json::Value> {
    let dir = out.join("_dead_letter").join(load_id);
    let mut records = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return records };
    for entry in entries {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        records.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()));
    }
    records.sort_by_key(|r| (r["file"].as_str().unwrap().to_owned(), r["line"].as_u64().unwrap()));
    records
}

/// Row count of every registered table, via DataFusion.
pub fn table_counts(out: &Path) -> Vec<(String, i64)> {
    let ctx = datafusion::prelude::SessionContext::new();
    let names = fhirhouse::sql::register_warehouse(&ctx, out).unwrap();
    names
        .into_iter()
        .map(|name| {
            let batches = fhirhouse::sql::query_blocking(&ctx, &format!("SELECT count(*) FROM {name}")).unwrap();
            let count = batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0);
            (name, count)
        })
        .collect()
}
