//! Downloading one file of the manifest, verified.
//!
//! The file is streamed to the output as it arrives, gzip-compressed when the server
//! offered gzip (kept compressed: the load reads `.ndjson.gz`), and checked on the way:
//! decompressed if need be, its lines counted. It is committed only when it is whole: the
//! body ended normally, the gzip stream (if any) ended, the last line is complete (ends
//! with a newline, or is a whole JSON value), and the number of resources matches the
//! manifest's `count` when it gives one. Anything else is an incomplete download, retried
//! from the start like a network error.

use std::io::{self, Write};
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use url::Url;

use super::http::{describe_reqwest, redact, status_reason, Http};
use super::output::Output;
use super::BulkError;

/// The longest last line without a newline that is checked for being whole JSON.
const MAX_TAIL: usize = 64 << 20;

/// Which part of the manifest a file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// `output[]`: resources.
    Output,
    /// `error[]`: OperationOutcomes.
    Error,
    /// `deleted[]`: Bundles of deleted resources.
    Deleted,
}

/// A file downloaded and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    /// The manifest section.
    pub section: Section,
    /// The manifest's `type`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Where it was saved, relative to the output folder.
    pub name: String,
    /// Non-blank lines (resources).
    pub lines: u64,
    /// Bytes saved (compressed, when gzip).
    pub bytes: u64,
    /// Whether it was saved gzip-compressed.
    pub gzip: bool,
}

/// What to download.
pub(crate) struct FileTask {
    pub section: Section,
    pub resource_type: String,
    pub url: Url,
    /// The file name without compression suffix (`Patient.000.ndjson`).
    pub name: String,
    pub count: Option<u64>,
    pub authorised: bool,
}

/// Why a file was not saved.
pub(crate) enum FileFailure {
    /// The server no longer has it (404, 410): files expire, and only a new job brings them
    /// back. The line to show, naming the file and the server's answer.
    Gone(String),
    /// Anything else.
    Other(BulkError),
}

impl From<BulkError> for FileFailure {
    fn from(error: BulkError) -> Self {
        FileFailure::Other(error)
    }
}

/// Download settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DownloadSettings {
    pub gzip: bool,
}

