//! Numbered lines of one NDJSON file, plain or gzip-compressed.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use super::SourceError;

/// Read buffer size: large enough that a typical resource line is served from memory, small
/// enough not to matter when many files are open at once.
const BUFFER_SIZE: usize = 256 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// One non-blank line of an input file, owned. Yielded by [`LineReader`]'s [`Iterator`] impl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the (decompressed) file; blank lines count.
    pub number: u64,
    /// The line's bytes without the trailing `\n` or `\r\n`.
    pub bytes: Vec<u8>,
}

/// Reads one file as numbered lines of bytes.
///
/// The file is decompressed when its name ends in `.gz` or when it starts with the gzip magic
/// bytes, so a compressed export that lost its suffix still reads; concatenated gzip members
/// (as written by `bgzip` or `cat a.gz b.gz`) are read through. Line endings `\n` and `\r\n`
/// are stripped, a UTF-8 byte order mark at the start of the file is dropped, and lines that
/// are empty or only ASCII whitespace are skipped, though they still count in the numbering so
/// that reported line numbers match what an editor shows.
///
/// Two ways to read: [`LineReader::next_line`] lends a buffer that is reused from line to line
/// (no allocation per line; the bytes are mutable because `simd_json` parses in place), and
/// the [`Iterator`] impl yields owned [`Line`]s. Either stops for good after the first error.
///
/// ```no_run
/// use fhirhouse::source::LineReader;
///
/// let mut lines = LineReader::open("export/Patient.ndjson.gz")?;
/// while let Some((number, bytes)) = lines.next_line()? {
///     println!("{number}: {} bytes", bytes.len());
/// }
/// # Ok::<(), fhirhouse::source::SourceError>(())
/// ```
pub struct LineReader {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    /// Number of the last line consumed, blank or not.
    line: u64,
    done: bool,
}

impl std::fmt::Debug for LineReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineReader")
            .field("path", &self.path)
            .field("line", &self.line)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl LineReader {
    /// Opens `path` for reading, choosing gzip decompression by suffix or magic bytes.
    ///
    /// # Errors
    ///
    /// [`SourceError::Open`] when the file cannot be opened or its first bytes read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let open_error = |source| SourceError::Open { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(open_error)?;
        let gz_suffix = path.extension().is_some_and(|ext| ext == "gz");
        Self::with_compression_hint(path, file, gz_suffix).map_err(open_error)
    }

    /// Reads lines from any byte stream; `path` is only used to label errors.
    ///
    /// Gzip is detected from the magic bytes alone. Useful for standard input and tests.
    ///
    /// # Errors
    ///
    /// [`SourceError::Open`] when the first bytes cannot be read.
    pub fn from_reader(path: impl Into<PathBuf>, reader: impl Read + Send + 'static) -> Result<Self, SourceError> {
        let path = path.into();
        Self::with_compression_hint(&path, reader, false).map_err(|source| SourceError::Open { path, source })
    }

    fn with_compression_hint(path: &Path, reader: impl Read + Send + 'static, gz_suffix: bool) -> io::Result<Self> {
        let mut raw = BufReader::with_capacity(BUFFER_SIZE, reader);
        let head = raw.fill_buf()?;
        // An empty file is an empty export whatever its name; the gzip decoder would call it
        // truncated.
        let gzip = !head.is_empty() && (gz_suffix || head.starts_with(&GZIP_MAGIC));
        let reader: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(BUFFER_SIZE, MultiGzDecoder::new(raw)))
        } else {
            Box::new(raw)
        };
        Ok(Self { path: path.to_path_buf(), reader, buf: Vec::new(), line: 0, done: false })
    }

    /// The file this reader reads, as given to [`LineReader::open`].
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the next non-blank line into the reused buffer and returns its 1-based number
    /// and bytes (line ending stripped); `None` at the end of the file.
    ///
    /// # Errors
    ///
    /// [`SourceError::Read`] with the file and the number of the line being read. After an
    /// error every further call returns `Ok(None)`.
    pub fn next_line(&mut self) -> Result<Option<(u64, &mut [u8])>, SourceError> {
        while !self.done {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line += 1;
                    let start = if self.line == 1 && self.buf.starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 };
                    let end = content_end(&self.buf).max(start);
                    // Borrow mutably only on the returning path: a loan held across the loop's
                    // next `clear` would not pass the borrow checker.
                    if !self.buf[start..end].iter().all(u8::is_ascii_whitespace) {
                        return Ok(Some((self.line, &mut self.buf[start..end])));
                    }
                }
                Err(source) => {
                    self.done = true;
                    return Err(SourceError::Read { path: self.path.clone(), line: self.line + 1, source });
                }
            }
        }
        Ok(None)
    }
}

