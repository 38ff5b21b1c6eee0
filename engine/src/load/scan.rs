//! `fhirhouse scan`: read and parse every line of an export on all cores, write nothing.
//!
//! A quick check of an export before loading it (how many lines, resources per type, how
//! many lines are not valid JSON) and the speed ceiling of a load: it reads exactly as a
//! load does (same chunks, same line reader, one simd-json parse per line with reused
//! buffers) and does nothing else, so `load seconds / scan seconds` is the cost of
//! everything a load adds to parsing. The end-to-end harness (`benches/e2e.py`) uses it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::plan_chunks;
use crate::source::{open_export, ChunkLine, ChunkLines};
use crate::store::Address;
use crate::view::ResourceParser;

/// What a scan found.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ScanReport {
    /// Worker threads used.
    pub threads: usize,
    /// Data files read.
    pub files: usize,
    /// Lines, blank ones included, as a load counts them.
    pub lines: u64,
    /// Blank lines (a load counts them too, and loads nothing from them).
    pub blank_lines: u64,
    /// Lines that are not valid JSON (or not UTF-8).
    pub invalid_lines: u64,
    /// Lines longer than the line limit (not parsed).
    pub oversized_lines: u64,
    /// Files that could not be read to the end.
    pub unreadable_files: u64,
    /// Bytes read (decompressed).
    pub bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Valid JSON objects by `resourceType` (`(none)` when missing).
    pub resources_by_type: BTreeMap<String, u64>,
}

/// Scans the export named by `inputs` on `threads` workers (0: one per core).
///
/// # Errors
///
/// When the export cannot be resolved (missing folder, bad manifest). Unreadable files and
/// bad lines are counted, not errors.
pub fn scan(inputs: &[Address], threads: usize, max_line_bytes: usize) -> anyhow::Result<ScanReport> {
    let export = open_export(inputs)?;
    let threads = crate::worker_threads(threads);
    let chunks = plan_chunks(&export, super::DEFAULT_CHUNK_BYTES);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let total = Mutex::new(ScanReport { threads, files: export.files.len(), ..ScanReport::default() });
    let started = Instant::now();
    pool.install(|| {
        chunks.par_iter().for_each_init(ResourceParser::default, |parser, chunk| {
            let file = &export.files[chunk.file];
            let mut part = ScanReport::default();
            let from = chunk.range.start.saturating_sub(1);
            match file.open_at(from) {
                Err(_) => part.unreadable_files += 1,
                Ok(reader) => {
                    let mut lines = ChunkLines::new(reader, chunk.range.clone(), max_line_bytes);
                    let mut non_blank = 0;
                    loop {
                        match lines.next_line() {
                            Ok(None) => break,
                            Ok(Some(ChunkLine::Line { bytes, .. })) => {
                                non_blank += 1;
                                match parser.parse(bytes) {
                                    Ok(parsed) => {
                                        let t = parsed.doc().get_str("resourceType").unwrap_or("(none)");
                                        *part.resources_by_type.entry(t.to_owned()).or_default() += 1;
                                    }
                                    Err(_) => part.invalid_lines += 1,
                                }
                            }
                            Ok(Some(ChunkLine::Oversized { .. })) => {
                                non_blank += 1;
                                part.oversized_lines += 1;
                            }
                            Err(_) => {
                                part.unreadable_files += 1;
                                break;
                            }
                        }
                    }
                    part.lines = lines.lines_read();
                    part.blank_lines = lines.lines_read() - non_blank;
                    part.bytes = lines.bytes_owned();
                }
            }
            total.lock().expect("no panics while held").add(&part);
        });
    });
    let mut report = total.into_inner().expect("workers are done");
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

impl ScanReport {
    fn add(&mut self, part: &ScanReport) {
        self.lines += part.lines;
        self.blank_lines += part.blank_lines;
        self.invalid_lines += part.invalid_lines;
        self.oversized_lines += part.oversized_lines;
        self.unreadable_files += part.unreadable_files;
        self.bytes += part.bytes;
        for (t, n) in &part.resources_by_type {
            *self.resources_by_type.entry(t.clone()).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_types_and_invalid_lines_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"resourceType\":\"Patient\"}\n\n{bad\n{\"resourceType\":\"Observation\"}\n[1]\n".repeat(3);
        std::fs::write(dir.path().join("x.ndjson"), text).unwrap();
        let report = scan(&[Address::parse(dir.path().as_os_str())], 2, 1 << 20).unwrap();
        assert_eq!((report.lines, report.blank_lines, report.invalid_lines), (15, 3, 3));
        assert_eq!(report.resources_by_type.get("Patient"), Some(&3));
        assert_eq!(report.resources_by_type.get("(none)"), Some(&3));
    }
}
