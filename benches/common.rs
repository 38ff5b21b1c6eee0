//! Inputs shared by the criterion benches: the export they read and the parse a load does.

use std::path::{Path, PathBuf};

use fhirhouse::view::{Parsed, ResourceParser};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared/data/synthea-100p` (the 100-patient reference export) when present, otherwise
/// the bundled 10-patient sample, so the benches run on a fresh clone too.
pub fn export_dir(bench: &str) -> PathBuf {
    let shared = repo_root().join("../shared/data/synthea-100p");
    if shared.is_dir() {
        return shared;
    }
    eprintln!("{bench}: ../shared/data/synthea-100p not found; using the bundled 10-patient sample");
    repo_root().join("tests/data/sample")
}

/// The non-empty lines of an NDJSON file.
pub fn lines(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

/// Parses one line the way a load does: copied into a reused buffer (simd-json parses in
/// place) and parsed by a reused [`ResourceParser`].
pub fn parse<'p>(scratch: &'p mut Vec<u8>, parser: &'p mut ResourceParser, line: &[u8]) -> Parsed<'p, 'p> {
    scratch.clear();
    scratch.extend_from_slice(line);
    parser.parse(scratch).expect("valid JSON")
}
