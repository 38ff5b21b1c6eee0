//! What a Bulk Data export consists of: its data files, their declared types, its error files.
//!
//! An export is named either by a folder (every `*.ndjson[.gz]` / `*.jsonl[.gz]` directly in
//! it) or by its Bulk Data `manifest.json` (the `output[]` files with their `type`, and the
//! `error[]` files of OperationOutcomes). [`open_export`] resolves either into an [`Export`].

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use serde::Deserialize;

use super::{discover_inputs, SourceError};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const READ_BUFFER: usize = 256 * 1024;

/// One data file of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    /// Where the file is.
    pub path: PathBuf,
    /// The resource type the manifest declares for it; `None` for files found in a folder.
    pub declared_type: Option<String>,
    /// Size in bytes as stored (compressed size for gzip files).
    pub size: u64,
    /// Whether the file is gzip-compressed (by suffix or magic bytes). Compressed files are
    /// read as one stream; plain files can be split into ranges.
    pub compressed: bool,
}

impl ExportFile {
    /// Describes the file at `path`, detecting compression by suffix or magic bytes.
    ///
    /// # Errors
    ///
    /// [`SourceError::Open`] when the file cannot be opened or inspected.
    pub fn inspect(path: PathBuf, declared_type: Option<String>) -> Result<ExportFile, SourceError> {
        let open_error = |source| SourceError::Open { path: path.clone(), source };
        let mut file = File::open(&path).map_err(open_error)?;
        let size = file.metadata().map_err(open_error)?.len();
        let mut magic = [0u8; 2];
        let read = file.read(&mut magic).map_err(open_error)?;
        let compressed =
            size > 0 && (path.extension().is_some_and(|e| e == "gz") || (read == 2 && magic == GZIP_MAGIC));
        Ok(ExportFile { path, declared_type, size, compressed })
    }

    /// A buffered reader of the (decompressed) content from byte `offset` on. For compressed
    /// files only offset 0 is meaningful: they are never split.
    ///
    /// # Errors
    ///
    /// The I/O error of opening or seeking.
    pub fn open_at(&self, offset: u64) -> io::Result<Box<dyn BufRead + Send>> {
        let mut file = File::open(&self.path)?;
        if self.compressed {
            let raw = BufReader::with_capacity(READ_BUFFER, file);
            return Ok(Box::new(BufReader::with_capacity(READ_BUFFER, MultiGzDecoder::new(raw))));
        }
        file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(BufReader::with_capacity(READ_BUFFER, file)))
    }

    /// The file name, for reports and dead-letter file names.
    #[must_use]
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(|| self.path.display().to_string(), |n| n.to_string_lossy().into_owned())
    }
}

/// A resolved export.
#[derive(Debug, Clone, Default)]
pub struct Export {
    /// The data files, in manifest order (or by name for a folder).
    pub files: Vec<ExportFile>,
    /// The manifest's `error[]` files (OperationOutcome NDJSON), reported, not loaded.
    pub error_files: Vec<PathBuf>,
    /// The manifest, when the export was named by one.
    pub manifest: Option<PathBuf>,
    /// The manifest's `transactionTime`, when given.
    pub transaction_time: Option<String>,
}

/// The parts of a Bulk Data manifest that matter for loading.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    transaction_time: Option<String>,
    #[serde(default)]
    output: Vec<ManifestEntry>,
    #[serde(default)]
    error: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize)]
struct ManifestEntry {
    #[serde(rename = "type")]
    resource_type: Option<String>,
    url: String,
}

/// Resolves an export named by a folder, a `manifest.json`, or one or more data files.
///
/// A path ending in `.json` (not `.ndjson`) is read as a Bulk Data manifest: relative
/// `output[].url`s are resolved against the manifest's folder, `file://` URLs are taken as
/// paths. Anything else is expanded by [`discover_inputs`].
///
/// # Errors
///
/// [`SourceError::Manifest`] for an unreadable or malformed manifest or an unsupported URL,
/// and the errors of [`discover_inputs`] and [`ExportFile::inspect`].
pub fn open_export(paths: &[PathBuf]) -> Result<Export, SourceError> {
    if let [single] = paths {
        if is_manifest_name(single) {
            return open_manifest(single);
        }
    }
    let files = discover_inputs(paths)?.into_iter().map(|p| ExportFile::inspect(p, None)).collect::<Result<_, _>>()?;
    Ok(Export { files, ..Export::default() })
}

