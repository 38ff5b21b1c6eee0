//! One worker's job: read the lines of one chunk, parse each once, run every view of its
//! type, and hand full batches to the writers, encoding the row groups this makes due.
//! Everything that goes wrong with a line ends as a [`DeadLine`]; nothing here can fail
//! the load except writing the tables (or `--keep-raw`'s copies) failing.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::OnceLock;
use std::time::Instant;

use simd_json::prelude::*;

use super::catalog::Catalog;
use super::dead_letter::{resource_type_of, DeadLine, LineType, Reason};
use super::dedup::IdRecord;
use super::raw::RawChunk;
use super::report::FileReport;
use crate::sink::shared_parts::SharedPartWriters;
use crate::source::{ChunkLine, ChunkLines, ExportFile};
use crate::terminology::UnmappedCounts;
use crate::view::{ResourceParser, ViewSet};

/// Rows buffered by a worker, all views together, before it hands batches to the writers.
const FLUSH_ROWS: usize = 16 * 1024;

/// Lines longer than this are "big": parsing one takes ten times its size and more
/// (simd-json's tape, structural index and string buffer, and the copy kept for dead
/// letters), and a parser keeps the capacity of its largest line. A worker that has
/// processed a big line therefore lets go of its parsing scratch, and big lines being
/// processed, all workers together, add up to at most `--max-line-bytes`: a few near-limit
/// lines arriving at once on many threads cost what one line at the limit costs, not that
/// times the threads. It is the parser's own threshold, past which a line gives back
/// simd-json's scratch as soon as it is parsed, before its views run.
const BIG_LINE_BYTES: usize = crate::view::parse::SCRATCH_KEPT_BYTES;

/// The bytes of big lines being processed now (see [`BIG_LINE_BYTES`]).
static BIG_LINES_IN_FLIGHT: std::sync::Mutex<u64> = std::sync::Mutex::new(0);
static BIG_LINE_DONE: std::sync::Condvar = std::sync::Condvar::new();

/// A claim on the big-line budget (see [`BIG_LINE_BYTES`]), given back when dropped.
struct BigLinePermit(u64);

impl BigLinePermit {
    /// Waits until `len` more bytes keep the big lines in flight within `budget`, and claims
    /// them. A line is always admitted when nothing else is in flight, so none waits for ever.
    fn acquire(len: usize, budget: usize) -> Self {
        let (len, budget) = (len as u64, budget as u64);
        let mut in_flight = BIG_LINES_IN_FLIGHT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *in_flight > 0 && *in_flight + len > budget {
            in_flight = BIG_LINE_DONE.wait(in_flight).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *in_flight += len;
        BigLinePermit(len)
    }
}

impl Drop for BigLinePermit {
    fn drop(&mut self) {
        let mut in_flight = BIG_LINES_IN_FLIGHT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *in_flight -= self.0;
        BIG_LINE_DONE.notify_all();
    }
}

/// A line-aligned piece of one input file.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    /// Index of the file in the export.
    pub file: usize,
    /// Position of the chunk within its file, from 0.
    pub index: u32,
    /// The bytes whose lines it owns (`0..u64::MAX` for a compressed file).
    pub range: Range<u64>,
}

/// What a worker found in one chunk, for the collector.
pub(crate) struct ChunkDone {
    pub file: usize,
    pub index: u32,
    pub report: FileReport,
    pub dead: Vec<DeadLine>,
    pub loaded_by_type: BTreeMap<String, u64>,
    pub without_view: BTreeMap<String, u64>,
    /// Key and version of every loaded resource with an id, for duplicate detection.
    pub ids: Vec<IdRecord>,
    /// Codes the crosswalks did not map, in this chunk's rows.
    pub unmapped: UnmappedCounts,
    /// False for an interim hand-off: only dead letters and ids, counted in the chunk's
    /// last hand-off, which has this true.
    pub last: bool,
    /// About how much memory `dead` holds (bytes and bookkeeping), for [`hand_off_early`].
    held_dead_bytes: usize,
    /// In an interim hand-off, a sender whose drop (with the hand-off, by the collector)
    /// tells its worker that the collector is done with it.
    in_flight: Option<SyncSender<()>>,
}

