//! Duplicate resources within one load: the newest wins, the others are dead-lettered.
//!
//! Bulk exports can repeat a resource (overlapping files, a re-downloaded part). While
//! loading, every resource's key (type and id) is hashed and spilled with its version and
//! position to one of [`SHARDS`] files on disk, so memory stays flat whatever the export's
//! size. After the load, each shard is sorted on its own to find repeated keys. Only when
//! there are some does anything else happen: the repeated lines are read again to confirm
//! the keys, the winner is chosen (highest numeric `meta.versionId`, then latest
//! `meta.lastUpdated`, then the later position in the export), every table of that type
//! drops the key's rows and gets the winner's rows back, and the losers go to the dead
//! letters as `superseded_duplicate`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;

use crate::source::ExportFile;
use crate::view::Json;

/// Number of spill files; each is sorted in memory on its own (1/64 of the keys).
pub const SHARDS: usize = 64;
const RECORD_BYTES: usize = 44;

/// A loaded resource's key and version, as a worker records it (line relative to its chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdRecord {
    pub key: u64,
    pub version: u64,
    pub updated: i64,
    pub index: u64,
    pub offset: u64,
}

impl IdRecord {
    /// The record of a resource with `resource_type` and `id`, read from its `meta`.
    pub fn of(resource_type: &str, id: &str, resource: Json<'_>, index: u64, offset: u64) -> Self {
        let Version { version, updated } = Version::of(resource);
        IdRecord { key: key_hash(resource_type, id), version, updated, index, offset }
    }
}

/// How new a resource is, from its `meta`: ordered by numeric `versionId`, then
/// `lastUpdated`. Shared by duplicate resolution within a load and incremental loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Version {
    /// `versionId + 1`; 0 = no numeric version.
    pub version: u64,
    /// `lastUpdated` in microseconds; `i64::MIN` = none.
    pub updated: i64,
}

impl Version {
    /// No version information.
    pub const UNKNOWN: Version = Version { version: 0, updated: i64::MIN };

    /// The version of a parsed resource.
    pub fn of(resource: Json<'_>) -> Version {
        let meta = resource.get("meta");
        // 0 = no usable version; numeric versions rank above it in their order.
        let version = meta
            .and_then(|m| m.get_str("versionId"))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |v| v.saturating_add(1));
        let updated = meta
            .and_then(|m| m.get_str("lastUpdated"))
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(i64::MIN, |t| t.timestamp_micros());
        Version { version, updated }
    }
}

fn key_hash(resource_type: &str, id: &str) -> u64 {
    // SipHash with fixed keys: the same key hashes alike in every worker and every run.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    resource_type.hash(&mut hasher);
    id.hash(&mut hasher);
    hasher.finish()
}

/// One occurrence of a key in the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Occurrence {
    pub file: usize,
    pub line: u64,
    pub offset: u64,
    pub version: u64,
    pub updated: i64,
}

impl Occurrence {
    /// The ordering that decides the winner: newest version, then newest update, then the
    /// later position in the export.
    fn rank(&self) -> (u64, i64, usize, u64) {
        (self.version, self.updated, self.file, self.line)
    }
}

/// The spill files the collector appends key records to.
pub(crate) struct IdSpill {
    dir: PathBuf,
    files: Vec<BufWriter<File>>,
}

impl IdSpill {
    /// Creates the shard files in `dir`.
    pub fn create(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let files = (0..SHARDS)
            .map(|i| File::create(dir.join(format!("{i:02}.bin"))).map(|f| BufWriter::with_capacity(64 * 1024, f)))
            .collect::<io::Result<_>>()?;
        Ok(IdSpill { dir, files })
    }

    /// Appends one record, now with its file and absolute line number.
    pub fn push(&mut self, file: usize, line: u64, record: &IdRecord) -> io::Result<()> {
        let mut bytes = [0u8; RECORD_BYTES];
        bytes[0..8].copy_from_slice(&record.key.to_le_bytes());
        bytes[8..16].copy_from_slice(&record.version.to_le_bytes());
        bytes[16..24].copy_from_slice(&record.updated.to_le_bytes());
        bytes[24..28].copy_from_slice(&(file as u32).to_le_bytes());
        bytes[28..36].copy_from_slice(&line.to_le_bytes());
        bytes[36..44].copy_from_slice(&record.offset.to_le_bytes());
        self.files[(record.key >> 58) as usize % SHARDS].write_all(&bytes)
    }

    /// Flushes the shards; returns their folder.
    pub fn finish(self) -> io::Result<PathBuf> {
        for file in self.files {
            file.into_inner().map_err(io::IntoInnerError::into_error)?;
        }
        Ok(self.dir)
    }
}

