//! Line-aligned byte ranges of a file, so that one large file keeps every core busy.
//!
//! A file of `size` bytes is cut into ranges of about `target` bytes by [`plan_ranges`]. A
//! range owns every line that *starts* inside it: its reader skips the tail of a line begun
//! in the previous range and reads past its own end to finish its last line. Readers of all
//! ranges together therefore see each line exactly once, without any coordination.
//!
//! [`ChunkLines`] reads the lines of one range with a hard cap on line length: an oversized
//! line is returned as [`ChunkLine::Oversized`] (its length and first bytes) without ever
//! being held in memory whole, so one broken multi-gigabyte line cannot exhaust memory.

use std::io::{self, BufRead};
use std::ops::Range;

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// How many leading bytes of an oversized line are kept for the dead-letter record.
pub const OVERSIZED_HEAD_BYTES: usize = 1024;

/// A line buffer larger than this is let go of once its line is done, not reused.
const RETAINED_BUFFER_BYTES: usize = 4 << 20;

/// Cuts `0..size` into consecutive ranges of about `target` bytes (the last may be shorter).
///
/// An empty file gives one empty range, so every file is read (and reported) at least once.
///
/// ```
/// use fhirhouse::source::plan_ranges;
/// assert_eq!(plan_ranges(25, 10), [0..10, 10..20, 20..25]);
/// assert_eq!(plan_ranges(0, 10), [0..0]);
/// ```
#[must_use]
pub fn plan_ranges(size: u64, target: u64) -> Vec<Range<u64>> {
    let target = target.max(1);
    if size == 0 {
        return std::iter::once(0..0).collect();
    }
    (0..size.div_ceil(target)).map(|i| i * target..((i + 1) * target).min(size)).collect()
}

/// One line read by [`ChunkLines::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkLine<'a> {
    /// A line within the length cap, without its `\n` or `\r\n`; never blank.
    Line {
        /// 0-based index of the line among all lines (blank ones too) of the range.
        index: u64,
        /// Byte offset of the line's first byte in the (decompressed) file.
        offset: u64,
        /// The bytes, mutable because simd-json parses in place.
        bytes: &'a mut [u8],
    },
    /// A line longer than the cap; it was skipped, not buffered.
    Oversized {
        /// 0-based index of the line among all lines of the range.
        index: u64,
        /// Byte offset of the line's first byte.
        offset: u64,
        /// The full length of the line in bytes, line ending excluded.
        len: u64,
        /// Its first [`OVERSIZED_HEAD_BYTES`] bytes.
        head: &'a [u8],
    },
}

/// Reads the lines that start in one byte range of a file.
///
/// The reader must be positioned at the range start, or one byte before it when the range
/// does not start at 0: that byte tells whether a line starts exactly at the range start.
/// Blank lines are counted in the line index but not returned.
pub struct ChunkLines<R> {
    reader: R,
    /// File offset of the next unread byte.
    pos: u64,
    /// File offset of the first line the range owns, once the line straddling its start has
    /// been skipped: the bytes before it are counted by the previous range.
    owned_from: u64,
    /// Lines starting at or after this offset belong to the next range.
    end: u64,
    max_line_bytes: usize,
    buf: Vec<u8>,
    /// Lines consumed so far, blank ones included.
    lines: u64,
    /// Whether the reader starts at the beginning of the file (where a BOM may be).
    at_file_start: bool,
    started: bool,
}

impl<R: BufRead> ChunkLines<R> {
    /// Reads the lines starting in `range` from `reader`, positioned as described on the type.
    /// Pass `u64::MAX` as the range end to read to the end of the stream (compressed files).
    pub fn new(reader: R, range: Range<u64>, max_line_bytes: usize) -> Self {
        let at_file_start = range.start == 0;
        let pos = if at_file_start { 0 } else { range.start - 1 };
        ChunkLines {
            reader,
            pos,
            owned_from: range.start,
            end: range.end,
            max_line_bytes,
            buf: Vec::new(),
            lines: 0,
            at_file_start,
            started: false,
        }
    }

    /// Number of lines consumed so far (blank lines included). After the last line this is
    /// the range's line count, which the next range's line numbers are based on.
    #[must_use]
    pub fn lines_read(&self) -> u64 {
        self.lines
    }

