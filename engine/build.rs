//! Embeds the shipped ViewDefinitions (`schemas/*.json`) in the binary, so that
//! `fhirhouse load` has its default views wherever the binary is installed.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let schemas = manifest_dir.join("../schemas");
    println!("cargo:rerun-if-changed={}", schemas.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&schemas)
        .expect("the schemas folder sits next to engine/")
        .map(|e| e.expect("readable schemas folder").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut code = String::from(
        "/// The shipped views: (file name, ViewDefinition JSON).\npub const EMBEDDED_VIEWS: &[(&str, &str)] = &[\n",
    );
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let name = file.file_name().expect("a file").to_string_lossy();
        let path = file.canonicalize().expect("exists");
        writeln!(code, "    ({name:?}, include_str!({:?})),", path.display().to_string()).expect("to a string");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("embedded_views.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