impl ChunkDone {
    fn new(file: usize, index: u32) -> Self {
        ChunkDone {
            file,
            index,
            report: FileReport::default(),
            dead: Vec::new(),
            loaded_by_type: BTreeMap::new(),
            without_view: BTreeMap::new(),
            ids: Vec::new(),
            unmapped: UnmappedCounts::default(),
            last: true,
            held_dead_bytes: 0,
            in_flight: None,
        }
    }
}

/// Bytes of dead letters and id records a chunk without an end holds before handing them
/// to the collector early. A compressed file is one chunk however long: before, thirty
/// 50 MB lines of broken JSON in a 1.5 MB `.gz` were all held at once (1.7 GB, and a few
/// hundred would exhaust memory), and the ids of a `.gz` of 50 million resources took two
/// gigabytes.
const HAND_OFF_BYTES: usize = 8 << 20;

/// What every worker shares.
pub(crate) struct Shared<'a> {
    pub catalog: &'a Catalog,
    pub files: &'a [ExportFile],
    /// The part writers of every table, which the workers also encode for.
    pub writers: &'a SharedPartWriters,
    pub collector: Sender<ChunkDone>,
    pub abort: &'a AtomicBool,
    pub dead_count: &'a AtomicU64,
    pub max_errors: Option<u64>,
    pub max_line_bytes: usize,
    pub progress: &'a indicatif::ProgressBar,
    /// Where `--keep-raw` keeps lines, if it was given.
    pub raw_dir: Option<std::path::PathBuf>,
    /// Parse files whose declared type no view reads, instead of only counting their lines.
    pub parse_all: bool,
    /// Per file, once a worker has looked: whether its first resource has the file's
    /// declared type (see [`first_resource_is_declared`]).
    pub first_resource_declared: &'a [OnceLock<bool>],
    /// The first error that must fail the load (a worker cannot return one).
    pub failure: &'a std::sync::Mutex<Option<String>>,
}

/// A worker's reusable state: builders for every view and the parser's scratch space.
pub(crate) struct WorkerState {
    views: ViewSet,
    parser: ResourceParser,
    /// A copy of the line before parsing: simd-json rewrites its input in place, and a dead
    /// letter must keep the original bytes.
    original: Vec<u8>,
    pending_rows: usize,
    /// Unmapped codes of the rows flushed since the last chunk ended.
    unmapped: UnmappedCounts,
}

impl WorkerState {
    pub fn new(catalog: &Catalog) -> Self {
        WorkerState {
            views: ViewSet::new(catalog.views.iter().cloned()),
            parser: ResourceParser::default(),
            original: Vec::new(),
            pending_rows: 0,
            unmapped: UnmappedCounts::default(),
        }
    }
}