/// Length of `line` without its trailing `\n` or `\r\n`.
fn content_end(line: &[u8]) -> usize {
    let mut end = line.len();
    if line[..end].ends_with(b"\n") {
        end -= 1;
        if line[..end].ends_with(b"\r") {
            end -= 1;
        }
    }
    end
}

impl Iterator for LineReader {
    type Item = Result<Line, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_line() {
            Ok(Some((number, bytes))) => Some(Ok(Line { number, bytes: bytes.to_vec() })),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    const TEXT: &[u8] = b"{\"a\":1}\n\n{\"b\":2}\r\n   \r\n{\"c\":3}";

    fn expected() -> Vec<Line> {
        [(1, "{\"a\":1}"), (3, "{\"b\":2}"), (5, "{\"c\":3}")]
            .into_iter()
            .map(|(number, s)| Line { number, bytes: s.as_bytes().to_vec() })
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn read_all(path: &Path) -> Vec<Line> {
        LineReader::open(path).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn plain_lines_are_numbered_stripped_and_blanks_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson");
        std::fs::write(&path, TEXT).unwrap();
        assert_eq!(read_all(&path), expected());
    }

    #[test]
    fn gzip_by_suffix_and_by_magic_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let by_suffix = dir.path().join("x.ndjson.gz");
        let by_magic = dir.path().join("x.ndjson");
        std::fs::write(&by_suffix, gzip(TEXT)).unwrap();
        std::fs::write(&by_magic, gzip(TEXT)).unwrap();
        assert_eq!(read_all(&by_suffix), expected());
        assert_eq!(read_all(&by_magic), expected());
    }

    #[test]
    fn concatenated_gzip_members_are_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson.gz");
        let mut data = gzip(b"{\"a\":1}\n");
        data.extend(gzip(b"{\"b\":2}\n"));
        std::fs::write(&path, data).unwrap();
        let numbers: Vec<u64> = read_all(&path).iter().map(|l| l.number).collect();
        assert_eq!(numbers, [1, 2]);
    }

    #[test]
    fn empty_files_yield_nothing_even_when_named_gz() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["empty.ndjson", "empty.ndjson.gz"] {
            let path = dir.path().join(name);
            std::fs::write(&path, b"").unwrap();
            assert_eq!(read_all(&path), []);
        }
    }

    #[test]
    fn byte_order_mark_is_dropped_and_invalid_utf8_passed_through() {
        let reader = LineReader::from_reader("mem", &b"\xef\xbb\xbf{}\n\xff\xfe\n"[..]).unwrap();
        let lines: Vec<Line> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(lines[0].bytes, b"{}");
        assert_eq!(lines[1].bytes, b"\xff\xfe");
    }

    #[test]
    fn next_line_lends_a_mutable_buffer() {
        let mut reader = LineReader::from_reader("mem", &b"ab\ncd\n"[..]).unwrap();
        let (n, bytes) = reader.next_line().unwrap().unwrap();
        bytes[0] = b'X';
        assert_eq!((n, &*bytes), (1, &b"Xb"[..]));
        let (n, bytes) = reader.next_line().unwrap().unwrap();
        assert_eq!((n, &*bytes), (2, &b"cd"[..]));
        assert!(reader.next_line().unwrap().is_none());
    }

    #[test]
    fn corrupt_gzip_reports_path_and_line_then_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.ndjson.gz");
        let mut data = gzip(b"{\"a\":1}\n{\"b\":2}\n");
        data.truncate(data.len() - 12);
        std::fs::write(&path, data).unwrap();

        let mut reader = LineReader::open(&path).unwrap();
        let err = loop {
            match reader.next_line() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("truncated gzip read without error"),
                Err(e) => break e,
            }
        };
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("{}:", path.display())), "{msg}");
        assert!(matches!(err, SourceError::Read { line: 1..=2, .. }), "{err:?}");
        assert!(reader.next_line().unwrap().is_none());
    }

    #[test]
    fn missing_file_is_an_open_error_naming_it() {
        let err = LineReader::open("/nonexistent/x.ndjson").unwrap_err();
        assert!(matches!(err, SourceError::Open { .. }));
        assert!(err.to_string().contains("/nonexistent/x.ndjson"));
    }
}
