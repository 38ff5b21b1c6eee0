//! Hostile-but-plausible exports must not make memory grow with their shape: near-limit
//! lines arriving on several threads at once, or tens of thousands of tiny files. Peak heap
//! is measured with a counting allocator, so the checks hold whatever the machine.
//!
//! The tests of this binary share the allocator's counters, so they run one at a time.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::*;

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Peak heap growth above the current level while `f` runs.
fn peak_growth(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

/// One line of `bytes` or so of densely nested JSON (a value node every few bytes), the
/// costliest shape to parse per byte: a resource type no view reads, so only parsing counts.
fn dense_line(id: &str, bytes: usize) -> String {
    let item = r#"{"a":{"b":"c"}}"#;
    let items = vec![item; bytes / (item.len() + 1)].join(",");
    format!(r#"{{"resourceType":"Basic","id":"{id}","extension":[{items}]}}"#)
}

#[test]
fn a_big_line_once_parsed_holds_its_tape_and_not_the_parse_scratch() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Before: the parser kept simd-json's scratch (a copy of the line, a string buffer its
    // size, a stack and an index for each structural character) while the views ran on the
    // tape, about 34 bytes for a byte of this line where the tape alone reserves 15.
    let mut line = dense_line("big", 4 << 20).into_bytes();
    let len = line.len();
    let mut parser = fhirhouse::view::ResourceParser::default();
    let base = LIVE.load(Ordering::Relaxed);
    let parsed = parser.parse(&mut line).expect("valid JSON");
    let held = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    assert_eq!(parsed.doc().get_str("id"), Some("big"));
    drop(parsed);
    assert!(held < len * 20, "{} MB held while a {} MB line's views would run", held >> 20, len >> 20);
}

#[test]
fn near_limit_lines_on_several_threads_are_parsed_one_budget_at_a_time() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Before: each worker parsed its big line at once, and kept the parser's scratch (about
    // ten times the line) for the rest of the load; four threads, four times the memory.
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let line_bytes = 12 << 20;
    for i in 0..4 {
        // Named Observation so that the declared-type shortcut does not skip parsing.
        std::fs::write(export.join(format!("Observation.{i}.ndjson")), dense_line(&format!("b{i}"), line_bytes) + "\n")
            .unwrap();
    }
    let one_line = peak_growth(|| {
        let mut parser = fhirhouse::view::ResourceParser::default();
        let mut bytes = dense_line("alone", line_bytes).into_bytes();
        assert!(parser.parse(&mut bytes).is_ok());
    });
    let out = dir.path().join("wh");
    let mut outcome = None;
    let load = peak_growth(|| {
        outcome = Some(load_with(&[export], &out, |o| {
            o.threads = 4;
            o.max_line_bytes = 16 << 20;
        }))
    });
    let report = outcome.unwrap().report;
    assert_eq!((report.totals.lines, report.totals.without_view), (4, 4));
    assert!(
        load < one_line * 5 / 2,
        "peak heap of the load {} MB, of parsing one line alone {} MB",
        load >> 20,
        one_line >> 20
    );
}

/// Peak heap growth of loading an export of `files` one-line files of a type no view reads
/// (no rows: only the per-file bookkeeping is measured).
/// The peak heap of loading `files` one-resource files of `resource_type` on one thread
/// (two threads move the peak by a hundred bytes a file from run to run).
fn tiny_files_load_growth(files: u64, resource_type: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    for i in 0..files {
        std::fs::write(
            export.join(format!("{resource_type}.{i:05}.ndjson")),
            format!(r#"{{"resourceType":"{resource_type}","id":"{i}"}}"#),
        )
        .unwrap();
    }
    let out = dir.path().join("wh");
    let mut outcome = None;
    let growth = peak_growth(|| outcome = Some(load_with(&[export], &out, |options| options.threads = 1)));
    let report = outcome.unwrap().report;
    assert_eq!(report.totals.lines, files);
    let settled = if resource_type == "Basic" { report.totals.unread } else { report.totals.loaded };
    assert_eq!(settled, files, "every line counted unparsed (Basic) or loaded");
    growth
}

/// Peak heap per file, from the slope between two export sizes (which leaves out what a
/// load costs whatever its size).
fn tiny_files_heap_per_file(resource_type: &str) -> usize {
    let (small, large) = (500, 2500);
    let growth = (tiny_files_load_growth(small, resource_type), tiny_files_load_growth(large, resource_type));
    println!("peak heap of {resource_type} files: {} bytes for {small}, {} for {large}", growth.0, growth.1);
    growth.1.saturating_sub(growth.0) / (large - small) as usize
}

#[test]
fn many_tiny_files_cost_little_collector_memory_each() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Before: the collector kept an emptied BTreeMap node (kilobytes) for every file, so
    // 100,000 tiny files held hundreds of megabytes.
    let per_file = tiny_files_heap_per_file("Basic");
    assert!(per_file < 1536, "{per_file} bytes of peak heap per tiny unread file");
}

