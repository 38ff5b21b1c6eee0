//! What a Bulk Data export consists of: its data files, their declared types, its error files.
//!
//! An export is named either by a folder (every `*.ndjson[.gz]` / `*.jsonl[.gz]` directly in
//! it, each declaring its type by its name: `Patient.000.ndjson`) or by its Bulk Data
//! `manifest.json` (the `output[]` files with their `type`, and the `error[]` files of
//! OperationOutcomes). A folder named alone that holds a `manifest.json` is read through it.
//! [`open_export`] resolves either into an [`Export`].

use std::fs;
use std::path::{Path, PathBuf};

use object_store::ObjectStoreExt;
use serde::Deserialize;
use url::Url;

use super::location::{inspect_all, ExportFile, Location, Pending};
use super::{discover_inputs, has_input_suffix, type_from_name, SourceError};
use crate::store::{self, Address, StoreError};

/// The name of a Bulk Data manifest inside an export folder.
const MANIFEST_NAME: &str = "manifest.json";

/// A resolved export.
#[derive(Debug, Clone, Default)]
pub struct Export {
    /// The data files, in manifest order (or by name for a folder).
    pub files: Vec<ExportFile>,
    /// The manifest's `error[]` files (OperationOutcome NDJSON), reported, not loaded.
    pub error_files: Vec<Location>,
    /// The manifest's `deleted[]` files (Bundles of DELETE entries, in exports with
    /// `_since`): read by incremental loads, which remove those resources.
    pub deleted_files: Vec<Location>,
    /// The manifest (path or URL), when the export was named by one.
    pub manifest: Option<String>,
    /// The manifest's `transactionTime`, when given.
    pub transaction_time: Option<String>,
}

/// The parts of a Bulk Data manifest that matter for loading.
///
/// The specification requires `transactionTime`, `request`, `requiresAccessToken`, `output`
/// and `error`, but exports written by tools and copied by hand often lack all but `output`
/// (and servers leave out an empty `error`), so only `output` is required here: without it
/// the file is no manifest at all (a resource, a Bundle, `{}`), and loading it as one would
/// publish an empty warehouse.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    transaction_time: Option<String>,
    output: Vec<ManifestEntry>,
    #[serde(default)]
    error: Vec<ManifestEntry>,
    #[serde(default)]
    deleted: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize)]
struct ManifestEntry {
    #[serde(rename = "type")]
    resource_type: Option<String>,
    url: String,
}

/// Resolves an export named by folders, data files, a `manifest.json`, or object-store URLs.
///
/// An input ending in `.json` (not `.ndjson`) is read as a Bulk Data manifest, from the
/// file system or the store, and must be the only input; so is the `manifest.json` directly
/// inside a local folder named as the only input (the folder's files that the manifest does
/// not name are not loaded, and a warning counts them). Relative `output[].url`s are resolved against the manifest's
/// location, absolute URLs (`https://` as Bulk Data servers write them, `s3://`, ...) are read
/// through their store, `file://` URLs only from a local manifest. Otherwise a local path is
/// expanded by [`discover_inputs`]; a URL ending in an input suffix names one object, and any
/// other URL a "folder": the `*.ndjson[.gz]` / `*.jsonl[.gz]` objects directly under that
/// prefix, sorted by key. A file found this way declares the type its name carries
/// ([`type_from_name`]), as a manifest entry's `type` would.
///
/// # Errors
///
/// [`SourceError::Manifest`] for an unreadable or malformed manifest, a `.json` file that is
/// no manifest (no `output` array), a manifest given with other inputs, or an unsupported entry,
/// [`SourceError::Store`] naming the URL for an object-store failure, and the errors of
/// [`discover_inputs`] and [`ExportFile::inspect`](super::ExportFile::inspect).
pub fn open_export(inputs: &[Address]) -> Result<Export, SourceError> {
    if let [single] = inputs {
        if is_manifest_name(single) {
            return open_manifest(single);
        }
        if let Some((folder, manifest)) = folder_manifest(single) {
            return open_folder_manifest(&folder, &manifest);
        }
    }
    let mut pending: Vec<Pending> = Vec::new();
    for input in inputs {
        if let Some((folder, _)) = folder_manifest(input) {
            // Several exports' manifests cannot be combined (whose transactionTime, whose
            // deletions?), so their folders are read as plain data, as before; say so.
            tracing::warn!(
                folder = %folder.display(),
                "the folder's manifest.json is not read: it is one of several inputs, so only its data files are loaded (no deleted[], error[] or transactionTime); name it alone to load it as its export"
            );
        }
        if is_manifest_name(input) {
            // Read as data, a manifest would only make dead letters; its files, alongside
            // other inputs, would leave open which export `transactionTime` belongs to.
            read_manifest(input)?;
            return Err(SourceError::Manifest {
                manifest: input.to_string(),
                reason: "a Bulk Data manifest must be the only input (it names the export's files itself); \
                         load it alone, or name the NDJSON files or their folder instead"
                    .to_owned(),
            });
        }
        match input {
            Address::Local(path) => {
                pending.extend(discover_inputs(&[path])?.into_iter().map(|p| named(Location::Local(p), None)));
            }
            Address::Url(url) => pending.extend(list_url(url)?),
        }
    }
    Ok(Export { files: inspect_all(pending)?, ..Export::default() })
}