/// Processes one chunk and sends its [`ChunkDone`] to the collector.
pub(crate) fn process_chunk(shared: &Shared<'_>, state: &mut WorkerState, chunk: &Chunk) {
    let started = Instant::now();
    let file = &shared.files[chunk.file];
    let mut done = ChunkDone::new(chunk.file, chunk.index);
    let mut handed_off = None;
    let from = chunk.range.start.saturating_sub(1);
    let mut consumed = 0;
    let mut raw = shared.raw_dir.as_ref().map(|dir| RawChunk::new(dir.clone(), chunk.file, chunk.index));
    match file.open_at(from) {
        Err(e) => {
            done.report.lines += 1;
            push_dead(
                shared,
                &mut done,
                DeadLine { index: 0, offset: from, reason: Reason::Read(e.to_string()), bytes: Vec::new() },
            );
        }
        Ok(reader) => {
            let mut lines = ChunkLines::new(reader, chunk.range.clone(), shared.max_line_bytes);
            let mut non_blank = 0;
            // No view reads the file's declared type, and its content agrees: count its
            // lines, parse none of them.
            let unread = !shared.parse_all
                && file.declared_type.as_deref().is_some_and(|t| !shared.catalog.reads(t))
                && *shared.first_resource_declared[chunk.file]
                    .get_or_init(|| first_resource_is_declared(&mut state.parser, file, shared.max_line_bytes));
            while !shared.abort.load(Ordering::Relaxed) {
                match lines.next_line() {
                    Ok(None) => break,
                    Ok(Some(ChunkLine::Line { .. })) if unread => {
                        non_blank += 1;
                        done.report.unread += 1;
                    }
                    Ok(Some(ChunkLine::Line { index, offset, bytes })) => {
                        non_blank += 1;
                        let big = (bytes.len() > BIG_LINE_BYTES)
                            .then(|| BigLinePermit::acquire(bytes.len(), shared.max_line_bytes));
                        if let Err(reason) = process_line(state, &mut done, file, bytes, (index, offset), raw.as_mut())
                        {
                            let bytes = std::mem::take(&mut state.original);
                            push_dead(shared, &mut done, DeadLine { index, offset, reason, bytes });
                        }
                        if big.is_some() {
                            // Give the parsing scratch back before the rows are flushed, so the
                            // two peaks do not add up, and so no worker keeps it for good.
                            state.parser = ResourceParser::default();
                            state.original = Vec::new();
                            flush(shared, state, false);
                        }
                    }
                    Ok(Some(ChunkLine::Oversized { index, offset, len, head })) => {
                        non_blank += 1;
                        let reason = Reason::Oversized { len, limit: shared.max_line_bytes };
                        push_dead(shared, &mut done, DeadLine { index, offset, reason, bytes: head.to_vec() });
                    }
                    Err(e) => {
                        // The line being read counts as one line, dead; the rest is unreadable.
                        let (index, offset) = (lines.lines_read(), lines.position());
                        let reason = Reason::Read(e.to_string());
                        push_dead(shared, &mut done, DeadLine { index, offset, reason, bytes: Vec::new() });
                        done.report.lines += 1;
                        break;
                    }
                }
                if state.pending_rows >= FLUSH_ROWS {
                    flush(shared, state, false);
                }
                hand_off_early(shared, chunk, &mut done, &mut handed_off);
                let position = lines.position();
                if !file.compressed && position - from - consumed >= 1 << 20 {
                    shared.progress.inc(position - from - consumed);
                    consumed = position - from;
                }
            }
            done.report.lines += lines.lines_read();
            done.report.blank_lines = lines.lines_read() - non_blank;
            let read = lines.position() - from;
            done.report.bytes = lines.bytes_owned();
            shared.progress.inc(if file.compressed { file.size } else { read.saturating_sub(consumed) });
        }
    }
    flush(shared, state, true);
    done.unmapped = std::mem::take(&mut state.unmapped);
    if let Some(Err(e)) = raw.map(RawChunk::finish) {
        fail(shared, format!("--keep-raw: {e}"));
    }
    done.report.seconds = started.elapsed().as_secs_f64();
    // The collector only goes away when the load is already failing.
    let _ = shared.collector.send(done);
}

/// Whether the first resource of `file` has the type the file declares. A file is only
/// counted, unparsed, on its manifest entry's or its name's word when its content starts
/// as that word says: a misnamed file (`Observation.ndjson` holding Patients), or one whose
/// first line is no resource, is parsed like any other, so that its resources are loaded or
/// dead-lettered and the mismatch is reported, not skipped unseen. One line per such file,
/// read again from its start (lines up to `max_line_bytes`) by whichever worker needs the
/// answer first. `fhirhouse query --export` asks the same of a file declared for another
/// type than a table's.
pub(crate) fn first_resource_is_declared(
    parser: &mut ResourceParser,
    file: &ExportFile,
    max_line_bytes: usize,
) -> bool {
    let Ok(reader) = file.open_at(0) else { return false };
    let mut lines = ChunkLines::new(reader, 0..u64::MAX, max_line_bytes);
    let Ok(Some(ChunkLine::Line { bytes, .. })) = lines.next_line() else { return false };
    parser.parse(bytes).is_ok_and(|parsed| parsed.doc().get_str("resourceType") == file.declared_type.as_deref())
}

/// Hands the dead letters and ids gathered so far to the collector when they have grown
/// large, so that what a chunk holds stays bounded however long the chunk is; the counts
/// wait for the chunk's last hand-off. Only a chunk without an end (a compressed file, or
/// one read as a stream) does this: it is its file's only chunk, so the collector writes
/// its hand-offs at once (a range's chunk holds at most its range's worth anyway). The
/// channel to the collector has no bound, so a worker first waits until the collector is
/// done with its previous hand-off (has dropped it: written, or dropped unwritten with the
/// channel when the load is failing, so the wait always ends).
fn hand_off_early(shared: &Shared<'_>, chunk: &Chunk, done: &mut ChunkDone, previous: &mut Option<Receiver<()>>) {
    let ids_bytes = done.ids.len() * std::mem::size_of::<IdRecord>();
    if chunk.range.end != u64::MAX || done.held_dead_bytes + ids_bytes < HAND_OFF_BYTES {
        return;
    }
    if let Some(collected) = previous.take() {
        // Nothing is ever sent: `recv` returns when the hand-off, and its sender, is dropped.
        let _ = collected.recv();
    }
    let (in_flight, collected) = std::sync::mpsc::sync_channel(0);
    let mut interim = ChunkDone::new(done.file, done.index);
    interim.last = false;
    interim.dead = std::mem::take(&mut done.dead);
    interim.ids = std::mem::take(&mut done.ids);
    interim.in_flight = Some(in_flight);
    done.held_dead_bytes = 0;
    *previous = Some(collected);
    // The collector only goes away when the load is already failing.
    let _ = shared.collector.send(interim);
}

