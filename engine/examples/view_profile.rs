//! Runs one view over one NDJSON file, single-threaded, for instruction-level profiling.
//!
//! ```text
//! cargo build --release --example view_profile
//! valgrind --tool=callgrind target/release/examples/view_profile schemas/observation.json Observation.000.ndjson view
//! valgrind --tool=callgrind target/release/examples/view_profile schemas/observation.json Observation.000.ndjson parse
//! ```
//!
//! `parse` only parses each line (the ceiling); `view` parses and evaluates the view into
//! Arrow builders, cutting a batch every 8,192 rows, as `benches/view_core.rs` does. The
//! difference of the two instruction counts is the view's cost, free of timing noise.

use std::sync::Arc;

use fhirhouse::view::{CompiledView, ViewBatchBuilder};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, view, input, mode] = args.as_slice() else {
        eprintln!("usage: view_profile <view.json> <file.ndjson> parse|view");
        std::process::exit(2);
    };
    let view =
        Arc::new(CompiledView::from_json_str(&std::fs::read_to_string(view).expect("view file")).expect("valid view"));
    let data = std::fs::read(input).expect("input file");
    let evaluate = mode == "view";
    let mut builder = ViewBatchBuilder::new(view);
    let mut scratch = Vec::new();
    let mut buffers = simd_json::Buffers::default();
    let (mut resources, mut rows) = (0usize, 0usize);
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        scratch.clear();
        scratch.extend_from_slice(line);
        let doc = simd_json::to_borrowed_value_with_buffers(&mut scratch, &mut buffers).expect("valid JSON");
        resources += 1;
        if evaluate {
            rows += builder.append(&doc).expect("view evaluates");
            if builder.len() >= 8192 {
                builder.finish();
            }
        }
    }
    builder.finish();
    println!("{resources} resources, {rows} rows");
}
