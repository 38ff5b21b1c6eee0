//! Embeds the shipped ViewDefinitions (`schemas/*.json`), mapping tables (`mappings/**`)
//! and SQL analyses (`queries/**/*.sql`) in the binary, so that `fhirhouse load` has its
//! default views and crosswalks, and `fhirhouse report` its analyses, wherever the binary
//! is installed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));

    let schemas = manifest_dir.join("../schemas");
    let mut views: Vec<PathBuf> =
        files_under(&schemas).into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    views.retain(|p| p.parent() == Some(schemas.as_path()));
    let code = embed(
        "/// The shipped views: (file name, ViewDefinition JSON).\npub const EMBEDDED_VIEWS: &[(&str, &str)] = &[\n",
        &schemas,
        &views,
        "include_str",
    );
    std::fs::write(out_dir.join("embedded_views.rs"), code).expect("OUT_DIR is writable");

    let mappings = manifest_dir.join("../mappings");
    let tables = files_under(&mappings);
    let code = embed(
        "/// The shipped mapping tables: (path relative to `mappings/`, contents).\npub const EMBEDDED_MAPPINGS: &[(&str, &[u8])] = &[\n",
        &mappings,
        &tables,
        "include_bytes",
    );
    std::fs::write(out_dir.join("embedded_mappings.rs"), code).expect("OUT_DIR is writable");

    let queries = manifest_dir.join("../queries");
    let analyses: Vec<PathBuf> =
        files_under(&queries).into_iter().filter(|p| p.extension().is_some_and(|e| e == "sql")).collect();
    let code = embed(
        "/// The shipped SQL analyses: (path relative to `queries/`, SQL text).\npub const EMBEDDED_QUERIES: &[(&str, &str)] = &[\n",
        &queries,
        &analyses,
        "include_str",
    );
    std::fs::write(out_dir.join("embedded_queries.rs"), code).expect("OUT_DIR is writable");
}

/// Every file under `dir`, sorted; folders are watched for added files.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{} next to engine/: {e}", dir.display())) {
        let path = entry.expect("readable folder").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn embed(header: &str, root: &Path, files: &[PathBuf], include: &str) -> String {
    let mut code = String::from(header);
    for file in files {
        println!("cargo:rerun-if-changed={}", file.display());
        let name = file.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
        let path = file.canonicalize().expect("exists");
        writeln!(code, "    ({name:?}, {include}!({:?})),", path.display().to_string()).expect("to a string");
    }
    code.push_str("];\n");
    code
}