/// Every group of occurrences sharing a key hash, shard by shard, each group in export
/// order. The shards are read and sorted on `threads` threads at once (each shard holds
/// 1/[`SHARDS`] of the keys): at the end of a load this is all that runs.
pub(crate) fn repeated_keys(dir: &Path, threads: usize) -> io::Result<Vec<Vec<Occurrence>>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().map_err(io::Error::other)?;
    let shards: Vec<Vec<Vec<Occurrence>>> = pool.install(|| {
        (0..SHARDS)
            .into_par_iter()
            .with_max_len(1)
            .map(|shard| repeated_in_shard(&dir.join(format!("{shard:02}.bin"))))
            .collect::<io::Result<_>>()
    })?;
    Ok(shards.into_iter().flatten().collect())
}

/// The groups of occurrences sharing a key hash in one shard file.
fn repeated_in_shard(path: &Path) -> io::Result<Vec<Vec<Occurrence>>> {
    let bytes = fs::read(path)?;
    let mut records: Vec<(u64, Occurrence)> = bytes
        .chunks_exact(RECORD_BYTES)
        .map(|r| {
            let u64_at = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().expect("8 bytes"));
            let file = u32::from_le_bytes(r[24..28].try_into().expect("4 bytes")) as usize;
            let occurrence = Occurrence {
                file,
                line: u64_at(28),
                offset: u64_at(36),
                version: u64_at(8),
                updated: u64_at(16) as i64,
            };
            (u64_at(0), occurrence)
        })
        .collect();
    // Nearly every key is unique, so the sort looks at the key alone; the few occurrences of
    // a repeated one are then put in export order.
    records.sort_unstable_by_key(|(key, _)| *key);
    Ok(records
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|group| group.len() > 1)
        .map(|group| {
            let mut occurrences: Vec<Occurrence> = group.iter().map(|(_, o)| *o).collect();
            occurrences.sort_unstable_by_key(|o| (o.file, o.line));
            occurrences
        })
        .collect())
}

/// A confirmed duplicate: one key, its winner and the occurrences it supersedes. Only
/// positions are kept: the lines are read again, a bounded batch at a time, when their rows
/// or dead letters are made ([`read_lines`]), so that memory does not grow with the bytes of
/// the duplicates.
#[derive(Debug, Clone)]
pub(crate) struct Duplicate {
    pub resource_type: String,
    pub id: String,
    pub winner: Occurrence,
    pub losers: Vec<Occurrence>,
}

/// What is handed each line read again: its occurrence and its bytes (without the line end).
pub(crate) type OnLine<'a> = dyn FnMut(&Occurrence, &[u8]) -> anyhow::Result<()> + 'a;

/// Hands each of the given occurrences' lines to the callback, one at a time, in an order of
/// its choosing; see [`read_lines`].
pub(crate) type ReadLines<'a> = dyn Fn(&[Occurrence], &mut OnLine<'_>) -> anyhow::Result<()> + 'a;

/// Reads the lines of each hash group again, splits them by their real key (a hash can
/// collide) and picks each key's winner. Only each occurrence's type and id are kept while
/// reading, not its bytes.
pub(crate) fn confirm(groups: Vec<Vec<Occurrence>>, read_lines: &ReadLines<'_>) -> anyhow::Result<Vec<Duplicate>> {
    let all: Vec<Occurrence> = groups.iter().flatten().copied().collect();
    let mut keys: HashMap<(usize, u64), (String, String)> = HashMap::with_capacity(all.len());
    read_lines(&all, &mut |occurrence, line| {
        let mut scratch = line.to_vec();
        let Ok(tape) = simd_json::to_tape(&mut scratch) else { return Ok(()) };
        let resource = Json::root(&tape);
        if let (Some(t), Some(id)) = (resource.get_str("resourceType"), resource.get_str("id")) {
            keys.insert((occurrence.file, occurrence.offset), (t.to_owned(), id.to_owned()));
        }
        Ok(())
    })?;
    drop(all);
    let mut duplicates = Vec::new();
    for group in groups {
        let mut by_key: BTreeMap<(String, String), Vec<Occurrence>> = BTreeMap::new();
        for occurrence in group {
            // A line that no longer parses, or has no type or id, is no duplicate.
            let Some(key) = keys.remove(&(occurrence.file, occurrence.offset)) else { continue };
            by_key.entry(key).or_default().push(occurrence);
        }
        for ((resource_type, id), mut occurrences) in by_key.into_iter().filter(|(_, o)| o.len() > 1) {
            occurrences.sort_by_key(Occurrence::rank);
            let winner = occurrences.pop().expect("two or more");
            duplicates.push(Duplicate { resource_type, id, winner, losers: occurrences });
        }
    }
    Ok(duplicates)
}

