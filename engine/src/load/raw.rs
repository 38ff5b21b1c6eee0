//! `--keep-raw`: the original resource lines, per type, gzip-compressed, published with the
//! tables under `_fhirhouse/current/_raw/<Type>/`, so tables can be re-derived (new views,
//! fixed views) without exporting again.
//!
//! Each chunk writes its own files (`<file number>-<chunk>.ndjson.gz`), so workers never
//! share a writer. Every line that parsed as a resource is kept, whether a view reads its
//! type or not; dead letters are already kept in `_dead_letter/`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use flate2::write::GzEncoder;
use flate2::Compression;

/// The folder, under a snapshot, that holds the raw lines.
pub const RAW_DIR: &str = "_raw";

/// The raw-line files of one chunk, opened on first use per type.
pub(crate) struct RawChunk {
    dir: PathBuf,
    name: String,
    open: HashMap<String, GzEncoder<BufWriter<File>>>,
    /// The first write error: later lines are not kept, and [`RawChunk::finish`] reports it.
    error: Option<io::Error>,
}

impl RawChunk {
    /// Files of chunk `chunk` of input file `file`, under `dir` (the snapshot's `_raw`).
    pub fn new(dir: PathBuf, file: usize, chunk: u32) -> Self {
        RawChunk { dir, name: format!("{file:03}-{chunk:05}.ndjson.gz"), open: HashMap::new(), error: None }
    }

    /// Keeps one resource line. A write error stops keeping and is returned by
    /// [`RawChunk::finish`], which fails the load.
    pub fn keep(&mut self, resource_type: &str, line: &[u8]) {
        if self.error.is_none() {
            self.error = self.try_keep(resource_type, line).err();
        }
    }

    fn try_keep(&mut self, resource_type: &str, line: &[u8]) -> io::Result<()> {
        if !self.open.contains_key(resource_type) {
            let dir = self.dir.join(resource_type);
            fs::create_dir_all(&dir)?;
            let file = BufWriter::with_capacity(256 * 1024, File::create(dir.join(&self.name))?);
            // Fast compression: this runs on the workers, next to parsing.
            self.open.insert(resource_type.to_owned(), GzEncoder::new(file, Compression::fast()));
        }
        let out = self.open.get_mut(resource_type).expect("inserted above");
        out.write_all(line)?;
        out.write_all(b"\n")
    }

    /// Completes and syncs every file of the chunk.
    pub fn finish(self) -> io::Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        for (_, out) in self.open {
            out.finish()?.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn lines_are_kept_per_type_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = RawChunk::new(dir.path().to_path_buf(), 2, 7);
        raw.keep("Patient", b"{\"a\":1}");
        raw.keep("Observation", b"{\"b\":2}");
        raw.keep("Patient", b"{\"c\":3}");
        raw.finish().unwrap();
        let mut text = String::new();
        let file = File::open(dir.path().join("Patient/002-00007.ndjson.gz")).unwrap();
        flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"c\":3}\n");
    }
}