/// Downloads and verifies one file, retrying incomplete downloads.
pub(crate) async fn download(
    http: &Http,
    output: &Output,
    task: &FileTask,
    settings: DownloadSettings,
) -> Result<SavedFile, FileFailure> {
    let what = format!("file {} ({})", task.name, redact(&task.url));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let response = http
            .send(&what, &task.url, task.authorised, |c| {
                let request = c.get(task.url.clone()).header(ACCEPT, "application/fhir+ndjson");
                if settings.gzip {
                    request.header(ACCEPT_ENCODING, "gzip")
                } else {
                    request.header(ACCEPT_ENCODING, "identity")
                }
            })
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            let reason = status_reason(status, &body);
            if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                return Err(FileFailure::Gone(format!("{what}: {reason}")));
            }
            return Err(BulkError::Refused { what, reason }.into());
        }
        let gzip = response.headers().get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip")
        });
        let name = if gzip { format!("{}.gz", task.name) } else { task.name.clone() };
        let mut writer = output.create(&name).await?;
        let mut check = LineCheck::new(gzip);
        let mut bytes = 0u64;
        let mut body = response.bytes_stream();
        let streamed: Result<(), String> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| describe_reqwest(&e))?;
                check.feed(&chunk).map_err(|e| format!("not valid gzip: {e}"))?;
                writer.write(&chunk).await.map_err(|e| format!("cannot write {}: {e}", output.describe(&name)))?;
                bytes += chunk.len() as u64;
            }
            let lines = check.finish()?;
            match task.count {
                Some(count) if count != lines => {
                    Err(format!("{lines} resources received but the manifest says {count}: incomplete"))
                }
                _ => Ok(()),
            }
        }
        .await;
        match streamed {
            Ok(()) => {
                writer.commit().await.map_err(|e| BulkError::io(output.describe(&name), e))?;
                let lines = check.lines;
                let (section, resource_type) = (task.section, task.resource_type.clone());
                return Ok(SavedFile { section, resource_type, name, lines, bytes, gzip });
            }
            Err(reason) => {
                writer.abort().await;
                if attempt >= http.retry.attempts {
                    return Err(BulkError::GaveUp { what, attempts: attempt, last: reason }.into());
                }
                http.stats.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let wait: Duration = http.retry.backoff(attempt);
                tracing::info!(what, attempt, reason, "download incomplete; starting it again");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Counts and checks the lines of a download as it streams by (see the module docs).
pub(crate) struct LineCheck {
    decoder: Option<flate2::write::MultiGzDecoder<LineCounter>>,
    plain: LineCounter,
    lines: u64,
}

/// Counts non-blank lines and keeps the unterminated tail.
#[derive(Default)]
pub(crate) struct LineCounter {
    lines: u64,
    /// The bytes after the last newline (up to [`MAX_TAIL`]).
    tail: Vec<u8>,
    tail_has_content: bool,
    tail_too_long: bool,
}

impl Write for LineCounter {
    fn write(&mut self, mut bytes: &[u8]) -> io::Result<usize> {
        let written = bytes.len();
        while let Some(newline) = memchr::memchr(b'\n', bytes) {
            let (line, rest) = bytes.split_at(newline);
            if self.tail_has_content || has_content(line) {
                self.lines += 1;
            }
            self.tail.clear();
            self.tail_has_content = false;
            self.tail_too_long = false;
            bytes = &rest[1..];
        }
        if !bytes.is_empty() {
            self.tail_has_content |= has_content(bytes);
            if self.tail.len() + bytes.len() <= MAX_TAIL {
                self.tail.extend_from_slice(bytes);
            } else {
                self.tail_too_long = true;
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn has_content(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !b.is_ascii_whitespace())
}

impl LineCheck {
    /// A check of a body that is gzip-compressed or not.
    pub fn new(gzip: bool) -> LineCheck {
        let decoder = gzip.then(|| flate2::write::MultiGzDecoder::new(LineCounter::default()));
        LineCheck { decoder, plain: LineCounter::default(), lines: 0 }
    }

    /// Feeds the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.decoder {
            Some(decoder) => decoder.write_all(bytes),
            None => self.plain.write_all(bytes),
        }
    }

    /// The number of resources, once the body has ended; an error when it is incomplete.
    pub fn finish(&mut self) -> Result<u64, String> {
        let counter = match self.decoder.take() {
            Some(decoder) => decoder.finish().map_err(|e| format!("the gzip stream is incomplete: {e}"))?,
            None => std::mem::take(&mut self.plain),
        };
        let mut lines = counter.lines;
        if counter.tail_has_content {
            let whole =
                !counter.tail_too_long && serde_json::from_slice::<serde::de::IgnoredAny>(&counter.tail).is_ok();
            if !whole {
                return Err(format!("the last line (line {}) is cut off", lines + 1));
            }
            lines += 1;
        }
        self.lines = lines;
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(gzip: bool, body: &[u8], pieces: usize) -> Result<u64, String> {
        let mut check = LineCheck::new(gzip);
        for piece in body.chunks(body.len().div_ceil(pieces).max(1)) {
            check.feed(piece).map_err(|e| e.to_string())?;
        }
        check.finish()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn whole_files_count_their_resources_and_cut_ones_are_refused() {
        let body = b"{\"a\":1}\n\n{\"b\":2}\n{\"c\":3}";
        for pieces in [1, 3, 7, body.len()] {
            assert_eq!(check(false, body, pieces), Ok(3));
            assert_eq!(check(true, &gzip(body), pieces), Ok(3));
        }
        assert_eq!(check(false, b"", 1), Ok(0));
        let cut = b"{\"a\":1}\n{\"b\":";
        assert_eq!(check(false, cut, 2).unwrap_err(), "the last line (line 2) is cut off");
        let compressed = gzip(body);
        let err = check(true, &compressed[..compressed.len() - 9], 2).unwrap_err();
        assert!(err.contains("gzip stream is incomplete") || err.contains("cut off"), "{err}");
    }
}