/// A gap between two wanted lines of a plain file past which the file is opened again at
/// the next one rather than read through (an object store's ranged read costs a request).
const SKIP_BY_READING: u64 = 1 << 20;

/// Hands the lines of `occurrences` in `files` to `f`, one at a time, in (file, offset)
/// order; nothing is kept but the line being handed over. A compressed file cannot seek: it
/// is read once from its start, skipping to each offset in turn (reading it from the start
/// once per line made a `.gz` listed twice in a manifest cost the square of its size). A
/// plain file is read through short gaps and opened again at the far side of long ones.
pub(crate) fn read_lines(files: &[ExportFile], occurrences: &[Occurrence], f: &mut OnLine<'_>) -> anyhow::Result<()> {
    let mut ordered: Vec<&Occurrence> = occurrences.iter().collect();
    ordered.sort_unstable_by_key(|o| (o.file, o.offset));
    for of_file in ordered.chunk_by(|a, b| a.file == b.file) {
        let file = &files[of_file[0].file];
        let context = || format!("re-reading duplicate resources in {}", file.location);
        if file.compressed {
            let mut next = of_file.iter();
            read_lines_in_order(
                file.open_at(0).with_context(context)?,
                of_file.iter().map(|o| o.offset),
                &mut |_, line| f(next.next().expect("one line per offset"), line),
            )
            .with_context(context)?;
            continue;
        }
        // (reader, its position)
        let mut open: Option<(Box<dyn BufRead + Send>, u64)> = None;
        let mut line = Vec::new();
        for occurrence in of_file {
            let offset = occurrence.offset;
            let (reader, position) = match open.take() {
                Some((reader, position)) if position <= offset && offset - position <= SKIP_BY_READING => {
                    (reader, position)
                }
                _ => (file.open_at(offset).with_context(context)?, offset),
            };
            let mut reader = reader;
            io::copy(&mut (&mut reader).take(offset - position), &mut io::sink()).with_context(context)?;
            line.clear();
            let read = reader.read_until(b'\n', &mut line).with_context(context)? as u64;
            open = Some((reader, offset + read));
            trim_line_end(&mut line);
            f(occurrence, &line)?;
        }
    }
    Ok(())
}