fn is_manifest_name(input: &Address) -> bool {
    match input {
        Address::Local(path) => {
            path.extension().is_some_and(|e| e == "json") && fs::metadata(path).is_ok_and(|m| m.is_file())
        }
        Address::Url(url) => url.path().ends_with(".json"),
    }
}

/// The `manifest.json` directly inside a local folder, when `input` is one that has it.
fn folder_manifest(input: &Address) -> Option<(PathBuf, Address)> {
    let folder = input.as_local()?;
    let manifest = folder.join(MANIFEST_NAME);
    (fs::metadata(folder).is_ok_and(|m| m.is_dir()) && fs::metadata(&manifest).is_ok_and(|m| m.is_file()))
        .then(|| (folder.to_path_buf(), Address::Local(manifest)))
}

/// A folder read through its manifest, as if the manifest had been named. Data files in the
/// folder that the manifest does not name (leftovers of another export, files copied in by
/// hand) are not loaded: they belong to no export the manifest describes, and loading them
/// would attribute them to its `transactionTime` and let its deletions pass them by. A
/// warning counts them.
fn open_folder_manifest(folder: &Path, manifest: &Address) -> Result<Export, SourceError> {
    let export = open_manifest(manifest)?;
    let named: std::collections::HashSet<PathBuf> = export
        .files
        .iter()
        .map(|f| &f.location)
        .chain(&export.error_files)
        .chain(&export.deleted_files)
        .filter_map(|location| match location {
            Location::Local(path) => Some(canonical(path)),
            _ => None,
        })
        .collect();
    // A folder with no data file of its own (all in sub-folders) is fine: nothing unnamed.
    let present = discover_inputs(&[folder]).unwrap_or_default();
    let unnamed: Vec<&PathBuf> = present.iter().filter(|p| !named.contains(&canonical(p))).collect();
    if let Some(first) = unnamed.first() {
        tracing::warn!(
            folder = %folder.display(),
            first = %first.display(),
            "{} data file(s) in the folder are not in its manifest.json and are not loaded (name them as inputs to load them as data)",
            unnamed.len()
        );
    }
    Ok(export)
}

/// A path in a form two names of one file share, where it can be had.
fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The input objects a URL names: itself when its name has an input suffix, else those
/// directly under it as a prefix.
fn list_url(url: &Url) -> Result<Vec<Pending>, SourceError> {
    let location = Location::from_url(url)?;
    let (store, path) = match &location {
        Location::Local(path) => {
            return Ok(discover_inputs(&[path])?.into_iter().map(|p| named(Location::Local(p), None)).collect());
        }
        Location::Object { store, path, .. } => (std::sync::Arc::clone(store), path.clone()),
        Location::Spooled { .. } => unreachable!("a URL never names a stream"),
    };
    if has_input_suffix(&store::file_name(&path)) {
        return Ok(vec![named(location, None)]);
    }
    let (lister, prefix) = (std::sync::Arc::clone(&store), path);
    let listing = store::run(async move { lister.list_with_delimiter(Some(&prefix)).await })
        .map_err(|e| StoreError::new(url, format!("cannot list: {e}")))?;
    let mut objects: Vec<_> =
        listing.objects.into_iter().filter(|m| has_input_suffix(&store::file_name(&m.location))).collect();
    if objects.is_empty() {
        return Err(StoreError::new(
            url,
            "no *.ndjson, *.ndjson.gz, *.jsonl or *.jsonl.gz object directly under this prefix",
        )
        .into());
    }
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(objects
        .into_iter()
        .map(|meta| {
            // Segment by segment, so that a `/`, `%` or space inside a key's segment is escaped:
            // the URL must name this object when resolved again (reports, dead letters).
            let mut object_url = url.clone();
            if let Ok(mut segments) = object_url.path_segments_mut() {
                segments.clear().extend(meta.location.parts());
            }
            let location =
                Location::Object { store: std::sync::Arc::clone(&store), path: meta.location, url: object_url };
            named(location, Some(meta.size))
        })
        .collect())
}