fn is_manifest_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json") && fs::metadata(path).is_ok_and(|m| m.is_file())
}

fn open_manifest(path: &Path) -> Result<Export, SourceError> {
    let manifest_error = |reason: String| SourceError::Manifest { path: path.to_path_buf(), reason };
    let text = fs::read_to_string(path).map_err(|e| manifest_error(format!("cannot read: {e}")))?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| manifest_error(format!("not a Bulk Data manifest: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |i: usize, section: &str, url: &str| {
        resolve_url(base, url).map_err(|reason| manifest_error(format!("{section}[{i}].url {url:?}: {reason}")))
    };
    let mut files = Vec::with_capacity(manifest.output.len());
    for (i, entry) in manifest.output.iter().enumerate() {
        let file_path = resolve(i, "output", &entry.url)?;
        files.push(ExportFile::inspect(file_path, entry.resource_type.clone())?);
    }
    let error_files =
        manifest.error.iter().enumerate().map(|(i, e)| resolve(i, "error", &e.url)).collect::<Result<_, _>>()?;
    Ok(Export { files, error_files, manifest: Some(path.to_path_buf()), transaction_time: manifest.transaction_time })
}

/// A manifest URL as a local path: relative to the manifest, or a `file://` URL.
fn resolve_url(base: &Path, url: &str) -> Result<PathBuf, String> {
    match url.split_once("://") {
        None => Ok(base.join(url)),
        Some(("file", _)) => url::Url::parse(url)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| "not a valid file:// URL".to_owned()),
        Some((scheme, _)) => Err(format!(
            "{scheme}:// URLs are not read from a local manifest; download the export first (fhirhouse export)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_resolves_relative_and_file_urls_and_keeps_types_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("Patient.ndjson"), "{}\n").unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("sub/Obs.ndjson"), "{}\n").unwrap();
        fs::write(d.join("err.ndjson"), "{}\n").unwrap();
        let abs = url::Url::from_file_path(d.join("sub/Obs.ndjson")).unwrap();
        let manifest = serde_json::json!({
            "transactionTime": "2024-01-01T00:00:00Z",
            "output": [{"type": "Patient", "url": "Patient.ndjson"}, {"type": "Observation", "url": abs.as_str()}],
            "error": [{"type": "OperationOutcome", "url": "err.ndjson"}],
        });
        fs::write(d.join("manifest.json"), manifest.to_string()).unwrap();

        let export = open_export(&[d.join("manifest.json")]).unwrap();
        assert_eq!(export.files.len(), 2);
        assert_eq!(export.files[0].path, d.join("Patient.ndjson"));
        assert_eq!(export.files[0].declared_type.as_deref(), Some("Patient"));
        assert_eq!(export.files[1].path, d.join("sub/Obs.ndjson"));
        assert_eq!(export.error_files, [d.join("err.ndjson")]);
        assert_eq!(export.transaction_time.as_deref(), Some("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn manifest_errors_name_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        fs::write(&path, r#"{"output": [{"type": "Patient", "url": "https://x/y.ndjson"}]}"#).unwrap();
        let err = open_export(std::slice::from_ref(&path)).unwrap_err().to_string();
        assert!(err.contains("output[0].url") && err.contains("https"), "{err}");

        fs::write(&path, r#"{"output": 3}"#).unwrap();
        let err = open_export(&[path]).unwrap_err().to_string();
        assert!(err.contains("not a Bulk Data manifest"), "{err}");
    }

    #[test]
    fn compression_is_detected_by_magic_bytes_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut enc, b"{}\n").unwrap();
        fs::write(&path, enc.finish().unwrap()).unwrap();
        let file = ExportFile::inspect(path, None).unwrap();
        assert!(file.compressed);
        let mut text = String::new();
        file.open_at(0).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "{}\n");
    }
}