#[test]
fn many_tiny_loaded_files_cost_little_collector_memory_each() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Before: the per-file count of loaded resources by type was a map, whose first node
    // (room for eleven types) took 368 bytes for a file's one type, and the collector's
    // per-file state sat in a hash map: about 1,090 bytes a file in all, 845 after.
    let per_file = tiny_files_heap_per_file("Patient");
    assert!(per_file < 960, "{per_file} bytes of peak heap per tiny loaded file");
}

#[test]
fn dead_letters_of_a_long_compressed_file_are_not_all_held_at_once() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Before: a compressed file is one chunk, and its worker held every dead line's bytes to
    // the end: thirty 50 MB broken lines in a 1.5 MB .gz took 1.7 GB.
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let (lines, line_bytes) = (24, 3 << 20);
    let broken = format!(r#"{{"resourceType":"Patient","id":"x","text":"{}"#, "a".repeat(line_bytes));
    let mut data = vec![broken.as_str(); lines].join("\n");
    data.push_str("\n{\"resourceType\":\"Patient\",\"id\":\"ok\"}\n");
    std::fs::write(export.join("Patient.ndjson.gz"), gzip(data.as_bytes())).unwrap();
    drop(data);
    let out = dir.path().join("wh");
    let mut outcome = None;
    let growth = peak_growth(|| outcome = Some(load_with(&[export], &out, |_| {})));
    let report = outcome.unwrap().report;
    assert_eq!((report.totals.lines, report.totals.loaded, report.totals.dead_letters), (25, 1, 24));
    let dead = dead_letters(&out, &report.load_id);
    let numbers: Vec<u64> = dead.iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (1..=24).collect::<Vec<u64>>());
    assert!(dead.iter().all(|d| d["raw"].as_str().unwrap().len() == broken.len()), "original bytes kept whole");
    assert!(
        growth < lines * line_bytes * 3 / 4,
        "peak heap {} MB for {} MB of dead lines",
        growth >> 20,
        (lines * line_bytes) >> 20
    );
}

#[test]
fn ids_of_a_long_compressed_file_are_handed_off_with_their_line_numbers() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Ids handed to the collector early (a .gz is one chunk) must still find duplicates
    // across the hand-offs, with the right line numbers.
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let count = 3 * 64 * 1024;
    let mut data = String::new();
    for i in 0..count {
        let id = if i == count - 1 { 0 } else { i };
        data.push_str(&format!("{{\"resourceType\":\"Patient\",\"id\":\"{id}\"}}\n"));
    }
    std::fs::write(export.join("Patient.ndjson.gz"), gzip(data.as_bytes())).unwrap();
    let out = dir.path().join("wh");
    let report = load_with(&[export], &out, |_| {}).report;
    assert_eq!((report.totals.lines, report.totals.loaded), (count as u64, count as u64 - 1));
    let dead = dead_letters(&out, &report.load_id);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0]["line"].as_u64(), dead[0]["reason"].as_str()), (Some(1), Some("superseded_duplicate")));
}

/// The sample's lines, taking a line of each type in turn (so that any number of them has
/// the sample's mix of types), with their types.
fn sample_lines_in_turn() -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(sample())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    let mut types: Vec<(String, std::vec::IntoIter<String>)> = files
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            let lines: Vec<String> = std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect();
            (name.split('.').next().unwrap().to_owned(), lines.into_iter())
        })
        .collect();
    let mut out = Vec::new();
    while !types.is_empty() {
        types.retain_mut(|(resource_type, lines)| match lines.next() {
            Some(line) => {
                out.push((resource_type.clone(), line));
                true
            }
            None => false,
        });
    }
    out
}