/// Reads the lines starting at `offsets` (ascending) of a stream read from its start, in
/// one pass, handing each to `f` with its offset as it is read.
pub(crate) fn read_lines_in_order(
    mut reader: Box<dyn BufRead + Send>,
    offsets: impl IntoIterator<Item = u64>,
    f: &mut dyn FnMut(u64, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut position = 0;
    let mut line = Vec::new();
    for offset in offsets {
        io::copy(&mut (&mut reader).take(offset.saturating_sub(position)), &mut io::sink())?;
        line.clear();
        position = offset.max(position) + reader.read_until(b'\n', &mut line)? as u64;
        trim_line_end(&mut line);
        f(offset, &line)?;
    }
    Ok(())
}

fn trim_line_end(line: &mut Vec<u8>) {
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
}

/// The ids to drop per resource type, and the types whose tables cannot be deduplicated.
pub(crate) fn ids_by_type(duplicates: &[Duplicate]) -> HashMap<String, HashSet<String>> {
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for d in duplicates {
        ids.entry(d.resource_type.clone()).or_default().insert(d.id.clone());
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: u64, version: u64, updated: i64) -> IdRecord {
        IdRecord { key, version, updated, index: 0, offset: 0 }
    }

    #[test]
    fn spilled_records_come_back_grouped_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = IdSpill::create(dir.path().join("ids")).unwrap();
        spill.push(0, 1, &record(7, 1, 5)).unwrap();
        spill.push(0, 2, &record(8, 0, 0)).unwrap();
        spill.push(1, 9, &record(7, 3, -4)).unwrap();
        spill.push(2, 3, &record(u64::MAX, 0, 0)).unwrap();
        let dir = spill.finish().unwrap();
        let groups = repeated_keys(&dir, 2).unwrap();
        assert_eq!(groups.len(), 1);
        let lines: Vec<(usize, u64, u64, i64)> =
            groups[0].iter().map(|o| (o.file, o.line, o.version, o.updated)).collect();
        assert_eq!(lines, [(0, 1, 1, 5), (1, 9, 3, -4)]);
    }

    #[test]
    fn newest_version_then_update_then_position_wins() {
        let occurrence = |file, line, version, updated| Occurrence { file, line, offset: line, version, updated };
        let lines: HashMap<(usize, u64), &str> = [
            ((0, 1), r#"{"resourceType":"Patient","id":"a","meta":{"versionId":"2"}}"#),
            ((0, 2), r#"{"resourceType":"Patient","id":"a","meta":{"versionId":"10"}}"#),
            ((1, 1), r#"{"resourceType":"Patient","id":"a"}"#),
            ((1, 2), r#"{"resourceType":"Patient","id":"b"}"#),
        ]
        .into_iter()
        .collect();
        let read = |wanted: &[Occurrence], f: &mut OnLine<'_>| {
            wanted.iter().try_for_each(|o| f(o, lines[&(o.file, o.line)].as_bytes()))
        };
        // versionId 10 beats 2 and the unversioned copy; "b" only shares a (fake) hash.
        let group =
            vec![occurrence(0, 1, 3, 0), occurrence(0, 2, 11, 0), occurrence(1, 1, 0, 99), occurrence(1, 2, 0, 0)];
        let found = confirm(vec![group], &read).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].id.as_str(), found[0].winner.line, found[0].winner.file), ("a", 2, 0));
        assert_eq!(found[0].losers.len(), 2);

        let rec = |text: &str| {
            let mut bytes = text.as_bytes().to_vec();
            let tape = simd_json::to_tape(&mut bytes).unwrap();
            IdRecord::of("Patient", "a", Json::root(&tape), 0, 0)
        };
        let older = rec(r#"{"meta":{"versionId":"1","lastUpdated":"2020-01-01T00:00:00Z"}}"#);
        let newer = rec(r#"{"meta":{"versionId":"1","lastUpdated":"2021-01-01T00:00:00+01:00"}}"#);
        assert!(newer.updated > older.updated && newer.version == older.version);
        assert_eq!(rec(r#"{"meta":{"versionId":"W/3"}}"#).version, 0);
    }

    #[test]
    fn lines_at_ascending_offsets_are_read_in_one_pass() {
        let text = b"first\r\nsecond\nthird\nlast-without-newline".to_vec();
        let reader = || -> Box<dyn BufRead + Send> { Box::new(io::Cursor::new(text.clone())) };
        let read = |offsets: &[u64]| {
            let mut lines = Vec::new();
            read_lines_in_order(reader(), offsets.iter().copied(), &mut |offset, line| {
                lines.push((offset, String::from_utf8(line.to_vec()).unwrap()));
                Ok(())
            })
            .unwrap();
            lines
        };
        let lines = read(&[0, 7, 14, 20]);
        let lines: Vec<(u64, &str)> = lines.iter().map(|(o, l)| (*o, l.as_str())).collect();
        assert_eq!(lines, [(0, "first"), (7, "second"), (14, "third"), (20, "last-without-newline")]);
        assert_eq!(read(&[14])[0].1, "third");
    }

    #[test]
    fn lines_of_plain_and_compressed_files_are_handed_over_in_file_order() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let text = "first\r\nsecond\nthird\nlast-without-newline";
        std::fs::write(dir.path().join("a.ndjson"), text).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        std::fs::write(dir.path().join("b.ndjson.gz"), gz.finish().unwrap()).unwrap();
        let files: Vec<ExportFile> = ["a.ndjson", "b.ndjson.gz"]
            .iter()
            .map(|name| ExportFile::inspect(crate::source::Location::Local(dir.path().join(name)), None).unwrap())
            .collect();
        let at = |file, line, offset| Occurrence { file, line, offset, version: 0, updated: 0 };
        // Out of order, as duplicates list them.
        let wanted = [at(1, 3, 14), at(0, 4, 20), at(1, 1, 0), at(0, 2, 7), at(0, 1, 0), at(1, 4, 20)];
        let mut seen = Vec::new();
        read_lines(&files, &wanted, &mut |o, line| {
            seen.push((o.file, o.line, String::from_utf8(line.to_vec()).unwrap()));
            Ok(())
        })
        .unwrap();
        let seen: Vec<(usize, u64, &str)> = seen.iter().map(|(f, l, s)| (*f, *l, s.as_str())).collect();
        assert_eq!(
            seen,
            [
                (0, 1, "first"),
                (0, 2, "second"),
                (0, 4, "last-without-newline"),
                (1, 1, "first"),
                (1, 3, "third"),
                (1, 4, "last-without-newline")
            ]
        );
    }
}