/// Records an error that fails the load, and stops the workers.
fn fail(shared: &Shared<'_>, message: String) {
    shared.failure.lock().expect("never poisoned: no panics while held").get_or_insert(message);
    shared.abort.store(true, Ordering::Relaxed);
}

fn push_dead(shared: &Shared<'_>, done: &mut ChunkDone, dead: DeadLine) {
    done.report.dead_letters += 1;
    *done.report.dead_by_reason.entry(dead.reason.code().to_owned()).or_default() += 1;
    // The record and its reason's text count too: a million short broken lines add up.
    done.held_dead_bytes += dead.bytes.len() + std::mem::size_of::<DeadLine>() + 64;
    done.dead.push(dead);
    let total = shared.dead_count.fetch_add(1, Ordering::Relaxed) + 1;
    if shared.max_errors.is_some_and(|max| total > max) {
        shared.abort.store(true, Ordering::Relaxed);
    }
}

/// Parses one line, runs the views of its type and keeps the line in `raw` when given. On
/// `Err`, `state.original` holds the line's original bytes.
fn process_line(
    state: &mut WorkerState,
    done: &mut ChunkDone,
    file: &ExportFile,
    bytes: &mut [u8],
    (index, offset): (u64, u64),
    raw: Option<&mut RawChunk>,
) -> Result<(), Reason> {
    state.original.clear();
    state.original.extend_from_slice(bytes);
    let parsed = state.parser.parse(bytes).map_err(|e| Reason::unparsable(&e, &state.original))?;
    let resource = parsed.doc();
    // A dead-lettered line is not also a type mismatch: only resources are counted as those.
    let LineType { name: resource_type, read } = resource_type_of(resource, |t| state.views.reads(t))?;
    if file.declared_type.as_deref().is_some_and(|t| t != resource_type) {
        done.report.type_mismatches += 1;
    }
    if read {
        let rows = state.views.append(resource_type, resource).map_err(|e| Reason::View(e.to_string()))?;
        done.report.loaded += 1;
        done.report.rows += rows as u64;
        state.pending_rows += rows;
        if let Some(id) = resource.get_str("id") {
            done.ids.push(IdRecord::of(resource_type, id, resource, index, offset));
        }
        if let Some(n) = done.loaded_by_type.get_mut(resource_type) {
            *n += 1;
        } else {
            done.loaded_by_type.insert(resource_type.to_owned(), 1);
        }
    } else {
        done.report.without_view += 1;
        *done.without_view.entry(resource_type.to_owned()).or_default() += 1;
    }
    if let Some(raw) = raw {
        raw.keep(resource_type, &state.original);
    }
    Ok(())
}

/// Hands buffered rows to the writers, and encodes the row groups this makes due: every
/// non-empty builder when `all`, else the ones holding at least a quarter of the flush size
/// (small tables wait for the chunk's end).
fn flush(shared: &Shared<'_>, state: &mut WorkerState, all: bool) {
    let threshold = if all { 1 } else { FLUSH_ROWS / 4 };
    let mut rows = Vec::new();
    for (table, builder) in state.views.builders_mut().iter_mut().enumerate() {
        if builder.len() < threshold {
            continue;
        }
        match shared.catalog.finish_batch(table, builder.finish(), Some(&mut state.unmapped)) {
            Ok(batches) => rows.extend(batches.into_iter().map(|(partition, batch)| (table, partition, batch))),
            Err(e) => fail(shared, crate::error_text(e.as_ref())),
        }
    }
    state.pending_rows = state.views.builders_mut().iter().map(|b| b.len()).sum();
    if let Err(e) = shared.writers.write_all(rows) {
        fail(shared, format!("writing the tables: {}", crate::error_text(&e)));
    }
}
