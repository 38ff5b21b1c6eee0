//! Parse-only cost of simd-json's borrowed DOM versus its tape, on one NDJSON file.
//!
//! `cargo run --release --example tape_vs_dom -- Observation.000.ndjson`
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: tape_vs_dom <file.ndjson>");
    let data = std::fs::read(path).expect("input file");
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut scratch = Vec::new();
    let mut buffers = simd_json::Buffers::default();
    for round in 0..3 {
        let start = Instant::now();
        let mut objects = 0usize;
        for line in &lines {
            scratch.clear();
            scratch.extend_from_slice(line);
            let doc = simd_json::to_borrowed_value_with_buffers(&mut scratch, &mut buffers).expect("valid JSON");
            objects += matches!(doc, simd_json::BorrowedValue::Object(_)) as usize;
        }
        let dom = start.elapsed();
        let start = Instant::now();
        let mut nodes = 0usize;
        for line in &lines {
            scratch.clear();
            scratch.extend_from_slice(line);
            let tape = simd_json::to_tape_with_buffers(&mut scratch, &mut buffers).expect("valid JSON");
            nodes += tape.0.len();
        }
        let tape = start.elapsed();
        println!(
            "round {round}: dom {:?} ({objects} objects), tape {:?} ({nodes} nodes), tape/dom {:.2}",
            dom,
            tape,
            tape.as_secs_f64() / dom.as_secs_f64()
        );
    }
}
