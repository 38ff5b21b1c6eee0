//! The generated export on disk: one `<Type>.000.ndjson[.gz]` per resource type with lines,
//! the Bulk Data `manifest.json`, and `defects.json`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::defects::DefectCounts;

/// The manifest's `transactionTime`: fixed, so that a seed always gives the same bytes.
const TRANSACTION_TIME: &str = "2024-01-01T00:00:00Z";

/// Gzip-compresses `data` as one gzip member. Members concatenate into a valid gzip file, so
/// blocks compress in parallel. The fastest level: generating must not be the bottleneck.
#[must_use]
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// The open output files of a generated export.
#[derive(Debug)]
pub struct ExportWriter {
    dir: PathBuf,
    names: Vec<String>,
    types: Vec<String>,
    files: Vec<BufWriter<File>>,
    counts: Vec<u64>,
    bytes: u64,
}

impl ExportWriter {
    /// Creates `dir` (if needed) and one file per type in it, replacing the NDJSON files,
    /// manifest and defects report of an earlier run there.
    ///
    /// # Errors
    ///
    /// The folder or a file cannot be created.
    pub fn create(dir: &Path, types: &[String], gzip: bool) -> anyhow::Result<ExportWriter> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let stale = name.ends_with(".ndjson") || name.ends_with(".ndjson.gz");
            if path.is_file() && (stale || name == "manifest.json" || name == "defects.json") {
                std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        let extension = if gzip { "ndjson.gz" } else { "ndjson" };
        let names: Vec<String> = types.iter().map(|t| format!("{t}.000.{extension}")).collect();
        let files = names
            .iter()
            .map(|name| {
                let path = dir.join(name);
                File::create(&path)
                    .map(|f| BufWriter::with_capacity(1 << 20, f))
                    .with_context(|| format!("creating {}", path.display()))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(ExportWriter {
            dir: dir.to_path_buf(),
            names,
            types: types.to_vec(),
            files,
            counts: vec![0; types.len()],
            bytes: 0,
        })
    }

    /// Appends `data` (already compressed when the export is gzipped) holding `lines` lines
    /// to the file of type number `type_index`.
    ///
    /// # Errors
    ///
    /// The write fails.
    pub fn write(&mut self, type_index: usize, data: &[u8], lines: u64) -> io::Result<()> {
        self.files[type_index].write_all(data)?;
        self.counts[type_index] += lines;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Bytes written to the data files so far.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes the files, removes those of types without a line, and writes `manifest.json`
    /// and, when defects were asked for, `defects.json`.
    ///
    /// # Errors
    ///
    /// A write fails.
    pub fn finish(self, defects: Option<&DefectsReport>) -> anyhow::Result<()> {
        for ((mut file, name), count) in self.files.into_iter().zip(&self.names).zip(&self.counts) {
            file.flush().with_context(|| format!("writing {name}"))?;
            if *count == 0 {
                // An empty file is not in the manifest (a load of the folder warns about it)
                // and, gzipped, is not even a valid gzip file.
                drop(file);
                let path = self.dir.join(name);
                std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        let output: Vec<serde_json::Value> = self
            .types
            .iter()
            .zip(&self.names)
            .zip(&self.counts)
            .filter(|(_, count)| **count > 0)
            .map(|((t, name), count)| serde_json::json!({"type": t, "url": name, "count": count}))
            .collect();
        let manifest = serde_json::json!({
            "transactionTime": TRANSACTION_TIME,
            "request": "http://localhost/fhir/$export",
            "requiresAccessToken": false,
            "output": output,
            "error": [],
        });
        write_json(&self.dir.join("manifest.json"), &manifest)?;
        if let Some(report) = defects {
            write_json(&self.dir.join("defects.json"), &serde_json::to_value(report)?)?;
        }
        Ok(())
    }
}

/// The content of `defects.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DefectsReport {
    /// The `--defects` rate asked for.
    pub rate: f64,
    /// The seed.
    pub seed: u64,
    /// Defects injected, by the loader's dead-letter reason.
    #[serde(flatten)]
    pub counts: DefectCounts,
}

fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