/// A file without a manifest `type`, its type declared by its name ([`type_from_name`]).
fn named(location: Location, size: Option<u64>) -> Pending {
    let declared_type = type_from_name(&location.name()).map(str::to_owned);
    Pending { type_from_name: declared_type.is_some(), declared_type, location, size }
}

/// Reads and checks a manifest: a JSON object with an `output` array.
fn read_manifest(manifest: &Address) -> Result<Manifest, SourceError> {
    let manifest_error = |reason: String| SourceError::Manifest { manifest: manifest.to_string(), reason };
    let bytes = read_whole(manifest).map_err(|e| manifest_error(format!("cannot read: {e}")))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        manifest_error(format!(
            "not a Bulk Data manifest (not one JSON document: {e}); give NDJSON files a .ndjson name"
        ))
    })?;
    let what = match &value {
        serde_json::Value::Object(fields) if fields.get("output").is_some_and(serde_json::Value::is_array) => None,
        serde_json::Value::Object(fields) => match fields.get("resourceType").and_then(serde_json::Value::as_str) {
            Some(resource_type) => Some(format!("a FHIR {resource_type} resource, no \"output\" array")),
            None if fields.contains_key("output") => Some("\"output\" is not an array".to_owned()),
            None => Some("no \"output\" array".to_owned()),
        },
        _ => Some("not a JSON object".to_owned()),
    };
    if let Some(what) = what {
        return Err(manifest_error(format!("not a Bulk Data manifest ({what}); give NDJSON files a .ndjson name")));
    }
    serde_json::from_value(value).map_err(|e| manifest_error(format!("not a Bulk Data manifest: {e}")))
}

fn open_manifest(manifest: &Address) -> Result<Export, SourceError> {
    let manifest_error = |reason: String| SourceError::Manifest { manifest: manifest.to_string(), reason };
    let parsed = read_manifest(manifest)?;
    let resolve = |i: usize, section: &str, url: &str| {
        resolve_entry(manifest, url).map_err(|reason| manifest_error(format!("{section}[{i}].url {url:?}: {reason}")))
    };
    let mut pending = Vec::with_capacity(parsed.output.len());
    for (i, entry) in parsed.output.iter().enumerate() {
        let location = resolve(i, "output", &entry.url)?;
        // The specification requires `type`; an entry without one is treated like a file
        // found in a folder.
        pending.push(match &entry.resource_type {
            Some(declared) => Pending::declared(location, Some(declared.clone())),
            None => named(location, None),
        });
    }
    let error_files =
        parsed.error.iter().enumerate().map(|(i, e)| resolve(i, "error", &e.url)).collect::<Result<_, _>>()?;
    let deleted_files =
        parsed.deleted.iter().enumerate().map(|(i, e)| resolve(i, "deleted", &e.url)).collect::<Result<_, _>>()?;
    Ok(Export {
        files: inspect_all(pending)?,
        error_files,
        deleted_files,
        manifest: Some(manifest.to_string()),
        transaction_time: parsed.transaction_time,
    })
}

/// A whole (small) file or object: a manifest.
fn read_whole(address: &Address) -> Result<Vec<u8>, String> {
    let url = match address {
        Address::Local(path) => return fs::read(path).map_err(|e| e.to_string()),
        Address::Url(url) => url,
    };
    match Location::from_url(url).map_err(|e| e.reason)? {
        Location::Local(path) => fs::read(path).map_err(|e| e.to_string()),
        Location::Spooled { .. } => unreachable!("a URL never names a stream"),
        Location::Object { store, path, .. } => {
            store::run(async move { store.get(&path).await?.bytes().await }).map(Vec::from).map_err(|e| e.to_string())
        }
    }
}