    /// Bytes consumed from the stream so far, including the skipped head of the range.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes of the lines this range owns read so far, line endings included: the ranges of
    /// a file read to the end add up to its size, though each reads a little of its
    /// neighbours.
    #[must_use]
    pub fn bytes_owned(&self) -> u64 {
        self.pos.saturating_sub(self.owned_from)
    }

    /// The next non-blank line of the range, or `None` after its last line.
    ///
    /// # Errors
    ///
    /// An I/O error of the underlying reader (a corrupt gzip stream shows up here).
    pub fn next_line(&mut self) -> io::Result<Option<ChunkLine<'_>>> {
        if !self.started {
            self.started = true;
            if !self.at_file_start {
                // The previous range owns the line that straddles our start; skip to its end.
                self.read_line(0)?;
            }
            self.owned_from = self.pos;
        }
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            let offset = self.pos;
            let Some(len) = self.read_line(self.max_line_bytes)? else { return Ok(None) };
            let index = self.lines;
            self.lines += 1;
            if len > self.max_line_bytes as u64 {
                return Ok(Some(ChunkLine::Oversized { index, offset, len, head: &self.buf }));
            }
            let mut start = 0;
            if offset == 0 && self.at_file_start && self.buf.starts_with(UTF8_BOM) {
                start = UTF8_BOM.len();
            }
            let content = &self.buf[start..];
            if !content.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some(ChunkLine::Line {
                    index,
                    offset: offset + start as u64,
                    bytes: &mut self.buf[start..],
                }));
            }
        }
    }

    /// Consumes one line (through its `\n` or the end of the stream). Keeps at most `keep`
    /// bytes of it in `buf` (or [`OVERSIZED_HEAD_BYTES`] when it is longer than `keep`) with
    /// the line ending stripped, and returns its length without the ending; `None` at the end
    /// of the stream.
    fn read_line(&mut self, keep: usize) -> io::Result<Option<u64>> {
        if self.buf.capacity() > RETAINED_BUFFER_BYTES {
            // The buffer grew for a long line that is now done with: keeping it would pin
            // up to the line limit (64 MiB by default) per reader for the rest of the range.
            self.buf = Vec::new();
        }
        self.buf.clear();
        // The cap is on the content, line ending excluded, but whether a `\r` ends the line
        // is only known at its `\n`: buffer one byte more, and decide after stripping it.
        let buffered = keep.saturating_add(1);
        let mut len: u64 = 0;
        let mut consumed_any = false;
        let mut oversized = false;
        let mut last_byte = None;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            consumed_any = true;
            let (piece, found_newline) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], true),
                None => (available, false),
            };
            len += piece.len() as u64;
            if let Some(&b) = piece.last() {
                last_byte = Some(b);
            }
            if !oversized && len > buffered as u64 {
                oversized = true;
                let room = OVERSIZED_HEAD_BYTES.saturating_sub(self.buf.len());
                self.buf.extend_from_slice(&piece[..room.min(piece.len())]);
                self.buf.truncate(OVERSIZED_HEAD_BYTES);
            } else if !oversized {
                self.buf.extend_from_slice(piece);
            }
            let used = piece.len() + usize::from(found_newline);
            self.reader.consume(used);
            self.pos += used as u64;
            if found_newline {
                break;
            }
        }
        if !consumed_any {
            return Ok(None);
        }
        if last_byte == Some(b'\r') {
            len -= 1;
            if !oversized {
                self.buf.pop();
            }
        }
        if !oversized && len > keep as u64 {
            // One byte over without a `\r`: oversized after all, and kept like any other.
            self.buf.truncate(OVERSIZED_HEAD_BYTES);
        }
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (index, offset, text) the ranges of `data` yield, in order.
    fn read_all(data: &[u8], target: u64, max: usize) -> Vec<(u64, u64, String)> {
        let mut out = Vec::new();
        for range in plan_ranges(data.len() as u64, target) {
            let from = if range.start == 0 { 0 } else { range.start as usize - 1 };
            let mut lines = ChunkLines::new(&data[from..], range.clone(), max);
            while let Some(line) = lines.next_line().unwrap() {
                match line {
                    ChunkLine::Line { index, offset, bytes } => {
                        out.push((index, offset, String::from_utf8_lossy(bytes).into_owned()));
                    }
                    ChunkLine::Oversized { index, offset, len, head } => {
                        out.push((index, offset, format!("OVERSIZED {len} {}", String::from_utf8_lossy(head))));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_line_is_read_once_whatever_the_range_size() {
        let data = b"{\"a\":1}\n\n{\"bb\":22}\r\n   \n{\"c\":3}\n{\"d\":4}";
        let want: Vec<(u64, String)> = vec![
            (0, "{\"a\":1}".into()),
            (9, "{\"bb\":22}".into()),
            (24, "{\"c\":3}".into()),
            (32, "{\"d\":4}".into()),
        ];
        for target in 1..=data.len() as u64 + 1 {
            let got: Vec<(u64, String)> = read_all(data, target, 1 << 20).into_iter().map(|(_, o, s)| (o, s)).collect();
            assert_eq!(got, want, "target {target}");
        }
    }

    #[test]
    fn line_indexes_count_blank_lines_within_a_range() {
        let data = b"a\n\n  \nb\n";
        let got = read_all(data, 100, 100);
        assert_eq!(got, [(0, 0, "a".to_owned()), (3, 6, "b".to_owned())]);
    }

    #[test]
    fn oversized_lines_are_reported_with_length_and_head_not_buffered() {
        let long = "x".repeat(5000);
        let data = format!("ok\n{long}\r\nafter\n");
        let got = read_all(data.as_bytes(), 1 << 20, 100);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, 1);
        assert_eq!(got[1].2, format!("OVERSIZED 5000 {}", "x".repeat(OVERSIZED_HEAD_BYTES)));
        assert_eq!(got[2].2, "after");
    }

    #[test]
    fn the_cap_is_on_the_content_without_its_line_ending() {
        for ending in ["\n", "\r\n", ""] {
            let at_cap = "y".repeat(2000);
            let over = "z".repeat(2001);
            let data = format!("{at_cap}\r\n{over}\r\n{at_cap}{ending}");
            let got = read_all(data.as_bytes(), 1 << 20, 2000);
            assert_eq!(got.len(), 3, "{ending:?}");
            assert_eq!(got[0].2, at_cap, "a CRLF line of exactly the cap is whole");
            assert_eq!(got[1].2, format!("OVERSIZED 2001 {}", "z".repeat(OVERSIZED_HEAD_BYTES)));
            assert_eq!(got[2].2, at_cap, "{ending:?}");
        }
    }

    #[test]
    fn owned_bytes_of_all_ranges_add_up_to_the_file_size() {
        let data = b"{\"a\":1}\n\n{\"bb\":22}\r\n   \n{\"c\":3}\n{\"d\":4}";
        for target in 1..=data.len() as u64 + 1 {
            let mut total = 0;
            for range in plan_ranges(data.len() as u64, target) {
                let from = range.start.saturating_sub(1) as usize;
                let mut lines = ChunkLines::new(&data[from..], range, 1 << 20);
                while lines.next_line().unwrap().is_some() {}
                total += lines.bytes_owned();
            }
            assert_eq!(total, data.len() as u64, "target {target}");
        }
    }

    #[test]
    fn a_long_lines_buffer_is_let_go_of_once_the_line_is_done() {
        // Before, the buffer kept the capacity of the longest line (up to the 64 MiB line
        // limit) until the range ended.
        let long = "x".repeat(RETAINED_BUFFER_BYTES + 1);
        let data = format!("{long}\nshort\n");
        let mut lines = ChunkLines::new(data.as_bytes(), 0..u64::MAX, usize::MAX);
        assert!(matches!(lines.next_line().unwrap(), Some(ChunkLine::Line { bytes, .. }) if bytes.len() == long.len()));
        assert!(matches!(lines.next_line().unwrap(), Some(ChunkLine::Line { bytes, .. }) if &*bytes == b"short"));
        assert!(lines.buf.capacity() <= RETAINED_BUFFER_BYTES, "{}", lines.buf.capacity());
    }

    #[test]
    fn byte_order_mark_is_dropped_only_at_file_start() {
        let got = read_all(b"\xef\xbb\xbf{}\n{}\n", 1 << 20, 100);
        assert_eq!(got[0], (0, 3, "{}".to_owned()));
    }

    #[test]
    fn ranges_cover_the_file_exactly() {
        assert_eq!(plan_ranges(10, 3), [0..3, 3..6, 6..9, 9..10]);
        assert_eq!(plan_ranges(9, 3), [0..3, 3..6, 6..9]);
        assert_eq!(plan_ranges(5, 0), [0..1, 1..2, 2..3, 3..4, 4..5]);
    }
}