/// Peak heap growth of loading `lines`, a file each when `one_per_file`, else a file per
/// type.
fn sample_lines_load_growth(lines: &[(String, String)], one_per_file: bool) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let mut by_type: std::collections::BTreeMap<&str, String> = std::collections::BTreeMap::new();
    for (i, (resource_type, line)) in lines.iter().enumerate() {
        if one_per_file {
            std::fs::write(export.join(format!("{resource_type}.{i:05}.ndjson")), format!("{line}\n")).unwrap();
        } else {
            let file = by_type.entry(resource_type).or_default();
            file.push_str(line);
            file.push('\n');
        }
    }
    for (resource_type, data) in by_type {
        std::fs::write(export.join(format!("{resource_type}.ndjson")), data).unwrap();
    }
    let out = dir.path().join("wh");
    let mut outcome = None;
    let growth = peak_growth(|| outcome = Some(load_with(&[export], &out, |o| o.threads = 2)));
    let report = outcome.unwrap().report;
    assert_eq!((report.totals.lines, report.totals.dead_letters), (lines.len() as u64, 0));
    growth
}

#[test]
fn one_line_files_with_rows_do_not_pile_up_batches() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Before: every file's worker handed over a batch of a row or so per view, and the part
    // writers held each as it came until its partition was written: about 7 KB of arrays
    // for a row, so an export of 100,000 one-line files took a gigabyte. The same lines in
    // a file per type leave out what the rows themselves cost; what is left per file is the
    // collector's bookkeeping (see many_tiny_files_cost_little_collector_memory_each) and a
    // batch or so per partition.
    let files = 4000;
    let lines = &sample_lines_in_turn()[..files];
    let few = sample_lines_load_growth(lines, false);
    let many = sample_lines_load_growth(lines, true);
    let per_file = many.saturating_sub(few) / files;
    println!("peak heap: {few} bytes for the lines in a file per type, {many} for a file per line");
    assert!(
        per_file < 3072,
        "{per_file} bytes of peak heap per one-line file ({few} in a file per type, {many} in a file per line)"
    );
}

#[test]
fn duplicates_are_resolved_a_batch_at_a_time() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Before: resolving duplicates held every duplicate line's bytes (a compressed file's
    // twice over), every winner's rows and a rewritten part file's rows at once: an export
    // listing a file and a compressed copy of it grew the heap by several times the file.
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let (count, narrative) = (6000_u64, "x".repeat(6 << 10));
    let mut data = String::new();
    for i in 0..count {
        let patient = serde_json::json!({"resourceType": "Patient", "id": format!("p{i}"), "gender": "female",
            "birthDate": "1970-01-01", "name": [{"family": format!("Family{i}"), "given": ["Given"]}],
            "text": {"status": "generated", "div": narrative}});
        data.push_str(&patient.to_string());
        data.push('\n');
    }
    std::fs::write(export.join("Patient.1.ndjson"), &data).unwrap();
    std::fs::write(export.join("Patient.2.ndjson.gz"), gzip(data.as_bytes())).unwrap();
    let bytes = data.len();
    drop(data);
    let out = dir.path().join("wh");
    let mut outcome = None;
    let growth = peak_growth(|| {
        outcome = Some(load_with(&[export], &out, |o| {
            o.threads = 1;
            o.memory_limit = 64 << 20;
        }))
    });
    let report = outcome.unwrap().report;
    report.check().unwrap();
    assert_eq!((report.totals.lines, report.totals.loaded, report.totals.dead_letters), (2 * count, count, count));
    assert_eq!(report.duplicates.as_ref().map(|d| (d.keys, d.superseded)), Some((count, count)));
    assert_eq!(table_rows(out.as_path(), "patient"), count as i64);
    println!("peak heap {} MB for a {} MB file listed twice", growth >> 20, bytes >> 20);
    assert!(growth < bytes / 2, "peak heap {} MB for a {} MB file listed twice", growth >> 20, bytes >> 20);
}