/// A manifest entry's file: relative to the manifest, or an absolute URL.
fn resolve_entry(manifest: &Address, entry: &str) -> Result<Location, String> {
    if entry.split_once("://").is_none() {
        return match manifest {
            Address::Local(path) => Ok(Location::Local(local_entry(path.parent().unwrap_or(Path::new(".")), entry))),
            Address::Url(base) => {
                let url = base.join(entry).map_err(|e| format!("cannot resolve against the manifest: {e}"))?;
                Location::from_url(&url).map_err(|e| e.reason)
            }
        };
    }
    let url = Url::parse(entry).map_err(|e| format!("not a valid URL: {e}"))?;
    if url.scheme() == "file" && manifest.as_local().is_none() {
        return Err("file:// URLs are only read from a local manifest".to_owned());
    }
    Location::from_url(&url).map_err(|e| e.reason)
}

/// The file a local manifest's relative `url` names in `folder`. The entry is a URL, so
/// `sub%20dir/a.ndjson` is `sub dir/a.ndjson`; but manifests written by hand often hold the
/// path as it is, so a file of the undecoded name is taken first.
fn local_entry(folder: &Path, entry: &str) -> PathBuf {
    let as_written = folder.join(entry);
    if as_written.exists() || !entry.contains('%') {
        return as_written;
    }
    // Decoded as a URL under a stand-in root, which the decoded path then drops again.
    let decoded = Url::parse("file:///manifest-folder/")
        .and_then(|root| root.join(entry))
        .ok()
        .and_then(|url| url.to_file_path().ok())
        .and_then(|path| path.strip_prefix("/manifest-folder").ok().map(|relative| folder.join(relative)));
    decoded.unwrap_or(as_written)
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};

    use super::*;

    #[test]
    fn manifest_resolves_relative_and_file_urls_and_keeps_types_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("Patient.ndjson"), "{}\n").unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("sub/Obs.ndjson"), "{}\n").unwrap();
        fs::write(d.join("err.ndjson"), "{}\n").unwrap();
        fs::write(d.join("1.Claim.ndjson"), "{}\n").unwrap();
        let abs = url::Url::from_file_path(d.join("sub/Obs.ndjson")).unwrap();
        let manifest = serde_json::json!({
            "transactionTime": "2024-01-01T00:00:00Z",
            "output": [{"type": "Patient", "url": "Patient.ndjson"}, {"type": "Observation", "url": abs.as_str()},
                       {"url": "sub/Obs.ndjson"}, {"url": "1.Claim.ndjson"}],
            "error": [{"type": "OperationOutcome", "url": "err.ndjson"}],
            "deleted": [{"type": "Bundle", "url": "sub/Obs.ndjson"}],
        });
        fs::write(d.join("manifest.json"), manifest.to_string()).unwrap();

        let export = open_export(&[d.join("manifest.json").into()]).unwrap();
        assert_eq!(export.files.len(), 4);
        assert_eq!(export.files[0].location, Location::Local(d.join("Patient.ndjson")));
        assert_eq!(export.files[0].declared_type.as_deref(), Some("Patient"));
        assert_eq!(export.files[1].location, Location::Local(d.join("sub/Obs.ndjson")));
        let types: Vec<_> = export.files.iter().map(|f| f.declared_type.as_deref()).collect();
        assert_eq!(types, [Some("Patient"), Some("Observation"), None, Some("Claim")], "no type: the name's");
        let by_name: Vec<_> = export.files.iter().map(|f| f.type_from_name).collect();
        assert_eq!(by_name, [false, false, false, true]);
        assert_eq!(export.error_files, [Location::Local(d.join("err.ndjson"))]);
        assert_eq!(export.deleted_files, [Location::Local(d.join("sub/Obs.ndjson"))]);
        assert_eq!(export.transaction_time.as_deref(), Some("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn a_folder_named_alone_is_read_through_its_manifest_and_only_what_it_lists() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("deleted")).unwrap();
        for name in ["Patient.000.ndjson", "err.ndjson", "deleted/del.ndjson", "Stray.000.ndjson"] {
            fs::write(d.join(name), "{}\n").unwrap();
        }
        let manifest = serde_json::json!({
            "transactionTime": "2024-02-01T00:00:00Z",
            "output": [{"type": "Patient", "url": "Patient.000.ndjson"}],
            "error": [{"type": "OperationOutcome", "url": "err.ndjson"}],
            "deleted": [{"type": "Bundle", "url": "deleted/del.ndjson"}],
        });
        fs::write(d.join("manifest.json"), manifest.to_string()).unwrap();

        let export = open_export(&[d.to_path_buf().into()]).unwrap();
        let names: Vec<_> = export.files.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["Patient.000.ndjson"], "the stray file is not the export's");
        assert_eq!(export.deleted_files, [Location::Local(d.join("deleted/del.ndjson"))]);
        assert_eq!(export.error_files, [Location::Local(d.join("err.ndjson"))]);
        assert_eq!(export.transaction_time.as_deref(), Some("2024-02-01T00:00:00Z"));
        assert_eq!(export.manifest, Some(d.join("manifest.json").display().to_string()));

        // Among other inputs the folder is data, as before: its manifest is not combined.
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join("Condition.ndjson"), "{}\n").unwrap();
        let export = open_export(&[d.to_path_buf().into(), other.path().to_path_buf().into()]).unwrap();
        assert_eq!(export.files.len(), 4, "Patient, err, Stray and Condition");
        assert!(export.manifest.is_none() && export.deleted_files.is_empty());
    }

    #[test]
    fn relative_urls_are_percent_decoded_unless_a_file_has_the_name_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("sub dir")).unwrap();
        fs::write(d.join("sub dir/Pat ient.ndjson"), "{}\n").unwrap();
        fs::write(d.join("100%25.ndjson"), "{}\n").unwrap();
        assert_eq!(local_entry(d, "sub%20dir/Pat%20ient.ndjson"), d.join("sub dir/Pat ient.ndjson"));
        assert_eq!(local_entry(d, "sub dir/Pat ient.ndjson"), d.join("sub dir/Pat ient.ndjson"));
        assert_eq!(local_entry(d, "100%25.ndjson"), d.join("100%25.ndjson"), "a file of that very name");
        assert_eq!(local_entry(d, "gone%20.ndjson"), d.join("gone .ndjson"));
        assert_eq!(local_entry(Path::new(""), "a%20b.ndjson"), Path::new("a b.ndjson"));
    }

    #[test]
    fn files_found_in_a_folder_declare_their_type_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["1.Observation.ndjson", "Patient.000.ndjson.gz", "everything.ndjson"] {
            fs::write(d.join(name), "{}\n").unwrap();
        }
        let export = open_export(&[d.to_path_buf().into()]).unwrap();
        let types: Vec<_> = export.files.iter().map(|f| (f.name(), f.declared_type.as_deref())).collect();
        assert_eq!(
            types,
            [
                ("1.Observation.ndjson".to_owned(), Some("Observation")),
                ("Patient.000.ndjson.gz".to_owned(), Some("Patient")),
                ("everything.ndjson".to_owned(), None),
            ]
        );
    }

    #[test]
    fn listed_objects_are_named_by_urls_that_resolve_to_them() {
        let prefix = url::Url::parse("memory://export-tests-odd-names/odd/").unwrap();
        let (store, _) = store::resolve(&prefix).unwrap();
        // Keys as an S3 listing gives them: a literal `%2F`, a space and a lone `%`.
        let keys = ["odd/Encounter%2F.ndjson.gz", "odd/Observation 100%.ndjson"];
        for key in keys {
            let (store, key) = (std::sync::Arc::clone(&store), object_store::path::Path::parse(key).unwrap());
            store::run(async move { store.put(&key, b"{}\n".to_vec().into()).await.unwrap() });
        }
        let listed = list_url(&prefix).unwrap();
        let urls: Vec<String> = listed.iter().map(|p| p.location.to_string()).collect();
        assert_eq!(
            urls,
            [
                "memory://export-tests-odd-names/odd/Encounter%252F.ndjson.gz",
                "memory://export-tests-odd-names/odd/Observation%20100%25.ndjson",
            ]
        );
        for (url, key) in urls.iter().zip(keys) {
            assert_eq!(store::resolve(&url::Url::parse(url).unwrap()).unwrap().1.as_ref(), key, "{url}");
        }
    }

    #[test]
    fn manifest_errors_name_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        fs::write(&path, r#"{"output": [{"type": "Patient", "url": "ftp://x/y.ndjson"}]}"#).unwrap();
        let err = open_export(&[path.clone().into()]).unwrap_err().to_string();
        assert!(err.contains("output[0].url") && err.contains("ftp://"), "{err}");

        fs::write(&path, r#"{"output": 3}"#).unwrap();
        let err = open_export(&[path.into()]).unwrap_err().to_string();
        assert!(err.contains("not a Bulk Data manifest"), "{err}");
    }

    #[test]
    fn compression_is_detected_by_magic_bytes_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut enc, b"{}\n").unwrap();
        fs::write(&path, enc.finish().unwrap()).unwrap();
        let file = super::super::ExportFile::inspect(path, None).unwrap();
        assert!(file.compressed);
        let mut text = String::new();
        file.open_at(0).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "{}\n");
    }
}
